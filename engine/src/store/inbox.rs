//! The webhook inbox: an accepted (verified) webhook body is written here before it is mapped
//! and delivered, and removed once its outcome is settled for every route that serves its
//! tenant and source. What is still here after a crash is delivered when `serve` starts again
//! — a sender that got no answer, or one that did not retry, loses nothing.
//!
//! One body fans out to several routes: each route that settles writes a row in
//! `webhook_inbox_routes`, so an entry interrupted between route 1 and route 2 is delivered to
//! route 2 only after a restart. (Processing a route twice — a crash between its delivery and
//! its row — is still safe: the delivery state machine creates each record's objects at most
//! once.)
//!
//! `attempts` counts how many times processing of an entry began; a caller that finds it
//! above its limit moves the entry to the dead letters instead of trying again (a body that
//! crashes its process every time it is processed must not be retried at every start).
//!
//! Accepts are written in groups ([`Store::inbox_accept_many`]: one transaction for many
//! bodies), so thousands of bodies a second are durable without one commit each.

use super::{Store, StoreError, now, write_tx};
use rusqlite::{OptionalExtension, params};

pub(super) const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS webhook_inbox (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  tenant TEXT NOT NULL, source TEXT NOT NULL, body BLOB NOT NULL,
  correlation_id TEXT NOT NULL, received_at TEXT NOT NULL,
  attempts INTEGER NOT NULL DEFAULT 0);
CREATE INDEX IF NOT EXISTS webhook_inbox_by_route ON webhook_inbox (tenant, source, id);
CREATE TABLE IF NOT EXISTS webhook_inbox_routes (
  inbox_id INTEGER NOT NULL, route TEXT NOT NULL, outcome TEXT NOT NULL,
  settled_at TEXT NOT NULL,
  PRIMARY KEY (inbox_id, route));
";

/// A verified webhook body to keep.
#[derive(Debug, Clone, Copy)]
pub struct NewInboxEntry<'a> {
    /// Tenant of the address it came in on.
    pub tenant: &'a str,
    /// Source of the address it came in on.
    pub source: &'a str,
    /// The verified body, as received.
    pub body: &'a [u8],
    /// The request's correlation id.
    pub correlation_id: &'a str,
    /// Its processing begins at once (the request delivers it inline): counted as an attempt.
    pub begun: bool,
}

/// One accepted webhook whose outcome is not settled yet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InboxEntry {
    /// Its id in the inbox.
    pub id: i64,
    /// Tenant of the address it came in on.
    pub tenant: String,
    /// Source of the address it came in on.
    pub source: String,
    /// The verified body, as received.
    pub body: Vec<u8>,
    /// The request's correlation id.
    pub correlation_id: String,
    /// When it was accepted (RFC 3339).
    pub received_at: String,
    /// How many times its processing began (this one included, for [`Store::inbox_begin`]).
    pub attempts: i64,
    /// Routes that already settled it (their names), in no particular order.
    pub settled_routes: Vec<String>,
}

