//! OAuth onboarding (seed 004): a tenant connects its account at a vendor whose connector spec
//! declares `[oauth]`.
//!
//! - `GET /v1/oauth/{connector}/authorize?tenant=T` (the tenant's API key) → 302 to the
//!   vendor's consent page with a `state` that is signed, expires in 10 minutes and works once.
//! - `GET /v1/oauth/{connector}/callback?code&state` (the vendor sends the browser here) → the
//!   state is checked and used up, the code exchanged at the vendor's token endpoint, and the
//!   tokens stored sealed for the tenant; the tenant's routes to that connector (with
//!   `auth_flow = "oauth"`) then call the API with them and refresh them when they expire.
//! - `GET /v1/tenants/{t}/connections/{connector}` (API key): the connection, 404
//!   `not_connected` when there is none.
//! - `DELETE /v1/tenants/{t}/connections/{connector}` (API key): revoke at the vendor and
//!   forget (404 `not_connected` when there is nothing to remove).
//!
//! A callback whose state does not hold answers 403 with a stable code (`state_invalid`,
//! `state_expired`, `state_used_or_unknown`; a denied consent: `access_denied`), 400
//! `code_missing`, and 502 `exchange_failed` when the vendor refuses the code (its reason,
//! secrets redacted, in `detail`).

use super::App;
use super::tenant::{authorise, error};
use axum::extract::{ConnectInfo, Path, Query, State};
use axum::http::{HeaderMap, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use switchyard::engine::WebhookRoute;

/// How long a `state` can come back.
const STATE_TTL_SECS: i64 = 600;

/// The tenant's route to `connector` whose spec declares `[oauth]`.
fn route_for(app: &App, tenant: &str, connector: &str) -> Option<Arc<WebhookRoute>> {
    app.sources
        .iter()
        .filter(|((t, _), _)| t == tenant)
        .flat_map(|(_, served)| served.iter().map(|s| s.current()))
        .find(|r| r.route().mapping().connector == connector)
}

/// The tenant's route to `connector` with `[oauth]`, or the stable code of a 404.
#[allow(clippy::result_large_err)] // an axum answer, built once on a cold path
fn with_oauth(app: &App, tenant: &str, connector: &str) -> Result<Arc<WebhookRoute>, Response> {
    oauth_route(app, tenant, connector).map_err(|code| error(StatusCode::NOT_FOUND, code))
}

fn oauth_route(
    app: &App,
    tenant: &str,
    connector: &str,
) -> Result<Arc<WebhookRoute>, &'static str> {
    let Some(route) = route_for(app, tenant, connector) else {
        return Err("no_route");
    };
    if route.route().connector().0.oauth.is_none() {
        return Err("oauth_not_supported");
    }
    Ok(route)
}

/// An error's text with every secret of the route's session (tokens included) removed.
fn redacted(route: &WebhookRoute, e: &impl std::fmt::Display) -> String {
    route
        .route()
        .session()
        .redactor()
        .redact(&e.to_string())
        .into_owned()
}

/// 502: the vendor refused what onboarding asked of it.
fn bad_gateway(body: serde_json::Value) -> Response {
    (StatusCode::BAD_GATEWAY, axum::Json(body)).into_response()
}

/// The route of a tenant's request about `connector`: the tenant's key, then its OAuth route.
#[allow(clippy::result_large_err)] // an axum answer, built once on a cold path
async fn keyed_route(
    app: &App,
    headers: &HeaderMap,
    tenant: &str,
    connector: &str,
) -> Result<Arc<WebhookRoute>, Response> {
    authorise(app, headers, tenant).await?;
    with_oauth(app, tenant, connector)
}

