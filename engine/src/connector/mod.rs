//! The connector runtime: a connector spec compiled once ([`Connector`]) and bound to one
//! tenant's settings and secrets ([`Session`]) runs the spec's HTTP operations with auth, rate
//! limiting, retries with backoff, pagination, batching and per-record result extraction.
//!
//! One `reqwest::Client` is shared by every session of a [`Runtime`].

mod auth;
pub mod deliver;
pub mod fieldkeys;
mod http;
mod lookup;
pub mod oauth;
mod plugin;
pub mod ratelimit;
pub(crate) mod related;
pub mod route;
pub mod sync;
pub mod template;
pub mod tenant;
pub mod webhook;
pub mod workflow;

pub use crate::secrets::{Secret, SecretResolver};
pub use auth::jwt_assertion;
pub use deliver::{
    ActionOutcome, Deliverer, DeliveryCounts, DeliveryItem, DeliveryOptions, DeliveryReport, Input,
    ObjectOutcome, Outcome, RecordResult, RejectedInput,
};
pub use http::{Extra, Response, Retrying};

use crate::spec::connector::{BodyEncoding, ConnectorSpec, Operation, OperationKind, Pagination};
use auth::{AuthPlan, TokenCache};
use indexmap::IndexMap;
use jsonpath_rust::parser::model::JpQuery;
use ratelimit::RateLimiter;
use serde_json::{Map, Value};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use template::{Templates, Tpl, TplTree};

/// Errors of the connector runtime.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConnectorError {
    /// The spec or the tenant's settings cannot be used.
    #[error("{0}")]
    Config(String),
    /// A template failed.
    #[error(transparent)]
    Template(#[from] template::TemplateError),
    /// A secret reference could not be resolved.
    #[error(transparent)]
    Secret(#[from] crate::secrets::SecretError),
    /// Credentials were refused or no token could be obtained.
    #[error("authentication failed: {0}")]
    Auth(String),
    /// The vendor refused the request.
    #[error("{method} {path} answered {status}: {message}")]
    Http {
        /// HTTP method.
        method: String,
        /// Request path (no query, no secrets).
        path: String,
        /// HTTP status.
        status: u16,
        /// Vendor error code, when the spec says where it is.
        code: Option<String>,
        /// Vendor message (secrets redacted).
        message: String,
        /// The existing object a conflict answer named (the spec's `errors.existing_id`).
        existing: Option<Box<Value>>,
        /// The answer says an earlier request created the object (the spec's
        /// `errors.created_before`), without naming it.
        created_before: bool,
    },
    /// Still throttled after every retry.
    #[error("{path}: still rate limited after {attempts} attempts")]
    RateLimited {
        /// Request path.
        path: String,
        /// Attempts made.
        attempts: u32,
    },
    /// A plugin the connector delegates to failed (its message names the plugin and cause).
    #[error("{0}")]
    Plugin(crate::plugin::PluginError),
    /// An error whose text held a secret value, with the value redacted; its kind is kept.
    #[error("{message}")]
    Redacted {
        /// The original error's kind.
        kind: ErrorKind,
        /// The original error's text, redacted.
        message: String,
    },
    /// A 5xx, timeout, dropped connection or malformed body: the outcome is unknown.
    #[error("{path}: {message} (after {attempts} attempts)")]
    Transient {
        /// Request path.
        path: String,
        /// What happened.
        message: String,
        /// Attempts made.
        attempts: u32,
    },
}

/// What kind of failure an error is, for callers that branch on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// Spec, template or settings problem.
    Config,
    /// Credentials.
    Auth,
    /// Throttled.
    RateLimited,
    /// Unknown outcome; may be retried (after reconciling, for non-idempotent calls).
    Transient,
    /// The vendor refused the record.
    Rejected,
}

impl ConnectorError {
    /// The error's kind.
    pub fn kind(&self) -> ErrorKind {
        match self {
            ConnectorError::Config(_) | ConnectorError::Template(_) | ConnectorError::Secret(_) => {
                ErrorKind::Config
            }
            ConnectorError::Auth(_) => ErrorKind::Auth,
            ConnectorError::Http { status: 401, .. } => ErrorKind::Auth,
            ConnectorError::Http { .. } => ErrorKind::Rejected,
            ConnectorError::RateLimited { .. } => ErrorKind::RateLimited,
            ConnectorError::Transient { .. } => ErrorKind::Transient,
            ConnectorError::Redacted { kind, .. } => *kind,
            ConnectorError::Plugin(crate::plugin::PluginError::Guest { kind, .. }) => match *kind {
                "invalid-input" | "upstream" => ErrorKind::Rejected,
                _ => ErrorKind::Config,
            },
            ConnectorError::Plugin(e) => match e.kind() {
                crate::plugin::PluginErrorKind::WallTimeout => ErrorKind::Transient,
                _ => ErrorKind::Config,
            },
        }
    }
}

