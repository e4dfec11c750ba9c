//! The one trait every vendor emulator implements, and the machinery built on it once for all
//! vendors: the auth middleware (a vendor's handlers never check credentials themselves) and
//! the extractor helpers that turn a bad path segment or body into the vendor's own error.
//!
//! A vendor module (`hubspot/`, `salesforce/`, …) provides a unit struct implementing
//! [`Emulated`]: its routes (split into those that need credentials and those that do not),
//! how it checks credentials, and how it answers throttling and injected 5xx faults. The
//! server front (`server.rs`) and the router built here only ever talk to that trait.

use super::ratelimit::Decision;
use super::state::{Db, Shared};
use super::{Credentials, Vendor};
use axum::Router;
use axum::body::Body;
use axum::extract::{FromRequestParts, Path, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

/// The most a request body may hold when the middleware must read it to check a signature
/// (axum's own default body limit, so a signed vendor accepts what the others accept).
const SIGNED_BODY_MAX: usize = 2 * 1024 * 1024;

/// What one vendor's emulator is: its routes, credentials, limits and error answers.
pub(crate) trait Emulated: Send + Sync + 'static {
    /// The vendor's default rate limit: (requests, window).
    fn default_limit(&self) -> (u32, Duration);

    /// The credentials clients must present (fixed test values).
    fn credentials(&self, base_url: &str) -> Credentials;

    /// Fills a new emulator's bookkeeping (HubSpot's property registry).
    fn init(&self, _db: &mut Db) {}

    /// Whether a request is a search, limited by the separate search limit when one is set.
    fn is_search(&self, _method: &Method, _path: &str) -> bool {
        false
    }

    /// The vendor's answer when the search limit refuses a request (default: its throttle).
    fn search_throttled(&self, shared: &Shared, d: &Decision) -> Response {
        self.throttled(shared, d)
    }

    /// A path the vendor serves the same as another (Salesforce ignores a trailing slash):
    /// the path to route instead, or `None` to route it as it is.
    fn same_path(&self, _path: &str) -> Option<String> {
        None
    }

    /// Paths the rate limiter does not count (token endpoints, version lists).
    fn exempt(&self, _path: &str) -> bool {
        false
    }

    /// Routes that need credentials; the auth middleware is layered over every one of them.
    fn routes(&self) -> Router<Arc<Shared>>;

    /// Routes reached without credentials (token endpoints, version lists) and the fallback
    /// for unknown paths (answered without an auth check, as the vendors do).
    fn public_routes(&self) -> Router<Arc<Shared>>;

    /// Whether [`Emulated::authorize`] needs the request body (request signing).
    fn signs_body(&self) -> bool {
        false
    }

    /// Checks a request's credentials; `Err` is the vendor's refusal (usually its 401).
    /// `body` is empty unless [`Emulated::signs_body`].
    fn authorize(&self, shared: &Shared, req: &Parts, body: &[u8]) -> Result<(), Response>;

    /// The vendor-shaped answer to an injected 5xx fault.
    fn server_error(&self, shared: &Shared, status: u16) -> Response;

    /// The vendor's throttling answer.
    fn throttled(&self, shared: &Shared, d: &Decision) -> Response;

    /// The rate-limit headers the vendor puts on every counted response.
    fn limit_headers(&self, shared: &Shared, d: &Decision, h: &mut HeaderMap);
}

/// The emulator of `vendor`.
pub(crate) fn api(vendor: Vendor) -> &'static dyn Emulated {
    match vendor {
        Vendor::Hubspot => &super::hubspot::Hubspot,
        Vendor::Salesforce => &super::salesforce::Salesforce,
        Vendor::Pipedrive => &super::pipedrive::Pipedrive,
        Vendor::Zendesk => &super::zendesk::Zendesk,
        Vendor::Stripe => &super::stripe::Stripe,
        Vendor::Acmecrm => &super::acmecrm::Acmecrm,
    }
}

/// The vendor's whole router: its protected routes behind the auth middleware, then its
/// public routes and fallback.
pub(crate) fn router(shared: Arc<Shared>) -> Router {
    let api = api(shared.vendor);
    api.routes()
        .route_layer(axum::middleware::from_fn_with_state(
            shared.clone(),
            authenticate,
        ))
        .merge(api.public_routes())
        .with_state(shared)
}

/// The auth middleware: the vendor's [`Emulated::authorize`] before any protected handler.
async fn authenticate(State(shared): State<Arc<Shared>>, req: Request, next: Next) -> Response {
    let api = api(shared.vendor);
    let (parts, body) = req.into_parts();
    if !api.signs_body() {
        if let Err(refusal) = api.authorize(&shared, &parts, &[]) {
            return refusal;
        }
        return next.run(Request::from_parts(parts, body)).await;
    }
    let Ok(bytes) = axum::body::to_bytes(body, SIGNED_BODY_MAX).await else {
        return StatusCode::PAYLOAD_TOO_LARGE.into_response();
    };
    if let Err(refusal) = api.authorize(&shared, &parts, &bytes) {
        return refusal;
    }
    next.run(Request::from_parts(parts, Body::from(bytes)))
        .await
}

/// One named segment of the matched route (e.g. `object` of `/crm/v3/objects/{object}`), for
/// the vendors' path extractors. `None` when the route has no such segment.
pub(crate) async fn path_segment(
    parts: &mut Parts,
    state: &Arc<Shared>,
    name: &str,
) -> Option<String> {
    let Path(map) = Path::<HashMap<String, String>>::from_request_parts(parts, state)
        .await
        .ok()?;
    map.get(name).cloned()
}
