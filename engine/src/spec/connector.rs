//! Connector specs: one file per external system (CRM, payment provider, support desk, chat,
//! or inbound source). Everything the runtime needs to talk to the system: auth, rate limits,
//! retries, the field catalog of each object, and the HTTP operations.

use super::common::{FieldType, SpecVersion};
use indexmap::IndexMap;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// A connector spec (`connector-specs/<name>.toml`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ConnectorSpec {
    /// Spec format version; must be 1.
    pub spec_version: SpecVersion,
    /// Identity and base URL of the system.
    pub connector: ConnectorInfo,
    /// Non-secret settings a tenant provides (e.g. `instance_url`, `subdomain`). Default: none.
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    pub config: IndexMap<String, ConfigParam>,
    /// Secrets a tenant provides, by name (e.g. `access_token`). Templates read them as
    /// `{{secrets.<name>}}`; they are filled only when a request is built. Default: none.
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    pub secrets: IndexMap<String, SecretParam>,
    /// How requests are authenticated. Default: no authentication.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth: Option<Auth>,
    /// Other authentication flows a tenant may choose instead of `auth` with the `auth_flow`
    /// setting of its mapping's `crm_config.settings` (Salesforce: `password` beside the JWT
    /// bearer flow), by name. Default: none.
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    pub auth_flows: IndexMap<String, Auth>,
    /// OAuth onboarding (authorization-code grant): where `switchyard serve` sends a tenant to
    /// consent, and which of `[auth_flows]` then runs on the tokens it obtains. Default: none
    /// (tenants bring their own tokens).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oauth: Option<OauthApp>,
    /// Client-side rate limit (token bucket per tenant and connector). Default: unlimited.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_limit: Option<RateLimit>,
    /// Retry policy for throttling, 5xx, timeouts and dropped connections. Default: see [`Retry`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry: Option<Retry>,
    /// Where error details live in the vendor's error bodies. Default: the whole body.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub errors: Option<ErrorShape>,
    /// Field catalogs, one per object (`contact`, `deal`, `lead`, `ticket`, …). Default: none.
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    pub objects: IndexMap<String, ObjectSpec>,
    /// HTTP operations by name (`create_contact`, `search_contact`, …). Default: none.
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    pub operations: IndexMap<String, Operation>,
    /// Workflow actions (`send_notification`, `create_task`, …) this connector can run, by name.
    /// Default: none.
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    pub actions: IndexMap<String, ActionSpec>,
    /// Values looked up through an operation once per session and cached, by name; templates
    /// read them as `{{lookups.<name>}}` (HubSpot: the owner id of the tenant's owner e-mail).
    /// Default: none.
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    pub lookups: IndexMap<String, Lookup>,
    /// Objects a delivered record brings along, by object, delivered after the mapped objects
    /// (HubSpot: a deal in the tenant's pipeline, the company of the contact's e-mail domain).
    /// Default: none.
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    pub related: IndexMap<String, Related>,
    /// Associations made once both of their objects of a record are delivered, by name.
    /// Default: none.
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    pub associations: IndexMap<String, Association>,
    /// For inbound sources (e.g. CallRail): the record object and webhook verification.
    /// Default: not an inbound source.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inbound: Option<Inbound>,
    /// Plugins this connector delegates to, by name (each a `plugin.toml` manifest path,
    /// relative to this file). Default: none.
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    pub plugins: IndexMap<String, String>,
}

/// Identity of a connector.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ConnectorInfo {
    /// Unique name, referenced by mapping specs' `connector` (lowercase, `a-z0-9_-`).
    pub name: String,
    /// Human-readable name. Default: the name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    /// What kind of system this is.
    pub kind: ConnectorKind,
    /// Base URL of the API; a template (e.g. `{{config.instance_url}}`), overridable per tenant
    /// with the `base_url` setting (used to point at local emulators).
    pub base_url: String,
    /// API version the operations follow (e.g. `v3`, `v62.0`, `2025-04`). Default: none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_version: Option<String>,
    /// Link to the vendor's API documentation. Default: none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub docs_url: Option<String>,
    /// Object that a mapping's `field_mappings` and `custom_properties` target when it names none.
    /// Default: `contact`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_object: Option<String>,
    /// Operation used by `switchyard connectors test` to check credentials. Default: none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub test_operation: Option<String>,
}

