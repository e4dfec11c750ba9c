//! HubSpot CRM v3 emulator: contacts, companies, deals and tickets (create, read, update,
//! archive, list with `after`, search with filterGroups, batch create/read/update/upsert/
//! archive), the OAuth token endpoint (`refresh_token` grant) and static bearer tokens, the
//! 100 requests / 10 s rolling limit with `X-HubSpot-RateLimit-*` headers and the 429
//! `RATE_LIMIT` body.

use super::Credentials;
use super::ratelimit::Decision;
use super::state::{Db, Shared};
use super::util::{
    bearer, cmp_loose, empty, json, looks_like_email, now_iso, parse_json, scalar_text, set_header,
};
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::Response;
use axum::routing::{get, post};
use serde_json::{Map, Value, json};
use std::cmp::Ordering;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

/// HubSpot Free/Starter: 100 requests per rolling 10 seconds.
pub(super) const DEFAULT_LIMIT: (u32, Duration) = (100, Duration::from_secs(10));
const DAILY_LIMIT: u64 = 250_000;
const BATCH_MAX: usize = 100;
const SEARCH_LIMIT_MAX: usize = 200;
const SEARCH_RESULTS_MAX: usize = 10_000;

pub(super) fn credentials(_base_url: &str) -> Credentials {
    Credentials::from_pairs(&[
        ("access_token", "pat-sandbox-hubspot-0001"),
        ("client_id", "sandbox-hubspot-client-id"),
        ("client_secret", "sandbox-hubspot-client-secret"),
        ("refresh_token", "sandbox-hubspot-refresh-token"),
    ])
}

/// The OAuth endpoints do not count against the API limit.
pub(super) fn exempt(path: &str) -> bool {
    path.starts_with("/oauth/")
}

pub(super) fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/oauth/v1/token", post(token))
        .route("/oauth/v3/token", post(token))
        .route("/crm/v3/objects/{object}", get(list).post(create))
        .route("/crm/v3/objects/{object}/search", post(search))
        .route("/crm/v3/objects/{object}/batch/{action}", post(batch))
        .route(
            "/crm/v3/objects/{object}/{id}",
            get(read).patch(update).delete(archive),
        )
        .fallback(not_found_route)
        .with_state(shared)
}

pub(super) fn server_error(shared: &Shared, status: u16) -> Response {
    json(
        status,
        json!({"status": "error", "message": "internal error", "correlationId": shared.uuid(),
               "category": if status == 500 { "INTERNAL_ERROR" } else { "SERVICE_UNAVAILABLE" }}),
    )
}

pub(super) fn throttled(shared: &Shared, _d: &Decision) -> Response {
    json(
        429,
        json!({"status": "error", "message": "You have reached your ten_secondly_rolling limit.",
               "errorType": "RATE_LIMIT", "correlationId": shared.uuid(),
               "policyName": "TEN_SECONDLY_ROLLING", "requestId": shared.uuid()}),
    )
}

pub(super) fn limit_headers(d: &Decision, h: &mut HeaderMap) {
    set_header(h, "x-hubspot-ratelimit-daily", &DAILY_LIMIT.to_string());
    set_header(
        h,
        "x-hubspot-ratelimit-daily-remaining",
        &DAILY_LIMIT.saturating_sub(d.used_total).to_string(),
    );
    set_header(
        h,
        "x-hubspot-ratelimit-interval-milliseconds",
        &d.window.as_millis().to_string(),
    );
    set_header(h, "x-hubspot-ratelimit-max", &d.max.to_string());
    set_header(h, "x-hubspot-ratelimit-remaining", &d.remaining.to_string());
}

// ---------------------------------------------------------------------------------------
// Errors in HubSpot's shape.

fn error(shared: &Shared, status: u16, category: &str, message: &str, extra: Value) -> Response {
    let mut body = json!({"status": "error", "message": message,
                          "correlationId": shared.uuid(), "category": category});
    if let (Some(b), Value::Object(e)) = (body.as_object_mut(), extra) {
        b.extend(e);
    }
    json(status, body)
}

fn bad_request(shared: &Shared, message: &str) -> Response {
    error(shared, 400, "VALIDATION_ERROR", message, Value::Null)
}

