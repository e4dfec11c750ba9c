//! Guest-side SDK for Switchyard WebAssembly plugins (see `sdk/README.md`).
