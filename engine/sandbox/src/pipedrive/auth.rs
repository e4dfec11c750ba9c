//! Pipedrive's credentials: the API token as `x-api-token` header or `api_token` query
//! parameter.

use super::super::state::Shared;
use super::super::util::json;
use super::envelope::INFO;
use axum::http::request::Parts;
use axum::response::Response;
use serde_json::json;

/// The token from the header, else from the query string.
pub(super) fn authorize(shared: &Shared, req: &Parts) -> Result<(), Response> {
    let token = req
        .headers
        .get("x-api-token")
        .and_then(|v| v.to_str().ok())
        .map(String::from)
        .or_else(|| {
            url::form_urlencoded::parse(req.uri.query().unwrap_or_default().as_bytes())
                .find(|(k, _)| k == "api_token")
                .map(|(_, v)| v.into_owned())
        });
    if token.as_deref() == Some(shared.cred("api_token")) {
        return Ok(());
    }
    Err(json(
        401,
        json!({"success": false, "error": "unauthorized access", "errorCode": 401,
               "error_info": INFO, "data": null, "additional_data": null}),
    ))
}
