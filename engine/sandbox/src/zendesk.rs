//! Zendesk Support emulator: tickets and users (create, read, update, delete, cursor and
//! offset paging), `users/search?query=email:…`, `users/create_or_update`, async
//! `create_many` with job statuses, Basic `email/token:api_token` auth, and the per-minute
//! limit with `X-Rate-Limit` headers and 429 + `Retry-After`.

use super::Credentials;
use super::ratelimit::Decision;
use super::state::{Db, Shared};
use super::util::{
    basic, bearer, empty, json, looks_like_email, parse_json, scalar_text, set_header,
};
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::Response;
use axum::routing::{get, post};
use base64::Engine as _;
use serde_json::{Map, Value, json};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

/// Enterprise plan: 700 requests per minute.
pub(super) const DEFAULT_LIMIT: (u32, Duration) = (700, Duration::from_secs(60));
const BULK_MAX: usize = 100;

pub(super) fn credentials(_base_url: &str) -> Credentials {
    Credentials::from_pairs(&[
        ("email", "agent@switchyard.sandbox"),
        ("api_token", "sandboxZendeskApiToken0000000000000000001"),
        ("oauth_access_token", "sandbox-zendesk-oauth-token"),
    ])
}

pub(super) fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/api/v2/{collection}", get(list).post(create))
        .route("/api/v2/tickets/create_many", post(create_many_tickets))
        .route(
            "/api/v2/tickets/create_many.json",
            post(create_many_tickets),
        )
        .route("/api/v2/users/create_many", post(create_many_users))
        .route("/api/v2/users/create_many.json", post(create_many_users))
        .route("/api/v2/users/create_or_update", post(create_or_update))
        .route(
            "/api/v2/users/create_or_update.json",
            post(create_or_update),
        )
        .route(
            "/api/v2/users/create_or_update_many",
            post(create_or_update_many),
        )
        .route(
            "/api/v2/users/create_or_update_many.json",
            post(create_or_update_many),
        )
        .route("/api/v2/users/me", get(me))
        .route("/api/v2/users/me.json", get(me))
        .route("/api/v2/search", get(search))
        .route("/api/v2/search.json", get(search))
        .route("/api/v2/users/search", get(search_users))
        .route("/api/v2/users/search.json", get(search_users))
        .route("/api/v2/job_statuses/{id}", get(job_status))
        .route(
            "/api/v2/{collection}/{id}",
            get(read).put(update).delete(remove),
        )
        .fallback(not_found_route)
        .with_state(shared)
}

pub(super) fn server_error(_shared: &Shared, status: u16) -> Response {
    json(
        status,
        json!({"error": if status == 503 { "ServiceUnavailable" } else { "InternalError" },
               "description": "Something went wrong, please try again"}),
    )
}

pub(super) fn throttled(_shared: &Shared, d: &Decision) -> Response {
    let mut r = json(
        429,
        json!({"error": "APIRateLimitExceeded",
               "description": format!("Number of allowed API requests per minute exceeded ({})", d.max)}),
    );
    set_header(
        r.headers_mut(),
        "retry-after",
        &d.retry_after.as_secs().max(1).to_string(),
    );
    r
}

pub(super) fn limit_headers(d: &Decision, h: &mut HeaderMap) {
    set_header(h, "x-rate-limit", &d.max.to_string());
    set_header(h, "x-rate-limit-remaining", &d.remaining.to_string());
    set_header(h, "ratelimit-limit", &d.max.to_string());
    set_header(h, "ratelimit-remaining", &d.remaining.to_string());
    set_header(
        h,
        "ratelimit-reset",
        &d.retry_after.as_secs().max(1).to_string(),
    );
}

// ---------------------------------------------------------------------------------------
// Errors and auth.

fn record_not_found() -> Response {
    json(
        404,
        json!({"error": "RecordNotFound", "description": "Not found"}),
    )
}

async fn not_found_route() -> Response {
    json(
        404,
        json!({"error": "InvalidEndpoint", "description": "Not found"}),
    )
}

