//! [`Route`]: one tenant's mapping spec compiled against its connector (and source), bound to
//! the tenant's settings and secrets, ready to map, deliver, dry-run and read.

use super::{Engine, EngineError};
use crate::connector::deliver::input::{judge_line, read_ndjson};
use crate::connector::route::{bind, credentials_for};
use crate::connector::{
    Deliverer, DeliveryCounts, DeliveryItem, DeliveryOptions, DeliveryReport, DryRunSink, Input,
    RecordResult, Retrying, Session,
};
use crate::mapping::{CompileEnv, CompiledMapping, MapContext, Scratch};
use crate::record::Mapped;
use crate::spec::MappingSpec;
use crate::spec::connector::{ConnectorSpec, OperationKind};
use serde_json::{Map, Value, json};
use std::collections::HashMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// An emulator (or any stand-in CRM) a route delivers to instead of the tenant's real one.
#[derive(Debug, Clone)]
pub struct SandboxBinding {
    /// Its base URL.
    pub base_url: String,
    /// Its credentials by name (`access_token`, `client_id`, …); they replace the tenant's
    /// secrets, whose references are then not resolved.
    pub credentials: Vec<(String, String)>,
}

impl SandboxBinding {
    /// A stand-in at `base_url` with these credentials (e.g. an emulator's).
    pub fn new<K: Into<String>, V: Into<String>>(
        base_url: impl Into<String>,
        credentials: impl IntoIterator<Item = (K, V)>,
    ) -> Self {
        Self {
            base_url: base_url.into(),
            credentials: credentials
                .into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
        }
    }
}

/// How to build a route.
#[derive(Debug, Clone, Default)]
pub struct RouteOptions {
    /// Send nothing: record each request (secrets redacted) instead ([`Route::dry_run_requests`]).
    pub dry_run: bool,
    /// Deliver to a stand-in CRM.
    pub sandbox: Option<SandboxBinding>,
    /// Records in flight at once (default: the engine's limit).
    pub concurrency: Option<usize>,
}

/// How [`Route::deliver_ndjson`] reads its input.
#[derive(Debug, Clone, Default)]
pub struct NdjsonOptions {
    /// A stable name of the input (a canonical file path): a second delivery of the same input
    /// for the same tenant and CRM is refused while the first one lives. `None` (stdin): no
    /// lease; records still cooperate one by one.
    pub input_id: Option<String>,
    /// Lines are already mapped (`{"objects", "triggers"}`, what `switchyard map` prints).
    pub premapped: bool,
    /// The run's correlation id, in every log line and dead letter of it (default: a fresh
    /// `run-…` id).
    pub correlation_id: Option<String>,
}

/// A fresh correlation id: `prefix-` and 16 hex digits.
pub fn correlation_id(prefix: &str) -> String {
    format!("{prefix}-{:016x}", rand::random::<u64>())
}

struct Inner {
    engine: Engine,
    mapping: MappingSpec,
    path: PathBuf,
    plan: CompiledMapping,
    session: Session,
    sink: Option<DryRunSink>,
    options: DeliveryOptions,
    source: Option<Arc<super::registry::Entry>>,
    connector: Arc<super::registry::Entry>,
    built_with: RouteOptions,
    _watch: Vec<crate::plugin::WatchGuard>,
}

/// A compiled, bound route. Cheap to clone.
#[derive(Clone)]
pub struct Route(Arc<Inner>);

impl std::fmt::Debug for Route {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Route")
            .field("path", &self.0.path)
            .field("tenant", &self.0.mapping.tenant)
            .field("connector", &self.0.mapping.connector)
            .finish_non_exhaustive()
    }
}

/// A mapping compiled against its connector (and source), with its plugins loaded.
pub(super) struct Compiled {
    pub plan: CompiledMapping,
    pub source: Option<Arc<super::registry::Entry>>,
    pub connector_plugins: Arc<crate::plugin::PluginSet>,
    pub watch: Vec<crate::plugin::WatchGuard>,
}

