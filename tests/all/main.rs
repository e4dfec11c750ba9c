//! The one integration-test binary: each area is a module (wasmtime/ripgrep style).

mod cli;
mod plugin;
