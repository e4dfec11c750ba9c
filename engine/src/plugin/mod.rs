//! WebAssembly plugin host: loads `plugin.toml` manifests and their components, links only the
//! granted capabilities, and runs each call in a fresh, limited `Store` (wasmtime component
//! model, pooling allocator, epoch interruption).
//!
//! ```no_run
//! # async fn demo() -> Result<(), switchyard::plugin::PluginError> {
//! use switchyard::plugin::{Grants, HostConfig, PluginHost};
//! let host = PluginHost::new(HostConfig::default())?;
//! // The manifest pins the wasm's sha256; a manifest without a pin is refused.
//! let phone = host.load("plugins/mapping-basics/plugin.toml".as_ref(), Grants::default())?;
//! let e164 = phone.call_function("phone_e164", &["(415) 555-2671".into(), "US".into()]).await?;
//! assert_eq!(e164, "+14155552671");
//! # Ok(()) }
//! ```

pub mod allow;
mod bindings;
mod cache;
mod call;
mod error;
pub mod exec;
mod fsread;
pub mod grants;
mod imports;
mod inspect;
mod load;
mod runtime;
mod set;

pub use allow::AllowedHost;
pub use cache::{CACHE_ENV, default_dir as default_cache_dir};
pub use call::{CallOutput, Page, PluginBatch, PreparedArgs, Verdict};
pub use error::{PluginError, PluginErrorKind};
pub use fsread::read_regular_file;
pub use grants::OperatorConfig;
pub use inspect::Inspection;
pub use load::inspect_component;
pub use load::{PluginHandle, PluginStatus, WatchGuard, read_manifest};
pub use runtime::{EngineConfig, PluginHost};
pub use set::{BATCH_CALLS, PluginEnv, PluginSession, PluginSet, PluginSetError};

use indexmap::IndexMap;
use serde_json::Value;
use std::sync::Arc;
use std::time::Duration;

/// The WIT package version this host implements.
pub const WIT_VERSION: &str = "0.1.0";
/// The WIT package name.
pub const WIT_PACKAGE: &str = "switchyard:plugin";

pub use crate::secrets::Secret;

/// What the operator grants one plugin (for one tenant). The host links only the intersection of
/// these grants and what the manifest requests.
#[derive(Debug, Clone, Default)]
pub struct Grants {
    /// Allowed outbound hosts (`scheme://host[:port]`, `*.` wildcards). A URL must match a rule
    /// of the manifest and a rule here.
    pub allowed_hosts: Vec<String>,
    /// Secret values by name.
    pub secrets: IndexMap<String, Secret>,
    /// Configuration values by key.
    pub config: IndexMap<String, Value>,
    /// Let HTTP reach private, loopback and link-local addresses (on-premise CRMs, tests).
    /// Default: false.
    pub allow_private_networks: bool,
}

impl Grants {
    /// Adds `other` to these grants: hosts appended (no duplicates), secrets and config set
    /// (a later value for the same key wins), private networks allowed if either allows them.
    pub fn merge(&mut self, other: Grants) {
        for h in other.allowed_hosts {
            if !self.allowed_hosts.contains(&h) {
                self.allowed_hosts.push(h);
            }
        }
        self.secrets.extend(other.secrets);
        self.config.extend(other.config);
        self.allow_private_networks |= other.allow_private_networks;
    }
}

/// Looks up the grants of the wasm whose sha256 (lowercase hex) it is given.
pub type GrantLookup = Arc<dyn Fn(&str) -> Result<Grants, String> + Send + Sync>;

/// Where a loaded plugin's grants come from. They are looked up at every (re)load *after* the
/// wasm's bytes are read and checked against the manifest's `sha256` pin, so grants given by
/// digest apply only to the very bytes the operator approved, whatever name the manifest claims.
#[derive(Clone)]
pub enum GrantSource {
    /// These grants, for whatever (pinned) wasm the manifest names: for embedders that decide
    /// themselves what a plugin they load may do (`switchyard plugin test` passes its flags).
    Fixed(Grants),
    /// Grants chosen by the loaded wasm's sha256 (lowercase hex): the operator's grants file,
    /// through [`PluginEnv::grants`].
    BySha256(GrantLookup),
}

impl std::fmt::Debug for GrantSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            GrantSource::Fixed(g) => f.debug_tuple("Fixed").field(g).finish(),
            GrantSource::BySha256(_) => f.write_str("BySha256(..)"),
        }
    }
}

impl From<Grants> for GrantSource {
    fn from(g: Grants) -> GrantSource {
        GrantSource::Fixed(g)
    }
}

impl GrantSource {
    /// The grants for the wasm whose sha256 is `sha256`.
    pub fn for_sha256(&self, sha256: &str) -> Result<Grants, String> {
        match self {
            GrantSource::Fixed(g) => Ok(g.clone()),
            GrantSource::BySha256(f) => f(sha256),
        }
    }
}

/// Effective per-call limits (the manifest's request capped by the operator's [`Limits`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Linear memory in bytes.
    pub memory_bytes: u64,
    /// Guest CPU time.
    pub cpu: Duration,
    /// Wall time of one call, host calls included.
    pub wall: Duration,
    /// Bytes the plugin may pass into one host call.
    pub hostcall_bytes: u64,
    /// Bytes of output one call may return.
    pub output_bytes: u64,
    /// HTTP requests per call (redirect hops included).
    pub http_requests: u32,
    /// Bytes of one HTTP response body.
    pub http_response_bytes: u64,
}