fn invalid(details: Value) -> Response {
    json(
        422,
        json!({"error": "RecordInvalid", "description": "Record validation errors",
               "details": details}),
    )
}

fn detail(field: &str, error: &str, description: String) -> Value {
    json!({field: [{"description": description, "error": error}]})
}

fn authorize(shared: &Shared, headers: &HeaderMap) -> Result<(), Response> {
    let ok = match basic(headers) {
        Some((user, pass)) => {
            user == format!("{}/token", shared.cred("email")) && pass == shared.cred("api_token")
        }
        None => bearer(headers) == Some(shared.cred("oauth_access_token")),
    };
    if ok {
        Ok(())
    } else {
        Err(json(401, json!({"error": "Couldn't authenticate you"})))
    }
}

fn strip_json(s: &str) -> &str {
    s.strip_suffix(".json").unwrap_or(s)
}

#[derive(Clone, Copy, PartialEq)]
enum Coll {
    Tickets,
    Users,
}

impl Coll {
    fn from_path(s: &str) -> Option<Coll> {
        match strip_json(s) {
            "tickets" => Some(Coll::Tickets),
            "users" => Some(Coll::Users),
            _ => None,
        }
    }
    fn table(self) -> &'static str {
        match self {
            Coll::Tickets => "tickets",
            Coll::Users => "users",
        }
    }
    fn singular(self) -> &'static str {
        match self {
            Coll::Tickets => "ticket",
            Coll::Users => "user",
        }
    }
}

