//! `switchyard serve`: the inbound webhook endpoint. `POST /v1/webhooks/{tenant}/{source}` (also
//! at `/webhooks/{tenant}/{source}`) is
//! verified as the source's connector spec declares (`[inbound] webhook`, a plugin included),
//! mapped with the route's mapping spec and delivered through its connector; the answer is the
//! delivery report as JSON. Undeliverable records are dead-lettered in the store and can be
//! replayed (`switchyard deadletter replay`). `GET /health` answers `ok`; `GET /v1/health`,
//! `GET /v1/ready` and `GET /metrics` (Prometheus) are in `ops.rs`.
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
//! 503 `verifier_unavailable` (a verifier plugin failed) or `store_unavailable` (the body could
//! not be kept; the sender should retry).
//!
//! A verified body is committed to the store's webhook inbox before it is delivered; what a
//! crash leaves there is delivered when `serve` starts again. Routes' spec files are watched
//! (`--reload-secs`): a changed route is swapped in when it compiles.

mod listen;
mod oauth;
mod ops;
mod origin;
mod reload;
mod tenant;

use super::common::{engine, route_file};
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
use switchyard::connector::webhook::{Refusal, WebhookRequest};
use switchyard::engine::{RouteOptions, WebhookError};

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
    /// Seconds between checks of the routes' spec files: a changed route is compiled again and
    /// swapped in when it compiles (a broken version keeps the old one serving, logged).
    /// 0 turns hot reload off.
    #[arg(long, value_name = "SECS", default_value_t = 2)]
    pub reload_secs: u64,
}

struct App {
    engine: switchyard::engine::Engine,
    metrics: ops::Metrics,
    routes: HashMap<(String, String), Arc<reload::Served>>,
    origin: origin::Origin,
    body_timeout: Duration,
    max_body_bytes: usize,
}

pub(super) fn run(a: Args) -> u8 {
    super::block_on(serve(a))
}

async fn serve(a: Args) -> u8 {
    let origin = match origin::Origin::new(a.public_url.as_deref(), &a.trusted_proxy) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("error: {e}");
            return super::EXIT_USAGE;
        }
    };
    // One engine for every route: routes of one tenant and connector share one rate budget
    // and one token cache.
    let engine = match engine(&a.connectors, Some(&a.store), a.plugin_grants.as_deref()) {
        Ok(e) => e,
        Err(e) => {
            eprintln!("error: {e}");
            return super::EXIT_USAGE;
        }
    };
    let mut routes = HashMap::new();
    let mut emulators = Vec::new();
    for path in &a.mapping {
        let opts = RouteOptions {
            concurrency: Some(a.concurrency),
            ..RouteOptions::default()
        };
        let loaded = match route_file(&engine, path, a.sandbox, opts).await {
            Ok((route, emu)) => {
                if let Some(emu) = emu {
                    eprintln!("sandbox: {} emulator at {}", emu.vendor(), emu.base_url());
                    emulators.push(emu);
                }
                engine.webhook_route(route).map_err(|e| e.to_string())
            }
            Err(e) => Err(e),
        };
        match loaded {
            Ok(route) => {
                let key = route.key();
                if route.verification() == "none" {
                    eprintln!(
                        "warning: route {}/{} accepts unsigned webhooks (its source says verification = \"none\")",
                        key.0, key.1
                    );
                }
                eprintln!(
                    "route: POST /v1/webhooks/{}/{} → {} ({}, verification: {})",
                    key.0,
                    key.1,
                    route.route().mapping().connector,
                    path.display(),
                    route.verification()
                );
                if let Some(other) = routes.get(&key) {
                    let other: &Arc<reload::Served> = other;
                    eprintln!(
                        "error: {} and {} both route /webhooks/{}/{}; one tenant and source has one route",
                        other.current().route().path().display(),
                        path.display(),
                        key.0,
                        key.1
                    );
                    return super::EXIT_INVALID;
                }
                routes.insert(key, Arc::new(reload::Served::new(route)));
            }
            Err(e) => {
                eprintln!("error: {e}");
                return super::EXIT_INVALID;
            }
        }
    }
    if a.reload_secs > 0 {
        let watched = routes.values().cloned().collect();
        tokio::spawn(reload::watch(
            engine.clone(),
            watched,
            Duration::from_secs(a.reload_secs),
        ));
    }
    let max_body_bytes = usize::try_from(a.max_body_bytes).unwrap_or(usize::MAX);
    let app = Arc::new(App {
        engine: engine.clone(),
        metrics: ops::Metrics::default(),
        routes,
        origin,
        body_timeout: Duration::from_secs(a.body_timeout_secs),
        max_body_bytes,
    });
    let router = Router::new()
        .route("/health", get(|| async { "ok" }))
        .route("/v1/health", get(ops::health))
        .route("/v1/ready", get(ops::ready))
        .route("/metrics", get(ops::metrics))
        .route("/v1/openapi.json", get(ops::openapi))
        .route("/v1/tenants/{tenant}/routes", get(tenant::routes))
        .route(
            "/v1/tenants/{tenant}/dead-letters",
            get(tenant::dead_letters),
        )
        .route("/v1/oauth/{connector}/authorize", get(oauth::authorize))
        .route("/v1/oauth/{connector}/callback", get(oauth::callback))
        .route(
            "/v1/tenants/{tenant}/connections/{connector}",
            get(oauth::status).delete(oauth::disconnect),
        )
        .route("/v1/webhooks/{tenant}/{source}", post(webhook))
        .route("/webhooks/{tenant}/{source}", post(webhook))
        .with_state(app.clone());
    // Inbox entries accepted before this instant are an earlier process's to recover.
    let started = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
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
    tokio::spawn(recover(engine.clone(), app.clone(), started));
    let limits = listen::Limits {
        header_timeout: Duration::from_secs(a.header_timeout_secs),
        max_connections: usize::try_from(a.max_connections).unwrap_or(usize::MAX),
    };
    listen::serve(listener, router, limits, super::sandbox::stop_signal()).await;
    for emu in emulators {
        emu.shutdown().await;
    }
    if let Err(e) = engine.retire() {
        eprintln!("warning: {e}");
    }
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