/// The compiled `errors.created_before`.
#[derive(Debug)]
pub(crate) struct CreatedBeforePlan {
    pub status: Vec<u16>,
    pub path: Path,
    pub equals: Vec<String>,
}

impl CreatedBeforePlan {
    /// Whether a refused create's answer says an earlier request created the object.
    pub fn says(&self, status: u16, body: &Value) -> bool {
        self.status.contains(&status)
            && self
                .path
                .first(body)
                .is_some_and(|v| self.equals.iter().any(|e| *e == scalar(v)))
    }
}

/// `errors.existing_id.pattern` compiled as the connector runs it (at most 1 MiB compiled);
/// `validate` compiles it so too, so a pattern it accepts is one the connector loads.
pub(crate) fn existing_id_regex(p: &str) -> Result<regex::Regex, regex::Error> {
    regex::RegexBuilder::new(p).size_limit(1 << 20).build()
}

/// The compiled `errors.existing_id`.
#[derive(Debug)]
pub(crate) struct ExistingIdPlan {
    pub status: Vec<u16>,
    pub path: Path,
    pub pattern: Option<regex::Regex>,
}

impl ExistingIdPlan {
    /// The existing object's id named by a conflict answer.
    pub fn find(&self, status: u16, body: &Value) -> Option<Value> {
        if !self.status.contains(&status) {
            return None;
        }
        let v = self.path.first(body)?;
        let id = match &self.pattern {
            Some(re) => {
                let text = scalar(v);
                let m = re.captures(&text)?.get(1)?.as_str().to_string();
                Value::String(m)
            }
            None => v.clone(),
        };
        (!id.is_null() && scalar(&id).trim() != "").then_some(id)
    }
}

/// A compiled JSONPath.
#[derive(Debug, Clone)]
pub struct Path(JpQuery, String);

impl Path {
    /// Compile a JSONPath.
    pub fn compile(p: &str) -> Result<Self, ConnectorError> {
        jsonpath_rust::parser::parse_json_path(p)
            .map(|q| Path(q, p.to_string()))
            .map_err(|e| ConnectorError::Config(format!("invalid JSONPath `{p}`: {e}")))
    }
    /// The JSONPath text.
    pub fn as_str(&self) -> &str {
        &self.1
    }
    /// Every match.
    pub fn all<'a>(&self, v: &'a Value) -> Vec<&'a Value> {
        jsonpath_rust::query::js_path_process(&self.0, v)
            .map(|r| r.into_iter().map(|x| x.val).collect())
            .unwrap_or_default()
    }
    /// The first match, if any.
    pub fn first<'a>(&self, v: &'a Value) -> Option<&'a Value> {
        self.all(v).into_iter().next()
    }
    /// Records: a single array match is flattened.
    pub fn records(&self, v: &Value) -> Vec<Value> {
        let all = self.all(v);
        if let [Value::Array(a)] = all.as_slice() {
            return a.clone();
        }
        all.into_iter().filter(|x| !x.is_null()).cloned().collect()
    }
}

/// One compiled operation.
#[derive(Debug)]
pub struct CompiledOp {
    /// Name in the spec.
    pub name: String,
    /// The spec's operation.
    pub spec: Operation,
    pub(crate) path: Tpl,
    pub(crate) query: Vec<(String, Tpl)>,
    pub(crate) headers: Vec<(String, Tpl)>,
    pub(crate) body: Option<TplTree>,
    pub(crate) item: Option<TplTree>,
    /// Id of the result (of the response, or of one record/result of list/search/batch).
    pub id: Option<Path>,
    /// Records of a list/search response.
    pub records: Option<Path>,
    /// Field map of one record.
    pub fields: Option<Path>,
    pub(crate) paging_next: Option<Path>,
    pub(crate) paging_more: Option<Path>,
    pub(crate) batch_results: Option<Path>,
    pub(crate) batch_success: Option<Path>,
    pub(crate) batch_errors: Option<Path>,
    pub(crate) batch_not_found: Option<Path>,
}

/// A connector spec compiled once: templates, JSONPaths, auth.
#[derive(Debug)]
pub struct Connector {
    /// The spec.
    pub spec: Arc<ConnectorSpec>,
    pub(crate) templates: Templates,
    pub(crate) base_url: Tpl,
    pub(crate) ops: IndexMap<String, CompiledOp>,
    pub(crate) auth: AuthPlan,
    pub(crate) error_message: Option<Path>,
    pub(crate) error_code: Option<Path>,
    pub(crate) error_success: Option<Path>,
    pub(crate) error_failure: Option<Path>,
    pub(crate) existing_id: Option<ExistingIdPlan>,
    pub(crate) created_before: Option<CreatedBeforePlan>,
    pub(crate) throttles: Vec<(Option<u16>, Option<Path>, Vec<String>)>,
    pub(crate) actions: IndexMap<String, crate::connector::workflow::CompiledAction>,
    /// `field_keys` by object.
    pub(crate) field_keys: IndexMap<String, fieldkeys::FieldKeysPlan>,
    pub(crate) lookups: Vec<related::CompiledLookup>,
    pub(crate) related: Vec<related::CompiledRelated>,
    pub(crate) associations: Vec<related::CompiledAssociation>,
    /// Retry policy.
    pub retry: crate::spec::connector::Retry,
}

