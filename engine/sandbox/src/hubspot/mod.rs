//! HubSpot CRM v3 emulator: contacts, companies, deals, tickets and tasks (create, read,
//! update, archive, list with `after`, search with filterGroups, batch create/read/update/
//! upsert/archive), owners, associations (v3 on create and read, v4 default associate and
//! list), the default deal pipeline, the OAuth consent page, token endpoint
//! (`authorization_code` and `refresh_token` grants) and refresh-token revocation, static
//! bearer tokens, the 100 requests / 10 s rolling limit with `X-HubSpot-RateLimit-*`
//! headers and the 429 `RATE_LIMIT` body.
//!
//! Files by concern: `auth.rs` (credentials, OAuth), `errors.rs` (HubSpot's error body and
//! the extractors that answer with it), `store.rs` (objects, properties, the writes every
//! endpoint shares), `objects.rs` (single-object endpoints and list), `search.rs`,
//! `batch.rs`, `associations.rs` + `v4.rs` (associations), `owners.rs`, `pipelines.rs`.

mod associations;
mod auth;
mod batch;
mod errors;
mod oauth;
mod objects;
mod owners;
mod pipelines;
mod properties;
mod search;
mod store;
mod v4;

/// Loads fixture records (see [`crate::Emulator::seed`]): CRM objects, or `owners`.
pub(crate) fn seed(db: &mut Db, object: &str, input: &serde_json::Value) -> Result<(), String> {
    if object == owners::TABLE {
        owners::seed(db, input)
    } else {
        store::seed(db, object, input)
    }
}

use super::Credentials;
use super::ratelimit::Decision;
use super::state::{Db, Shared};
use super::util::{json, set_header};
use super::vendor::Emulated;
use axum::Router;
use axum::http::request::Parts;
use axum::http::{HeaderMap, Method};
use axum::response::Response;
use axum::routing::{get, post, put};
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;

const DAILY_LIMIT: u64 = 250_000;
const BATCH_MAX: usize = 100;
const SEARCH_LIMIT_MAX: usize = 200;
const SEARCH_RESULTS_MAX: usize = 10_000;

/// The HubSpot emulator.
pub(crate) struct Hubspot;

impl Emulated for Hubspot {
    /// HubSpot Free/Starter: 100 requests per rolling 10 seconds.
    fn default_limit(&self) -> (u32, Duration) {
        (100, Duration::from_secs(10))
    }

    fn credentials(&self, _base_url: &str) -> Credentials {
        Credentials::from_pairs(&[
            ("access_token", "pat-sandbox-hubspot-0001"),
            ("client_id", "sandbox-hubspot-client-id"),
            ("client_secret", "sandbox-hubspot-client-secret"),
            ("refresh_token", "sandbox-hubspot-refresh-token"),
        ])
    }

    /// The OAuth endpoints do not count against the API limit.
    fn exempt(&self, path: &str) -> bool {
        path.starts_with("/oauth/")
    }

    fn routes(&self) -> Router<Arc<Shared>> {
        Router::new()
            .route(
                "/crm/v3/objects/{object}",
                get(objects::list).post(objects::create),
            )
            .route("/crm/v3/objects/{object}/search", post(search::search))
            .route(
                "/crm/v3/objects/{object}/batch/{action}",
                post(batch::batch),
            )
            .route(
                "/crm/v3/properties/{object}",
                get(properties::list).post(properties::create),
            )
            .route(
                "/crm/v3/properties/{object}/{name}",
                get(properties::read).delete(properties::archive),
            )
            .route(
                "/crm/v3/objects/{object}/{id}",
                get(objects::read)
                    .patch(objects::update)
                    .delete(objects::archive),
            )
            .route("/crm/v3/owners", get(owners::list))
            .route("/crm/v3/owners/{id}", get(owners::read))
            .route(
                "/crm/v4/objects/{from}/{from_id}/associations/default/{to}/{to_id}",
                put(v4::put_default),
            )
            .route(
                "/crm/v4/objects/{from}/{id}/associations/{to}",
                get(v4::list),
            )
    }

    fn public_routes(&self) -> Router<Arc<Shared>> {
        Router::new()
            .route("/oauth/v1/token", post(auth::token))
            .route("/oauth/v3/token", post(auth::token))
            .route("/oauth/authorize", get(oauth::consent))
            .route("/oauth/authorize/decision", get(oauth::decision))
            .route(
                "/oauth/v1/refresh-tokens/{token}",
                axum::routing::delete(oauth::revoke),
            )
            .fallback(errors::not_found_route)
    }

    fn init(&self, db: &mut Db) {
        properties::init(db);
        owners::init(db);
    }

    /// CRM search (`POST /crm/v3/objects/{object}/search`) has its own limit at HubSpot.
    fn is_search(&self, method: &Method, path: &str) -> bool {
        method == Method::POST && path.starts_with("/crm/v3/objects/") && path.ends_with("/search")
    }

    /// HubSpot's answer when the search limit is hit: its 429 with the `SECONDLY` policy.
    fn search_throttled(&self, shared: &Shared, _d: &Decision) -> Response {
        json(
            429,
            json!({"status": "error", "message": "You have reached your secondly limit.",
                   "errorType": "RATE_LIMIT", "correlationId": shared.uuid(),
                   "policyName": "SECONDLY", "requestId": shared.uuid()}),
        )
    }

    fn authorize(&self, shared: &Shared, req: &Parts, _body: &[u8]) -> Result<(), Response> {
        auth::authorize(shared, &req.headers)
    }

    fn server_error(&self, shared: &Shared, status: u16) -> Response {
        json(
            status,
            json!({"status": "error", "message": "internal error", "correlationId": shared.uuid(),
                   "category": if status == 500 { "INTERNAL_ERROR" } else { "SERVICE_UNAVAILABLE" }}),
        )
    }

    fn throttled(&self, shared: &Shared, _d: &Decision) -> Response {
        json(
            429,
            json!({"status": "error", "message": "You have reached your ten_secondly_rolling limit.",
                   "errorType": "RATE_LIMIT", "correlationId": shared.uuid(),
                   "policyName": "TEN_SECONDLY_ROLLING", "requestId": shared.uuid()}),
        )
    }

    fn limit_headers(&self, _shared: &Shared, d: &Decision, h: &mut HeaderMap) {
        set_header(h, "x-hubspot-ratelimit-daily", &DAILY_LIMIT.to_string());
        set_header(
            h,
            "x-hubspot-ratelimit-daily-remaining",
            &DAILY_LIMIT.saturating_sub(d.used_total).to_string(),
        );
        set_header(
            h,
            "x-hubspot-ratelimit-interval-milliseconds",
            &d.window.as_millis().to_string(),
        );
        set_header(h, "x-hubspot-ratelimit-max", &d.max.to_string());
        set_header(h, "x-hubspot-ratelimit-remaining", &d.remaining.to_string());
    }
}
