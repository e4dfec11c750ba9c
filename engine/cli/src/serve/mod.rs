//! `switchyard serve`: the inbound webhook endpoint. `POST /v1/webhooks/{tenant}/{source}` (also
//! at `/webhooks/{tenant}/{source}`) is verified as the source's connector spec declares
//! (`[inbound] webhook`, a plugin included), kept in the store's inbox, mapped with each
//! route's mapping spec and delivered through its connector (`intake.rs`). Several routes
//! (mapping specs) of one tenant and source fan out: the body is verified by each distinct
//! verifier, kept once and delivered through every route (`fanout.rs`). Undeliverable
//! records are dead-lettered in the store and can be replayed (`switchyard deadletter
//! replay`). `GET /health` answers `ok`; `GET /v1/health`, `GET /v1/ready` and `GET
//! /metrics` (Prometheus) are in `ops.rs`, the tenant endpoints in `tenant.rs`.
//!
//! A route whose source declares no verification is refused at start, unless the source says
//! `verification = "none"`; so is one whose signing secret is missing or empty. Verification
//! runs on a blocking thread (an HMAC over up to `--max-body-bytes`, or a plugin), never on
//! the async workers. A refused sender is told only a stable code; why goes to the log,
//! redacted with every secret the route holds.
//!
//! Two acknowledgement modes (`--ack`): `delivered` (the default) answers 200 with every
//! route's delivery report once the body is delivered; `accepted` answers 202 with the event
//! id as soon as the body is committed, and a bounded pool of delivery workers drains the
//! inbox in order per tenant and source (`workers.rs`). Either way bodies are committed in
//! groups (`commit.rs`: one transaction for everything waiting), and a full queue or inbox is
//! answered 503 with `Retry-After`.
//!
//! Status codes: 200 delivered (the body lists each object's and each route's outcome;
//! records the CRM refused are dead-lettered and reported as `failed`), 202 accepted, 400 not
//! JSON, 401 `signature_invalid`, 404 no route, 408 `body_timeout`, 413 `body_too_large`, 422
//! every route's mapping rejected the record, 503 `verifier_unavailable` (a verifier plugin
//! failed), `store_unavailable` (the body could not be kept), `queue_full`, `backlog_full` or
//! `shutting_down` (retry later).
//!
//! A verified body is committed to the store's webhook inbox before it is delivered; what a
//! crash leaves there is delivered when `serve` starts again, to each route that had not
//! settled it. Routes' spec files are watched (`--reload-secs`): a changed route is swapped
//! in when it compiles. On SIGTERM or SIGINT the listener closes, requests and deliveries in
//! flight finish (within `--drain-secs`), and what could not finish stays in the inbox.

mod commit;
mod fanout;
mod intake;
mod listen;
mod oauth;
mod ops;
mod origin;
mod reload;
mod tenant;
mod workers;

use super::common::{engine, route_file};
use axum::Router;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::Value;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;
use switchyard::engine::RouteOptions;

/// When a webhook is answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Ack {
    /// After it is delivered through every route: 200 with the routes' delivery reports.
    Delivered,
    /// As soon as it is durably kept: 202 with its event id; delivery workers deliver it.
    Accepted,
}

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
    /// When a webhook is answered: `delivered` (200 with each route's delivery report) or
    /// `accepted` (202 with the event id as soon as the body is committed to the inbox;
    /// delivery workers deliver it, in order per tenant and source).
    #[arg(long, value_enum, default_value_t = Ack::Delivered)]
    pub ack: Ack,
    /// Delivery workers draining the inbox (with `--ack accepted`; otherwise they only
    /// deliver what an earlier process left). One tenant and source is served by one worker
    /// at a time, in order.
    #[arg(long, value_name = "N", default_value_t = 4, value_parser = clap::value_parser!(u64).range(1..=1024))]
    pub workers: u64,
    /// Verified bodies waiting for their group commit at most; beyond, senders get 503
    /// `queue_full` with `Retry-After` (memory stays bounded by this many bodies).
    #[arg(long, value_name = "N", default_value_t = 4096, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    pub queue_capacity: u64,
    /// Accepted webhooks not yet settled (the inbox) at most; beyond, senders get 503
    /// `backlog_full` with `Retry-After` until the workers catch up.
    #[arg(long, value_name = "N", default_value_t = 100_000, value_parser = clap::value_parser!(u64).range(1..))]
    pub max_backlog: u64,
    /// Times the processing of an inbox entry may begin without finishing (a crash, a
    /// panic, a settlement the store refused) before its records are moved to the dead
    /// letters instead of being tried again.
    #[arg(long, value_name = "N", default_value_t = 5, value_parser = clap::value_parser!(u64).range(1..=1000))]
    pub max_attempts: u64,
    /// Seconds shutdown (SIGTERM, SIGINT) waits for requests and deliveries in flight; what
    /// has not finished then stays in the inbox for the next start.
    #[arg(long, value_name = "SECS", default_value_t = 30)]
    pub drain_secs: u64,
}

