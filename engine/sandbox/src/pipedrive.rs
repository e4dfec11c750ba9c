//! Pipedrive emulator: v2 persons and deals (cursor paging, search), v1 leads (start/limit
//! paging, search), the `{success, data, additional_data}` envelope, `x-api-token` or
//! `api_token` auth, and the per-2-seconds burst limit with `x-ratelimit-*` headers.

use super::Credentials;
use super::ratelimit::Decision;
use super::state::{Db, Shared};
use super::util::{json, looks_like_email, parse_json, scalar_text, set_header};
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::Response;
use axum::routing::get;
use base64::Engine as _;
use serde_json::{Map, Value, json};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

/// Professional plan (legacy request-based model): 80 requests per 2 seconds per token.
pub(super) const DEFAULT_LIMIT: (u32, Duration) = (80, Duration::from_secs(2));
const DAILY_REQUESTS: u64 = 10_000;
const INFO: &str =
    "Please check developers.pipedrive.com for more information about Pipedrive API.";

pub(super) fn credentials(_base_url: &str) -> Credentials {
    Credentials::from_pairs(&[("api_token", "sandbox0pipedrive0api0token0000000000001")])
}

pub(super) fn router(shared: Arc<Shared>) -> Router {
    let v2 = Router::new()
        .route("/{object}", get(v2_list).post(v2_create))
        .route("/{object}/search", get(v2_search))
        .route(
            "/{object}/{id}",
            get(v2_read).patch(v2_update).delete(v2_delete),
        );
    let v1 = Router::new()
        .route("/leads", get(leads_list).post(leads_create))
        .route("/leads/search", get(leads_search))
        .route("/activities", get(activities_list).post(activities_create))
        .route("/activities/{id}", get(activities_read))
        .route(
            "/leads/{id}",
            get(leads_read).patch(leads_update).delete(leads_delete),
        );
    Router::new()
        .nest("/api/v2", v2)
        .nest("/v1", v1.clone())
        .nest("/api/v1", v1)
        .fallback(not_found_route)
        .with_state(shared)
}

pub(super) fn server_error(_shared: &Shared, status: u16) -> Response {
    failure(status, "Internal server error")
}

pub(super) fn throttled(_shared: &Shared, d: &Decision) -> Response {
    let mut r = json(
        429,
        json!({"success": false, "error": "Request over limit", "errorCode": 429,
               "error_info": INFO, "data": null, "additional_data": null}),
    );
    set_header(
        r.headers_mut(),
        "retry-after",
        &d.retry_after.as_secs().max(1).to_string(),
    );
    r
}

pub(super) fn limit_headers(d: &Decision, h: &mut HeaderMap) {
    set_header(h, "x-ratelimit-limit", &d.max.to_string());
    set_header(h, "x-ratelimit-remaining", &d.remaining.to_string());
    let reset = if d.allowed {
        d.window.as_secs().max(1)
    } else {
        d.retry_after.as_secs().max(1)
    };
    set_header(h, "x-ratelimit-reset", &reset.to_string());
    set_header(
        h,
        "x-daily-requests-left",
        &DAILY_REQUESTS.saturating_sub(d.used_total).to_string(),
    );
}

// ---------------------------------------------------------------------------------------
// Envelope, errors, auth.

fn failure(status: u16, error: &str) -> Response {
    json(
        status,
        json!({"success": false, "error": error, "error_info": INFO, "data": null,
               "additional_data": null}),
    )
}

fn ok(status: u16, data: Value, additional: Value) -> Response {
    let mut body = json!({"success": true, "data": data});
    if !additional.is_null() {
        body["additional_data"] = additional;
    }
    json(status, body)
}

async fn not_found_route() -> Response {
    failure(404, "Unknown method .")
}

fn authorize(
    shared: &Shared,
    headers: &HeaderMap,
    q: &HashMap<String, String>,
) -> Result<(), Response> {
    let token = headers
        .get("x-api-token")
        .and_then(|v| v.to_str().ok())
        .map(String::from)
        .or_else(|| q.get("api_token").cloned());
    if token.as_deref() == Some(shared.cred("api_token")) {
        return Ok(());
    }
    Err(json(
        401,
        json!({"success": false, "error": "unauthorized access", "errorCode": 401,
               "error_info": INFO, "data": null, "additional_data": null}),
    ))
}

fn now_v2() -> String {
    chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

fn encode_cursor(n: u64) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("c:{n}"))
}

