//! Mapping specs: one per route (tenant, source → connector). The envelope names the tenant,
//! the connector, the optional source and lookup tables; `crm_config` holds a tenant's CRM
//! configuration exactly as seed 003 writes it.

use super::common::{FieldType, SpecVersion};
use indexmap::IndexMap;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// A mapping spec (`mapping-specs/<tenant>/<route>.json|toml`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MappingSpec {
    /// Spec format version; must be 1.
    pub spec_version: SpecVersion,
    /// Tenant this route belongs to.
    pub tenant: String,
    /// Name of the connector spec records are delivered through (e.g. `hubspot`).
    pub connector: String,
    /// Name of the inbound source (a connector spec of kind `source`, e.g. `callrail`). When its
    /// spec declares a field catalog, bare strings that are not fields of it are literals.
    /// Default: none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// The tenant's secrets of the inbound source (e.g. CallRail's `webhook_signing_key` for
    /// webhook verification): name → `secret:`/`env:`/`file:` reference. Default: none.
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    pub source_secrets: IndexMap<String, String>,
    /// What this route is for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Named lookup tables used by expressions as `table[key]`. Default: none.
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    pub lookups: IndexMap<String, IndexMap<String, Value>>,
    /// WebAssembly plugins whose mapping functions expressions call as `alias.function(…)`:
    /// alias → `plugin.toml` manifest path, relative to this file. What a plugin may reach is
    /// granted by the operator, not here. Default: none.
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    pub plugins: IndexMap<String, String>,
    /// The tenant's CRM configuration (seed 003 `crm_config`), as written.
    pub crm_config: CrmConfig,
    /// Examples that are tests: an input record and what the mapping must make of it.
    /// `switchyard test` runs them; `validate` checks that they can run. Never used when
    /// routing records. Default: none.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tests: Vec<SpecTest>,
}

/// One test of a mapping spec: a record, the clock, and the expected outcome.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SpecTest {
    /// What the test shows (unique within the spec).
    pub name: String,
    /// The input record, as the source sends it.
    pub input: serde_json::Map<String, Value>,
    /// The clock of `today()` / `now()` (RFC 3339), so that date logic is repeatable.
    /// Default: 2024-01-01T00:00:00Z.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub now: Option<String>,
    /// What the mapping must make of `input`.
    pub expect: TestExpectation,
}

/// The expected outcome of a [`SpecTest`]: the mapped objects (and, optionally, fired
/// triggers and field notes), or a rejection.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TestExpectation {
    /// Object name → fields. Every object the mapping makes must be listed, with exactly these
    /// fields and values (unless `partial`). Default: not checked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub objects: Option<IndexMap<String, serde_json::Map<String, Value>>>,
    /// Compare only the objects and fields listed in `objects`; others may be present.
    /// Default: false (exact).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub partial: bool,
    /// Names of the workflow triggers that must fire, in order (exactly these). Default: not
    /// checked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub triggers: Option<Vec<String>>,
    /// `object.field` names the record's output must note as resolving to nothing (exactly
    /// these). Default: not checked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notes: Option<Vec<String>>,
    /// The record must be rejected. Default: it must map.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rejected: Option<ExpectedRejection>,
}

/// An expected rejection.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ExpectedRejection {
    /// The `object.field` at fault. Default: not checked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// Text the reason must contain. Default: not checked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason_contains: Option<String>,
}

