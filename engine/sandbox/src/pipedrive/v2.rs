//! Pipedrive v2 persons and deals: create, read, update, delete, cursor-paged lists with
//! filters and sorting, and `/search`.

use super::super::state::{Db, Shared};
use super::super::util::{cmp_loose, looks_like_email, scalar_text};
use super::super::vendor::path_segment;
use super::envelope::{PdBody, decode_cursor, encode_cursor, failure, limit, ok};
use axum::extract::{FromRequestParts, Path, Query, State};
use axum::http::request::Parts;
use axum::response::Response;
use serde_json::{Map, Value, json};
use std::collections::HashMap;
use std::sync::Arc;

pub(super) fn now_v2() -> String {
    chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

#[derive(Clone, Copy, PartialEq)]
pub(super) enum Obj {
    Person,
    Deal,
}

impl Obj {
    fn from_path(s: &str) -> Option<Obj> {
        match s {
            "persons" => Some(Obj::Person),
            "deals" => Some(Obj::Deal),
            _ => None,
        }
    }
    fn table(self) -> &'static str {
        match self {
            Obj::Person => "persons",
            Obj::Deal => "deals",
        }
    }
    fn label(self) -> &'static str {
        match self {
            Obj::Person => "Person",
            Obj::Deal => "Deal",
        }
    }
    fn fields(self) -> &'static [&'static str] {
        match self {
            Obj::Person => &[
                "name",
                "first_name",
                "last_name",
                "owner_id",
                "org_id",
                "emails",
                "phones",
                "visible_to",
                "label_ids",
                "marketing_status",
                "custom_fields",
                "add_time",
            ],
            Obj::Deal => &[
                "title",
                "owner_id",
                "person_id",
                "org_id",
                "pipeline_id",
                "stage_id",
                "value",
                "currency",
                "status",
                "probability",
                "lost_reason",
                "visible_to",
                "close_time",
                "won_time",
                "lost_time",
                "expected_close_date",
                "label_ids",
                "custom_fields",
                "add_time",
                "is_archived",
                "archive_time",
            ],
        }
    }
}

/// The object of the route's `{object}` segment (`persons` or `deals`); others are 404.
pub(super) struct V2Object(Obj);

impl FromRequestParts<Arc<Shared>> for V2Object {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, shared: &Arc<Shared>) -> Result<Self, Response> {
        let seg = path_segment(parts, shared, "object")
            .await
            .unwrap_or_default();
        Obj::from_path(&seg)
            .map(V2Object)
            .ok_or_else(|| failure(404, "Unknown method ."))
    }
}
/// `emails`/`phones`: objects `{value, primary, label}`; bare strings are accepted too.
pub(super) fn contact_list(v: &Value, field: &str) -> Result<Value, String> {
    let Value::Array(items) = v else {
        return Err(format!("{field} must be an array"));
    };
    let mut out = Vec::new();
    for (i, it) in items.iter().enumerate() {
        let mut o = match it {
            Value::String(s) => json!({"value": s}),
            Value::Object(_) => it.clone(),
            _ => return Err(format!("{field}[{i}] must be an object")),
        };
        let value = o["value"].as_str().unwrap_or_default().to_string();
        if field == "emails" && !value.is_empty() && !looks_like_email(&value) {
            return Err(format!("{field}[{i}].value must be a valid email"));
        }
        if o.get("primary").is_none() {
            o["primary"] = Value::Bool(i == 0);
        }
        if o.get("label").is_none() {
            o["label"] = json!("work");
        }
        out.push(o);
    }
    Ok(Value::Array(out))
}

pub(super) fn apply_fields(
    db: &mut Db,
    obj: Obj,
    rec: &mut Map<String, Value>,
    input: &Map<String, Value>,
) -> Result<(), String> {
    for (k, v) in input {
        if !obj.fields().contains(&k.as_str()) {
            return Err(format!("Unknown field: {k}"));
        }
        let v = match k.as_str() {
            "emails" | "phones" => contact_list(v, k)?,
            "owner_id" | "org_id" | "person_id" | "pipeline_id" | "stage_id" | "visible_to" => {
                if !(v.is_null() || v.is_i64() || v.is_u64()) {
                    return Err(format!("{k} must be an integer"));
                }
                v.clone()
            }
            "value" | "probability" => {
                if !(v.is_null() || v.is_number()) {
                    return Err(format!("{k} must be a number"));
                }
                v.clone()
            }
            "status" => match v.as_str() {
                Some("open" | "won" | "lost") => v.clone(),
                _ => return Err("status must be one of open, won, lost".to_string()),
            },
            "custom_fields" => {
                let Value::Object(new) = v else {
                    return Err("custom_fields must be an object".to_string());
                };
                let mut merged = rec
                    .get("custom_fields")
                    .and_then(Value::as_object)
                    .cloned()
                    .unwrap_or_default();
                // Values go under the custom fields' hash keys; keys the object's field
                // registry does not know are ignored.
                merged.extend(super::fields::known_custom_fields(db, obj.table(), new));
                Value::Object(merged)
            }
            _ => v.clone(),
        };
        if k == "person_id"
            && let Some(pid) = v.as_u64()
            && db.get("persons", &pid.to_string()).is_none()
        {
            return Err(format!("Person with id {pid} not found"));
        }
        rec.insert(k.clone(), v);
    }
    Ok(())
}

