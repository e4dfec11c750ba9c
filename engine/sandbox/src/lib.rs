//! Vendor-faithful local emulators of the CRM and payment APIs the connectors talk to.
//!
//! Each emulator is a stateful HTTP server on 127.0.0.1 that behaves like the vendor as written
//! in the API fact sheets: records created through it can be read back, updated, searched and
//! listed with the vendor's own pagination; auth is enforced with the vendor's 401 body; the
//! vendor's rate limit is enforced with its real throttling response and headers; and faults
//! (5xx, timeouts, dropped connections, malformed bodies, slow answers) can be injected by rate
//! or by script, deterministically for a given seed.
//!
//! ```no_run
//! # async fn demo() -> Result<(), switchyard_sandbox::SandboxError> {
//! use switchyard_sandbox::{self as sandbox, SandboxOptions, Vendor};
//! let emu = sandbox::start(Vendor::Hubspot, SandboxOptions::default()).await?;
//! let token = emu.credentials().get("access_token").unwrap_or_default().to_string();
//! println!("{} {}", emu.base_url(), token.len());
//! emu.shutdown().await;
//! # Ok(()) }
//! ```

// Handlers answer errors as early `Err(Response)` returns, the axum idiom; boxing them would
// only add noise.
#![allow(clippy::result_large_err)]

mod acmecrm;
mod faults;
mod hubspot;
mod pipedrive;
mod ratelimit;
mod salesforce;
mod server;
mod state;
mod stripe;
mod util;
mod vendor;
mod zendesk;

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

pub use faults::{FaultConfig, FaultKind, ScriptedFault, TIMEOUT_HOLD, load_fault_script};
pub use salesforce::JWT_TEST_PRIVATE_KEY_PEM;

/// The vendors that have an emulator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum Vendor {
    /// HubSpot CRM v3 (contacts, companies, deals, tickets) and its OAuth token endpoint.
    Hubspot,
    /// Salesforce REST (OAuth token endpoint, sObjects, SOQL query, sObject collections).
    Salesforce,
    /// Pipedrive v2 persons/deals and v1 leads.
    Pipedrive,
    /// Zendesk Support tickets and users.
    Zendesk,
    /// Stripe customers, payment intents and subscriptions.
    Stripe,
    /// AcmeCRM: HMAC-signed requests, CSV and XML answers (reached through plugins).
    Acmecrm,
}

impl Vendor {
    /// Every vendor with an emulator, in a stable order.
    pub const ALL: [Vendor; 6] = [
        Vendor::Hubspot,
        Vendor::Salesforce,
        Vendor::Pipedrive,
        Vendor::Zendesk,
        Vendor::Stripe,
        Vendor::Acmecrm,
    ];

    /// The vendor's documented limit on search requests, where it has one apart from its
    /// general limit: HubSpot 5 per second per account (CRM search), Stripe 20 per second
    /// (search API). What `switchyard sandbox` enforces unless told otherwise.
    pub fn search_rate_limit(self) -> Option<RateLimitOverride> {
        let per_second = |requests| RateLimitOverride {
            requests,
            per: Duration::from_secs(1),
        };
        match self {
            Vendor::Hubspot => Some(per_second(5)),
            Vendor::Stripe => Some(per_second(20)),
            _ => None,
        }
    }

    /// The lowercase name (`hubspot`, `salesforce`, …).
    pub fn name(self) -> &'static str {
        match self {
            Vendor::Hubspot => "hubspot",
            Vendor::Salesforce => "salesforce",
            Vendor::Pipedrive => "pipedrive",
            Vendor::Zendesk => "zendesk",
            Vendor::Stripe => "stripe",
            Vendor::Acmecrm => "acmecrm",
        }
    }
}

impl fmt::Display for Vendor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Vendor {
    type Err = SandboxError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Vendor::ALL
            .into_iter()
            .find(|v| v.name().eq_ignore_ascii_case(s.trim()))
            .ok_or_else(|| SandboxError::UnknownVendor(s.to_string()))
    }
}

/// A rate limit that replaces the vendor's default: `requests` per `per`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimitOverride {
    /// Requests allowed in one window.
    pub requests: u32,
    /// The window length.
    pub per: Duration,
}

impl FromStr for RateLimitOverride {
    type Err = SandboxError;

    /// Parses `REQUESTS/SECONDS`, e.g. `100/10`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad =
            || SandboxError::InvalidOption(format!("rate limit `{s}` is not REQUESTS/SECONDS"));
        let (r, p) = s.split_once('/').ok_or_else(bad)?;
        let requests: u32 = r.trim().parse().map_err(|_| bad())?;
        let secs: f64 = p.trim().parse().map_err(|_| bad())?;
        if requests == 0 || !(secs > 0.0 && secs.is_finite()) {
            return Err(bad());
        }
        Ok(RateLimitOverride {
            requests,
            per: Duration::from_secs_f64(secs),
        })
    }
}

