//! Zendesk's bulk endpoints (at most 100 items): the work is done at once, the answer is a
//! `queued` job status, and `GET /job_statuses/{id}` reports `completed` with per-item results.

use super::super::state::{Db, Shared};
use super::super::util::json;
use super::BULK_MAX;
use super::errors::{body_object, now, record_not_found, strip_json};
use super::tickets::new_ticket;
use super::users::{new_user, upsert_user};
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::response::Response;
use serde_json::{Map, Value, json};
use std::sync::Arc;

/// Runs a bulk job at once and records its job status (reported `queued` in the answer,
/// `completed` when polled).
pub(super) fn bulk(
    shared: &Shared,
    body: &[u8],
    key: &str,
    mut each: impl FnMut(&Shared, &mut Db, usize, &Map<String, Value>) -> Value,
) -> Response {
    let input = match body_object(body) {
        Ok(m) => m,
        Err(r) => return r,
    };
    let Some(items) = input.get(key).and_then(Value::as_array) else {
        return json(
            400,
            json!({"error": "InvalidJSON", "description": format!("`{key}` must be an array")}),
        );
    };
    if items.len() > BULK_MAX {
        return json(
            400,
            json!({"error": "TooManyRecords", "description": format!("{key} may not exceed {BULK_MAX} records")}),
        );
    }
    let mut db = shared.db();
    let results: Vec<Value> = items
        .iter()
        .enumerate()
        .map(|(i, it)| {
            each(
                shared,
                &mut db,
                i,
                &it.as_object().cloned().unwrap_or_default(),
            )
        })
        .collect();
    let id = db.token(shared.seed)[..20].to_string();
    let url = format!("{}/api/v2/job_statuses/{id}.json", shared.base_url);
    let done = json!({"id": id, "url": url, "total": items.len(), "progress": items.len(),
                      "status": "completed", "message": "Completed at ".to_string() + &now(),
                      "results": results});
    db.jobs.insert(id.clone(), done);
    drop(db);
    json(
        200,
        json!({"job_status": {"id": id, "url": url, "total": items.len(), "progress": null,
                              "status": "queued", "message": null, "results": null}}),
    )
}

pub(super) fn job_error(i: usize, d: &Value) -> Value {
    json!({"index": i, "error": "RecordInvalid", "details": d})
}

pub(super) async fn create_many_tickets(
    State(shared): State<Arc<Shared>>,
    body: Bytes,
) -> Response {
    bulk(&shared, &body, "tickets", |s, db, i, t| {
        match new_ticket(s, db, t) {
            Ok(t) => json!({"index": i, "id": t["id"]}),
            Err(d) => job_error(i, &d),
        }
    })
}

pub(super) async fn create_many_users(State(shared): State<Arc<Shared>>, body: Bytes) -> Response {
    bulk(&shared, &body, "users", |s, db, i, u| {
        match new_user(s, db, u) {
            Ok(u) => json!({"index": i, "id": u["id"], "email": u["email"], "status": "Created"}),
            Err(d) => job_error(i, &d),
        }
    })
}

pub(super) async fn create_or_update_many(
    State(shared): State<Arc<Shared>>,
    body: Bytes,
) -> Response {
    bulk(&shared, &body, "users", |s, db, i, u| {
        match upsert_user(s, db, u) {
            Ok((u, created)) => json!({"index": i, "id": u["id"], "email": u["email"],
                                   "status": if created { "Created" } else { "Updated" }}),
            Err(d) => job_error(i, &d),
        }
    })
}

pub(super) async fn job_status(
    State(shared): State<Arc<Shared>>,
    Path(id): Path<String>,
) -> Response {
    let job = shared.db().jobs.get(strip_json(&id)).cloned();
    match job {
        Some(j) => json(200, json!({"job_status": j})),
        None => record_not_found(),
    }
}
