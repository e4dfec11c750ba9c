//! AcmeCRM emulator: a CRM whose API needs HMAC-signed requests and answers in CSV (contacts)
//! and XML (deals, write results, errors) — the kind of system a spec alone cannot talk to, so
//! connectors reach it through plugins (`plugins/acme-codec`, `plugins/crm-connector`).
//!
//! Every request carries `X-Acme-Key` (the key id), `X-Acme-Timestamp` (Unix ms) and
//! `X-Acme-Signature` = hex(HMAC-SHA256(api_secret, METHOD \n PATH?QUERY \n TIMESTAMP \n
//! hex(SHA-256(body))); a wrong or missing signature is 401 with an XML error
//! (`<errors><error code="…"><message>…</message></error></errors>`). Contacts:
//! `GET /contacts[?email=…][&page=N]` (CSV, 50 per page, `X-Next-Page` and `Link: rel="next"`
//! when more), `POST /contacts` (JSON body; 409 on a duplicate email), `PUT /contacts/{id}`.
//! Deals: `GET /deals` (XML), `POST /deals`. Writes answer `<result status="created|updated">
//! <id>…</id></result>`.
//!
//! Files by concern: `signing.rs` (the signature check the auth middleware runs),
//! `codec.rs` (XML and CSV), `records.rs` (the endpoints).

mod codec;
mod records;
mod signing;

use super::Credentials;
use super::ratelimit::Decision;
use super::state::Shared;
use super::util::set_header;
use super::vendor::Emulated;
use axum::Router;
use axum::http::HeaderMap;
use axum::http::request::Parts;
use axum::response::Response;
use axum::routing::any;
use std::sync::Arc;
use std::time::Duration;

/// The AcmeCRM emulator.
pub(crate) struct Acmecrm;

impl Emulated for Acmecrm {
    /// 120 requests per minute.
    fn default_limit(&self) -> (u32, Duration) {
        (120, Duration::from_secs(60))
    }

    fn credentials(&self, _base_url: &str) -> Credentials {
        Credentials::from_pairs(&[
            ("api_secret", "sandbox-acme-signing-secret"),
            ("key_id", "sandbox-key-1"),
        ])
    }

    /// Every path is signed, unknown ones included: one catch-all route dispatches by method
    /// and path segments after the signature check.
    fn routes(&self) -> Router<Arc<Shared>> {
        Router::new()
            .route("/", any(records::dispatch))
            .route("/{*path}", any(records::dispatch))
    }

    fn public_routes(&self) -> Router<Arc<Shared>> {
        Router::new()
    }

    fn signs_body(&self) -> bool {
        true
    }

    fn authorize(&self, shared: &Shared, req: &Parts, body: &[u8]) -> Result<(), Response> {
        signing::authorize(shared, req, body)
    }

    fn server_error(&self, _shared: &Shared, status: u16) -> Response {
        codec::error(status, "server_error", "AcmeCRM is having a moment")
    }

    fn throttled(&self, _shared: &Shared, d: &Decision) -> Response {
        let mut r = codec::error(429, "rate_limited", "too many requests");
        set_header(
            r.headers_mut(),
            "retry-after",
            &d.retry_after.as_secs().max(1).to_string(),
        );
        r
    }

    fn limit_headers(&self, _shared: &Shared, d: &Decision, h: &mut HeaderMap) {
        set_header(h, "x-ratelimit-remaining", &d.remaining.to_string());
    }
}