/// `GET /v1/oauth/{connector}/authorize?tenant=T`.
pub(super) async fn authorize(
    State(app): State<Arc<App>>,
    Path(connector): Path<String>,
    Query(q): Query<HashMap<String, String>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> Response {
    // The key first: a request without one is told 401 whatever else is wrong with it.
    let tenant = q.get("tenant").cloned().unwrap_or_default();
    let route = match keyed_route(&app, &headers, &tenant, &connector).await {
        Ok(r) => r,
        Err(r) => return r,
    };
    let Some(store) = app.engine.store().cloned() else {
        return error(StatusCode::SERVICE_UNAVAILABLE, "store_unavailable");
    };
    if !store.seals_tokens() {
        tracing::error!(
            tenant,
            connector,
            "OAuth onboarding refused: the store has no key to seal tokens (set SWITCHYARD_STORE_KEY)"
        );
        return error(StatusCode::SERVICE_UNAVAILABLE, "token_store_locked");
    }
    let callback_path = format!("/v1/oauth/{connector}/callback");
    let Ok(callback_uri) = callback_path.parse::<Uri>() else {
        return error(StatusCode::NOT_FOUND, "no_route");
    };
    let redirect_uri = app.origin.url(peer.ip(), &headers, &callback_uri);
    let (t, c, r) = (tenant.clone(), connector.clone(), redirect_uri.clone());
    let state = match tokio::task::spawn_blocking(move || {
        store.oauth_state_issue(&t, &c, &r, STATE_TTL_SECS)
    })
    .await
    {
        Ok(Ok(s)) => s,
        _ => return error(StatusCode::SERVICE_UNAVAILABLE, "store_unavailable"),
    };
    match route
        .route()
        .session()
        .oauth_authorize_url(&redirect_uri, &state)
    {
        Ok(url) => {
            tracing::info!(tenant, connector, "OAuth onboarding started");
            (
                StatusCode::FOUND,
                [(header::LOCATION, url)],
                axum::Json(json!({"redirect": "vendor consent page"})),
            )
                .into_response()
        }
        Err(e) => {
            let detail = redacted(&route, &e);
            tracing::error!(tenant, connector, error = %detail, "OAuth authorize URL not built");
            error(StatusCode::INTERNAL_SERVER_ERROR, "oauth_misconfigured")
        }
    }
}

/// `GET /v1/oauth/{connector}/callback?code&state`.
pub(super) async fn callback(
    State(app): State<Arc<App>>,
    Path(connector): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let Some(state) = q.get("state").filter(|s| !s.is_empty() && s.len() <= 256) else {
        return error(StatusCode::FORBIDDEN, "state_invalid");
    };
    let Some(store) = app.engine.store().cloned() else {
        return error(StatusCode::SERVICE_UNAVAILABLE, "store_unavailable");
    };
    let (s, c) = (state.clone(), connector.clone());
    let consumed =
        match tokio::task::spawn_blocking(move || store.oauth_state_consume(&s, &c)).await {
            Ok(Ok(r)) => r,
            _ => return error(StatusCode::SERVICE_UNAVAILABLE, "store_unavailable"),
        };
    let granted = match consumed {
        Ok(g) => g,
        Err(refusal) => {
            tracing::warn!(connector, code = refusal.code(), "OAuth callback refused");
            return error(StatusCode::FORBIDDEN, refusal.code());
        }
    };
    let tenant = granted.tenant;
    if q.contains_key("error") {
        tracing::info!(tenant, connector, "OAuth consent denied by the user");
        return error(StatusCode::FORBIDDEN, "access_denied");
    }
    let Some(code) = q.get("code").filter(|c| !c.is_empty() && c.len() <= 2048) else {
        return error(StatusCode::BAD_REQUEST, "code_missing");
    };
    let route = match with_oauth(&app, &tenant, &connector) {
        Ok(r) => r,
        Err(r) => return r,
    };
    match route
        .route()
        .session()
        .oauth_exchange(code, &granted.redirect_uri)
        .await
    {
        Ok(()) => {
            tracing::info!(tenant, connector, "OAuth connection stored (sealed)");
            axum::Json(json!({"connected": true, "tenant": tenant, "connector": connector}))
                .into_response()
        }
        Err(e) => {
            let detail = redacted(&route, &e);
            tracing::warn!(tenant, connector, error = %detail, "OAuth code exchange failed");
            bad_gateway(json!({"error": "exchange_failed", "detail": detail}))
        }
    }
}

/// `GET /v1/tenants/{tenant}/connections/{connector}`.
pub(super) async fn status(
    State(app): State<Arc<App>>,
    Path((tenant, connector)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    let route = match keyed_route(&app, &headers, &tenant, &connector).await {
        Ok(r) => r,
        Err(r) => return r,
    };
    if !route.route().session().oauth_connected() {
        return error(StatusCode::NOT_FOUND, "not_connected");
    }
    axum::Json(json!({"tenant": tenant, "connector": connector, "connected": true})).into_response()
}

/// `DELETE /v1/tenants/{tenant}/connections/{connector}`.
pub(super) async fn disconnect(
    State(app): State<Arc<App>>,
    Path((tenant, connector)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    let route = match keyed_route(&app, &headers, &tenant, &connector).await {
        Ok(r) => r,
        Err(r) => return r,
    };
    if !route.route().session().oauth_connected() {
        return error(StatusCode::NOT_FOUND, "not_connected");
    }
    match route.route().session().oauth_disconnect().await {
        Ok(d) => {
            tracing::info!(
                tenant,
                connector,
                revoked = d.revoked,
                "OAuth connection removed"
            );
            axum::Json(json!({"tenant": tenant, "connector": connector,
                              "had_tokens": d.had_tokens, "revoked": d.revoked}))
            .into_response()
        }
        Err(e) => {
            let detail = redacted(&route, &e);
            tracing::warn!(tenant, connector, error = %detail, "OAuth revocation refused; tokens forgotten");
            bad_gateway(json!({"error": "revocation_failed", "detail": detail,
                               "had_tokens": true, "revoked": false}))
        }
    }
}