impl Connector {
    /// Compile a spec.
    pub fn compile(spec: ConnectorSpec) -> Result<Self, ConnectorError> {
        let mut t = Templates::new();
        let base_url = t.compile(&spec.connector.base_url)?;
        let auth = AuthPlan::compile(spec.auth.as_ref(), &mut t)?;
        let opt = |p: &Option<String>| p.as_deref().map(Path::compile).transpose();
        let mut ops = IndexMap::new();
        for (name, op) in &spec.operations {
            let compile_pairs = |t: &mut Templates, m: &IndexMap<String, String>| {
                m.iter()
                    .map(|(k, v)| Ok((k.clone(), t.compile(v)?)))
                    .collect::<Result<Vec<_>, ConnectorError>>()
            };
            let (next, more) = match &op.pagination {
                Some(Pagination::Cursor { next, has_more, .. }) => {
                    (Some(Path::compile(next)?), opt(has_more)?)
                }
                Some(Pagination::LastId { has_more, .. }) => (None, Some(Path::compile(has_more)?)),
                Some(Pagination::Offset { next, .. }) | Some(Pagination::NextUrl { next }) => {
                    (Some(Path::compile(next)?), None)
                }
                Some(Pagination::Page { total_pages, .. }) => {
                    (Some(Path::compile(total_pages)?), None)
                }
                Some(Pagination::LinkHeader) | None => (None, None),
            };
            if let Some(class) = &op.budget
                && !spec
                    .rate_limit
                    .as_ref()
                    .is_some_and(|rl| rl.classes.contains_key(class))
            {
                return Err(ConnectorError::Config(format!(
                    "operation `{name}` draws on rate-limit class `{class}`, which [rate_limit.classes] does not declare"
                )));
            }
            let c = CompiledOp {
                name: name.clone(),
                path: t.compile(&op.path)?,
                query: compile_pairs(&mut t, &op.query)?,
                headers: compile_pairs(&mut t, &op.headers)?,
                body: op.body.as_ref().map(|b| t.compile_tree(b)).transpose()?,
                item: op
                    .batch
                    .as_ref()
                    .and_then(|b| b.item.as_ref())
                    .map(|i| t.compile_tree(i))
                    .transpose()?,
                id: opt(&op.id)?,
                // A batch search's page of records is its `batch.results`.
                records: match (&op.records, &op.batch) {
                    (None, Some(b)) if op.kind == OperationKind::BatchSearch => {
                        Some(Path::compile(&b.results)?)
                    }
                    (r, _) => opt(r)?,
                },
                fields: opt(&op.fields)?,
                paging_next: next,
                paging_more: more,
                batch_results: op
                    .batch
                    .as_ref()
                    .map(|b| Path::compile(&b.results))
                    .transpose()?,
                batch_success: match &op.batch {
                    Some(b) => opt(&b.success)?,
                    None => None,
                },
                batch_errors: match &op.batch {
                    Some(b) => opt(&b.errors)?,
                    None => None,
                },
                batch_not_found: match &op.batch {
                    Some(b) => opt(&b.not_found)?,
                    None => None,
                },
                spec: op.clone(),
            };
            ops.insert(name.clone(), c);
        }
        let (error_message, error_code, error_success, error_failure) = match &spec.errors {
            Some(e) => (
                opt(&e.message)?,
                opt(&e.code)?,
                opt(&e.success)?,
                opt(&e.failure)?,
            ),
            None => (None, None, None, None),
        };
        let existing_id = match spec.errors.as_ref().and_then(|e| e.existing_id.as_ref()) {
            Some(x) => Some(ExistingIdPlan {
                status: x.status.clone(),
                path: Path::compile(&x.path)?,
                pattern: x
                    .pattern
                    .as_deref()
                    .map(|p| {
                        existing_id_regex(p).map_err(|e| {
                            ConnectorError::Config(format!(
                                "invalid errors.existing_id.pattern `{p}`: {e}"
                            ))
                        })
                    })
                    .transpose()?,
            }),
            None => None,
        };
        let created_before = match spec.errors.as_ref().and_then(|e| e.created_before.as_ref()) {
            Some(c) => Some(CreatedBeforePlan {
                status: c.status.clone(),
                path: Path::compile(&c.path)?,
                equals: c.equals.clone(),
            }),
            None => None,
        };
        let mut throttles = Vec::new();
        if let Some(rl) = &spec.rate_limit {
            for s in &rl.throttle_signals {
                throttles.push((s.status, opt(&s.path)?, s.values.clone()));
            }
        }
        let mut actions = IndexMap::new();
        for (name, a) in &spec.actions {
            actions.insert(
                name.clone(),
                crate::connector::workflow::CompiledAction::compile(a, &mut t)?,
            );
        }
        let mut field_keys = IndexMap::new();
        for (name, o) in &spec.objects {
            if let Some(fk) = &o.field_keys {
                field_keys.insert(
                    name.clone(),
                    fieldkeys::FieldKeysPlan::compile(name, fk, &spec)?,
                );
            }
        }
        let plans = related::compile(&spec, &mut t)?;
        let retry = spec.retry.clone().unwrap_or(crate::spec::connector::Retry {
            max_attempts: 5,
            initial_backoff_ms: 200,
            max_backoff_ms: 30_000,
            timeout_ms: 30_000,
        });
        Ok(Self {
            spec: Arc::new(spec),
            templates: t,
            base_url,
            ops,
            auth,
            error_message,
            error_code,
            error_success,
            error_failure,
            existing_id,
            created_before,
            throttles,
            actions,
            field_keys,
            lookups: plans.lookups,
            related: plans.related,
            associations: plans.associations,
            retry,
        })
    }

