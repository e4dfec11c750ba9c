//! Stripe's error answers (`{"error": {type, code, message, param, doc_url}}`) and the
//! extractors that answer with them: the resource of a path and bracketed form parameters
//! from the body or the query string.

use super::super::state::Shared;
use super::super::util::json;
use super::super::vendor::path_segment;
use super::form::decode_form;
use super::resources::Res;
use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::Method;
use axum::http::request::Parts;
use axum::response::Response;
use serde_json::{Map, Value, json};
use std::sync::Arc;

pub(super) fn invalid(
    status: u16,
    code: Option<&str>,
    message: &str,
    param: Option<&str>,
) -> Response {
    let mut e = json!({"message": message, "type": "invalid_request_error"});
    if let Some(c) = code {
        e["code"] = json!(c);
        e["doc_url"] = json!(format!(
            "https://stripe.com/docs/error-codes/{}",
            c.replace('_', "-")
        ));
    }
    if let Some(p) = param {
        e["param"] = json!(p);
    }
    json(status, json!({"error": e}))
}

/// A referenced object (a parameter, not the URL's) that does not exist: 400
/// `resource_missing` naming the parameter, as Stripe answers.
pub(super) fn no_such(kind: &str, id: &str, param: &str) -> Response {
    invalid(
        400,
        Some("resource_missing"),
        &format!("No such {kind}: '{id}'"),
        Some(param),
    )
}

pub(super) fn missing(kind: &str, id: &str, param: &str) -> Response {
    invalid(
        404,
        Some("resource_missing"),
        &format!("No such {kind}: '{id}'"),
        Some(param),
    )
}

pub(super) async fn unknown_route(method: Method, uri: axum::http::Uri) -> Response {
    invalid(
        404,
        None,
        &format!(
            "Unrecognized request URL ({method}: {}). Please see https://stripe.com/docs or we can help at https://support.stripe.com/.",
            uri.path()
        ),
        None,
    )
}

/// The resource of the route's `{resource}` segment; an unknown one is Stripe's 404
/// "Unrecognized request URL".
pub(super) struct Resource(pub Res);

impl FromRequestParts<Arc<Shared>> for Resource {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, shared: &Arc<Shared>) -> Result<Self, Response> {
        let seg = path_segment(parts, shared, "resource")
            .await
            .unwrap_or_default();
        Res::from_path(&seg).map(Resource).ok_or_else(|| {
            invalid(
                404,
                None,
                &format!(
                    "Unrecognized request URL ({}: {}).",
                    parts.method,
                    parts.uri.path()
                ),
                None,
            )
        })
    }
}

/// Bracketed form parameters of the body (`metadata[k]=v`, `items[0][price]=p`).
pub(super) struct FormBody(pub Map<String, Value>);

impl FromRequest<Arc<Shared>> for FormBody {
    type Rejection = Response;

    async fn from_request(req: Request, shared: &Arc<Shared>) -> Result<Self, Response> {
        let body = Bytes::from_request(req, shared)
            .await
            .map_err(|e| invalid(400, None, &e.to_string(), None))?;
        decode_form(&body)
            .map(FormBody)
            .map_err(|m| invalid(400, None, &m, None))
    }
}

/// Bracketed form parameters of the query string (lists, search, `expand[]`).
pub(super) struct FormQuery(pub Map<String, Value>);

impl FromRequestParts<Arc<Shared>> for FormQuery {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut Parts,
        _shared: &Arc<Shared>,
    ) -> Result<Self, Response> {
        decode_form(parts.uri.query().unwrap_or_default().as_bytes())
            .map(FormQuery)
            .map_err(|m| invalid(400, None, &m, None))
    }
}
