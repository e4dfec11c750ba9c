//! Salesforce's error answers (a JSON array of `{message, errorCode[, fields]}`) and the
//! extractors that answer with them: the sObject of a path and a JSON object body.

use super::super::state::Shared;
use super::super::util::{json, parse_json};
use super::super::vendor::path_segment;
use super::schema::{ObjectDef, object_def};
use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::response::Response;
use serde_json::{Map, Value, json};
use std::sync::Arc;

pub(super) fn err(status: u16, code: &str, message: &str) -> Response {
    json(status, json!([{"message": message, "errorCode": code}]))
}

pub(super) fn err_fields(status: u16, e: &SfError) -> Response {
    json(
        status,
        json!([{"message": e.message, "errorCode": e.code, "fields": e.fields}]),
    )
}

pub(super) fn not_found() -> Response {
    err(404, "NOT_FOUND", "The requested resource does not exist")
}

pub(super) async fn not_found_route() -> Response {
    not_found()
}

/// A record-level error: Salesforce `errorCode`/`statusCode`, message, fields.
#[derive(Debug, Clone)]
pub(super) struct SfError {
    pub(super) code: &'static str,
    pub(super) message: String,
    pub(super) fields: Vec<String>,
}

pub(super) fn sf_error(code: &'static str, message: impl Into<String>, fields: &[&str]) -> SfError {
    SfError {
        code,
        message: message.into(),
        fields: fields.iter().map(|s| s.to_string()).collect(),
    }
}

pub(super) fn body_object(body: &[u8]) -> Result<Map<String, Value>, Response> {
    match parse_json(body) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(_) => Err(err(
            400,
            "JSON_PARSER_ERROR",
            "Cannot deserialize instance of sObject from a non-object value",
        )),
        Err(e) => Err(err(
            400,
            "JSON_PARSER_ERROR",
            &format!("Unexpected character: {e}"),
        )),
    }
}

/// The sObject type of the route's `{sobject}` segment; an unsupported one is 404.
pub(super) struct SObject(pub &'static ObjectDef);

impl FromRequestParts<Arc<Shared>> for SObject {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, shared: &Arc<Shared>) -> Result<Self, Response> {
        let s = path_segment(parts, shared, "sobject")
            .await
            .unwrap_or_default();
        object_def(&s).map(SObject).ok_or_else(|| {
            err(
                404,
                "NOT_FOUND",
                &format!(
                    "The requested resource does not exist: sObject type '{s}' is not supported"
                ),
            )
        })
    }
}

/// A JSON object body; anything else is `JSON_PARSER_ERROR`.
pub(super) struct SfBody(pub Map<String, Value>);

impl FromRequest<Arc<Shared>> for SfBody {
    type Rejection = Response;

    async fn from_request(req: Request, shared: &Arc<Shared>) -> Result<Self, Response> {
        let body = Bytes::from_request(req, shared)
            .await
            .map_err(|e| err(400, "JSON_PARSER_ERROR", &e.to_string()))?;
        body_object(&body).map(SfBody)
    }
}
