//! Salesforce's sObject collections (at most 200 records a call): create, update, upsert,
//! delete and retrieve, with per-record results in input order and `allOrNone`.

use super::super::state::{Db, Shared};
use super::super::util::{json, parse_json, scalar_text};
use super::COLLECTION_MAX;
use super::errors::{SObject, SfError, err, sf_error};
use super::schema::{OBJECTS, ObjectDef, object_def};
use super::store::{external_field, insert, patch, render, resolve_id, upsert_one};
use axum::body::Bytes;
use axum::extract::{FromRequest, Path, Query, Request, State};
use axum::response::Response;
use serde_json::{Map, Value, json};
use std::collections::HashMap;
use std::sync::Arc;

pub(super) fn item_ok(id: &str, created: Option<bool>) -> Value {
    let mut v = json!({"id": id, "success": true, "errors": []});
    if let Some(c) = created {
        v["created"] = Value::Bool(c);
    }
    v
}

pub(super) fn item_err(e: &SfError) -> Value {
    json!({"success": false, "errors": [{"statusCode": e.code, "message": e.message, "fields": e.fields}]})
}

pub(super) fn rolled_back() -> Value {
    item_err(&sf_error(
        "ALL_OR_NONE_OPERATION_ROLLED_BACK",
        "Record rolled back because not all records were valid and the request was using AllOrNone header",
        &[],
    ))
}

pub(super) struct CollectionReq {
    all_or_none: bool,
    records: Vec<Map<String, Value>>,
}

/// The body of a collection call: `{allOrNone?, records: [...]}`, at most 200 records.
pub(super) struct Collection(CollectionReq);

impl FromRequest<Arc<Shared>> for Collection {
    type Rejection = Response;

    async fn from_request(req: Request, shared: &Arc<Shared>) -> Result<Self, Response> {
        let body = Bytes::from_request(req, shared)
            .await
            .map_err(|e| err(400, "JSON_PARSER_ERROR", &e.to_string()))?;
        collection_body(&body).map(Collection)
    }
}

pub(super) fn collection_body(body: &[u8]) -> Result<CollectionReq, Response> {
    let v = parse_json(body).map_err(|e| {
        err(
            400,
            "JSON_PARSER_ERROR",
            &format!("Unexpected character: {e}"),
        )
    })?;
    let records: Vec<Map<String, Value>> = v
        .get("records")
        .and_then(Value::as_array)
        .ok_or_else(|| err(400, "INVALID_FIELD", "records is required"))?
        .iter()
        .map(|r| r.as_object().cloned().unwrap_or_default())
        .collect();
    if records.len() > COLLECTION_MAX {
        return Err(err(
            400,
            "EXCEEDED_ID_LIMIT",
            &format!(
                "record limit reached. cannot submit more than {COLLECTION_MAX} records into this call"
            ),
        ));
    }
    Ok(CollectionReq {
        all_or_none: v.get("allOrNone").and_then(Value::as_bool).unwrap_or(false),
        records,
    })
}

pub(super) fn record_type(r: &Map<String, Value>) -> Result<&'static ObjectDef, SfError> {
    let t = r
        .get("attributes")
        .and_then(|a| a.get("type"))
        .and_then(Value::as_str)
        .ok_or_else(|| sf_error("INVALID_TYPE", "Must specify a type in attributes", &[]))?;
    object_def(t).ok_or_else(|| {
        sf_error(
            "INVALID_TYPE",
            format!("sObject type '{t}' is not supported"),
            &[],
        )
    })
}

/// Runs `op` per record on a copy of the tables; with allOrNone and a failure, keeps none.
pub(super) fn run_collection(
    shared: &Shared,
    all_or_none: bool,
    n: usize,
    mut op: impl FnMut(&mut Db, usize) -> Result<(String, Option<bool>), SfError>,
) -> Response {
    let mut db = shared.db();
    let snapshot = all_or_none.then(|| db.tables.clone());
    let results: Vec<Result<(String, Option<bool>), SfError>> =
        (0..n).map(|i| op(&mut db, i)).collect();
    let failed = results.iter().any(Result::is_err);
    let body: Vec<Value> = if failed && let Some(tables) = snapshot {
        db.tables = tables;
        results
            .iter()
            .map(|r| match r {
                Ok(_) => rolled_back(),
                Err(e) => item_err(e),
            })
            .collect()
    } else {
        results
            .iter()
            .map(|r| match r {
                Ok((id, created)) => item_ok(id, *created),
                Err(e) => item_err(e),
            })
            .collect()
    };
    drop(db);
    json(200, Value::Array(body))
}

