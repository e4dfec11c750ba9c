//! HubSpot's batch endpoints (`/batch/{create|read|update|upsert|archive}`, at most 100
//! inputs): per-input results, 207 with `errors[]` when some inputs failed (a read lists
//! every input it did not find in one `OBJECT_NOT_FOUND` error's `context.ids`); reading or
//! writing by `idProperty` needs a property whose values are unique.

use super::super::state::Shared;
use super::super::util::{empty, json, now_iso, scalar_text};
use super::errors::{JsonBody, Object, WriteError, bad_request, error};
use super::store::{archive_object, find_id, insert_object, render, update_object};
use super::{BATCH_MAX, associations, properties};
use axum::extract::{Path, State};
use axum::response::Response;
use serde_json::{Map, Value, json};
use std::sync::Arc;

fn batch_error(shared: &Shared, input: &Value, e: WriteError) -> Value {
    let WriteError {
        category,
        message,
        context: ctx,
        errors,
        ..
    } = e;
    let mut context = match ctx {
        Value::Object(m) => m,
        _ => Map::new(),
    };
    if let Some(t) = input.get("objectWriteTraceId").and_then(Value::as_str) {
        context.insert("objectWriteTraceId".into(), json!([t]));
    }
    json!({"status": "error", "category": category, "message": message,
           "context": context, "errors": errors, "links": {}, "id": shared.uuid()})
}

fn with_trace(mut rendered: Value, input: &Value) -> Value {
    if let Some(t) = input.get("objectWriteTraceId") {
        rendered["objectWriteTraceId"] = t.clone();
    }
    rendered
}

pub(super) async fn batch(
    State(shared): State<Arc<Shared>>,
    Object(object): Object,
    Path((_, action)): Path<(String, String)>,
    JsonBody(req): JsonBody,
) -> Response {
    let Some(inputs) = req.get("inputs").and_then(Value::as_array).cloned() else {
        return bad_request(&shared, "Invalid input JSON: `inputs` must be an array");
    };
    if inputs.len() > BATCH_MAX {
        return bad_request(
            &shared,
            &format!(
                "Too many inputs: {} (the limit is {BATCH_MAX})",
                inputs.len()
            ),
        );
    }
    let started = now_iso();
    let mut results = Vec::new();
    let mut errors = Vec::new();
    // Inputs a read did not find: one `OBJECT_NOT_FOUND` error lists them all.
    let mut not_found: Vec<String> = Vec::new();
    let wanted: Vec<String> = req
        .get("properties")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(String::from)
                .collect()
        })
        .unwrap_or_default();
    {
        let mut db = shared.db();
        // Reading or writing by a property needs one whose value HubSpot keeps unique.
        if matches!(action.as_str(), "read" | "update" | "upsert") {
            for input in std::iter::once(&req).chain(&inputs) {
                if let Some(prop) = input.get("idProperty").and_then(Value::as_str)
                    && !properties::is_unique(&db, object, prop, action == "read")
                {
                    drop(db);
                    return bad_request(
                        &shared,
                        &format!(
                            "Unable to perform {} by non-unique {} property {prop}",
                            if action == "read" {
                                "read"
                            } else {
                                "update/upsert"
                            },
                            properties::type_id(object)
                        ),
                    );
                }
            }
        }
        // HubSpot checks a whole batch before writing any of it: a property the portal does
        // not have, or an invalid association, refuses the batch with one 400 (other value
        // errors and duplicates are reported per input).
        if matches!(action.as_str(), "create" | "update" | "upsert") {
            for input in &inputs {
                let props = input
                    .get("properties")
                    .and_then(Value::as_object)
                    .cloned()
                    .unwrap_or_default();
                let mut checked = properties::check_known(&db, object, &props);
                if checked.is_ok() && action == "create" {
                    checked =
                        associations::validate(&db, object, input.get("associations")).map(|_| ());
                }
                if let Err(e) = checked {
                    drop(db);
                    return e.respond(&shared);
                }
            }
        }
        for input in &inputs {
            let id = input.get("id").map(scalar_text).unwrap_or_default();
            let id_property = input
                .get("idProperty")
                .or_else(|| req.get("idProperty"))
                .and_then(Value::as_str);
            match action.as_str() {
                "create" => match insert_object(&mut db, object, input) {
                    Ok((_, r)) => results.push(with_trace(render(&r, object, &[], true), input)),
                    Err(e) => errors.push(batch_error(&shared, input, e)),
                },
                "update" => {
                    let key = find_id(&db, object, &id, id_property).unwrap_or(id.clone());
                    match update_object(&mut db, object, &key, input) {
                        Ok(r) => results.push(with_trace(render(&r, object, &[], true), input)),
                        Err(e) => errors.push(batch_error(&shared, input, e)),
                    }
                }
                "upsert" => {
                    let Some(prop) = id_property else {
                        errors.push(batch_error(
                            &shared,
                            input,
                            WriteError::new(
                                400,
                                "VALIDATION_ERROR",
                                "idProperty is required for upsert".into(),
                                Value::Null,
                            ),
                        ));
                        continue;
                    };
                    let outcome = match find_id(&db, object, &id, Some(prop)) {
                        Some(key) => {
                            update_object(&mut db, object, &key, input).map(|r| (r, false))
                        }
                        None => {
                            let mut inp = input.clone();
                            if prop != "hs_object_id" {
                                inp["properties"][prop] = Value::String(id.clone());
                            }
                            insert_object(&mut db, object, &inp).map(|(_, r)| (r, true))
                        }
                    };
                    match outcome {
                        Ok((r, new)) => {
                            let mut out = with_trace(render(&r, object, &[], true), input);
                            out["new"] = Value::Bool(new);
                            results.push(out);
                        }
                        Err(e) => errors.push(batch_error(&shared, input, e)),
                    }
                }
                "read" => match find_id(&db, object, &id, id_property)
                    .and_then(|k| db.get(object, &k).cloned())
                {
                    Some(r) => results.push(render(&r, object, &wanted, false)),
                    None => not_found.push(id),
                },
                "archive" => {
                    archive_object(&mut db, object, &id);
                }
                other => {
                    drop(db);
                    return error(
                        &shared,
                        404,
                        "OBJECT_NOT_FOUND",
                        &format!("unknown batch action {other}"),
                        Value::Null,
                    );
                }
            }
        }
    }
    if action == "archive" {
        return empty(204);
    }
    if !not_found.is_empty() {
        errors.push(batch_error(
            &shared,
            &Value::Null,
            WriteError::new(
                404,
                "OBJECT_NOT_FOUND",
                format!(
                    "Could not get some {} objects, they may be deleted or not exist. Check that ids are valid.",
                    properties::type_name(object)
                ),
                json!({ "ids": not_found }),
            ),
        ));
    }
    let ok_status = if action == "create" { 201 } else { 200 };
    let mut body = json!({"status": "COMPLETE", "results": results, "requestedAt": started,
                          "startedAt": started, "completedAt": now_iso()});
    if errors.is_empty() {
        return json(ok_status, body);
    }
    body["numErrors"] = json!(errors.len());
    body["errors"] = Value::Array(errors);
    json(207, body)
}
