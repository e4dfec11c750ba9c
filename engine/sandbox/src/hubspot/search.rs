//! HubSpot's CRM search: `filterGroups` (OR of ANDed filters) with HubSpot's operators, the
//! free-text `query`, sorts, and `after` paging capped at 10,000 results.

use super::super::state::Shared;
use super::super::util::{cmp_loose, json, scalar_text};
use super::errors::{JsonBody, Object, bad_request};
use super::store::render;
use super::{SEARCH_LIMIT_MAX, SEARCH_RESULTS_MAX};
use axum::extract::State;
use axum::response::Response;
use serde_json::{Value, json};
use std::cmp::Ordering;
use std::sync::Arc;

fn filter_matches(record: &Value, f: &Value) -> Result<bool, String> {
    let prop = f
        .get("propertyName")
        .and_then(Value::as_str)
        .ok_or("each filter needs a propertyName")?;
    let op = f
        .get("operator")
        .and_then(Value::as_str)
        .ok_or("each filter needs an operator")?;
    let actual = if prop == "hs_object_id" || prop == "id" {
        record["id"].as_str().map(String::from)
    } else {
        record["properties"][prop]
            .as_str()
            .filter(|s| !s.is_empty())
            .map(String::from)
    };
    let value = f.get("value").map(scalar_text);
    let need = |v: &Option<String>| v.clone().ok_or(format!("operator {op} needs a value"));
    let values = || -> Result<Vec<String>, String> {
        f.get("values")
            .and_then(Value::as_array)
            .map(|a| a.iter().map(scalar_text).collect())
            .ok_or(format!("operator {op} needs values"))
    };
    let cmp = |want: &str| actual.as_deref().map(|a| cmp_loose(a, want));
    Ok(match op {
        "EQ" => cmp(&need(&value)?) == Some(Ordering::Equal),
        "NEQ" => cmp(&need(&value)?) != Some(Ordering::Equal),
        "LT" => cmp(&need(&value)?) == Some(Ordering::Less),
        "LTE" => matches!(cmp(&need(&value)?), Some(Ordering::Less | Ordering::Equal)),
        "GT" => cmp(&need(&value)?) == Some(Ordering::Greater),
        "GTE" => matches!(
            cmp(&need(&value)?),
            Some(Ordering::Greater | Ordering::Equal)
        ),
        "BETWEEN" => {
            let low = need(&value)?;
            let high = f
                .get("highValue")
                .map(scalar_text)
                .ok_or("operator BETWEEN needs a highValue")?;
            matches!(cmp(&low), Some(Ordering::Greater | Ordering::Equal))
                && matches!(cmp(&high), Some(Ordering::Less | Ordering::Equal))
        }
        "IN" => {
            let vs = values()?;
            vs.iter().any(|v| cmp(v) == Some(Ordering::Equal))
        }
        "NOT_IN" => {
            let vs = values()?;
            !vs.iter().any(|v| cmp(v) == Some(Ordering::Equal))
        }
        "HAS_PROPERTY" => actual.is_some(),
        "NOT_HAS_PROPERTY" => actual.is_none(),
        "CONTAINS_TOKEN" | "NOT_CONTAINS_TOKEN" => {
            let want = need(&value)?.to_lowercase();
            let hit = actual.as_deref().is_some_and(|a| token_match(a, &want));
            (op == "CONTAINS_TOKEN") == hit
        }
        other => return Err(format!("Unknown operator: {other}")),
    })
}

/// HubSpot token match: the value (with `*` wildcards) matches a word of the text.
fn token_match(text: &str, want: &str) -> bool {
    let text = text.to_lowercase();
    let core = want.trim_matches('*');
    if want.starts_with('*') || want.ends_with('*') {
        return text.contains(core);
    }
    text == core
        || text
            .split(|c: char| !c.is_alphanumeric())
            .any(|w| w == core)
}

const QUERY_PROPERTIES: &[&str] = &[
    "email",
    "firstname",
    "lastname",
    "phone",
    "company",
    "name",
    "domain",
    "dealname",
    "subject",
    "content",
    "hs_task_subject",
];