fn now() -> String {
    chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

fn body_object(body: &[u8]) -> Result<Map<String, Value>, Response> {
    match parse_json(body) {
        Ok(Value::Object(m)) => Ok(m),
        _ => Err(json(
            400,
            json!({"error": "InvalidJSON", "description": "The request body is not valid JSON"}),
        )),
    }
}

// ---------------------------------------------------------------------------------------
// Users.

const USER_FIELDS: &[&str] = &[
    "name",
    "email",
    "role",
    "phone",
    "external_id",
    "organization_id",
    "user_fields",
    "tags",
    "time_zone",
    "locale",
    "details",
    "notes",
    "verified",
    "alias",
    "signature",
    "custom_role_id",
];

fn user_by(db: &Db, field: &str, value: &str) -> Option<String> {
    db.tables.get("users").and_then(|t| {
        t.iter()
            .find(|(_, u)| {
                u[field]
                    .as_str()
                    .is_some_and(|v| v.eq_ignore_ascii_case(value.trim()))
            })
            .map(|(k, _)| k.clone())
    })
}

fn apply_user(
    db: &Db,
    rec: &mut Map<String, Value>,
    input: &Map<String, Value>,
    self_id: Option<&str>,
) -> Result<(), Value> {
    for (k, v) in input {
        if !USER_FIELDS.contains(&k.as_str()) {
            continue; // Zendesk ignores unknown user attributes.
        }
        match k.as_str() {
            "email" if !v.is_null() => {
                let e = scalar_text(v);
                if !looks_like_email(&e) {
                    return Err(detail(
                        "email",
                        "InvalidFormat",
                        format!("Email: {e} is not properly formatted"),
                    ));
                }
                if let Some(other) = user_by(db, "email", &e)
                    && Some(other.as_str()) != self_id
                {
                    return Err(detail(
                        "email",
                        "DuplicateValue",
                        format!("Email: {e} is already being used by another user"),
                    ));
                }
                rec.insert(k.clone(), json!(e.to_lowercase()));
            }
            "role" => match v.as_str() {
                Some("end-user" | "agent" | "admin") => {
                    rec.insert(k.clone(), v.clone());
                }
                _ => return Err(detail("role", "InvalidValue", "Role: is invalid".into())),
            },
            "user_fields" => {
                let mut merged = rec
                    .get("user_fields")
                    .and_then(Value::as_object)
                    .cloned()
                    .unwrap_or_default();
                if let Value::Object(m) = v {
                    merged.extend(m.clone());
                }
                rec.insert(k.clone(), Value::Object(merged));
            }
            _ => {
                rec.insert(k.clone(), v.clone());
            }
        }
    }
    Ok(())
}

fn new_user(shared: &Shared, db: &mut Db, input: &Map<String, Value>) -> Result<Value, Value> {
    if input
        .get("name")
        .and_then(Value::as_str)
        .is_none_or(|s| s.trim().is_empty())
    {
        return Err(detail(
            "name",
            "BlankValue",
            "Name: is too short (minimum is 1 character)".into(),
        ));
    }
    let mut rec = Map::new();
    apply_user(db, &mut rec, input, None)?;
    let id = db.next_id() + 360_000_000_000;
    let t = now();
    rec.insert("id".into(), json!(id));
    rec.insert(
        "url".into(),
        json!(format!("{}/api/v2/users/{id}.json", shared.base_url)),
    );
    rec.entry("email").or_insert(Value::Null);
    rec.entry("role").or_insert(json!("end-user"));
    rec.entry("phone").or_insert(Value::Null);
    rec.entry("external_id").or_insert(Value::Null);
    rec.entry("organization_id").or_insert(Value::Null);
    rec.entry("user_fields").or_insert(json!({}));
    rec.entry("tags").or_insert(json!([]));
    rec.insert("active".into(), json!(true));
    rec.insert("verified".into(), json!(false));
    rec.insert("created_at".into(), json!(t));
    rec.insert("updated_at".into(), json!(t));
    let v = Value::Object(rec);
    db.insert("users", &id.to_string(), v.clone());
    Ok(v)
}

/// Creates, or updates the user with the same email or external_id: (user, created?).
fn upsert_user(
    shared: &Shared,
    db: &mut Db,
    input: &Map<String, Value>,
) -> Result<(Value, bool), Value> {
    let existing = input
        .get("email")
        .and_then(Value::as_str)
        .and_then(|e| user_by(db, "email", e))
        .or_else(|| {
            input
                .get("external_id")
                .map(scalar_text)
                .filter(|x| !x.is_empty())
                .and_then(|x| user_by(db, "external_id", &x))
        });
    match existing {
        Some(id) => {
            let Some(Value::Object(mut rec)) = db.get("users", &id).cloned() else {
                return Err(detail("id", "NotFound", "User not found".into()));
            };
            apply_user(db, &mut rec, input, Some(&id))?;
            rec.insert("updated_at".into(), json!(now()));
            let v = Value::Object(rec);
            db.table("users").insert(id, v.clone());
            Ok((v, false))
        }
        None => new_user(shared, db, input).map(|v| (v, true)),
    }
}

// ---------------------------------------------------------------------------------------
// Tickets.

fn check_enum(field: &str, v: &Value, allowed: &[&str]) -> Result<(), Value> {
    match v {
        Value::Null => Ok(()),
        Value::String(s) if allowed.contains(&s.as_str()) => Ok(()),
        _ => {
            let name = format!("{}{}", field[..1].to_uppercase(), &field[1..]);
            Err(detail(field, "InvalidValue", format!("{name}: is invalid")))
        }
    }
}

fn apply_ticket(
    shared: &Shared,
    db: &mut Db,
    rec: &mut Map<String, Value>,
    input: &Map<String, Value>,
) -> Result<(), Value> {
    for (k, v) in input {
        match k.as_str() {
            "priority" => check_enum(k, v, &["urgent", "high", "normal", "low"])?,
            "status" => check_enum(
                k,
                v,
                &["new", "open", "pending", "hold", "solved", "closed"],
            )?,
            "type" => check_enum(k, v, &["problem", "incident", "question", "task"])?,
            "comment" => {
                let body = v
                    .get("body")
                    .or_else(|| v.get("html_body"))
                    .map(scalar_text)
                    .unwrap_or_default();
                if !rec.contains_key("description") {
                    rec.insert("description".into(), json!(body));
                }
                continue;
            }
            "requester" => {
                let Some(r) = v.as_object() else {
                    return Err(detail(
                        "requester",
                        "InvalidValue",
                        "Requester: is invalid".into(),
                    ));
                };
                let (user, _) = upsert_user(shared, db, r)?;
                rec.insert("requester_id".into(), user["id"].clone());
                continue;
            }
            "requester_id" | "assignee_id" | "submitter_id" => {
                let id = scalar_text(v);
                if !v.is_null() && db.get("users", &id).is_none() {
                    let name = k.trim_end_matches("_id");
                    return Err(detail(
                        name,
                        "InvalidValue",
                        format!("{}: is invalid", name),
                    ));
                }
            }
            "custom_fields" if !v.is_array() => {
                return Err(detail(
                    "custom_fields",
                    "InvalidValue",
                    "Custom fields: must be an array of {id, value}".into(),
                ));
            }
            _ => {}
        }
        rec.insert(k.clone(), v.clone());
    }
    Ok(())
}

fn new_ticket(shared: &Shared, db: &mut Db, input: &Map<String, Value>) -> Result<Value, Value> {
    let has_comment = input
        .get("comment")
        .and_then(|c| c.get("body").or_else(|| c.get("html_body")))
        .is_some_and(|b| !scalar_text(b).trim().is_empty())
        || input
            .get("description")
            .is_some_and(|d| !scalar_text(d).trim().is_empty());
    if !has_comment {
        return Err(detail(
            "description",
            "BlankValue",
            "Description: cannot be blank".into(),
        ));
    }
    let mut rec = Map::new();
    apply_ticket(shared, db, &mut rec, input)?;
    if !rec.contains_key("requester_id") {
        // The authenticated agent is the requester when none is given.
        let agent = agent(shared, db)?;
        rec.insert("requester_id".into(), agent["id"].clone());
    }
    let id = db.next_id();
    let t = now();
    let status = if rec.get("assignee_id").is_some_and(|a| !a.is_null()) {
        "open"
    } else {
        "new"
    };
    rec.insert("id".into(), json!(id));
    rec.insert(
        "url".into(),
        json!(format!("{}/api/v2/tickets/{id}.json", shared.base_url)),
    );
    rec.entry("status").or_insert(json!(status));
    rec.entry("subject").or_insert(Value::Null);
    rec.insert("raw_subject".into(), rec["subject"].clone());
    rec.entry("priority").or_insert(Value::Null);
    rec.entry("type").or_insert(Value::Null);
    rec.entry("external_id").or_insert(Value::Null);
    rec.entry("assignee_id").or_insert(Value::Null);
    rec.entry("group_id").or_insert(Value::Null);
    rec.entry("organization_id").or_insert(Value::Null);
    rec.entry("tags").or_insert(json!([]));
    rec.entry("custom_fields").or_insert(json!([]));
    rec.insert("submitter_id".into(), rec["requester_id"].clone());
    rec.insert(
        "via".into(),
        json!({"channel": "api", "source": {"from": {}, "to": {}, "rel": null}}),
    );
    rec.insert("created_at".into(), json!(t));
    rec.insert("updated_at".into(), json!(t));
    let v = Value::Object(rec);
    db.insert("tickets", &id.to_string(), v.clone());
    Ok(v)
}

/// The authenticated agent's user record, created on first use.
fn agent(shared: &Shared, db: &mut Db) -> Result<Value, Value> {
    if let Some(id) = user_by(db, "email", shared.cred("email"))
        && let Some(u) = db.get("users", &id)
    {
        return Ok(u.clone());
    }
    let mut a = Map::new();
    a.insert("name".into(), json!("Sandbox Agent"));
    a.insert("email".into(), json!(shared.cred("email")));
    a.insert("role".into(), json!("admin"));
    new_user(shared, db, &a)
}

fn audit(shared: &Shared, db: &mut Db, ticket: &Value) -> Value {
    json!({"id": db.next_id(), "ticket_id": ticket["id"], "created_at": now(),
           "author_id": ticket["submitter_id"], "events": [], "metadata": {},
           "via": {"channel": "api"}, "request_id": shared.uuid()})
}

// ---------------------------------------------------------------------------------------
// Handlers.

async fn create(
    State(shared): State<Arc<Shared>>,
    Path(collection): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Err(r) = authorize(&shared, &headers) {
        return r;
    }
    let Some(coll) = Coll::from_path(&collection) else {
        return not_found_route().await;
    };
    let input = match body_object(&body) {
        Ok(m) => m,
        Err(r) => return r,
    };
    let Some(Value::Object(inner)) = input.get(coll.singular()) else {
        return json(
            400,
            json!({"error": "InvalidJSON", "description": format!("The request body must contain a `{}` object", coll.singular())}),
        );
    };
    let mut db = shared.db();
    match coll {
        Coll::Tickets => match new_ticket(&shared, &mut db, inner) {
            Ok(t) => {
                let a = audit(&shared, &mut db, &t);
                json(201, json!({"ticket": t, "audit": a}))
            }
            Err(d) => invalid(d),
        },
        Coll::Users => match new_user(&shared, &mut db, inner) {
            Ok(u) => json(201, json!({"user": u})),
            Err(d) => invalid(d),
        },
    }
}

async fn read(
    State(shared): State<Arc<Shared>>,
    Path((collection, id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    if let Err(r) = authorize(&shared, &headers) {
        return r;
    }
    let Some(coll) = Coll::from_path(&collection) else {
        return not_found_route().await;
    };
    let rec = shared.db().get(coll.table(), strip_json(&id)).cloned();
    match rec {
        Some(r) => json(200, json!({coll.singular(): r})),
        None => record_not_found(),
    }
}

async fn update(
    State(shared): State<Arc<Shared>>,
    Path((collection, id)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Err(r) = authorize(&shared, &headers) {
        return r;
    }
    let Some(coll) = Coll::from_path(&collection) else {
        return not_found_route().await;
    };
    let id = strip_json(&id).to_string();
    let input = match body_object(&body) {
        Ok(m) => m,
        Err(r) => return r,
    };
    let inner = input
        .get(coll.singular())
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    let mut db = shared.db();
    let Some(Value::Object(mut rec)) = db.get(coll.table(), &id).cloned() else {
        drop(db);
        return record_not_found();
    };
    let result = match coll {
        Coll::Tickets => apply_ticket(&shared, &mut db, &mut rec, &inner),
        Coll::Users => apply_user(&db, &mut rec, &inner, Some(&id)),
    };
    if let Err(d) = result {
        drop(db);
        return invalid(d);
    }
    rec.insert("updated_at".into(), json!(now()));
    let v = Value::Object(rec);
    db.table(coll.table()).insert(id, v.clone());
    match coll {
        Coll::Tickets => {
            let a = audit(&shared, &mut db, &v);
            json(200, json!({"ticket": v, "audit": a}))
        }
        Coll::Users => json(200, json!({"user": v})),
    }
}

async fn remove(
    State(shared): State<Arc<Shared>>,
    Path((collection, id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    if let Err(r) = authorize(&shared, &headers) {
        return r;
    }
    let Some(coll) = Coll::from_path(&collection) else {
        return not_found_route().await;
    };
    let removed = shared
        .db()
        .table(coll.table())
        .shift_remove(strip_json(&id));
    match (coll, removed) {
        (_, None) => record_not_found(),
        (Coll::Tickets, Some(_)) => empty(204),
        (Coll::Users, Some(mut u)) => {
            u["active"] = json!(false);
            json(200, json!({"user": u}))
        }
    }
}

fn encode_cursor(n: usize) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("zd:{n}"))
}

fn decode_cursor(c: &str) -> Option<usize> {
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(c.trim_end_matches('='))
        .ok()?;
    String::from_utf8(raw)
        .ok()?
        .strip_prefix("zd:")?
        .parse()
        .ok()
}

/// Cursor mode when `page[size]` is given, else offset mode (`page`, `per_page`).
fn paged(
    shared: &Shared,
    path: &str,
    key: &str,
    q: &HashMap<String, String>,
    all: Vec<Value>,
) -> Response {
    let bad = |m: &str| {
        json(
            400,
            json!({"error": "InvalidPaginationParameter", "description": m}),
        )
    };
    if let Some(size) = q.get("page[size]") {
        let Ok(size) = size.parse::<usize>() else {
            return bad("page[size] must be an integer");
        };
        if !(1..=100).contains(&size) {
            return bad("page[size] must be between 1 and 100");
        }
        let start = match q.get("page[after]") {
            None => 0,
            Some(c) => match decode_cursor(c) {
                Some(n) => n,
                None => return bad("page[after] is not a valid cursor"),
            },
        };
        let end = start.saturating_add(size).min(all.len());
        let data: Vec<Value> = all.get(start..end).unwrap_or_default().to_vec();
        let has_more = end < all.len();
        let after = (!data.is_empty()).then(|| encode_cursor(end));
        let before = (!data.is_empty()).then(|| encode_cursor(start));
        let link = |k: &str, c: &Option<String>| match c {
            Some(c) => json!(format!(
                "{}{path}.json?page%5Bsize%5D={size}&page%5B{k}%5D={c}",
                shared.base_url
            )),
            None => Value::Null,
        };
        let next = if has_more {
            link("after", &after)
        } else {
            Value::Null
        };
        let prev = if start > 0 {
            link("before", &before)
        } else {
            Value::Null
        };
        return json(
            200,
            json!({key: data, "meta": {"has_more": has_more, "after_cursor": after, "before_cursor": before},
                   "links": {"next": next, "prev": prev}}),
        );
    }
    let page = q
        .get("page")
        .and_then(|p| p.parse::<usize>().ok())
        .unwrap_or(1)
        .max(1);
    let per = q
        .get("per_page")
        .and_then(|p| p.parse::<usize>().ok())
        .unwrap_or(100)
        .clamp(1, 100);
    if page.saturating_mul(per) > 10_000 + per {
        return bad(
            "Offset pagination is limited to the first 10,000 records; use cursor pagination",
        );
    }
    let start = (page - 1).saturating_mul(per);
    let end = start.saturating_add(per).min(all.len());
    let data: Vec<Value> = all.get(start..end).unwrap_or_default().to_vec();
    let url = |p: usize| {
        json!(format!(
            "{}{path}.json?page={p}&per_page={per}",
            shared.base_url
        ))
    };
    json(
        200,
        json!({key: data, "next_page": if end < all.len() { url(page + 1) } else { Value::Null },
               "previous_page": if page > 1 { url(page - 1) } else { Value::Null },
               "count": all.len()}),
    )
}

async fn list(
    State(shared): State<Arc<Shared>>,
    Path(collection): Path<String>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    if let Err(r) = authorize(&shared, &headers) {
        return r;
    }
    let Some(coll) = Coll::from_path(&collection) else {
        return not_found_route().await;
    };
    let all: Vec<Value> = shared
        .db()
        .tables
        .get(coll.table())
        .map(|t| t.values().cloned().collect())
        .unwrap_or_default();
    paged(
        &shared,
        &format!("/api/v2/{}", coll.table()),
        coll.table(),
        &q,
        all,
    )
}

async fn me(State(shared): State<Arc<Shared>>, headers: HeaderMap) -> Response {
    if let Err(r) = authorize(&shared, &headers) {
        return r;
    }
    let user = agent(&shared, &mut shared.db());
    match user {
        Ok(u) => json(200, json!({"user": u})),
        Err(d) => invalid(d),
    }
}

/// One term of the Search API query language: `type:ticket`, `status:open`,
/// `external_id:"x"`, `requester:a@b.co`, `updated>2026-01-01T00:00:00Z`, `tags:vip`, or
/// free text.
fn term_matches(db: &Db, rec: &Value, kind: &str, term: &str) -> bool {
    let Some(i) = term.find([':', '>', '<']) else {
        let t = term.trim_matches('"').to_lowercase();
        let fields: &[&str] = if kind == "ticket" {
            &["subject", "description"]
        } else {
            &["name", "email", "phone", "external_id"]
        };
        return fields
            .iter()
            .any(|f| scalar_text(&rec[*f]).to_lowercase().contains(&t));
    };
    let (field, rest) = term.split_at(i);
    let (op, value) = rest.split_at(1);
    let value = value.trim_matches('"');
    let field = match field {
        "updated" => "updated_at",
        "created" => "created_at",
        "ticket_type" => "type",
        other => other,
    };
    if field == "requester" && kind == "ticket" {
        let email = db
            .get("users", &scalar_text(&rec["requester_id"]))
            .map(|u| scalar_text(&u["email"]))
            .unwrap_or_default();
        return email.eq_ignore_ascii_case(value) || scalar_text(&rec["requester_id"]) == value;
    }
    if field == "tags" {
        return rec["tags"]
            .as_array()
            .is_some_and(|a| a.iter().any(|t| t.as_str() == Some(value)));
    }
    let actual = scalar_text(&rec[field]);
    if actual.is_empty() {
        return false;
    }
    let ord = super::util::cmp_loose(&actual, value);
    match op {
        ":" => ord == std::cmp::Ordering::Equal,
        ">" => ord == std::cmp::Ordering::Greater,
        _ => ord == std::cmp::Ordering::Less,
    }
}

/// Splits a search query on spaces outside double quotes.
fn split_terms(query: &str) -> Vec<String> {
    let mut terms = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    for c in query.chars() {
        match c {
            '"' => {
                quoted = !quoted;
                cur.push(c);
            }
            ' ' if !quoted => {
                if !cur.is_empty() {
                    terms.push(std::mem::take(&mut cur));
                }
            }
            _ => cur.push(c),
        }
    }
    if !cur.is_empty() {
        terms.push(cur);
    }
    terms
}

async fn search(
    State(shared): State<Arc<Shared>>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    if let Err(r) = authorize(&shared, &headers) {
        return r;
    }
    let query = q.get("query").cloned().unwrap_or_default();
    let terms = split_terms(&query);
    let kind = terms
        .iter()
        .find_map(|t| t.strip_prefix("type:"))
        .map(String::from);
    let terms: Vec<&String> = terms.iter().filter(|t| !t.starts_with("type:")).collect();
    let db = shared.db();
    let mut hits = Vec::new();
    for (table, k) in [("tickets", "ticket"), ("users", "user")] {
        if kind.as_deref().is_some_and(|want| want != k) {
            continue;
        }
        for rec in db.tables.get(table).into_iter().flat_map(|t| t.values()) {
            if terms.iter().all(|t| term_matches(&db, rec, k, t)) {
                let mut r = rec.clone();
                r["result_type"] = json!(k);
                hits.push(r);
            }
        }
    }
    drop(db);
    if let Some(key) = q.get("sort_by") {
        let desc = q.get("sort_order").is_none_or(|o| o != "asc");
        hits.sort_by(|a, b| {
            let o = super::util::cmp_loose(&scalar_text(&a[key]), &scalar_text(&b[key]));
            if desc { o.reverse() } else { o }
        });
    }
    let per = q
        .get("per_page")
        .and_then(|p| p.parse::<usize>().ok())
        .unwrap_or(100)
        .clamp(1, 100);
    let page = q
        .get("page")
        .and_then(|p| p.parse::<usize>().ok())
        .unwrap_or(1)
        .max(1);
    if page.saturating_mul(per) > 1000 {
        return json(
            422,
            json!({"error": "invalid", "description": "Requested response size was greater than Search Response Limits"}),
        );
    }
    let start = (page - 1).saturating_mul(per);
    let end = start.saturating_add(per).min(hits.len());
    let data: Vec<Value> = hits.get(start..end).unwrap_or_default().to_vec();
    let enc = |s: &str| -> String { url::form_urlencoded::byte_serialize(s.as_bytes()).collect() };
    let mut extra = String::new();
    for k in ["sort_by", "sort_order"] {
        if let Some(v) = q.get(k) {
            extra.push_str(&format!("&{k}={}", enc(v)));
        }
    }
    let link = |p: usize| {
        json!(format!(
            "{}/api/v2/search.json?page={p}&per_page={per}&query={}{extra}",
            shared.base_url,
            enc(&query)
        ))
    };
    let more = end < hits.len() && page.saturating_add(1).saturating_mul(per) <= 1000;
    json(
        200,
        json!({"results": data, "facets": null,
               "next_page": if more { link(page + 1) } else { Value::Null },
               "previous_page": if page > 1 { link(page - 1) } else { Value::Null },
               "count": hits.len()}),
    )
}

async fn search_users(
    State(shared): State<Arc<Shared>>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    if let Err(r) = authorize(&shared, &headers) {
        return r;
    }
    let query = q.get("query").cloned().unwrap_or_default();
    let external = q.get("external_id").cloned();
    if query.is_empty() && external.is_none() {
        return json(
            400,
            json!({"error": "InvalidParameter", "description": "query or external_id is required"}),
        );
    }
    let users: Vec<Value> = shared
        .db()
        .tables
        .get("users")
        .map(|t| t.values().cloned().collect())
        .unwrap_or_default();
    let hits: Vec<Value> = users
        .into_iter()
        .filter(|u| {
            if let Some(x) = &external {
                return scalar_text(&u["external_id"]) == *x;
            }
            let (field, value) = match query.split_once(':') {
                Some((f, v)) => (Some(f.trim()), v.trim()),
                None => (None, query.trim()),
            };
            let value = value.trim_matches('"').to_lowercase();
            let text = |f: &str| scalar_text(&u[f]).to_lowercase();
            match field {
                Some("email") => text("email") == value,
                Some("name") => text("name").contains(&value),
                Some("external_id") => text("external_id") == value,
                Some("phone") => text("phone") == value,
                Some("role") => text("role") == value,
                Some(_) => false,
                None => ["email", "name", "phone", "external_id"]
                    .iter()
                    .any(|f| text(f).contains(&value)),
            }
        })
        .collect();
    paged(&shared, "/api/v2/users/search", "users", &q, hits)
}

async fn create_or_update(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Err(r) = authorize(&shared, &headers) {
        return r;
    }
    let input = match body_object(&body) {
        Ok(m) => m,
        Err(r) => return r,
    };
    let inner = input
        .get("user")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    let result = upsert_user(&shared, &mut shared.db(), &inner);
    match result {
        Ok((u, created)) => json(if created { 201 } else { 200 }, json!({"user": u})),
        Err(d) => invalid(d),
    }
}

/// Runs a bulk job at once and records its job status (reported `queued` in the answer,
/// `completed` when polled).
fn bulk(
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

fn job_error(i: usize, d: &Value) -> Value {
    json!({"index": i, "error": "RecordInvalid", "details": d})
}

async fn create_many_tickets(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Err(r) = authorize(&shared, &headers) {
        return r;
    }
    bulk(&shared, &body, "tickets", |s, db, i, t| {
        match new_ticket(s, db, t) {
            Ok(t) => json!({"index": i, "id": t["id"]}),
            Err(d) => job_error(i, &d),
        }
    })
}

async fn create_many_users(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Err(r) = authorize(&shared, &headers) {
        return r;
    }
    bulk(&shared, &body, "users", |s, db, i, u| {
        match new_user(s, db, u) {
            Ok(u) => json!({"index": i, "id": u["id"], "email": u["email"], "status": "Created"}),
            Err(d) => job_error(i, &d),
        }
    })
}

async fn create_or_update_many(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Err(r) = authorize(&shared, &headers) {
        return r;
    }
    bulk(&shared, &body, "users", |s, db, i, u| {
        match upsert_user(s, db, u) {
            Ok((u, created)) => json!({"index": i, "id": u["id"], "email": u["email"],
                                   "status": if created { "Created" } else { "Updated" }}),
            Err(d) => job_error(i, &d),
        }
    })
}

async fn job_status(
    State(shared): State<Arc<Shared>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    if let Err(r) = authorize(&shared, &headers) {
        return r;
    }
    let job = shared.db().jobs.get(strip_json(&id)).cloned();
    match job {
        Some(j) => json(200, json!({"job_status": j})),
        None => record_not_found(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip() {
        assert_eq!(decode_cursor(&encode_cursor(7)), Some(7));
        assert_eq!(decode_cursor("x"), None);
    }
}
