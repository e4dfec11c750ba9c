//! Stripe's `Idempotency-Key`: a repeated key with the same request replays the saved answer
//! (`Idempotent-Replayed: true`); with different parameters it is refused.

use super::super::state::Shared;
use super::super::util::{json, set_header};
use super::errors::invalid;
use axum::http::HeaderMap;
use axum::response::Response;
use serde_json::{Map, Value, json};

/// Replays or rejects a repeated `Idempotency-Key`; `Ok(None)` means run the request.
pub(super) fn idempotent_replay(
    shared: &Shared,
    headers: &HeaderMap,
    fingerprint: &str,
) -> Result<Option<String>, Response> {
    let Some(key) = headers
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok())
        .map(String::from)
    else {
        return Ok(None);
    };
    if key.len() > 255 {
        return Err(invalid(
            400,
            None,
            "Idempotency-Key must be at most 255 characters long",
            None,
        ));
    }
    let stored = shared.db().idempotency.get(&key).cloned();
    match stored {
        Some((fp, status, body)) if fp == fingerprint => {
            let mut r = json(status, body);
            set_header(r.headers_mut(), "idempotent-replayed", "true");
            set_header(r.headers_mut(), "idempotency-key", &key);
            Err(r)
        }
        Some(_) => Err(json(
            400,
            json!({"error": {"message": format!("Keys for idempotent requests can only be used with the same parameters they were first used with. Try using a key other than '{key}' if you meant to execute a different request."),
                             "type": "idempotency_error"}}),
        )),
        None => Ok(Some(key)),
    }
}

pub(super) fn remember(
    shared: &Shared,
    key: Option<String>,
    fingerprint: &str,
    status: u16,
    body: &Value,
) {
    // Requests that failed validation are not saved (the endpoint never started executing).
    if let Some(k) = key
        && status < 400
    {
        shared
            .db()
            .idempotency
            .insert(k, (fingerprint.to_string(), status, body.clone()));
    }
}

pub(super) fn fingerprint(method: &str, path: &str, p: &Map<String, Value>) -> String {
    format!("{method} {path} {}", Value::Object(p.clone()))
}
