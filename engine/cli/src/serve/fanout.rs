//! Fan-out: one kept body delivered through every route of its tenant and source, at once.
//! Each route that finishes is written to the inbox as settled for that entry (so a crash
//! between two routes redelivers only the one that did not finish), and the entry leaves the
//! inbox when the last one settles.

use super::App;
use super::reload::Served;
use axum::body::Bytes;
use serde_json::{Value, json};
use std::sync::Arc;
use switchyard::connector::DeliveryReport;
use switchyard::engine::{WebhookError, WebhookRoute};

/// A route to deliver through: its name and the version serving now.
#[derive(Clone)]
pub(super) struct Target {
    pub name: String,
    pub route: Arc<WebhookRoute>,
}

impl Target {
    pub fn of(s: &Served) -> Self {
        Target {
            name: s.name.clone(),
            route: s.current(),
        }
    }
}

/// What one route made of a body.
pub(super) struct Outcome {
    pub name: String,
    pub connector: String,
    pub result: Result<DeliveryReport, WebhookError>,
    /// The route refused the body as the sender sent it (told mode), and it was then
    /// delivered leniently because another route took it: why.
    pub rejected: Option<String>,
}

/// How a body is delivered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Mode<'a> {
    /// The sender waits for the answer: a route whose mapping refuses a record refuses the
    /// whole body (and the sender is told), unless another route took it.
    Told,
    /// Nobody waits (accepted earlier): records that do not map are dead-lettered.
    Kept,
    /// A poison message: every record goes to the dead letters, for this reason.
    Abandon(&'a str),
}

/// Deliver inbox entry `id` through `targets` (the routes that have not settled it yet), all
/// at once. Returns each route's outcome and whether the entry left the inbox.
pub(super) async fn deliver(
    app: &App,
    id: i64,
    targets: Vec<Target>,
    body: &Bytes,
    correlation_id: &str,
    mode: Mode<'_>,
) -> (Vec<Outcome>, bool) {
    // One route (or the last one left): the entry goes in one write at the end. Several:
    // each route's row as soon as it settles, then the entry.
    let rows = targets.len() > 1;
    let store = app.engine.store().cloned();
    let store = store.as_ref();
    let runs = targets.iter().map(|t| async move {
        let result = match mode {
            Mode::Told => t.route.receive(body, correlation_id).await,
            Mode::Kept => Ok(t.route.receive_kept(body, correlation_id).await),
            Mode::Abandon(why) => Ok(t.route.abandon(body, correlation_id, why).await),
        };
        let o = Outcome {
            name: t.name.clone(),
            connector: t.route.route().mapping().connector.clone(),
            result,
            rejected: None,
        };
        // A refusal in told mode is settled below, once it is known whether another route
        // took the body.
        let row = if rows && o.result.is_ok() {
            settle_route(store, id, &o, mode, correlation_id).await
        } else {
            true
        };
        (o, row)
    });
    let (mut outcomes, mut rows_ok): (Vec<Outcome>, Vec<bool>) =
        futures::future::join_all(runs).await.into_iter().unzip();
    // Told mode, some routes took the body and some refused it: the sender will see a 200
    // and not send it again, so what the refusing routes could not map goes to their dead
    // letters (and what they could, to their CRMs) instead of being lost.
    let some_took = outcomes.iter().any(|o| o.result.is_ok());
    for ((o, t), row) in outcomes.iter_mut().zip(&targets).zip(rows_ok.iter_mut()) {
        let Err(e) = &o.result else { continue };
        if some_took {
            o.rejected = Some(e.to_string());
            o.result = Ok(t.route.receive_kept(body, correlation_id).await);
        }
        if rows {
            *row = settle_route(store, id, o, mode, correlation_id).await;
        }
    }
    for o in &outcomes {
        if let Ok(r) = &o.result {
            app.metrics.report(r);
        }
    }
    let Some(store) = store.cloned() else {
        return (outcomes, false);
    };
    if rows_ok.iter().any(|ok| !ok) {
        // The entry stays: the routes without a row are delivered again (safely) later.
        return (outcomes, false);
    }
    let settled = tokio::task::spawn_blocking(move || store.inbox_settle(id)).await;
    let settled = match settled {
        Ok(Ok(gone)) => {
            if gone {
                app.intake.settled();
            }
            true
        }
        Ok(Err(e)) => {
            tracing::warn!(correlation_id, inbox_id = id, error = %e, "webhook delivered but not marked settled; it will be processed again (safely) later");
            false
        }
        Err(e) => {
            tracing::warn!(correlation_id, inbox_id = id, error = %e, "webhook settlement task failed");
            false
        }
    };
    (outcomes, settled)
}

