//! Zendesk's Search API (`/search?query=…`): `type:`, `field:value`, `requester:`, `tags:`,
//! `updated>`/`created<`, free text; sorting and offset paging capped at 1,000 results.

use super::super::state::{Db, Shared};
use super::super::util::{cmp_loose, json, scalar_text};
use axum::extract::{Query, State};
use axum::response::Response;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::Arc;

/// One term of the Search API query language: `type:ticket`, `status:open`,
/// `external_id:"x"`, `requester:a@b.co`, `updated>2026-01-01T00:00:00Z`, `tags:vip`, or
/// free text.
pub(super) fn term_matches(db: &Db, rec: &Value, kind: &str, term: &str) -> bool {
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
    let ord = cmp_loose(&actual, value);
    match op {
        ":" => ord == std::cmp::Ordering::Equal,
        ">" => ord == std::cmp::Ordering::Greater,
        _ => ord == std::cmp::Ordering::Less,
    }
}

/// Splits a search query on spaces outside double quotes.
pub(super) fn split_terms(query: &str) -> Vec<String> {
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

pub(super) async fn search(
    State(shared): State<Arc<Shared>>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
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
            let o = cmp_loose(&scalar_text(&a[key]), &scalar_text(&b[key]));
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
