//! Zendesk ticket comments: every comment a ticket gets (the first at create, then one per
//! update that carries `comment`) is kept, and `GET /tickets/{id}/comments` lists them in
//! order, paged like other lists.

use super::super::state::{Db, Shared};
use super::super::util::scalar_text;
use super::errors::{now, record_not_found, strip_json};
use super::paging::paged;
use axum::extract::{Path, Query, State};
use axum::response::Response;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::Arc;

/// Where comments live: `ticket_comments`, keyed `{ticket id}/{comment id}`.
const TABLE: &str = "ticket_comments";

/// The HTML Zendesk renders a plain comment body as.
fn html(body: &str) -> String {
    let escaped = body
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;");
    format!("<div class=\"zd-comment\" dir=\"auto\"><p>{escaped}</p></div>")
}

/// Keeps one comment of ticket `ticket_id` (`input` as sent: `{body | html_body, public?,
/// author_id?}`), written by `author` unless it names its own. Returns its id.
pub(super) fn record(db: &mut Db, ticket_id: &str, input: &Value, author: &Value) -> u64 {
    let body = input
        .get("body")
        .or_else(|| input.get("html_body"))
        .map(scalar_text)
        .unwrap_or_default();
    let id = db.next_id() + 20_000_000_000;
    let comment = json!({
        "id": id, "type": "Comment",
        "author_id": input.get("author_id").filter(|a| !a.is_null()).unwrap_or(author),
        "body": body, "html_body": html(&body), "plain_body": body,
        "public": input.get("public").and_then(Value::as_bool).unwrap_or(true),
        "attachments": [], "audit_id": id + 1,
        "via": {"channel": "api", "source": {"from": {}, "to": {}, "rel": null}},
        "created_at": now(), "metadata": {"system": {}, "custom": {}},
    });
    db.table(TABLE).insert(format!("{ticket_id}/{id}"), comment);
    id
}

/// The comment of a ticket create: `comment`, or the `description` when no comment is given.
pub(super) fn first(input: &serde_json::Map<String, Value>) -> Option<Value> {
    match input.get("comment") {
        Some(c) if c.is_object() => Some(c.clone()),
        _ => input
            .get("description")
            .map(|d| json!({"body": scalar_text(d)})),
    }
}

/// `GET /api/v2/tickets/{id}/comments`.
pub(super) async fn list(
    State(shared): State<Arc<Shared>>,
    Path(id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let id = strip_json(&id).to_string();
    let db = shared.db();
    if db.get("tickets", &id).is_none() {
        drop(db);
        return record_not_found();
    }
    let prefix = format!("{id}/");
    let all: Vec<Value> = db
        .tables
        .get(TABLE)
        .map(|t| {
            t.iter()
                .filter(|(k, _)| k.starts_with(&prefix))
                .map(|(_, c)| c.clone())
                .collect()
        })
        .unwrap_or_default();
    drop(db);
    paged(
        &shared,
        &format!("/api/v2/tickets/{id}/comments"),
        "comments",
        &q,
        all,
    )
}
