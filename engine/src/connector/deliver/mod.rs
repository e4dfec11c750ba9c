//! Delivery of mapped records through a connector session: one state machine for every path
//! (batch or single, with or without duplicate detection), durable in the store before and
//! after each attempt.
//!
//! Per object of a record: **claim** it (the store says whether it was never sent, has an
//! unknown outcome, was delivered — with the CRM id — or is being sent by another live
//! process) → **resolve** what exists (an indexed id is verified to still carry the record's
//! match key; an unknown outcome is reconciled by search; duplicate detection searches the
//! vendor) → **write** (update the existing object, or create — a 409 that names the existing
//! object becomes an update; a create with an unknown outcome is reconciled before it is
//! retried, never repeated blind) → **settle** (`done` with the id, or a dead letter with the
//! reason and the state, in one transaction). Workflow actions run once per record and
//! trigger, tracked the same way.
//!
//! Files: `ledger.rs` (the store side: claims, settles, dead letters, action ledger),
//! `object.rs` (one object's state machine), `batch.rs` (batch creates and pairing results),
//! `dedupe.rs` (batch duplicate detection: the same states for a batch of records),
//! `lookup.rs` (reads by id or unique field, searches for many values at once).
//! `related.rs` (the connector's related objects, lookups and associations).

mod batch;
mod dedupe;
pub mod input;
mod ledger;
mod lookup;

pub use ledger::process_owner;
mod object;
mod related;

use super::{ConnectorError, Session};
use crate::record::Mapped;
use crate::secrets::Redactor;
use crate::spec::connector::OperationKind;
use crate::spec::mapping::DuplicateDetection;
use crate::store::Store;
use futures::{Stream, StreamExt};
use ledger::Ledger;
use serde::Serialize;
use serde_json::{Map, Value, json};
use std::sync::Arc;

/// One record to deliver: its idempotency key and what the mapping made of it.
#[derive(Debug, Clone)]
pub struct DeliveryItem {
    /// Idempotency key (the source's id, or a hash of the payload).
    pub key: String,
    /// Mapped objects and fired triggers.
    pub mapped: Mapped,
}

/// An input line that did not become a record: not JSON, not UTF-8, or refused by the mapping.
/// It is dead-lettered with its text so that a replay can map it again.
#[derive(Debug, Clone)]
pub struct RejectedInput {
    /// The record's key (its id when it could be read, else a hash of the line).
    pub key: String,
    /// 1-based input line, when the input is a file or stream of lines.
    pub line: Option<usize>,
    /// `(input)` for a line that is not a record, `(mapping)` for one the mapping refused.
    pub stage: &'static str,
    /// The line as read.
    pub input: Vec<u8>,
    /// Why.
    pub reason: String,
}

/// What [`Deliverer::deliver_stream`] consumes.
#[derive(Debug, Clone)]
pub enum Input {
    /// A mapped record.
    Record(DeliveryItem),
    /// A line that is not a deliverable record.
    Rejected(RejectedInput),
}

/// How to deliver.
#[derive(Debug, Clone)]
pub struct DeliveryOptions {
    /// Mapping spec file of the route (kept with dead letters for replay).
    pub route: String,
    /// The tenant's duplicate detection (applies to `dedupe_object`).
    pub duplicate_detection: Option<DuplicateDetection>,
    /// Object duplicate detection applies to (the route's default object).
    pub dedupe_object: String,
    /// Records in flight at once.
    pub concurrency: usize,
    /// Use batch endpoints: batch creates for single-object records without duplicate
    /// detection, and batch duplicate detection (reads, searches, updates and creates in
    /// batches) where the connector has the operations for it.
    pub batch: bool,
}

impl Default for DeliveryOptions {
    fn default() -> Self {
        Self {
            route: String::new(),
            duplicate_detection: None,
            dedupe_object: "contact".into(),
            concurrency: 8,
            batch: true,
        }
    }
}

/// What happened to one object of one record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Created.
    Created,
    /// An existing record was updated.
    Updated,
    /// Left alone (duplicate with action `skip`, or nothing to deliver).
    Skipped,
    /// Not delivered (dead-lettered).
    Failed,
}