    /// The connector's name.
    pub fn name(&self) -> &str {
        &self.spec.connector.name
    }

    /// An operation by name.
    pub fn op(&self, name: &str) -> Result<&CompiledOp, ConnectorError> {
        self.ops.get(name).ok_or_else(|| {
            ConnectorError::Config(format!(
                "connector `{}` has no operation `{name}`",
                self.name()
            ))
        })
    }

    /// The first operation of a kind for an object (operations with `incremental` serve
    /// sync only and are skipped).
    pub fn find_op(&self, object: &str, kind: OperationKind) -> Option<&CompiledOp> {
        self.ops.values().find(|o| {
            o.spec.kind == kind
                && o.spec.object.as_deref() == Some(object)
                && o.spec.incremental.is_none()
        })
    }

    /// The operation incremental sync uses for an object: one with `incremental`, else a list.
    pub fn sync_op(&self, object: &str) -> Option<&CompiledOp> {
        self.ops
            .values()
            .find(|o| o.spec.object.as_deref() == Some(object) && o.spec.incremental.is_some())
            .or_else(|| self.find_op(object, OperationKind::List))
    }

    /// Vendor name of an object.
    pub fn api_name<'a>(&'a self, object: &'a str) -> &'a str {
        self.spec
            .objects
            .get(object)
            .and_then(|o| o.api_name.as_deref())
            .unwrap_or(object)
    }
}

/// A tenant's binding of a connector: settings, secrets, token cache, rate limiter.
#[derive(Debug, Clone)]
pub struct Binding {
    /// Tenant id.
    pub tenant: String,
    /// Non-secret settings (`config.*`).
    pub config: Map<String, Value>,
    /// Secrets by name (`secrets.*`).
    pub secrets: HashMap<String, Secret>,
    /// Replaces the base URL (or only its origin, when it has no path): local emulators.
    pub base_url: Option<String>,
}

/// Where dry-run requests go (one JSON line each).
pub type DryRunSink = Arc<Mutex<Vec<Value>>>;

/// One tenant's session with one connector. `Debug` shows no secret (the template context,
/// which holds them in the clear for rendering, is left out).
#[derive(Clone)]
pub struct Session {
    /// The compiled connector.
    pub connector: Arc<Connector>,
    /// The tenant's binding.
    pub binding: Arc<Binding>,
    pub(crate) http: reqwest::Client,
    pub(crate) limiter: Option<Arc<RateLimiter>>,
    /// The buckets of the spec's rate-limit classes, by class name (`rate_limit.classes`).
    pub(crate) classes: Arc<HashMap<String, Arc<RateLimiter>>>,
    pub(crate) tokens: Arc<TokenCache>,
    pub(crate) dry_run: Option<DryRunSink>,
    pub(crate) ctx_base: Arc<Map<String, Value>>,
    pub(crate) token_store: Option<auth::TokenStore>,
    pub(crate) plugins: Option<Arc<crate::plugin::PluginSet>>,
    /// The connector's `[lookups]` resolved for this tenant (shared by the session's clones).
    pub(crate) lookups: Arc<lookup::LookupCache>,
    /// Removes the binding's secrets from error texts.
    pub(crate) redactor: crate::secrets::Redactor,
    /// Field definitions listed for `field_keys`, shared by the clones of this session.
    pub(crate) field_keys: Arc<fieldkeys::FieldKeyCache>,
}

