//! The HTTP/1.1 accept loop of `serve`. It drives hyper directly because `axum::serve` sets no
//! timeouts: a client must finish sending a request's headers within the header timeout
//! (which also closes idle keep-alive connections), header size is bounded, and at most
//! `max_connections` are served at once (further ones wait in the listen backlog). Each
//! request carries its peer address (`ConnectInfo`) for the trusted-proxy check.
//!
//! Shutdown: when `shutdown` completes the listener is closed at once (new connections are
//! refused), idle kept-alive connections are closed, and requests in flight are answered —
//! for at most the drain time, after which the rest are cut.

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::Request;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};
use tower::ServiceExt as _;

/// Bound on a connection's read buffer, hence on one request's headers (hyper answers 431
/// beyond it). Webhook headers are a few KiB.
const MAX_BUF_BYTES: usize = 64 * 1024;

/// Connection limits.
#[derive(Debug, Clone, Copy)]
pub(super) struct Limits {
    /// Time to receive a request's headers (from its first byte, or from the end of the
    /// previous response on a kept-alive connection).
    pub header_timeout: Duration,
    /// Connections served at once.
    pub max_connections: usize,
}

/// Serves `router` on `listener` until `shutdown` completes, then lets requests in flight
/// finish for at most `drain`. Returns the drain deadline (shutdown's other work shares it).
pub(super) async fn serve(
    listener: TcpListener,
    router: Router,
    limits: Limits,
    shutdown: impl Future<Output = ()>,
    drain: Duration,
) -> tokio::time::Instant {
    let permits = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let (stop, stopped) = watch::channel(false);
    let mut conns = tokio::task::JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            p = permits.clone().acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => break,
            },
            () = &mut shutdown => break,
        };
        let (stream, peer) = tokio::select! {
            a = listener.accept() => match a {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        while conns.try_join_next().is_some() {}
        let router = router.clone();
        let mut stopped = stopped.clone();
        conns.spawn(async move {
            let _permit = permit;
            let _ = stream.set_nodelay(true);
            let svc = hyper::service::service_fn(move |mut req: Request<Incoming>| {
                req.extensions_mut().insert(ConnectInfo(peer));
                router.clone().oneshot(req.map(Body::new))
            });
            let mut builder = hyper::server::conn::http1::Builder::new();
            builder
                .timer(TokioTimer::new())
                .header_read_timeout(limits.header_timeout)
                .max_buf_size(MAX_BUF_BYTES)
                .keep_alive(true);
            let conn = builder.serve_connection(TokioIo::new(stream), svc);
            tokio::pin!(conn);
            tokio::select! {
                _ = conn.as_mut() => {}
                _ = stopped.changed() => {
                    conn.as_mut().graceful_shutdown();
                    let _ = conn.await;
                }
            }
        });
    }
    // No new connections from here on (the backlog's are reset).
    drop(listener);
    let deadline = tokio::time::Instant::now() + drain;
    let _ = stop.send(true);
    let drained = tokio::time::timeout_at(deadline, async {
        while conns.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        conns.abort_all();
    }
    deadline
}
