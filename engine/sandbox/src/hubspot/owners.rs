//! HubSpot owners (`/crm/v3/owners`): the portal's users that records can be assigned to.
//! List with the `email` filter, `limit` (default 100, at most 500) and `after` paging, read
//! one by id (or by `userId` with `idProperty=userId`), archived owners only when asked.
//! Writes check `hubspot_owner_id` against them as HubSpot does. A new portal has one owner,
//! `owner@company.com` (the owner seed 003's HubSpot example names), so `switchyard run
//! --sandbox` of that example works as it is; tests load more with `seed("owners", …)`.

use super::super::state::{Db, Shared};
use super::super::util::{json, now_iso, scalar_text};
use super::errors::{WriteError, bad_request, error};
use axum::extract::{Path, Query, State};
use axum::response::Response;
use serde_json::{Map, Value, json};
use std::collections::HashMap;
use std::sync::Arc;

/// The table owners are kept in.
pub(super) const TABLE: &str = "owners";

const LIMIT_MAX: usize = 500;

/// The owner every emulated portal starts with.
pub(super) fn init(db: &mut Db) {
    let now = now_iso();
    let owner = json!({"id": "70000001", "email": "owner@company.com", "firstName": "Olive",
                       "lastName": "Owner", "userId": 9000001, "userIdIncludingInactive": 9000001,
                       "type": "PERSON", "teams": [], "createdAt": now, "updatedAt": now,
                       "archived": false});
    db.table(TABLE).insert("70000001".into(), owner);
}

/// Loads one fixture owner: `{"id", "email", …}` in the API's shape (`type`, `archived` and
/// the times filled in when absent).
pub(super) fn seed(db: &mut Db, input: &Value) -> Result<(), String> {
    let id = input.get("id").map(scalar_text).unwrap_or_default();
    if id.is_empty() || !id.chars().all(|c| c.is_ascii_digit()) {
        return Err(format!("`id` must be a numeric string, found `{id}`"));
    }
    let Value::Object(m) = input.clone() else {
        return Err("an owner must be a JSON object".into());
    };
    let now = now_iso();
    let mut owner: Map<String, Value> = m;
    owner.insert("id".into(), Value::String(id.clone()));
    for (k, v) in [
        ("type", json!("PERSON")),
        ("archived", json!(false)),
        ("teams", json!([])),
        ("createdAt", json!(now)),
        ("updatedAt", json!(now)),
    ] {
        owner.entry(k).or_insert(v);
    }
    db.table(TABLE).insert(id, Value::Object(owner));
    Ok(())
}

/// HubSpot's refusal of a `hubspot_owner_id` that names no owner (a write sets it as a
/// string; empty clears it).
pub(super) fn check(db: &Db, props: &Map<String, Value>) -> Result<(), WriteError> {
    let Some(v) = props.get("hubspot_owner_id").and_then(Value::as_str) else {
        return Ok(());
    };
    let live = |id: &str| {
        db.get(TABLE, id)
            .is_some_and(|o| o["archived"] != Value::Bool(true))
    };
    if v.is_empty() || live(v) {
        return Ok(());
    }
    let message = format!("{v} is not a valid owner id");
    Err(WriteError::new(
        400,
        "VALIDATION_ERROR",
        format!(
            "Property values were not valid: {}",
            json!([{"isValid": false, "message": message, "error": "INVALID_OWNER_ID",
                    "name": "hubspot_owner_id", "localizedErrorMessage": message}])
        ),
        Value::Null,
    ))
}

fn archived(q: &HashMap<String, String>) -> Result<bool, String> {
    match q.get("archived").map(String::as_str) {
        None | Some("false") => Ok(false),
        Some("true") => Ok(true),
        Some(other) => Err(format!("archived must be true or false, found `{other}`")),
    }
}

/// `GET /crm/v3/owners?email=&limit=&after=&archived=`.
pub(super) async fn list(
    State(shared): State<Arc<Shared>>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let limit = match q.get("limit").map(|s| s.parse::<usize>()) {
        None => 100,
        Some(Ok(n)) if (1..=LIMIT_MAX).contains(&n) => n,
        Some(_) => {
            return bad_request(
                &shared,
                &format!("limit must be an integer from 1 to {LIMIT_MAX}"),
            );
        }
    };
    let after = match q.get("after").map(|s| s.parse::<usize>()) {
        None => 0,
        Some(Ok(n)) => n,
        Some(Err(_)) => return bad_request(&shared, "after must be a valid paging cursor"),
    };
    let archived = match archived(&q) {
        Ok(a) => a,
        Err(m) => return bad_request(&shared, &m),
    };
    let email = q.get("email").map(|e| e.trim().to_lowercase());
    let db = shared.db();
    let matching: Vec<Value> = db
        .tables
        .get(TABLE)
        .map(|t| {
            t.values()
                .filter(|o| (o["archived"] == Value::Bool(true)) == archived)
                .filter(|o| {
                    email.as_deref().is_none_or(|e| {
                        o["email"]
                            .as_str()
                            .is_some_and(|x| x.trim().to_lowercase() == e)
                    })
                })
                .cloned()
                .collect()
        })
        .unwrap_or_default();
    drop(db);
    let page: Vec<Value> = matching.iter().skip(after).take(limit).cloned().collect();
    let mut body = json!({"results": page});
    let next = after + page.len();
    if next < matching.len() {
        let link = format!(
            "{}/crm/v3/owners?limit={limit}&after={next}",
            shared.base_url
        );
        body["paging"] = json!({"next": {"after": next.to_string(), "link": link}});
    }
    json(200, body)
}

/// `GET /crm/v3/owners/{ownerId}?idProperty=id|userId&archived=`.
pub(super) async fn read(
    State(shared): State<Arc<Shared>>,
    Path(id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let archived = match archived(&q) {
        Ok(a) => a,
        Err(m) => return bad_request(&shared, &m),
    };
    let by_user = match q.get("idProperty").map(String::as_str) {
        None | Some("id") => false,
        Some("userId") => true,
        Some(other) => {
            return bad_request(
                &shared,
                &format!("idProperty must be id or userId, found `{other}`"),
            );
        }
    };
    let db = shared.db();
    let found = db.tables.get(TABLE).and_then(|t| {
        t.values()
            .find(|o| {
                let key = if by_user {
                    o.get("userId").map(scalar_text)
                } else {
                    o.get("id").map(scalar_text)
                };
                key.as_deref() == Some(id.as_str())
                    && (o["archived"] == Value::Bool(true)) == archived
            })
            .cloned()
    });
    drop(db);
    match found {
        Some(o) => json(200, o),
        None => error(
            &shared,
            404,
            "OBJECT_NOT_FOUND",
            &format!("Owner with id {id} not found"),
            json!({"context": {"ownerId": [id]}}),
        ),
    }
}