/// One object's result.
#[derive(Debug, Clone, Serialize)]
pub struct ObjectOutcome {
    /// Record key.
    pub key: String,
    /// Object name.
    pub object: String,
    /// Outcome.
    pub outcome: Outcome,
    /// Remote id, when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// The id as the vendor typed it (a number stays a number in later templates).
    #[serde(skip)]
    pub raw_id: Option<Value>,
    /// Why it failed or was skipped (secrets redacted).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// One workflow action's result.
#[derive(Debug, Clone, Serialize)]
pub struct ActionOutcome {
    /// Record key.
    pub key: String,
    /// Trigger name.
    pub trigger: String,
    /// Action name.
    pub action: String,
    /// `ran`, `skipped` or `failed`.
    pub status: &'static str,
    /// Why it was skipped or failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// The result of one record.
#[derive(Debug, Clone, Default)]
pub struct RecordResult {
    /// Per object.
    pub objects: Vec<ObjectOutcome>,
    /// Workflow actions.
    pub actions: Vec<ActionOutcome>,
    /// Whether the record is now in the dead letters.
    pub dead: bool,
    /// The dead letter could not be written to the store (it went to the fallback file, or
    /// nowhere: the reason says which).
    pub dead_letter_failed: bool,
}

/// Counts of a delivery run.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct DeliveryCounts {
    /// Objects created.
    pub created: usize,
    /// Objects updated.
    pub updated: usize,
    /// Objects skipped.
    pub skipped: usize,
    /// Objects (or input lines) failed.
    pub failed: usize,
    /// Records dead-lettered.
    pub dead_lettered: usize,
    /// Dead letters the store could not take (kept in the fallback file instead).
    #[serde(skip_serializing_if = "is_zero")]
    pub dead_letter_failures: usize,
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

impl DeliveryCounts {
    /// Count one record's result.
    pub fn add(&mut self, r: &RecordResult) {
        if r.dead {
            self.dead_lettered += 1;
        }
        if r.dead_letter_failed {
            self.dead_letter_failures += 1;
        }
        for o in &r.objects {
            match o.outcome {
                Outcome::Created => self.created += 1,
                Outcome::Updated => self.updated += 1,
                Outcome::Skipped => self.skipped += 1,
                Outcome::Failed => self.failed += 1,
            }
        }
    }
}

/// The summary of a delivery run, with every record's outcome.
#[derive(Debug, Clone, Default, Serialize)]
pub struct DeliveryReport {
    /// Objects created.
    pub created: usize,
    /// Objects updated.
    pub updated: usize,
    /// Objects skipped.
    pub skipped: usize,
    /// Objects failed.
    pub failed: usize,
    /// Records dead-lettered.
    pub dead_lettered: usize,
    /// Dead letters the store could not take.
    #[serde(skip_serializing_if = "is_zero")]
    pub dead_letter_failures: usize,
    /// Per object results, in completion order.
    pub objects: Vec<ObjectOutcome>,
    /// Workflow action results.
    pub actions: Vec<ActionOutcome>,
}

impl DeliveryReport {
    /// Fold one record's result in.
    pub fn add(&mut self, r: RecordResult) {
        let mut c = self.counts();
        c.add(&r);
        self.set_counts(&c);
        self.objects.extend(r.objects);
        self.actions.extend(r.actions);
    }

    /// The counts.
    pub fn counts(&self) -> DeliveryCounts {
        DeliveryCounts {
            created: self.created,
            updated: self.updated,
            skipped: self.skipped,
            failed: self.failed,
            dead_lettered: self.dead_lettered,
            dead_letter_failures: self.dead_letter_failures,
        }
    }

    fn set_counts(&mut self, c: &DeliveryCounts) {
        self.created = c.created;
        self.updated = c.updated;
        self.skipped = c.skipped;
        self.failed = c.failed;
        self.dead_lettered = c.dead_lettered;
        self.dead_letter_failures = c.dead_letter_failures;
    }
}

/// Delivers mapped records through one session.
#[derive(Debug, Clone)]
pub struct Deliverer {
    session: Session,
    ledger: Option<Ledger>,
    opts: DeliveryOptions,
    redactor: Redactor,
    correlation: Option<String>,
}

/// A unit of work: one batch of fresh records of one object, one batch of records of the
/// duplicate detection's object, or one record.
enum Unit {
    Batch(String, Vec<DeliveryItem>),
    Dedupe(String, Vec<DeliveryItem>),
    Single(DeliveryItem),
    Rejected(RejectedInput),
    /// A record whose related objects do not render (why): not sent.
    Unexpandable(DeliveryItem, String),
}

impl Deliverer {
    /// A deliverer; without a store there is no state between runs, no dedupe index and no
    /// dead-letter store.
    pub fn new(session: Session, store: Option<Arc<Store>>, opts: DeliveryOptions) -> Self {
        let redactor = session.redactor();
        let ledger = store.map(|s| Ledger::new(s, &session, &opts.route));
        Self {
            session,
            ledger,
            opts,
            redactor,
            correlation: None,
        }
    }

