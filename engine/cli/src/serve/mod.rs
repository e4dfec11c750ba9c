//! `switchyard serve`: the inbound webhook endpoint. `POST /webhooks/{tenant}/{source}` is
//! verified as the source's connector spec declares (`[inbound] webhook`, a plugin included),
//! mapped with the route's mapping spec and delivered through its connector; the answer is the
//! delivery report as JSON. Undeliverable records are dead-lettered in the store and can be
//! replayed (`switchyard deadletter replay`). `GET /health` answers `ok`.
//!
//! A route whose source declares no verification is refused at start, unless the source says
//! `verification = "none"`; so is one whose signing secret is missing or empty. Verification
//! runs on a blocking thread (an HMAC over up to `--max-body-bytes`, or a plugin), never on
//! the async workers. A refused sender is told only a stable code; why goes to the log,
//! redacted with every secret the route holds.
//!
//! Status codes: 200 delivered (the body lists each object's outcome; records the CRM refused
//! are dead-lettered and reported as `failed`), 400 not JSON, 401 `signature_invalid`, 404 no
//! route, 408 `body_timeout`, 413 `body_too_large`, 422 the mapping rejected the record,
//! 503 `verifier_unavailable` (a verifier plugin failed).

mod listen;
mod origin;

use super::run::{Prepared, open_store, options, prepare};
use axum::Router;
use axum::body::{Body, Bytes, HttpBody as _};
use axum::extract::{ConnectInfo, Path, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use switchyard::connector::webhook::{Refusal, Verifier, WebhookRequest};
use switchyard::connector::{Deliverer, DeliveryItem, Path as JsonPath, Secret, SecretResolver};
use switchyard::secrets::Redactor;
use switchyard::spec::connector::{ConnectorSpec, Verification};

/// Arguments of `switchyard serve`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Route mapping specs (each names its tenant, source and connector). Repeatable.
    #[arg(long, value_name = "FILE", required = true)]
    pub mapping: Vec<PathBuf>,
    /// Folder of connector specs.
    #[arg(long, value_name = "DIR", default_value = "connector-specs")]
    pub connectors: PathBuf,
    /// The engine's store (dedupe index, dead letters, tokens).
    #[arg(
        long,
        value_name = "FILE",
        default_value = ".switchyard/switchyard.sqlite"
    )]
    pub store: PathBuf,
    /// Address to listen on (port 0 picks a free one; the address is printed on stderr).
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8080")]
    pub listen: String,
    /// Deliver to in-process emulators of the routes' connectors.
    #[arg(long)]
    pub sandbox: bool,
    /// The operator's plugin grants (TOML). Default: `$SWITCHYARD_PLUGIN_GRANTS`, else none.
    #[arg(long, value_name = "FILE")]
    pub plugin_grants: Option<PathBuf>,
    /// Records in flight at once per request.
    #[arg(long, default_value_t = 8)]
    pub concurrency: usize,
    /// The public base URL senders call (e.g. `https://hooks.example.com`), which URL-signing
    /// schemes (HubSpot v3) sign. Default: the scheme and host a trusted proxy forwards, else
    /// `http://` and the request's Host.
    #[arg(long, value_name = "URL", env = "SWITCHYARD_PUBLIC_URL")]
    pub public_url: Option<String>,
    /// A reverse proxy whose `Forwarded` / `X-Forwarded-Proto` / `X-Forwarded-Host` headers are
    /// believed (an address or CIDR range, e.g. `10.0.0.0/8`). Repeatable. Default: none (the
    /// headers are ignored).
    #[arg(long, value_name = "CIDR")]
    pub trusted_proxy: Vec<String>,
    /// Seconds a client has to send a request's headers (idle kept-alive connections are
    /// closed after as long).
    #[arg(long, value_name = "SECS", default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..))]
    pub header_timeout_secs: u64,
    /// Seconds a client has to send a request's body.
    #[arg(long, value_name = "SECS", default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..))]
    pub body_timeout_secs: u64,
    /// Largest request body accepted, in bytes (larger ones get 413).
    #[arg(long, value_name = "BYTES", default_value_t = 1024 * 1024, value_parser = clap::value_parser!(u64).range(1..))]
    pub max_body_bytes: u64,
    /// Connections served at once (more wait to be accepted).
    #[arg(long, value_name = "N", default_value_t = 256, value_parser = clap::value_parser!(u64).range(1..))]
    pub max_connections: u64,
}