pub(super) async fn search(
    State(shared): State<Arc<Shared>>,
    Object(object): Object,
    JsonBody(req): JsonBody,
) -> Response {
    let groups = req
        .get("filterGroups")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    if groups.len() > 5 {
        return bad_request(&shared, "Too many filter groups: at most 5 are allowed");
    }
    for g in &groups {
        let n = g
            .get("filters")
            .and_then(Value::as_array)
            .map_or(0, Vec::len);
        if n > 6 {
            return bad_request(
                &shared,
                "Too many filters in a group: at most 6 are allowed",
            );
        }
    }
    let limit = match req.get("limit") {
        None | Some(Value::Null) => 10,
        Some(v) => match v.as_u64() {
            Some(n) if (1..=SEARCH_LIMIT_MAX as u64).contains(&n) => n as usize,
            _ => {
                return bad_request(
                    &shared,
                    &format!("limit must be between 1 and {SEARCH_LIMIT_MAX}"),
                );
            }
        },
    };
    let after = match req.get("after") {
        None | Some(Value::Null) => 0,
        Some(v) if scalar_text(v).is_empty() => 0,
        Some(v) => match scalar_text(v).parse::<usize>() {
            Ok(n) => n,
            Err(_) => return bad_request(&shared, "after must be a numeric paging offset"),
        },
    };
    if after.saturating_add(limit) > SEARCH_RESULTS_MAX {
        return bad_request(
            &shared,
            "Search results are limited to 10000: paging beyond is not allowed",
        );
    }
    let wanted: Vec<String> = req
        .get("properties")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(String::from)
                .collect()
        })
        .unwrap_or_default();
    let query = req
        .get("query")
        .and_then(Value::as_str)
        .map(str::to_lowercase);

    // What HubSpot's search index holds now (writes lag by the configured search delay).
    let candidates = shared.db().searchable(object);
    let mut hits = Vec::new();
    for r in &candidates {
        let mut ok = groups.is_empty();
        for g in &groups {
            let filters = g
                .get("filters")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            let mut all_match = true;
            for f in &filters {
                match filter_matches(r, f) {
                    Ok(true) => {}
                    Ok(false) => all_match = false,
                    Err(m) => return bad_request(&shared, &m),
                }
            }
            if all_match {
                ok = true;
                break;
            }
        }
        if let Some(q) = &query
            && !q.is_empty()
        {
            ok = ok
                && QUERY_PROPERTIES.iter().any(|p| {
                    r["properties"][*p]
                        .as_str()
                        .is_some_and(|v| v.to_lowercase().contains(q.as_str()))
                });
        }
        if ok {
            hits.push(r.clone());
        }
    }
    sort_hits(&mut hits, req.get("sorts"));
    let total = hits.len();
    let results: Vec<Value> = hits
        .iter()
        .skip(after)
        .take(limit)
        .map(|r| render(r, object, &wanted, false))
        .collect();
    let mut body = json!({"total": total, "results": results});
    if after + limit < total.min(SEARCH_RESULTS_MAX) {
        body["paging"] = json!({"next": {"after": (after + limit).to_string()}});
    }
    json(200, body)
}

fn sort_hits(hits: &mut [Value], sorts: Option<&Value>) {
    let first = sorts.and_then(Value::as_array).and_then(|a| a.first());
    let (prop, desc) = match first {
        Some(Value::String(s)) => match s.strip_prefix('-') {
            Some(p) => (p.to_string(), true),
            None => (s.clone(), false),
        },
        Some(Value::Object(o)) => (
            o.get("propertyName")
                .and_then(Value::as_str)
                .unwrap_or("hs_object_id")
                .to_string(),
            o.get("direction").and_then(Value::as_str) == Some("DESCENDING"),
        ),
        _ => ("hs_object_id".to_string(), false),
    };
    hits.sort_by(|a, b| {
        let x = scalar_text(&a["properties"][&prop]);
        let y = scalar_text(&b["properties"][&prop]);
        let o = cmp_loose(&x, &y);
        if desc { o.reverse() } else { o }
    });
}
