//! The one integration-test binary: each area is a module (wasmtime/ripgrep style).

mod attribution;
mod attribution_e2e;
mod chaos;
mod cli;
mod connector;
mod delivery;
mod logs;
mod mapping;
mod plugin;
mod prism;
mod sandbox;
mod serve;
mod spec;
mod ui;
mod wiring;
