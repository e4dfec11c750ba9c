//! Zendesk's cursor-based incremental export (`GET /api/v2/incremental/{tickets|users}/
//! cursor.json?start_time=…` then `?cursor=…`): every ticket or user changed since a time,
//! each once at its latest change, deleted tickets with status `deleted`, pages of
//! `per_page` (≤ 1000) with `after_cursor`/`after_url` and `end_of_stream`.

use super::super::state::Shared;
use super::super::util::json;
use super::errors::strip_json;
use axum::extract::{Path, Query, State};
use axum::response::Response;
use base64::Engine as _;
use serde_json::json;
use std::collections::HashMap;
use std::sync::Arc;

const PER_PAGE_MAX: usize = 1000;

fn encode(n: usize) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("zdx:{n}"))
}

fn decode(c: &str) -> Option<usize> {
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(c.trim_end_matches('='))
        .ok()?;
    String::from_utf8(raw)
        .ok()?
        .strip_prefix("zdx:")?
        .parse()
        .ok()
}

fn bad(error: &str, description: &str) -> Response {
    json(400, json!({"error": error, "description": description}))
}

/// `GET /api/v2/incremental/{tickets|users}/cursor[.json]`.
pub(super) async fn export(
    State(shared): State<Arc<Shared>>,
    Path(kind): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let table = match strip_json(&kind) {
        "tickets" => "tickets",
        "users" => "users",
        _ => {
            return json(
                404,
                json!({"error": "InvalidEndpoint", "description": "Not found"}),
            );
        }
    };
    let per_page = match q.get("per_page").map(|p| p.parse::<usize>()) {
        None => PER_PAGE_MAX,
        Some(Ok(n)) if (1..=PER_PAGE_MAX).contains(&n) => n,
        Some(_) => {
            return bad(
                "InvalidPaginationParameter",
                "per_page must be between 1 and 1000",
            );
        }
    };
    let db = shared.db();
    let start = match (q.get("start_time"), q.get("cursor")) {
        (Some(_), Some(_)) | (None, None) => {
            drop(db);
            return bad(
                "InvalidValue",
                "Either start_time or cursor is required, not both",
            );
        }
        (Some(t), None) => match t.parse::<i64>() {
            Ok(t) => db
                .changes
                .iter()
                .position(|(_, _, at)| *at >= t)
                .unwrap_or(db.changes.len()),
            Err(_) => {
                drop(db);
                return bad(
                    "InvalidValue",
                    "start_time must be a Unix epoch time in seconds",
                );
            }
        },
        (None, Some(c)) => match decode(c) {
            Some(n) if n <= db.changes.len() => n,
            _ => {
                drop(db);
                return bad("InvalidValue", "Invalid cursor");
            }
        },
    };
    // Each record appears once, at its latest change.
    let mut last: HashMap<&str, usize> = HashMap::new();
    for (i, (object, id, _)) in db.changes.iter().enumerate() {
        if object == table {
            last.insert(id.as_str(), i);
        }
    }
    let mut items = Vec::new();
    let mut next = start;
    for (i, (object, id, at)) in db.changes.iter().enumerate().skip(start) {
        next = i + 1;
        if object != table || last.get(id.as_str()) != Some(&i) {
            continue;
        }
        let record = db
            .get(table, id)
            .or_else(|| db.deleted.get(&format!("{table}/{id}")));
        if let Some(r) = record {
            let mut r = r.clone();
            r["generated_timestamp"] = json!(at);
            items.push(r);
        }
        if items.len() >= per_page {
            break;
        }
    }
    let end_of_stream = next >= db.changes.len();
    drop(db);
    let cursor = encode(next);
    let url = format!(
        "{}/api/v2/incremental/{table}/cursor.json?cursor={cursor}&per_page={per_page}",
        shared.base_url
    );
    json(
        200,
        json!({table: items, "after_cursor": cursor, "after_url": url,
               "before_cursor": null, "before_url": null, "end_of_stream": end_of_stream}),
    )
}