/// What kind of system a connector talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ConnectorKind {
    /// A CRM (contacts, companies, deals, leads).
    Crm,
    /// A marketing automation system.
    Marketing,
    /// A payment provider.
    Payment,
    /// A help desk (tickets).
    Support,
    /// A live chat system.
    Chat,
    /// A project/work management board.
    Board,
    /// An inbound event source (webhooks), e.g. a call tracker.
    Source,
    /// Any other REST API.
    Custom,
}

/// OAuth onboarding of a connector (the authorization-code grant).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct OauthApp {
    /// The vendor's authorization (consent) page, absolute (e.g.
    /// `https://app.hubspot.com/oauth/authorize`). With a base URL override (an emulator) its
    /// path is taken at the override's origin.
    pub authorize_url: String,
    /// The `[auth_flows]` entry (of type `oauth2_refresh`) that runs on the onboarded tokens:
    /// its token URL and client credentials also serve the code exchange, and its refresh
    /// token is the stored one.
    pub flow: String,
    /// Scopes asked for. Default: none.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub scopes: Vec<String>,
    /// How scopes are joined in the `scope` parameter. Default: a space.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope_separator: Option<String>,
    /// Further query parameters of the authorization request (templates). Default: none.
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    pub authorize_params: IndexMap<String, String>,
    /// The request that revokes a refresh token on disconnect (path template, relative to the
    /// base URL or absolute; it reads `{{refresh_token}}`). Default: tokens are only forgotten.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoke: Option<OauthRevoke>,
}

/// How a connector revokes a refresh token.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct OauthRevoke {
    /// HTTP method. Default: `POST`.
    #[serde(default)]
    pub method: Method,
    /// Path (template reading `{{refresh_token}}`), e.g.
    /// `/oauth/v1/refresh-tokens/{{refresh_token}}`.
    pub path: String,
    /// Form fields sent (templates; e.g. `token = "{{refresh_token}}"`). Default: none.
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    pub form: IndexMap<String, String>,
}

/// A non-secret tenant setting.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ConfigParam {
    /// What it is for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Whether a tenant must set it. Default: false.
    #[serde(default)]
    pub required: bool,
    /// Value used when the tenant sets none. Default: none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<Value>,
}

/// A secret a tenant provides (through `secret:`, `env:` or `file:` references).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SecretParam {
    /// What it is for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Whether a tenant must provide it. Default: true.
    #[serde(default = "yes")]
    pub required: bool,
}

fn yes() -> bool {
    true
}

