//! Plugin manifests (`plugin.toml`): what a WebAssembly plugin is, which WIT world it
//! implements, what it asks to be allowed to do, and its limits.

use super::common::SpecVersion;
use indexmap::IndexMap;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// A plugin manifest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PluginManifest {
    /// Spec format version; must be 1.
    pub spec_version: SpecVersion,
    /// The plugin.
    pub plugin: PluginInfo,
}

/// Identity of a plugin.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PluginInfo {
    /// Unique name.
    pub name: String,
    /// Plugin version (semver).
    pub version: String,
    /// Further settings (refined by the plugin host).
    #[serde(default, flatten)]
    pub rest: IndexMap<String, Value>,
}
