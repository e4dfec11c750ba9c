//! Pipedrive's `{success, data, additional_data}` envelope, its error answers, paging helpers
//! (cursors and `start`/`limit`) and the JSON body extractor.

use super::super::state::Shared;
use super::super::util::{json, parse_json};
use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::response::Response;
use base64::Engine as _;
use serde_json::{Map, Value, json};
use std::collections::HashMap;
use std::sync::Arc;

pub(super) const INFO: &str =
    "Please check developers.pipedrive.com for more information about Pipedrive API.";

pub(super) fn failure(status: u16, error: &str) -> Response {
    json(
        status,
        json!({"success": false, "error": error, "error_info": INFO, "data": null,
               "additional_data": null}),
    )
}

pub(super) fn ok(status: u16, data: Value, additional: Value) -> Response {
    let mut body = json!({"success": true, "data": data});
    if !additional.is_null() {
        body["additional_data"] = additional;
    }
    json(status, body)
}

pub(super) fn encode_cursor(n: u64) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("c:{n}"))
}

pub(super) fn decode_cursor(c: &str) -> Option<u64> {
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(c.trim_end_matches('='))
        .ok()?;
    String::from_utf8(raw)
        .ok()?
        .strip_prefix("c:")?
        .parse()
        .ok()
}

pub(super) fn body_object(body: &[u8]) -> Result<Map<String, Value>, Response> {
    match parse_json(body) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(_) => Err(failure(400, "Request body must be a JSON object")),
        Err(e) => Err(failure(400, &format!("Invalid JSON: {e}"))),
    }
}

pub(super) fn limit(q: &HashMap<String, String>, default: usize) -> Result<usize, Response> {
    match q.get("limit").map(|s| s.parse::<usize>()) {
        None => Ok(default),
        Some(Ok(n)) if (1..=500).contains(&n) => Ok(n),
        Some(_) => Err(failure(400, "limit must be an integer between 1 and 500")),
    }
}

pub(super) fn offset_page(
    q: &HashMap<String, String>,
    all: Vec<Value>,
) -> Result<(Vec<Value>, Value), Response> {
    let start = match q.get("start").map(|s| s.parse::<usize>()) {
        None => 0,
        Some(Ok(n)) => n,
        Some(Err(_)) => return Err(failure(400, "start must be a non-negative integer")),
    };
    let limit = limit(q, 100)?;
    let end = start.saturating_add(limit).min(all.len());
    let more = end < all.len();
    let mut pagination = json!({"start": start, "limit": limit, "more_items_in_collection": more});
    if more {
        pagination["next_start"] = json!(end);
    }
    Ok((
        all.get(start..end).unwrap_or_default().to_vec(),
        json!({"pagination": pagination}),
    ))
}

/// A JSON object body; anything else is Pipedrive's 400.
pub(super) struct PdBody(pub Map<String, Value>);

impl FromRequest<Arc<Shared>> for PdBody {
    type Rejection = Response;

    async fn from_request(req: Request, shared: &Arc<Shared>) -> Result<Self, Response> {
        let body = Bytes::from_request(req, shared)
            .await
            .map_err(|e| failure(400, &format!("Invalid JSON: {e}")))?;
        body_object(&body).map(PdBody)
    }
}
#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip() {
        assert_eq!(decode_cursor(&encode_cursor(42)), Some(42));
        assert_eq!(decode_cursor("garbage!"), None);
    }
}
