//! The webhook inbox: an accepted (verified) webhook body is written here before it is mapped
//! and delivered, and removed once its outcome is settled (delivered, dead-lettered or refused
//! by the mapping). What is still here after a crash is delivered when `serve` starts again —
//! a sender that got no answer, or one that did not retry, loses nothing. Processing an entry
//! twice (two processes on one store, a crash after delivery but before removal) is safe: the
//! delivery state machine creates each record's objects at most once.

use super::{Store, StoreError, now, write_tx};
use rusqlite::params;

pub(super) const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS webhook_inbox (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  tenant TEXT NOT NULL, source TEXT NOT NULL, body BLOB NOT NULL,
  correlation_id TEXT NOT NULL, received_at TEXT NOT NULL,
  attempts INTEGER NOT NULL DEFAULT 0);
CREATE INDEX IF NOT EXISTS webhook_inbox_by_route ON webhook_inbox (tenant, source, id);
";

/// One accepted webhook whose outcome is not settled yet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InboxEntry {
    /// Its id in the inbox.
    pub id: i64,
    /// Tenant of the route it came in on.
    pub tenant: String,
    /// Source of the route it came in on.
    pub source: String,
    /// The verified body, as received.
    pub body: Vec<u8>,
    /// The request's correlation id.
    pub correlation_id: String,
    /// When it was accepted (RFC 3339).
    pub received_at: String,
    /// How many times its processing began.
    pub attempts: i64,
}

impl Store {
    /// Keep a verified webhook body durably (committed before this returns); returns its id.
    pub fn inbox_accept(
        &self,
        tenant: &str,
        source: &str,
        body: &[u8],
        correlation_id: &str,
    ) -> Result<i64, StoreError> {
        self.with(|c| {
            let tx = write_tx(c)?;
            tx.execute(
                "INSERT INTO webhook_inbox (tenant, source, body, correlation_id, received_at, attempts)
                 VALUES (?1, ?2, ?3, ?4, ?5, 1)",
                params![tenant, source, body, correlation_id, now()],
            )?;
            let id = tx.last_insert_rowid();
            tx.commit()?;
            Ok(id)
        })
    }

    /// The entry's outcome is settled: forget it.
    pub fn inbox_settle(&self, id: i64) -> Result<(), StoreError> {
        self.with(|c| {
            c.execute("DELETE FROM webhook_inbox WHERE id = ?1", params![id])?;
            Ok(())
        })
    }

    /// Entries not settled yet with an id above `after`, oldest first, at most `limit` (page
    /// through with the last id seen: bodies can be large); each one's attempt count is raised
    /// (so an entry that keeps crashing its process can be recognised).
    pub fn inbox_unsettled(&self, after: i64, limit: usize) -> Result<Vec<InboxEntry>, StoreError> {
        self.with(|c| {
            let tx = write_tx(c)?;
            let rows = {
                let mut st = tx.prepare(
                    "SELECT id, tenant, source, body, correlation_id, received_at, attempts
                     FROM webhook_inbox WHERE id > ?1 ORDER BY id LIMIT ?2",
                )?;
                st.query_map(
                    params![after, i64::try_from(limit).unwrap_or(i64::MAX)],
                    |r| {
                        Ok(InboxEntry {
                            id: r.get(0)?,
                            tenant: r.get(1)?,
                            source: r.get(2)?,
                            body: r.get(3)?,
                            correlation_id: r.get(4)?,
                            received_at: r.get(5)?,
                            attempts: r.get(6)?,
                        })
                    },
                )?
                .collect::<Result<Vec<_>, _>>()?
            };
            for e in &rows {
                tx.execute(
                    "UPDATE webhook_inbox SET attempts = attempts + 1 WHERE id = ?1",
                    params![e.id],
                )?;
            }
            tx.commit()?;
            Ok(rows)
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn accepted_entries_survive_reopening_until_settled() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.sqlite");
        let id = {
            let s = Store::open(&path).unwrap();
            s.inbox_accept("t1", "callrail", b"{\"a\":1}", "req-1")
                .unwrap()
        };
        let s = Store::open(&path).unwrap();
        let open = s.inbox_unsettled(0, 10).unwrap();
        assert_eq!(open.len(), 1);
        assert_eq!(
            (open[0].id, open[0].body.as_slice(), open[0].attempts),
            (id, &b"{\"a\":1}"[..], 1)
        );
        assert_eq!(s.inbox_unsettled(0, 10).unwrap()[0].attempts, 2);
        s.inbox_settle(id).unwrap();
        assert!(s.inbox_unsettled(0, 10).unwrap().is_empty());
    }
}
