//! The state one emulator shares between its connections: records, tokens, idempotency
//! keys, counters, the rate limiter and the fault plan.

use super::faults::{FaultConfig, FaultKind};
use super::ratelimit::Window;
use super::{Credentials, SandboxOptions, Stats, Vendor};
use indexmap::IndexMap;
use serde_json::Value;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// Everything one emulator shares.
pub(crate) struct Shared {
    /// Which vendor.
    pub vendor: Vendor,
    /// `http://127.0.0.1:PORT`.
    pub base_url: String,
    /// What clients must present.
    pub credentials: Credentials,
    /// Seed for ids and fault draws.
    pub seed: u64,
    /// The fault plan (replaceable while serving: [`super::Emulator::set_faults`]).
    faults: std::sync::RwLock<std::sync::Arc<FaultConfig>>,
    /// The vendor's (or the overridden) rate limit.
    pub limiter: Mutex<Window>,
    /// The separate limit on search requests ([`super::SandboxOptions::search_rate_limit`]).
    pub search_limiter: Option<Mutex<Window>>,
    /// Request counter (1-based numbers handed out in arrival order).
    pub seq: AtomicU64,
    stats: Mutex<Stats>,
    db: Mutex<Db>,
}

/// Records and per-vendor bookkeeping.
#[derive(Default)]
pub(crate) struct Db {
    /// object name → id → record in the vendor's shape, in creation order.
    pub tables: BTreeMap<String, IndexMap<String, Value>>,
    /// Access tokens issued by the emulator's token endpoint (static ones are in credentials).
    pub issued_tokens: HashSet<String>,
    /// Refresh tokens issued (the configured one is in credentials).
    pub refresh_tokens: HashSet<String>,
    /// Authorization codes handed out by a consent page and not yet exchanged: code →
    /// `{client_id, redirect_uri, expires}` (Unix seconds). Single use.
    pub oauth_codes: HashMap<String, Value>,
    /// Idempotency key → (request fingerprint, status, body).
    pub idempotency: HashMap<String, (String, u16, Value)>,
    /// Server-side query cursors (Salesforce query locators, Zendesk/Pipedrive cursors) → state.
    pub cursors: HashMap<String, Value>,
    /// Unique-value index (e.g. `contacts/email/ada@example.com` → id) for O(1) duplicate checks.
    pub unique: HashMap<String, String>,
    /// Access tokens invalidated by [`super::Emulator::expire_tokens`].
    pub expired_tokens: HashSet<String>,
    /// Async jobs (Zendesk job statuses) by id.
    pub jobs: IndexMap<String, Value>,
    /// Vendor schemas: object → definition name → definition (HubSpot's property registry).
    pub schema: BTreeMap<String, IndexMap<String, Value>>,
    /// Deleted objects a vendor still answers for (Stripe's deleted customers), by
    /// `object/id`.
    pub deleted: HashMap<String, Value>,
    /// Every write, in order, for incremental exports (Zendesk): (object, id, Unix seconds).
    pub changes: Vec<(String, String, i64)>,
    /// What searches see (lagging writes by [`super::SandboxOptions::search_lag`]).
    pub search: SearchIndex,
    created: BTreeMap<String, u64>,
    next_id: u64,
    next_token: u64,
}

/// One version of a record in the search index: visible from, the record then (`None`:
/// deleted).
type Version = (Instant, Option<Value>);

/// The search index of an emulator whose searches lag its writes: each write of a record is
/// kept as a version that searches see from `lag` after the write on. With no lag the index
/// keeps nothing and searches read the live tables.
#[derive(Default)]
pub(crate) struct SearchIndex {
    lag: Duration,
    /// object → id → versions in write order.
    versions: BTreeMap<String, IndexMap<String, Vec<Version>>>,
}

impl SearchIndex {
    /// Keeps a version of a record (`None`: deleted) visible from `visible`.
    fn push(&mut self, object: &str, id: &str, visible: Instant, record: Option<Value>) {
        let now = Instant::now();
        let versions = self
            .versions
            .entry(object.to_string())
            .or_default()
            .entry(id.to_string())
            .or_default();
        // Only the newest version already visible and the pending ones matter.
        if let Some(last_visible) = versions.iter().rposition(|(t, _)| *t <= now) {
            versions.drain(..last_visible);
        }
        versions.push((visible, record));
    }
}

impl Db {
    /// Notes a write of `object`/`id` (its record now, or its deletion) for searches: with a
    /// search lag, searches see it `lag` from now; without one this does nothing.
    pub fn indexed(&mut self, object: &str, id: &str) {
        if self.search.lag.is_zero() {
            return;
        }
        let record = self.get(object, id).cloned();
        let visible = Instant::now() + self.search.lag;
        self.search.push(object, id, visible, record);
    }

    /// Notes a write in the change log that incremental exports walk.
    pub fn changed(&mut self, object: &str, id: &str) {
        self.changes.push((
            object.to_string(),
            id.to_string(),
            chrono::Utc::now().timestamp(),
        ));
    }

    /// Notes a record loaded as a fixture: searchable at once, lag or not.
    pub fn indexed_now(&mut self, object: &str, id: &str) {
        if self.search.lag.is_zero() {
            return;
        }
        let record = self.get(object, id).cloned();
        self.search.push(object, id, Instant::now(), record);
    }

