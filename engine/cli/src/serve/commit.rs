//! Group commit of verified webhook bodies into the store's inbox. Requests hand their body to
//! one committer thread through a bounded queue; the committer takes everything waiting (up to
//! [`MAX_BATCH`]), writes it in one SQLite transaction, and only then answers each request
//! with its entry id. One commit serves many requests, so thousands of bodies a second are
//! durable before their answer; a full queue is refused at once (the caller answers 503 with
//! `Retry-After`), so memory stays bounded by `--queue-capacity` bodies.

use axum::body::Bytes;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use switchyard::store::{NewInboxEntry, Store};
use tokio::sync::{Notify, mpsc, oneshot};

/// Bodies written in one transaction at most.
pub(super) const MAX_BATCH: usize = 1024;

/// Why a body was not kept.
#[derive(Debug)]
pub(super) enum KeepError {
    /// The queue is full: the committer is behind. Retry shortly.
    Full,
    /// The service is shutting down.
    Closed,
    /// The store refused the transaction (the cause, for the log).
    Store(String),
}

/// A body waiting for its commit.
struct Pending {
    tenant: String,
    source: String,
    body: Bytes,
    correlation_id: String,
    begun: bool,
    reply: oneshot::Sender<Result<i64, String>>,
}

/// Counters of the committer (for `/metrics`).
#[derive(Default)]
pub(super) struct CommitStats {
    /// Transactions written.
    pub commits: AtomicU64,
    /// Bodies kept.
    pub kept: AtomicU64,
}

/// The intake side: where requests hand their bodies.
pub(super) struct Intake {
    queue: RwLock<Option<mpsc::Sender<Pending>>>,
    /// Entries not settled yet (what the inbox holds), kept up to date by the committer and
    /// by whoever settles an entry.
    pub backlog: Arc<AtomicU64>,
    pub stats: Arc<CommitStats>,
}

impl Intake {
    /// Start the committer thread over `store`; `committed` is notified after each commit.
    pub fn start(
        store: Arc<Store>,
        capacity: usize,
        backlog: u64,
        committed: Arc<Notify>,
    ) -> std::io::Result<(Intake, std::thread::JoinHandle<()>)> {
        let (tx, rx) = mpsc::channel(capacity.max(1));
        let backlog = Arc::new(AtomicU64::new(backlog));
        let stats = Arc::new(CommitStats::default());
        let thread = {
            let (backlog, stats) = (backlog.clone(), stats.clone());
            std::thread::Builder::new()
                .name("inbox-commit".into())
                .spawn(move || run(store, rx, committed, backlog, stats))?
        };
        Ok((
            Intake {
                queue: RwLock::new(Some(tx)),
                backlog,
                stats,
            },
            thread,
        ))
    }

    /// Keep `body` durably; returns its inbox id once its transaction committed. `begun`: the
    /// caller delivers it at once (counted as its first attempt).
    pub async fn keep(
        &self,
        tenant: &str,
        source: &str,
        body: Bytes,
        correlation_id: &str,
        begun: bool,
    ) -> Result<i64, KeepError> {
        let (reply, answer) = oneshot::channel();
        let pending = Pending {
            tenant: tenant.to_string(),
            source: source.to_string(),
            body,
            correlation_id: correlation_id.to_string(),
            begun,
            reply,
        };
        {
            let queue = self.queue.read().unwrap_or_else(|p| p.into_inner());
            let Some(tx) = queue.as_ref() else {
                return Err(KeepError::Closed);
            };
            tx.try_send(pending).map_err(|e| match e {
                mpsc::error::TrySendError::Full(_) => KeepError::Full,
                mpsc::error::TrySendError::Closed(_) => KeepError::Closed,
            })?;
        }
        match answer.await {
            Ok(Ok(id)) => Ok(id),
            Ok(Err(e)) => Err(KeepError::Store(e)),
            Err(_) => Err(KeepError::Store("the committer stopped".into())),
        }
    }

    /// Refuse new bodies; the committer writes what is queued and stops.
    pub fn close(&self) {
        self.queue.write().unwrap_or_else(|p| p.into_inner()).take();
    }

    /// One entry left the inbox.
    pub fn settled(&self) {
        let _ = self
            .backlog
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
                Some(n.saturating_sub(1))
            });
    }
}

fn run(
    store: Arc<Store>,
    mut rx: mpsc::Receiver<Pending>,
    committed: Arc<Notify>,
    backlog: Arc<AtomicU64>,
    stats: Arc<CommitStats>,
) {
    let mut batch: Vec<Pending> = Vec::with_capacity(MAX_BATCH);
    while let Some(first) = rx.blocking_recv() {
        batch.push(first);
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(p) => batch.push(p),
                Err(_) => break,
            }
        }
        let entries: Vec<NewInboxEntry<'_>> = batch
            .iter()
            .map(|p| NewInboxEntry {
                tenant: &p.tenant,
                source: &p.source,
                body: &p.body,
                correlation_id: &p.correlation_id,
                begun: p.begun,
            })
            .collect();
        let written = store.inbox_accept_many(&entries);
        drop(entries);
        match written {
            Ok(ids) => {
                stats.commits.fetch_add(1, Ordering::Relaxed);
                stats.kept.fetch_add(ids.len() as u64, Ordering::Relaxed);
                backlog.fetch_add(ids.len() as u64, Ordering::Relaxed);
                for (p, id) in batch.drain(..).zip(ids) {
                    let _ = p.reply.send(Ok(id));
                }
                committed.notify_one();
            }
            Err(e) => {
                tracing::error!(error = %e, bodies = batch.len(), "webhook bodies not kept: the store refused the transaction");
                let e = e.to_string();
                for p in batch.drain(..) {
                    let _ = p.reply.send(Err(e.clone()));
                }
            }
        }
    }
}