/// Compile `mapping` (from `path`; its diagnostics placed in `source_file` when given).
pub(super) fn compile(
    engine: &Engine,
    mapping: &MappingSpec,
    path: &Path,
    source_file: Option<&crate::spec::SourceFile>,
    connector: &super::registry::Entry,
) -> Result<Compiled, EngineError> {
    let e = &engine.0;
    let source = match &mapping.source {
        Some(s) => Some(e.registry.get(s)?),
        None => None,
    };
    let mapping_plugins = e
        .plugins
        .load_set(path, &mapping.plugins, &mapping.tenant)?;
    let connector_plugins =
        e.plugins
            .load_set(&connector.path, &connector.spec.plugins, &mapping.tenant)?;
    let watch: Vec<crate::plugin::WatchGuard> = [&mapping_plugins, &connector_plugins]
        .into_iter()
        .filter_map(|s| e.plugins.watch(s))
        .collect();
    let env = CompileEnv {
        target: &connector.spec,
        source: source.as_ref().map(|s| &s.spec),
        plugins: Some(&mapping_plugins),
    };
    let (plan, diags) = crate::mapping::compile(mapping, &env);
    match plan {
        Some(plan) if !diags.has_errors() => Ok(Compiled {
            plan,
            source,
            connector_plugins,
            watch,
        }),
        _ => {
            let mut placed = crate::diag::Diagnostics::default();
            for d in diags.0 {
                placed.push(match source_file {
                    Some(s) => s.place(d),
                    None => d,
                });
            }
            placed.sort();
            Err(EngineError::Spec {
                path: path.to_path_buf(),
                diagnostics: placed,
            })
        }
    }
}

/// The registry's connector as the tenant's `crm_config` makes it (custom REST endpoints and
/// authentication, a chosen auth flow): compiled for this route when it differs.
pub(super) fn tenant_entry(
    entry: Arc<super::registry::Entry>,
    mapping: &MappingSpec,
    path: &Path,
    source_file: Option<&crate::spec::SourceFile>,
) -> Result<Arc<super::registry::Entry>, EngineError> {
    let mut warnings = crate::diag::Diagnostics::default();
    match crate::connector::tenant::tenant_spec(&entry.spec, mapping, &mut warnings) {
        Ok(None) => Ok(entry),
        Ok(Some(spec)) => Ok(Arc::new(super::registry::Entry {
            compiled: Arc::new(crate::connector::Connector::compile(spec.clone())?),
            spec,
            path: entry.path.clone(),
        })),
        Err(errors) => Err(EngineError::Spec {
            path: path.to_path_buf(),
            diagnostics: crate::diag::Diagnostics(
                errors
                    .0
                    .into_iter()
                    .map(|d| match source_file {
                        Some(s) => s.place(d),
                        None => d,
                    })
                    .collect(),
            ),
        }),
    }
}

impl Route {
    pub(super) fn build(
        engine: &Engine,
        mut mapping: MappingSpec,
        path: &Path,
        source_file: Option<crate::spec::SourceFile>,
        opts: RouteOptions,
    ) -> Result<Route, EngineError> {
        let e = &engine.0;
        let connector = e.registry.get(&mapping.connector)?;
        let connector = tenant_entry(connector, &mapping, path, source_file.as_ref())?;
        let spec_dir = connector
            .path
            .parent()
            .unwrap_or(Path::new("."))
            .to_path_buf();
        let (override_secrets, base) = match &opts.sandbox {
            Some(sb) => {
                let secrets = credentials_for(&connector.spec, &sb.credentials);
                // The connector's plugins may reach the stand-in, with its credentials, for
                // this engine's lifetime.
                for rel in connector.spec.plugins.values() {
                    e.plugins.grant_extra(
                        &spec_dir.join(rel),
                        crate::plugin::Grants {
                            allowed_hosts: vec![sb.base_url.clone()],
                            secrets: sb
                                .credentials
                                .iter()
                                .map(|(k, v)| (k.clone(), crate::secrets::Secret::new(v.clone())))
                                .collect(),
                            config: [("base_url".to_string(), Value::String(sb.base_url.clone()))]
                                .into_iter()
                                .chain(
                                    sb.credentials
                                        .iter()
                                        .filter(|(k, _)| k.ends_with("_id"))
                                        .map(|(k, v)| (k.clone(), Value::String(v.clone()))),
                                )
                                .collect(),
                            allow_private_networks: true,
                        },
                    );
                }
                // The real tenant's secret references mean nothing to a stand-in.
                let c = &mut mapping.crm_config;
                c.api_token = None;
                c.consumer_key = None;
                c.private_key = None;
                c.username = None;
                c.authentication = None;
                (secrets, Some(sb.base_url.clone()))
            }
            None => (HashMap::new(), None),
        };
        let binding = bind(
            &mapping,
            &connector.spec,
            &e.secrets,
            &override_secrets,
            base,
            opts.dry_run,
        )?;
        let Compiled {
            plan,
            source,
            connector_plugins,
            watch,
        } = compile(engine, &mapping, path, source_file.as_ref(), &connector)?;
        let mut session = e
            .runtime
            .session(connector.compiled.clone(), binding)
            .with_plugins(connector_plugins);
        let sink = opts.dry_run.then(DryRunSink::default);
        if let Some(s) = &sink {
            session = session.with_dry_run(s.clone());
        }
        if let (Some(store), false) = (&e.store, opts.dry_run) {
            session = session.with_token_store(store.clone());
        }
        let options = DeliveryOptions {
            route: path.display().to_string(),
            duplicate_detection: mapping.crm_config.duplicate_detection.clone(),
            dedupe_object: mapping
                .crm_config
                .object_or_default(connector.spec.connector.default_object.as_ref()),
            concurrency: opts.concurrency.unwrap_or(e.limits.concurrency).max(1),
            batch: true,
        };
        Ok(Route(Arc::new(Inner {
            engine: engine.clone(),
            mapping,
            path: path.to_path_buf(),
            plan,
            session,
            sink,
            options,
            source,
            connector,
            built_with: opts,
            _watch: watch,
        })))
    }