/// Per (tenant, connector) state shared by every session of a runtime.
type Shared<T> = Arc<Mutex<HashMap<(String, String), Arc<T>>>>;

/// Rate limiters by (tenant, connector, class); the general budget is class `""`.
type Limiters = Arc<Mutex<HashMap<(String, String, String), Arc<RateLimiter>>>>;

/// Shares one HTTP client, rate limiters and token caches by tenant and connector (rate
/// limiters also by class of endpoints).
#[derive(Debug, Clone)]
pub struct Runtime {
    http: reqwest::Client,
    limiters: Limiters,
    tokens: Shared<TokenCache>,
}

impl Default for Runtime {
    fn default() -> Self {
        Self::new()
    }
}

impl Runtime {
    /// A runtime with one shared HTTP client.
    pub fn new() -> Self {
        let http = reqwest::Client::builder()
            .pool_idle_timeout(Duration::from_secs(30))
            .user_agent(concat!("switchyard/", env!("CARGO_PKG_VERSION")))
            .build()
            .unwrap_or_default();
        Self {
            http,
            limiters: Arc::default(),
            tokens: Arc::default(),
        }
    }

    /// The shared client (for outbound webhooks).
    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }

    /// Bind a connector to a tenant.
    pub fn session(&self, connector: Arc<Connector>, binding: Binding) -> Session {
        let key = (binding.tenant.clone(), connector.name().to_string());
        let (limiter, classes) = match &connector.spec.rate_limit {
            None => (None, HashMap::new()),
            Some(rl) => {
                let mut m = self.limiters.lock().unwrap_or_else(|p| p.into_inner());
                let mut bucket = |class: &str, requests: u32, per_seconds: u32| {
                    m.entry((key.0.clone(), key.1.clone(), class.to_string()))
                        .or_insert_with(|| Arc::new(RateLimiter::new(requests, per_seconds)))
                        .clone()
                };
                let general = bucket("", rl.requests, rl.per_seconds);
                let classes = rl
                    .classes
                    .iter()
                    .map(|(name, c)| (name.clone(), bucket(name, c.requests, c.per_seconds)))
                    .collect();
                (Some(general), classes)
            }
        };
        let tokens = {
            let mut m = self.tokens.lock().unwrap_or_else(|p| p.into_inner());
            m.entry(key).or_default().clone()
        };
        let mut ctx = Map::new();
        let mut config = Map::new();
        for (k, p) in &connector.spec.config {
            if let Some(v) = binding.config.get(k).or(p.default.as_ref()) {
                config.insert(k.clone(), v.clone());
            }
        }
        for (k, v) in &binding.config {
            config.entry(k.clone()).or_insert_with(|| v.clone());
        }
        ctx.insert("config".into(), Value::Object(config));
        let secrets: Map<String, Value> = binding
            .secrets
            .iter()
            .map(|(k, v)| (k.clone(), Value::String(v.expose().to_string())))
            .collect();
        ctx.insert("secrets".into(), Value::Object(secrets));
        ctx.insert("tenant".into(), Value::String(binding.tenant.clone()));
        let redactor = crate::secrets::Redactor::new(binding.secrets.values().map(|s| s.expose()));
        Session {
            redactor,
            connector,
            binding: Arc::new(binding),
            http: self.http.clone(),
            limiter,
            classes: Arc::new(classes),
            tokens,
            dry_run: None,
            ctx_base: Arc::new(ctx),
            token_store: None,
            plugins: None,
            field_keys: Arc::default(),
            lookups: Arc::default(),
        }
    }
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("connector", &self.connector.name())
            .field("binding", &self.binding)
            .field("dry_run", &self.dry_run.is_some())
            .finish_non_exhaustive()
    }
}

impl Session {
    /// Send nothing; record each request (secrets redacted) into `sink` instead.
    pub fn with_dry_run(mut self, sink: DryRunSink) -> Self {
        self.dry_run = Some(sink);
        self
    }

    /// Persist OAuth tokens in `store` (sealed with `SWITCHYARD_STORE_KEY`; a no-op without it).
    pub fn with_token_store(mut self, store: Arc<crate::store::Store>) -> Self {
        self.token_store = Some(auth::TokenStore {
            store,
            tenant: self.binding.tenant.clone(),
            connector: self.connector.name().to_string(),
        });
        self
    }

    /// A redactor of every secret this session holds: the binding's secrets and the tokens
    /// its auth flow obtained so far.
    pub fn redactor(&self) -> crate::secrets::Redactor {
        let tokens = self.tokens.secret_values();
        if tokens.is_empty() {
            return self.redactor.clone();
        }
        crate::secrets::Redactor::new(
            self.binding
                .secrets
                .values()
                .chain(tokens.iter())
                .map(|s| s.expose()),
        )
    }