pub(super) fn v2_new(db: &mut Db, obj: Obj, input: &Map<String, Value>) -> Result<Value, String> {
    let required = match obj {
        Obj::Person => "name",
        Obj::Deal => "title",
    };
    if input
        .get(required)
        .and_then(Value::as_str)
        .is_none_or(|s| s.trim().is_empty())
    {
        return Err(format!("Validation failed: {required}: required"));
    }
    let now = now_v2();
    let mut rec = Map::new();
    apply_fields(db, obj, &mut rec, input)?;
    let id = db.next_id();
    rec.insert("id".into(), json!(id));
    rec.entry("owner_id").or_insert(json!(1));
    rec.entry("visible_to").or_insert(json!(3));
    rec.entry("label_ids").or_insert(json!([]));
    rec.entry("custom_fields").or_insert(json!({}));
    rec.insert("is_deleted".into(), json!(false));
    rec.entry("add_time").or_insert(json!(now));
    rec.insert("update_time".into(), json!(now));
    match obj {
        Obj::Person => {
            rec.entry("emails").or_insert(json!([]));
            rec.entry("phones").or_insert(json!([]));
            rec.entry("org_id").or_insert(Value::Null);
        }
        Obj::Deal => {
            rec.entry("status").or_insert(json!("open"));
            rec.entry("currency").or_insert(json!("USD"));
            rec.entry("value").or_insert(json!(0));
            rec.entry("pipeline_id").or_insert(json!(1));
            rec.entry("stage_id").or_insert(json!(1));
            rec.entry("person_id").or_insert(Value::Null);
            rec.entry("org_id").or_insert(Value::Null);
            rec.entry("is_archived").or_insert(json!(false));
        }
    }
    let value = Value::Object(rec);
    db.insert(obj.table(), &id.to_string(), value.clone());
    Ok(value)
}

pub(super) async fn create(
    State(shared): State<Arc<Shared>>,
    V2Object(obj): V2Object,
    PdBody(input): PdBody,
) -> Response {
    let result = v2_new(&mut shared.db(), obj, &input);
    match result {
        Ok(rec) => ok(200, rec, Value::Null),
        Err(m) => failure(400, &m),
    }
}

pub(super) async fn read(
    State(shared): State<Arc<Shared>>,
    V2Object(obj): V2Object,
    Path((_, id)): Path<(String, String)>,
) -> Response {
    let rec = shared.db().get(obj.table(), &id).cloned();
    match rec {
        Some(r) => ok(200, r, Value::Null),
        None => failure(404, &format!("{} not found", obj.label())),
    }
}

pub(super) async fn update(
    State(shared): State<Arc<Shared>>,
    V2Object(obj): V2Object,
    Path((_, id)): Path<(String, String)>,
    PdBody(input): PdBody,
) -> Response {
    let mut db = shared.db();
    let Some(Value::Object(mut rec)) = db.get(obj.table(), &id).cloned() else {
        drop(db);
        return failure(404, &format!("{} not found", obj.label()));
    };
    if let Err(m) = apply_fields(&mut db, obj, &mut rec, &input) {
        drop(db);
        return failure(400, &m);
    }
    rec.insert("update_time".into(), json!(now_v2()));
    let value = Value::Object(rec);
    db.table(obj.table()).insert(id, value.clone());
    drop(db);
    ok(200, value, Value::Null)
}

pub(super) async fn delete(
    State(shared): State<Arc<Shared>>,
    V2Object(obj): V2Object,
    Path((_, id)): Path<(String, String)>,
) -> Response {
    let removed = shared.db().table(obj.table()).shift_remove(&id);
    match removed {
        Some(r) => ok(200, json!({"id": r["id"]}), Value::Null),
        None => failure(404, &format!("{} not found", obj.label())),
    }
}

