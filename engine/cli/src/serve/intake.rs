//! `POST /v1/webhooks/{tenant}/{source}`: read the body (bounded in size and time), verify it
//! with every distinct verifier of the routes of that tenant and source (any refusal refuses
//! it), keep it once in the inbox (group commit), then either deliver it through every route
//! and answer the routes' reports (`--ack delivered`, the default) or answer 202 with its
//! event id at once and leave it to the delivery workers (`--ack accepted`).

use super::fanout::{self, Mode, Target};
use super::{Ack, App, answer};
use axum::body::{Body, Bytes, HttpBody as _};
use axum::extract::{ConnectInfo, Path, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::Response;
use serde_json::json;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use switchyard::connector::webhook::{Refusal, WebhookRequest};

/// Seconds a refused sender is asked to wait before retrying (queue full, backlog full,
/// shutting down).
const RETRY_AFTER_SECS: &str = "1";

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

/// 503 with `Retry-After`: the sender should come back shortly.
fn busy(code: &str) -> Response {
    let mut r = answer(StatusCode::SERVICE_UNAVAILABLE, json!({ "error": code }));
    r.headers_mut().insert(
        header::RETRY_AFTER,
        HeaderValue::from_static(RETRY_AFTER_SECS),
    );
    r
}

pub(super) async fn webhook(
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
    let mut resp = receive(
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
    if let Ok(v) = HeaderValue::from_str(&cid) {
        resp.headers_mut().insert("x-request-id", v);
    }
    resp
}

#[allow(clippy::too_many_arguments)]
async fn receive(
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
    if app.draining.load(Ordering::Relaxed) {
        return busy("shutting_down");
    }
    let Some(served) = app.sources.get(&(tenant.clone(), source.clone())) else {
        return answer(
            StatusCode::NOT_FOUND,
            json!({"error": format!("no route for tenant `{tenant}` and source `{source}`")}),
        );
    };
    // The versions serving now, held for the whole request (a reload does not change them).
    let targets: Vec<Target> = served.iter().map(|s| Target::of(s)).collect();
    if app.intake.backlog.load(Ordering::Relaxed) >= app.max_backlog {
        app.metrics.refused("backlog_full");
        return busy("backlog_full");
    }
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
    if let Some(refused) = verify(&app, &targets, peer, &method, &uri, &headers, &body, cid).await {
        return refused;
    }
    match app.ack {
        Ack::Accepted => {
            let id = match keep(&app, &tenant, &source, body, cid, false).await {
                Ok(id) => id,
                Err(r) => return r,
            };
            answer(
                StatusCode::ACCEPTED,
                json!({"status": "accepted", "event_id": id, "correlation_id": cid}),
            )
        }
        Ack::Delivered => {
            // Kept and delivered on a task of its own: a sender that hangs up does not stop
            // the delivery halfway, and shutdown waits for it.
            let guard = app.inflight.enter();
            let work = {
                let (app, cid) = (app.clone(), cid.to_string());
                async move {
                    let _guard = guard;
                    let id = match keep(&app, &tenant, &source, body.clone(), &cid, true).await {
                        Ok(id) => id,
                        Err(r) => return r,
                    };
                    let (outcomes, _) =
                        fanout::deliver(&app, id, targets, &body, &cid, Mode::Told).await;
                    for o in &outcomes {
                        if let Err(e) = &o.result {
                            // The sender sees why (secrets redacted); the server's file
                            // layout stays in the log.
                            tracing::warn!(tenant, source, correlation_id = %cid, route = %o.name,
                                error = %e, "webhook record rejected by the mapping");
                        }
                    }
                    let (status, body) = fanout::answer(outcomes, id);
                    answer(StatusCode::from_u16(status).unwrap_or(StatusCode::OK), body)
                }
            };
            // The request's span (its correlation id) goes with the task.
            let work = tracing::Instrument::instrument(work, tracing::Span::current());
            match tokio::spawn(work).await {
                Ok(r) => r,
                Err(e) => {
                    tracing::error!(correlation_id = cid, error = %e, "the webhook delivery task failed; the body stays in the inbox");
                    answer(
                        StatusCode::SERVICE_UNAVAILABLE,
                        json!({"error": "delivery_failed"}),
                    )
                }
            }
        }
    }
}

/// Verify the request once per distinct verifier of the routes (same tenant, source spec,
/// scheme and secrets: one check); the first refusal is the answer.
#[allow(clippy::too_many_arguments)]
async fn verify(
    app: &App,
    targets: &[Target],
    peer: SocketAddr,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: &Bytes,
    cid: &str,
) -> Option<Response> {
    let mut checkers: Vec<Target> = Vec::new();
    for t in targets {
        if !checkers
            .iter()
            .any(|c| c.route.verifier_identity() == t.route.verifier_identity())
        {
            checkers.push(t.clone());
        }
    }
    let url = app.origin.url(peer.ip(), headers, uri);
    let hdrs: Vec<(String, String)> = headers
        .iter()
        .filter_map(|(k, v)| Some((k.as_str().to_string(), v.to_str().ok()?.to_string())))
        .collect();
    let (signed, method) = (body.clone(), method.clone());
    let now = chrono::Utc::now().timestamp();
    let run = checkers.clone();
    let verdict = tokio::task::spawn_blocking(move || {
        let req = WebhookRequest {
            method: method.as_str(),
            url: &url,
            headers: &hdrs,
            body: &signed,
        };
        for (i, c) in run.iter().enumerate() {
            c.route.verify(&req, now).map_err(|r| (i, r))?;
        }
        Ok(())
    })
    .await
    .unwrap_or_else(|e| {
        Err((
            0,
            Refusal::PluginFailed {
                plugin: "(verifier)".into(),
                cause: format!("the verification task failed: {e}"),
            },
        ))
    });
    let (i, refusal) = verdict.err()?;
    let route = &checkers.get(i).or(checkers.first())?.route;
    let code = refusal.code();
    app.metrics.refused(code);
    let detail = route.redactor().redact(&refusal.to_string()).into_owned();
    let (tenant, source) = route.key();
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
    Some(answer(status, json!({ "error": code })))
}

/// Keep the body in the inbox (group commit): its id, or the answer that refuses it.
async fn keep(
    app: &App,
    tenant: &str,
    source: &str,
    body: Bytes,
    cid: &str,
    begun: bool,
) -> Result<i64, Response> {
    use super::commit::KeepError;
    match app.intake.keep(tenant, source, body, cid, begun).await {
        Ok(id) => Ok(id),
        Err(KeepError::Full) => {
            app.metrics.refused("queue_full");
            Err(busy("queue_full"))
        }
        Err(KeepError::Closed) => Err(busy("shutting_down")),
        Err(KeepError::Store(e)) => {
            tracing::error!(tenant, source, correlation_id = cid, error = %e, "webhook not kept: the store refused it");
            Err(answer(
                StatusCode::SERVICE_UNAVAILABLE,
                json!({"error": "store_unavailable"}),
            ))
        }
    }
}
