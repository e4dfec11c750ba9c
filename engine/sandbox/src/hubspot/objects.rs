//! HubSpot's single-object endpoints: create, read, update, archive and list with `after`.

use super::super::state::Shared;
use super::super::util::{empty, json};
use super::errors::{JsonBody, Object, bad_request, not_found};
use super::store::{archive_object, find_id, insert_object, render, update_object};
use super::{associations, properties};
use axum::extract::{Path, Query, RawQuery, State};
use axum::response::Response;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::Arc;

/// A list query parameter, comma-separated (`properties=a,b`) or repeated
/// (`properties=a&properties=b`, what the official SDKs send), or both.
pub(super) fn query_list(raw: Option<&str>, key: &str) -> Vec<String> {
    url::form_urlencoded::parse(raw.unwrap_or_default().as_bytes())
        .filter(|(k, _)| k == key)
        .flat_map(|(_, v)| {
            v.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(String::from)
                .collect::<Vec<_>>()
        })
        .collect()
}

/// The object as a read returns it, with the associations the read asked for.
fn rendered(record: &Value, object: &str, wanted: &[String], assoc: &[String]) -> Value {
    let mut out = render(record, object, wanted, false);
    if let Some(a) = associations::for_read(record, assoc) {
        out["associations"] = a;
    }
    out
}

pub(super) async fn create(
    State(shared): State<Arc<Shared>>,
    Object(object): Object,
    JsonBody(input): JsonBody,
) -> Response {
    let result = insert_object(&mut shared.db(), object, &input);
    match result {
        Ok((_, record)) => json(201, render(&record, object, &[], true)),
        Err(e) => e.respond(&shared),
    }
}

pub(super) async fn read(
    State(shared): State<Arc<Shared>>,
    Object(object): Object,
    Path((_, id)): Path<(String, String)>,
    Query(q): Query<HashMap<String, String>>,
    RawQuery(raw): RawQuery,
) -> Response {
    let wanted = query_list(raw.as_deref(), "properties");
    let assoc = query_list(raw.as_deref(), "associations");
    let db = shared.db();
    if let Some(prop) = q.get("idProperty")
        && !properties::is_unique(&db, object, prop, true)
    {
        drop(db);
        return bad_request(
            &shared,
            &format!(
                "Unable to perform read by non-unique {} property {prop}",
                properties::type_id(object)
            ),
        );
    }
    let found = find_id(&db, object, &id, q.get("idProperty").map(String::as_str))
        .and_then(|k| db.get(object, &k).cloned());
    drop(db);
    match found {
        Some(r) => json(200, rendered(&r, object, &wanted, &assoc)),
        None => not_found(&shared, &id),
    }
}

pub(super) async fn update(
    State(shared): State<Arc<Shared>>,
    Object(object): Object,
    Path((_, id)): Path<(String, String)>,
    Query(q): Query<HashMap<String, String>>,
    JsonBody(input): JsonBody,
) -> Response {
    let mut db = shared.db();
    if let Some(prop) = q.get("idProperty")
        && !properties::is_unique(&db, object, prop, false)
    {
        drop(db);
        return bad_request(
            &shared,
            &format!(
                "Unable to perform update/upsert by non-unique {} property {prop}",
                properties::type_id(object)
            ),
        );
    }
    let Some(key) = find_id(&db, object, &id, q.get("idProperty").map(String::as_str)) else {
        drop(db);
        return not_found(&shared, &id);
    };
    let result = update_object(&mut db, object, &key, &input);
    drop(db);
    match result {
        Ok(record) => json(200, render(&record, object, &[], true)),
        Err(e) => e.respond(&shared),
    }
}

pub(super) async fn archive(
    State(shared): State<Arc<Shared>>,
    Object(object): Object,
    Path((_, id)): Path<(String, String)>,
) -> Response {
    archive_object(&mut shared.db(), object, &id);
    empty(204)
}

pub(super) async fn list(
    State(shared): State<Arc<Shared>>,
    Object(object): Object,
    Query(q): Query<HashMap<String, String>>,
    RawQuery(raw): RawQuery,
) -> Response {
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
    let wanted = query_list(raw.as_deref(), "properties");
    let assoc = query_list(raw.as_deref(), "associations");
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
        .map(|(_, r)| rendered(r, object, &wanted, &assoc))
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
