//! HubSpot's associations v4 endpoints: associate two objects with the default type (`PUT
//! …/associations/default/{toObjectType}/{toObjectId}`) and list an object's associations
//! of one type (`GET …/associations/{toObjectType}`); the store side is `associations.rs`.

use super::super::state::Shared;
use super::super::util::json;
use super::associations::{associate_default, list_v4};
use super::errors::bad_request;
use super::store::object_name;
use axum::extract::{Path, Query, State};
use axum::response::Response;
use std::collections::HashMap;
use std::sync::Arc;

const LIMIT_MAX: usize = 500;

/// An object type of a v4 path (`contacts`, `contact`, `0-1`), or HubSpot's 400.
fn object(shared: &Shared, seg: &str) -> Result<&'static str, Response> {
    object_name(seg)
        .ok_or_else(|| bad_request(shared, &format!("Unable to infer object type from: {seg}")))
}

pub(super) async fn put_default(
    State(shared): State<Arc<Shared>>,
    Path((from, from_id, to, to_id)): Path<(String, String, String, String)>,
) -> Response {
    let (from, to) = match (object(&shared, &from), object(&shared, &to)) {
        (Ok(f), Ok(t)) => (f, t),
        (Err(r), _) | (_, Err(r)) => return r,
    };
    let result = associate_default(&mut shared.db(), from, &from_id, to, &to_id);
    match result {
        Ok(body) => json(200, body),
        Err(e) => e.respond(&shared),
    }
}

pub(super) async fn list(
    State(shared): State<Arc<Shared>>,
    Path((from, id, to)): Path<(String, String, String)>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let (from, to) = match (object(&shared, &from), object(&shared, &to)) {
        (Ok(f), Ok(t)) => (f, t),
        (Err(r), _) | (_, Err(r)) => return r,
    };
    let limit = match q.get("limit").map(|s| s.parse::<usize>()) {
        None => LIMIT_MAX,
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
    let result = list_v4(&shared.db(), from, &id, to, after, limit, &shared.base_url);
    match result {
        Ok(body) => json(200, body),
        Err(e) => e.respond(&shared),
    }
}