struct Route {
    path: PathBuf,
    prepared: Prepared,
    /// `None` only when the source says `verification = "none"`.
    verifier: Option<Arc<Verifier>>,
    idempotency: Option<JsonPath>,
    /// Every secret the route holds (connector, source signing secrets, plugin grants).
    redactor: Redactor,
}

struct App {
    routes: HashMap<(String, String), Route>,
    store: Arc<switchyard::store::Store>,
    concurrency: usize,
    origin: origin::Origin,
    body_timeout: Duration,
    max_body_bytes: usize,
}

pub(super) fn run(a: Args) -> u8 {
    super::block_on(serve(a))
}

fn load_route(
    path: &std::path::Path,
    prepared: Prepared,
    connectors: &std::path::Path,
    plugins: &switchyard::plugin::PluginEnv,
) -> Result<((String, String), Route), String> {
    let m = &prepared.mapping;
    let source = m.source.clone().ok_or_else(|| {
        format!(
            "{}: /source: a webhook route needs the inbound source it receives from",
            path.display()
        )
    })?;
    let route = format!("route {}/{source} ({})", m.tenant, path.display());
    let (spec, spec_path): (ConnectorSpec, PathBuf) =
        switchyard::connector::find_spec_file(connectors, &source).map_err(|e| e.to_string())?;
    let inbound = spec.inbound.as_ref().ok_or_else(|| {
        format!(
            "{route}: source `{source}` ({}) is not an inbound source (no [inbound] table)",
            spec_path.display()
        )
    })?;
    let resolver = SecretResolver::from_env().map_err(|e| e.to_string())?;
    let mut secrets = HashMap::new();
    for (name, reference) in &m.source_secrets {
        let v = resolver
            .resolve(reference)
            .map_err(|e| format!("{}: /source_secrets/{name}: {e}", path.display()))?;
        secrets.insert(name.clone(), v);
    }
    let set = plugins
        .load_set(&spec_path, &spec.plugins, &m.tenant)
        .map_err(|e| e.to_string())?;
    let redactor = route_redactor(
        &prepared, path, &secrets, &spec, &spec_path, connectors, plugins,
    );
    let verifier = match (&inbound.webhook, inbound.verification) {
        (Some(scheme), Verification::Required) => Some(
            Verifier::new(scheme, &secrets, Some(&set))
                .map_err(|e| {
                    let reference = e.secret().and_then(|n| m.source_secrets.get(n));
                    verifier_error(&route, &e, reference)
                })?
                .with_redactor(redactor.clone()),
        ),
        (None, Verification::None) => None,
        (None, Verification::Required) => {
            return Err(format!(
                "{route}: source `{source}` ({}) declares no webhook verification: anyone could \
                 post records; declare `webhook = {{ scheme = … }}` in its [inbound] table, or \
                 `verification = \"none\"` to accept unsigned webhooks",
                spec_path.display()
            ));
        }
        (Some(_), Verification::None) => {
            return Err(format!(
                "{route}: source `{source}` ({}): /inbound/verification: `none` contradicts the \
                 declared webhook scheme",
                spec_path.display()
            ));
        }
    };
    let idempotency = inbound
        .idempotency_key
        .as_deref()
        .map(JsonPath::compile)
        .transpose()
        .map_err(|e| format!("{}: /inbound/idempotency_key: {e}", spec_path.display()))?;
    Ok((
        (m.tenant.clone(), source),
        Route {
            path: path.to_path_buf(),
            verifier: verifier.map(Arc::new),
            idempotency,
            redactor,
            prepared,
        },
    ))
}

