//! Stripe's object endpoints: create, retrieve, update, delete, and lists newest first with
//! `starting_after`/`ending_before`/`has_more`.

use super::super::state::Shared;
use super::super::util::{json, now_unix};
use super::errors::{FormBody, FormQuery, Resource, invalid, missing};
use super::form::decode_form;
use super::idempotency::{fingerprint, idempotent_replay, remember};
use super::resources::{Res, apply_update, build, expand, newest_first};
use axum::extract::{Path, RawQuery, State};
use axum::http::HeaderMap;
use axum::response::Response;
use serde_json::{Map, Value, json};
use std::sync::Arc;

pub(super) fn limit_param(p: &Map<String, Value>) -> Result<usize, Response> {
    match p.get("limit") {
        None => Ok(10),
        Some(v) => match v.as_str().and_then(|s| s.parse::<usize>().ok()) {
            Some(n) if (1..=100).contains(&n) => Ok(n),
            _ => Err(invalid(
                400,
                Some("parameter_invalid_integer"),
                "This value must be between 1 and 100.",
                Some("limit"),
            )),
        },
    }
}

pub(super) fn created_filter(p: &Map<String, Value>, o: &Value) -> bool {
    let created = o["created"].as_i64().unwrap_or_default();
    match p.get("created") {
        Some(Value::Object(m)) => m.iter().all(|(op, v)| {
            let n = v.as_str().and_then(|s| s.parse::<i64>().ok()).unwrap_or(0);
            match op.as_str() {
                "gt" => created > n,
                "gte" => created >= n,
                "lt" => created < n,
                "lte" => created <= n,
                _ => true,
            }
        }),
        Some(Value::String(s)) => s.parse::<i64>().is_ok_and(|n| created == n),
        _ => true,
    }
}

pub(super) async fn create(
    State(shared): State<Arc<Shared>>,
    Resource(res): Resource,
    uri: axum::http::Uri,
    headers: HeaderMap,
    FormBody(p): FormBody,
) -> Response {
    let fp = fingerprint("POST", uri.path(), &p);
    let key = match idempotent_replay(&shared, &headers, &fp) {
        Ok(k) => k,
        Err(r) => return r,
    };
    let mut db = shared.db();
    let obj = match build(&shared, &mut db, res, &p) {
        Ok(o) => o,
        Err(r) => return r,
    };
    let id = obj["id"].as_str().unwrap_or_default().to_string();
    db.insert(res.table(), &id, obj.clone());
    db.indexed(res.table(), &id);
    let out = expand(&db, obj, &p);
    drop(db);
    remember(&shared, key, &fp, 200, &out);
    json(200, out)
}

pub(super) async fn retrieve(
    State(shared): State<Arc<Shared>>,
    Resource(res): Resource,
    Path((_, id)): Path<(String, String)>,
    RawQuery(q): RawQuery,
) -> Response {
    let p = decode_form(q.unwrap_or_default().as_bytes()).unwrap_or_default();
    let db = shared.db();
    match db.get(res.table(), &id).cloned() {
        Some(o) => {
            let out = expand(&db, o, &p);
            drop(db);
            json(200, out)
        }
        // Stripe answers a deleted customer with its tombstone, not 404.
        None if let Some(t) = db.deleted.get(&format!("{}/{id}", res.table())) => {
            json(200, t.clone())
        }
        None => {
            drop(db);
            missing(res.object(), &id, "id")
        }
    }
}

pub(super) async fn update(
    State(shared): State<Arc<Shared>>,
    Resource(res): Resource,
    Path((_, id)): Path<(String, String)>,
    uri: axum::http::Uri,
    headers: HeaderMap,
    FormBody(p): FormBody,
) -> Response {
    let fp = fingerprint("POST", uri.path(), &p);
    let key = match idempotent_replay(&shared, &headers, &fp) {
        Ok(k) => k,
        Err(r) => return r,
    };
    let mut db = shared.db();
    let Some(mut obj) = db.get(res.table(), &id).cloned() else {
        drop(db);
        return missing(res.object(), &id, "id");
    };
    if let Err(r) = apply_update(&db, res, &mut obj, &p) {
        return r;
    }
    db.table(res.table()).insert(id.clone(), obj.clone());
    db.indexed(res.table(), &id);
    let out = expand(&db, obj, &p);
    drop(db);
    remember(&shared, key, &fp, 200, &out);
    json(200, out)
}