/// The request's correlation id: the sender's `X-Request-Id` when it is a plain token, else
/// a fresh one. It is in every log line and dead letter of the request, and in the answer.
fn request_id(headers: &HeaderMap) -> String {
    headers
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .filter(|v| {
            !v.is_empty()
                && v.len() <= 64
                && v.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        })
        .map(str::to_string)
        .unwrap_or_else(|| switchyard::engine::correlation_id("req"))
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
    use tracing::Instrument as _;
    let cid = request_id(&headers);
    let span =
        tracing::info_span!("webhook", correlation_id = %cid, tenant = %tenant, source = %source);
    let started = std::time::Instant::now();
    let mut resp = webhook_inner(
        app.clone(),
        tenant,
        source,
        peer,
        method,
        uri,
        headers,
        body,
        &cid,
    )
    .instrument(span)
    .await;
    app.metrics
        .request(resp.status().as_u16(), started.elapsed());
    if let Ok(v) = axum::http::HeaderValue::from_str(&cid) {
        resp.headers_mut().insert("x-request-id", v);
    }
    resp
}

#[allow(clippy::too_many_arguments)]
async fn webhook_inner(
    app: Arc<App>,
    tenant: String,
    source: String,
    peer: SocketAddr,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
    cid: &str,
) -> Response {
    let Some(route) = app
        .routes
        .get(&(tenant.clone(), source.clone()))
        .map(|s| s.current())
    else {
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
    {
        let url = app.origin.url(peer.ip(), &headers, &uri);
        let hdrs: Vec<(String, String)> = headers
            .iter()
            .filter_map(|(k, v)| Some((k.as_str().to_string(), v.to_str().ok()?.to_string())))
            .collect();
        let (checker, signed) = (route.clone(), body.clone());
        let now = chrono::Utc::now().timestamp();
        let verdict = tokio::task::spawn_blocking(move || {
            let req = WebhookRequest {
                method: method.as_str(),
                url: &url,
                headers: &hdrs,
                body: &signed,
            };
            checker.verify(&req, now)
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
            app.metrics.refused(code);
            let detail = route.redactor().redact(&refusal.to_string()).into_owned();
            tracing::warn!(
                tenant,
                source,
                correlation_id = cid,
                scheme = route.verification(),
                code,
                detail = %detail,
                "webhook refused"
            );
            let status = if code == switchyard::connector::webhook::UNAVAILABLE_CODE {
                StatusCode::SERVICE_UNAVAILABLE
            } else {
                StatusCode::UNAUTHORIZED
            };
            return answer(status, json!({ "error": code }));
        }
    }
    // Durable before anything is answered or delivered: a crash from here on loses nothing
    // (`recover` delivers what is still in the inbox when serve starts again).
    let inbox = match route.route().engine().store().cloned() {
        Some(store) => {
            let (t, s, b, c) = (
                tenant.clone(),
                source.clone(),
                body.clone(),
                cid.to_string(),
            );
            let kept = tokio::task::spawn_blocking(move || {
                store.inbox_accept(&t, &s, &b, &c).map(|id| (store, id))
            })
            .await;
            match kept {
                Ok(Ok(kept)) => Some(kept),
                Ok(Err(e)) => {
                    tracing::error!(tenant, source, correlation_id = cid, error = %e, "webhook not kept: the store refused it");
                    return answer(
                        StatusCode::SERVICE_UNAVAILABLE,
                        json!({"error": "store_unavailable"}),
                    );
                }
                Err(e) => {
                    tracing::error!(tenant, source, correlation_id = cid, error = %e, "webhook not kept");
                    return answer(
                        StatusCode::SERVICE_UNAVAILABLE,
                        json!({"error": "store_unavailable"}),
                    );
                }
            }
        }
        None => None,
    };
    let outcome = route.receive(&body, cid).await;
    // Settled either way: delivered (or dead-lettered), or refused and told to the sender.
    if let Some((store, id)) = inbox
        && let Err(e) = store.inbox_settle(id)
    {
        tracing::warn!(tenant, source, correlation_id = cid, error = %e, "webhook delivered but not marked settled; it will be processed again (safely) at the next start");
    }
    match outcome {
        Ok(report) => {
            app.metrics.report(&report);
            let mut report = serde_json::to_value(&report).unwrap_or(Value::Null);
            route.redactor().redact_json(&mut report);
            answer(StatusCode::OK, report)
        }
        Err(WebhookError::BadBody(e)) => answer(StatusCode::BAD_REQUEST, json!({"error": e})),
        Err(e) => {
            // The sender sees why (secrets redacted); the server's file layout stays in the log.
            tracing::warn!(
                tenant,
                source,
                correlation_id = cid,
                route = %route.route().path().display(),
                error = %e,
                "webhook record rejected by the mapping"
            );
            answer(
                StatusCode::UNPROCESSABLE_ENTITY,
                json!({"error": e.to_string()}),
            )
        }
    }
}

/// Deliver what the webhook inbox still holds (accepted by an earlier process that stopped
/// before settling it): each entry through its route, as if it had just arrived.
/// Only entries accepted before `started` (this process's start, RFC 3339 as the store writes
/// it) are taken: later ones belong to requests this process is answering.
async fn recover(engine: switchyard::engine::Engine, app: Arc<App>, started: String) {
    let Some(store) = engine.store().cloned() else {
        return;
    };
    // In pages (a body can be as large as --max-body-bytes), oldest first.
    let mut after = 0i64;
    let mut announced = false;
    loop {
        let page = store.clone();
        let entries = match tokio::task::spawn_blocking(move || page.inbox_unsettled(after, 64))
            .await
        {
            Ok(Ok(e)) => e,
            Ok(Err(e)) => {
                tracing::error!(error = %e, "cannot read the webhook inbox; accepted webhooks of an earlier run are not delivered");
                return;
            }
            Err(_) => return,
        };
        let entries: Vec<_> = entries
            .into_iter()
            .take_while(|e| e.received_at < started)
            .collect();
        let Some(last) = entries.last() else {
            return;
        };
        after = last.id;
        if !announced {
            announced = true;
            tracing::info!("delivering webhooks accepted before the last stop");
        }
        recover_page(&app, &store, entries).await;
    }
}

/// Deliver one page of inbox entries through their routes and settle them.
async fn recover_page(
    app: &App,
    store: &switchyard::store::Store,
    entries: Vec<switchyard::store::InboxEntry>,
) {
    for e in entries {
        let Some(route) = app
            .routes
            .get(&(e.tenant.clone(), e.source.clone()))
            .map(|s| s.current())
        else {
            tracing::warn!(tenant = %e.tenant, source = %e.source, correlation_id = %e.correlation_id,
                "an accepted webhook has no route now; it stays in the inbox until one serves it");
            continue;
        };
        let outcome = route.receive(&e.body, &e.correlation_id).await;
        match &outcome {
            Ok(r) => {
                app.metrics.report(r);
                app.metrics.recovered();
                tracing::info!(tenant = %e.tenant, source = %e.source, correlation_id = %e.correlation_id,
                created = r.created, updated = r.updated, failed = r.failed, "accepted webhook delivered after restart")
            }
            Err(err) => {
                tracing::warn!(tenant = %e.tenant, source = %e.source, correlation_id = %e.correlation_id,
                error = %err, "accepted webhook refused by its route after restart")
            }
        }
        if let Err(err) = store.inbox_settle(e.id) {
            tracing::warn!(error = %err, "cannot settle a recovered webhook");
        }
    }
}
