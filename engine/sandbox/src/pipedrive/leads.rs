//! Pipedrive v1 leads: create (linked to a person or organization), read, update, delete,
//! `start`/`limit` lists and `/leads/search`.

use super::super::state::{Db, Shared};
use super::super::util::{cmp_loose, scalar_text};
use super::envelope::{PdBody, failure, offset_page, ok};
use super::v2::term_matches;
use axum::extract::{Path, Query, State};
use axum::response::Response;
use serde_json::{Map, Value, json};
use std::collections::HashMap;
use std::sync::Arc;

pub(super) const LEAD_FIELDS: &[&str] = &[
    "title",
    "owner_id",
    "label_ids",
    "person_id",
    "organization_id",
    "value",
    "expected_close_date",
    "visible_to",
    "was_seen",
    "origin_id",
    "channel",
    "channel_id",
    "is_archived",
];

pub(super) fn now_v1() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

pub(super) fn apply_lead(
    db: &Db,
    rec: &mut Map<String, Value>,
    input: &Map<String, Value>,
) -> Result<(), String> {
    for (k, v) in input {
        if !LEAD_FIELDS.contains(&k.as_str()) {
            // Custom fields are 40-character hash keys at the top level in v1.
            let is_custom = k.len() == 40 && k.chars().all(|c| c.is_ascii_hexdigit());
            if !is_custom {
                return Err(format!("Unknown field: {k}"));
            }
        }
        match k.as_str() {
            "value" if !v.is_null() => {
                let ok = v.get("amount").is_some_and(Value::is_number)
                    && v.get("currency").is_some_and(Value::is_string);
                if !ok {
                    return Err(
                        "value must be an object with amount (number) and currency (string)".into(),
                    );
                }
            }
            "person_id" if !v.is_null() => {
                let id = scalar_text(v);
                if db.get("persons", &id).is_none() {
                    return Err(format!("Person with id {id} not found"));
                }
            }
            "label_ids" if !v.is_array() => return Err("label_ids must be an array".into()),
            _ => {}
        }
        rec.insert(k.clone(), v.clone());
    }
    Ok(())
}

pub(super) async fn create(State(shared): State<Arc<Shared>>, PdBody(input): PdBody) -> Response {
    if input
        .get("title")
        .and_then(Value::as_str)
        .is_none_or(|s| s.trim().is_empty())
    {
        return failure(400, "Validation failed: title: required");
    }
    let has_link = ["person_id", "organization_id"]
        .iter()
        .any(|k| input.get(*k).is_some_and(|v| !v.is_null()));
    if !has_link {
        return failure(
            400,
            "A lead must be linked to a person or an organization or both",
        );
    }
    let mut db = shared.db();
    let mut rec = Map::new();
    if let Err(m) = apply_lead(&db, &mut rec, &input) {
        drop(db);
        return failure(400, &m);
    }
    let t = db.token(shared.seed);
    let id = format!(
        "{}-{}-4{}-a{}-{}",
        &t[..8],
        &t[8..12],
        &t[13..16],
        &t[17..20],
        &t[20..32]
    );
    let now = now_v1();
    rec.insert("id".into(), json!(id));
    rec.entry("owner_id").or_insert(json!(1));
    rec.insert("creator_id".into(), json!(1));
    rec.entry("label_ids").or_insert(json!([]));
    rec.entry("person_id").or_insert(Value::Null);
    rec.entry("organization_id").or_insert(Value::Null);
    rec.insert("source_name".into(), json!("API"));
    rec.insert("origin".into(), json!("API"));
    rec.entry("channel").or_insert(Value::Null);
    rec.entry("is_archived").or_insert(json!(false));
    rec.entry("was_seen").or_insert(json!(false));
    rec.entry("value").or_insert(Value::Null);
    rec.entry("expected_close_date").or_insert(Value::Null);
    rec.insert("next_activity_id".into(), Value::Null);
    rec.insert("add_time".into(), json!(now));
    rec.insert("update_time".into(), json!(now));
    rec.entry("visible_to").or_insert(json!("3"));
    let value = Value::Object(rec);
    db.insert("leads", &id, value.clone());
    drop(db);
    ok(201, value, Value::Null)
}

pub(super) async fn read(State(shared): State<Arc<Shared>>, Path(id): Path<String>) -> Response {
    let rec = shared.db().get("leads", &id).cloned();
    match rec {
        Some(r) => ok(200, r, Value::Null),
        None => failure(404, "Lead not found"),
    }
}

pub(super) async fn update(
    State(shared): State<Arc<Shared>>,
    Path(id): Path<String>,
    PdBody(input): PdBody,
) -> Response {
    let mut db = shared.db();
    let Some(Value::Object(mut rec)) = db.get("leads", &id).cloned() else {
        drop(db);
        return failure(404, "Lead not found");
    };
    if let Err(m) = apply_lead(&db, &mut rec, &input) {
        drop(db);
        return failure(400, &m);
    }
    rec.insert("update_time".into(), json!(now_v1()));
    let value = Value::Object(rec);
    db.table("leads").insert(id, value.clone());
    drop(db);
    ok(200, value, Value::Null)
}

pub(super) async fn delete(State(shared): State<Arc<Shared>>, Path(id): Path<String>) -> Response {
    let removed = shared.db().table("leads").shift_remove(&id);
    match removed {
        Some(_) => ok(200, json!({"id": id}), Value::Null),
        None => failure(404, "Lead not found"),
    }
}

pub(super) async fn list(
    State(shared): State<Arc<Shared>>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let all: Vec<Value> = shared
        .db()
        .tables
        .get("leads")
        .map(|t| {
            t.values()
                .filter(|r| {
                    ["owner_id", "person_id", "organization_id"]
                        .iter()
                        .all(|k| q.get(*k).is_none_or(|w| scalar_text(&r[*k]) == *w))
                })
                .filter(|r| {
                    q.get("updated_since").is_none_or(|s| {
                        cmp_loose(r["update_time"].as_str().unwrap_or(""), s)
                            != std::cmp::Ordering::Less
                    })
                })
                .cloned()
                .collect()
        })
        .unwrap_or_default();
    match offset_page(&q, all) {
        Ok((data, additional)) => ok(200, Value::Array(data), additional),
        Err(r) => r,
    }
}

pub(super) async fn search(
    State(shared): State<Arc<Shared>>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let exact = q.get("exact_match").is_some_and(|v| v == "true");
    let term = q.get("term").cloned().unwrap_or_default();
    if term.chars().count() < if exact { 1 } else { 2 } {
        return failure(400, "term must be at least 2 characters long");
    }
    let hits: Vec<Value> = shared
        .db()
        .tables
        .get("leads")
        .map(|t| {
            t.values()
                .filter(|r| term_matches(&[scalar_text(&r["title"])], &term, exact))
                .map(|r| {
                    json!({"result_score": 1.0, "item": {"id": r["id"], "type": "lead",
                           "title": r["title"], "owner": {"id": r["owner_id"]},
                           "person": r["person_id"], "organization": r["organization_id"],
                           "value": r["value"], "is_archived": r["is_archived"]}})
                })
                .collect()
        })
        .unwrap_or_default();
    match offset_page(&q, hits) {
        Ok((items, additional)) => ok(200, json!({"items": items}), additional),
        Err(r) => r,
    }
}