/// Request authentication. Every string is a template over `secrets` and `config`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum Auth {
    /// No authentication.
    None,
    /// `Authorization: <scheme> <token>`.
    Bearer {
        /// The token, e.g. `{{secrets.access_token}}`.
        token: String,
        /// Scheme word. Default: `Bearer`; empty sends the raw token (monday.com).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        scheme: Option<String>,
    },
    /// An API key in a header or query parameter.
    ApiKey {
        /// Where the key goes.
        #[serde(rename = "in")]
        location: KeyLocation,
        /// Header or parameter name (e.g. `x-api-token`, `api_token`).
        name: String,
        /// The key, e.g. `{{secrets.api_token}}`.
        value: String,
    },
    /// HTTP Basic (Freshdesk `key:X`, Zendesk `email/token:token`).
    Basic {
        /// User name template.
        username: String,
        /// Password template. Default: empty.
        #[serde(default)]
        password: String,
    },
    /// OAuth 2.0 client credentials (PayPal, Marketo identity).
    Oauth2ClientCredentials {
        /// Token endpoint (absolute, or relative to the base URL).
        token_url: String,
        /// Client id template.
        client_id: String,
        /// Client secret template.
        client_secret: String,
        /// Requested scope. Default: none.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        scope: Option<String>,
        /// How the client credentials are sent. Default: `basic`.
        #[serde(default)]
        credentials_in: CredentialsIn,
        /// HTTP method of the token request. Default: `POST`.
        #[serde(default)]
        method: Method,
        /// Seconds before expiry to refresh. Default: 60.
        #[serde(default = "refresh_ahead")]
        refresh_ahead_secs: u64,
    },
    /// OAuth 2.0 refresh-token grant (HubSpot, Zoho, Salesforce).
    Oauth2Refresh {
        /// Token endpoint.
        token_url: String,
        /// Client id template.
        client_id: String,
        /// Client secret template.
        client_secret: String,
        /// Refresh token template.
        refresh_token: String,
        /// Scheme of the Authorization header. Default: `Bearer` (Zoho: `Zoho-oauthtoken`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        scheme: Option<String>,
        /// How the client credentials are sent. Default: `body`.
        #[serde(default = "credentials_body")]
        credentials_in: CredentialsIn,
        /// Seconds before expiry to refresh. Default: 60.
        #[serde(default = "refresh_ahead")]
        refresh_ahead_secs: u64,
        /// Response field that replaces the base URL (Salesforce `instance_url`, Zoho `api_domain`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        base_url_field: Option<String>,
    },
    /// Salesforce OAuth 2.0 username-password flow.
    Oauth2Password {
        /// Token endpoint.
        token_url: String,
        /// Client id template.
        client_id: String,
        /// Client secret template.
        client_secret: String,
        /// User name template.
        username: String,
        /// Password (+ security token) template.
        password: String,
        /// Response field that replaces the base URL. Default: none.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        base_url_field: Option<String>,
    },
    /// OAuth 2.0 JWT bearer flow with an RS256-signed assertion (Salesforce).
    JwtBearer {
        /// Token endpoint.
        token_url: String,
        /// `iss` claim (consumer key) template.
        issuer: String,
        /// `sub` claim (user name) template.
        subject: String,
        /// `aud` claim.
        audience: String,
        /// PEM private key template (a secret).
        private_key: String,
        /// Assertion lifetime in seconds. Default: 180.
        #[serde(default = "jwt_lifetime")]
        lifetime_secs: u64,
        /// Response field that replaces the base URL. Default: none.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        base_url_field: Option<String>,
    },
    /// Authentication done by a plugin's request signer.
    Plugin {
        /// Name of a plugin declared in `plugins`.
        plugin: String,
    },
}

fn refresh_ahead() -> u64 {
    60
}
fn jwt_lifetime() -> u64 {
    180
}
fn credentials_body() -> CredentialsIn {
    CredentialsIn::Body
}

/// Where an API key is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum KeyLocation {
    /// A request header.
    Header,
    /// A query parameter.
    Query,
}

/// How OAuth client credentials are sent to the token endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum CredentialsIn {
    /// HTTP Basic header.
    #[default]
    Basic,
    /// Form body fields.
    Body,
    /// Query parameters (Marketo, Zoho).
    Query,
}

/// HTTP methods.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "UPPERCASE")]
pub enum Method {
    /// GET
    Get,
    /// POST
    #[default]
    Post,
    /// PUT
    Put,
    /// PATCH
    Patch,
    /// DELETE
    Delete,
}

/// A token bucket: `requests` per `per_seconds`, per tenant and connector.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RateLimit {
    /// Requests allowed per window.
    pub requests: u32,
    /// Window length in seconds.
    pub per_seconds: u32,
    /// Response headers that adjust the bucket. Default: none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub headers: Option<RateLimitHeaders>,
    /// Responses that mean "slow down", besides 429. Default: none.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub throttle_signals: Vec<ThrottleSignal>,
    /// Budgets of their own for classes of endpoints the vendor limits apart (HubSpot CRM
    /// search: 5 requests per second), by name; an operation joins one with `budget`. A
    /// request of a class takes a token from the class's bucket and one from the general
    /// bucket (vendors count every call against the general limit too), and a throttling
    /// answer to it (429, `Retry-After`, a throttle signal) pauses that class only. One
    /// bucket per tenant, connector and class, shared like the general one. Default: none.
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    pub classes: IndexMap<String, RateClass>,
}

/// The budget of one class of endpoints: `requests` per `per_seconds`, per tenant and
/// connector.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RateClass {
    /// Requests of this class allowed per window.
    pub requests: u32,
    /// Window length in seconds.
    pub per_seconds: u32,
}

/// Vendor rate-limit headers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RateLimitHeaders {
    /// Header with the remaining requests in the window. Default: none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remaining: Option<String>,
    /// Header with the window's maximum. Default: none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<String>,
    /// Header with the window length in milliseconds. Default: none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval_ms: Option<String>,
    /// Header with seconds until the window resets. Default: none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reset_secs: Option<String>,
    /// Header with `used/limit` usage (Salesforce `Sforce-Limit-Info: api-usage=18/15000`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<String>,
}

