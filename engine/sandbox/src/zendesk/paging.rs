//! Zendesk's two paging modes: cursor (`page[size]`, `page[after]` → `meta`, `links`) and
//! offset (`page`, `per_page` → `next_page`, `previous_page`, `count`; capped at 10,000).

use super::super::state::Shared;
use super::super::util::json;
use axum::response::Response;
use base64::Engine as _;
use serde_json::{Value, json};
use std::collections::HashMap;

pub(super) fn encode_cursor(n: usize) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("zd:{n}"))
}

pub(super) fn decode_cursor(c: &str) -> Option<usize> {
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(c.trim_end_matches('='))
        .ok()?;
    String::from_utf8(raw)
        .ok()?
        .strip_prefix("zd:")?
        .parse()
        .ok()
}

/// Cursor mode when `page[size]` is given, else offset mode (`page`, `per_page`).
pub(super) fn paged(
    shared: &Shared,
    path: &str,
    key: &str,
    q: &HashMap<String, String>,
    all: Vec<Value>,
) -> Response {
    let bad = |m: &str| {
        json(
            400,
            json!({"error": "InvalidPaginationParameter", "description": m}),
        )
    };
    if let Some(size) = q.get("page[size]") {
        let Ok(size) = size.parse::<usize>() else {
            return bad("page[size] must be an integer");
        };
        if !(1..=100).contains(&size) {
            return bad("page[size] must be between 1 and 100");
        }
        let start = match q.get("page[after]") {
            None => 0,
            Some(c) => match decode_cursor(c) {
                Some(n) => n,
                None => return bad("page[after] is not a valid cursor"),
            },
        };
        let end = start.saturating_add(size).min(all.len());
        let data: Vec<Value> = all.get(start..end).unwrap_or_default().to_vec();
        let has_more = end < all.len();
        let after = (!data.is_empty()).then(|| encode_cursor(end));
        let before = (!data.is_empty()).then(|| encode_cursor(start));
        let link = |k: &str, c: &Option<String>| match c {
            Some(c) => json!(format!(
                "{}{path}.json?page%5Bsize%5D={size}&page%5B{k}%5D={c}",
                shared.base_url
            )),
            None => Value::Null,
        };
        let next = if has_more {
            link("after", &after)
        } else {
            Value::Null
        };
        let prev = if start > 0 {
            link("before", &before)
        } else {
            Value::Null
        };
        return json(
            200,
            json!({key: data, "meta": {"has_more": has_more, "after_cursor": after, "before_cursor": before},
                   "links": {"next": next, "prev": prev}}),
        );
    }
    let page = q
        .get("page")
        .and_then(|p| p.parse::<usize>().ok())
        .unwrap_or(1)
        .max(1);
    let per = q
        .get("per_page")
        .and_then(|p| p.parse::<usize>().ok())
        .unwrap_or(100)
        .clamp(1, 100);
    if page.saturating_mul(per) > 10_000 + per {
        return bad(
            "Offset pagination is limited to the first 10,000 records; use cursor pagination",
        );
    }
    let start = (page - 1).saturating_mul(per);
    let end = start.saturating_add(per).min(all.len());
    let data: Vec<Value> = all.get(start..end).unwrap_or_default().to_vec();
    let url = |p: usize| {
        json!(format!(
            "{}{path}.json?page={p}&per_page={per}",
            shared.base_url
        ))
    };
    json(
        200,
        json!({key: data, "next_page": if end < all.len() { url(page + 1) } else { Value::Null },
               "previous_page": if page > 1 { url(page - 1) } else { Value::Null },
               "count": all.len()}),
    )
}
#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip() {
        assert_eq!(decode_cursor(&encode_cursor(7)), Some(7));
        assert_eq!(decode_cursor("x"), None);
    }
}