/// An entry as the dispatcher sees it: no body (bodies are read one at a time, when their
/// turn comes, so what waits in memory stays small).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InboxRef {
    /// Its id.
    pub id: i64,
    /// Tenant.
    pub tenant: String,
    /// Source.
    pub source: String,
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
        let ids = self.inbox_accept_many(&[NewInboxEntry {
            tenant,
            source,
            body,
            correlation_id,
            begun: true,
        }])?;
        Ok(ids.first().copied().unwrap_or_default())
    }

    /// Keep many bodies in one transaction (group commit); their ids in order. All or none
    /// are kept. The transaction is written with `synchronous = FULL` (the WAL is synced to
    /// disk before this returns: an answered body survives a power cut, not only a process
    /// crash); the rest of the store keeps `NORMAL`. One sync serves the whole group.
    pub fn inbox_accept_many(&self, entries: &[NewInboxEntry<'_>]) -> Result<Vec<i64>, StoreError> {
        let t = now();
        self.with(|c| {
            c.execute_batch("PRAGMA synchronous=FULL")?;
            let written = insert_all(c, entries, &t);
            let restored = c.execute_batch("PRAGMA synchronous=NORMAL");
            let ids = written?;
            restored?;
            Ok(ids)
        })
    }

    /// Entries with an id above `after` (and at most `upto`, when given), oldest first, at
    /// most `limit`; without their bodies.
    pub fn inbox_pending(
        &self,
        after: i64,
        upto: Option<i64>,
        limit: usize,
    ) -> Result<Vec<InboxRef>, StoreError> {
        self.with(|c| {
            let mut st = c.prepare_cached(
                "SELECT id, tenant, source FROM webhook_inbox
                 WHERE id > ?1 AND id <= ?2 ORDER BY id LIMIT ?3",
            )?;
            st.query_map(
                params![
                    after,
                    upto.unwrap_or(i64::MAX),
                    i64::try_from(limit).unwrap_or(i64::MAX)
                ],
                |r| {
                    Ok(InboxRef {
                        id: r.get(0)?,
                        tenant: r.get(1)?,
                        source: r.get(2)?,
                    })
                },
            )?
            .collect()
        })
    }

    /// Processing of entry `id` begins: its attempt count is raised (durably, before anything
    /// is delivered) and the entry is returned with the routes that already settled it.
    /// `None` when it is no longer in the inbox.
    pub fn inbox_begin(&self, id: i64) -> Result<Option<InboxEntry>, StoreError> {
        self.with(|c| {
            let tx = write_tx(c)?;
            let n = tx.execute(
                "UPDATE webhook_inbox SET attempts = attempts + 1 WHERE id = ?1",
                params![id],
            )?;
            if n == 0 {
                return Ok(None);
            }
            let entry = tx
                .query_row(
                    "SELECT id, tenant, source, body, correlation_id, received_at, attempts
                     FROM webhook_inbox WHERE id = ?1",
                    params![id],
                    |r| {
                        Ok(InboxEntry {
                            id: r.get(0)?,
                            tenant: r.get(1)?,
                            source: r.get(2)?,
                            body: r.get(3)?,
                            correlation_id: r.get(4)?,
                            received_at: r.get(5)?,
                            attempts: r.get(6)?,
                            settled_routes: Vec::new(),
                        })
                    },
                )
                .optional()?;
            let Some(mut entry) = entry else {
                return Ok(None);
            };
            {
                let mut st = tx
                    .prepare_cached("SELECT route FROM webhook_inbox_routes WHERE inbox_id = ?1")?;
                entry.settled_routes = st
                    .query_map(params![id], |r| r.get(0))?
                    .collect::<Result<_, _>>()?;
            }
            tx.commit()?;
            Ok(Some(entry))
        })
    }

    /// Route `route` settled entry `id` (`outcome` says how, for operators reading the
    /// store): it is not delivered through that route again.
    pub fn inbox_settle_route(
        &self,
        id: i64,
        route: &str,
        outcome: &str,
    ) -> Result<(), StoreError> {
        self.with(|c| {
            c.execute(
                "INSERT INTO webhook_inbox_routes (inbox_id, route, outcome, settled_at)
                 VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT(inbox_id, route) DO UPDATE SET outcome = excluded.outcome,
                   settled_at = excluded.settled_at",
                params![id, route, outcome, now()],
            )?;
            Ok(())
        })
    }

    /// Every route settled the entry: forget it (and its route rows). Whether it was there.
    pub fn inbox_settle(&self, id: i64) -> Result<bool, StoreError> {
        self.with(|c| {
            let tx = write_tx(c)?;
            let n = tx.execute("DELETE FROM webhook_inbox WHERE id = ?1", params![id])?;
            tx.execute(
                "DELETE FROM webhook_inbox_routes WHERE inbox_id = ?1",
                params![id],
            )?;
            tx.commit()?;
            Ok(n > 0)
        })
    }

    /// An attempt that was interrupted from outside (shutdown ran out of time) does not count
    /// toward the entry's limit.
    pub fn inbox_release(&self, id: i64) -> Result<(), StoreError> {
        self.with(|c| {
            c.execute(
                "UPDATE webhook_inbox SET attempts = MAX(attempts - 1, 0) WHERE id = ?1",
                params![id],
            )?;
            Ok(())
        })
    }

    /// How many entries are not settled yet.
    pub fn inbox_len(&self) -> Result<u64, StoreError> {
        self.with(|c| {
            c.query_row("SELECT COUNT(*) FROM webhook_inbox", [], |r| {
                r.get::<_, i64>(0)
            })
        })
        .map(|n| u64::try_from(n).unwrap_or(0))
    }

    /// The highest id in the inbox (0 when empty).
    pub fn inbox_max_id(&self) -> Result<i64, StoreError> {
        self.with(|c| {
            c.query_row("SELECT COALESCE(MAX(id), 0) FROM webhook_inbox", [], |r| {
                r.get(0)
            })
        })
    }
}

