//! Zendesk's error answers (`{error, description[, details]}`) and the extractors that
//! answer with them: the collection of a path (`tickets`, `users`) and a JSON object body.

use super::super::state::Shared;
use super::super::util::{json, parse_json};
use super::super::vendor::path_segment;
use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::response::Response;
use serde_json::{Map, Value, json};
use std::sync::Arc;

pub(super) fn record_not_found() -> Response {
    json(
        404,
        json!({"error": "RecordNotFound", "description": "Not found"}),
    )
}

pub(super) async fn not_found_route() -> Response {
    json(
        404,
        json!({"error": "InvalidEndpoint", "description": "Not found"}),
    )
}

pub(super) fn invalid(details: Value) -> Response {
    json(
        422,
        json!({"error": "RecordInvalid", "description": "Record validation errors",
               "details": details}),
    )
}

pub(super) fn detail(field: &str, error: &str, description: String) -> Value {
    json!({field: [{"description": description, "error": error}]})
}

pub(super) fn strip_json(s: &str) -> &str {
    s.strip_suffix(".json").unwrap_or(s)
}

#[derive(Clone, Copy, PartialEq)]
pub(super) enum Coll {
    Tickets,
    Users,
}

impl Coll {
    pub(super) fn from_path(s: &str) -> Option<Coll> {
        match strip_json(s) {
            "tickets" => Some(Coll::Tickets),
            "users" => Some(Coll::Users),
            _ => None,
        }
    }
    pub(super) fn table(self) -> &'static str {
        match self {
            Coll::Tickets => "tickets",
            Coll::Users => "users",
        }
    }
    pub(super) fn singular(self) -> &'static str {
        match self {
            Coll::Tickets => "ticket",
            Coll::Users => "user",
        }
    }
}

pub(super) fn now() -> String {
    chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

pub(super) fn body_object(body: &[u8]) -> Result<Map<String, Value>, Response> {
    match parse_json(body) {
        Ok(Value::Object(m)) => Ok(m),
        _ => Err(json(
            400,
            json!({"error": "InvalidJSON", "description": "The request body is not valid JSON"}),
        )),
    }
}

/// The collection of the route's `{collection}` segment (`.json` optional); others are
/// Zendesk's 404 `InvalidEndpoint`.
pub(super) struct Collection(pub Coll);

impl FromRequestParts<Arc<Shared>> for Collection {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, shared: &Arc<Shared>) -> Result<Self, Response> {
        let seg = path_segment(parts, shared, "collection")
            .await
            .unwrap_or_default();
        match Coll::from_path(&seg) {
            Some(c) => Ok(Collection(c)),
            None => Err(not_found_route().await),
        }
    }
}

/// A JSON object body; anything else is `InvalidJSON`.
pub(super) struct ZdBody(pub Map<String, Value>);

impl FromRequest<Arc<Shared>> for ZdBody {
    type Rejection = Response;

    async fn from_request(req: Request, shared: &Arc<Shared>) -> Result<Self, Response> {
        let body = Bytes::from_request(req, shared).await.unwrap_or_default();
        body_object(&body).map(ZdBody)
    }
}
