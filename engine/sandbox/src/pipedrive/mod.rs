//! Pipedrive emulator: v2 persons and deals (cursor paging, search), v1 leads (start/limit
//! paging, search) and activities, the `{success, data, additional_data}` envelope,
//! `x-api-token` or `api_token` auth, and the per-2-seconds burst limit with `x-ratelimit-*`
//! headers.
//!
//! Custom fields are addressed by 40-character hash keys, as in Pipedrive: the v1 field
//! registries (`/personFields`, `/dealFields`, `/organizationFields`: list and add) hold the
//! standard fields and the custom fields added through them, and v2 persons and deals keep
//! custom values under those keys in `custom_fields`, ignoring keys the registry does not know.
//!
//! Files by concern: `auth.rs`, `envelope.rs` (envelope, errors, paging helpers, body
//! extractor), `v2.rs` (persons and deals), `fields.rs` (field registries), `leads.rs`,
//! `activities.rs`.

mod activities;
mod auth;
mod envelope;
mod fields;
mod leads;
mod v2;

use super::Credentials;
use super::ratelimit::Decision;
use super::state::Shared;
use super::util::{json, set_header};
use super::vendor::Emulated;
use axum::Router;
use axum::http::HeaderMap;
use axum::http::request::Parts;
use axum::response::Response;
use axum::routing::get;
use envelope::{INFO, failure};
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;

const DAILY_REQUESTS: u64 = 10_000;

/// The Pipedrive emulator.
pub(crate) struct Pipedrive;

async fn not_found_route() -> Response {
    failure(404, "Unknown method .")
}

impl Emulated for Pipedrive {
    /// Professional plan (legacy request-based model): 80 requests per 2 seconds per token.
    fn default_limit(&self) -> (u32, Duration) {
        (80, Duration::from_secs(2))
    }

    fn credentials(&self, _base_url: &str) -> Credentials {
        Credentials::from_pairs(&[("api_token", "sandbox0pipedrive0api0token0000000000001")])
    }

    /// v2 under `/api/v2`; v1 under `/v1` (api.pipedrive.com form) and `/api/v1` (company
    /// domain form).
    fn routes(&self) -> Router<Arc<Shared>> {
        let v2 = Router::new()
            .route("/{object}", get(v2::list).post(v2::create))
            .route("/{object}/search", get(v2::search))
            .route(
                "/{object}/{id}",
                get(v2::read).patch(v2::update).delete(v2::delete),
            );
        let v1 = Router::new()
            .route("/leads", get(leads::list).post(leads::create))
            .route("/leads/search", get(leads::search))
            .route(
                "/activities",
                get(activities::list).post(activities::create),
            )
            .route("/activities/{id}", get(activities::read))
            .route("/{fields}", get(fields::list).post(fields::create))
            .route(
                "/leads/{id}",
                get(leads::read).patch(leads::update).delete(leads::delete),
            );
        Router::new()
            .nest("/api/v2", v2)
            .nest("/v1", v1.clone())
            .nest("/api/v1", v1)
    }

    fn public_routes(&self) -> Router<Arc<Shared>> {
        Router::new().fallback(not_found_route)
    }

    fn authorize(&self, shared: &Shared, req: &Parts, _body: &[u8]) -> Result<(), Response> {
        auth::authorize(shared, req)
    }

    fn server_error(&self, _shared: &Shared, status: u16) -> Response {
        failure(status, "Internal server error")
    }

    fn throttled(&self, _shared: &Shared, d: &Decision) -> Response {
        let mut r = json(
            429,
            json!({"success": false, "error": "Request over limit", "errorCode": 429,
                   "error_info": INFO, "data": null, "additional_data": null}),
        );
        set_header(
            r.headers_mut(),
            "retry-after",
            &d.retry_after.as_secs().max(1).to_string(),
        );
        r
    }

    fn limit_headers(&self, _shared: &Shared, d: &Decision, h: &mut HeaderMap) {
        set_header(h, "x-ratelimit-limit", &d.max.to_string());
        set_header(h, "x-ratelimit-remaining", &d.remaining.to_string());
        let reset = if d.allowed {
            d.window.as_secs().max(1)
        } else {
            d.retry_after.as_secs().max(1)
        };
        set_header(h, "x-ratelimit-reset", &reset.to_string());
        set_header(
            h,
            "x-daily-requests-left",
            &DAILY_REQUESTS.saturating_sub(d.used_total).to_string(),
        );
    }
}