/// A response that means "slow down" although it is not a 429.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ThrottleSignal {
    /// HTTP status it comes with (e.g. 403 for Salesforce, 200 for Marketo). Default: any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    /// JSONPath into the body whose value identifies throttling. Default: none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// Values at `path` that mean throttling (e.g. `REQUEST_LIMIT_EXCEEDED`, `606`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub values: Vec<String>,
}

/// Retry policy.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Retry {
    /// Attempts in all, including the first. Default: 5.
    #[serde(default = "default_attempts")]
    pub max_attempts: u32,
    /// First backoff in milliseconds; doubles each attempt, with full jitter. Default: 200.
    #[serde(default = "default_backoff")]
    pub initial_backoff_ms: u64,
    /// Largest backoff in milliseconds. Default: 30000.
    #[serde(default = "default_max_backoff")]
    pub max_backoff_ms: u64,
    /// Request timeout in milliseconds. Default: 30000.
    #[serde(default = "default_timeout")]
    pub timeout_ms: u64,
}

fn default_attempts() -> u32 {
    5
}
fn default_backoff() -> u64 {
    200
}
fn default_max_backoff() -> u64 {
    30_000
}
fn default_timeout() -> u64 {
    30_000
}

/// Where the vendor puts error details.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ErrorShape {
    /// JSONPath to the human message (e.g. `$.message`, `$[0].message`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// JSONPath to the error code (e.g. `$.category`, `$[0].errorCode`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    /// JSONPath to a success flag of 2xx bodies: false means the request failed although the
    /// status says otherwise (Marketo `$.success`). Default: none (2xx is success).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub success: Option<String>,
    /// JSONPath whose presence (non-null) in a 2xx body means failure (GraphQL `$.errors[0]`,
    /// Marketo's skipped record). Not applied to batch operations, whose per-record results
    /// are read instead. Default: none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure: Option<String>,
    /// Where a refused create names the object that already exists (HubSpot's 409 "Contact
    /// already exists. Existing ID: 123"): the record then updates that object instead of
    /// failing. Applied to the answer of a single create whose status is listed (a batch
    /// input refused that way is sent again on its own, and so ends here too). Default: none
    /// (a conflict is a refusal).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub existing_id: Option<ExistingId>,
    /// Where a refused create says that an earlier request already created the object
    /// without naming it (Stripe's `idempotency_error`: the record's Idempotency-Key was used
    /// before, with other parameters): the record is then looked up by its match keys (waiting
    /// out the vendor's search lag) and the object found is updated; without match keys, or
    /// when it cannot be found yet, the record is dead-lettered as "created before" (a rerun
    /// looks again), never created twice. Default: none (such an answer is a refusal).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_before: Option<CreatedBefore>,
}

/// How to recognise an answer that says the object was created by an earlier request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CreatedBefore {
    /// Statuses of a single create's answer that can mean it. Default: `[400, 409]`.
    #[serde(default = "created_before_statuses")]
    pub status: Vec<u16>,
    /// JSONPath to the value that says it (e.g. `$.error.type`).
    pub path: String,
    /// The values at `path` that mean it (e.g. `["idempotency_error"]`).
    pub equals: Vec<String>,
}

fn created_before_statuses() -> Vec<u16> {
    vec![400, 409]
}

/// How to read the existing object's id out of a conflict answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ExistingId {
    /// Statuses of a single create's answer that mean "exists already". Default: `[409]`.
    #[serde(default = "conflict_statuses")]
    pub status: Vec<u16>,
    /// JSONPath to the value naming the existing object in the answer (e.g. `$.message`,
    /// `$.context.existingId[0]`).
    pub path: String,
    /// A regular expression with one capture group that takes the id out of the text at
    /// `path` (e.g. `Existing ID: (\\d+)`). Default: the value at `path` is the id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pattern: Option<String>,
}

fn conflict_statuses() -> Vec<u16> {
    vec![409]
}

