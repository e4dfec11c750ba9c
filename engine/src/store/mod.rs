//! The engine's persistence in one embedded SQLite file: sync cursors per tenant, connector
//! and object; the dedupe index (match key → remote id); dead letters with payload and reason;
//! OAuth tokens encrypted at rest (ChaCha20-Poly1305, key from `SWITCHYARD_STORE_KEY`); and the
//! delivery state machine's rows, claims and leases ([`delivery`]).

pub mod apikeys;
pub mod delivery;
pub mod inbox;
pub mod oauth;

pub use apikeys::ApiKeyInfo;
pub use delivery::{Claim, ClaimKey, Delivered, LeaseHolder};
pub use inbox::{InboxEntry, InboxRef, NewInboxEntry};
pub use oauth::{OauthState, StateRefusal};

use ring::aead::{self, Aad, LessSafeKey, Nonce, UnboundKey};
use ring::rand::{SecureRandom, SystemRandom};
use rusqlite::{Connection, OptionalExtension, params};
use serde::Serialize;
use serde_json::Value;
use std::path::Path;
use std::sync::Mutex;

/// Store errors.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// SQLite failed.
    #[error("store `{path}`: {source}")]
    Sqlite {
        /// Database file.
        path: String,
        /// Cause.
        #[source]
        source: rusqlite::Error,
    },
    /// The folder of the database could not be created.
    #[error("cannot create the folder of store `{0}`")]
    Io(String, #[source] std::io::Error),
    /// Encryption or decryption of a token failed (wrong key?).
    #[error("token encryption failed (is SWITCHYARD_STORE_KEY the key the token was stored with?)")]
    Crypto,
}

/// A dead letter: a record that could not be delivered after its retries.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct DeadLetter {
    /// Row id.
    pub id: i64,
    /// Tenant.
    pub tenant: String,
    /// Connector.
    pub connector: String,
    /// Mapping spec file of the route, for replay.
    pub route: String,
    /// Object that failed (or `*` for the whole record).
    pub object: String,
    /// The record's idempotency key.
    pub record_key: String,
    /// What was to be delivered (the mapped record).
    pub payload: Value,
    /// Why it failed.
    pub reason: String,
    /// Attempts made.
    pub attempts: u32,
    /// When it was dead-lettered (RFC 3339).
    pub created_at: String,
    /// `pending`; `delivered` once a rerun or replay got the record through (`replayed` in
    /// stores written before that).
    pub status: String,
    /// The correlation id of the run or request that wrote it last.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub correlation_id: Option<String>,
}

/// A dead letter to write.
#[derive(Debug, Clone)]
pub struct NewDeadLetter<'a> {
    /// Tenant.
    pub tenant: &'a str,
    /// Connector.
    pub connector: &'a str,
    /// Mapping spec file of the route, for replay.
    pub route: &'a str,
    /// Object that failed, `*` for the whole record, `(input)` for a line that is not a
    /// record, `(mapping)` for a record the mapping rejected.
    pub object: &'a str,
    /// The record's idempotency key.
    pub record_key: &'a str,
    /// What was to be delivered: the mapped record, or `{"line", "input"}` for input and
    /// mapping rejects (replayed by mapping the input again).
    pub payload: &'a Value,
    /// Why (secrets already redacted).
    pub reason: &'a str,
    /// Attempts made.
    pub attempts: u32,
    /// Also set the record's delivery state (CRM namespace, state), atomically.
    pub settle: Option<(&'a str, Settle)>,
    /// The run's or request's correlation id (also in its log lines).
    pub correlation_id: Option<&'a str>,
}

/// A delivery state written with a dead letter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Settle {
    /// The CRM refused it: nothing was created.
    Refused,
    /// Unknown whether it was created: reconcile before creating it again.
    Unknown,
}

impl Settle {
    fn as_str(self) -> &'static str {
        match self {
            Settle::Refused => "refused",
            Settle::Unknown => "pending",
        }
    }
}

