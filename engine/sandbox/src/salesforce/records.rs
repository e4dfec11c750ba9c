//! Salesforce's single-record endpoints: versions, limits, describe, create, read, update,
//! delete, read and upsert by external id.

use super::super::state::Shared;
use super::super::util::{empty, json};
use super::errors::{SObject, SfBody, err, err_fields, not_found};
use super::schema::Kind::{Bool, Date, DateTime, Email, Number, Text};
use super::schema::SYSTEM_FIELDS;
use super::store::{external_field, find_by, insert, patch, render, resolve_id, upsert_one};
use axum::extract::{Path, Query, State};
use axum::response::Response;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::Arc;

pub(super) async fn versions() -> Response {
    json(
        200,
        json!([{"label": "Winter '25", "url": "/services/data/v62.0", "version": "62.0"}]),
    )
}

pub(super) async fn limits(State(shared): State<Arc<Shared>>) -> Response {
    let d = super::super::state::lock(&shared.limiter).check(std::time::Instant::now());
    json(
        200,
        json!({"DailyApiRequests": {"Max": d.max, "Remaining": d.remaining}}),
    )
}

pub(super) async fn describe(SObject(def): SObject) -> Response {
    let fields: Vec<Value> = SYSTEM_FIELDS
        .iter()
        .chain(def.fields.iter())
        .map(|(n, k)| {
            let t = match k {
                Text => "string",
                Email => "email",
                Number => "double",
                Date => "date",
                DateTime => "datetime",
                Bool => "boolean",
            };
            json!({"name": n, "type": t, "nillable": !def.required.contains(n),
                   "createable": !SYSTEM_FIELDS.iter().any(|(s, _)| s == n)})
        })
        .collect();
    json(
        200,
        json!({"name": def.name, "keyPrefix": def.prefix, "fields": fields}),
    )
}

pub(super) async fn create(
    State(shared): State<Arc<Shared>>,
    SObject(def): SObject,
    SfBody(input): SfBody,
) -> Response {
    let result = insert(&mut shared.db(), def, &input);
    match result {
        Ok(id) => json(201, json!({"id": id, "success": true, "errors": []})),
        Err(e) => err_fields(400, &e),
    }
}

pub(super) async fn read(
    State(shared): State<Arc<Shared>>,
    SObject(def): SObject,
    Path((_, _, id)): Path<(String, String, String)>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let only: Option<Vec<String>> = q
        .get("fields")
        .map(|f| f.split(',').map(|s| s.trim().to_string()).collect());
    if let Some(fields) = &only
        && let Some(bad) = fields.iter().find(|f| def.field(f).is_none())
    {
        return err(
            400,
            "INVALID_FIELD",
            &format!("No such column '{bad}' on entity '{}'", def.name),
        );
    }
    let db = shared.db();
    let rec = resolve_id(&db, def, &id).and_then(|k| db.get(def.name, &k).cloned());
    drop(db);
    match rec {
        Some(r) => json(200, render(def, &r, only.as_deref())),
        None => not_found(),
    }
}

pub(super) async fn update(
    State(shared): State<Arc<Shared>>,
    SObject(def): SObject,
    Path((_, _, id)): Path<(String, String, String)>,
    SfBody(input): SfBody,
) -> Response {
    let mut db = shared.db();
    if resolve_id(&db, def, &id).is_none() {
        return not_found();
    }
    match patch(&mut db, def, &id, &input) {
        Ok(()) => empty(204),
        Err(e) => err_fields(400, &e),
    }
}

pub(super) async fn remove(
    State(shared): State<Arc<Shared>>,
    SObject(def): SObject,
    Path((_, _, id)): Path<(String, String, String)>,
) -> Response {
    let mut db = shared.db();
    match resolve_id(&db, def, &id) {
        Some(k) => {
            db.table(def.name).shift_remove(&k);
            empty(204)
        }
        None => {
            drop(db);
            err(404, "ENTITY_IS_DELETED", "entity is deleted")
        }
    }
}

pub(super) async fn read_by_external(
    State(shared): State<Arc<Shared>>,
    SObject(def): SObject,
    Path((_, _, field, value)): Path<(String, String, String, String)>,
) -> Response {
    let field = match external_field(def, &field) {
        Ok(f) => f,
        Err(r) => return r,
    };
    let db = shared.db();
    let ids = find_by(&db, def, &field, &value);
    match ids.as_slice() {
        [one] => {
            let rec = db.get(def.name, one).cloned().unwrap_or(Value::Null);
            json(200, render(def, &rec, None))
        }
        [] => not_found(),
        many => json(
            300,
            Value::Array(many.iter().map(|id| json!(def.url(id))).collect()),
        ),
    }
}

pub(super) async fn upsert(
    State(shared): State<Arc<Shared>>,
    SObject(def): SObject,
    Path((_, _, field, value)): Path<(String, String, String, String)>,
    SfBody(input): SfBody,
) -> Response {
    let field = match external_field(def, &field) {
        Ok(f) => f,
        Err(r) => return r,
    };
    let result = upsert_one(&mut shared.db(), def, &field, &value, &input);
    match result {
        Ok((id, created)) => json(
            if created { 201 } else { 200 },
            json!({"id": id, "success": true, "errors": [], "created": created}),
        ),
        Err((status, e)) => err_fields(status, &e),
    }
}
