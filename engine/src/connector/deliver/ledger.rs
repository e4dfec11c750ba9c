//! The store side of delivery: claims (with waiting for another live process), settling
//! deliveries and dead letters (with a fallback file when the store refuses a write, so no
//! dead letter is lost without a word), the dedupe index, and the ledger of workflow actions.

use super::Session;
use crate::store::{Claim, ClaimKey, Delivered, NewDeadLetter, Settle, Store};
use serde_json::Value;
use std::collections::HashMap;
use std::sync::{Arc, LazyLock, Mutex};
use std::time::Duration;

/// How long a record claimed by another live process is waited for before giving up.
const BUSY_WAIT: Duration = Duration::from_secs(300);
/// How often the process's heartbeat is refreshed while it delivers.
const HEARTBEAT_EVERY: Duration = Duration::from_secs(5);

/// This process's owner id: one per process, so every deliverer of it shares its claims (they
/// are kept apart by the in-process record locks instead).
pub fn process_owner() -> &'static str {
    static OWNER: LazyLock<String> = LazyLock::new(|| {
        format!(
            "{}:{}:{:016x}",
            crate::store::delivery::host_name(),
            std::process::id(),
            rand::random::<u64>()
        )
    });
    &OWNER
}

/// Locks by (store, tenant, namespace, record) shared by every deliverer of the process: two
/// deliveries of one record in one process never interleave (across processes, claims do it).
fn record_lock(scope: &str) -> Arc<tokio::sync::Mutex<()>> {
    static LOCKS: LazyLock<Mutex<HashMap<String, std::sync::Weak<tokio::sync::Mutex<()>>>>> =
        LazyLock::new(Mutex::default);
    let mut m = LOCKS.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(l) = m.get(scope).and_then(std::sync::Weak::upgrade) {
        return l;
    }
    // Drop entries nobody holds before the map grows past what is in flight.
    if m.len() > 4096 {
        m.retain(|_, w| w.strong_count() > 0);
    }
    let l = Arc::new(tokio::sync::Mutex::new(()));
    m.insert(scope.to_string(), Arc::downgrade(&l));
    l
}

/// Hold the locks of these scopes until the guards drop, taken in a stable order so that two
/// holders of overlapping sets cannot deadlock.
pub(super) async fn lock_scopes(mut scopes: Vec<String>) -> Vec<tokio::sync::OwnedMutexGuard<()>> {
    scopes.sort();
    scopes.dedup();
    let mut guards = Vec::with_capacity(scopes.len());
    for s in &scopes {
        guards.push(record_lock(s).lock_owned().await);
    }
    guards
}

/// The dedupe index and delivery state namespace of a session.
pub(super) fn namespace(session: &Session) -> String {
    match &session.binding.base_url {
        Some(b) => format!("{}@{b}", session.connector.name()),
        None => session.connector.name().to_string(),
    }
}

/// A CRM id as the store keeps it: JSON text, so that its type survives (text that is not
/// JSON is taken as a string).
pub(super) fn stored_id(text: String) -> Value {
    serde_json::from_str(&text).unwrap_or(Value::String(text))
}

/// One deliverer's view of the store.
#[derive(Debug, Clone)]
pub(super) struct Ledger {
    pub store: Arc<Store>,
    pub tenant: String,
    pub ns: String,
    pub connector: String,
    pub route: String,
    pub owner: String,
    /// The run's or request's correlation id, kept with dead letters.
    pub correlation: Option<String>,
}

/// Aborts the heartbeat task when dropped.
pub(super) struct Heartbeat(Option<tokio::task::JoinHandle<()>>);

impl Drop for Heartbeat {
    fn drop(&mut self) {
        if let Some(h) = self.0.take() {
            h.abort();
        }
    }
}

impl Ledger {
    pub fn new(store: Arc<Store>, session: &Session, route: &str) -> Self {
        Self {
            tenant: session.binding.tenant.clone(),
            ns: namespace(session),
            connector: session.connector.name().to_string(),
            route: route.to_string(),
            owner: process_owner().to_string(),
            correlation: None,
            store,
        }
    }

