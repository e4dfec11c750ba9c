//! Plugin manifests (`plugin.toml`): what a WebAssembly plugin is, which WIT world it
//! implements, what it asks to be allowed to do, and its limits.

use super::common::SpecVersion;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A plugin manifest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PluginManifest {
    /// Spec format version; must be 1.
    pub spec_version: SpecVersion,
    /// The plugin.
    pub plugin: PluginInfo,
}

/// Identity, contract, capabilities and limits of a plugin.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PluginInfo {
    /// Unique name (lowercase letters, digits, `-` and `_`). Required.
    pub name: String,
    /// Plugin version (semver). Required.
    pub version: String,
    /// The WIT world the plugin implements. Required.
    pub world: PluginWorld,
    /// Version of the `switchyard:plugin` WIT package the plugin was built against. Default: "0.1.0".
    #[serde(default = "default_wit_version")]
    pub wit_version: String,
    /// Path of the WebAssembly component, relative to the manifest. Default: `<name>.wasm` with `-`
    /// replaced by `_`.
    #[serde(default)]
    pub wasm: Option<String>,
    /// Lowercase hex sha256 of the wasm file. Required to load: the host refuses a manifest
    /// without it and a file that does not match, and operators grant capabilities to this
    /// digest (`switchyard plugin pin plugin.toml` writes it).
    #[serde(default)]
    pub sha256: Option<String>,
    /// What the plugin asks to be allowed to do. Default: nothing beyond logging and the clock.
    #[serde(default)]
    pub capabilities: PluginCapabilities,
    /// Per-call limits the plugin asks for, capped by the operator's configuration.
    /// Default: the host defaults (see each field).
    #[serde(default)]
    pub limits: PluginLimits,
    /// One-line description. Default: none.
    #[serde(default)]
    pub description: Option<String>,
}

fn default_wit_version() -> String {
    "0.1.0".into()
}

impl PluginInfo {
    /// The wasm path as written (or the default derived from the name).
    pub fn wasm_path(&self) -> String {
        self.wasm
            .clone()
            .unwrap_or_else(|| format!("{}.wasm", self.name.replace('-', "_")))
    }
}

/// The WIT worlds of `switchyard:plugin`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum PluginWorld {
    /// Mapping functions callable by name from expressions and templates (exports `mapping`).
    MappingFunctions,
    /// Request signer and response decoder for the connector runtime (exports `signer`, `decoder`).
    RequestCodec,
    /// A whole connector (exports `connector`).
    FullConnector,
    /// A webhook verifier (exports `webhook`).
    WebhookVerifier,
    /// An enrichment step (exports `enrichment`).
    Enricher,
}

impl PluginWorld {
    /// Every world.
    pub const ALL: [PluginWorld; 5] = [
        PluginWorld::MappingFunctions,
        PluginWorld::RequestCodec,
        PluginWorld::FullConnector,
        PluginWorld::WebhookVerifier,
        PluginWorld::Enricher,
    ];

    /// The WIT name of the world.
    pub fn as_str(self) -> &'static str {
        match self {
            PluginWorld::MappingFunctions => "mapping-functions",
            PluginWorld::RequestCodec => "request-codec",
            PluginWorld::FullConnector => "full-connector",
            PluginWorld::WebhookVerifier => "webhook-verifier",
            PluginWorld::Enricher => "enricher",
        }
    }

    /// Parses a WIT world name.
    pub fn parse(s: &str) -> Option<PluginWorld> {
        Self::ALL.into_iter().find(|w| w.as_str() == s)
    }

    /// The interfaces (of `switchyard:plugin`) a plugin of this world exports.
    pub fn exports(self) -> &'static [&'static str] {
        match self {
            PluginWorld::MappingFunctions => &["mapping"],
            PluginWorld::RequestCodec => &["signer", "decoder"],
            PluginWorld::FullConnector => &["connector"],
            PluginWorld::WebhookVerifier => &["webhook"],
            PluginWorld::Enricher => &["enrichment"],
        }
    }

    /// The host interfaces (of `switchyard:plugin`) this world may import.
    pub fn imports(self) -> &'static [&'static str] {
        match self {
            PluginWorld::MappingFunctions => &["types", "log"],
            PluginWorld::RequestCodec | PluginWorld::WebhookVerifier => {
                &["types", "log", "config", "secrets", "clock"]
            }
            PluginWorld::FullConnector | PluginWorld::Enricher => {
                &["types", "log", "config", "secrets", "clock", "http"]
            }
        }
    }
}

impl std::fmt::Display for PluginWorld {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Capabilities a plugin requests; the operator grants some of them and the host links only the
/// intersection.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PluginCapabilities {
    /// Hosts the plugin may call through the host's `http` interface, as `scheme://host[:port]`
    /// (`*.example.com` matches subdomains, not the apex; no paths; a missing port means the
    /// scheme's default). Default: none (no HTTP).
    #[serde(default)]
    pub allowed_hosts: Vec<String>,
    /// Names of the secrets the plugin may read. Default: none.
    #[serde(default)]
    pub secrets: Vec<String>,
    /// Configuration keys the plugin may read. Default: none.
    #[serde(default)]
    pub config: Vec<String>,
}

/// Per-call limits. Every field defaults to the host's default and is capped by the operator.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PluginLimits {
    /// Linear memory in MiB. Default: 64.
    #[serde(default)]
    pub memory_mib: Option<u64>,
    /// Guest CPU time in milliseconds (counted in epoch ticks). Default: 200.
    #[serde(default)]
    pub cpu_ms: Option<u64>,
    /// Wall time of one call in milliseconds, host calls included. Default: 10000.
    #[serde(default)]
    pub wall_ms: Option<u64>,
    /// Bytes the plugin may pass into one host call. Default: 4194304 (4 MiB).
    #[serde(default)]
    pub hostcall_bytes: Option<u64>,
    /// Bytes of output (JSON text, request, page) one call may return. Default: 8388608 (8 MiB).
    #[serde(default)]
    pub output_bytes: Option<u64>,
    /// HTTP requests (redirect hops included) per call. Default: 32.
    #[serde(default)]
    pub http_requests: Option<u32>,
    /// Bytes of one HTTP response body. Default: 10485760 (10 MiB).
    #[serde(default)]
    pub http_response_bytes: Option<u64>,
}
