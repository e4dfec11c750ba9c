//! HubSpot's credentials: static private-app bearer tokens and tokens from its OAuth token
//! endpoint (`refresh_token` grant), with the vendor's 401 bodies.

use super::super::state::Shared;
use super::super::util::{bearer, json};
use super::errors::error;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::Arc;

pub(super) fn authorize(shared: &Shared, headers: &HeaderMap) -> Result<(), Response> {
    let ok = bearer(headers)
        .is_some_and(|t| t == shared.cred("access_token") || shared.db().issued_tokens.contains(t));
    if ok {
        return Ok(());
    }
    if bearer(headers).is_some_and(|t| shared.db().expired_tokens.contains(t)) {
        return Err(error(
            shared,
            401,
            "EXPIRED_AUTHENTICATION",
            "The OAuth token used to make this call expired 1 second(s) ago.",
            Value::Null,
        ));
    }
    Err(error(
        shared,
        401,
        "INVALID_AUTHENTICATION",
        "Authentication credentials not found. This API supports OAuth 2.0 authentication and you can find more details at https://developers.hubspot.com/docs/methods/auth/oauth-overview",
        Value::Null,
    ))
}

pub(super) async fn token(State(shared): State<Arc<Shared>>, body: Bytes) -> Response {
    let form: HashMap<String, String> = serde_urlencoded::from_bytes(&body).unwrap_or_default();
    let fail = |status: &str, message: &str| {
        json(
            400,
            json!({"status": status, "message": message, "correlationId": shared.uuid()}),
        )
    };
    let field = |k: &str| form.get(k).map(String::as_str).unwrap_or_default();
    if field("grant_type") == "authorization_code" {
        return super::oauth::exchange(&shared, &form);
    }
    if field("grant_type") != "refresh_token" {
        return fail(
            "BAD_GRANT_TYPE",
            "grant_type must be authorization_code or refresh_token",
        );
    }
    if field("client_id") != shared.cred("client_id") {
        return fail("BAD_CLIENT_ID", "missing or unknown client_id");
    }
    if field("client_secret") != shared.cred("client_secret") {
        return fail("BAD_CLIENT_SECRET", "missing or invalid client_secret");
    }
    let refresh = field("refresh_token");
    let mut db = shared.db();
    if refresh != shared.cred("refresh_token") && !db.refresh_tokens.contains(refresh) {
        drop(db);
        return fail("BAD_REFRESH_TOKEN", "missing or unknown refresh token");
    }
    let access = format!("sandbox-hubspot-oauth-{}", db.token(shared.seed));
    db.issued_tokens.insert(access.clone());
    drop(db);
    json(
        200,
        json!({"token_type": "bearer", "refresh_token": refresh, "access_token": access,
               "expires_in": 1800}),
    )
}