/// The field catalog of one object.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ObjectSpec {
    /// Vendor's name for the object (e.g. `contacts`, `Lead`, `persons`). Default: the key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_name: Option<String>,
    /// What it is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Whether tenants may add fields of their own (HubSpot custom properties, Salesforce
    /// `__c` fields): an unknown target field is then a warning, not an error. Default: false.
    #[serde(default)]
    pub open: bool,
    /// Fields whose value names at most one object of this kind, by which a `batch_read`
    /// operation can read objects (HubSpot contacts: `email`, sent as `idProperty`). Batch
    /// duplicate detection looks records up by these first: one read per 100 records, not
    /// lagging writes as searches do. Default: none.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unique_fields: Vec<String>,
    /// Pattern (regex) custom field names must match when the catalog is open, e.g. `__c$`.
    /// Default: any name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub custom_field_pattern: Option<String>,
    /// Fields by name (dotted names describe nested fields of an inbound record).
    #[serde(default)]
    pub fields: IndexMap<String, FieldSpec>,
    /// For a CRM that addresses custom fields by keys of its own (Pipedrive's 40-character
    /// hashes) while tenants write their names: how to look the keys up. Before a create or
    /// update is rendered, every payload field this catalog does not declare is renamed to the
    /// key of the field definition whose key or name it is (names also match ignoring case,
    /// spaces and punctuation), and moved under `into` when set. The definitions are listed once
    /// per session, when a payload first needs them. A name that matches no definition fails
    /// the record with an error naming it, never dropped in silence. Needs `open = true`.
    /// Default: payload fields are sent under the names the tenant wrote.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field_keys: Option<FieldKeys>,
}

/// Where a CRM's field definitions are listed, and how to read a definition's name and key
/// (`field_keys` of an object).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FieldKeys {
    /// The `list` operation that returns the object's field definitions (every page is read).
    pub operation: String,
    /// JSONPath, relative to one definition, to the field's name as people write it (e.g.
    /// `$.name`).
    pub name: String,
    /// JSONPath, relative to one definition, to the key the API addresses the field by (e.g.
    /// `$.key`).
    pub key: String,
    /// Payload key the resolved fields are moved under, as one object (Pipedrive v2's
    /// `custom_fields`); templates read it as `{{payload.<into>}}`. Default: renamed in place,
    /// at the top level of the payload.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub into: Option<String>,
    /// JSONPath, relative to one definition, to the CRM's type of the field (Pipedrive
    /// `$.field_type`), read with `types`. Default: none (values are sent as mapped).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field_type: Option<String>,
    /// The engine type each CRM field type takes (`double = "number"`, `date = "date"`): a
    /// resolved value is converted by the mapping's rules (numeric text becomes a number) before
    /// it is sent, and one that cannot be fails the record, naming the field. CRM types not
    /// listed pass values as mapped. Default: none.
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    pub types: IndexMap<String, FieldType>,
}

/// A field: a bare type name, or a table with details.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum FieldSpec {
    /// Just the type, e.g. `email = "string"`.
    Type(FieldType),
    /// Type and details.
    Detailed(FieldDetail),
}

impl FieldSpec {
    /// The field's type.
    pub fn field_type(&self) -> FieldType {
        match self {
            FieldSpec::Type(t) => *t,
            FieldSpec::Detailed(d) => d.field_type,
        }
    }
    /// Declared enumeration options, if any.
    pub fn options(&self) -> &[String] {
        match self {
            FieldSpec::Type(_) => &[],
            FieldSpec::Detailed(d) => &d.options,
        }
    }
}

/// A field with details.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FieldDetail {
    /// The field's type.
    #[serde(rename = "type")]
    pub field_type: FieldType,
    /// Allowed values of an enumeration. Default: none (unchecked).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub options: Vec<String>,
    /// Whether a create must carry it. Default: false.
    #[serde(default)]
    pub required: bool,
    /// Whether the API refuses writes to it. Default: false.
    #[serde(default)]
    pub read_only: bool,
    /// What it holds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