    /// The mapping spec.
    pub fn mapping(&self) -> &MappingSpec {
        &self.0.mapping
    }

    /// The mapping spec's file (or the name it was given).
    pub fn path(&self) -> &Path {
        &self.0.path
    }

    /// The tenant.
    pub fn tenant(&self) -> &str {
        &self.0.mapping.tenant
    }

    /// The connector's session (shared rate limiter and token cache of the tenant).
    pub fn session(&self) -> &Session {
        &self.0.session
    }

    /// The connector spec and its file.
    pub fn connector(&self) -> (&ConnectorSpec, &Path) {
        (&self.0.connector.spec, &self.0.connector.path)
    }

    /// The inbound source's spec and file, when the route names one.
    pub fn source(&self) -> Option<(&ConnectorSpec, &Path)> {
        self.0.source.as_ref().map(|s| (&s.spec, s.path.as_path()))
    }

    /// The compiled mapping.
    pub fn plan(&self) -> &CompiledMapping {
        &self.0.plan
    }

    /// The engine.
    pub fn engine(&self) -> &Engine {
        &self.0.engine
    }

    /// The delivery options.
    pub fn delivery_options(&self) -> &DeliveryOptions {
        &self.0.options
    }

    /// Settings and secrets the connector needs and the tenant did not give.
    pub fn missing_settings(&self) -> Vec<String> {
        self.0.session.missing_settings()
    }

    /// Map one record (the clock: now).
    pub fn map(&self, record: &Value) -> Result<Mapped, crate::mapping::RecordError> {
        self.map_at(record, chrono::Utc::now())
    }

