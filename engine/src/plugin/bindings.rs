//! Host-side bindings generated from the WIT package in `sdk/wit` (world `switchyard:plugin/host`,
//! the union of every host import and plugin export).

#![allow(missing_docs, clippy::all)]

wasmtime::component::bindgen!({
    path: "../sdk/wit",
    world: "switchyard:plugin/host",
    imports: { default: async | trappable },
    exports: { default: async },
});

pub use self::exports::switchyard::plugin as guest;
pub use self::switchyard::plugin as host;