pub(super) async fn list(
    State(shared): State<Arc<Shared>>,
    V2Object(obj): V2Object,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let limit = match limit(&q, 100) {
        Ok(l) => l,
        Err(r) => return r,
    };
    let start = match q.get("cursor") {
        None => 0,
        Some(c) => match decode_cursor(c) {
            Some(n) => n as usize,
            None => return failure(400, "Invalid cursor"),
        },
    };
    let ids: Option<Vec<String>> = q
        .get("ids")
        .map(|s| s.split(',').map(|x| x.trim().to_string()).collect());
    let since = q.get("updated_since").cloned();
    let eq = |r: &Value, k: &str| q.get(k).is_none_or(|want| scalar_text(&r[k]) == *want);
    let mut all: Vec<Value> = shared
        .db()
        .tables
        .get(obj.table())
        .map(|t| t.values().cloned().collect())
        .unwrap_or_default();
    all.retain(|r| {
        ids.as_ref()
            .is_none_or(|ids| ids.contains(&scalar_text(&r["id"])))
            && since.as_deref().is_none_or(|s| {
                cmp_loose(r["update_time"].as_str().unwrap_or(""), s) != std::cmp::Ordering::Less
            })
            && eq(r, "owner_id")
            && eq(r, "org_id")
            && eq(r, "person_id")
            && eq(r, "stage_id")
            && eq(r, "status")
    });
    let key = q.get("sort_by").map_or("id", String::as_str).to_string();
    let desc = q.get("sort_direction").is_some_and(|d| d == "desc");
    all.sort_by(|a, b| {
        let o = cmp_loose(&scalar_text(&a[&key]), &scalar_text(&b[&key]));
        if desc { o.reverse() } else { o }
    });
    let end = start.saturating_add(limit).min(all.len());
    let data: Vec<Value> = all.get(start..end).unwrap_or_default().to_vec();
    let next = if end < all.len() {
        json!(encode_cursor(end as u64))
    } else {
        Value::Null
    };
    ok(200, Value::Array(data), json!({"next_cursor": next}))
}

pub(super) fn search_text(obj: Obj, r: &Value, fields: &[String]) -> Vec<String> {
    let mut out = Vec::new();
    let want = |f: &str| fields.is_empty() || fields.iter().any(|x| x == f);
    match obj {
        Obj::Person => {
            if want("name") {
                out.push(scalar_text(&r["name"]));
            }
            for (f, key) in [("email", "emails"), ("phone", "phones")] {
                if want(f)
                    && let Some(a) = r[key].as_array()
                {
                    out.extend(a.iter().map(|e| scalar_text(&e["value"])));
                }
            }
        }
        Obj::Deal => {
            if want("title") {
                out.push(scalar_text(&r["title"]));
            }
        }
    }
    if want("custom_fields")
        && let Some(m) = r["custom_fields"].as_object()
    {
        out.extend(m.values().map(scalar_text));
    }
    out
}

pub(super) fn term_matches(candidates: &[String], term: &str, exact: bool) -> bool {
    let term = term.to_lowercase();
    candidates.iter().any(|c| {
        let c = c.to_lowercase();
        if exact { c == term } else { c.contains(&term) }
    })
}

pub(super) async fn search(
    State(shared): State<Arc<Shared>>,
    V2Object(obj): V2Object,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let exact = q.get("exact_match").is_some_and(|v| v == "true");
    let term = q.get("term").cloned().unwrap_or_default();
    if term.chars().count() < if exact { 1 } else { 2 } {
        return failure(400, "term must be at least 2 characters long");
    }
    let fields: Vec<String> = q
        .get("fields")
        .map(|s| s.split(',').map(|x| x.trim().to_string()).collect())
        .unwrap_or_default();
    let limit = match limit(&q, 100) {
        Ok(l) => l,
        Err(r) => return r,
    };
    let start = q.get("cursor").and_then(|c| decode_cursor(c)).unwrap_or(0) as usize;
    let hits: Vec<Value> = shared
        .db()
        .tables
        .get(obj.table())
        .map(|t| {
            t.values()
                .filter(|r| term_matches(&search_text(obj, r, &fields), &term, exact))
                .cloned()
                .collect()
        })
        .unwrap_or_default();
    let end = start.saturating_add(limit).min(hits.len());
    let items: Vec<Value> = hits
        .get(start..end)
        .unwrap_or_default()
        .iter()
        .map(|r| {
            let mut item = r.clone();
            item["type"] = json!(match obj {
                Obj::Person => "person",
                Obj::Deal => "deal",
            });
            if let Some(o) = item.as_object_mut() {
                o.remove("custom_fields");
            }
            json!({"result_score": if exact { 1.0 } else { 0.5 }, "item": item})
        })
        .collect();
    let next = if end < hits.len() {
        json!(encode_cursor(end as u64))
    } else {
        Value::Null
    };
    ok(200, json!({"items": items}), json!({"next_cursor": next}))
}