    /// `e` with every secret this session holds removed from its text (its kind is kept).
    pub fn redact_error(&self, e: ConnectorError) -> ConnectorError {
        let r = self.redactor();
        if r.is_empty() {
            return e;
        }
        match e {
            ConnectorError::Http {
                method,
                path,
                status,
                code,
                message,
                existing,
                created_before,
            } => ConnectorError::Http {
                method,
                path: r.redact(&path).into_owned(),
                status,
                code: code.map(|c| r.redact(&c).into_owned()),
                message: r.redact(&message).into_owned(),
                existing,
                created_before,
            },
            ConnectorError::Config(m) => ConnectorError::Config(r.redact(&m).into_owned()),
            ConnectorError::Auth(m) => ConnectorError::Auth(r.redact(&m).into_owned()),
            ConnectorError::Transient {
                path,
                message,
                attempts,
            } => ConnectorError::Transient {
                path: r.redact(&path).into_owned(),
                message: r.redact(&message).into_owned(),
                attempts,
            },
            other => {
                let text = other.to_string();
                match r.redact(&text) {
                    std::borrow::Cow::Borrowed(_) => other,
                    std::borrow::Cow::Owned(message) => ConnectorError::Redacted {
                        kind: other.kind(),
                        message,
                    },
                }
            }
        }
    }

    /// Whether this session only records requests.
    pub fn is_dry_run(&self) -> bool {
        self.dry_run.is_some()
    }