struct App {
    engine: switchyard::engine::Engine,
    metrics: ops::Metrics,
    /// The routes of each (tenant, source), in the order given.
    sources: HashMap<(String, String), Vec<Arc<reload::Served>>>,
    origin: origin::Origin,
    body_timeout: std::time::Duration,
    max_body_bytes: usize,
    ack: Ack,
    intake: commit::Intake,
    max_backlog: u64,
    /// Set when shutdown begins: new webhooks are answered 503 `shutting_down`.
    draining: AtomicBool,
    /// Inline deliveries (`--ack delivered`) still running.
    inflight: Inflight,
}

/// Work in flight that shutdown waits for.
#[derive(Default)]
struct Inflight {
    n: Arc<AtomicUsize>,
    idle: Arc<tokio::sync::Notify>,
}

/// One piece of work in flight (dropped when it ends).
struct InflightGuard {
    n: Arc<AtomicUsize>,
    idle: Arc<tokio::sync::Notify>,
}

impl Inflight {
    fn enter(&self) -> InflightGuard {
        self.n.fetch_add(1, Ordering::SeqCst);
        InflightGuard {
            n: self.n.clone(),
            idle: self.idle.clone(),
        }
    }

    /// Waits until nothing is in flight or `deadline` passes; whether it is idle.
    async fn wait_idle(&self, deadline: tokio::time::Instant) -> bool {
        loop {
            let idle = self.idle.notified();
            if self.n.load(Ordering::SeqCst) == 0 {
                return true;
            }
            if tokio::time::timeout_at(deadline, idle).await.is_err() {
                return self.n.load(Ordering::SeqCst) == 0;
            }
        }
    }
}

impl Drop for InflightGuard {
    fn drop(&mut self) {
        if self.n.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.idle.notify_waiters();
        }
    }
}

