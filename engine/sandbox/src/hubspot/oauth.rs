//! HubSpot's OAuth authorization-code grant, as an app's user meets it: the consent page
//! (`GET /oauth/authorize?client_id&redirect_uri&scope&state`, an HTML page whose "Connect app"
//! link approves and "Cancel" denies), the redirect back with `code` and `state` (or
//! `error=access_denied`), the code's exchange at `/oauth/v1/token`
//! (`grant_type=authorization_code`, single-use codes valid for 10 minutes, `redirect_uri` as
//! in the authorization request) and revocation of a refresh token
//! (`DELETE /oauth/v1/refresh-tokens/{token}`, 204; unknown: 404).

use super::super::state::Shared;
use super::super::util::json;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use serde_json::json;
use std::collections::HashMap;
use std::sync::Arc;

/// How long a code can be exchanged.
const CODE_TTL_SECS: i64 = 600;

fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

fn bad_request(message: &str) -> Response {
    (
        StatusCode::BAD_REQUEST,
        Html(format!(
            "<!doctype html><title>HubSpot</title><h1>Something went wrong</h1><p>{}</p>",
            html_escape(message)
        )),
    )
        .into_response()
}

/// The redirect URI must be an absolute http(s) URL.
fn redirect_ok(uri: &str) -> bool {
    url::Url::parse(uri).is_ok_and(|u| matches!(u.scheme(), "http" | "https"))
}

/// `GET /oauth/authorize`: the consent page.
pub(super) async fn consent(
    State(shared): State<Arc<Shared>>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let get = |k: &str| q.get(k).map(String::as_str).unwrap_or_default();
    if get("client_id") != shared.cred("client_id") {
        return bad_request("Authorization failed because the client_id is missing or unknown.");
    }
    if !redirect_ok(get("redirect_uri")) {
        return bad_request("Authorization failed because the redirect_uri is missing or invalid.");
    }
    let pass = |decision: &str| {
        let mut u = url::Url::parse("http://consent/oauth/authorize/decision")
            .unwrap_or_else(|_| unreachable!("a fixed URL parses"));
        u.query_pairs_mut()
            .append_pair("decision", decision)
            .append_pair("client_id", get("client_id"))
            .append_pair("redirect_uri", get("redirect_uri"))
            .append_pair("scope", get("scope"))
            .append_pair("state", get("state"));
        format!(
            "/oauth/authorize/decision?{}",
            u.query().unwrap_or_default()
        )
    };
    Html(format!(
        "<!doctype html><html><head><title>Connect app | HubSpot</title></head><body>\
         <h1>Connect the app to your HubSpot account</h1>\
         <p>Portal 1234567 · the app asks for: <code>{}</code></p>\
         <p><a id=\"approve\" href=\"{}\">Connect app</a> <a id=\"deny\" href=\"{}\">Cancel</a></p>\
         </body></html>",
        html_escape(get("scope")),
        html_escape(&pass("approve")),
        html_escape(&pass("deny")),
    ))
    .into_response()
}

/// `GET /oauth/authorize/decision`: the user's choice; back to the app.
pub(super) async fn decision(
    State(shared): State<Arc<Shared>>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let get = |k: &str| q.get(k).map(String::as_str).unwrap_or_default();
    let redirect = get("redirect_uri");
    if get("client_id") != shared.cred("client_id") || !redirect_ok(redirect) {
        return bad_request("Authorization failed.");
    }
    let Ok(mut back) = url::Url::parse(redirect) else {
        return bad_request("Authorization failed because the redirect_uri is invalid.");
    };
    if get("decision") == "approve" {
        let mut db = shared.db();
        let code = db.token(shared.seed);
        db.oauth_codes.insert(
            code.clone(),
            json!({"client_id": get("client_id"), "redirect_uri": redirect,
                   "expires": chrono::Utc::now().timestamp() + CODE_TTL_SECS}),
        );
        drop(db);
        back.query_pairs_mut()
            .append_pair("code", &code)
            .append_pair("state", get("state"));
    } else {
        back.query_pairs_mut()
            .append_pair("error", "access_denied")
            .append_pair("error_description", "The user denied access")
            .append_pair("state", get("state"));
    }
    (StatusCode::FOUND, [(header::LOCATION, back.to_string())]).into_response()
}

/// `grant_type=authorization_code` at the token endpoint: tokens for a code, once.
pub(super) fn exchange(shared: &Shared, form: &HashMap<String, String>) -> Response {
    let field = |k: &str| form.get(k).map(String::as_str).unwrap_or_default();
    let fail = |status: &str, message: &str| {
        json(
            400,
            json!({"status": status, "message": message, "correlationId": shared.uuid()}),
        )
    };
    if field("client_id") != shared.cred("client_id") {
        return fail("BAD_CLIENT_ID", "missing or unknown client_id");
    }
    if field("client_secret") != shared.cred("client_secret") {
        return fail("BAD_CLIENT_SECRET", "missing or invalid client_secret");
    }
    let mut db = shared.db();
    // A code is gone once presented, whatever the outcome (as HubSpot: single use).
    let Some(grant) = db.oauth_codes.remove(field("code")) else {
        drop(db);
        return fail("BAD_AUTH_CODE", "missing or unknown auth code");
    };
    if grant["expires"].as_i64().unwrap_or_default() < chrono::Utc::now().timestamp() {
        drop(db);
        return fail("BAD_AUTH_CODE", "auth code expired");
    }
    if grant["redirect_uri"].as_str() != Some(field("redirect_uri")) {
        drop(db);
        return fail(
            "BAD_REDIRECT_URI",
            "redirect_uri does not match the one the code was issued for",
        );
    }
    let access = format!("sandbox-hubspot-oauth-{}", db.token(shared.seed));
    let refresh = format!("sandbox-hubspot-refresh-{}", db.token(shared.seed));
    db.issued_tokens.insert(access.clone());
    db.refresh_tokens.insert(refresh.clone());
    drop(db);
    json(
        200,
        json!({"token_type": "bearer", "refresh_token": refresh, "access_token": access,
               "expires_in": 1800}),
    )
}

/// `DELETE /oauth/v1/refresh-tokens/{token}`: revoke a refresh token.
pub(super) async fn revoke(
    State(shared): State<Arc<Shared>>,
    Path(token): Path<String>,
) -> Response {
    if shared.db().refresh_tokens.remove(&token) {
        StatusCode::NO_CONTENT.into_response()
    } else {
        json(
            404,
            json!({"status": "error", "message": "refresh token not found",
                   "correlationId": shared.uuid(), "category": "OBJECT_NOT_FOUND"}),
        )
    }
}