    /// Map one record with the clock of `today()` and `now()` set to `now`.
    pub fn map_at(
        &self,
        record: &Value,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Result<Mapped, crate::mapping::RecordError> {
        let session = self.0.plan.plugin_session();
        let ctx = MapContext {
            now,
            secrets: &self.0.engine.0.secrets,
            ext: session.as_ref().map(|s| s as &dyn crate::expr::ExtCalls),
        };
        self.0.plan.apply(record, &ctx)
    }

    /// A delivery item (record key + mapped record).
    pub fn item(&self, key: impl Into<String>, mapped: Mapped) -> DeliveryItem {
        DeliveryItem {
            key: key.into(),
            mapped,
        }
    }

    /// A deliverer over this route's session and the engine's store.
    pub fn deliverer(&self) -> Deliverer {
        let store = if self.0.sink.is_some() {
            None
        } else {
            self.0.engine.0.store.clone()
        };
        Deliverer::new(self.0.session.clone(), store, self.0.options.clone())
    }

    /// Deliver mapped records; every outcome in the report.
    pub async fn deliver(&self, items: Vec<DeliveryItem>) -> DeliveryReport {
        self.deliverer().deliver(items).await
    }

    /// [`Route::deliver`] under a correlation id (a webhook request's).
    pub async fn deliver_correlated(
        &self,
        items: Vec<DeliveryItem>,
        correlation_id: &str,
    ) -> DeliveryReport {
        self.deliverer()
            .with_correlation(correlation_id)
            .deliver(items)
            .await
    }

    /// Deliver NDJSON from `input` with bounded memory: lines are read, judged and mapped on a
    /// blocking thread exactly as `switchyard map` judges them, and delivered as they come;
    /// `on_result` sees each record's result. Lines that are not records are dead-lettered.
    pub async fn deliver_ndjson<R: Read + Send + 'static>(
        &self,
        input: R,
        opts: NdjsonOptions,
        mut on_result: impl FnMut(RecordResult),
    ) -> Result<DeliveryCounts, EngineError> {
        let cid = opts
            .correlation_id
            .clone()
            .unwrap_or_else(|| correlation_id("run"));
        let d = self.deliverer().with_correlation(cid.clone());
        tracing::info!(
            correlation_id = %cid,
            route = %self.0.path.display(),
            tenant = %self.tenant(),
            connector = %self.0.mapping.connector,
            input = opts.input_id.as_deref().unwrap_or("(stream)"),
            "delivery started"
        );
        let store = self
            .0
            .engine
            .0
            .store
            .clone()
            .filter(|_| self.0.sink.is_none());
        let mut lease = None;
        if let (Some(s), Some(owner), Some(id)) = (&store, d.owner(), &opts.input_id) {
            let scope = format!(
                "run\u{1f}{}\u{1f}{}\u{1f}{id}",
                self.tenant(),
                d.namespace()
            );
            lease = Some(scope.clone());
            if let Err(holder) = s.acquire_lease(&scope, owner)? {
                return Err(EngineError::Busy {
                    what: format!("`{id}` for tenant `{}` to {}", self.tenant(), d.namespace()),
                    holder,
                });
            }
        }
        let (tx, mut rx) = tokio::sync::mpsc::channel::<Input>(256);
        let route = self.clone();
        let premapped = opts.premapped;
        let reader = tokio::task::spawn_blocking(move || {
            let session = route.0.plan.plugin_session();
            let ctx = MapContext {
                now: chrono::Utc::now(),
                secrets: &route.0.engine.0.secrets,
                ext: session.as_ref().map(|s| s as &dyn crate::expr::ExtCalls),
            };
            read_ndjson(input, Some(&route.0.plan), premapped, &ctx, |item| {
                tx.blocking_send(item).is_ok()
            })
        });
        let stream = futures::stream::poll_fn(move |cx| rx.poll_recv(cx));
        let counts = d.deliver_stream(stream, &mut on_result).await;
        tracing::info!(
            correlation_id = %cid,
            created = counts.created,
            updated = counts.updated,
            skipped = counts.skipped,
            failed = counts.failed,
            dead_lettered = counts.dead_lettered,
            "delivery finished"
        );
        let read = reader.await;
        if let (Some(s), Some(owner), Some(scope)) = (&store, d.owner(), &lease)
            && let Err(e) = s.release_lease(scope, owner)
        {
            tracing::warn!(error = %e, "releasing the run lease failed");
        }
        match read {
            Ok(Ok(_)) => Ok(counts),
            Ok(Err(e)) => Err(EngineError::Io {
                path: PathBuf::from(opts.input_id.unwrap_or_else(|| "(input)".into())),
                source: e,
            }),
            Err(e) => Err(EngineError::Invalid(format!(
                "the input reader stopped: {e}"
            ))),
        }
    }

    /// Judge one raw input line (a dead letter's kept text) as [`Route::deliver_ndjson`] would.
    pub fn judge_line(&self, line: &[u8], n: usize) -> Option<Input> {
        let session = self.0.plan.plugin_session();
        let ctx = MapContext {
            now: chrono::Utc::now(),
            secrets: &self.0.engine.0.secrets,
            ext: session.as_ref().map(|s| s as &dyn crate::expr::ExtCalls),
        };
        judge_line(
            line,
            n,
            Some(&self.0.plan),
            false,
            &ctx,
            &mut Scratch::default(),
            &mut Vec::new(),
        )
    }

    /// A mapped record from its JSON form (`{"objects", "triggers"}`, trigger names resolved by
    /// this route's mapping).
    pub fn mapped_from_json(&self, v: &Value) -> Option<Mapped> {
        crate::connector::deliver::input::mapped_from_json(v, Some(&self.0.plan))
    }

    /// The requests a dry-run route recorded so far (taken out).
    pub fn dry_run_requests(&self) -> Vec<Value> {
        match &self.0.sink {
            Some(s) => std::mem::take(&mut *s.lock().unwrap_or_else(|p| p.into_inner())),
            None => Vec::new(),
        }
    }

    fn op_for(&self, object: &str, kind: OperationKind) -> Result<String, EngineError> {
        self.0
            .session
            .connector
            .find_op(object, kind)
            .map(|o| o.name.clone())
            .ok_or_else(|| {
                EngineError::Invalid(format!(
                    "connector `{}` declares no {kind:?} operation for object `{object}`",
                    self.0.mapping.connector
                ))
            })
    }

