//! Attribution specs: how conversions, touchpoints, treatment assignment and credit models are
//! declared for a tenant. (Owned by the attribution module; see `crate::attribution`.)

use super::common::SpecVersion;
use indexmap::IndexMap;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// An attribution spec.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AttributionSpec {
    /// Spec format version; must be 1.
    pub spec_version: SpecVersion,
    /// The attribution rules.
    pub attribution: AttributionConfig,
}

/// Attribution rules of one tenant.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AttributionConfig {
    /// Name of this rule set.
    pub name: String,
    /// Tenant it belongs to.
    pub tenant: String,
    /// Further settings (refined by the attribution module).
    #[serde(default, flatten)]
    pub rest: IndexMap<String, Value>,
}
