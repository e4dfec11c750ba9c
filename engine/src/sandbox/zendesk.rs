//! zendesk emulator (work in progress: answers 501 to every request).

use super::Credentials;
use super::ratelimit::Decision;
use super::state::Shared;
use super::util::json;
use axum::Router;
use axum::http::HeaderMap;
use axum::response::Response;
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;

pub(super) const DEFAULT_LIMIT: (u32, Duration) = (100, Duration::from_secs(10));

pub(super) fn credentials(_base_url: &str) -> Credentials {
    Credentials::default()
}

pub(super) fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .fallback(|| async { json(501, json!({"error": "not implemented yet"})) })
        .with_state(shared)
}

pub(super) fn server_error(_shared: &Shared, status: u16) -> Response {
    json(status, json!({"error": "server error"}))
}

pub(super) fn throttled(_shared: &Shared, _d: &Decision) -> Response {
    json(429, json!({"error": "rate limited"}))
}

pub(super) fn limit_headers(_d: &Decision, _h: &mut HeaderMap) {}
