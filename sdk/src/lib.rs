//! Guest-side SDK for Switchyard WebAssembly plugins (see `sdk/README.md`).
//!
//! Enable exactly one world feature (`mapping-functions`, `request-codec`, `full-connector`,
//! `webhook-verifier`, `enricher`); it generates the bindings for that world of the
//! `switchyard:plugin@0.1.0` WIT package (in `sdk/wit/`) and the matching helpers:
//!
//! * [`MappingFunctions`] + [`export_mapping_functions!`] for mapping functions (JSON in, JSON out;
//!   [`Args`] parses large arguments lazily);
//! * [`export!`] for the other worlds, whose `Guest` traits are re-exported in [`exports`];
//! * [`host`] wrappers around the host imports (log, config, secrets, clock, http).

#[cfg(any(
    all(feature = "mapping-functions", feature = "request-codec"),
    all(feature = "mapping-functions", feature = "full-connector"),
    all(feature = "mapping-functions", feature = "webhook-verifier"),
    all(feature = "mapping-functions", feature = "enricher"),
    all(feature = "request-codec", feature = "full-connector"),
    all(feature = "request-codec", feature = "webhook-verifier"),
    all(feature = "request-codec", feature = "enricher"),
    all(feature = "full-connector", feature = "webhook-verifier"),
    all(feature = "full-connector", feature = "enricher"),
    all(feature = "webhook-verifier", feature = "enricher"),
))]
compile_error!("switchyard-sdk: enable exactly one world feature per plugin crate");

// Lets the generated code name this crate by its public path from inside it.
extern crate self as switchyard_sdk;

/// Version of the WIT package this SDK builds against.
pub const WIT_VERSION: &str = "0.1.0";

/// Re-exports used by the macros; not part of the public API.
#[doc(hidden)]
pub mod __private {
    pub use serde_json;
    pub use wit_bindgen;
}

/// Generated bindings of the selected world.
#[cfg(feature = "mapping-functions")]
#[allow(missing_docs, clippy::all)]
pub mod bindings {
    wit_bindgen::generate!({
        path: "wit",
        world: "switchyard:plugin/mapping-functions",
        pub_export_macro: true,
        export_macro_name: "__export_world",
        default_bindings_module: "switchyard_sdk::bindings",
        runtime_path: "switchyard_sdk::__private::wit_bindgen::rt",
        generate_unused_types: true,
    });
}

/// Generated bindings of the selected world.
#[cfg(feature = "request-codec")]
#[allow(missing_docs, clippy::all)]
pub mod bindings {
    wit_bindgen::generate!({
        path: "wit",
        world: "switchyard:plugin/request-codec",
        pub_export_macro: true,
        export_macro_name: "__export_world",
        default_bindings_module: "switchyard_sdk::bindings",
        runtime_path: "switchyard_sdk::__private::wit_bindgen::rt",
        generate_unused_types: true,
    });
}

/// Generated bindings of the selected world.
#[cfg(feature = "full-connector")]
#[allow(missing_docs, clippy::all)]
pub mod bindings {
    wit_bindgen::generate!({
        path: "wit",
        world: "switchyard:plugin/full-connector",
        pub_export_macro: true,
        export_macro_name: "__export_world",
        default_bindings_module: "switchyard_sdk::bindings",
        runtime_path: "switchyard_sdk::__private::wit_bindgen::rt",
        generate_unused_types: true,
    });
}

/// Generated bindings of the selected world.
#[cfg(feature = "webhook-verifier")]
#[allow(missing_docs, clippy::all)]
pub mod bindings {
    wit_bindgen::generate!({
        path: "wit",
        world: "switchyard:plugin/webhook-verifier",
        pub_export_macro: true,
        export_macro_name: "__export_world",
        default_bindings_module: "switchyard_sdk::bindings",
        runtime_path: "switchyard_sdk::__private::wit_bindgen::rt",
        generate_unused_types: true,
    });
}

/// Generated bindings of the selected world.
#[cfg(feature = "enricher")]
#[allow(missing_docs, clippy::all)]
pub mod bindings {
    wit_bindgen::generate!({
        path: "wit",
        world: "switchyard:plugin/enricher",
        pub_export_macro: true,
        export_macro_name: "__export_world",
        default_bindings_module: "switchyard_sdk::bindings",
        runtime_path: "switchyard_sdk::__private::wit_bindgen::rt",
        generate_unused_types: true,
    });
}

#[cfg(any(
    feature = "mapping-functions",
    feature = "request-codec",
    feature = "full-connector",
    feature = "webhook-verifier",
    feature = "enricher"
))]
mod world {
    pub use crate::bindings::switchyard::plugin::types::{
        Header, HttpRequest, HttpResponse, PluginError,
    };
}

#[cfg(any(
    feature = "mapping-functions",
    feature = "request-codec",
    feature = "full-connector",
    feature = "webhook-verifier",
    feature = "enricher"
))]
pub use world::*;

/// The `Guest` traits of the selected world's exports.
#[cfg(any(
    feature = "request-codec",
    feature = "full-connector",
    feature = "webhook-verifier",
    feature = "enricher"
))]
pub mod exports {
    #[cfg(feature = "request-codec")]
    pub use crate::bindings::exports::switchyard::plugin::{decoder, signer};

    #[cfg(feature = "full-connector")]
    pub use crate::bindings::exports::switchyard::plugin::connector;

    #[cfg(feature = "webhook-verifier")]
    pub use crate::bindings::exports::switchyard::plugin::webhook;

    #[cfg(feature = "enricher")]
    pub use crate::bindings::exports::switchyard::plugin::enrichment;
}