    /// Deliver as `owner` (a run's id, already registered with a heartbeat and holding any
    /// lease) instead of a fresh owner id of this deliverer's own.
    pub fn with_owner(mut self, owner: impl Into<String>) -> Self {
        if let Some(l) = &mut self.ledger {
            l.owner = owner.into();
        }
        self
    }

    /// Carry `id` (a run's or a webhook request's correlation id) in this delivery's log lines
    /// and dead letters.
    pub fn with_correlation(mut self, id: impl Into<String>) -> Self {
        let id = id.into();
        if let Some(l) = &mut self.ledger {
            l.correlation = Some(id.clone());
        }
        self.correlation = Some(id);
        self
    }

    /// The owner id claims are made under (none without a store).
    pub fn owner(&self) -> Option<&str> {
        self.ledger.as_ref().map(|l| l.owner.as_str())
    }

    /// The session.
    pub fn session(&self) -> &Session {
        &self.session
    }

    /// The dedupe index and delivery state namespace: the connector, and the base URL when the
    /// binding replaces it (an emulator on a fresh port is another CRM instance).
    pub fn namespace(&self) -> String {
        ledger::namespace(&self.session)
    }

    /// Deliver every item; never loses one: each object ends created, updated, skipped or
    /// failed, and every failed record is dead-lettered (when there is a store).
    pub async fn deliver(&self, items: Vec<DeliveryItem>) -> DeliveryReport {
        let mut report = DeliveryReport::default();
        self.deliver_stream(
            futures::stream::iter(items.into_iter().map(Input::Record)),
            |r| report.add(r),
        )
        .await;
        report
    }

    /// Deliver a stream of inputs with bounded memory: at most `concurrency` batches or
    /// records are in flight, and `on_result` sees each record's result as it finishes (in
    /// completion order). Returns the counts.
    pub async fn deliver_stream(
        &self,
        input: impl Stream<Item = Input>,
        mut on_result: impl FnMut(RecordResult),
    ) -> DeliveryCounts {
        let _heartbeat = self.ledger.as_ref().map(Ledger::keep_alive);
        let chunk = self.batch_chunk();
        let units = input
            .chunks(chunk)
            .flat_map(|chunk| futures::stream::iter(self.units(chunk)));
        let conc = self.opts.concurrency.max(1);
        let results = units.map(|u| self.run_unit(u)).buffer_unordered(conc);
        let mut results = std::pin::pin!(results);
        let mut counts = DeliveryCounts::default();
        while let Some(rs) = results.next().await {
            for r in rs {
                counts.add(&r);
                on_result(r);
            }
        }
        counts
    }

    /// How many inputs are grouped before batches are formed: the largest batch size of the
    /// connector's batch creates (1 when batching is off or there are none).
    fn batch_chunk(&self) -> usize {
        if !self.opts.batch {
            return 1;
        }
        self.session
            .connector
            .ops
            .values()
            .filter(|o| o.spec.kind == OperationKind::BatchCreate && o.spec.incremental.is_none())
            .filter_map(|o| o.spec.batch.as_ref().map(|b| b.max))
            .max()
            .unwrap_or(1)
            .clamp(1, 1000)
    }

    fn units(&self, chunk: Vec<Input>) -> Vec<Unit> {
        let mut out = Vec::new();
        // (object, whether duplicate detection applies) → records.
        let mut groups: indexmap::IndexMap<(String, bool), Vec<DeliveryItem>> =
            indexmap::IndexMap::new();
        for i in chunk {
            match i {
                Input::Rejected(r) => out.push(Unit::Rejected(r)),
                Input::Record(mut it) => match self.expand(&mut it) {
                    Err(why) => out.push(Unit::Unexpandable(it, why)),
                    Ok(()) => {
                        let group = match self.batchable(&it) {
                            Some(o) => Some((o.to_string(), false)),
                            None => self.dedupe_batchable(&it).map(|o| (o.to_string(), true)),
                        };
                        match group {
                            Some(g) => groups.entry(g).or_default().push(it),
                            None => out.push(Unit::Single(it)),
                        }
                    }
                },
            }
        }
        for ((object, dedupe), its) in groups {
            if its.len() == 1 {
                out.extend(its.into_iter().map(Unit::Single));
            } else if dedupe {
                out.push(Unit::Dedupe(object, its));
            } else {
                out.push(Unit::Batch(object, its));
            }
        }
        out
    }