impl Limits {
    /// The host defaults (used when the manifest does not ask for something else).
    pub const DEFAULT: Limits = Limits {
        memory_bytes: 64 << 20,
        cpu: Duration::from_millis(200),
        wall: Duration::from_secs(10),
        hostcall_bytes: 4 << 20,
        output_bytes: 8 << 20,
        http_requests: 32,
        http_response_bytes: 10 << 20,
    };

    /// The default operator caps.
    pub const DEFAULT_CAPS: Limits = Limits {
        memory_bytes: 512 << 20,
        cpu: Duration::from_secs(5),
        wall: Duration::from_secs(60),
        hostcall_bytes: 32 << 20,
        output_bytes: 64 << 20,
        http_requests: 256,
        http_response_bytes: 64 << 20,
    };

    /// The manifest's limits over the defaults, each capped by `caps`.
    pub fn effective(requested: &crate::spec::plugin::PluginLimits, caps: &Limits) -> Limits {
        let d = Limits::DEFAULT;
        let ms = |v: Option<u64>, def: Duration, cap: Duration| {
            v.map(Duration::from_millis).unwrap_or(def).min(cap)
        };
        Limits {
            memory_bytes: requested
                .memory_mib
                .map(|m| m.saturating_mul(1 << 20))
                .unwrap_or(d.memory_bytes)
                .min(caps.memory_bytes),
            cpu: ms(requested.cpu_ms, d.cpu, caps.cpu),
            wall: ms(requested.wall_ms, d.wall, caps.wall),
            hostcall_bytes: requested
                .hostcall_bytes
                .unwrap_or(d.hostcall_bytes)
                .min(caps.hostcall_bytes),
            output_bytes: requested
                .output_bytes
                .unwrap_or(d.output_bytes)
                .min(caps.output_bytes),
            http_requests: requested
                .http_requests
                .unwrap_or(d.http_requests)
                .min(caps.http_requests),
            http_response_bytes: requested
                .http_response_bytes
                .unwrap_or(d.http_response_bytes)
                .min(caps.http_response_bytes),
        }
    }
}

/// Operator configuration of the plugin host.
#[derive(Debug, Clone)]
pub struct HostConfig {
    /// Caps on every plugin's limits. Default: [`Limits::DEFAULT_CAPS`].
    pub caps: Limits,
    /// Folder for compiled components (created with mode 0700, entries authenticated with a
    /// host-local key; see [`default_cache_dir`] for the per-user default the operator
    /// configuration uses). Default: none (compile at load).
    pub cache_dir: Option<std::path::PathBuf>,
    /// Largest accepted wasm file; a larger one is refused without reading past the limit.
    /// Default: 32 MiB.
    pub max_wasm_bytes: u64,
    /// Largest accepted manifest (`plugin.toml`). Default: 1 MiB.
    pub max_manifest_bytes: u64,
}

impl HostConfig {
    /// Default of [`HostConfig::max_wasm_bytes`].
    pub const MAX_WASM_BYTES: u64 = 32 << 20;
    /// Default of [`HostConfig::max_manifest_bytes`] (also the grants file's limit).
    pub const MAX_MANIFEST_BYTES: u64 = 1 << 20;
}

impl Default for HostConfig {
    fn default() -> Self {
        HostConfig {
            caps: Limits::DEFAULT_CAPS,
            cache_dir: None,
            max_wasm_bytes: Self::MAX_WASM_BYTES,
            max_manifest_bytes: Self::MAX_MANIFEST_BYTES,
        }
    }
}

/// One header of an HTTP request or response handed to or returned by a plugin.
pub type Header = (String, String);

/// A buffered HTTP request (for [`PluginHandle::sign`]).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct HttpRequest {
    /// Method, e.g. `GET`.
    pub method: String,
    /// Absolute URL.
    pub url: String,
    /// Headers in order.
    pub headers: Vec<Header>,
    /// Body bytes.
    pub body: Vec<u8>,
}

/// One log line a plugin emitted during a call (kept for `switchyard plugin test`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogLine {
    /// `trace`, `debug`, `info`, `warn` or `error`.
    pub level: &'static str,
    /// The message (control characters escaped, truncated to 1 KiB).
    pub message: String,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::plugin::PluginLimits;

    #[test]
    fn manifest_limits_are_capped_by_the_operator() {
        let asked = PluginLimits {
            memory_mib: Some(4096),
            cpu_ms: Some(50),
            ..PluginLimits::default()
        };
        let caps = Limits {
            memory_bytes: 128 << 20,
            ..Limits::DEFAULT_CAPS
        };
        let l = Limits::effective(&asked, &caps);
        assert_eq!(l.memory_bytes, 128 << 20);
        assert_eq!(l.cpu, Duration::from_millis(50));
        assert_eq!(l.wall, Limits::DEFAULT.wall);
    }

    #[test]
    fn secrets_are_redacted() {
        let s = Secret::new("hunter2");
        assert_eq!(format!("{s:?} {s}"), "[redacted] [redacted]");
        let g = Grants {
            secrets: [("k".to_string(), s)].into_iter().collect(),
            ..Grants::default()
        };
        assert!(!format!("{g:?}").contains("hunter2"));
    }
}