fn not_found(shared: &Shared, id: &str) -> Response {
    error(
        shared,
        404,
        "OBJECT_NOT_FOUND",
        "Object not found.  objectId are usually numeric.",
        json!({"context": {"id": [id]}}),
    )
}

async fn not_found_route(State(shared): State<Arc<Shared>>) -> Response {
    error(
        &shared,
        404,
        "OBJECT_NOT_FOUND",
        "resource not found",
        Value::Null,
    )
}

fn authorize(shared: &Shared, headers: &HeaderMap) -> Result<(), Response> {
    let ok = bearer(headers)
        .is_some_and(|t| t == shared.cred("access_token") || shared.db().issued_tokens.contains(t));
    if ok {
        return Ok(());
    }
    if bearer(headers).is_some_and(|t| shared.db().expired_tokens.contains(t)) {
        return Err(error(
            shared,
            401,
            "EXPIRED_AUTHENTICATION",
            "The OAuth token used to make this call expired 1 second(s) ago.",
            Value::Null,
        ));
    }
    Err(error(
        shared,
        401,
        "INVALID_AUTHENTICATION",
        "Authentication credentials not found. This API supports OAuth 2.0 authentication and you can find more details at https://developers.hubspot.com/docs/methods/auth/oauth-overview",
        Value::Null,
    ))
}

// ---------------------------------------------------------------------------------------
// Objects.

/// Canonical object name for a path segment (`contacts` or `0-1`).
fn object_name(seg: &str) -> Option<&'static str> {
    match seg.to_ascii_lowercase().as_str() {
        "contacts" | "contact" | "0-1" => Some("contacts"),
        "companies" | "company" | "0-2" => Some("companies"),
        "deals" | "deal" | "0-3" => Some("deals"),
        "tickets" | "ticket" | "0-5" => Some("tickets"),
        "tasks" | "task" | "0-27" => Some("tasks"),
        _ => None,
    }
}

fn default_properties(object: &str) -> &'static [&'static str] {
    match object {
        "contacts" => &[
            "createdate",
            "email",
            "firstname",
            "hs_object_id",
            "lastmodifieddate",
            "lastname",
        ],
        "companies" => &[
            "createdate",
            "domain",
            "hs_lastmodifieddate",
            "hs_object_id",
            "name",
        ],
        "deals" => &[
            "amount",
            "closedate",
            "createdate",
            "dealname",
            "dealstage",
            "hs_lastmodifieddate",
            "hs_object_id",
            "pipeline",
        ],
        "tasks" => &["hs_createdate", "hs_lastmodifieddate", "hs_object_id"],
        _ => &[
            "content",
            "createdate",
            "hs_lastmodifieddate",
            "hs_object_id",
            "hs_pipeline",
            "hs_pipeline_stage",
            "hs_ticket_category",
            "hs_ticket_priority",
            "subject",
        ],
    }
}

fn resolve(shared: &Shared, seg: &str) -> Result<&'static str, Response> {
    object_name(seg)
        .ok_or_else(|| bad_request(shared, &format!("Unable to infer object type from: {seg}")))
}

/// The stored object as returned: default properties plus `wanted`, absent ones as null.
fn render(record: &Value, object: &str, wanted: &[String], all: bool) -> Value {
    let mut out = record.clone();
    let stored = record.get("properties").and_then(Value::as_object);
    let mut props = Map::new();
    let names = default_properties(object)
        .iter()
        .map(|s| s.to_string())
        .chain(wanted.iter().cloned());
    for name in names {
        let v = stored
            .and_then(|p| p.get(&name))
            .cloned()
            .unwrap_or(Value::Null);
        props.insert(name, v);
    }
    if all && let Some(p) = stored {
        for (k, v) in p {
            props.entry(k.clone()).or_insert_with(|| v.clone());
        }
    }
    let mut keys: Vec<_> = props.into_iter().collect();
    keys.sort_by(|a, b| a.0.cmp(&b.0));
    out["properties"] = Value::Object(keys.into_iter().collect());
    if let Some(o) = out.as_object_mut() {
        o.remove("objectWriteTraceId");
    }
    out
}