pub(super) async fn create(
    State(shared): State<Arc<Shared>>,
    Collection(req): Collection,
) -> Response {
    run_collection(&shared, req.all_or_none, req.records.len(), |db, i| {
        let r = &req.records[i];
        if r.contains_key("id") || r.contains_key("Id") {
            return Err(sf_error(
                "INVALID_FIELD",
                "cannot specify Id in an insert call",
                &["Id"],
            ));
        }
        let def = record_type(r)?;
        insert(db, def, r).map(|id| (id, None))
    })
}

pub(super) async fn update(
    State(shared): State<Arc<Shared>>,
    Collection(req): Collection,
) -> Response {
    run_collection(&shared, req.all_or_none, req.records.len(), |db, i| {
        let mut r = req.records[i].clone();
        let def = record_type(&r)?;
        let id = r
            .remove("id")
            .or_else(|| r.remove("Id"))
            .and_then(|v| v.as_str().map(String::from))
            .ok_or_else(|| {
                sf_error(
                    "MISSING_ARGUMENT",
                    "Id not specified in an update call",
                    &[],
                )
            })?;
        let key = resolve_id(db, def, &id)
            .ok_or_else(|| sf_error("ENTITY_IS_DELETED", "entity is deleted", &[]))?;
        patch(db, def, &key, &r).map(|()| (key, None))
    })
}

pub(super) async fn upsert(
    State(shared): State<Arc<Shared>>,
    SObject(def): SObject,
    Path((_, _, field)): Path<(String, String, String)>,
    Collection(req): Collection,
) -> Response {
    let field = match external_field(def, &field) {
        Ok(f) => f,
        Err(r) => return r,
    };
    run_collection(&shared, req.all_or_none, req.records.len(), |db, i| {
        let r = &req.records[i];
        let value = r
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(&field))
            .map(|(_, v)| scalar_text(v))
            .filter(|v| !v.is_empty())
            .ok_or_else(|| {
                sf_error(
                    "MISSING_ARGUMENT",
                    format!("{field} not specified"),
                    &[&field],
                )
            })?;
        upsert_one(db, def, &field, &value, r)
            .map(|(id, created)| (id, Some(created)))
            .map_err(|(_, e)| e)
    })
}

pub(super) async fn delete(
    State(shared): State<Arc<Shared>>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let ids: Vec<String> = q
        .get("ids")
        .map(|s| s.split(',').map(|x| x.trim().to_string()).collect())
        .unwrap_or_default();
    if ids.len() > COLLECTION_MAX {
        return err(400, "EXCEEDED_ID_LIMIT", "too many ids");
    }
    let all_or_none = q.get("allOrNone").is_some_and(|v| v == "true");
    run_collection(&shared, all_or_none, ids.len(), |db, i| {
        let id = &ids[i];
        let def = OBJECTS
            .iter()
            .find(|d| id.starts_with(d.prefix) && resolve_id(db, d, id).is_some());
        match def.and_then(|d| resolve_id(db, d, id).map(|k| (d, k))) {
            Some((d, k)) => {
                db.table(d.name).shift_remove(&k);
                Ok((k, None))
            }
            None => Err(sf_error("ENTITY_IS_DELETED", "entity is deleted", &[])),
        }
    })
}

pub(super) fn fetch(
    shared: &Shared,
    def: &ObjectDef,
    ids: &[String],
    fields: &[String],
) -> Response {
    if let Some(bad) = fields.iter().find(|f| def.field(f).is_none()) {
        return err(
            400,
            "INVALID_FIELD",
            &format!("No such column '{bad}' on entity '{}'", def.name),
        );
    }
    let db = shared.db();
    let out: Vec<Value> = ids
        .iter()
        .map(|id| {
            resolve_id(&db, def, id)
                .and_then(|k| db.get(def.name, &k))
                .map(|r| render(def, r, (!fields.is_empty()).then_some(fields)))
                .unwrap_or(Value::Null)
        })
        .collect();
    json(200, Value::Array(out))
}

pub(super) async fn retrieve(
    State(shared): State<Arc<Shared>>,
    SObject(def): SObject,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let split = |k: &str| -> Vec<String> {
        q.get(k)
            .map(|s| {
                s.split(',')
                    .map(|x| x.trim().to_string())
                    .filter(|x| !x.is_empty())
                    .collect()
            })
            .unwrap_or_default()
    };
    fetch(&shared, def, &split("ids"), &split("fields"))
}

pub(super) async fn retrieve_post(
    State(shared): State<Arc<Shared>>,
    SObject(def): SObject,
    body: Bytes,
) -> Response {
    let v = parse_json(&body).unwrap_or(Value::Null);
    let strings = |k: &str| -> Vec<String> {
        v.get(k)
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .map(String::from)
                    .collect()
            })
            .unwrap_or_default()
    };
    fetch(&shared, def, &strings("ids"), &strings("fields"))
}