    /// The template context: `config`, `secrets`, `tenant`, `now`, `today`, `lookups` (the
    /// values resolved so far, [`Session::resolve_lookups`]) plus `vars`.
    pub fn context(&self, vars: Map<String, Value>) -> Value {
        let mut m = (*self.ctx_base).clone();
        let now = chrono::Utc::now();
        m.insert(
            "now".into(),
            Value::String(now.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)),
        );
        m.insert(
            "today".into(),
            Value::String(now.format("%Y-%m-%d").to_string()),
        );
        if !self.connector.lookups.is_empty() {
            m.insert("lookups".into(), Value::Object(self.lookups.values()));
        }
        m.extend(vars);
        Value::Object(m)
    }

    /// Missing required settings and secrets of the spec (for `connectors test`).
    pub fn missing_settings(&self) -> Vec<String> {
        let spec = &self.connector.spec;
        let mut out = Vec::new();
        for (k, p) in &spec.config {
            // With a base URL override (an emulator), settings the base URL is built from
            // are not needed.
            let in_base = spec.connector.base_url.contains(&format!("config.{k}"));
            if self.binding.base_url.is_some() && in_base {
                continue;
            }
            if p.required && p.default.is_none() && !self.binding.config.contains_key(k) {
                out.push(format!("config.{k}"));
            }
        }
        for (k, p) in &spec.secrets {
            if p.required && !self.binding.secrets.contains_key(k) {
                out.push(format!("secrets.{k}"));
            }
        }
        out
    }

    /// Run a list/search operation through every page, calling `f` per record; stops after
    /// `limit` records when given. Returns the number of records. The entries of
    /// `vars["extra_query"]` (an object) are added to the query of every page request
    /// (incremental sync's "modified since", a pull rule's extra parameters).
    pub async fn list(
        &self,
        op: &str,
        vars: Map<String, Value>,
        limit: Option<usize>,
        mut f: impl FnMut(Value),
    ) -> Result<usize, ConnectorError> {
        self.list_inner(op, vars, limit, &mut f)
            .await
            .map_err(|e| self.redact_error(e))
    }

    async fn list_inner(
        &self,
        op: &str,
        vars: Map<String, Value>,
        limit: Option<usize>,
        f: &mut impl FnMut(Value),
    ) -> Result<usize, ConnectorError> {
        let cop = self.connector.op(op)?;
        if let Some(alias) = &cop.spec.plugin {
            return self.plugin_list(alias, cop, vars, limit, f).await;
        }
        let extra_query: Vec<(String, String)> = match vars.get("extra_query") {
            Some(Value::Object(m)) => m.iter().map(|(k, v)| (k.clone(), scalar(v))).collect(),
            _ => vec![],
        };
        let ctx = self.context(vars);
        let mut extra = Extra {
            query: extra_query.clone(),
            ..Extra::default()
        };
        let mut count = 0usize;
        let mut page_no = match &cop.spec.pagination {
            Some(Pagination::Page { start, .. }) => *start,
            _ => 0,
        };
        if let Some(Pagination::Page { param, start, .. }) = &cop.spec.pagination {
            extra.query.push((param.clone(), start.to_string()));
        }
        for _ in 0..100_000 {
            let resp = self.call_with(cop, &ctx, &extra, Retrying::Safe).await?;
            let records = match &cop.records {
                Some(p) => p.records(&resp.body),
                None => match &resp.body {
                    Value::Array(a) => a.clone(),
                    _ => vec![],
                },
            };
            let last = records.last().cloned();
            let n = records.len();
            for r in records {
                f(r);
                count += 1;
                if limit.is_some_and(|l| count >= l) {
                    return Ok(count);
                }
            }
            extra = Extra {
                query: extra_query.clone(),
                ..Extra::default()
            };
            let more = |p: &Option<Path>| {
                p.as_ref()
                    .map(|p| p.first(&resp.body).is_some_and(truthy))
                    .unwrap_or(true)
            };
            match &cop.spec.pagination {
                None => break,
                Some(Pagination::Cursor { param, in_body, .. }) => {
                    let next = cop.paging_next.as_ref().and_then(|p| p.first(&resp.body));
                    let Some(next) = next.filter(|v| !v.is_null() && *v != "") else {
                        break;
                    };
                    if !more(&cop.paging_more) {
                        break;
                    }
                    let s = scalar(next);
                    if *in_body {
                        extra.body.push((param.clone(), next.clone()));
                    } else {
                        extra.query.push((param.clone(), s));
                    }
                }
                Some(Pagination::LastId {
                    param, id_field, ..
                }) => {
                    if !more(&cop.paging_more) || n == 0 {
                        break;
                    }
                    let Some(id) = last.as_ref().and_then(|r| r.get(id_field)) else {
                        break;
                    };
                    extra.query.push((param.clone(), scalar(id)));
                }
                Some(Pagination::Offset { param, .. }) => {
                    let next = cop.paging_next.as_ref().and_then(|p| p.first(&resp.body));
                    let Some(next) = next.filter(|v| !v.is_null()) else {
                        break;
                    };
                    if n == 0 {
                        break;
                    }
                    extra.query.push((param.clone(), scalar(next)));
                }
                Some(Pagination::Page { param, .. }) => {
                    let total = cop
                        .paging_next
                        .as_ref()
                        .and_then(|p| p.first(&resp.body))
                        .and_then(|v| v.as_u64().or_else(|| v.as_str()?.parse().ok()))
                        .unwrap_or(0);
                    if page_no >= total || n == 0 {
                        break;
                    }
                    page_no += 1;
                    extra.query.push((param.clone(), page_no.to_string()));
                }
                Some(Pagination::NextUrl { .. }) => {
                    let next = cop
                        .paging_next
                        .as_ref()
                        .and_then(|p| p.first(&resp.body))
                        .and_then(Value::as_str);
                    let Some(next) = next else { break };
                    extra.url = Some(next.to_string());
                }
                Some(Pagination::LinkHeader) => {
                    let Some(next) = resp
                        .headers
                        .get("link")
                        .and_then(|v| v.to_str().ok())
                        .and_then(next_link)
                    else {
                        break;
                    };
                    extra.url = Some(next);
                }
            }
        }
        Ok(count)
    }

    /// Run one operation (no paging) with `vars` in the template context.
    pub async fn call(
        &self,
        op: &str,
        vars: Map<String, Value>,
        retrying: Retrying,
    ) -> Result<Response, ConnectorError> {
        let cop = self.connector.op(op)?;
        let r = if let Some(alias) = &cop.spec.plugin {
            self.plugin_call(alias, cop, vars).await
        } else {
            let ctx = self.context(vars);
            self.call_with(cop, &ctx, &Extra::default(), retrying).await
        };
        r.map_err(|e| self.redact_error(e))
    }

    /// Render a record's fields through a record template (`fields` JSONPath).
    pub fn record_fields<'a>(&self, op: &CompiledOp, record: &'a Value) -> &'a Value {
        op.fields
            .as_ref()
            .and_then(|p| p.first(record))
            .unwrap_or(record)
    }

    /// The body encoding of an operation.
    pub fn encoding(&self, op: &str) -> BodyEncoding {
        self.connector
            .ops
            .get(op)
            .map(|o| o.spec.encoding)
            .unwrap_or_default()
    }
}

/// The URL of `rel="next"` in an RFC 8288 `Link` header.
pub fn next_link(h: &str) -> Option<String> {
    h.split(',').find_map(|part| {
        let (url, params) = part.split_once(';')?;
        params
            .split(';')
            .any(|p| {
                let p = p.trim().replace(' ', "");
                p == "rel=\"next\"" || p == "rel=next"
            })
            .then(|| {
                url.trim()
                    .trim_start_matches('<')
                    .trim_end_matches('>')
                    .to_string()
            })
    })
}