/// Checks and normalises a `properties` object: every value becomes a string.
fn clean_properties(object: &str, props: Option<&Value>) -> Result<Map<String, Value>, String> {
    let Some(props) = props else {
        return Ok(Map::new());
    };
    let Some(map) = props.as_object() else {
        return Err("Invalid input JSON: `properties` must be an object".to_string());
    };
    let mut out = Map::new();
    let mut invalid = Vec::new();
    for (k, v) in map {
        let text = match v {
            Value::Array(_) | Value::Object(_) => {
                invalid.push(
                    json!({"isValid": false, "message": format!("{k} must be a string"),
                                    "error": "INVALID_PROPERTY_VALUE", "name": k}),
                );
                continue;
            }
            other => scalar_text(other),
        };
        if object == "contacts" && k == "email" && !text.is_empty() && !looks_like_email(&text) {
            invalid.push(json!({"isValid": false,
                                "message": format!("Email address {text} is invalid"),
                                "error": "INVALID_EMAIL", "name": "email"}));
            continue;
        }
        out.insert(k.clone(), Value::String(text));
    }
    if invalid.is_empty() {
        Ok(out)
    } else {
        Err(format!(
            "Property values were not valid: {}",
            Value::Array(invalid)
        ))
    }
}

/// The index key of a contact e-mail (case-insensitive).
fn email_key(email: &str) -> String {
    format!("contacts/email/{}", email.trim().to_lowercase())
}

/// The id of a live contact with this e-mail (case-insensitive), if any.
fn contact_by_email(db: &Db, email: &str, except: Option<&str>) -> Option<String> {
    if email.trim().is_empty() {
        return None;
    }
    db.unique
        .get(&email_key(email))
        .filter(|id| Some(id.as_str()) != except)
        .cloned()
}

/// Keeps the e-mail index in step with a contact's old and new e-mail.
fn reindex_email(db: &mut Db, id: &str, old: Option<&str>, new: Option<&str>) {
    if let Some(o) = old.filter(|o| !o.trim().is_empty()) {
        db.unique.remove(&email_key(o));
    }
    if let Some(n) = new.filter(|n| !n.trim().is_empty()) {
        db.unique.insert(email_key(n), id.to_string());
    }
}

/// Archives (removes) an object, dropping it from the e-mail index.
fn archive_object(db: &mut Db, object: &str, id: &str) {
    if let Some(r) = db.table(object).shift_remove(id)
        && object == "contacts"
    {
        let email = r["properties"]["email"].as_str().map(String::from);
        reindex_email(db, id, email.as_deref(), None);
    }
}

