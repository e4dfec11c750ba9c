//! The delivery workers: a bounded pool that drains the webhook inbox, in order per (tenant,
//! source). A dispatcher reads entry ids (never bodies) from the inbox, oldest first, and
//! hands each to the worker its (tenant, source) hashes to; a worker takes one entry at a
//! time, so the entries of one tenant and source are delivered in the order they were
//! accepted, while other sources proceed on other workers. Memory holds at most
//! [`SHARD_QUEUE`] ids per worker; the backlog itself stays in the store.
//!
//! With `--ack accepted` the pool follows the inbox as it grows (woken by each group commit);
//! with the default `--ack delivered` requests deliver inline and the pool only recovers what
//! an earlier process left (entries up to the highest id at start).
//!
//! An entry whose processing began more than `--max-attempts` times (it crashed the process,
//! its delivery panicked, or its settlement could not be written) is a poison message: its
//! records are dead-lettered as `(inbox)` through each route that has not settled it, and it
//! leaves the inbox instead of being tried at every start.

use super::App;
use super::fanout::{self, Mode, Target};
use axum::body::Bytes;
use futures::FutureExt as _;
use std::collections::HashSet;
use std::hash::{Hash as _, Hasher as _};
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use switchyard::store::{InboxRef, Store};
use tokio::sync::{Notify, mpsc, watch};
use tokio::task::JoinSet;

/// Ids waiting per worker.
const SHARD_QUEUE: usize = 256;
/// Ids read from the inbox at once.
const PAGE: usize = 256;
/// How often the dispatcher looks at the inbox without being woken.
const POLL: Duration = Duration::from_secs(1);

/// How the pool runs.
#[derive(Debug, Clone, Copy)]
pub(super) struct Options {
    /// Workers (at least 1).
    pub workers: usize,
    /// Only entries up to this id (recovery), or every entry as the inbox grows (`None`).
    pub upto: Option<i64>,
    /// Entries at or below this id were left by an earlier process (counted as recovered).
    pub recovered_upto: i64,
    /// Processing attempts before an entry is dead-lettered.
    pub max_attempts: i64,
}

/// The running pool.
pub(super) struct Pool {
    stop: Arc<watch::Sender<bool>>,
    tasks: JoinSet<()>,
    in_hand: Arc<Mutex<HashSet<i64>>>,
    store: Arc<Store>,
}

impl Pool {
    pub fn start(app: Arc<App>, store: Arc<Store>, opts: Options, wake: Arc<Notify>) -> Pool {
        let (stop, stopped) = watch::channel(false);
        let in_hand = Arc::new(Mutex::new(HashSet::new()));
        let mut tasks = JoinSet::new();
        let mut shards = Vec::new();
        for _ in 0..opts.workers.max(1) {
            let (tx, rx) = mpsc::channel(SHARD_QUEUE);
            shards.push(tx);
            tasks.spawn(work(
                app.clone(),
                store.clone(),
                rx,
                stopped.clone(),
                in_hand.clone(),
                opts,
            ));
        }
        tasks.spawn(dispatch(store.clone(), opts.upto, shards, wake, stopped));
        Pool {
            stop: Arc::new(stop),
            tasks,
            in_hand,
            store,
        }
    }

    /// Take no new entry; the workers finish the one in hand.
    pub fn stop(&self) {
        let _ = self.stop.send(true);
    }

    /// What stops the pool (`send(true)`), for a signal handler.
    pub fn stopper(&self) -> Arc<watch::Sender<bool>> {
        self.stop.clone()
    }

    /// Stop, and wait for the entries in hand until `deadline`; what is still running then
    /// is abandoned (it stays in the inbox, its interrupted attempt not counted). Returns how
    /// many entries were abandoned.
    pub async fn finish(mut self, deadline: tokio::time::Instant) -> usize {
        self.stop();
        let drained = tokio::time::timeout_at(deadline, async {
            while self.tasks.join_next().await.is_some() {}
        })
        .await;
        if drained.is_ok() {
            return 0;
        }
        self.tasks.abort_all();
        while self.tasks.join_next().await.is_some() {}
        let ids: Vec<i64> = self
            .in_hand
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .drain()
            .collect();
        for id in &ids {
            if let Err(e) = self.store.inbox_release(*id) {
                tracing::warn!(inbox_id = id, error = %e, "cannot release an interrupted inbox entry");
            }
        }
        ids.len()
    }
}

fn shard(r: &InboxRef, n: usize) -> usize {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    r.tenant.hash(&mut h);
    r.source.hash(&mut h);
    (h.finish() % n.max(1) as u64) as usize
}

async fn dispatch(
    store: Arc<Store>,
    upto: Option<i64>,
    shards: Vec<mpsc::Sender<InboxRef>>,
    wake: Arc<Notify>,
    mut stop: watch::Receiver<bool>,
) {
    let mut cursor = 0i64;
    let mut announced = false;
    loop {
        if *stop.borrow() {
            return;
        }
        let s = store.clone();
        let page = tokio::task::spawn_blocking(move || s.inbox_pending(cursor, upto, PAGE)).await;
        let page = match page {
            Ok(Ok(p)) => p,
            Ok(Err(e)) => {
                tracing::error!(error = %e, "cannot read the webhook inbox; trying again");
                tokio::select! {
                    () = tokio::time::sleep(POLL) => continue,
                    _ = stop.wait_for(|s| *s) => return,
                }
            }
            Err(_) => return,
        };
        if page.is_empty() {
            if upto.is_some() {
                // Recovery only: what the earlier process left is handed out.
                return;
            }
            tokio::select! {
                () = wake.notified() => {}
                () = tokio::time::sleep(POLL) => {}
                _ = stop.wait_for(|s| *s) => return,
            }
            continue;
        }
        if upto.is_some() && !announced {
            announced = true;
            tracing::info!("delivering webhooks accepted before the last stop");
        }
        for r in page {
            cursor = r.id;
            let tx = &shards[shard(&r, shards.len())];
            tokio::select! {
                sent = tx.send(r) => if sent.is_err() { return },
                _ = stop.wait_for(|s| *s) => return,
            }
        }
    }
}