/// A JSON value as a query-string scalar.
pub fn scalar(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// JavaScript-like truthiness (`"false"`, `0`, `""`, null are false).
pub fn truthy(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64().is_some_and(|f| f != 0.0),
        Value::String(s) => !(s.is_empty() || s == "false" || s == "0"),
        _ => true,
    }
}

/// Load one connector spec file (errors name the file and the problems).
pub fn load_spec(path: &std::path::Path) -> Result<ConnectorSpec, ConnectorError> {
    crate::spec::load_as::<ConnectorSpec>(path)
        .map(|(c, _)| c)
        .map_err(|e| ConnectorError::Config(e.to_string()))
}

/// Find the spec of connector `name` in `dir` (`<name>.toml`, `<name>.json`, or any file whose
/// `connector.name` is `name`).
pub fn find_spec(dir: &std::path::Path, name: &str) -> Result<ConnectorSpec, ConnectorError> {
    find_spec_file(dir, name).map(|(s, _)| s)
}

/// [`find_spec`], with the file it was read from (plugin manifests are relative to it).
pub fn find_spec_file(
    dir: &std::path::Path,
    name: &str,
) -> Result<(ConnectorSpec, std::path::PathBuf), ConnectorError> {
    for ext in ["toml", "json"] {
        let p = dir.join(format!("{name}.{ext}"));
        if p.exists() {
            return load_spec(&p).map(|s| (s, p));
        }
    }
    let entries = std::fs::read_dir(dir)
        .map_err(|e| ConnectorError::Config(format!("cannot read `{}`: {e}", dir.display())))?;
    for e in entries.flatten() {
        if let Ok(c) = load_spec(&e.path())
            && c.connector.name == name
        {
            return Ok((c, e.path()));
        }
    }
    Err(ConnectorError::Config(format!(
        "no connector spec named `{name}` in `{}`",
        dir.display()
    )))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn existing_id_patterns_are_bounded_alike_in_validate_and_load() {
        // Within the regex crate's default limit, beyond the connector's 1 MiB.
        let big = r"Existing ID: (\w{200})";
        assert!(regex::Regex::new(big).is_ok());
        assert!(existing_id_regex(big).is_err());
        let spec = format!(
            "spec_version = 1\n[connector]\nname = \"x\"\nkind = \"custom\"\n\
             base_url = \"https://x.example\"\n[errors.existing_id]\npath = \"$.message\"\n\
             pattern = '{big}'\n"
        );
        let c: ConnectorSpec = toml::from_str(&spec).expect("spec");
        let d = crate::validate::check_connector(&c);
        assert!(
            d.0.iter()
                .any(|d| d.code == "E219" && d.pointer == "/errors/existing_id/pattern"),
            "{d:?}"
        );
    }

    #[test]
    fn sessions_never_show_secrets() {
        let spec: ConnectorSpec = toml::from_str(
            r#"spec_version = 1
[connector]
name = "x"
kind = "custom"
base_url = "https://x.example"
[secrets]
token = {}
[auth]
type = "bearer"
token = "{{secrets.token}}"
"#,
        )
        .unwrap();
        let s = Runtime::new().session(
            Arc::new(Connector::compile(spec).unwrap()),
            Binding {
                tenant: "t".into(),
                config: Map::new(),
                secrets: HashMap::from([("token".to_string(), Secret::new("tok-SECRET-1"))]),
                base_url: None,
            },
        );
        let shown = format!("{s:?}");
        assert!(!shown.contains("tok-SECRET-1"), "{shown}");
        assert!(shown.contains("[redacted]"), "{shown}");
    }

    #[test]
    fn not_found_paths_pick_ids_of_one_error_category() {
        let p =
            Path::compile("$.errors[?(@.category == 'OBJECT_NOT_FOUND')].context.ids[*]").unwrap();
        let body = serde_json::json!({"results": [], "errors": [
            {"category": "OBJECT_NOT_FOUND", "context": {"ids": ["a@x.io", "b@x.io"]}},
            {"category": "VALIDATION_ERROR", "context": {"ids": ["c@x.io"]}},
            {"category": "OBJECT_NOT_FOUND", "context": {"ids": ["d@x.io"]}}]});
        let ids: Vec<&Value> = p.all(&body);
        assert_eq!(
            ids,
            [&"a@x.io".into(), &"b@x.io".into(), &Value::from("d@x.io")]
        );
    }

    #[test]
    fn link_header_next() {
        let h = r#"<https://x.freshdesk.com/api/v2/tickets?page=2&per_page=100>; rel="next", <https://x/api?page=1>; rel="prev""#;
        assert_eq!(
            next_link(h).as_deref(),
            Some("https://x.freshdesk.com/api/v2/tickets?page=2&per_page=100")
        );
        assert_eq!(next_link(r#"<https://x/1>; rel="prev""#), None);
    }
}
