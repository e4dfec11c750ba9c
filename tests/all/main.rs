//! The one integration-test binary: each area is a module (wasmtime/ripgrep style).

mod cli;
mod connector;
mod mapping;
mod prism;
mod sandbox;