    async fn run_unit(&self, u: Unit) -> Vec<RecordResult> {
        use tracing::Instrument as _;
        let (key, n) = match &u {
            Unit::Batch(_, items) | Unit::Dedupe(_, items) => {
                (items.first().map_or("", |i| i.key.as_str()), items.len())
            }
            Unit::Single(it) | Unit::Unexpandable(it, _) => (it.key.as_str(), 1),
            Unit::Rejected(r) => (r.key.as_str(), 1),
        };
        let span = tracing::info_span!(
            "deliver",
            correlation_id = self.correlation.as_deref().unwrap_or(""),
            tenant = %self.tenant(),
            connector = %self.cname(),
            key,
            records = n,
        );
        self.run_unit_inner(u).instrument(span).await
    }

    async fn run_unit_inner(&self, u: Unit) -> Vec<RecordResult> {
        if let Unit::Unexpandable(_, why) = &u {
            let why = why.clone();
            return self.not_sent(u, &why);
        }
        if !matches!(u, Unit::Rejected(_))
            && let Err(why) = self.session.resolve_lookups().await
        {
            return self.not_sent(u, &why);
        }
        match u {
            Unit::Batch(object, items) => self.deliver_batch(object, items).await,
            Unit::Dedupe(object, items) => self.deliver_dedupe_batch(object, items).await,
            Unit::Single(it) => vec![self.deliver_record(it).await],
            Unit::Rejected(r) => vec![self.reject(r)],
            Unit::Unexpandable(it, why) => vec![self.unsendable(&it, &why)],
        }
    }

    fn dd_for(&self, object: &str) -> Option<&DuplicateDetection> {
        self.opts
            .duplicate_detection
            .as_ref()
            .filter(|d| d.enabled && object == self.opts.dedupe_object)
            .or_else(|| self.related_find(object))
    }

    /// The object of a record that can go through a batch create.
    fn batchable<'a>(&self, it: &'a DeliveryItem) -> Option<&'a str> {
        if !self.opts.batch || it.mapped.objects.len() != 1 {
            return None;
        }
        let (object, _) = it.mapped.objects.first()?;
        if self.dd_for(object).is_some() {
            return None;
        }
        self.session
            .connector
            .find_op(object, OperationKind::BatchCreate)?;
        Some(object.as_str())
    }

    fn tenant(&self) -> &str {
        &self.session.binding.tenant
    }

    fn cname(&self) -> &str {
        self.session.connector.name()
    }

    /// An error's text with every secret of the session removed.
    fn reason(&self, e: &ConnectorError) -> String {
        self.redactor.redact(&e.to_string()).into_owned()
    }

    /// A line that is not a record: counted as failed, dead-lettered with its text.
    fn reject(&self, r: RejectedInput) -> RecordResult {
        let reason = self.redactor.redact(&r.reason).into_owned();
        let input = match std::str::from_utf8(&r.input) {
            Ok(t) => json!({"input": t}),
            Err(_) => {
                use base64::Engine as _;
                json!({"input_base64": base64::engine::general_purpose::STANDARD.encode(&r.input)})
            }
        };
        let mut payload = input;
        if let (Some(n), Value::Object(m)) = (r.line, &mut payload) {
            m.insert("line".into(), json!(n));
        }
        let mut out = RecordResult {
            objects: vec![ObjectOutcome {
                key: r.key.clone(),
                object: r.stage.to_string(),
                outcome: Outcome::Failed,
                id: None,
                raw_id: None,
                reason: Some(reason.clone()),
            }],
            ..RecordResult::default()
        };
        if let Some(l) = &self.ledger {
            let (dead, failed, note) = l.dead_letter(r.stage, &r.key, &payload, &reason, 0, None);
            out.dead = dead;
            out.dead_letter_failed = failed;
            if let (Some(note), Some(o)) = (note, out.objects.first_mut()) {
                o.reason = Some(format!("{reason}; {note}"));
            }
        }
        out
    }