/// What an operation does (the runtime picks operations by object and kind).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum OperationKind {
    /// Read one record by id.
    Get,
    /// List records, page by page.
    List,
    /// Find records matching fields (used by duplicate detection).
    Search,
    /// Create one record.
    Create,
    /// Update one record by id.
    Update,
    /// Create or update by a unique field.
    Upsert,
    /// Delete one record.
    Delete,
    /// Create many records in one request.
    BatchCreate,
    /// Update many records in one request.
    BatchUpdate,
    /// Upsert many records in one request.
    BatchUpsert,
    /// Read many records in one request by id, or by one of the object's `unique_fields`
    /// (templates see `items`, each item `id`; `id_field` is the unique field, absent when
    /// reading by id; `fields` the field names wanted). Used by batch duplicate detection
    /// (plain HTTP only: one delegated to a plugin is not used).
    BatchRead,
    /// Find the records whose field equals any of many values in one request (HubSpot's `IN`
    /// operator; templates see `match.field`, `match.values` and `fields`); `batch.max` is
    /// the most values per request and `batch.results` the records of one page. Used by
    /// batch duplicate detection for match fields that are not unique (plain HTTP only).
    BatchSearch,
    /// Anything else (workflow actions, handoffs, credential checks).
    Action,
}

/// How a request body is encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum BodyEncoding {
    /// `application/json`.
    #[default]
    Json,
    /// `application/x-www-form-urlencoded`, nested with brackets (Stripe).
    Form,
    /// GraphQL `{"query", "variables"}` (monday.com).
    Graphql,
}

/// One HTTP operation. Strings are templates over `payload` (the mapped record), `record`,
/// `id`, `config`, `secrets`, `cursor` and `items` (batches).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Operation {
    /// Object it acts on (a key of `objects`). Default: none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub object: Option<String>,
    /// What it does.
    pub kind: OperationKind,
    /// HTTP method. Default: `POST`.
    #[serde(default)]
    pub method: Method,
    /// Path, relative to the base URL (a template, e.g. `/crm/v3/objects/contacts/{{id}}`).
    pub path: String,
    /// Query parameters (templates). Default: none.
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    pub query: IndexMap<String, String>,
    /// Extra headers (templates). Default: none.
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    pub headers: IndexMap<String, String>,
    /// Body template: a JSON tree whose string leaves are templates. Default: no body.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<Value>,
    /// Body encoding. Default: `json`.
    #[serde(default)]
    pub encoding: BodyEncoding,
    /// GraphQL document, when `encoding = "graphql"`. Default: none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub graphql: Option<String>,
    /// JSONPath to the created/updated record's id in the response. Default: none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// JSONPath to the records of a list/search response. Default: none (a top-level array).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub records: Option<String>,
    /// JSONPath, relative to one record (or batch result), to its field map (HubSpot
    /// `$.properties`); duplicate detection and incremental sync read fields there. For
    /// list/search/batch operations `id` is relative to one record too. Default: the record.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fields: Option<String>,
    /// Pagination of list/search responses. Default: a single page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pagination: Option<Pagination>,
    /// Batch settings for `batch_*` kinds. Default: none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub batch: Option<Batch>,
    /// Incremental sync: how to ask for records modified since a cursor. Default: none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub incremental: Option<Incremental>,
    /// Status codes that mean success. Default: any 2xx.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub success_status: Vec<u16>,
    /// The rate-limit class (a key of `rate_limit.classes`) whose budget this operation's
    /// requests also draw on (HubSpot's search endpoints: `search`). Default: the general
    /// budget only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub budget: Option<String>,
    /// Send an `Idempotency-Key` header (Stripe) with this header name. Default: none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idempotency_header: Option<String>,
    /// Delegate this operation to a plugin (a key of `plugins`, full-connector world): list and
    /// search kinds call its `read` (stream = `object`, paging by its cursor), other kinds its
    /// `write`. Default: HTTP as declared.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plugin: Option<String>,
    /// Decode response bodies that are not JSON (CSV, XML, …) with this plugin's decoder (a key
    /// of `plugins`, request-codec world). Default: JSON only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decode: Option<String>,
}