fn decode_cursor(c: &str) -> Option<u64> {
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(c.trim_end_matches('='))
        .ok()?;
    String::from_utf8(raw)
        .ok()?
        .strip_prefix("c:")?
        .parse()
        .ok()
}

fn body_object(body: &[u8]) -> Result<Map<String, Value>, Response> {
    match parse_json(body) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(_) => Err(failure(400, "Request body must be a JSON object")),
        Err(e) => Err(failure(400, &format!("Invalid JSON: {e}"))),
    }
}

// ---------------------------------------------------------------------------------------
// v2 persons and deals.

#[derive(Clone, Copy, PartialEq)]
enum Obj {
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

fn resolve(seg: &str) -> Result<Obj, Response> {
    Obj::from_path(seg).ok_or_else(|| failure(404, "Unknown method ."))
}

/// `emails`/`phones`: objects `{value, primary, label}`; bare strings are accepted too.
fn contact_list(v: &Value, field: &str) -> Result<Value, String> {
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

fn apply_fields(
    db: &Db,
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
                merged.extend(new.clone());
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

fn v2_new(db: &mut Db, obj: Obj, input: &Map<String, Value>) -> Result<Value, String> {
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

async fn v2_create(
    State(shared): State<Arc<Shared>>,
    Path(object): Path<String>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Err(r) = authorize(&shared, &headers, &q) {
        return r;
    }
    let obj = match resolve(&object) {
        Ok(o) => o,
        Err(r) => return r,
    };
    let input = match body_object(&body) {
        Ok(m) => m,
        Err(r) => return r,
    };
    let result = v2_new(&mut shared.db(), obj, &input);
    match result {
        Ok(rec) => ok(200, rec, Value::Null),
        Err(m) => failure(400, &m),
    }
}

async fn v2_read(
    State(shared): State<Arc<Shared>>,
    Path((object, id)): Path<(String, String)>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    if let Err(r) = authorize(&shared, &headers, &q) {
        return r;
    }
    let obj = match resolve(&object) {
        Ok(o) => o,
        Err(r) => return r,
    };
    let rec = shared.db().get(obj.table(), &id).cloned();
    match rec {
        Some(r) => ok(200, r, Value::Null),
        None => failure(404, &format!("{} not found", obj.label())),
    }
}

async fn v2_update(
    State(shared): State<Arc<Shared>>,
    Path((object, id)): Path<(String, String)>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Err(r) = authorize(&shared, &headers, &q) {
        return r;
    }
    let obj = match resolve(&object) {
        Ok(o) => o,
        Err(r) => return r,
    };
    let input = match body_object(&body) {
        Ok(m) => m,
        Err(r) => return r,
    };
    let mut db = shared.db();
    let Some(Value::Object(mut rec)) = db.get(obj.table(), &id).cloned() else {
        drop(db);
        return failure(404, &format!("{} not found", obj.label()));
    };
    if let Err(m) = apply_fields(&db, obj, &mut rec, &input) {
        drop(db);
        return failure(400, &m);
    }
    rec.insert("update_time".into(), json!(now_v2()));
    let value = Value::Object(rec);
    db.table(obj.table()).insert(id, value.clone());
    drop(db);
    ok(200, value, Value::Null)
}

async fn v2_delete(
    State(shared): State<Arc<Shared>>,
    Path((object, id)): Path<(String, String)>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    if let Err(r) = authorize(&shared, &headers, &q) {
        return r;
    }
    let obj = match resolve(&object) {
        Ok(o) => o,
        Err(r) => return r,
    };
    let removed = shared.db().table(obj.table()).shift_remove(&id);
    match removed {
        Some(r) => ok(200, json!({"id": r["id"]}), Value::Null),
        None => failure(404, &format!("{} not found", obj.label())),
    }
}

fn limit(q: &HashMap<String, String>, default: usize) -> Result<usize, Response> {
    match q.get("limit").map(|s| s.parse::<usize>()) {
        None => Ok(default),
        Some(Ok(n)) if (1..=500).contains(&n) => Ok(n),
        Some(_) => Err(failure(400, "limit must be an integer between 1 and 500")),
    }
}

async fn v2_list(
    State(shared): State<Arc<Shared>>,
    Path(object): Path<String>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    if let Err(r) = authorize(&shared, &headers, &q) {
        return r;
    }
    let obj = match resolve(&object) {
        Ok(o) => o,
        Err(r) => return r,
    };
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
                super::util::cmp_loose(r["update_time"].as_str().unwrap_or(""), s)
                    != std::cmp::Ordering::Less
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
        let o = super::util::cmp_loose(&scalar_text(&a[&key]), &scalar_text(&b[&key]));
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

fn search_text(obj: Obj, r: &Value, fields: &[String]) -> Vec<String> {
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

fn term_matches(candidates: &[String], term: &str, exact: bool) -> bool {
    let term = term.to_lowercase();
    candidates.iter().any(|c| {
        let c = c.to_lowercase();
        if exact { c == term } else { c.contains(&term) }
    })
}

async fn v2_search(
    State(shared): State<Arc<Shared>>,
    Path(object): Path<String>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    if let Err(r) = authorize(&shared, &headers, &q) {
        return r;
    }
    let obj = match resolve(&object) {
        Ok(o) => o,
        Err(r) => return r,
    };
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

// ---------------------------------------------------------------------------------------
// v1 leads.

const LEAD_FIELDS: &[&str] = &[
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

fn now_v1() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

fn apply_lead(
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

async fn leads_create(
    State(shared): State<Arc<Shared>>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Err(r) = authorize(&shared, &headers, &q) {
        return r;
    }
    let input = match body_object(&body) {
        Ok(m) => m,
        Err(r) => return r,
    };
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

async fn leads_read(
    State(shared): State<Arc<Shared>>,
    Path(id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    if let Err(r) = authorize(&shared, &headers, &q) {
        return r;
    }
    let rec = shared.db().get("leads", &id).cloned();
    match rec {
        Some(r) => ok(200, r, Value::Null),
        None => failure(404, "Lead not found"),
    }
}

async fn leads_update(
    State(shared): State<Arc<Shared>>,
    Path(id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Err(r) = authorize(&shared, &headers, &q) {
        return r;
    }
    let input = match body_object(&body) {
        Ok(m) => m,
        Err(r) => return r,
    };
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

async fn leads_delete(
    State(shared): State<Arc<Shared>>,
    Path(id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    if let Err(r) = authorize(&shared, &headers, &q) {
        return r;
    }
    let removed = shared.db().table("leads").shift_remove(&id);
    match removed {
        Some(_) => ok(200, json!({"id": id}), Value::Null),
        None => failure(404, "Lead not found"),
    }
}

fn offset_page(
    q: &HashMap<String, String>,
    all: Vec<Value>,
) -> Result<(Vec<Value>, Value), Response> {
    let start = match q.get("start").map(|s| s.parse::<usize>()) {
        None => 0,
        Some(Ok(n)) => n,
        Some(Err(_)) => return Err(failure(400, "start must be a non-negative integer")),
    };
    let limit = limit(q, 100)?;
    let end = start.saturating_add(limit).min(all.len());
    let more = end < all.len();
    let mut pagination = json!({"start": start, "limit": limit, "more_items_in_collection": more});
    if more {
        pagination["next_start"] = json!(end);
    }
    Ok((
        all.get(start..end).unwrap_or_default().to_vec(),
        json!({"pagination": pagination}),
    ))
}

async fn leads_list(
    State(shared): State<Arc<Shared>>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    if let Err(r) = authorize(&shared, &headers, &q) {
        return r;
    }
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
                        super::util::cmp_loose(r["update_time"].as_str().unwrap_or(""), s)
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

async fn leads_search(
    State(shared): State<Arc<Shared>>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    if let Err(r) = authorize(&shared, &headers, &q) {
        return r;
    }
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

// ---------------------------------------------------------------------------------------
// v1 activities (tasks, calls): what workflow actions create.

const ACTIVITY_FIELDS: &[&str] = &[
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

async fn activities_create(
    State(shared): State<Arc<Shared>>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Err(r) = authorize(&shared, &headers, &q) {
        return r;
    }
    let input = match body_object(&body) {
        Ok(m) => m,
        Err(r) => return r,
    };
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

async fn activities_read(
    State(shared): State<Arc<Shared>>,
    Path(id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    if let Err(r) = authorize(&shared, &headers, &q) {
        return r;
    }
    let rec = shared.db().get("activities", &id).cloned();
    match rec {
        Some(r) => ok(200, r, Value::Null),
        None => failure(404, "Activity not found"),
    }
}

async fn activities_list(
    State(shared): State<Arc<Shared>>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    if let Err(r) = authorize(&shared, &headers, &q) {
        return r;
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip() {
        assert_eq!(decode_cursor(&encode_cursor(42)), Some(42));
        assert_eq!(decode_cursor("garbage!"), None);
    }
}
