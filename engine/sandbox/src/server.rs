//! The HTTP front of every emulator: accepts connections, numbers requests, injects faults,
//! enforces the rate limit with the vendor's throttling answer, then hands the request to the
//! vendor's router.
//!
//! It drives hyper directly rather than `axum::serve` because two faults need control over
//! the connection itself: `drop` closes it without writing a response, and `timeout` holds it
//! and then does the same.

use super::faults::{FaultKind, TIMEOUT_HOLD};
use super::state::{Shared, lock};
use super::vendor::api;
use axum::Router;
use axum::body::Body;
use axum::http::{HeaderValue, Request, Response, header};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tower::ServiceExt as _;

/// Stops the server when told to or when dropped.
pub(crate) struct ServerHandle {
    task: Option<tokio::task::JoinHandle<()>>,
}

impl ServerHandle {
    pub async fn shutdown(mut self) {
        if let Some(t) = self.task.take() {
            t.abort();
            let _ = t.await;
        }
    }
}

impl Drop for ServerHandle {
    fn drop(&mut self) {
        if let Some(t) = self.task.take() {
            t.abort();
        }
    }
}

/// The service's error: hyper closes the connection without a response.
#[derive(Debug)]
struct Dropped;

impl std::fmt::Display for Dropped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("connection dropped by fault injection")
    }
}

impl std::error::Error for Dropped {}

/// Serves `router` behind the fault and rate-limit front until the handle is shut down.
pub(crate) fn serve(
    listener: tokio::net::TcpListener,
    shared: Arc<Shared>,
    router: Router,
) -> ServerHandle {
    let task = tokio::spawn(async move {
        // Connection tasks live in the set, so aborting this task aborts them all.
        let mut conns = tokio::task::JoinSet::new();
        loop {
            tokio::select! {
                accepted = listener.accept() => {
                    let Ok((stream, _)) = accepted else { continue };
                    let _ = stream.set_nodelay(true);
                    let shared = shared.clone();
                    let router = router.clone();
                    conns.spawn(async move {
                        let svc = hyper::service::service_fn(move |req: Request<Incoming>| {
                            handle(shared.clone(), router.clone(), req)
                        });
                        let _ = hyper::server::conn::http1::Builder::new()
                            .keep_alive(true)
                            .serve_connection(TokioIo::new(stream), svc)
                            .await;
                    });
                }
                Some(_) = conns.join_next(), if !conns.is_empty() => {}
            }
        }
    });
    ServerHandle { task: Some(task) }
}

async fn handle(
    shared: Arc<Shared>,
    router: Router,
    req: Request<Incoming>,
) -> Result<Response<Body>, Dropped> {
    let api = api(shared.vendor);
    let n = shared.next_request(req.method().as_str(), req.uri().path());
    let faults = shared.faults();
    let fault = faults.decide(shared.seed, n);
    if let Some(f) = fault {
        shared.count_fault(f);
    }
    match fault {
        Some(FaultKind::Drop) => return Err(Dropped),
        Some(FaultKind::Timeout) => {
            tokio::time::sleep(TIMEOUT_HOLD).await;
            return Err(Dropped);
        }
        Some(FaultKind::Slow { ms }) => tokio::time::sleep(Duration::from_millis(ms)).await,
        _ => {}
    }
    if faults.slow_ms > 0 {
        tokio::time::sleep(Duration::from_millis(faults.slow_ms)).await;
    }
    if let Some(FaultKind::ServerError { status }) = fault {
        let mut resp = api.server_error(&shared, status);
        resp.headers_mut()
            .insert("x-sandbox-request", HeaderValue::from(n));
        shared.count_status(resp.status().as_u16(), false);
        return Ok(resp);
    }

    // The search limit is a window of its own, checked first: a refused search does not use a
    // slot of the general limit.
    let is_search = api.is_search(req.method(), req.uri().path());
    let search_refusal = match &shared.search_limiter {
        Some(l) if is_search => {
            let d = lock(l).check(Instant::now());
            (!d.allowed).then_some(d)
        }
        _ => None,
    };
    if is_search {
        shared.count_search(search_refusal.is_some());
    }
    if let Some(d) = search_refusal {
        let mut resp = api.search_throttled(&shared, &d);
        let h = resp.headers_mut();
        h.insert("x-sandbox-request", HeaderValue::from(n));
        // Whole seconds until a slot frees, at least 1 (the header cannot say "0.2").
        h.entry(header::RETRY_AFTER).or_insert_with(|| {
            HeaderValue::from(d.retry_after.as_secs_f64().ceil().max(1.0) as u64)
        });
        shared.count_status(resp.status().as_u16(), true);
        return Ok(resp);
    }

    let decision = if api.exempt(req.uri().path()) {
        None
    } else {
        Some(lock(&shared.limiter).check(Instant::now()))
    };
    let forced = matches!(fault, Some(FaultKind::RateLimit));
    let mut resp = match decision {
        Some(d) if !d.allowed || forced => api.throttled(&shared, &d),
        None if forced => {
            let refusal = lock(&shared.limiter).refuse();
            api.throttled(&shared, &refusal)
        }
        _ => match router.oneshot(same_path(api, req).map(Body::new)).await {
            Ok(r) => r,
            Err(never) => match never {},
        },
    };
    let throttled_now = forced || decision.is_some_and(|d| !d.allowed);
    if let Some(d) = &decision {
        api.limit_headers(&shared, d, resp.headers_mut());
    }
    resp.headers_mut()
        .entry("x-sandbox-request")
        .or_insert_with(|| HeaderValue::from(n));
    if let Some(FaultKind::Malformed) = fault {
        resp = garble(resp).await;
    }
    shared.count_status(resp.status().as_u16(), throttled_now);
    Ok(resp)
}

/// The request with the path the vendor routes it by ([`super::vendor::Emulated::same_path`]).
fn same_path<B>(api: &dyn super::vendor::Emulated, mut req: Request<B>) -> Request<B> {
    if let Some(path) = api.same_path(req.uri().path()) {
        let target = match req.uri().query() {
            Some(q) => format!("{path}?{q}"),
            None => path,
        };
        if let Ok(uri) = target.parse() {
            *req.uri_mut() = uri;
        }
    }
    req
}

/// Keeps the headers, answers 200 and cuts the body short so it no longer parses.
async fn garble(resp: Response<Body>) -> Response<Body> {
    let (mut parts, body) = resp.into_parts();
    let bytes = axum::body::to_bytes(body, usize::MAX)
        .await
        .unwrap_or_default();
    let mut cut = bytes.slice(..bytes.len() / 2).to_vec();
    if cut.is_empty() {
        cut = b"{\"results\":[{\"id\":".to_vec();
    }
    cut.extend_from_slice(b"\x00\xff");
    parts.status = axum::http::StatusCode::OK;
    parts.headers.remove(header::CONTENT_LENGTH);
    parts.headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json;charset=utf-8"),
    );
    Response::from_parts(parts, Body::from(cut))
}