/// A verifier that cannot be built, named by route and (for secrets) by the reference the
/// route gives — never by the value.
fn verifier_error(
    route: &str,
    e: &switchyard::connector::webhook::VerifierError,
    reference: Option<&String>,
) -> String {
    let Some(name) = e.secret() else {
        return format!("{route}: {e}");
    };
    match reference {
        Some(r) if switchyard::secrets::looks_like_ref(r) => {
            format!("{route}: /source_secrets/{name} ({r}): {e}")
        }
        Some(_) => format!("{route}: /source_secrets/{name} (a literal value): {e}"),
        None => format!("{route}: /source_secrets/{name}: {e}; add it to the route"),
    }
}

/// Every secret value a route holds: its connector's secrets, its source's signing secrets
/// and what the operator granted the plugins of its source, its connector and its mapping.
fn route_redactor(
    prepared: &Prepared,
    mapping_path: &std::path::Path,
    source_secrets: &HashMap<String, Secret>,
    source_spec: &ConnectorSpec,
    source_path: &std::path::Path,
    connectors: &std::path::Path,
    plugins: &switchyard::plugin::PluginEnv,
) -> Redactor {
    let m = &prepared.mapping;
    let mut values: Vec<Secret> = source_secrets.values().cloned().collect();
    values.extend(prepared.session.binding.secrets.values().cloned());
    let dir = |p: &std::path::Path| {
        p.parent()
            .unwrap_or(std::path::Path::new("."))
            .to_path_buf()
    };
    let mut manifests: Vec<PathBuf> = (source_spec.plugins.values())
        .map(|r| dir(source_path).join(r))
        .collect();
    manifests.extend(m.plugins.values().map(|r| dir(mapping_path).join(r)));
    if let Ok((target, target_path)) =
        switchyard::connector::find_spec_file(connectors, &m.connector)
    {
        manifests.extend(target.plugins.values().map(|r| dir(&target_path).join(r)));
    }
    for manifest in manifests {
        // Grants are keyed by the wasm's pinned digest.
        let Some(sha256) = switchyard::plugin::read_manifest(&manifest, 1 << 20)
            .ok()
            .and_then(|info| info.sha256)
        else {
            continue;
        };
        let g = match plugins.grants(&manifest, &m.tenant) {
            switchyard::plugin::GrantSource::Fixed(g) => Ok(g),
            switchyard::plugin::GrantSource::BySha256(lookup) => lookup(&sha256),
        };
        if let Ok(g) = g {
            values.extend(g.secrets.into_values());
        }
    }
    Redactor::new(values.iter().map(Secret::expose))
}