/// The SQLite store (one connection, serialised; every call is short).
#[derive(Debug)]
pub struct Store {
    conn: Mutex<Connection>,
    path: String,
    key: Option<LessSafeKey>,
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS sync_cursors (
  tenant TEXT NOT NULL, connector TEXT NOT NULL, object TEXT NOT NULL,
  cursor TEXT NOT NULL, updated_at TEXT NOT NULL,
  PRIMARY KEY (tenant, connector, object));
CREATE TABLE IF NOT EXISTS dedupe_index (
  tenant TEXT NOT NULL, connector TEXT NOT NULL, object TEXT NOT NULL,
  match_key TEXT NOT NULL, remote_id TEXT NOT NULL, updated_at TEXT NOT NULL,
  PRIMARY KEY (tenant, connector, object, match_key));
CREATE TABLE IF NOT EXISTS dead_letters (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  tenant TEXT NOT NULL, connector TEXT NOT NULL, route TEXT NOT NULL, object TEXT NOT NULL,
  record_key TEXT NOT NULL, payload TEXT NOT NULL, reason TEXT NOT NULL,
  attempts INTEGER NOT NULL, created_at TEXT NOT NULL, status TEXT NOT NULL DEFAULT 'pending');
CREATE INDEX IF NOT EXISTS dead_letters_by_record ON dead_letters (tenant, connector, record_key, status);
CREATE TABLE IF NOT EXISTS oauth_tokens (
  tenant TEXT NOT NULL, connector TEXT NOT NULL, nonce BLOB NOT NULL, sealed BLOB NOT NULL,
  updated_at TEXT NOT NULL,
  PRIMARY KEY (tenant, connector));
";

/// A write transaction that takes the write lock when it begins (`BEGIN IMMEDIATE`): a
/// deferred one that reads first cannot wait for the lock when another process wrote since it
/// began (SQLite answers "database is locked" at once, without the busy timeout).
pub(crate) fn write_tx(c: &mut Connection) -> rusqlite::Result<rusqlite::Transaction<'_>> {
    c.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
}

/// Columns added after a table's first release (stores from earlier versions gain them).
fn migrate(c: &Connection) -> rusqlite::Result<()> {
    let has = |table: &str, col: &str| -> rusqlite::Result<bool> {
        let mut st = c.prepare(&format!("PRAGMA table_info({table})"))?;
        let names: Vec<String> = st
            .query_map([], |r| r.get::<_, String>(1))?
            .collect::<Result<_, _>>()?;
        Ok(names.iter().any(|n| n == col))
    };
    if !has("dead_letters", "correlation_id")? {
        c.execute_batch("ALTER TABLE dead_letters ADD COLUMN correlation_id TEXT")?;
    }
    Ok(())
}

pub(crate) fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

