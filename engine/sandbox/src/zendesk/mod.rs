//! Zendesk Support emulator: tickets and users (create, read, update, delete, cursor and
//! offset paging), `users/search?query=email:…`, `users/create_or_update`, async
//! `create_many` with job statuses, the Search API, Basic `email/token:api_token` auth, and
//! the per-minute limit with `X-Rate-Limit` headers and 429 + `Retry-After`.
//!
//! Files by concern: `auth.rs`, `errors.rs` (error bodies, extractors), `records.rs` (the
//! collection endpoints), `users.rs`, `tickets.rs`, `comments.rs` (every comment of a
//! ticket), `paging.rs`, `search.rs`, `bulk.rs`, `incremental.rs` (the cursor export).

mod auth;
mod bulk;
mod comments;
mod errors;
mod incremental;
mod paging;
mod records;
mod search;
mod tickets;
mod users;

use super::Credentials;
use super::ratelimit::Decision;
use super::state::Shared;
use super::util::{json, set_header};
use super::vendor::Emulated;
use axum::Router;
use axum::http::HeaderMap;
use axum::http::request::Parts;
use axum::response::Response;
use axum::routing::{get, post};
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;

const BULK_MAX: usize = 100;

/// The Zendesk emulator.
pub(crate) struct Zendesk;

impl Emulated for Zendesk {
    /// Enterprise plan: 700 requests per minute.
    fn default_limit(&self) -> (u32, Duration) {
        (700, Duration::from_secs(60))
    }

    fn credentials(&self, _base_url: &str) -> Credentials {
        Credentials::from_pairs(&[
            ("email", "agent@switchyard.sandbox"),
            ("api_token", "sandboxZendeskApiToken0000000000000000001"),
            ("oauth_access_token", "sandbox-zendesk-oauth-token"),
        ])
    }

    /// Paths under `/api/v2/`; each also answers with a `.json` suffix.
    fn routes(&self) -> Router<Arc<Shared>> {
        let mut r = Router::new()
            .route(
                "/api/v2/{collection}",
                get(records::list).post(records::create),
            )
            .route("/api/v2/job_statuses/{id}", get(bulk::job_status))
            .route("/api/v2/tickets/{id}/comments", get(comments::list))
            .route("/api/v2/tickets/{id}/comments.json", get(comments::list))
            .route(
                "/api/v2/incremental/{kind}/cursor",
                get(incremental::export),
            )
            .route(
                "/api/v2/incremental/{kind}/cursor.json",
                get(incremental::export),
            )
            .route(
                "/api/v2/{collection}/{id}",
                get(records::read)
                    .put(records::update)
                    .delete(records::remove),
            );
        for suffix in ["", ".json"] {
            r = r
                .route(
                    &format!("/api/v2/tickets/create_many{suffix}"),
                    post(bulk::create_many_tickets),
                )
                .route(
                    &format!("/api/v2/users/create_many{suffix}"),
                    post(bulk::create_many_users),
                )
                .route(
                    &format!("/api/v2/users/create_or_update{suffix}"),
                    post(users::create_or_update),
                )
                .route(
                    &format!("/api/v2/users/create_or_update_many{suffix}"),
                    post(bulk::create_or_update_many),
                )
                .route(&format!("/api/v2/users/me{suffix}"), get(users::me))
                .route(&format!("/api/v2/search{suffix}"), get(search::search))
                .route(
                    &format!("/api/v2/users/search{suffix}"),
                    get(users::search_users),
                );
        }
        r
    }

    fn public_routes(&self) -> Router<Arc<Shared>> {
        Router::new().fallback(errors::not_found_route)
    }

    fn authorize(&self, shared: &Shared, req: &Parts, _body: &[u8]) -> Result<(), Response> {
        auth::authorize(shared, &req.headers)
    }

    fn server_error(&self, _shared: &Shared, status: u16) -> Response {
        json(
            status,
            json!({"error": if status == 503 { "ServiceUnavailable" } else { "InternalError" },
                   "description": "Something went wrong, please try again"}),
        )
    }

    fn throttled(&self, _shared: &Shared, d: &Decision) -> Response {
        let mut r = json(
            429,
            json!({"error": "APIRateLimitExceeded",
                   "description": format!("Number of allowed API requests per minute exceeded ({})", d.max)}),
        );
        set_header(
            r.headers_mut(),
            "retry-after",
            &d.retry_after.as_secs().max(1).to_string(),
        );
        r
    }

    fn limit_headers(&self, _shared: &Shared, d: &Decision, h: &mut HeaderMap) {
        set_header(h, "x-rate-limit", &d.max.to_string());
        set_header(h, "x-rate-limit-remaining", &d.remaining.to_string());
        set_header(h, "ratelimit-limit", &d.max.to_string());
        set_header(h, "ratelimit-remaining", &d.remaining.to_string());
        set_header(
            h,
            "ratelimit-reset",
            &d.retry_after.as_secs().max(1).to_string(),
        );
    }
}