    /// Register the owner and keep its heartbeat fresh while the guard lives (claims of an
    /// owner without a fresh heartbeat count as abandoned).
    pub fn keep_alive(&self) -> Heartbeat {
        if let Err(e) = self.store.heartbeat(&self.owner) {
            tracing::error!(error = %e, "store heartbeat failed");
        }
        let (store, owner) = (self.store.clone(), self.owner.clone());
        let task = tokio::runtime::Handle::try_current().ok().map(|h| {
            h.spawn(async move {
                loop {
                    tokio::time::sleep(HEARTBEAT_EVERY).await;
                    if let Err(e) = store.heartbeat(&owner) {
                        tracing::error!(error = %e, "store heartbeat failed");
                    }
                }
            })
        });
        Heartbeat(task)
    }

    /// The lock scope of one record.
    pub fn lock_scope(&self, object: &str, key: &str) -> String {
        format!(
            "{}\u{1f}{}\u{1f}{}\u{1f}{object}\u{1f}{key}",
            self.store.path(),
            self.tenant,
            self.ns
        )
    }

    /// Claim many records of one object at once.
    pub fn claim_many(&self, object: &str, keys: &[&str]) -> Result<Vec<Claim>, String> {
        let ks: Vec<ClaimKey<'_>> = keys.iter().map(|key| ClaimKey { object, key }).collect();
        self.store
            .claim(&self.tenant, &self.ns, &self.owner, &ks)
            .map_err(|e| format!("the store could not record the delivery attempt: {e}"))
    }

    /// Claim one record, waiting while another live process holds it.
    pub async fn claim(&self, object: &str, key: &str) -> Result<Claim, String> {
        let start = std::time::Instant::now();
        let mut delay = Duration::from_millis(50);
        loop {
            let c = self
                .claim_many(object, &[key])?
                .pop()
                .unwrap_or(Claim::Fresh);
            match c {
                Claim::Busy { owner } => {
                    if start.elapsed() > BUSY_WAIT {
                        return Err(format!(
                            "another process ({owner}) has been delivering this record for over {} s; not sent, so it cannot be sent twice",
                            BUSY_WAIT.as_secs()
                        ));
                    }
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_millis(500));
                }
                other => return Ok(other),
            }
        }
    }

    pub fn settle_done(&self, done: &[Delivered<'_>]) -> Result<(), String> {
        self.store
            .settle_done(&self.tenant, &self.ns, &self.connector, done)
            .map_err(|e| {
                tracing::error!(error = %e, "delivery state write failed");
                format!("delivered, but the store could not record it: {e}")
            })
    }

    pub fn settle_refused(&self, object: &str, key: &str) {
        if let Err(e) = self
            .store
            .settle_refused(&self.tenant, &self.ns, object, key)
        {
            tracing::error!(error = %e, "delivery state write failed");
        }
    }

    /// The delivered record's CRM object is gone or is another record's now.
    pub fn forget(&self, object: &str, key: &str, id: &Value) {
        let text = id.to_string();
        let r = self
            .store
            .forget_delivery(&self.tenant, &self.ns, object, key)
            .and_then(|_| {
                self.store
                    .dedupe_forget(&self.tenant, &self.ns, object, &text)
            });
        if let Err(e) = r {
            tracing::warn!(error = %e, "dedupe index delete failed");
        }
    }

    /// The CRM id the index has for a match key (ids are kept as JSON text so that their
    /// type survives).
    pub fn index_get(&self, object: &str, match_key: &str) -> Option<Value> {
        let text = self
            .store
            .dedupe_get(&self.tenant, &self.ns, object, match_key)
            .ok()
            .flatten()?;
        Some(stored_id(text))
    }

    /// Write a dead letter (and, with `settle`, the record's state, atomically). Returns
    /// (dead-lettered, store write failed, a note for the reason when it failed). When the
    /// store refuses the write, the dead letter goes to a fallback NDJSON file beside the
    /// store and the failure is logged; it is never dropped silently.
    pub fn dead_letter(
        &self,
        object: &str,
        key: &str,
        payload: &Value,
        reason: &str,
        attempts: u32,
        settle: Option<Settle>,
    ) -> (bool, bool, Option<String>) {
        let d = NewDeadLetter {
            tenant: &self.tenant,
            connector: &self.connector,
            route: &self.route,
            object,
            record_key: key,
            payload,
            reason,
            attempts: if attempts == 0 { 1 } else { attempts },
            settle: settle.map(|s| (self.ns.as_str(), s)),
            correlation_id: self.correlation.as_deref(),
        };
        match self.store.dead_letter(&d) {
            Ok(id) => {
                tracing::warn!(
                    dead_letter = id,
                    tenant = %self.tenant,
                    connector = %self.connector,
                    object,
                    key,
                    correlation_id = self.correlation.as_deref().unwrap_or(""),
                    %reason,
                    "record dead-lettered"
                );
                (true, false, None)
            }
            Err(e) => {
                tracing::error!(error = %e, key, object, "dead-letter write failed");
                match self.store.dead_letter_fallback(&d) {
                    Ok(p) => (
                        false,
                        true,
                        Some(format!(
                            "the store refused the dead letter ({e}); it was appended to `{}`",
                            p.display()
                        )),
                    ),
                    Err(e2) => (
                        false,
                        true,
                        Some(format!(
                            "the store refused the dead letter ({e}) and so did the fallback file ({e2}): this record is only in this report"
                        )),
                    ),
                }
            }
        }
    }

    fn action_object(trigger: &str, action: &str) -> String {
        format!("action:{trigger}:{action}")
    }
}