    /// The in-process lock scope of a record (the store's claims do the same across
    /// processes).
    pub(super) fn record_scope(&self, key: &str) -> String {
        match &self.ledger {
            Some(l) => l.lock_scope("*", key),
            None => format!(
                "(no store)\u{1f}{}\u{1f}{}\u{1f}*\u{1f}{key}",
                self.tenant(),
                self.namespace()
            ),
        }
    }

    async fn deliver_record(&self, item: DeliveryItem) -> RecordResult {
        // Records sharing a match key go one at a time (else two could both find no duplicate
        // and both create), and so do two deliveries of one record.
        let mut scopes = vec![self.record_scope(&item.key)];
        if let Some(d) = self.dd_for(&self.opts.dedupe_object)
            && let Some(p) = item.mapped.objects.get(&self.opts.dedupe_object)
        {
            let prefix = self.record_scope("");
            for (f, n, _) in crate::dedupe::match_keys(&d.match_fields, p) {
                scopes.push(format!("{prefix}\u{1f}match:{f}:{n}"));
            }
        }
        let _guards = ledger::lock_scopes(scopes).await;
        self.deliver_record_locked(item).await
    }

    pub(super) async fn deliver_record_locked(&self, item: DeliveryItem) -> RecordResult {
        let mut out = RecordResult::default();
        if item.mapped.objects.is_empty() {
            out.objects.push(ObjectOutcome {
                key: item.key.clone(),
                object: "*".into(),
                outcome: Outcome::Skipped,
                id: None,
                raw_id: None,
                reason: Some("the mapping produced no object to deliver".into()),
            });
            return out;
        }
        let mut ids = Map::new();
        let n = item.mapped.objects.len();
        for (i, (object, payload)) in item.mapped.objects.iter().enumerate() {
            let last = i + 1 == n;
            let guards = self.related_locks(object, payload).await;
            let r = self
                .deliver_object(&item.key, object, payload, &ids, last)
                .await;
            drop(guards);
            let o = match r {
                Ok(done) => ObjectOutcome {
                    key: item.key.clone(),
                    object: object.clone(),
                    outcome: done.outcome,
                    id: done.id.as_ref().map(super::scalar),
                    raw_id: done.id,
                    reason: done.note,
                },
                Err(fail) => {
                    let mut reason = fail.reason;
                    if let Some(l) = &self.ledger {
                        let payload = json!({"objects": item.mapped.objects, "triggers": item.mapped.triggers});
                        let (dead, failed, note) = l.dead_letter(
                            object,
                            &item.key,
                            &payload,
                            &reason,
                            fail.attempts,
                            fail.settle,
                        );
                        out.dead = dead;
                        out.dead_letter_failed = failed;
                        if let Some(note) = note {
                            reason = format!("{reason}; {note}");
                        }
                    }
                    out.objects.push(ObjectOutcome {
                        key: item.key.clone(),
                        object: object.clone(),
                        outcome: Outcome::Failed,
                        id: None,
                        raw_id: None,
                        reason: Some(reason),
                    });
                    return out;
                }
            };
            if let Some(id) = &o.raw_id {
                ids.insert(object.clone(), id.clone());
            }
            out.objects.push(o);
        }
        out.actions = self.associate(&item, &ids).await;
        out.actions.extend(self.run_triggers(&item, &ids).await);
        out
    }

    /// Run a delivered record's workflow actions (once per record and trigger, through the
    /// ledger), their reasons redacted.
    pub(super) async fn run_triggers(
        &self,
        item: &DeliveryItem,
        ids: &Map<String, Value>,
    ) -> Vec<ActionOutcome> {
        let mut actions = crate::connector::workflow::run_triggers(
            &self.session,
            item,
            ids,
            &self.opts.dedupe_object,
            self.ledger
                .as_ref()
                .map(|l| l as &dyn crate::connector::workflow::ActionLedger),
        )
        .await;
        for a in &mut actions {
            if let Some(r) = &mut a.reason {
                self.redactor.redact_in_place(r);
            }
        }
        actions
    }
}

/// An idempotency key for one object of one record (≤ 64 hex chars, stable across retries).
pub fn idem_key(tenant: &str, connector: &str, object: &str, key: &str) -> String {
    use sha2::Digest;
    let d = sha2::Sha256::digest(format!(
        "{tenant}\u{1f}{connector}\u{1f}{object}\u{1f}{key}"
    ));
    hex::encode(d)
}
