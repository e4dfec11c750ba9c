//! Operations endpoints of `serve`: `GET /v1/health` (JSON: store, routes, inbox),
//! `GET /v1/ready` (200 when the store answers, else 503) and `GET /metrics` (Prometheus text
//! format 0.0.4: webhook requests by status, latency histogram, records by outcome, refusals by
//! code, inbox backlog, group commits, entries delivered from the inbox and poison messages,
//! pending dead letters). The counters are plain atomics: no metrics crate is needed.

use super::App;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Upper bounds of the latency histogram, in seconds.
const BUCKETS: [f64; 11] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// What `serve` counts.
#[derive(Default)]
pub(super) struct Metrics {
    /// Webhook requests by answer status.
    by_status: Mutex<BTreeMap<u16, u64>>,
    /// Cumulative histogram counts per bucket (the last slot is +Inf).
    buckets: [AtomicU64; BUCKETS.len() + 1],
    /// Sum of request durations in microseconds.
    sum_micros: AtomicU64,
    /// Records by outcome: created, updated, skipped, failed, dead_lettered.
    records: [AtomicU64; 5],
    /// Refusals by stable code.
    refused: Mutex<BTreeMap<String, u64>>,
    /// Webhooks delivered from the inbox after a restart.
    recovered: AtomicU64,
    /// Webhooks delivered from the inbox by the workers (`--ack accepted`), recovered ones
    /// included.
    from_inbox: AtomicU64,
    /// Inbox entries moved to the dead letters after too many attempts.
    poisoned: AtomicU64,
}

const OUTCOMES: [&str; 5] = ["created", "updated", "skipped", "failed", "dead_lettered"];

impl Metrics {
    pub fn request(&self, status: u16, took: Duration) {
        *self
            .by_status
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(status)
            .or_default() += 1;
        let secs = took.as_secs_f64();
        let slot = BUCKETS
            .iter()
            .position(|b| secs <= *b)
            .unwrap_or(BUCKETS.len());
        self.buckets[slot].fetch_add(1, Ordering::Relaxed);
        self.sum_micros.fetch_add(
            u64::try_from(took.as_micros()).unwrap_or(u64::MAX),
            Ordering::Relaxed,
        );
    }

    pub fn report(&self, r: &switchyard::connector::DeliveryReport) {
        for (i, n) in [r.created, r.updated, r.skipped, r.failed, r.dead_lettered]
            .into_iter()
            .enumerate()
        {
            self.records[i].fetch_add(n as u64, Ordering::Relaxed);
        }
    }

    pub fn refused(&self, code: &str) {
        *self
            .refused
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(code.to_string())
            .or_default() += 1;
    }