pub(super) async fn remove(
    State(shared): State<Arc<Shared>>,
    Resource(res): Resource,
    Path((_, id)): Path<(String, String)>,
    uri: axum::http::Uri,
) -> Response {
    let mut db = shared.db();
    match res {
        Res::Customer => match db.table("customers").shift_remove(&id) {
            Some(_) => {
                let tombstone = json!({"id": id, "object": "customer", "deleted": true});
                db.deleted
                    .insert(format!("customers/{id}"), tombstone.clone());
                db.indexed("customers", &id);
                json(200, tombstone)
            }
            None => missing("customer", &id, "id"),
        },
        Res::Product => match db.table("products").shift_remove(&id) {
            Some(_) => {
                db.indexed("products", &id);
                json(200, json!({"id": id, "object": "product", "deleted": true}))
            }
            None => missing("product", &id, "id"),
        },
        Res::Subscription => match db.table("subscriptions").get_mut(&id) {
            Some(sub) => {
                let now = now_unix();
                sub["status"] = json!("canceled");
                sub["canceled_at"] = json!(now);
                sub["ended_at"] = json!(now);
                let out = sub.clone();
                db.indexed("subscriptions", &id);
                json(200, out)
            }
            None => missing("subscription", &id, "id"),
        },
        Res::PaymentIntent | Res::Price => {
            drop(db);
            invalid(
                404,
                None,
                &format!("Unrecognized request URL (DELETE: {}).", uri.path()),
                None,
            )
        }
    }
}

/// Newest first, like Stripe lists.
pub(super) async fn list(
    State(shared): State<Arc<Shared>>,
    Resource(res): Resource,
    FormQuery(p): FormQuery,
) -> Response {
    let limit = match limit_param(&p) {
        Ok(l) => l,
        Err(r) => return r,
    };
    let text = |k: &str| p.get(k).and_then(Value::as_str);
    let db = shared.db();
    let all: Vec<Value> = newest_first(&db, res)
        .into_iter()
        .filter(|o| created_filter(&p, o))
        .filter(|o| text("email").is_none_or(|e| o["email"].as_str() == Some(e)))
        .filter(|o| text("customer").is_none_or(|c| o["customer"].as_str() == Some(c)))
        .filter(|o| match (res, text("status")) {
            (Res::Subscription, None) => o["status"] != "canceled",
            (Res::Subscription, Some("all")) => true,
            (Res::Subscription, Some(s)) => o["status"].as_str() == Some(s),
            _ => true,
        })
        .collect();
    let position = |id: &str| all.iter().position(|o| o["id"].as_str() == Some(id));
    let (start, end) = if let Some(after) = text("starting_after") {
        let Some(i) = position(after) else {
            drop(db);
            return missing(res.object(), after, "starting_after");
        };
        (i + 1, (i + 1 + limit).min(all.len()))
    } else if let Some(before) = text("ending_before") {
        let Some(i) = position(before) else {
            drop(db);
            return missing(res.object(), before, "ending_before");
        };
        (i.saturating_sub(limit), i)
    } else {
        (0, limit.min(all.len()))
    };
    let data: Vec<Value> = all[start..end]
        .iter()
        .map(|o| expand(&db, o.clone(), &p))
        .collect();
    drop(db);
    let has_more = if text("ending_before").is_some() {
        start > 0
    } else {
        end < all.len()
    };
    json(
        200,
        json!({"object": "list", "data": data, "has_more": has_more,
               "url": format!("/v1/{}", res.table())}),
    )
}