fn insert_all(
    c: &mut rusqlite::Connection,
    entries: &[NewInboxEntry<'_>],
    t: &str,
) -> rusqlite::Result<Vec<i64>> {
    let tx = write_tx(c)?;
    let mut ids = Vec::with_capacity(entries.len());
    {
        let mut st = tx.prepare_cached(
            "INSERT INTO webhook_inbox (tenant, source, body, correlation_id, received_at, attempts)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        )?;
        for e in entries {
            st.execute(params![
                e.tenant,
                e.source,
                e.body,
                e.correlation_id,
                t,
                i64::from(e.begun)
            ])?;
            ids.push(tx.last_insert_rowid());
        }
    }
    tx.commit()?;
    Ok(ids)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn entry<'a>(tenant: &'a str, body: &'a [u8]) -> NewInboxEntry<'a> {
        NewInboxEntry {
            tenant,
            source: "callrail",
            body,
            correlation_id: "req-1",
            begun: false,
        }
    }

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
        let open = s.inbox_pending(0, None, 10).unwrap();
        assert_eq!(open.len(), 1);
        assert_eq!(s.inbox_len().unwrap(), 1);
        let e = s.inbox_begin(id).unwrap().unwrap();
        // Accepted by a request that delivers inline: that was attempt 1, this is 2.
        assert_eq!(
            (e.id, e.body.as_slice(), e.attempts),
            (id, &b"{\"a\":1}"[..], 2)
        );
        assert!(s.inbox_settle(id).unwrap());
        assert!(s.inbox_pending(0, None, 10).unwrap().is_empty());
        assert!(s.inbox_begin(id).unwrap().is_none());
        assert_eq!(s.inbox_len().unwrap(), 0);
    }

    #[test]
    fn a_group_commit_keeps_every_body_in_order_and_pages_by_id() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(&dir.path().join("s.sqlite")).unwrap();
        let bodies: Vec<Vec<u8>> = (0..5)
            .map(|i| format!("{{\"i\":{i}}}").into_bytes())
            .collect();
        let new: Vec<_> = bodies.iter().map(|b| entry("t1", b)).collect();
        let ids = s.inbox_accept_many(&new).unwrap();
        assert_eq!(ids.len(), 5);
        assert!(ids.windows(2).all(|w| w[0] < w[1]), "{ids:?}");
        let first = s.inbox_pending(0, None, 2).unwrap();
        assert_eq!(first.iter().map(|r| r.id).collect::<Vec<_>>(), ids[..2]);
        let rest = s.inbox_pending(ids[1], None, 10).unwrap();
        assert_eq!(rest.len(), 3);
        // Bounded above: what a restarted process recovers is what was there when it started.
        assert_eq!(s.inbox_pending(0, Some(ids[2]), 10).unwrap().len(), 3);
        assert_eq!(s.inbox_max_id().unwrap(), ids[4]);
        // Queued entries have not begun: their first processing is attempt 1.
        assert_eq!(s.inbox_begin(ids[3]).unwrap().unwrap().attempts, 1);
    }

    #[test]
    fn routes_that_settled_an_entry_are_remembered_until_the_entry_goes() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(&dir.path().join("s.sqlite")).unwrap();
        let id = s.inbox_accept_many(&[entry("t1", b"{}")]).unwrap()[0];
        s.inbox_settle_route(id, "hubspot-contacts", "delivered")
            .unwrap();
        // Settling twice is harmless.
        s.inbox_settle_route(id, "hubspot-contacts", "delivered")
            .unwrap();
        let e = s.inbox_begin(id).unwrap().unwrap();
        assert_eq!(e.settled_routes, vec!["hubspot-contacts".to_string()]);
        s.inbox_release(id).unwrap();
        assert_eq!(s.inbox_begin(id).unwrap().unwrap().attempts, 1);
        s.inbox_settle(id).unwrap();
        // A later entry that reuses nothing of it starts with no settled route.
        let id2 = s.inbox_accept_many(&[entry("t1", b"{}")]).unwrap()[0];
        assert!(
            s.inbox_begin(id2)
                .unwrap()
                .unwrap()
                .settled_routes
                .is_empty()
        );
    }
}
