//! Pipedrive v1 activities (tasks, calls): what workflow actions create.

use super::super::state::Shared;
use super::super::util::scalar_text;
use super::envelope::{PdBody, failure, offset_page, ok};
use axum::extract::{Path, Query, State};
use axum::response::Response;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::Arc;

pub(super) const ACTIVITY_FIELDS: &[&str] = &[
    "subject",
    "type",
    "due_date",
    "due_time",
    "duration",
    "user_id",
    "deal_id",
    "lead_id",
    "person_id",
    "org_id",
    "project_id",
    "note",
    "public_description",
    "done",
    "busy_flag",
    "location",
    "participants",
    "attendees",
];

pub(super) async fn create(State(shared): State<Arc<Shared>>, PdBody(input): PdBody) -> Response {
    if let Some(k) = input
        .keys()
        .find(|k| !ACTIVITY_FIELDS.contains(&k.as_str()))
    {
        return failure(400, &format!("Unknown field: {k}"));
    }
    if let Some(d) = input.get("due_date").and_then(Value::as_str)
        && chrono::NaiveDate::parse_from_str(d, "%Y-%m-%d").is_err()
    {
        return failure(400, "due_date must be in YYYY-MM-DD format");
    }
    let mut db = shared.db();
    if let Some(pid) = input.get("person_id").filter(|v| !v.is_null())
        && db.get("persons", &scalar_text(pid)).is_none()
    {
        drop(db);
        return failure(
            400,
            &format!("Person with id {} not found", scalar_text(pid)),
        );
    }
    let mut rec = input;
    let id = db.next_id();
    let now = chrono::Utc::now().format("%Y-%m-%d %H:%M:%S").to_string();
    rec.insert("id".into(), json!(id));
    rec.entry("subject").or_insert(json!("Call"));
    rec.entry("type").or_insert(json!("call"));
    rec.entry("done").or_insert(json!(false));
    rec.entry("user_id").or_insert(json!(1));
    rec.insert("add_time".into(), json!(now));
    rec.insert("update_time".into(), json!(now));
    let value = Value::Object(rec);
    db.insert("activities", &id.to_string(), value.clone());
    drop(db);
    ok(201, value, Value::Null)
}

pub(super) async fn read(State(shared): State<Arc<Shared>>, Path(id): Path<String>) -> Response {
    let rec = shared.db().get("activities", &id).cloned();
    match rec {
        Some(r) => ok(200, r, Value::Null),
        None => failure(404, "Activity not found"),
    }
}

pub(super) async fn list(
    State(shared): State<Arc<Shared>>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let all: Vec<Value> = shared
        .db()
        .tables
        .get("activities")
        .map(|t| t.values().cloned().collect())
        .unwrap_or_default();
    match offset_page(&q, all) {
        Ok((data, additional)) => ok(200, Value::Array(data), additional),
        Err(r) => r,
    }
}