    /// A worker settled an inbox entry.
    pub fn settled_from_inbox(&self, recovered: bool, poisoned: bool) {
        self.from_inbox.fetch_add(1, Ordering::Relaxed);
        if recovered {
            self.recovered.fetch_add(1, Ordering::Relaxed);
        }
        if poisoned {
            self.poisoned.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn render(&self, pending_dead_letters: Option<u64>, inbox: &InboxFigures) -> String {
        let mut o = String::new();
        let _ = writeln!(
            o,
            "# HELP switchyard_webhook_requests_total Webhook requests by answer status.\n# TYPE switchyard_webhook_requests_total counter"
        );
        for (status, n) in self
            .by_status
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
        {
            let _ = writeln!(
                o,
                "switchyard_webhook_requests_total{{status=\"{status}\"}} {n}"
            );
        }
        let _ = writeln!(
            o,
            "# HELP switchyard_webhook_duration_seconds Time to answer a webhook (verify, keep, map, deliver).\n# TYPE switchyard_webhook_duration_seconds histogram"
        );
        let mut cumulative = 0u64;
        for (i, b) in BUCKETS.iter().enumerate() {
            cumulative += self.buckets[i].load(Ordering::Relaxed);
            let _ = writeln!(
                o,
                "switchyard_webhook_duration_seconds_bucket{{le=\"{b}\"}} {cumulative}"
            );
        }
        cumulative += self.buckets[BUCKETS.len()].load(Ordering::Relaxed);
        let _ = writeln!(
            o,
            "switchyard_webhook_duration_seconds_bucket{{le=\"+Inf\"}} {cumulative}"
        );
        let sum = self.sum_micros.load(Ordering::Relaxed) as f64 / 1e6;
        let _ = writeln!(o, "switchyard_webhook_duration_seconds_sum {sum}");
        let _ = writeln!(o, "switchyard_webhook_duration_seconds_count {cumulative}");
        let _ = writeln!(
            o,
            "# HELP switchyard_records_total Records delivered through webhooks, by outcome.\n# TYPE switchyard_records_total counter"
        );
        for (i, name) in OUTCOMES.iter().enumerate() {
            let n = self.records[i].load(Ordering::Relaxed);
            let _ = writeln!(o, "switchyard_records_total{{outcome=\"{name}\"}} {n}");
        }
        let _ = writeln!(
            o,
            "# HELP switchyard_webhook_refused_total Webhooks refused, by stable code.\n# TYPE switchyard_webhook_refused_total counter"
        );
        for (code, n) in self
            .refused
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
        {
            let _ = writeln!(o, "switchyard_webhook_refused_total{{code=\"{code}\"}} {n}");
        }
        let _ = writeln!(
            o,
            "# HELP switchyard_webhook_recovered_total Accepted webhooks delivered after a restart.\n# TYPE switchyard_webhook_recovered_total counter\nswitchyard_webhook_recovered_total {}",
            self.recovered.load(Ordering::Relaxed)
        );
        let _ = writeln!(
            o,
            "# HELP switchyard_inbox_settled_total Inbox entries settled by the delivery workers (delivered, dead-lettered or poison).\n# TYPE switchyard_inbox_settled_total counter\nswitchyard_inbox_settled_total {}",
            self.from_inbox.load(Ordering::Relaxed)
        );
        let _ = writeln!(
            o,
            "# HELP switchyard_inbox_poisoned_total Inbox entries moved to the dead letters after too many attempts.\n# TYPE switchyard_inbox_poisoned_total counter\nswitchyard_inbox_poisoned_total {}",
            self.poisoned.load(Ordering::Relaxed)
        );
        let _ = writeln!(
            o,
            "# HELP switchyard_inbox_backlog Accepted webhooks not settled yet.\n# TYPE switchyard_inbox_backlog gauge\nswitchyard_inbox_backlog {}",
            inbox.backlog
        );
        let _ = writeln!(
            o,
            "# HELP switchyard_inbox_commits_total Group commits of webhook bodies (one transaction each).\n# TYPE switchyard_inbox_commits_total counter\nswitchyard_inbox_commits_total {}",
            inbox.commits
        );
        let _ = writeln!(
            o,
            "# HELP switchyard_inbox_kept_total Webhook bodies committed to the inbox.\n# TYPE switchyard_inbox_kept_total counter\nswitchyard_inbox_kept_total {}",
            inbox.kept
        );
        if let Some(n) = pending_dead_letters {
            let _ = writeln!(
                o,
                "# HELP switchyard_dead_letters_pending Dead letters waiting for a replay.\n# TYPE switchyard_dead_letters_pending gauge\nswitchyard_dead_letters_pending {n}"
            );
        }
        o
    }
}

/// The inbox as `/metrics` and `/v1/health` show it.
pub(super) struct InboxFigures {
    backlog: u64,
    commits: u64,
    kept: u64,
}

impl InboxFigures {
    fn of(app: &App) -> Self {
        InboxFigures {
            backlog: app.intake.backlog.load(Ordering::Relaxed),
            commits: app.intake.stats.commits.load(Ordering::Relaxed),
            kept: app.intake.stats.kept.load(Ordering::Relaxed),
        }
    }
}

/// `GET /metrics`.
pub(super) async fn metrics(State(app): State<Arc<App>>) -> Response {
    let store = app.engine.store().cloned();
    let pending =
        tokio::task::spawn_blocking(move || store.and_then(|s| s.pending_dead_letters().ok()))
            .await
            .ok()
            .flatten();
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        app.metrics.render(pending, &InboxFigures::of(&app)),
    )
        .into_response()
}

/// `GET /v1/health`: always 200 while the process serves; says what works.
pub(super) async fn health(State(app): State<Arc<App>>) -> Response {
    let store = app.engine.store().cloned();
    let checked = tokio::task::spawn_blocking(move || {
        store.map(|s| (s.ping(), s.pending_dead_letters(), s.path().to_string()))
    })
    .await
    .ok()
    .flatten();
    let store = match checked {
        Some((Ok(()), dl, path)) => json!({"ok": true, "path": path,
                                           "pending_dead_letters": dl.ok()}),
        Some((Err(e), _, path)) => json!({"ok": false, "path": path, "error": e.to_string()}),
        None => json!({"ok": false, "error": "no store"}),
    };
    let mut routes: Vec<_> = app
        .sources
        .values()
        .flatten()
        .map(|s| {
            let r = s.current();
            let (tenant, source) = r.key();
            json!({"route": s.name, "tenant": tenant, "source": source,
                   "connector": r.route().mapping().connector,
                   "verification": r.verification(),
                   "path": format!("/v1/webhooks/{tenant}/{source}")})
        })
        .collect();
    routes.sort_by(|a, b| {
        (
            a["tenant"].as_str(),
            a["source"].as_str(),
            a["route"].as_str(),
        )
            .cmp(&(
                b["tenant"].as_str(),
                b["source"].as_str(),
                b["route"].as_str(),
            ))
    });
    let status = if store["ok"] == true {
        "ok"
    } else {
        "degraded"
    };
    let inbox = InboxFigures::of(&app);
    let ack = match app.ack {
        super::Ack::Delivered => "delivered",
        super::Ack::Accepted => "accepted",
    };
    axum::Json(json!({"status": status, "store": store, "routes": routes,
                      "inbox": {"backlog": inbox.backlog, "max_backlog": app.max_backlog, "ack": ack}}))
    .into_response()
}

/// `GET /v1/ready`: 200 when the store answers (the service can accept webhooks), else 503.
pub(super) async fn ready(State(app): State<Arc<App>>) -> Response {
    let store = app.engine.store().cloned();
    let ok = tokio::task::spawn_blocking(move || store.is_some_and(|s| s.ping().is_ok()))
        .await
        .unwrap_or(false);
    if ok {
        (StatusCode::OK, axum::Json(json!({"ready": true}))).into_response()
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            axum::Json(json!({"ready": false, "error": "store_unavailable"})),
        )
            .into_response()
    }
}

/// The service's OpenAPI 3.1 document (every path `serve` answers; a test checks it against
/// the router and the answers).
pub(super) const OPENAPI: &str = include_str!("openapi.json");

/// `GET /v1/openapi.json`.
pub(super) async fn openapi() -> Response {
    ([(header::CONTENT_TYPE, "application/json")], OPENAPI).into_response()
}
