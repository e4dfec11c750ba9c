//! Zendesk's credentials: Basic `{email}/token:{api_token}` or an OAuth bearer token.

use super::super::state::Shared;
use super::super::util::{basic, bearer, json};
use axum::http::HeaderMap;
use axum::response::Response;
use serde_json::json;

pub(super) fn authorize(shared: &Shared, headers: &HeaderMap) -> Result<(), Response> {
    let ok = match basic(headers) {
        Some((user, pass)) => {
            user == format!("{}/token", shared.cred("email")) && pass == shared.cred("api_token")
        }
        None => bearer(headers) == Some(shared.cred("oauth_access_token")),
    };
    if ok {
        Ok(())
    } else {
        Err(json(401, json!({"error": "Couldn't authenticate you"})))
    }
}