async fn serve(a: Args) -> u8 {
    let origin = match origin::Origin::new(a.public_url.as_deref(), &a.trusted_proxy) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("error: {e}");
            return super::EXIT_USAGE;
        }
    };
    let plugins = match switchyard::plugin::PluginEnv::discover(a.plugin_grants.as_deref()) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("error: {e}");
            return super::EXIT_USAGE;
        }
    };
    let store = match open_store(&a.store) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            return super::EXIT_USAGE;
        }
    };
    let mut routes = HashMap::new();
    for path in &a.mapping {
        let loaded = match prepare(path, &a.connectors, a.sandbox, false, &plugins).await {
            Ok(p) => load_route(path, p, &a.connectors, &plugins),
            Err(e) => Err(e),
        };
        match loaded {
            Ok((key, mut route)) => {
                if let Some(emu) = &route.prepared.emulator {
                    eprintln!("sandbox: {} emulator at {}", emu.vendor(), emu.base_url());
                }
                route.prepared.session = route
                    .prepared
                    .session
                    .clone()
                    .with_token_store(store.clone());
                let verified = match &route.verifier {
                    Some(v) => v.scheme(),
                    None => {
                        eprintln!(
                            "warning: route {}/{} accepts unsigned webhooks (its source says verification = \"none\")",
                            key.0, key.1
                        );
                        "none"
                    }
                };
                eprintln!(
                    "route: POST /webhooks/{}/{} → {} ({}, verification: {verified})",
                    key.0,
                    key.1,
                    route.prepared.mapping.connector,
                    path.display()
                );
                routes.insert(key, route);
            }
            Err(e) => {
                eprintln!("error: {e}");
                return super::EXIT_INVALID;
            }
        }
    }
    let max_body_bytes = usize::try_from(a.max_body_bytes).unwrap_or(usize::MAX);
    let app = Arc::new(App {
        routes,
        store,
        concurrency: a.concurrency,
        origin,
        body_timeout: Duration::from_secs(a.body_timeout_secs),
        max_body_bytes,
    });
    let router = Router::new()
        .route("/health", get(|| async { "ok" }))
        .route("/webhooks/{tenant}/{source}", post(webhook))
        .with_state(app);
    let listener = match tokio::net::TcpListener::bind(&a.listen).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("error: cannot listen on {}: {e}", a.listen);
            return super::EXIT_USAGE;
        }
    };
    match listener.local_addr() {
        Ok(addr) => eprintln!("listening on http://{addr}"),
        Err(e) => eprintln!("listening ({e})"),
    }
    let limits = listen::Limits {
        header_timeout: Duration::from_secs(a.header_timeout_secs),
        max_connections: usize::try_from(a.max_connections).unwrap_or(usize::MAX),
    };
    listen::serve(listener, router, limits, super::sandbox::stop_signal()).await;
    super::EXIT_OK
}

fn answer(status: StatusCode, body: Value) -> Response {
    (status, axum::Json(body)).into_response()
}

/// Why a body was not read.
enum BodyError {
    TooLarge,
    Unreadable,
}

/// The whole body, refused as soon as it exceeds `limit` bytes (before reading, when its
/// Content-Length says so).
async fn read_body(mut body: Body, limit: usize) -> Result<Bytes, BodyError> {
    let declared = body.size_hint().exact();
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(BodyError::TooLarge);
    }
    let cap = declared.map_or(0, |n| usize::try_from(n).unwrap_or(limit));
    let mut out = Vec::with_capacity(cap.min(limit));
    while let Some(frame) =
        std::future::poll_fn(|cx| std::pin::Pin::new(&mut body).poll_frame(cx)).await
    {
        let frame = frame.map_err(|_| BodyError::Unreadable)?;
        if let Ok(data) = frame.into_data() {
            if out.len() + data.len() > limit {
                return Err(BodyError::TooLarge);
            }
            out.extend_from_slice(&data);
        }
    }
    Ok(Bytes::from(out))
}

