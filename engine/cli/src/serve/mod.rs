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
use switchyard::engine::{RouteOptions, WebhookError, WebhookRoute};

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

struct App {
    routes: HashMap<(String, String), WebhookRoute>,
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
                    "route: POST /webhooks/{}/{} → {} ({}, verification: {})",
                    key.0,
                    key.1,
                    route.route().mapping().connector,
                    path.display(),
                    route.verification()
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
    let mut resp = webhook_inner(app, tenant, source, peer, method, uri, headers, body, &cid)
        .instrument(span)
        .await;
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
    match route.receive(&body, cid).await {
        Ok(report) => {
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
