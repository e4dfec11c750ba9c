//! The delivery state machine's durable half: one row per (tenant, CRM instance, object,
//! record key) that says whether the record was never sent, is in flight (or its outcome is
//! unknown), was delivered (with the CRM id) or was refused; claims that keep two processes
//! from sending the same record at once; and leases that keep two runs of the same input apart.
//!
//! Every transition is written before the request it guards (claim → `pending`) and after the
//! answer (`done` / `refused`), so a crash at any point leaves a row that says what to do next:
//! `pending` means "reconcile before creating".

use super::{Store, StoreError, now, write_tx};
use rusqlite::{OptionalExtension, params};

/// Seconds after its last heartbeat that an owner (a run) counts as gone.
pub const OWNER_TTL_SECS: i64 = 30;

/// What the store knew about a record when it was claimed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// Never sent (or refused before): create it.
    Fresh,
    /// Sent before without a known outcome (a crash, a timeout, a dead letter "outcome
    /// unknown"): reconcile before creating.
    Unknown,
    /// Delivered before: the CRM id, as JSON text.
    Done(String),
    /// Another live owner is sending it right now.
    Busy {
        /// The owner holding it.
        owner: String,
    },
}

/// One record to claim (batch form).
#[derive(Debug, Clone)]
pub struct ClaimKey<'a> {
    /// Object name.
    pub object: &'a str,
    /// Record key.
    pub key: &'a str,
}

/// One delivered object, for [`Store::settle_done`].
#[derive(Debug, Clone)]
pub struct Delivered<'a> {
    /// Object name.
    pub object: &'a str,
    /// Record key.
    pub key: &'a str,
    /// CRM id as JSON text (`null` when the vendor answered none).
    pub id: &'a str,
    /// Match keys (`field:normalised`) that now point at the id.
    pub match_keys: &'a [String],
    /// The record's last object: resolve its pending dead letters.
    pub completes_record: bool,
}

/// Who holds a lease.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseHolder {
    /// Owner id.
    pub owner: String,
    /// Process id.
    pub pid: u32,
    /// Host name.
    pub host: String,
    /// When it started (RFC 3339).
    pub started_at: String,
}

impl std::fmt::Display for LeaseHolder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "process {} on {}, started {}",
            self.pid, self.host, self.started_at
        )
    }
}

pub(super) const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS deliveries (
  tenant TEXT NOT NULL, ns TEXT NOT NULL, object TEXT NOT NULL, record_key TEXT NOT NULL,
  state TEXT NOT NULL, remote_id TEXT, owner TEXT, attempts INTEGER NOT NULL DEFAULT 0,
  updated_at TEXT NOT NULL,
  PRIMARY KEY (tenant, ns, object, record_key));
CREATE TABLE IF NOT EXISTS owners (
  owner TEXT PRIMARY KEY, pid INTEGER NOT NULL, host TEXT NOT NULL,
  started_at TEXT NOT NULL, heartbeat INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS leases (
  scope TEXT PRIMARY KEY, owner TEXT NOT NULL);
";

fn unix_now() -> i64 {
    chrono::Utc::now().timestamp()
}

/// This machine's name (for lease messages and the liveness check of local owners), read
/// once per process: every claim compares against it.
pub fn host_name() -> &'static str {
    static HOST: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
        std::fs::read_to_string("/proc/sys/kernel/hostname")
            .or_else(|_| std::fs::read_to_string("/etc/hostname"))
            .map(|s| s.trim().to_string())
            .ok()
            .filter(|s| !s.is_empty())
            .or_else(|| std::env::var("HOSTNAME").ok())
            .unwrap_or_else(|| "localhost".into())
    });
    &HOST
}

/// Whether an owner row describes a live process: a fresh heartbeat, and — when the owner ran
/// on this host — a process with that id still exists (a SIGKILLed run is gone at once).
fn alive(pid: u32, host: &str, heartbeat: i64, me_host: &str) -> bool {
    if unix_now() - heartbeat > OWNER_TTL_SECS {
        return false;
    }
    if host == me_host && cfg!(target_os = "linux") {
        return std::path::Path::new(&format!("/proc/{pid}")).exists();
    }
    true
}