async fn work(
    app: Arc<App>,
    store: Arc<Store>,
    mut rx: mpsc::Receiver<InboxRef>,
    mut stop: watch::Receiver<bool>,
    in_hand: Arc<Mutex<HashSet<i64>>>,
    opts: Options,
) {
    loop {
        let r = tokio::select! {
            biased;
            _ = stop.wait_for(|s| *s) => return,
            r = rx.recv() => match r {
                Some(r) => r,
                None => return,
            },
        };
        process(&app, &store, r, &opts, &mut stop, &in_hand).await;
    }
}

/// Sleeps `d`; `true` when the pool is stopping instead.
async fn pause(d: Duration, stop: &mut watch::Receiver<bool>) -> bool {
    tokio::select! {
        () = tokio::time::sleep(d) => false,
        _ = stop.wait_for(|s| *s) => true,
    }
}

/// Deliver one entry through the routes that have not settled it; on failure try again (it
/// keeps its place: the later entries of its source wait) until it settles, the pool stops,
/// or it turns out to be a poison message.
async fn process(
    app: &Arc<App>,
    store: &Arc<Store>,
    r: InboxRef,
    opts: &Options,
    stop: &mut watch::Receiver<bool>,
    in_hand: &Mutex<HashSet<i64>>,
) {
    let key = (r.tenant.clone(), r.source.clone());
    let mut delay = Duration::from_millis(200);
    loop {
        let Some(served) = app.sources.get(&key) else {
            tracing::warn!(tenant = %r.tenant, source = %r.source, inbox_id = r.id,
                "an accepted webhook has no route now; it stays in the inbox until one serves it");
            return;
        };
        in_hand
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(r.id);
        let s = store.clone();
        let begun = tokio::task::spawn_blocking(move || s.inbox_begin(r.id)).await;
        let done = match begun {
            Ok(Ok(None)) => true,
            Ok(Ok(Some(entry))) => {
                let targets: Vec<Target> = served
                    .iter()
                    .filter(|s| !entry.settled_routes.contains(&s.name))
                    .map(|s| Target::of(s))
                    .collect();
                let cid = entry.correlation_id.clone();
                let body = Bytes::from(entry.body);
                let poisoned = entry.attempts > opts.max_attempts;
                let reason = format!(
                    "processing began {} times without finishing (the limit is {}): moved from the webhook inbox to the dead letters",
                    entry.attempts - 1,
                    opts.max_attempts
                );
                let mode = if poisoned {
                    Mode::Abandon(&reason)
                } else {
                    Mode::Kept
                };
                let run =
                    AssertUnwindSafe(fanout::deliver(app, entry.id, targets, &body, &cid, mode))
                        .catch_unwind()
                        .await;
                match run {
                    Ok((outcomes, settled)) => {
                        let recovered = entry.id <= opts.recovered_upto;
                        for o in outcomes
                            .iter()
                            .filter_map(|o| o.result.as_ref().ok().map(|r| (o, r)))
                        {
                            let (o, rep) = o;
                            if poisoned {
                                tracing::error!(tenant = %r.tenant, source = %r.source, route = %o.name,
                                    correlation_id = %cid, inbox_id = entry.id, attempts = entry.attempts - 1,
                                    dead_lettered = rep.dead_lettered, "poison webhook moved to the dead letters");
                            } else if recovered {
                                tracing::info!(tenant = %r.tenant, source = %r.source, route = %o.name,
                                    correlation_id = %cid, created = rep.created, updated = rep.updated,
                                    failed = rep.failed, "accepted webhook delivered after restart");
                            } else {
                                tracing::debug!(tenant = %r.tenant, source = %r.source, route = %o.name,
                                    correlation_id = %cid, created = rep.created, updated = rep.updated,
                                    failed = rep.failed, "accepted webhook delivered");
                            }
                        }
                        if settled {
                            app.metrics.settled_from_inbox(recovered, poisoned);
                        }
                        settled
                    }
                    Err(_) => {
                        tracing::error!(tenant = %r.tenant, source = %r.source, correlation_id = %cid,
                            inbox_id = entry.id, attempt = entry.attempts,
                            "delivering an accepted webhook panicked; it will be tried again");
                        false
                    }
                }
            }
            Ok(Err(e)) => {
                tracing::error!(inbox_id = r.id, error = %e, "cannot begin an inbox entry; trying again");
                false
            }
            Err(e) => {
                tracing::error!(inbox_id = r.id, error = %e, "the inbox task failed; trying again");
                false
            }
        };
        in_hand
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&r.id);
        if done || pause(delay, stop).await {
            return;
        }
        delay = (delay * 2).min(Duration::from_secs(10));
    }
}
