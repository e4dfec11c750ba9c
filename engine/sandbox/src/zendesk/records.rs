//! Zendesk's collection endpoints shared by tickets and users: create, read, update,
//! delete and list (`/api/v2/{collection}[/{id}]`).

use super::super::state::Shared;
use super::super::util::empty;
use super::super::util::json;
use super::comments;
use super::errors::{Coll, Collection, ZdBody, invalid, now, record_not_found, strip_json};
use super::paging::paged;
use super::tickets::{apply_ticket, audit, new_ticket};
use super::users::{agent, apply_user, new_user};
use axum::extract::{Path, Query, State};
use axum::response::Response;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::Arc;

pub(super) async fn create(
    State(shared): State<Arc<Shared>>,
    Collection(coll): Collection,
    ZdBody(input): ZdBody,
) -> Response {
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

pub(super) async fn read(
    State(shared): State<Arc<Shared>>,
    Collection(coll): Collection,
    Path((_, id)): Path<(String, String)>,
) -> Response {
    let rec = shared.db().get(coll.table(), strip_json(&id)).cloned();
    match rec {
        Some(r) => json(200, json!({coll.singular(): r})),
        None => record_not_found(),
    }
}

pub(super) async fn update(
    State(shared): State<Arc<Shared>>,
    Collection(coll): Collection,
    Path((_, id)): Path<(String, String)>,
    ZdBody(input): ZdBody,
) -> Response {
    let id = strip_json(&id).to_string();
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
    db.table(coll.table()).insert(id.clone(), v.clone());
    if coll == Coll::Tickets
        && let Some(c) = inner.get("comment").filter(|c| c.is_object())
    {
        // An update's comment is written by the authenticated agent unless it names one.
        let author = agent(&shared, &mut db)
            .map(|a| a["id"].clone())
            .unwrap_or(Value::Null);
        comments::record(&mut db, &id, c, &author);
    }
    db.changed(coll.table(), &id);
    match coll {
        Coll::Tickets => {
            let a = audit(&shared, &mut db, &v);
            json(200, json!({"ticket": v, "audit": a}))
        }
        Coll::Users => json(200, json!({"user": v})),
    }
}

pub(super) async fn remove(
    State(shared): State<Arc<Shared>>,
    Collection(coll): Collection,
    Path((_, id)): Path<(String, String)>,
) -> Response {
    let id = strip_json(&id);
    let mut db = shared.db();
    let removed = db.table(coll.table()).shift_remove(id);
    if let Some(r) = &removed {
        // Incremental exports report the deletion with the record's last state.
        let mut tombstone = r.clone();
        tombstone["status"] = json!("deleted");
        db.deleted
            .insert(format!("{}/{id}", coll.table()), tombstone);
        db.changed(coll.table(), id);
    }
    drop(db);
    match (coll, removed) {
        (_, None) => record_not_found(),
        (Coll::Tickets, Some(_)) => empty(204),
        (Coll::Users, Some(mut u)) => {
            u["active"] = json!(false);
            json(200, json!({"user": u}))
        }
    }
}

pub(super) async fn list(
    State(shared): State<Arc<Shared>>,
    Collection(coll): Collection,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
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