impl crate::connector::workflow::ActionLedger for Ledger {
    fn begin(&self, key: &str, trigger: &str, action: &str) -> Option<String> {
        let object = Self::action_object(trigger, action);
        match self.claim_many(&object, &[key]).map(|mut c| c.pop()) {
            Ok(Some(Claim::Fresh)) | Ok(None) => None,
            Ok(Some(Claim::Done(_))) => Some("already ran for this record".into()),
            Ok(Some(Claim::Unknown)) => Some(
                "an earlier attempt's outcome is unknown; not repeated (it may have run)".into(),
            ),
            Ok(Some(Claim::Busy { owner })) => {
                Some(format!("another process ({owner}) is running it"))
            }
            Err(e) => Some(e),
        }
    }

    fn begin_idempotent(&self, key: &str, trigger: &str, action: &str) -> Option<String> {
        let object = Self::action_object(trigger, action);
        match self.claim_many(&object, &[key]).map(|mut c| c.pop()) {
            Ok(Some(Claim::Fresh | Claim::Unknown)) | Ok(None) => None,
            Ok(Some(Claim::Done(_))) => Some("already ran for this record".into()),
            Ok(Some(Claim::Busy { owner })) => {
                Some(format!("another process ({owner}) is running it"))
            }
            Err(e) => Some(e),
        }
    }

    fn finish(
        &self,
        key: &str,
        trigger: &str,
        action: &str,
        end: crate::connector::workflow::ActionEnd,
    ) {
        let object = Self::action_object(trigger, action);
        let r = match end {
            crate::connector::workflow::ActionEnd::Ran => self.store.settle_done(
                &self.tenant,
                &self.ns,
                &self.connector,
                &[Delivered {
                    object: &object,
                    key,
                    id: "null",
                    match_keys: &[],
                    completes_record: false,
                }],
            ),
            crate::connector::workflow::ActionEnd::Refused => {
                self.store
                    .settle_refused(&self.tenant, &self.ns, &object, key)
            }
            crate::connector::workflow::ActionEnd::Unknown => {
                self.store
                    .release_unknown(&self.tenant, &self.ns, &object, key)
            }
        };
        if let Err(e) = r {
            tracing::error!(error = %e, "action ledger write failed");
        }
    }
}