/// Exports `$t` (which implements the selected world's `Guest` traits, see [`exports`]) as the
/// plugin.
#[macro_export]
macro_rules! export {
    ($t:ident) => {
        $crate::bindings::__export_world!($t with_types_in $crate::bindings);
    };
}

/// Mapping functions with JSON arguments and results.
///
/// Implement [`call`](MappingFunctions::call) (every argument parsed into a `Value`) or, for
/// functions that read only part of a large argument (a 1 KB record, say),
/// [`call_args`](MappingFunctions::call_args), which gets the arguments as JSON text and parses
/// only what it asks for ([`Args::parse`] into a borrowed struct, [`Args::fields`]).
#[cfg(feature = "mapping-functions")]
pub trait MappingFunctions {
    /// Names of the functions this plugin provides.
    fn functions() -> Vec<String>;

    /// Calls function `name` with every argument parsed. The default refuses every name: implement
    /// this or [`call_args`](MappingFunctions::call_args).
    fn call(name: &str, args: Vec<serde_json::Value>) -> Result<serde_json::Value, PluginError> {
        let _ = args;
        Err(PluginError::InvalidInput(format!(
            "unknown function `{name}`"
        )))
    }

    /// Calls function `name` with the arguments as JSON text, parsed on demand. The default parses
    /// every argument and calls [`call`](MappingFunctions::call).
    fn call_args(name: &str, args: &Args) -> Result<serde_json::Value, PluginError> {
        Self::call(name, args.values()?)
    }
}

#[cfg(feature = "mapping-functions")]
mod args;
#[cfg(feature = "mapping-functions")]
mod skim;
#[cfg(feature = "mapping-functions")]
pub use args::Args;

/// Glue between [`MappingFunctions`] and the generated bindings.
#[cfg(feature = "mapping-functions")]
#[doc(hidden)]
pub fn __call_mapping<T: MappingFunctions>(
    name: String,
    args: Vec<String>,
) -> Result<String, PluginError> {
    let out = T::call_args(&name, &Args::new(args))?;
    serde_json::to_string(&out).map_err(|e| PluginError::Internal(e.to_string()))
}

/// Exports a [`MappingFunctions`] implementation as the plugin.
#[cfg(feature = "mapping-functions")]
#[macro_export]
macro_rules! export_mapping_functions {
    ($t:ty) => {
        struct __SwitchyardMapping;
        impl $crate::bindings::exports::switchyard::plugin::mapping::Guest for __SwitchyardMapping {
            fn functions() -> ::std::vec::Vec<::std::string::String> {
                <$t as $crate::MappingFunctions>::functions()
            }
            fn call(
                name: ::std::string::String,
                args: ::std::vec::Vec<::std::string::String>,
            ) -> ::std::result::Result<::std::string::String, $crate::PluginError> {
                $crate::__call_mapping::<$t>(name, args)
            }
        }
        $crate::bindings::__export_world!(__SwitchyardMapping with_types_in $crate::bindings);
    };
}

/// Helpers around the host imports of the selected world.
#[cfg(any(
    feature = "mapping-functions",
    feature = "request-codec",
    feature = "full-connector",
    feature = "webhook-verifier",
    feature = "enricher"
))]
pub mod host {
    use crate::bindings::switchyard::plugin::log as wit_log;

    /// Logs at info level.
    pub fn info(message: &str) {
        wit_log::emit(wit_log::Level::Info, message);
    }

    /// Logs at warn level.
    pub fn warn(message: &str) {
        wit_log::emit(wit_log::Level::Warn, message);
    }

    /// Logs at debug level.
    pub fn debug(message: &str) {
        wit_log::emit(wit_log::Level::Debug, message);
    }

    /// The configuration value `key` (declared in the manifest), parsed from JSON.
    #[cfg(not(feature = "mapping-functions"))]
    pub fn config(key: &str) -> Option<serde_json::Value> {
        crate::bindings::switchyard::plugin::config::get(key)
            .and_then(|text| serde_json::from_str(&text).ok())
    }

    /// The configuration value `key` as a string, if it is one.
    #[cfg(not(feature = "mapping-functions"))]
    pub fn config_str(key: &str) -> Option<String> {
        match config(key)? {
            serde_json::Value::String(s) => Some(s),
            _ => None,
        }
    }

    /// The secret `name` (declared in the manifest and granted by the operator).
    #[cfg(not(feature = "mapping-functions"))]
    pub fn secret(name: &str) -> Result<String, crate::PluginError> {
        crate::bindings::switchyard::plugin::secrets::get(name)
    }

    /// Milliseconds since the Unix epoch.
    #[cfg(not(feature = "mapping-functions"))]
    pub fn now_unix_ms() -> u64 {
        crate::bindings::switchyard::plugin::clock::now_unix_ms()
    }

    /// Sends an HTTP request through the host (allowlisted).
    #[cfg(any(feature = "full-connector", feature = "enricher"))]
    pub fn send(request: &crate::HttpRequest) -> Result<crate::HttpResponse, crate::PluginError> {
        crate::bindings::switchyard::plugin::http::send(request)
    }

    /// A GET request with no headers.
    #[cfg(any(feature = "full-connector", feature = "enricher"))]
    pub fn get(url: &str) -> Result<crate::HttpResponse, crate::PluginError> {
        send(&crate::HttpRequest {
            method: "GET".into(),
            url: url.into(),
            headers: Vec::new(),
            body: Vec::new(),
        })
    }
}

/// Case-insensitive header lookup.
#[cfg(any(
    feature = "mapping-functions",
    feature = "request-codec",
    feature = "full-connector",
    feature = "webhook-verifier",
    feature = "enricher"
))]
pub fn header<'a>(headers: &'a [Header], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|h| h.name.eq_ignore_ascii_case(name))
        .map(|h| h.value.as_str())
}