/// A tenant's CRM configuration, accepting every key of seed 003's `crm_config` blocks.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CrmConfig {
    /// CRM flavour (`hubspot`, `salesforce`, `pipedrive`, `custom`, …); must agree with the
    /// envelope's connector (`custom` goes with `custom-rest`).
    #[serde(rename = "type")]
    pub crm_type: String,

    /// HubSpot / Pipedrive API token (a `secret:`/`env:`/`file:` reference).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_token: Option<String>,
    /// HubSpot portal (hub) id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub portal_id: Option<Value>,
    /// Pipeline deals are created in (HubSpot id string, Pipedrive number).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pipeline_id: Option<Value>,
    /// HubSpot deal stage of new deals.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deal_stage: Option<String>,
    /// HubSpot contact owner (email).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contact_owner: Option<String>,
    /// HubSpot: associate contacts with companies by email domain. Default: false.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub company_domain_mapping: Option<bool>,
    /// Salesforce instance URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance_url: Option<String>,
    /// Salesforce connected-app consumer key (a secret reference).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consumer_key: Option<String>,
    /// Salesforce JWT private key (a secret reference).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub private_key: Option<String>,
    /// Salesforce API user name (a secret reference).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// API version, e.g. `v54.0`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_version: Option<String>,
    /// Pipedrive company domain, e.g. `company-name.pipedrive.com`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub company_domain: Option<String>,
    /// Pipedrive stage id of new deals.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stage_id: Option<Value>,
    /// Pipedrive owner (user id) of new records.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_owner: Option<Value>,
    /// Custom REST API base URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_base_url: Option<String>,
    /// Custom REST API authentication.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authentication: Option<CustomAuth>,
    /// Further connector settings by name (e.g. `subdomain`, `base_url` to point at an emulator).
    /// String values may be secret references. Default: none.
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    pub settings: IndexMap<String, Value>,

    /// Object that `field_mappings`, `custom_properties` and `custom_fields` target.
    /// Default: the connector's `default_object` (HubSpot: `contact`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_object: Option<String>,
    /// Duplicate detection before create.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duplicate_detection: Option<DuplicateDetection>,
    /// Target field → source, for the default object.
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    pub field_mappings: IndexMap<String, FieldSource>,
    /// Typed custom properties of the default object (HubSpot).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub custom_properties: Vec<CustomProperty>,
    /// Custom field → source, for the default object (Pipedrive).
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    pub custom_fields: IndexMap<String, FieldSource>,
    /// Object → (target field → source) (Salesforce `lead`, `task`).
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    pub object_mappings: IndexMap<String, IndexMap<String, FieldSource>>,
    /// Object → JSON payload template (custom REST).
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    pub payload_templates: IndexMap<String, Value>,
    /// Named endpoints of a custom REST API.
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    pub endpoints: IndexMap<String, Endpoint>,
    /// Named triggers: a condition and the actions it fires (HubSpot).
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    pub workflow_triggers: IndexMap<String, WorkflowTrigger>,
    /// Named rules: a condition and the actions it fires (Salesforce).
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    pub workflow_rules: IndexMap<String, WorkflowTrigger>,
    /// Deal creation settings (Pipedrive).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deal_settings: Option<DealSettings>,
}

impl CrmConfig {
    /// The object `field_mappings` and duplicate detection target: `default_object`, else the
    /// connector's (`connector_default`), else `contact`.
    pub fn object_or_default(&self, connector_default: Option<&String>) -> String {
        self.default_object
            .as_ref()
            .or(connector_default)
            .cloned()
            .unwrap_or_else(|| "contact".into())
    }
}

/// Authentication of a custom REST API. Endpoint templates read these values as `auth.*`
/// (`{{auth.token}}`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CustomAuth {
    /// How requests are authenticated.
    #[serde(rename = "type")]
    pub auth_type: CustomAuthType,
    /// The token of `bearer`, the key of `api_key` (a secret reference).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
    /// Header that carries the key of `api_key`. Default: `X-API-Key`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub header: Option<String>,
    /// User name of `basic` (may be a secret reference).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// Password of `basic` (a secret reference). Default: empty.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
    /// Token endpoint of `oauth2_client_credentials` (absolute, or relative to
    /// `api_base_url`'s origin).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_url: Option<String>,
    /// Client id of `oauth2_client_credentials` (may be a secret reference).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    /// Client secret of `oauth2_client_credentials` (a secret reference).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_secret: Option<String>,
    /// Scope requested by `oauth2_client_credentials`. Default: none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
}

/// Authentication schemes of a custom REST API.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum CustomAuthType {
    /// `Authorization: Bearer <token>`.
    Bearer,
    /// `<header>: <token>`.
    ApiKey,
    /// HTTP Basic with `username` and `password`.
    Basic,
    /// OAuth 2.0 client credentials: a token from `token_url`, sent as a bearer token.
    Oauth2ClientCredentials,
}

/// Where a target field's value comes from.
///
/// A bare string is a source path (dotted, or JSONPath when it starts with `$`), a literal when
/// it names no source field, or `computed:<formula>` (`computed:today+1`); in a conditional's
/// `then` / `default` a bare string is always a literal unless it starts with `$` or
/// `computed:`. Numbers, booleans and null are literals. The object forms say exactly what is
/// meant.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum FieldSource {
    /// Path, literal or `computed:` shorthand.
    Bare(String),
    /// An explicit form.
    Explicit(ExplicitSource),
    /// A number, boolean or null literal.
    Scalar(ScalarLiteral),
}