/// A route's name: its mapping spec's file name without the extension.
fn route_name(path: &std::path::Path) -> String {
    path.file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| path.display().to_string())
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
    let Some(store) = engine.store().cloned() else {
        eprintln!("error: serve needs a store");
        return super::EXIT_USAGE;
    };
    let mut sources: HashMap<(String, String), Vec<Arc<reload::Served>>> = HashMap::new();
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
        let route = match loaded {
            Ok(r) => r,
            Err(e) => {
                eprintln!("error: {e}");
                return super::EXIT_INVALID;
            }
        };
        let key = route.key();
        let name = route_name(path);
        if route.verification() == "none" {
            eprintln!(
                "warning: route {}/{} accepts unsigned webhooks (its source says verification = \"none\")",
                key.0, key.1
            );
        }
        let same = sources.entry(key.clone()).or_default();
        // The inbox remembers which routes settled an entry by name: one name, one route.
        if let Some(other) = same.iter().find(|s| s.name == name) {
            eprintln!(
                "error: {} and {} both route /webhooks/{}/{} under the name `{name}` (a route is named by its file name); rename one",
                other.current().route().path().display(),
                path.display(),
                key.0,
                key.1
            );
            return super::EXIT_INVALID;
        }
        eprintln!(
            "route: POST /v1/webhooks/{}/{} → {} (route `{name}`, {}, verification: {})",
            key.0,
            key.1,
            route.route().mapping().connector,
            path.display(),
            route.verification()
        );
        same.push(Arc::new(reload::Served::new(name, route)));
    }
    for ((t, s), routes) in &sources {
        if routes.len() > 1 {
            eprintln!(
                "fan-out: /v1/webhooks/{t}/{s} is delivered through {} routes",
                routes.len()
            );
        }
    }
    if a.reload_secs > 0 {
        let watched = sources.values().flatten().cloned().collect();
        tokio::spawn(reload::watch(
            engine.clone(),
            watched,
            Duration::from_secs(a.reload_secs),
        ));
    }
    // What an earlier process left: recovered by the workers (and, with `--ack delivered`,
    // only that: later entries are delivered by their own requests).
    let counted = {
        let s = store.clone();
        tokio::task::spawn_blocking(move || {
            Ok::<_, switchyard::store::StoreError>((s.inbox_max_id()?, s.inbox_len()?))
        })
        .await
    };
    let (left_upto, backlog) = match counted {
        Ok(Ok(c)) => c,
        Ok(Err(e)) => {
            eprintln!("error: cannot read the webhook inbox: {e}");
            return super::EXIT_USAGE;
        }
        Err(e) => {
            eprintln!("error: cannot read the webhook inbox: {e}");
            return super::EXIT_USAGE;
        }
    };
    let committed = Arc::new(tokio::sync::Notify::new());
    let (intake, committer) = match commit::Intake::start(
        store.clone(),
        usize::try_from(a.queue_capacity).unwrap_or(usize::MAX),
        backlog,
        committed.clone(),
    ) {
        Ok(i) => i,
        Err(e) => {
            eprintln!("error: cannot start the inbox committer: {e}");
            return super::EXIT_USAGE;
        }
    };
    let max_body_bytes = usize::try_from(a.max_body_bytes).unwrap_or(usize::MAX);
    let app = Arc::new(App {
        engine: engine.clone(),
        metrics: ops::Metrics::default(),
        sources,
        origin,
        body_timeout: Duration::from_secs(a.body_timeout_secs),
        max_body_bytes,
        ack: a.ack,
        intake,
        max_backlog: a.max_backlog,
        draining: AtomicBool::new(false),
        inflight: Inflight::default(),
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
        .route("/v1/webhooks/{tenant}/{source}", post(intake::webhook))
        .route("/webhooks/{tenant}/{source}", post(intake::webhook))
        .with_state(app.clone());
    let listener = match tokio::net::TcpListener::bind(&a.listen).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("error: cannot listen on {}: {e}", a.listen);
            return super::EXIT_USAGE;
        }
    };
    let pool = workers::Pool::start(
        app.clone(),
        store.clone(),
        workers::Options {
            workers: usize::try_from(a.workers).unwrap_or(1),
            upto: (a.ack == Ack::Delivered).then_some(left_upto),
            recovered_upto: left_upto,
            max_attempts: i64::try_from(a.max_attempts).unwrap_or(i64::MAX),
        },
        committed,
    );
    match listener.local_addr() {
        Ok(addr) => eprintln!("listening on http://{addr}"),
        Err(e) => eprintln!("listening ({e})"),
    }
    let limits = listen::Limits {
        header_timeout: Duration::from_secs(a.header_timeout_secs),
        max_connections: usize::try_from(a.max_connections).unwrap_or(usize::MAX),
    };
    let drain = Duration::from_secs(a.drain_secs);
    let stopping = {
        let (app, stopper) = (app.clone(), pool.stopper());
        async move {
            super::sandbox::stop_signal().await;
            app.draining.store(true, Ordering::SeqCst);
            // Workers take no new entry; the one in hand finishes.
            let _ = stopper.send(true);
            eprintln!(
                "shutting down: no new connections; finishing what is in flight (at most {}s)",
                drain.as_secs()
            );
        }
    };
    let deadline = listen::serve(listener, router, limits, stopping, drain).await;
    // Requests are answered (or cut at the deadline); inline deliveries whose sender hung up
    // may still run.
    let idle = app.inflight.wait_idle(deadline).await;
    // Nothing more will be queued: the committer writes what it holds and stops.
    app.intake.close();
    let _ = tokio::task::spawn_blocking(move || committer.join()).await;
    let abandoned = pool.finish(deadline).await;
    for emu in emulators {
        emu.shutdown().await;
    }
    if let Err(e) = engine.retire() {
        eprintln!("warning: {e}");
    }
    let left = store.inbox_len().unwrap_or(0);
    if !idle || abandoned > 0 {
        eprintln!(
            "stopped: the drain time ran out; {left} accepted webhooks stay in the inbox for the next start"
        );
    } else {
        eprintln!("stopped: {left} accepted webhooks stay in the inbox for the next start");
    }
    super::EXIT_OK
}

fn answer(status: StatusCode, body: Value) -> Response {
    (status, axum::Json(body)).into_response()
}