/// Why a write failed: (HTTP status, category, message, extra context).
struct WriteError(u16, &'static str, String, Value);

fn conflict(existing: &str) -> WriteError {
    WriteError(
        409,
        "CONFLICT",
        format!("Contact already exists. Existing ID: {existing}"),
        json!({"existingId": [existing]}),
    )
}

fn insert_object(db: &mut Db, object: &str, input: &Value) -> Result<(String, Value), WriteError> {
    let mut props = clean_properties(object, input.get("properties"))
        .map_err(|m| WriteError(400, "VALIDATION_ERROR", m, Value::Null))?;
    if object == "contacts"
        && let Some(email) = props.get("email").and_then(Value::as_str)
        && let Some(existing) = contact_by_email(db, email, None)
    {
        return Err(conflict(&existing));
    }
    if object == "tickets" && !props.contains_key("hs_pipeline_stage") {
        return Err(WriteError(
            400,
            "VALIDATION_ERROR",
            "Property values were not valid: [{\"isValid\":false,\"message\":\"hs_pipeline_stage is required\",\"error\":\"REQUIRED_PROPERTY\",\"name\":\"hs_pipeline_stage\"}]".to_string(),
            Value::Null,
        ));
    }
    if object == "tasks" {
        check_task(&props)?;
    }
    // Ids are never issued twice (records loaded with `seed` keep theirs).
    let id = loop {
        let id = (db.next_id() + 100_000).to_string();
        if db.get(object, &id).is_none() {
            break id;
        }
    };
    let now = now_iso();
    if object == "tasks" {
        props.insert("hs_createdate".into(), Value::String(now.clone()));
    }
    props.insert("hs_object_id".into(), Value::String(id.clone()));
    props.insert("createdate".into(), Value::String(now.clone()));
    props.insert("lastmodifieddate".into(), Value::String(now.clone()));
    props.insert("hs_lastmodifieddate".into(), Value::String(now.clone()));
    let mut record = json!({"id": id, "properties": props, "createdAt": now, "updatedAt": now,
                            "archived": false});
    if let Some(a) = input.get("associations").filter(|a| !a.is_null()) {
        record["associations"] = a.clone();
    }
    db.insert(object, &id, record.clone());
    if object == "contacts" {
        let email = record["properties"]["email"].as_str().map(String::from);
        reindex_email(db, &id, None, email.as_deref());
    }
    Ok((id, record))
}

/// Loads one fixture record (see [`super::Emulator::seed`]): its numeric id and properties are
/// kept, bookkeeping properties filled in when absent, e-mails indexed (duplicates refused).
pub(super) fn seed(db: &mut Db, object: &str, input: &Value) -> Result<(), String> {
    let object = object_name(object).ok_or_else(|| format!("unknown object `{object}`"))?;
    let id = input.get("id").map(scalar_text).unwrap_or_default();
    if id.parse::<u64>().is_err() {
        return Err(format!("`id` must be a numeric string, found `{id}`"));
    }
    if db.get(object, &id).is_some() {
        return Err(format!("id {id} is already loaded"));
    }
    let mut props = clean_properties(object, input.get("properties"))?;
    if object == "contacts"
        && let Some(email) = props.get("email").and_then(Value::as_str)
        && let Some(existing) = contact_by_email(db, email, None)
    {
        return Err(format!("Contact already exists. Existing ID: {existing}"));
    }
    let created = props
        .get("createdate")
        .and_then(Value::as_str)
        .map_or_else(now_iso, String::from);
    for k in ["createdate", "lastmodifieddate", "hs_lastmodifieddate"] {
        props
            .entry(k)
            .or_insert_with(|| Value::String(created.clone()));
    }
    props.insert("hs_object_id".into(), Value::String(id.clone()));
    let updated = props
        .get("lastmodifieddate")
        .cloned()
        .unwrap_or_else(|| Value::String(created.clone()));
    let mut record = json!({"id": id, "properties": props, "createdAt": created,
                            "updatedAt": updated, "archived": false});
    if let Some(a) = input.get("associations").filter(|a| !a.is_null()) {
        record["associations"] = a.clone();
    }
    let email = record["properties"]["email"].as_str().map(String::from);
    db.insert(object, &id, record);
    if object == "contacts" {
        reindex_email(db, &id, None, email.as_deref());
    }
    Ok(())
}

/// Tasks need `hs_timestamp` (when the task is due) and HubSpot's enumeration values.
fn check_task(props: &Map<String, Value>) -> Result<(), WriteError> {
    let invalid = |name: &str, message: String| {
        WriteError(
            400,
            "VALIDATION_ERROR",
            format!(
                "Property values were not valid: {}",
                json!([{"isValid": false, "message": message, "error": "INVALID_OPTION", "name": name}])
            ),
            Value::Null,
        )
    };
    match props.get("hs_timestamp").and_then(Value::as_str) {
        Some(t) if super::util::to_millis(t).is_some() => {}
        Some(t) => {
            return Err(invalid(
                "hs_timestamp",
                format!("{t} is not a valid datetime"),
            ));
        }
        None => {
            return Err(invalid(
                "hs_timestamp",
                "hs_timestamp is required".to_string(),
            ));
        }
    }
    let enums: [(&str, &[&str]); 2] = [
        (
            "hs_task_status",
            &[
                "NOT_STARTED",
                "IN_PROGRESS",
                "WAITING",
                "COMPLETED",
                "DEFERRED",
            ],
        ),
        ("hs_task_priority", &["NONE", "LOW", "MEDIUM", "HIGH"]),
    ];
    for (name, allowed) in enums {
        if let Some(v) = props.get(name).and_then(Value::as_str)
            && !allowed.contains(&v)
        {
            return Err(invalid(
                name,
                format!(
                    "{v} was not one of the allowed options: {}",
                    allowed.join(", ")
                ),
            ));
        }
    }
    Ok(())
}

fn update_object(db: &mut Db, object: &str, id: &str, input: &Value) -> Result<Value, WriteError> {
    let props = clean_properties(object, input.get("properties"))
        .map_err(|m| WriteError(400, "VALIDATION_ERROR", m, Value::Null))?;
    if db.get(object, id).is_none() {
        return Err(WriteError(
            404,
            "OBJECT_NOT_FOUND",
            "Object not found.  objectId are usually numeric.".to_string(),
            json!({"id": [id]}),
        ));
    }
    if object == "contacts"
        && let Some(email) = props.get("email").and_then(Value::as_str)
        && let Some(existing) = contact_by_email(db, email, Some(id))
    {
        return Err(conflict(&existing));
    }
    let now = now_iso();
    let new_email = props.get("email").and_then(Value::as_str).map(String::from);
    let record = db
        .table(object)
        .get_mut(id)
        .ok_or_else(|| WriteError(404, "OBJECT_NOT_FOUND", "not found".into(), Value::Null))?;
    let old_email = record["properties"]["email"].as_str().map(String::from);
    if let Some(p) = record["properties"].as_object_mut() {
        p.extend(props);
        p.insert("lastmodifieddate".into(), Value::String(now.clone()));
        p.insert("hs_lastmodifieddate".into(), Value::String(now.clone()));
    }
    record["updatedAt"] = Value::String(now);
    let out = record.clone();
    if object == "contacts" && new_email.is_some() {
        reindex_email(db, id, old_email.as_deref(), new_email.as_deref());
    }
    Ok(out)
}

/// Finds an object by id, or by a unique property when `id_property` is given.
fn find_id(db: &Db, object: &str, id: &str, id_property: Option<&str>) -> Option<String> {
    match id_property {
        None | Some("hs_object_id") => db.get(object, id).map(|_| id.to_string()),
        Some("email") if object == "contacts" => contact_by_email(db, id, None),
        Some(prop) => db.tables.get(object).and_then(|t| {
            t.iter()
                .find(|(_, r)| {
                    r["properties"][prop]
                        .as_str()
                        .is_some_and(|v| v.eq_ignore_ascii_case(id.trim()))
                })
                .map(|(k, _)| k.clone())
        }),
    }
}

fn split_list(q: &HashMap<String, String>, key: &str) -> Vec<String> {
    q.get(key)
        .map(|s| {
            s.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(String::from)
                .collect()
        })
        .unwrap_or_default()
}

fn parse_body(shared: &Shared, body: &[u8]) -> Result<Value, Response> {
    parse_json(body).map_err(|e| bad_request(shared, &format!("Invalid input JSON: {e}")))
}

async fn create(
    State(shared): State<Arc<Shared>>,
    Path(object): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Err(r) = authorize(&shared, &headers) {
        return r;
    }
    let object = match resolve(&shared, &object) {
        Ok(o) => o,
        Err(r) => return r,
    };
    let input = match parse_body(&shared, &body) {
        Ok(v) => v,
        Err(r) => return r,
    };
    let result = insert_object(&mut shared.db(), object, &input);
    match result {
        Ok((_, record)) => json(201, render(&record, object, &[], true)),
        Err(WriteError(status, cat, msg, ctx)) => {
            error(&shared, status, cat, &msg, json!({"context": ctx}))
        }
    }
}

async fn read(
    State(shared): State<Arc<Shared>>,
    Path((object, id)): Path<(String, String)>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    if let Err(r) = authorize(&shared, &headers) {
        return r;
    }
    let object = match resolve(&shared, &object) {
        Ok(o) => o,
        Err(r) => return r,
    };
    let wanted = split_list(&q, "properties");
    let db = shared.db();
    let found = find_id(&db, object, &id, q.get("idProperty").map(String::as_str))
        .and_then(|k| db.get(object, &k).cloned());
    drop(db);
    match found {
        Some(r) => json(200, render(&r, object, &wanted, false)),
        None => not_found(&shared, &id),
    }
}

async fn update(
    State(shared): State<Arc<Shared>>,
    Path((object, id)): Path<(String, String)>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Err(r) = authorize(&shared, &headers) {
        return r;
    }
    let object = match resolve(&shared, &object) {
        Ok(o) => o,
        Err(r) => return r,
    };
    let input = match parse_body(&shared, &body) {
        Ok(v) => v,
        Err(r) => return r,
    };
    let mut db = shared.db();
    let Some(key) = find_id(&db, object, &id, q.get("idProperty").map(String::as_str)) else {
        drop(db);
        return not_found(&shared, &id);
    };
    let result = update_object(&mut db, object, &key, &input);
    drop(db);
    match result {
        Ok(record) => json(200, render(&record, object, &[], true)),
        Err(WriteError(status, cat, msg, ctx)) => {
            error(&shared, status, cat, &msg, json!({"context": ctx}))
        }
    }
}

async fn archive(
    State(shared): State<Arc<Shared>>,
    Path((object, id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    if let Err(r) = authorize(&shared, &headers) {
        return r;
    }
    let object = match resolve(&shared, &object) {
        Ok(o) => o,
        Err(r) => return r,
    };
    archive_object(&mut shared.db(), object, &id);
    empty(204)
}

async fn list(
    State(shared): State<Arc<Shared>>,
    Path(object): Path<String>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    if let Err(r) = authorize(&shared, &headers) {
        return r;
    }
    let object = match resolve(&shared, &object) {
        Ok(o) => o,
        Err(r) => return r,
    };
    let limit = match q.get("limit").map(|s| s.parse::<usize>()) {
        None => 10,
        Some(Ok(n)) if n >= 1 => n.min(100),
        Some(_) => return bad_request(&shared, "limit must be a positive integer"),
    };
    let after: u64 = match q.get("after").map(|s| s.parse::<u64>()) {
        None => 0,
        Some(Ok(n)) => n,
        Some(Err(_)) => return bad_request(&shared, "after must be a valid paging cursor"),
    };
    let wanted = split_list(&q, "properties");
    let db = shared.db();
    let mut page: Vec<(u64, Value)> = db
        .tables
        .get(object)
        .map(|t| {
            t.iter()
                .filter_map(|(id, r)| id.parse::<u64>().ok().map(|n| (n, r)))
                .filter(|(n, _)| *n >= after)
                .map(|(n, r)| (n, r.clone()))
                .collect()
        })
        .unwrap_or_default();
    drop(db);
    page.sort_by_key(|(n, _)| *n);
    let more = page.len() > limit;
    page.truncate(limit);
    let results: Vec<Value> = page
        .iter()
        .map(|(_, r)| render(r, object, &wanted, false))
        .collect();
    let mut body = json!({"results": results});
    if more && let Some((last, _)) = page.last() {
        let next = (last + 1).to_string();
        let link = format!(
            "{}/crm/v3/objects/{object}?limit={limit}&after={next}",
            shared.base_url
        );
        body["paging"] = json!({"next": {"after": next, "link": link}});
    }
    json(200, body)
}

// ---------------------------------------------------------------------------------------
// Search.

fn filter_matches(record: &Value, f: &Value) -> Result<bool, String> {
    let prop = f
        .get("propertyName")
        .and_then(Value::as_str)
        .ok_or("each filter needs a propertyName")?;
    let op = f
        .get("operator")
        .and_then(Value::as_str)
        .ok_or("each filter needs an operator")?;
    let actual = if prop == "hs_object_id" || prop == "id" {
        record["id"].as_str().map(String::from)
    } else {
        record["properties"][prop]
            .as_str()
            .filter(|s| !s.is_empty())
            .map(String::from)
    };
    let value = f.get("value").map(scalar_text);
    let need = |v: &Option<String>| v.clone().ok_or(format!("operator {op} needs a value"));
    let values = || -> Result<Vec<String>, String> {
        f.get("values")
            .and_then(Value::as_array)
            .map(|a| a.iter().map(scalar_text).collect())
            .ok_or(format!("operator {op} needs values"))
    };
    let cmp = |want: &str| actual.as_deref().map(|a| cmp_loose(a, want));
    Ok(match op {
        "EQ" => cmp(&need(&value)?) == Some(Ordering::Equal),
        "NEQ" => cmp(&need(&value)?) != Some(Ordering::Equal),
        "LT" => cmp(&need(&value)?) == Some(Ordering::Less),
        "LTE" => matches!(cmp(&need(&value)?), Some(Ordering::Less | Ordering::Equal)),
        "GT" => cmp(&need(&value)?) == Some(Ordering::Greater),
        "GTE" => matches!(
            cmp(&need(&value)?),
            Some(Ordering::Greater | Ordering::Equal)
        ),
        "BETWEEN" => {
            let low = need(&value)?;
            let high = f
                .get("highValue")
                .map(scalar_text)
                .ok_or("operator BETWEEN needs a highValue")?;
            matches!(cmp(&low), Some(Ordering::Greater | Ordering::Equal))
                && matches!(cmp(&high), Some(Ordering::Less | Ordering::Equal))
        }
        "IN" => {
            let vs = values()?;
            vs.iter().any(|v| cmp(v) == Some(Ordering::Equal))
        }
        "NOT_IN" => {
            let vs = values()?;
            !vs.iter().any(|v| cmp(v) == Some(Ordering::Equal))
        }
        "HAS_PROPERTY" => actual.is_some(),
        "NOT_HAS_PROPERTY" => actual.is_none(),
        "CONTAINS_TOKEN" | "NOT_CONTAINS_TOKEN" => {
            let want = need(&value)?.to_lowercase();
            let hit = actual.as_deref().is_some_and(|a| token_match(a, &want));
            (op == "CONTAINS_TOKEN") == hit
        }
        other => return Err(format!("Unknown operator: {other}")),
    })
}

/// HubSpot token match: the value (with `*` wildcards) matches a word of the text.
fn token_match(text: &str, want: &str) -> bool {
    let text = text.to_lowercase();
    let core = want.trim_matches('*');
    if want.starts_with('*') || want.ends_with('*') {
        return text.contains(core);
    }
    text == core
        || text
            .split(|c: char| !c.is_alphanumeric())
            .any(|w| w == core)
}

const QUERY_PROPERTIES: &[&str] = &[
    "email",
    "firstname",
    "lastname",
    "phone",
    "company",
    "name",
    "domain",
    "dealname",
    "subject",
    "content",
    "hs_task_subject",
];

async fn search(
    State(shared): State<Arc<Shared>>,
    Path(object): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Err(r) = authorize(&shared, &headers) {
        return r;
    }
    let object = match resolve(&shared, &object) {
        Ok(o) => o,
        Err(r) => return r,
    };
    let req = match parse_body(&shared, &body) {
        Ok(v) => v,
        Err(r) => return r,
    };
    let groups = req
        .get("filterGroups")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    if groups.len() > 5 {
        return bad_request(&shared, "Too many filter groups: at most 5 are allowed");
    }
    for g in &groups {
        let n = g
            .get("filters")
            .and_then(Value::as_array)
            .map_or(0, Vec::len);
        if n > 6 {
            return bad_request(
                &shared,
                "Too many filters in a group: at most 6 are allowed",
            );
        }
    }
    let limit = match req.get("limit") {
        None | Some(Value::Null) => 10,
        Some(v) => match v.as_u64() {
            Some(n) if (1..=SEARCH_LIMIT_MAX as u64).contains(&n) => n as usize,
            _ => {
                return bad_request(
                    &shared,
                    &format!("limit must be between 1 and {SEARCH_LIMIT_MAX}"),
                );
            }
        },
    };
    let after = match req.get("after") {
        None | Some(Value::Null) => 0,
        Some(v) if scalar_text(v).is_empty() => 0,
        Some(v) => match scalar_text(v).parse::<usize>() {
            Ok(n) => n,
            Err(_) => return bad_request(&shared, "after must be a numeric paging offset"),
        },
    };
    if after.saturating_add(limit) > SEARCH_RESULTS_MAX {
        return bad_request(
            &shared,
            "Search results are limited to 10000: paging beyond is not allowed",
        );
    }
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
    let query = req
        .get("query")
        .and_then(Value::as_str)
        .map(str::to_lowercase);

    let db = shared.db();
    let mut hits = Vec::new();
    for r in db.tables.get(object).into_iter().flat_map(|t| t.values()) {
        let mut ok = groups.is_empty();
        for g in &groups {
            let filters = g
                .get("filters")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            let mut all_match = true;
            for f in &filters {
                match filter_matches(r, f) {
                    Ok(true) => {}
                    Ok(false) => all_match = false,
                    Err(m) => {
                        drop(db);
                        return bad_request(&shared, &m);
                    }
                }
            }
            if all_match {
                ok = true;
                break;
            }
        }
        if let Some(q) = &query
            && !q.is_empty()
        {
            ok = ok
                && QUERY_PROPERTIES.iter().any(|p| {
                    r["properties"][*p]
                        .as_str()
                        .is_some_and(|v| v.to_lowercase().contains(q.as_str()))
                });
        }
        if ok {
            hits.push(r.clone());
        }
    }
    drop(db);
    sort_hits(&mut hits, req.get("sorts"));
    let total = hits.len();
    let results: Vec<Value> = hits
        .iter()
        .skip(after)
        .take(limit)
        .map(|r| render(r, object, &wanted, false))
        .collect();
    let mut body = json!({"total": total, "results": results});
    if after + limit < total.min(SEARCH_RESULTS_MAX) {
        body["paging"] = json!({"next": {"after": (after + limit).to_string()}});
    }
    json(200, body)
}

fn sort_hits(hits: &mut [Value], sorts: Option<&Value>) {
    let first = sorts.and_then(Value::as_array).and_then(|a| a.first());
    let (prop, desc) = match first {
        Some(Value::String(s)) => match s.strip_prefix('-') {
            Some(p) => (p.to_string(), true),
            None => (s.clone(), false),
        },
        Some(Value::Object(o)) => (
            o.get("propertyName")
                .and_then(Value::as_str)
                .unwrap_or("hs_object_id")
                .to_string(),
            o.get("direction").and_then(Value::as_str) == Some("DESCENDING"),
        ),
        _ => ("hs_object_id".to_string(), false),
    };
    hits.sort_by(|a, b| {
        let x = scalar_text(&a["properties"][&prop]);
        let y = scalar_text(&b["properties"][&prop]);
        let o = cmp_loose(&x, &y);
        if desc { o.reverse() } else { o }
    });
}

// ---------------------------------------------------------------------------------------
// Batch.

fn batch_error(shared: &Shared, input: &Value, e: WriteError) -> Value {
    let WriteError(_, category, message, ctx) = e;
    let mut context = match ctx {
        Value::Object(m) => m,
        _ => Map::new(),
    };
    if let Some(t) = input.get("objectWriteTraceId").and_then(Value::as_str) {
        context.insert("objectWriteTraceId".into(), json!([t]));
    }
    json!({"status": "error", "category": category, "message": message,
           "context": context, "errors": [], "links": {}, "id": shared.uuid()})
}

fn with_trace(mut rendered: Value, input: &Value) -> Value {
    if let Some(t) = input.get("objectWriteTraceId") {
        rendered["objectWriteTraceId"] = t.clone();
    }
    rendered
}

async fn batch(
    State(shared): State<Arc<Shared>>,
    Path((object, action)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Err(r) = authorize(&shared, &headers) {
        return r;
    }
    let object = match resolve(&shared, &object) {
        Ok(o) => o,
        Err(r) => return r,
    };
    let req = match parse_body(&shared, &body) {
        Ok(v) => v,
        Err(r) => return r,
    };
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
                            WriteError(
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
                    None => errors.push(batch_error(
                        &shared,
                        input,
                        WriteError(
                            404,
                            "OBJECT_NOT_FOUND",
                            "Could not get some objects, they may be deleted or not exist.".into(),
                            json!({"ids": [id]}),
                        ),
                    )),
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

// ---------------------------------------------------------------------------------------
// OAuth.

async fn token(State(shared): State<Arc<Shared>>, body: Bytes) -> Response {
    let form: HashMap<String, String> = serde_urlencoded::from_bytes(&body).unwrap_or_default();
    let fail = |status: &str, message: &str| {
        json(
            400,
            json!({"status": status, "message": message, "correlationId": shared.uuid()}),
        )
    };
    let field = |k: &str| form.get(k).map(String::as_str).unwrap_or_default();
    if field("grant_type") != "refresh_token" {
        return fail(
            "BAD_GRANT_TYPE",
            "grant_type must be refresh_token for this sandbox",
        );
    }
    if field("client_id") != shared.cred("client_id") {
        return fail("BAD_CLIENT_ID", "missing or unknown client_id");
    }
    if field("client_secret") != shared.cred("client_secret") {
        return fail("BAD_CLIENT_SECRET", "missing or invalid client_secret");
    }
    let refresh = field("refresh_token");
    let mut db = shared.db();
    if refresh != shared.cred("refresh_token") && !db.refresh_tokens.contains(refresh) {
        drop(db);
        return fail("BAD_REFRESH_TOKEN", "missing or unknown refresh token");
    }
    let access = format!("sandbox-hubspot-oauth-{}", db.token(shared.seed));
    db.issued_tokens.insert(access.clone());
    drop(db);
    json(
        200,
        json!({"token_type": "bearer", "refresh_token": refresh, "access_token": access,
               "expires_in": 1800}),
    )
}