impl Store {
    /// Register `owner` (this process) and refresh its heartbeat; call every few seconds
    /// while it holds claims or leases.
    pub fn heartbeat(&self, owner: &str) -> Result<(), StoreError> {
        let (pid, host, t) = (std::process::id(), host_name(), unix_now());
        self.with(|c| {
            c.execute(
                "INSERT INTO owners VALUES (?1,?2,?3,?4,?5)
                 ON CONFLICT(owner) DO UPDATE SET heartbeat=excluded.heartbeat",
                params![owner, pid, host, now(), t],
            )
            .map(|_| ())
        })
    }

    /// Forget `owner`: its claims and leases are released at once.
    pub fn retire(&self, owner: &str) -> Result<(), StoreError> {
        self.with(|c| {
            let tx = write_tx(c)?;
            tx.execute(
                "UPDATE deliveries SET owner=NULL WHERE owner=?1",
                params![owner],
            )?;
            tx.execute("DELETE FROM leases WHERE owner=?1", params![owner])?;
            tx.execute("DELETE FROM owners WHERE owner=?1", params![owner])?;
            tx.commit()
        })
    }

    /// Take the lease of `scope` for `owner`, unless another live owner holds it (then its
    /// description is returned).
    pub fn acquire_lease(
        &self,
        scope: &str,
        owner: &str,
    ) -> Result<Result<(), LeaseHolder>, StoreError> {
        self.heartbeat(owner)?;
        let me_host = host_name();
        self.with(|c| {
            let tx = write_tx(c)?;
            let held: Option<(String, u32, String, String, i64)> = tx
                .query_row(
                    "SELECT l.owner, o.pid, o.host, o.started_at, o.heartbeat
                     FROM leases l JOIN owners o ON o.owner = l.owner WHERE l.scope=?1",
                    params![scope],
                    |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)),
                )
                .optional()?;
            if let Some((o, pid, host, started_at, hb)) = held
                && o != owner
                && alive(pid, &host, hb, me_host)
            {
                return Ok(Err(LeaseHolder {
                    owner: o,
                    pid,
                    host,
                    started_at,
                }));
            }
            tx.execute(
                "INSERT INTO leases VALUES (?1,?2) ON CONFLICT(scope) DO UPDATE SET owner=excluded.owner",
                params![scope, owner],
            )?;
            tx.commit()?;
            Ok(Ok(()))
        })
    }

    /// Give up the lease of `scope` (when `owner` holds it).
    pub fn release_lease(&self, scope: &str, owner: &str) -> Result<(), StoreError> {
        self.with(|c| {
            c.execute(
                "DELETE FROM leases WHERE scope=?1 AND owner=?2",
                params![scope, owner],
            )
            .map(|_| ())
        })
    }

    /// Claim records for `owner` in one transaction: each comes back with what was known of
    /// it. `Fresh` and `Unknown` rows are now `pending` and owned by `owner`; `Done` rows are
    /// left as they are (the caller verifies and updates them); `Busy` ones belong to another
    /// live owner.
    pub fn claim(
        &self,
        tenant: &str,
        ns: &str,
        owner: &str,
        keys: &[ClaimKey<'_>],
    ) -> Result<Vec<Claim>, StoreError> {
        let me_host = host_name();
        let t = now();
        self.with(|c| {
            let tx = write_tx(c)?;
            let mut out = Vec::with_capacity(keys.len());
            {
                let mut get = tx.prepare_cached(
                    "SELECT d.state, d.remote_id, d.owner, o.pid, o.host, o.heartbeat
                     FROM deliveries d LEFT JOIN owners o ON o.owner = d.owner
                     WHERE d.tenant=?1 AND d.ns=?2 AND d.object=?3 AND d.record_key=?4",
                )?;
                let mut legacy = tx.prepare_cached(
                    "SELECT remote_id FROM dedupe_index
                     WHERE tenant=?1 AND connector=?2 AND object=?3 AND match_key=?4",
                )?;
                let mut put = tx.prepare_cached(
                    "INSERT INTO deliveries (tenant,ns,object,record_key,state,remote_id,owner,attempts,updated_at)
                     VALUES (?1,?2,?3,?4,'pending',NULL,?5,1,?6)
                     ON CONFLICT(tenant,ns,object,record_key) DO UPDATE SET
                       state='pending', owner=excluded.owner, attempts=attempts+1,
                       updated_at=excluded.updated_at",
                )?;
                for k in keys {
                    type Row = (
                        String,
                        Option<String>,
                        Option<String>,
                        Option<u32>,
                        Option<String>,
                        Option<i64>,
                    );
                    let row: Option<Row> = get
                        .query_row(params![tenant, ns, k.object, k.key], |r| {
                            Ok((
                                r.get(0)?,
                                r.get(1)?,
                                r.get(2)?,
                                r.get(3)?,
                                r.get(4)?,
                                r.get(5)?,
                            ))
                        })
                        .optional()?;
                    let claim = match row {
                        Some((state, Some(id), ..)) if state == "done" => Claim::Done(id),
                        Some((state, _, Some(o), pid, host, hb))
                            if state == "pending"
                                && o != owner
                                && alive(
                                    pid.unwrap_or(0),
                                    host.as_deref().unwrap_or(""),
                                    hb.unwrap_or(0),
                                    me_host,
                                ) =>
                        {
                            Claim::Busy { owner: o }
                        }
                        Some((state, ..)) if state == "pending" => Claim::Unknown,
                        Some(_) => Claim::Fresh,
                        None => {
                            // Stores written before the state machine kept the record's CRM id
                            // in the dedupe index under `record:{key}`.
                            let old: Option<String> = legacy
                                .query_row(
                                    params![tenant, ns, k.object, format!("record:{}", k.key)],
                                    |r| r.get(0),
                                )
                                .optional()?;
                            match old {
                                Some(id) => Claim::Done(id),
                                None => Claim::Fresh,
                            }
                        }
                    };
                    if matches!(claim, Claim::Fresh | Claim::Unknown) {
                        put.execute(params![tenant, ns, k.object, k.key, owner, t])?;
                    }
                    out.push(claim);
                }
            }
            tx.commit()?;
            Ok(out)
        })
    }

    /// Record deliveries in one transaction: each object is `done` with its CRM id (JSON
    /// text); its match keys point at it in the dedupe index; and when it completes its record,
    /// the record's pending dead letters are resolved (a record is never both delivered and
    /// pending in the dead letters).
    pub fn settle_done(
        &self,
        tenant: &str,
        ns: &str,
        connector: &str,
        done: &[Delivered<'_>],
    ) -> Result<(), StoreError> {
        let t = now();
        self.with(|c| {
            let tx = write_tx(c)?;
            {
                let mut d = tx.prepare_cached(
                    "INSERT INTO deliveries (tenant,ns,object,record_key,state,remote_id,owner,attempts,updated_at)
                     VALUES (?1,?2,?3,?4,'done',?5,NULL,1,?6)
                     ON CONFLICT(tenant,ns,object,record_key) DO UPDATE SET
                       state='done', remote_id=excluded.remote_id, owner=NULL, updated_at=excluded.updated_at",
                )?;
                let mut ix = tx.prepare_cached(
                    "INSERT INTO dedupe_index VALUES (?1,?2,?3,?4,?5,?6)
                     ON CONFLICT(tenant,connector,object,match_key) DO UPDATE SET
                       remote_id=excluded.remote_id, updated_at=excluded.updated_at",
                )?;
                let mut resolve = tx.prepare_cached(
                    "UPDATE dead_letters SET status='delivered'
                     WHERE tenant=?1 AND connector=?2 AND record_key=?3 AND status='pending'",
                )?;
                for x in done {
                    d.execute(params![tenant, ns, x.object, x.key, x.id, t])?;
                    for m in x.match_keys {
                        ix.execute(params![tenant, ns, x.object, m, x.id, t])?;
                    }
                    if x.completes_record {
                        resolve.execute(params![tenant, connector, x.key])?;
                    }
                }
            }
            tx.commit()
        })
    }

    /// A record the CRM refused (nothing was created): `refused`, so that a later run or a
    /// replay creates it without reconciling.
    pub fn settle_refused(
        &self,
        tenant: &str,
        ns: &str,
        object: &str,
        key: &str,
    ) -> Result<(), StoreError> {
        self.set_state(tenant, ns, object, key, "refused")
    }

    /// Give up a claim whose outcome is unknown: it stays `pending` (to be reconciled), owned
    /// by nobody.
    pub fn release_unknown(
        &self,
        tenant: &str,
        ns: &str,
        object: &str,
        key: &str,
    ) -> Result<(), StoreError> {
        self.set_state(tenant, ns, object, key, "pending")
    }

    /// A delivered record whose CRM object is gone (or now belongs to another record): back
    /// to `fresh`.
    pub fn forget_delivery(
        &self,
        tenant: &str,
        ns: &str,
        object: &str,
        key: &str,
    ) -> Result<(), StoreError> {
        self.with(|c| {
            c.execute(
                "DELETE FROM deliveries WHERE tenant=?1 AND ns=?2 AND object=?3 AND record_key=?4",
                params![tenant, ns, object, key],
            )?;
            c.execute(
                "DELETE FROM dedupe_index WHERE tenant=?1 AND connector=?2 AND object=?3 AND match_key=?4",
                params![tenant, ns, object, format!("record:{key}")],
            )
            .map(|_| ())
        })
    }

    fn set_state(
        &self,
        tenant: &str,
        ns: &str,
        object: &str,
        key: &str,
        state: &str,
    ) -> Result<(), StoreError> {
        let t = now();
        self.with(|c| {
            c.execute(
                "INSERT INTO deliveries (tenant,ns,object,record_key,state,remote_id,owner,attempts,updated_at)
                 VALUES (?1,?2,?3,?4,?5,NULL,NULL,1,?6)
                 ON CONFLICT(tenant,ns,object,record_key) DO UPDATE SET
                   state=excluded.state, owner=NULL, updated_at=excluded.updated_at",
                params![tenant, ns, object, key, state, t],
            )
            .map(|_| ())
        })
    }

    /// The state of one record (`pending`, `done`, `refused`) and its CRM id, for tests and
    /// `deadletter` tooling.
    pub fn delivery_state(
        &self,
        tenant: &str,
        ns: &str,
        object: &str,
        key: &str,
    ) -> Result<Option<(String, Option<String>)>, StoreError> {
        self.with(|c| {
            c.query_row(
                "SELECT state, remote_id FROM deliveries WHERE tenant=?1 AND ns=?2 AND object=?3 AND record_key=?4",
                params![tenant, ns, object, key],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn k<'a>(key: &'a str) -> ClaimKey<'a> {
        ClaimKey {
            object: "contact",
            key,
        }
    }

    #[test]
    fn a_claim_moves_fresh_to_pending_and_a_second_owner_waits_until_settled() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(&dir.path().join("s.sqlite")).unwrap();
        s.heartbeat("a").unwrap();
        s.heartbeat("b").unwrap();
        assert_eq!(s.claim("t", "hs", "a", &[k("r1")]).unwrap(), [Claim::Fresh]);
        // b sees a's live claim.
        assert!(matches!(
            s.claim("t", "hs", "b", &[k("r1")]).unwrap()[0],
            Claim::Busy { .. }
        ));
        let keys = ["email:x@y.z".to_string()];
        s.settle_done(
            "t",
            "hs",
            "hubspot",
            &[Delivered {
                object: "contact",
                key: "r1",
                id: "\"7\"",
                match_keys: &keys,
                completes_record: true,
            }],
        )
        .unwrap();
        assert_eq!(
            s.claim("t", "hs", "b", &[k("r1")]).unwrap(),
            [Claim::Done("\"7\"".into())]
        );
        assert_eq!(
            s.dedupe_get("t", "hs", "contact", "email:x@y.z")
                .unwrap()
                .as_deref(),
            Some("\"7\"")
        );
    }

    #[test]
    fn a_pending_claim_of_a_dead_owner_is_unknown_and_refused_is_fresh() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(&dir.path().join("s.sqlite")).unwrap();
        s.heartbeat("a").unwrap();
        s.claim("t", "hs", "a", &[k("r1"), k("r2")]).unwrap();
        s.settle_refused("t", "hs", "contact", "r2").unwrap();
        s.retire("a").unwrap();
        s.heartbeat("b").unwrap();
        assert_eq!(
            s.claim("t", "hs", "b", &[k("r1"), k("r2")]).unwrap(),
            [Claim::Unknown, Claim::Fresh]
        );
    }

    #[test]
    fn a_lease_is_refused_while_its_holder_lives() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(&dir.path().join("s.sqlite")).unwrap();
        assert_eq!(s.acquire_lease("t|hs|in", "a").unwrap(), Ok(()));
        let held = s.acquire_lease("t|hs|in", "b").unwrap().unwrap_err();
        assert_eq!(held.owner, "a");
        assert_eq!(held.pid, std::process::id());
        s.retire("a").unwrap();
        assert_eq!(s.acquire_lease("t|hs|in", "b").unwrap(), Ok(()));
    }
}