/// A non-string literal.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum ScalarLiteral {
    /// A boolean.
    Bool(bool),
    /// A number.
    Number(serde_json::Number),
}

/// Explicit field sources.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum ExplicitSource {
    /// The first condition that holds gives the value; a condition over a missing field is false.
    Conditional {
        /// `{"if": …, "then": …}` entries, optionally ending with `{"default": …}`.
        conditions: Vec<Condition>,
    },
    /// An expression (evalexpr, plus the seed's JS-style syntax).
    Computed {
        /// The expression, e.g. `project_value_map[ai_analysis.project_type] || 20000`.
        formula: String,
    },
    /// A fixed value.
    Literal {
        /// The value.
        value: Value,
    },
    /// A source path, never a literal.
    Path {
        /// Dotted path or JSONPath.
        path: String,
        /// Value when the path is missing. Default: the field is omitted.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        default: Option<Value>,
    },
    /// A handlebars template rendering a string.
    Template {
        /// The template, e.g. `{{customer_name}} - {{ai_analysis.project_type}}`.
        template: String,
    },
}

/// One branch of a conditional.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum Condition {
    /// `{"if": <expression>, "then": <source>}`.
    When(WhenBranch),
    /// `{"default": <source>}`: the value when no condition holds.
    Default(DefaultBranch),
}

/// `{"if": …, "then": …}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WhenBranch {
    /// Condition expression.
    #[serde(rename = "if")]
    pub condition: String,
    /// Value when it holds. A bare string is a literal (`"then": "High"`), with or without a
    /// source catalog; read a field with `$.path` or `{"type": "path", "path": …}`; the other
    /// forms are a field mapping's.
    pub then: Box<FieldSource>,
}

/// `{"default": …}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DefaultBranch {
    /// Value when no condition holds; read like `then` (a bare string is a literal).
    pub default: Box<FieldSource>,
}

/// A typed custom property.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CustomProperty {
    /// Target field name.
    pub name: String,
    /// Source of the value.
    pub value: FieldSource,
    /// Type the value must take. Default: the catalog's type, else `string`.
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub property_type: Option<FieldType>,
    /// Allowed values of an enumeration. Default: the catalog's.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub options: Vec<String>,
}

/// Duplicate detection settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DuplicateDetection {
    /// Whether to look for an existing record before creating. Default: true.
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Target fields to match on, in order (email is trimmed and case-folded, phone is E.164).
    pub match_fields: Vec<String>,
    /// Matching strategy. Default: `exact`.
    #[serde(default)]
    pub match_strategy: MatchStrategy,
    /// What to do with a match. Default: `update_existing`.
    #[serde(default)]
    pub action: DuplicateAction,
}

fn yes() -> bool {
    true
}

/// Matching strategies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum MatchStrategy {
    /// Equal after normalisation.
    #[default]
    Exact,
}

/// What to do when a duplicate is found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum DuplicateAction {
    /// Update the existing record.
    #[default]
    UpdateExisting,
    /// Leave it; report the record as skipped.
    Skip,
    /// Create anyway.
    Create,
}

/// A named endpoint of a custom REST API, named `<kind>_<object>` (`create_contact`,
/// `update_contact`, `upsert_contact`, `get_contact`, `delete_contact`): it is the operation of
/// that kind for that object, whose payload (`payload_templates.<object>`) is its body.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Endpoint {
    /// HTTP method.
    pub method: super::connector::Method,
    /// Path relative to `api_base_url` (a template over `id`, `payload`, `auth`, e.g.
    /// `/people/{{id}}`).
    pub path: String,
    /// Headers (templates; `{{auth.token}}` and the other `authentication` values are filled
    /// when the request is built). A header the authentication sets (e.g. `Authorization`)
    /// is sent once, as the authentication makes it. Default: none.
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    pub headers: IndexMap<String, String>,
}

/// A workflow trigger or rule.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WorkflowTrigger {
    /// Condition expression, evaluated per record.
    pub condition: String,
    /// Actions to run when it holds (names the connector declares in `actions`).
    pub actions: Vec<String>,
}

/// Deal settings (Pipedrive).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DealSettings {
    /// Deal title template.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title_template: Option<String>,
    /// Currency code of the deal value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub currency: Option<String>,
    /// Deal value by `ai_analysis.project_type`, with a `default`.
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    pub value_estimation: IndexMap<String, Value>,
    /// Path of the field that selects the value estimate. Default: `ai_analysis.project_type`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value_key: Option<String>,
}