    /// The records of `object` as searches see them now, in creation order.
    pub fn searchable(&self, object: &str) -> Vec<Value> {
        if self.search.lag.is_zero() {
            return self
                .tables
                .get(object)
                .map(|t| t.values().cloned().collect())
                .unwrap_or_default();
        }
        let now = Instant::now();
        self.search
            .versions
            .get(object)
            .map(|t| {
                t.values()
                    .filter_map(|versions| {
                        versions
                            .iter()
                            .rev()
                            .find(|(t, _)| *t <= now)
                            .and_then(|(_, r)| r.clone())
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The next numeric id (shared by every object of the emulator, starting at 1).
    pub fn next_id(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id
    }

    /// Makes [`Db::next_id`] answer more than `n` from now on (an id loaded from a fixture
    /// must never be issued again, even after that record is deleted).
    pub fn reserve_id(&mut self, n: u64) {
        self.next_id = self.next_id.max(n);
    }

    /// A fresh opaque token for ids, cursors and access tokens: 32 hex digits.
    pub fn token(&mut self, seed: u64) -> String {
        self.next_token += 1;
        let a = mix(seed ^ 0xA5A5_5A5A_0F0F_F0F0, self.next_token);
        let b = mix(a, self.next_token.wrapping_add(0x51));
        format!("{a:016x}{b:016x}")
    }

    /// Inserts a new record and counts it as created.
    pub fn insert(&mut self, object: &str, id: &str, record: Value) {
        self.table(object).insert(id.to_string(), record);
        *self.created.entry(object.to_string()).or_default() += 1;
    }

    /// The table of one object (created empty on first use).
    pub fn table(&mut self, object: &str) -> &mut IndexMap<String, Value> {
        self.tables.entry(object.to_string()).or_default()
    }

    /// One record.
    pub fn get(&self, object: &str, id: &str) -> Option<&Value> {
        self.tables.get(object).and_then(|t| t.get(id))
    }
}

/// SplitMix64 step of (a, b).
pub(crate) fn mix(a: u64, b: u64) -> u64 {
    let mut z = a.wrapping_add(b.wrapping_mul(0x9E37_79B9_7F4A_7C15));
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Locks a mutex, recovering from poisoning (a panicked handler must not wedge the emulator).
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Shared {
    pub fn new(vendor: Vendor, base_url: String, opts: &SandboxOptions) -> Self {
        let api = super::vendor::api(vendor);
        let (max, per) = match opts.rate_limit {
            Some(o) => (o.requests, o.per),
            None => api.default_limit(),
        };
        let credentials = api.credentials(&base_url);
        let mut db = Db {
            search: SearchIndex {
                lag: opts.search_lag,
                ..SearchIndex::default()
            },
            ..Db::default()
        };
        api.init(&mut db);
        Shared {
            vendor,
            base_url,
            credentials,
            seed: opts.seed,
            faults: std::sync::RwLock::new(std::sync::Arc::new(opts.faults.clone())),
            limiter: Mutex::new(Window::new(max, per)),
            search_limiter: opts
                .search_rate_limit
                .map(|l| Mutex::new(Window::new(l.requests, l.per))),
            seq: AtomicU64::new(0),
            stats: Mutex::new(Stats::default()),
            db: Mutex::new(db),
        }
    }

    /// Locks the records.
    pub fn db(&self) -> MutexGuard<'_, Db> {
        lock(&self.db)
    }

    /// A credential's value ("" when absent).
    pub fn cred(&self, name: &str) -> &str {
        self.credentials.get(name).unwrap_or_default()
    }

    /// The fault plan now.
    pub fn faults(&self) -> std::sync::Arc<FaultConfig> {
        self.faults
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Replace the fault plan.
    pub fn set_faults(&self, f: FaultConfig) {
        *self.faults.write().unwrap_or_else(|p| p.into_inner()) = std::sync::Arc::new(f);
    }

    /// Takes the next request number and counts the request (also per method and path).
    pub fn next_request(&self, method: &str, path: &str) -> u64 {
        {
            let mut s = lock(&self.stats);
            s.requests += 1;
            *s.by_route.entry(format!("{method} {path}")).or_default() += 1;
        }
        self.seq.fetch_add(1, Ordering::SeqCst) + 1
    }

    pub fn count_fault(&self, f: FaultKind) {
        *lock(&self.stats)
            .faults
            .entry(f.name().to_string())
            .or_default() += 1;
    }

    /// Counts a search request, and whether the search limit refused it.
    pub fn count_search(&self, refused: bool) {
        let mut s = lock(&self.stats);
        s.searches += 1;
        if refused {
            s.search_throttled += 1;
        }
    }

    pub fn count_status(&self, status: u16, throttled: bool) {
        let mut s = lock(&self.stats);
        *s.by_status.entry(status).or_default() += 1;
        if throttled {
            s.throttled += 1;
        }
    }

    pub fn stats(&self) -> Stats {
        let mut s = lock(&self.stats).clone();
        s.created = self.db().created.clone();
        s
    }

    pub fn records(&self, object: &str) -> Vec<Value> {
        self.db()
            .tables
            .get(object)
            .map(|t| t.values().cloned().collect())
            .unwrap_or_default()
    }

    /// A deterministic UUID-shaped string (correlation and request ids).
    pub fn uuid(&self) -> String {
        let n = self.seq.load(Ordering::SeqCst);
        let a = mix(
            self.seed ^ 0x1234_5678,
            n.wrapping_mul(3).wrapping_add(rand_tick()),
        );
        let b = mix(a, n);
        format!(
            "{:08x}-{:04x}-4{:03x}-a{:03x}-{:012x}",
            a >> 32,
            (a >> 16) & 0xffff,
            a & 0xfff,
            (b >> 52) & 0xfff,
            b & 0xffff_ffff_ffff
        )
    }
}

/// A process-wide tick so two ids drawn for the same request differ.
fn rand_tick() -> u64 {
    static TICK: AtomicU64 = AtomicU64::new(0);
    TICK.fetch_add(1, Ordering::Relaxed)
}