impl Store {
    /// Open (or create) the store at `path`. The token key comes from `SWITCHYARD_STORE_KEY`
    /// (any string; its SHA-256 is the key); without it tokens are not persisted.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let p = path.display().to_string();
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| StoreError::Io(p.clone(), e))?;
        }
        let sql = |source| StoreError::Sqlite {
            path: p.clone(),
            source,
        };
        let mut conn = Connection::open(path).map_err(sql)?;
        conn.busy_timeout(std::time::Duration::from_secs(10))
            .map_err(sql)?;
        // Switching to WAL and creating the tables take an exclusive lock that SQLite does not
        // wait for through the busy handler: two processes opening a fresh store at once would
        // see "database is locked". Retry for a while instead.
        let mut delay = std::time::Duration::from_millis(5);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        loop {
            let r = conn
                .execute_batch("PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;")
                .and_then(|_| conn.execute_batch(SCHEMA))
                .and_then(|_| conn.execute_batch(delivery::SCHEMA))
                .and_then(|_| conn.execute_batch(inbox::SCHEMA))
                .and_then(|_| conn.execute_batch(apikeys::SCHEMA))
                .and_then(|_| conn.execute_batch(oauth::SCHEMA));
            // The column check and the ALTER run in one write transaction: two processes
            // migrating a fresh store at once would otherwise both see the column missing.
            let r = r.and_then(|_| {
                let tx = write_tx(&mut conn)?;
                migrate(&tx)?;
                tx.commit()
            });
            match r {
                Ok(()) => break,
                Err(rusqlite::Error::SqliteFailure(e, _))
                    if matches!(
                        e.code,
                        rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked
                    ) && std::time::Instant::now() < deadline =>
                {
                    std::thread::sleep(delay);
                    delay = (delay * 2).min(std::time::Duration::from_millis(200));
                }
                Err(e) => return Err(sql(e)),
            }
        }
        let key = std::env::var("SWITCHYARD_STORE_KEY")
            .ok()
            .map(|k| key_from(&k));
        Ok(Self {
            conn: Mutex::new(conn),
            path: p,
            key,
        })
    }

    /// How long a write waits for another process's lock before it fails (default 10 s).
    pub fn set_busy_timeout(&self, t: std::time::Duration) -> Result<(), StoreError> {
        self.with(|c| c.busy_timeout(t))
    }

    /// The database file.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// Where dead letters go when the store refuses them: an NDJSON file beside the database.
    pub fn fallback_path(&self) -> std::path::PathBuf {
        std::path::PathBuf::from(format!("{}.dead-letters.ndjson", self.path))
    }

    /// Append a dead letter the store refused to the fallback file (one JSON line; replay it
    /// with `switchyard deadletter import`). Returns the file.
    pub fn dead_letter_fallback(
        &self,
        d: &NewDeadLetter<'_>,
    ) -> std::io::Result<std::path::PathBuf> {
        use std::io::Write;
        let p = self.fallback_path();
        let line = serde_json::json!({
            "tenant": d.tenant, "connector": d.connector, "route": d.route, "object": d.object,
            "record_key": d.record_key, "payload": d.payload, "reason": d.reason,
            "attempts": d.attempts, "created_at": now(), "correlation_id": d.correlation_id,
        });
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&p)?;
        writeln!(f, "{line}")?;
        f.sync_data()?;
        Ok(p)
    }

    /// Use `secret` (any string) as the token encryption key.
    pub fn with_key(mut self, secret: &str) -> Self {
        self.key = Some(key_from(secret));
        self
    }

    fn with<T>(
        &self,
        f: impl FnOnce(&mut Connection) -> rusqlite::Result<T>,
    ) -> Result<T, StoreError> {
        let mut c = self.conn.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut c).map_err(|source| StoreError::Sqlite {
            path: self.path.clone(),
            source,
        })
    }

    /// Whether the store answers (a trivial read), for health checks.
    pub fn ping(&self) -> Result<(), StoreError> {
        self.with(|c| c.query_row("SELECT 1", [], |_| Ok(())))
    }

    /// Dead letters still pending, for health and metrics.
    pub fn pending_dead_letters(&self) -> Result<u64, StoreError> {
        self.with(|c| {
            c.query_row(
                "SELECT COUNT(*) FROM dead_letters WHERE status = 'pending'",
                [],
                |r| r.get::<_, i64>(0),
            )
        })
        .map(|n| u64::try_from(n).unwrap_or(0))
    }

    /// The sync cursor of a tenant, connector and object.
    pub fn cursor(
        &self,
        tenant: &str,
        connector: &str,
        object: &str,
    ) -> Result<Option<String>, StoreError> {
        self.with(|c| {
            c.query_row(
                "SELECT cursor FROM sync_cursors WHERE tenant=?1 AND connector=?2 AND object=?3",
                params![tenant, connector, object],
                |r| r.get(0),
            )
            .optional()
        })
    }

    /// Save a sync cursor.
    pub fn set_cursor(
        &self,
        tenant: &str,
        connector: &str,
        object: &str,
        cursor: &str,
    ) -> Result<(), StoreError> {
        self.with(|c| {
            c.execute(
                "INSERT INTO sync_cursors VALUES (?1,?2,?3,?4,?5)
                 ON CONFLICT(tenant,connector,object) DO UPDATE SET cursor=excluded.cursor, updated_at=excluded.updated_at",
                params![tenant, connector, object, cursor, now()],
            )
            .map(|_| ())
        })
    }

    /// The remote id recorded for a match key.
    pub fn dedupe_get(
        &self,
        tenant: &str,
        connector: &str,
        object: &str,
        key: &str,
    ) -> Result<Option<String>, StoreError> {
        self.with(|c| {
            c.query_row(
                "SELECT remote_id FROM dedupe_index WHERE tenant=?1 AND connector=?2 AND object=?3 AND match_key=?4",
                params![tenant, connector, object, key],
                |r| r.get(0),
            )
            .optional()
        })
    }

    /// Record match keys → remote id.
    pub fn dedupe_put(
        &self,
        tenant: &str,
        connector: &str,
        object: &str,
        keys: &[String],
        id: &str,
    ) -> Result<(), StoreError> {
        self.with(|c| {
            let t = now();
            for k in keys {
                c.execute(
                    "INSERT INTO dedupe_index VALUES (?1,?2,?3,?4,?5,?6)
                     ON CONFLICT(tenant,connector,object,match_key) DO UPDATE SET remote_id=excluded.remote_id, updated_at=excluded.updated_at",
                    params![tenant, connector, object, k, id, t],
                )?;
            }
            Ok(())
        })
    }

    /// Forget every match key recorded for a remote id (the record is gone from the CRM).
    pub fn dedupe_forget(
        &self,
        tenant: &str,
        connector: &str,
        object: &str,
        id: &str,
    ) -> Result<(), StoreError> {
        self.with(|c| {
            c.execute(
                "DELETE FROM dedupe_index WHERE tenant=?1 AND connector=?2 AND object=?3 AND remote_id=?4",
                params![tenant, connector, object, id],
            )
            .map(|_| ())
        })
    }

    /// Add a dead letter; returns its id. There is at most one pending dead letter per
    /// (tenant, connector, record key): a record that fails again updates it (reason, payload,
    /// attempts). With `settle`, the record's delivery state is written in the same
    /// transaction, so no crash can leave a record both dead-lettered and unsettled.
    pub fn dead_letter(&self, d: &NewDeadLetter<'_>) -> Result<i64, StoreError> {
        let t = now();
        self.with(|c| {
            let tx = write_tx(c)?;
            let existing: Option<i64> = tx
                .query_row(
                    "SELECT id FROM dead_letters WHERE tenant=?1 AND connector=?2 AND record_key=?3 AND status='pending'",
                    params![d.tenant, d.connector, d.record_key],
                    |r| r.get(0),
                )
                .optional()?;
            let id = match existing {
                Some(id) => {
                    tx.execute(
                        "UPDATE dead_letters SET route=?2, object=?3, payload=?4, reason=?5, attempts=attempts+?6, created_at=?7, correlation_id=?8 WHERE id=?1",
                        params![id, d.route, d.object, d.payload.to_string(), d.reason, d.attempts, t, d.correlation_id],
                    )?;
                    id
                }
                None => {
                    tx.execute(
                        "INSERT INTO dead_letters (tenant,connector,route,object,record_key,payload,reason,attempts,created_at,correlation_id)
                         VALUES (?1,?2,?3,?4,?5,?6,?7,?8,?9,?10)",
                        params![d.tenant, d.connector, d.route, d.object, d.record_key, d.payload.to_string(), d.reason, d.attempts, t, d.correlation_id],
                    )?;
                    tx.last_insert_rowid()
                }
            };
            if let Some((ns, state)) = d.settle {
                tx.execute(
                    "INSERT INTO deliveries (tenant,ns,object,record_key,state,remote_id,owner,attempts,updated_at)
                     VALUES (?1,?2,?3,?4,?5,NULL,NULL,1,?6)
                     ON CONFLICT(tenant,ns,object,record_key) DO UPDATE SET
                       state=excluded.state, owner=NULL, updated_at=excluded.updated_at",
                    params![d.tenant, ns, d.object, d.record_key, state.as_str(), t],
                )?;
            }
            tx.commit()?;
            Ok(id)
        })
    }

    /// Mark the pending dead letters of a record delivered (a rerun or a replay got it
    /// through): a record is never both in the CRM and pending in the dead letters.
    pub fn resolve_dead_letters(
        &self,
        tenant: &str,
        connector: &str,
        record_key: &str,
    ) -> Result<usize, StoreError> {
        self.with(|c| {
            c.execute(
                "UPDATE dead_letters SET status='delivered' WHERE tenant=?1 AND connector=?2 AND record_key=?3 AND status='pending'",
                params![tenant, connector, record_key],
            )
        })
    }

    /// Dead letters, oldest first; `pending_only` hides replayed ones.
    pub fn dead_letters(&self, pending_only: bool) -> Result<Vec<DeadLetter>, StoreError> {
        self.dead_letters_where(None, pending_only, u32::MAX)
    }

    /// One tenant's dead letters, oldest first, at most `limit` (for the service, which must
    /// not load every tenant's records to answer one).
    pub fn tenant_dead_letters(
        &self,
        tenant: &str,
        pending_only: bool,
        limit: u32,
    ) -> Result<Vec<DeadLetter>, StoreError> {
        self.dead_letters_where(Some(tenant), pending_only, limit)
    }

    fn dead_letters_where(
        &self,
        tenant: Option<&str>,
        pending_only: bool,
        limit: u32,
    ) -> Result<Vec<DeadLetter>, StoreError> {
        self.with(|c| {
            let mut st = c.prepare(
                "SELECT id,tenant,connector,route,object,record_key,payload,reason,attempts,created_at,status,correlation_id
                 FROM dead_letters WHERE (?1 = 0 OR status='pending') AND (?2 IS NULL OR tenant = ?2)
                 ORDER BY id LIMIT ?3",
            )?;
            let rows = st.query_map(params![pending_only as i32, tenant, limit], |r| {
                let payload: String = r.get(6)?;
                Ok(DeadLetter {
                    id: r.get(0)?,
                    tenant: r.get(1)?,
                    connector: r.get(2)?,
                    route: r.get(3)?,
                    object: r.get(4)?,
                    record_key: r.get(5)?,
                    payload: serde_json::from_str(&payload).unwrap_or(Value::Null),
                    reason: r.get(7)?,
                    attempts: r.get(8)?,
                    created_at: r.get(9)?,
                    status: r.get(10)?,
                    correlation_id: r.get(11)?,
                })
            })?;
            rows.collect()
        })
    }

    /// Persist an OAuth token (sealed); a no-op without a key.
    pub fn put_token(
        &self,
        tenant: &str,
        connector: &str,
        token: &Value,
    ) -> Result<(), StoreError> {
        let Some(key) = &self.key else { return Ok(()) };
        let mut nonce = [0u8; 12];
        SystemRandom::new()
            .fill(&mut nonce)
            .map_err(|_| StoreError::Crypto)?;
        let mut data = token.to_string().into_bytes();
        key.seal_in_place_append_tag(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(aad(tenant, connector).as_bytes()),
            &mut data,
        )
        .map_err(|_| StoreError::Crypto)?;
        self.with(|c| {
            c.execute(
                "INSERT INTO oauth_tokens VALUES (?1,?2,?3,?4,?5)
                 ON CONFLICT(tenant,connector) DO UPDATE SET nonce=excluded.nonce, sealed=excluded.sealed, updated_at=excluded.updated_at",
                params![tenant, connector, nonce.to_vec(), data, now()],
            )
            .map(|_| ())
        })
    }

    /// Read a persisted OAuth token; `None` without a key or token.
    pub fn get_token(&self, tenant: &str, connector: &str) -> Result<Option<Value>, StoreError> {
        let Some(key) = &self.key else {
            return Ok(None);
        };
        let row: Option<(Vec<u8>, Vec<u8>)> = self.with(|c| {
            c.query_row(
                "SELECT nonce, sealed FROM oauth_tokens WHERE tenant=?1 AND connector=?2",
                params![tenant, connector],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()
        })?;
        let Some((nonce, mut sealed)) = row else {
            return Ok(None);
        };
        let nonce: [u8; 12] = nonce.try_into().map_err(|_| StoreError::Crypto)?;
        let plain = key
            .open_in_place(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(aad(tenant, connector).as_bytes()),
                &mut sealed,
            )
            .map_err(|_| StoreError::Crypto)?;
        serde_json::from_slice(plain)
            .map(Some)
            .map_err(|_| StoreError::Crypto)
    }

    /// The raw sealed token bytes (for tests proving encryption at rest).
    pub fn sealed_token_bytes(
        &self,
        tenant: &str,
        connector: &str,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        self.with(|c| {
            c.query_row(
                "SELECT sealed FROM oauth_tokens WHERE tenant=?1 AND connector=?2",
                params![tenant, connector],
                |r| r.get(0),
            )
            .optional()
        })
    }
}