/// Pagination styles of the seed systems.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "style", rename_all = "snake_case", deny_unknown_fields)]
pub enum Pagination {
    /// A cursor from the body sent back as a parameter (HubSpot `after`, Pipedrive v2,
    /// Zendesk `page[after]`, Marketo `nextPageToken`, Zoho `page_token`, monday).
    Cursor {
        /// Query parameter (or body field, with `in_body`) that carries the cursor.
        param: String,
        /// JSONPath to the next cursor in the response; absent or null ends paging.
        next: String,
        /// JSONPath to a boolean that must be true for another page. Default: none.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        has_more: Option<String>,
        /// Put the cursor into the JSON body instead of the query. Default: false.
        #[serde(default)]
        in_body: bool,
    },
    /// Stripe: the last record's id as `starting_after` while `has_more`.
    LastId {
        /// Parameter name, e.g. `starting_after`.
        param: String,
        /// JSONPath to `has_more`.
        has_more: String,
        /// Field of a record holding its id. Default: `id`.
        #[serde(default = "id_field")]
        id_field: String,
    },
    /// Offset paging (Pipedrive v1 `start`).
    Offset {
        /// Offset parameter.
        param: String,
        /// JSONPath to the next offset; absent ends paging.
        next: String,
    },
    /// Page numbers (PayPal `page` / `total_pages`).
    Page {
        /// Page parameter.
        param: String,
        /// JSONPath to the total number of pages.
        total_pages: String,
        /// First page number. Default: 1.
        #[serde(default = "one")]
        start: u64,
    },
    /// A full next URL in the body (Salesforce `nextRecordsUrl`).
    NextUrl {
        /// JSONPath to the next URL (absolute or relative to the base URL).
        next: String,
    },
    /// RFC 8288 `Link: <…>; rel="next"` header (Freshdesk).
    LinkHeader,
}

fn id_field() -> String {
    "id".into()
}
fn one() -> u64 {
    1
}

/// Batch request settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Batch {
    /// Most records per request (HubSpot 100, Salesforce 200, Marketo 300, Zoho 100).
    pub max: usize,
    /// Template of one item of the batch (over `payload`, `id`). Default: `{{payload}}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub item: Option<Value>,
    /// JSONPath to per-record results, in input order unless `match_field` says otherwise
    /// (`batch_search`: the records of one page).
    pub results: String,
    /// JSONPath (relative to a result) to a success flag; absent means success. Default: none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub success: Option<String>,
    /// JSONPath to per-record errors of a partial failure (HubSpot 207 `errors`). Default: none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub errors: Option<String>,
    /// Values at `success` that mean success (besides `true`), e.g. Marketo's `created`,
    /// `updated`. Default: none.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub success_values: Vec<String>,
    /// Payload field echoed in each result's fields (HubSpot `email` in `properties`), used to
    /// pair results with inputs when a partial failure drops failed inputs from the results.
    /// Default: none (results are in input order).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub match_field: Option<String>,
    /// `batch_read` only: JSONPath to the ids (or unique values) the answer says do not
    /// exist (HubSpot: `$.errors[?(@.category == 'OBJECT_NOT_FOUND')].context.ids[*]`). An
    /// input neither among the results nor named here has an unknown answer and is looked up
    /// the one-record way. Default: every input missing from the results does not exist.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_found: Option<String>,
}

/// How to fetch only changes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Incremental {
    /// Field of a record holding its modification time (the cursor advances to its maximum).
    pub cursor_field: String,
    /// Parameter that carries "modified since" (query, or templated into the body).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub param: Option<String>,
    /// Format of the parameter: `rfc3339`, `unix`, `unix_ms`, `date`. Default: `rfc3339`.
    #[serde(default = "rfc3339")]
    pub format: String,
}

fn rfc3339() -> String {
    "rfc3339".into()
}

/// A workflow action: run an operation, or POST to a webhook URL.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ActionSpec {
    /// Operation to run (a key of `operations`). Exactly one of `operation` and `webhook`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operation: Option<String>,
    /// Outbound webhook URL template. Exactly one of `operation` and `webhook`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhook: Option<String>,
    /// Payload template for the action. Default: the mapped record.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payload: Option<Value>,
}

/// A value looked up through an operation (`{{lookups.<name>}}`), once per session and input,
/// before a delivery sends anything; a lookup that finds nothing fails the records it would
/// have served (dead-lettered, nothing sent), naming the input.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Lookup {
    /// The list or search operation that finds it (a key of `operations`); its templates read
    /// the input as `{{input}}`.
    pub operation: String,
    /// The input: a template over `config` (e.g. `{{config.contact_owner}}`). When it renders
    /// empty nothing is looked up and `lookups.<name>` is absent.
    pub input: String,
    /// JSONPath of the value in the first record found. Default: the operation's `id`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    /// How long a found value, or a miss, is kept before it is looked up again. Default: 600.
    #[serde(default = "default_cache_secs")]
    pub cache_secs: u64,
}

