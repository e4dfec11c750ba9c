//! HubSpot's errors and the extractors that answer with them: the `{status, message,
//! correlationId, category}` body, the object type of a path, and a JSON body.

use super::super::state::Shared;
use super::super::util::{json, parse_json};
use super::super::vendor::path_segment;
use super::store::object_name;
use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::response::Response;
use serde_json::{Value, json};
use std::sync::Arc;

pub(super) fn error(
    shared: &Shared,
    status: u16,
    category: &str,
    message: &str,
    extra: Value,
) -> Response {
    let mut body = json!({"status": "error", "message": message,
                          "correlationId": shared.uuid(), "category": category});
    if let (Some(b), Value::Object(e)) = (body.as_object_mut(), extra) {
        b.extend(e);
    }
    json(status, body)
}

pub(super) fn bad_request(shared: &Shared, message: &str) -> Response {
    error(shared, 400, "VALIDATION_ERROR", message, Value::Null)
}

pub(super) fn not_found(shared: &Shared, id: &str) -> Response {
    error(
        shared,
        404,
        "OBJECT_NOT_FOUND",
        "Object not found.  objectId are usually numeric.",
        json!({"context": {"id": [id]}}),
    )
}

/// Why a write failed: HTTP status, category, message, context and (for HubSpot's
/// validation details) the `errors` entries.
pub(super) struct WriteError {
    pub status: u16,
    pub category: &'static str,
    pub message: String,
    pub context: Value,
    pub errors: Vec<Value>,
}

impl WriteError {
    pub(super) fn new(
        status: u16,
        category: &'static str,
        message: String,
        context: Value,
    ) -> Self {
        WriteError {
            status,
            category,
            message,
            context,
            errors: Vec::new(),
        }
    }

    /// The answer for a single-object call.
    pub(super) fn respond(self, shared: &Shared) -> Response {
        let mut extra = json!({"context": self.context});
        if !self.errors.is_empty() {
            extra["errors"] = Value::Array(self.errors);
        }
        error(shared, self.status, self.category, &self.message, extra)
    }
}

pub(super) fn conflict(existing: &str) -> WriteError {
    WriteError::new(
        409,
        "CONFLICT",
        format!("Contact already exists. Existing ID: {existing}"),
        json!({"existingId": [existing]}),
    )
}

/// The canonical object of the route's `{object}` segment (`contacts` or `0-1`); an unknown
/// one is HubSpot's 400.
pub(super) struct Object(pub &'static str);

impl FromRequestParts<Arc<Shared>> for Object {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, shared: &Arc<Shared>) -> Result<Self, Response> {
        let seg = path_segment(parts, shared, "object")
            .await
            .unwrap_or_default();
        object_name(&seg)
            .map(Object)
            .ok_or_else(|| bad_request(shared, &format!("Unable to infer object type from: {seg}")))
    }
}

/// A JSON request body; anything else is HubSpot's 400 `Invalid input JSON`.
pub(super) struct JsonBody(pub Value);

impl FromRequest<Arc<Shared>> for JsonBody {
    type Rejection = Response;

    async fn from_request(req: Request, shared: &Arc<Shared>) -> Result<Self, Response> {
        let body = Bytes::from_request(req, shared)
            .await
            .map_err(|e| bad_request(shared, &format!("Invalid input JSON: {e}")))?;
        parse_json(&body)
            .map(JsonBody)
            .map_err(|e| bad_request(shared, &format!("Invalid input JSON: {e}")))
    }
}

/// Unknown paths.
pub(super) async fn not_found_route(State(shared): State<Arc<Shared>>) -> Response {
    error(
        &shared,
        404,
        "OBJECT_NOT_FOUND",
        "resource not found",
        Value::Null,
    )
}