async fn webhook(
    State(app): State<Arc<App>>,
    Path((tenant, source)): Path<(String, String)>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let Some(route) = app.routes.get(&(tenant.clone(), source.clone())) else {
        return answer(
            StatusCode::NOT_FOUND,
            json!({"error": format!("no route for tenant `{tenant}` and source `{source}`")}),
        );
    };
    let body =
        match tokio::time::timeout(app.body_timeout, read_body(body, app.max_body_bytes)).await {
            Ok(Ok(b)) => b,
            Ok(Err(BodyError::TooLarge)) => {
                return answer(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    json!({"error": "body_too_large", "max_bytes": app.max_body_bytes}),
                );
            }
            Ok(Err(BodyError::Unreadable)) => {
                return answer(StatusCode::BAD_REQUEST, json!({"error": "body_unreadable"}));
            }
            Err(_) => {
                return answer(
                    StatusCode::REQUEST_TIMEOUT,
                    json!({"error": "body_timeout"}),
                );
            }
        };
    if let Some(verifier) = &route.verifier {
        let url = app.origin.url(peer.ip(), &headers, &uri);
        let hdrs: Vec<(String, String)> = headers
            .iter()
            .filter_map(|(k, v)| Some((k.as_str().to_string(), v.to_str().ok()?.to_string())))
            .collect();
        let (verifier, signed) = (verifier.clone(), body.clone());
        let now = chrono::Utc::now().timestamp();
        let verdict = tokio::task::spawn_blocking(move || {
            let req = WebhookRequest {
                method: method.as_str(),
                url: &url,
                headers: &hdrs,
                body: &signed,
            };
            verifier.verify(&req, now)
        })
        .await
        .unwrap_or_else(|e| {
            Err(Refusal::PluginFailed {
                plugin: "(verifier)".into(),
                cause: format!("the verification task failed: {e}"),
            })
        });
        if let Err(refusal) = verdict {
            let code = refusal.code();
            let detail = route.redactor.redact(&refusal.to_string()).into_owned();
            tracing::warn!(tenant, source, scheme = route.verifier.as_ref().map(|v| v.scheme()), code, detail = ?detail, "webhook refused");
            let status = if code == switchyard::connector::webhook::UNAVAILABLE_CODE {
                StatusCode::SERVICE_UNAVAILABLE
            } else {
                StatusCode::UNAUTHORIZED
            };
            return answer(status, json!({ "error": code }));
        }
    }
    let records: Vec<Value> = match serde_json::from_slice::<Value>(&body) {
        Ok(Value::Array(a)) => a,
        Ok(v @ Value::Object(_)) => vec![v],
        Ok(_) => {
            return answer(
                StatusCode::BAD_REQUEST,
                json!({"error": "the body must be a JSON object or an array of objects"}),
            );
        }
        Err(e) => {
            return answer(
                StatusCode::BAD_REQUEST,
                json!({"error": format!("the body is not JSON: {e}")}),
            );
        }
    };
    let Some(plan) = route.prepared.plan.as_ref() else {
        return answer(
            StatusCode::INTERNAL_SERVER_ERROR,
            json!({"error": "no mapping plan"}),
        );
    };
    let items = match map_records(plan, route, &records) {
        Ok(items) => items,
        Err(e) => {
            // The sender sees why (a mapping plugin's text redacted); the server's file
            // layout stays in the log.
            let e = route.redactor.redact(&e).into_owned();
            tracing::warn!(tenant, source, route = %route.path.display(), error = %e, "webhook record rejected by the mapping");
            return answer(StatusCode::UNPROCESSABLE_ENTITY, json!({"error": e}));
        }
    };
    let m = &route.prepared.mapping;
    let opts = options(m, &route.prepared.session, &route.path, app.concurrency);
    let d = Deliverer::new(
        route.prepared.session.clone(),
        Some(app.store.clone()),
        opts,
    );
    let report = d.deliver(items).await;
    let mut report = serde_json::to_value(&report).unwrap_or(Value::Null);
    route.redactor.redact_json(&mut report);
    answer(StatusCode::OK, report)
}

/// Maps every record of one request (synchronous: plugin calls block on the plugin runtime).
fn map_records(
    plan: &switchyard::mapping::CompiledMapping,
    route: &Route,
    records: &[Value],
) -> Result<Vec<DeliveryItem>, String> {
    let secrets = switchyard::secrets::default_provider();
    let session = plan.plugin_session();
    let ctx = switchyard::mapping::MapContext {
        now: chrono::Utc::now(),
        secrets: &secrets,
        ext: session
            .as_ref()
            .map(|s| s as &dyn switchyard::expr::ExtCalls),
    };
    let mut items = Vec::with_capacity(records.len());
    for (i, r) in records.iter().enumerate() {
        let mapped = plan
            .apply(r, &ctx)
            .map_err(|e| format!("record {i}: {e}"))?;
        let key = route
            .idempotency
            .as_ref()
            .and_then(|p| p.first(r))
            .map(switchyard::connector::scalar)
            .filter(|k| !k.is_empty())
            .unwrap_or_else(|| super::run::content_key(&r.to_string()));
        items.push(DeliveryItem { key, mapped });
    }
    Ok(items)
}
