//! Stripe's search query language (`/v1/{resource}/search?query=…`): `field:'v'`,
//! `field~'v'`, `-field:'v'`, `metadata['k']:'v'`, comparisons, joined by ` AND ` or ` OR `,
//! with `next_page` tokens.

use super::super::state::Shared;
use super::super::util::{json, scalar_text};
use super::errors::{FormQuery, Resource, invalid};
use super::objects::limit_param;
use axum::extract::State;
use axum::response::Response;
use serde_json::{Value, json};
use std::sync::Arc;

/// One clause of Stripe's search language: `field:'v'`, `field~'v'`, `-field:'v'`,
/// `metadata['k']:'v'`, `amount>100`, `created>=1700000000`.
pub(super) fn clause_matches(o: &Value, clause: &str) -> Result<bool, String> {
    let clause = clause.trim();
    let (negate, clause) = match clause.strip_prefix('-') {
        Some(c) => (true, c),
        None => (false, clause),
    };
    let op_at = clause
        .find([':', '~', '>', '<'])
        .ok_or_else(|| format!("invalid search clause `{clause}`"))?;
    let field = &clause[..op_at];
    let rest = &clause[op_at..];
    let (op, value) = if let Some(v) = rest.strip_prefix(">=") {
        (">=", v)
    } else if let Some(v) = rest.strip_prefix("<=") {
        ("<=", v)
    } else {
        rest.split_at(1)
    };
    let value = value.trim().trim_matches('\'').trim_matches('"');
    let actual = if let Some(key) = field
        .strip_prefix("metadata[")
        .and_then(|k| k.strip_suffix(']'))
    {
        o["metadata"][key.trim_matches('\'').trim_matches('"')].clone()
    } else {
        o[field].clone()
    };
    let actual_text = scalar_text(&actual);
    let hit = match op {
        ":" => !actual.is_null() && actual_text.eq_ignore_ascii_case(value),
        "~" => actual_text.to_lowercase().contains(&value.to_lowercase()),
        ">" | "<" | ">=" | "<=" => {
            let (Ok(a), Ok(b)) = (actual_text.parse::<f64>(), value.parse::<f64>()) else {
                return Ok(false);
            };
            match op {
                ">" => a > b,
                "<" => a < b,
                ">=" => a >= b,
                _ => a <= b,
            }
        }
        _ => return Err(format!("invalid search operator in `{clause}`")),
    };
    Ok(hit != negate)
}

pub(super) async fn search(
    State(shared): State<Arc<Shared>>,
    Resource(res): Resource,
    FormQuery(p): FormQuery,
) -> Response {
    let Some(query) = p.get("query").and_then(Value::as_str) else {
        return invalid(
            400,
            Some("parameter_missing"),
            "Missing required param: query.",
            Some("query"),
        );
    };
    let limit = match limit_param(&p) {
        Ok(l) => l,
        Err(r) => return r,
    };
    let offset: usize = match p.get("page").and_then(Value::as_str) {
        None => 0,
        Some(tok) => match tok.strip_prefix("page_").and_then(|n| n.parse().ok()) {
            Some(n) => n,
            None => {
                return invalid(400, None, "Invalid page token", Some("page"));
            }
        },
    };
    let (any, clauses): (bool, Vec<&str>) = if query.contains(" OR ") {
        (true, query.split(" OR ").collect())
    } else {
        (false, query.split(" AND ").collect())
    };
    // What Stripe's search index holds now (writes lag by the configured search delay).
    let mut all = shared.db().searchable(res.table());
    all.reverse();
    let mut hits = Vec::new();
    for o in all {
        let mut results = Vec::new();
        for c in &clauses {
            match clause_matches(&o, c) {
                Ok(b) => results.push(b),
                Err(m) => return invalid(400, None, &m, Some("query")),
            }
        }
        let ok = if any {
            results.iter().any(|b| *b)
        } else {
            results.iter().all(|b| *b)
        };
        if ok {
            hits.push(o);
        }
    }
    let end = offset.saturating_add(limit).min(hits.len());
    let data: Vec<Value> = hits.get(offset..end).unwrap_or_default().to_vec();
    let has_more = end < hits.len();
    json(
        200,
        json!({"object": "search_result", "data": data, "has_more": has_more,
               "next_page": if has_more { json!(format!("page_{end}")) } else { Value::Null },
               "url": format!("/v1/{}/search", res.table())}),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn search_clauses() {
        let o = json!({"email": "A@b.co", "amount": 500, "metadata": {"k": "v"}});
        assert!(clause_matches(&o, "email:'a@b.co'").expect("ok"));
        assert!(clause_matches(&o, "amount>=500").expect("ok"));
        assert!(clause_matches(&o, "metadata['k']:'v'").expect("ok"));
        assert!(clause_matches(&o, "-email:'x@y.z'").expect("ok"));
        assert!(!clause_matches(&o, "email~'zz'").expect("ok"));
    }
}