/// How to start an emulator. `Default` = an ephemeral port, the vendor's own rate limit, no
/// faults, seed 0, searches lagging writes by [`DEFAULT_SEARCH_LAG`] and limited only by the
/// general limit.
#[derive(Debug, Clone)]
pub struct SandboxOptions {
    /// Port on 127.0.0.1; `None` or `Some(0)` picks a free one. Default: `None`.
    pub port: Option<u16>,
    /// Replaces the vendor's default rate limit. Default: `None` (the vendor's limit).
    pub rate_limit: Option<RateLimitOverride>,
    /// Faults to inject. Default: none.
    pub faults: FaultConfig,
    /// Seed for every random choice (fault draws, generated ids). Default: 0.
    pub seed: u64,
    /// How long a write takes to become visible to searches (HubSpot CRM search, Stripe
    /// search), as the vendors' search indexes lag their writes (by seconds). Default:
    /// [`DEFAULT_SEARCH_LAG`], small so that tests stay fast but a client that searches for
    /// what it has just written meets the lag; zero makes search consistent at once.
    pub search_lag: Duration,
    /// A limit on search requests of its own, checked before the general limit (HubSpot
    /// allows about 5 searches a second per account, Stripe 20: [`Vendor::search_rate_limit`]).
    /// Default: `None`, searches count against the general limit only.
    pub search_rate_limit: Option<RateLimitOverride>,
}

/// The search lag of [`SandboxOptions::default`].
pub const DEFAULT_SEARCH_LAG: Duration = Duration::from_millis(50);

impl Default for SandboxOptions {
    fn default() -> Self {
        SandboxOptions {
            port: None,
            rate_limit: None,
            faults: FaultConfig::default(),
            seed: 0,
            search_lag: DEFAULT_SEARCH_LAG,
            search_rate_limit: None,
        }
    }
}

/// Errors from starting or configuring an emulator.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SandboxError {
    /// The vendor name is not one with an emulator.
    #[error(
        "unknown vendor `{0}` (expected one of hubspot, salesforce, pipedrive, zendesk, stripe, acmecrm)"
    )]
    UnknownVendor(String),
    /// An option has an invalid value.
    #[error("invalid sandbox option: {0}")]
    InvalidOption(String),
    /// The fault script could not be read or parsed.
    #[error("fault script {path}: {message}")]
    FaultScript {
        /// The script file.
        path: String,
        /// What is wrong with it.
        message: String,
    },
    /// The listening socket could not be bound.
    #[error("cannot bind 127.0.0.1:{port}")]
    Bind {
        /// The requested port.
        port: u16,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
}

/// What callers branch on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SandboxErrorKind {
    /// Bad option, vendor name or script.
    InvalidInput,
    /// The socket could not be bound.
    Io,
}

impl SandboxError {
    /// The error's kind.
    pub fn kind(&self) -> SandboxErrorKind {
        match self {
            SandboxError::Bind { .. } => SandboxErrorKind::Io,
            _ => SandboxErrorKind::InvalidInput,
        }
    }
}

/// The credentials a connector spec's secrets must be set to for this emulator (names per
/// vendor, see NOTES-emulators.md). Debug output redacts the values.
#[derive(Clone, Default)]
pub struct Credentials {
    values: BTreeMap<String, String>,
}

impl Credentials {
    pub(crate) fn from_pairs(pairs: &[(&str, &str)]) -> Self {
        Credentials {
            values: pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        }
    }

    /// The value of one credential, e.g. `access_token`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.values.get(name).map(String::as_str)
    }

    /// Every credential, name → value, in name order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.values.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map()
            .entries(self.values.keys().map(|k| (k, "<redacted>")))
            .finish()
    }
}

/// Counters since the emulator started.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Stats {
    /// Requests received (including faulted and throttled ones).
    pub requests: u64,
    /// Responses sent, per HTTP status.
    pub by_status: BTreeMap<u16, u64>,
    /// Throttling responses sent (429, or Salesforce's 403 REQUEST_LIMIT_EXCEEDED).
    pub throttled: u64,
    /// Faults injected, per kind (`5xx`, `timeout`, `drop`, `malformed`, `slow`, `rate_limit`).
    pub faults: BTreeMap<String, u64>,
    /// Search requests received (HubSpot CRM search, Stripe search), refused ones included.
    pub searches: u64,
    /// Search requests refused by the separate search limit (also counted in `throttled`).
    pub search_throttled: u64,
    /// Records created, per object name (as used by [`Emulator::records`]).
    pub created: BTreeMap<String, u64>,
    /// Requests received per method and path, without the query (`GET /v1/personFields`).
    pub by_route: BTreeMap<String, u64>,
}

