//! Salesforce REST emulator: the OAuth token endpoint (password, refresh_token and JWT bearer
//! grants, RS256 checked against a test key pair), sObjects create/read/update/delete/upsert for
//! Lead, Contact, Account, Opportunity, Task and Case, a SOQL subset with `nextRecordsUrl`
//! paging, sObject collections (≤ 200, per-record results in input order), the daily API
//! quota with `Sforce-Limit-Info` and the 403 `REQUEST_LIMIT_EXCEEDED` answer.
//!
//! Files by concern: `auth.rs` (token endpoint, JWT, bearer check), `errors.rs` (error arrays
//! and extractors), `schema.rs` (the sObjects and their fields), `store.rs` (writes, ids,
//! rendering), `records.rs` (single-record endpoints), `soql.rs`, `collections.rs`.

mod auth;
mod collections;
mod errors;
mod records;
mod schema;
mod soql;
mod store;

pub use auth::JWT_TEST_PRIVATE_KEY_PEM;

use super::Credentials;
use super::ratelimit::Decision;
use super::state::Shared;
use super::util::{json, set_header};
use super::vendor::Emulated;
use axum::Router;
use axum::http::HeaderMap;
use axum::http::request::Parts;
use axum::response::Response;
use axum::routing::{get, patch, post};
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;

const COLLECTION_MAX: usize = 200;
const DEFAULT_BATCH: usize = 2000;
const ORG_ID: &str = "00D000000000001AAA";
const USER_ID: &str = "005000000000001AAA";

/// The Salesforce emulator.
pub(crate) struct Salesforce;

impl Emulated for Salesforce {
    /// Developer Edition: 15,000 API requests per rolling 24 hours.
    fn default_limit(&self) -> (u32, Duration) {
        (15_000, Duration::from_secs(24 * 3600))
    }

    fn credentials(&self, base_url: &str) -> Credentials {
        Credentials::from_pairs(&[
            ("client_id", "3MVG9sandbox.switchyard.consumer.key"),
            ("client_secret", "sandbox-salesforce-consumer-secret"),
            ("username", "integration@switchyard.sandbox"),
            ("password", "sandbox-password"),
            ("security_token", "SANDBOXSECURITYTOKEN"),
            ("refresh_token", "5Aep861sandbox.salesforce.refresh.token"),
            (
                "access_token",
                "00D000000000001!sandbox.static.access.token",
            ),
            ("private_key_pem", JWT_TEST_PRIVATE_KEY_PEM),
            ("login_url", base_url),
        ])
    }

    /// The token endpoint and the version list do not count against the API quota.
    fn exempt(&self, path: &str) -> bool {
        path.starts_with("/services/oauth2/") || path.trim_end_matches('/') == "/services/data"
    }

    /// Salesforce serves `…/sobjects/Contact/` as `…/sobjects/Contact` (simple-salesforce
    /// sends the trailing slash on creates, queries and limits).
    fn same_path(&self, path: &str) -> Option<String> {
        (path.len() > 1 && path.ends_with('/')).then(|| path.trim_end_matches('/').to_string())
    }

    fn routes(&self) -> Router<Arc<Shared>> {
        Router::new()
            .route("/services/data/{version}/limits", get(records::limits))
            .route(
                "/services/data/{version}/sobjects/{sobject}",
                post(records::create),
            )
            .route(
                "/services/data/{version}/sobjects/{sobject}/describe",
                get(records::describe),
            )
            .route(
                "/services/data/{version}/sobjects/{sobject}/{id}",
                get(records::read)
                    .patch(records::update)
                    .delete(records::remove),
            )
            .route(
                "/services/data/{version}/sobjects/{sobject}/{field}/{value}",
                get(records::read_by_external).patch(records::upsert),
            )
            .route("/services/data/{version}/query", get(soql::query))
            .route("/services/data/{version}/queryAll", get(soql::query))
            .route(
                "/services/data/{version}/query/{locator}",
                get(soql::query_more),
            )
            .route(
                "/services/data/{version}/queryAll/{locator}",
                get(soql::query_more),
            )
            .route(
                "/services/data/{version}/composite/sobjects",
                post(collections::create)
                    .patch(collections::update)
                    .delete(collections::delete),
            )
            .route(
                "/services/data/{version}/composite/sobjects/{sobject}",
                get(collections::retrieve).post(collections::retrieve_post),
            )
            .route(
                "/services/data/{version}/composite/sobjects/{sobject}/{field}",
                patch(collections::upsert),
            )
    }

    fn public_routes(&self) -> Router<Arc<Shared>> {
        Router::new()
            .route("/services/oauth2/token", post(auth::token))
            .route("/services/data", get(records::versions))
            .route("/services/data/", get(records::versions))
            .fallback(errors::not_found_route)
    }

    fn authorize(&self, shared: &Shared, req: &Parts, _body: &[u8]) -> Result<(), Response> {
        auth::authorize(shared, req)
    }

    fn server_error(&self, shared: &Shared, status: u16) -> Response {
        let body = if status == 503 {
            json!([{"message": "Server unavailable", "errorCode": "SERVER_UNAVAILABLE"}])
        } else {
            json!([{"message": format!("An unexpected error occurred. Please include this ErrorId if you contact support: {} (-1)", shared.uuid()),
                    "errorCode": "UNKNOWN_EXCEPTION"}])
        };
        json(status, body)
    }

    fn throttled(&self, _shared: &Shared, _d: &Decision) -> Response {
        json(
            403,
            json!([{"message": "TotalRequests Limit exceeded.", "errorCode": "REQUEST_LIMIT_EXCEEDED"}]),
        )
    }

    fn limit_headers(&self, _shared: &Shared, d: &Decision, h: &mut HeaderMap) {
        let used = d.max.saturating_sub(d.remaining);
        set_header(
            h,
            "sforce-limit-info",
            &format!("api-usage={used}/{}", d.max),
        );
    }
}