/// Write that route `o` settled entry `id`; whether it was written.
async fn settle_route(
    store: Option<&Arc<switchyard::store::Store>>,
    id: i64,
    o: &Outcome,
    mode: Mode<'_>,
    correlation_id: &str,
) -> bool {
    let Some(store) = store.cloned() else {
        return false;
    };
    let word = match (&o.result, mode) {
        (Err(_), _) => "refused",
        (Ok(_), Mode::Abandon(_)) => "dead_lettered",
        (Ok(_), _) => "delivered",
    };
    let name = o.name.clone();
    match tokio::task::spawn_blocking(move || store.inbox_settle_route(id, &name, word)).await {
        Ok(Ok(())) => true,
        Ok(Err(e)) => {
            tracing::warn!(correlation_id, inbox_id = id, route = %o.name, error = %e, "a route settled a webhook but the inbox could not record it; that route will process it again (safely) later");
            false
        }
        Err(e) => {
            tracing::warn!(correlation_id, inbox_id = id, route = %o.name, error = %e, "the inbox settlement task failed");
            false
        }
    }
}

/// The answer to a sender who waited (told mode): the routes' reports added up (objects
/// carry their route's name) with each route's outcome under `routes`, 200 when at least one
/// route took the body; else the refusal (400 not a record, 422 the mapping refused it).
pub(super) fn answer(outcomes: Vec<Outcome>, event_id: i64) -> (u16, Value) {
    let delivered = outcomes.iter().any(|o| o.result.is_ok());
    if !delivered {
        let bad_body = outcomes.iter().find_map(|o| match &o.result {
            Err(WebhookError::BadBody(e)) => Some(e.clone()),
            _ => None,
        });
        let routes: Vec<Value> = outcomes
            .iter()
            .map(|o| {
                json!({"route": o.name, "connector": o.connector, "status": "refused",
                       "error": o.result.as_ref().err().map(ToString::to_string)})
            })
            .collect();
        if let Some(e) = bad_body {
            return (400, json!({"error": e, "routes": routes}));
        }
        let first = outcomes
            .iter()
            .find_map(|o| o.result.as_ref().err().map(ToString::to_string))
            .unwrap_or_default();
        return (422, json!({"error": first, "routes": routes}));
    }
    let mut total = DeliveryReport::default();
    let mut objects = Vec::new();
    let mut routes = Vec::new();
    for o in outcomes {
        let Ok(r) = o.result else { continue };
        total.created += r.created;
        total.updated += r.updated;
        total.skipped += r.skipped;
        total.failed += r.failed;
        total.dead_lettered += r.dead_lettered;
        total.dead_letter_failures += r.dead_letter_failures;
        let mut route = json!({"route": o.name, "connector": o.connector, "status": "delivered",
            "created": r.created, "updated": r.updated, "skipped": r.skipped,
            "failed": r.failed, "dead_lettered": r.dead_lettered});
        if let Some(why) = o.rejected {
            route["rejected"] = Value::String(why);
        }
        routes.push(route);
        for obj in &r.objects {
            let mut v = serde_json::to_value(obj).unwrap_or(Value::Null);
            v["route"] = Value::String(o.name.clone());
            objects.push(v);
        }
        total.actions.extend(r.actions);
    }
    let mut body = serde_json::to_value(&total).unwrap_or_else(|_| json!({}));
    body["objects"] = Value::Array(objects);
    body["routes"] = Value::Array(routes);
    body["event_id"] = json!(event_id);
    (200, body)
}