impl Stats {
    /// Total faults injected, all kinds.
    pub fn faults_total(&self) -> u64 {
        self.faults.values().sum()
    }
}

/// A running emulator. Dropping it without [`Emulator::shutdown`] also stops it.
pub struct Emulator {
    shared: Arc<state::Shared>,
    server: server::ServerHandle,
}

impl fmt::Debug for Emulator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Emulator")
            .field("vendor", &self.shared.vendor)
            .field("base_url", &self.shared.base_url)
            .finish_non_exhaustive()
    }
}

impl Emulator {
    /// The vendor this emulates.
    pub fn vendor(&self) -> Vendor {
        self.shared.vendor
    }

    /// The base URL to put in the connector spec instead of the vendor's, e.g.
    /// `http://127.0.0.1:41234` (no trailing slash).
    pub fn base_url(&self) -> &str {
        &self.shared.base_url
    }

    /// What the connector spec's secrets must be set to.
    pub fn credentials(&self) -> &Credentials {
        &self.shared.credentials
    }

    /// Counters since start.
    pub fn stats(&self) -> Stats {
        self.shared.stats()
    }

    /// The live (not deleted) records of one object, in creation order, in the vendor's own
    /// JSON shape. Object names: HubSpot `contacts|companies|deals|tickets`; Salesforce the
    /// sObject name (`Lead`, `Contact`, …); Pipedrive `persons|deals|leads`; Zendesk
    /// `tickets|users`; Stripe `customers|payment_intents|subscriptions`; AcmeCRM
    /// `contacts|deals`.
    pub fn records(&self, object: &str) -> Vec<serde_json::Value> {
        self.shared.records(object)
    }

    /// Expires every access token the emulator's token endpoint has issued so far (HubSpot
    /// OAuth, Salesforce): the next call with one gets the vendor's 401, so a connector's
    /// "refresh once on 401" path can be tested. Static credentials stay valid.
    pub fn expire_tokens(&self) {
        let mut db = self.shared.db();
        let issued: Vec<String> = db.issued_tokens.drain().collect();
        db.expired_tokens.extend(issued);
    }

    /// Loads fixture records as if they had been created earlier, keeping their ids and
    /// times, so that a demo or a test reads known data back through the vendor's API.
    /// Records are in the vendor's own JSON shape. HubSpot (`contacts|companies|deals|tickets`,
    /// also singular): `{"id": "<number>", "properties": {...}, "associations"?: ...}`, property
    /// values become strings and `createdate`/`lastmodifieddate`/`hs_object_id` are filled in
    /// when absent. Stripe (`customers|payment_intents|subscriptions`, also singular): the
    /// object as the API returns it (`object` set, `created` filled in when absent). Other
    /// vendors: not supported yet. A refused record is an error naming it; the records before
    /// it stay loaded.
    pub fn seed(&self, object: &str, records: &[serde_json::Value]) -> Result<(), SandboxError> {
        let vendor = self.shared.vendor;
        let mut db = self.shared.db();
        for (i, r) in records.iter().enumerate() {
            let res = match vendor {
                Vendor::Hubspot => hubspot::seed(&mut db, object, r),
                Vendor::Stripe => stripe::seed(&mut db, object, r),
                other => Err(format!("seeding the {other} emulator is not supported")),
            };
            res.map_err(|m| {
                SandboxError::InvalidOption(format!(
                    "{vendor} seed record {} of `{object}`: {m}",
                    i + 1
                ))
            })?;
        }
        Ok(())
    }

    /// Replaces the fault plan from the next request on (a test turns faults off for a
    /// clean final pass without losing the emulator's state).
    pub fn set_faults(&self, faults: FaultConfig) -> Result<(), SandboxError> {
        faults.check()?;
        self.shared.set_faults(faults);
        Ok(())
    }

    /// Stops serving and closes every open connection.
    pub async fn shutdown(self) {
        self.server.shutdown().await;
    }
}

/// Starts an emulator of `vendor` on 127.0.0.1.
pub async fn start(vendor: Vendor, opts: SandboxOptions) -> Result<Emulator, SandboxError> {
    opts.faults.check()?;
    let port = opts.port.unwrap_or(0);
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .map_err(|source| SandboxError::Bind { port, source })?;
    let addr = listener
        .local_addr()
        .map_err(|source| SandboxError::Bind { port, source })?;
    let base_url = format!("http://127.0.0.1:{}", addr.port());
    let shared = Arc::new(state::Shared::new(vendor, base_url, &opts));
    let router = vendor::router(shared.clone());
    let server = server::serve(listener, shared.clone(), router);
    Ok(Emulator { shared, server })
}