fn aad(tenant: &str, connector: &str) -> String {
    format!("switchyard-token:{tenant}:{connector}")
}

fn key_from(secret: &str) -> LessSafeKey {
    use sha2::Digest;
    let k = sha2::Sha256::digest(secret.as_bytes());
    // 32 bytes is always a valid ChaCha20-Poly1305 key.
    let unbound = UnboundKey::new(&aead::CHACHA20_POLY1305, &k).unwrap_or_else(|_| unreachable!());
    LessSafeKey::new(unbound)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn cursors_dedupe_dead_letters_and_sealed_tokens_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(&dir.path().join("s.sqlite"))
            .unwrap()
            .with_key("k1");
        assert_eq!(s.cursor("t", "hubspot", "contact").unwrap(), None);
        s.set_cursor("t", "hubspot", "contact", "2026-01-01T00:00:00Z")
            .unwrap();
        s.set_cursor("t", "hubspot", "contact", "2026-01-02T00:00:00Z")
            .unwrap();
        assert_eq!(
            s.cursor("t", "hubspot", "contact").unwrap().as_deref(),
            Some("2026-01-02T00:00:00Z")
        );
        s.dedupe_put("t", "hubspot", "contact", &["email:a@b.c".into()], "42")
            .unwrap();
        assert_eq!(
            s.dedupe_get("t", "hubspot", "contact", "email:a@b.c")
                .unwrap()
                .as_deref(),
            Some("42")
        );
        let payload = json!({"a": 1});
        let dl = |reason| NewDeadLetter {
            tenant: "t",
            connector: "hubspot",
            route: "r.json",
            object: "contact",
            record_key: "k",
            payload: &payload,
            reason,
            attempts: 5,
            settle: Some(("hubspot", Settle::Refused)),
            correlation_id: Some("run-1"),
        };
        let id = s.dead_letter(&dl("boom")).unwrap();
        // The same record failing again updates its one pending dead letter.
        assert_eq!(s.dead_letter(&dl("boom again")).unwrap(), id);
        let rows = s.dead_letters(true).unwrap();
        assert_eq!(
            (rows.len(), rows[0].reason.as_str(), rows[0].attempts),
            (1, "boom again", 10)
        );
        assert_eq!(
            s.delivery_state("t", "hubspot", "contact", "k").unwrap(),
            Some(("refused".to_string(), None))
        );
        assert_eq!(s.resolve_dead_letters("t", "hubspot", "k").unwrap(), 1);
        assert!(s.dead_letters(true).unwrap().is_empty());
        assert_eq!(s.dead_letters(false).unwrap()[0].status, "delivered");
        s.put_token("t", "zoho", &json!({"access_token": "1000.secret-token"}))
            .unwrap();
        let raw = s.sealed_token_bytes("t", "zoho").unwrap().unwrap();
        assert!(!String::from_utf8_lossy(&raw).contains("secret-token"));
        assert_eq!(
            s.get_token("t", "zoho").unwrap().unwrap()["access_token"],
            "1000.secret-token"
        );
        let other = Store::open(&dir.path().join("s.sqlite"))
            .unwrap()
            .with_key("k2");
        assert!(matches!(
            other.get_token("t", "zoho"),
            Err(StoreError::Crypto)
        ));
    }
}