fn default_cache_secs() -> u64 {
    600
}

/// An object each delivered record brings along (keyed by the object's name in `objects`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Related {
    /// Whether records bring it: a template over `config`, `payload` and `record`; empty,
    /// `false` or `0` mean no.
    pub when: String,
    /// Its payload: a JSON template over `payload` (the record's default object), `record`
    /// (every mapped object by name) and `config`. Fields the mapping gave this object win.
    pub payload: Value,
    /// A payload field that identifies an existing object to reuse instead of creating one
    /// (looked up in the dedupe index, then through the object's `search` operation; reused
    /// as it is, never updated); a record whose payload leaves it empty does not bring the
    /// object. Default: none (one object per record, updated on a rerun).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub find_by: Option<String>,
}

/// An association between two objects of one record, made once both are delivered (also when
/// either already existed), at most once per record and pair of ids.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Association {
    /// The object it goes from (a key of `objects`).
    pub from: String,
    /// The object it goes to (a key of `objects`).
    pub to: String,
    /// The operation that makes it, an idempotent request (a key of `operations`); its
    /// templates read `from.object`/`to.object` (the vendor's object names) and
    /// `from.id`/`to.id`.
    pub operation: String,
}

/// An inbound source's record and webhook verification.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Inbound {
    /// The object (a key of `objects`) whose catalog describes inbound records.
    pub object: String,
    /// Webhook signature verification. `switchyard serve` refuses a route whose source
    /// declares none, unless `verification = "none"` says so. Default: none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhook: Option<WebhookVerify>,
    /// `none` accepts unsigned webhooks from this source (anyone who can reach the endpoint can
    /// post records; `switchyard validate` warns, W240). Default: `required` (a `webhook`
    /// scheme must be declared for `switchyard serve` to receive from this source).
    #[serde(default, skip_serializing_if = "Verification::is_required")]
    pub verification: Verification,
    /// JSONPath to the idempotency key of a record. Default: none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idempotency_key: Option<String>,
}

/// Whether an inbound source's webhooks must be signed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Verification {
    /// Every webhook is verified with the declared `webhook` scheme.
    #[default]
    Required,
    /// Webhooks are accepted unsigned (an explicit, warned-about choice).
    None,
}

impl Verification {
    fn is_required(&self) -> bool {
        *self == Verification::Required
    }
}

/// Webhook signature schemes of the seed systems.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "scheme", rename_all = "snake_case", deny_unknown_fields)]
pub enum WebhookVerify {
    /// HMAC over the raw body (CallRail: SHA-1, base64, header `Signature`).
    HmacBody {
        /// Header carrying the signature.
        header: String,
        /// `sha1` or `sha256`.
        algorithm: String,
        /// `base64` or `hex`.
        encoding: String,
        /// Secret name (a key of `secrets`).
        secret: String,
    },
    /// Stripe `t=…,v1=…` over `"{t}.{body}"`, with a tolerance.
    Stripe {
        /// Secret name.
        secret: String,
        /// Replay window in seconds. Default: 300.
        #[serde(default = "tolerance")]
        tolerance_secs: u64,
    },
    /// HubSpot v3: HMAC-SHA256 of method + uri + body + timestamp, base64. The uri is the
    /// public `https://` URL HubSpot called (`switchyard serve --public-url`).
    HubspotV3 {
        /// Secret name.
        secret: String,
        /// Replay window in seconds. Default: 300.
        #[serde(default = "tolerance")]
        tolerance_secs: u64,
    },
    /// Zendesk: HMAC-SHA256 of timestamp + body, base64, with a tolerance on
    /// `X-Zendesk-Webhook-Signature-Timestamp` (RFC 3339, or Unix seconds or milliseconds).
    Zendesk {
        /// Secret name.
        secret: String,
        /// Replay window in seconds. Default: 300.
        #[serde(default = "tolerance")]
        tolerance_secs: u64,
    },
    /// Verification done by a plugin (a key of `plugins`).
    Plugin {
        /// Plugin name.
        plugin: String,
    },
}

fn tolerance() -> u64 {
    300
}