    fn id_vars(&self, object: &str, id: &Value) -> Map<String, Value> {
        let mut v = Map::new();
        v.insert("id".into(), id.clone());
        v.insert(
            "object".into(),
            Value::String(self.0.session.connector.api_name(object).to_string()),
        );
        v
    }

    /// Read one object by id (`None` when the CRM has no such object).
    pub async fn get(&self, object: &str, id: &Value) -> Result<Option<Value>, EngineError> {
        let op = self.op_for(object, OperationKind::Get)?;
        match self
            .0
            .session
            .call(&op, self.id_vars(object, id), Retrying::Safe)
            .await
        {
            Ok(r) => Ok(Some(r.body)),
            Err(crate::connector::ConnectorError::Http {
                status: 404 | 410, ..
            }) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Delete one object by id.
    pub async fn delete(&self, object: &str, id: &Value) -> Result<(), EngineError> {
        let op = self.op_for(object, OperationKind::Delete)?;
        self.0
            .session
            .call(&op, self.id_vars(object, id), Retrying::Safe)
            .await?;
        Ok(())
    }

    /// Search objects whose `field` equals `value` (the connector's search operation).
    pub async fn search(
        &self,
        object: &str,
        field: &str,
        value: &Value,
        limit: Option<usize>,
    ) -> Result<Vec<Value>, EngineError> {
        let op = self.op_for(object, OperationKind::Search)?;
        let norm = crate::dedupe::normalise(field, value).unwrap_or_default();
        let mut vars = Map::new();
        vars.insert(
            "match".into(),
            json!({"field": field, "value": value, "normalised": norm}),
        );
        let mut out = Vec::new();
        self.0
            .session
            .list(&op, vars, limit, |r| out.push(r))
            .await?;
        Ok(out)
    }

    /// List objects (every page, up to `limit`), calling `f` per record.
    pub async fn list(
        &self,
        object: &str,
        limit: Option<usize>,
        f: impl FnMut(Value),
    ) -> Result<usize, EngineError> {
        let op = self.op_for(object, OperationKind::List)?;
        Ok(self.0.session.list(&op, Map::new(), limit, f).await?)
    }

    /// Pull `object` changed since `since` (else the stored cursor) and advance the cursor.
    pub async fn sync(
        &self,
        object: &str,
        since: Option<chrono::DateTime<chrono::Utc>>,
        limit: Option<usize>,
    ) -> Result<crate::connector::sync::SyncResult, EngineError> {
        let store = self.0.engine.0.store.as_deref();
        Ok(crate::connector::sync::pull(&self.0.session, store, object, since, limit).await?)
    }

    /// [`Route::sync`], streaming: each record goes to `f` as its page arrives; `f` answering
    /// `false` stops the pull and leaves the cursor where it was.
    pub async fn sync_each(
        &self,
        object: &str,
        since: Option<chrono::DateTime<chrono::Utc>>,
        limit: Option<usize>,
        f: impl FnMut(Value) -> bool,
    ) -> Result<crate::connector::sync::SyncSummary, EngineError> {
        let store = self.0.engine.0.store.as_deref();
        Ok(
            crate::connector::sync::pull_each(&self.0.session, store, object, since, limit, f)
                .await?,
        )
    }

    /// Call the connector's `test_operation`: `Ok(None)` when it declares none.
    pub async fn test_connection(&self) -> Result<Option<u16>, EngineError> {
        let Some(op) = self
            .0
            .session
            .connector
            .spec
            .connector
            .test_operation
            .clone()
        else {
            return Ok(None);
        };
        let r = self.0.session.call(&op, Map::new(), Retrying::Safe).await?;
        Ok(Some(r.status))
    }

    /// The same route compiled again from its files (the mapping spec, its connector and
    /// source specs re-read) with the options it was built with: for hot reload. The old route
    /// keeps serving if this fails.
    pub fn reload(&self) -> Result<Route, EngineError> {
        let e = &self.0.engine;
        e.0.registry.invalidate(&self.0.mapping.connector);
        if let Some(s) = &self.0.mapping.source {
            e.0.registry.invalidate(s);
        }
        e.route_file(&self.0.path, self.0.built_with.clone())
    }

    /// The files this route was built from (for change detection).
    pub fn files(&self) -> Vec<PathBuf> {
        let mut v = vec![self.0.path.clone(), self.0.connector.path.clone()];
        if let Some(s) = &self.0.source {
            v.push(s.path.clone());
        }
        v
    }
}
