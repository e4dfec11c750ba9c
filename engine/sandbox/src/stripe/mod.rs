//! Stripe emulator: customers, payment intents and subscriptions with form-encoded (bracketed)
//! bodies, `starting_after`/`ending_before`/`has_more` lists, the search query language,
//! `Idempotency-Key` replay, `sk_test_…` auth, and the 429 `rate_limit` error.
//!
//! Files by concern: `auth.rs`, `errors.rs` (error bodies, extractors), `form.rs` (bracketed
//! forms), `resources.rs` (what each resource accepts and how it is built),
//! `idempotency.rs`, `objects.rs` (create, retrieve, update, delete, list), `search.rs`.

mod auth;
mod errors;
mod form;
mod idempotency;
mod objects;
mod resources;
mod search;

pub(crate) use resources::seed;

use super::Credentials;
use super::ratelimit::Decision;
use super::state::Shared;
use super::util::{json, set_header};
use super::vendor::Emulated;
use axum::Router;
use axum::http::request::Parts;
use axum::http::{HeaderMap, Method};
use axum::response::Response;
use axum::routing::get;
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;

/// The Stripe emulator.
pub(crate) struct Stripe;

impl Emulated for Stripe {
    /// Test mode: 25 requests per second.
    fn default_limit(&self) -> (u32, Duration) {
        (25, Duration::from_secs(1))
    }

    fn credentials(&self, _base_url: &str) -> Credentials {
        Credentials::from_pairs(&[("secret_key", "sk_test_sandbox51SwitchyardEmulatorKey")])
    }

    fn routes(&self) -> Router<Arc<Shared>> {
        Router::new()
            .route("/v1/{resource}", get(objects::list).post(objects::create))
            .route("/v1/{resource}/search", get(search::search))
            .route(
                "/v1/{resource}/{id}",
                get(objects::retrieve)
                    .post(objects::update)
                    .delete(objects::remove),
            )
    }

    fn public_routes(&self) -> Router<Arc<Shared>> {
        Router::new().fallback(errors::unknown_route)
    }

    /// The search API (`GET /v1/{resource}/search`) has its own limit at Stripe.
    fn is_search(&self, method: &Method, path: &str) -> bool {
        method == Method::GET && path.starts_with("/v1/") && path.ends_with("/search")
    }

    fn authorize(&self, shared: &Shared, req: &Parts, _body: &[u8]) -> Result<(), Response> {
        auth::authorize(shared, &req.headers)
    }

    fn server_error(&self, _shared: &Shared, status: u16) -> Response {
        let mut r = json(
            status,
            json!({"error": {"message": "An unknown error occurred", "type": "api_error"}}),
        );
        set_header(r.headers_mut(), "stripe-should-retry", "true");
        r
    }

    fn throttled(&self, _shared: &Shared, _d: &Decision) -> Response {
        json(
            429,
            json!({"error": {"code": "rate_limit",
                "doc_url": "https://stripe.com/docs/error-codes/rate-limit",
                "message": "Too many requests hit the API too quickly. We recommend an exponential backoff of your requests.",
                "type": "invalid_request_error"}}),
        )
    }

    /// Stripe sends no rate-limit headers; every response carries a `Request-Id`.
    fn limit_headers(&self, shared: &Shared, _d: &Decision, h: &mut HeaderMap) {
        if !h.contains_key("request-id") {
            let id = format!("req_{}", &shared.uuid().replace('-', "")[..14]);
            set_header(h, "request-id", &id);
        }
    }
}
