//! Tenant endpoints of `serve`, each behind a per-tenant API key (`Authorization: Bearer
//! <key>`, created with `switchyard apikey create`): a tenant reaches only its own routes and
//! dead letters. 401 `unauthenticated` without a valid key, 403 `forbidden` for another
//! tenant's path.

use super::App;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::json;
use std::sync::Arc;

pub(super) fn error(status: StatusCode, code: &str) -> Response {
    (status, axum::Json(json!({"error": code}))).into_response()
}

/// The tenant a request's key acts for, or the answer that refuses it.
pub(super) async fn authorise(
    app: &App,
    headers: &HeaderMap,
    tenant: &str,
) -> Result<(), Response> {
    let key = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .filter(|k| !k.is_empty() && k.len() <= 128)
        .map(str::to_string);
    let Some(key) = key else {
        return Err(error(StatusCode::UNAUTHORIZED, "unauthenticated"));
    };
    let Some(store) = app.engine.store().cloned() else {
        return Err(error(StatusCode::SERVICE_UNAVAILABLE, "store_unavailable"));
    };
    match tokio::task::spawn_blocking(move || store.api_key_tenant(&key)).await {
        Ok(Ok(Some(t))) if t == tenant => Ok(()),
        Ok(Ok(Some(_))) => Err(error(StatusCode::FORBIDDEN, "forbidden")),
        Ok(Ok(None)) => Err(error(StatusCode::UNAUTHORIZED, "unauthenticated")),
        _ => Err(error(StatusCode::SERVICE_UNAVAILABLE, "store_unavailable")),
    }
}

/// `GET /v1/tenants/{tenant}/routes`: the tenant's webhook routes (several per source when
/// they fan out), sorted by source and route name.
pub(super) async fn routes(
    State(app): State<Arc<App>>,
    Path(tenant): Path<String>,
    headers: HeaderMap,
) -> Response {
    if let Err(r) = authorise(&app, &headers, &tenant).await {
        return r;
    }
    let mut mine: Vec<_> = app
        .sources
        .iter()
        .filter(|((t, _), _)| *t == tenant)
        .flat_map(|((t, s), routes)| routes.iter().map(move |served| (t, s, served)))
        .collect();
    mine.sort_by(|a, b| (a.1, &a.2.name).cmp(&(b.1, &b.2.name)));
    let routes: Vec<_> = mine
        .into_iter()
        .map(|(t, s, served)| {
            let r = served.current();
            json!({"route": served.name, "source": s,
                   "connector": r.route().mapping().connector,
                   "verification": r.verification(),
                   "path": format!("/v1/webhooks/{t}/{s}")})
        })
        .collect();
    axum::Json(json!({"tenant": tenant, "routes": routes})).into_response()
}

/// Dead letters one answer carries at most (oldest first; `more` says there are others).
const MAX_DEAD_LETTERS: u32 = 1000;

/// `GET /v1/tenants/{tenant}/dead-letters`: the tenant's pending dead letters (records that
/// could not be delivered, with their reasons; secrets were redacted when they were written),
/// oldest first, at most [`MAX_DEAD_LETTERS`].
pub(super) async fn dead_letters(
    State(app): State<Arc<App>>,
    Path(tenant): Path<String>,
    headers: HeaderMap,
) -> Response {
    if let Err(r) = authorise(&app, &headers, &tenant).await {
        return r;
    }
    let Some(store) = app.engine.store().cloned() else {
        return error(StatusCode::SERVICE_UNAVAILABLE, "store_unavailable");
    };
    let t = tenant.clone();
    // Bounded: one more than is answered says whether there are more.
    let read = move || store.tenant_dead_letters(&t, true, MAX_DEAD_LETTERS + 1);
    match tokio::task::spawn_blocking(read).await {
        Ok(Ok(mut mine)) => {
            let more = mine.len() > MAX_DEAD_LETTERS as usize;
            mine.truncate(MAX_DEAD_LETTERS as usize);
            axum::Json(json!({"tenant": tenant, "dead_letters": mine, "more": more}))
                .into_response()
        }
        _ => error(StatusCode::SERVICE_UNAVAILABLE, "store_unavailable"),
    }
}
