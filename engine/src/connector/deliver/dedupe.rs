//! Batch duplicate detection: the records of one object, with duplicate detection on, go
//! through the one-record state machine's states in bulk. Claimed together → what exists is
//! resolved for all of them at once (ids delivered before or in the dedupe index verified by
//! one read by id; the rest read by the object's unique fields, then searched for the other
//! match fields with many values a request, within the search budget) → updated by batch
//! update (or left alone, `action = "skip"`) → the rest created by batch create → settled in
//! one transaction each. Every record whose answer is unknown, or that was claimed elsewhere,
//! delivered with an unknown outcome, or shares a match key with an earlier record of the
//! batch, goes the one-record way (which verifies, reconciles and looks up before it creates)
//! under the locks the batch holds.

use super::batch::BatchResult;
use super::ledger::{lock_scopes, stored_id};
use super::lookup::Read;
use super::object::{Identity, Source, record_id};
use super::{Deliverer, DeliveryItem, ObjectOutcome, Outcome, RecordResult};
use crate::connector::{Retrying, scalar};
use crate::dedupe;
use crate::spec::connector::OperationKind;
use crate::spec::mapping::DuplicateAction;
use crate::store::{Claim, Delivered};
use serde_json::{Map, Value};
use std::collections::HashSet;

/// One record of a dedupe batch: its item, the object's payload and its match keys.
struct Entry {
    item: DeliveryItem,
    payload: Map<String, Value>,
    identity: Identity,
}

/// What looking a record up found.
enum Lookup {
    Found(Value),
    Missing,
    Unknown,
}

impl Deliverer {
    /// The object of a record that can go through batch duplicate detection: one object, the
    /// duplicate detection's, which looks for duplicates (`action` other than `create`), on
    /// a connector that can read (`batch_read`) and create (`batch_create`) that object in
    /// batches.
    pub(super) fn dedupe_batchable<'a>(&self, it: &'a DeliveryItem) -> Option<&'a str> {
        if !self.opts.batch || it.mapped.objects.len() != 1 {
            return None;
        }
        let (object, _) = it.mapped.objects.first()?;
        let dd = self.dd_for(object)?;
        if dd.action == DuplicateAction::Create {
            return None;
        }
        let c = &self.session.connector;
        self.lookup_op(object, OperationKind::BatchRead)?;
        c.find_op(object, OperationKind::BatchCreate)?;
        Some(object.as_str())
    }

    pub(super) async fn deliver_dedupe_batch(
        &self,
        object: String,
        items: Vec<DeliveryItem>,
    ) -> Vec<RecordResult> {
        let object = object.as_str();
        // Two records of the batch sharing a match key would both be found missing and both
        // created: the later ones wait for the one-record path, which finds the first.
        let mut seen = HashSet::new();
        let (mut batch, mut single) = (Vec::new(), Vec::new());
        for item in items {
            let payload = item.mapped.objects.get(object).cloned().unwrap_or_default();
            let identity = self.identity(object, &payload);
            let keys: Vec<String> = identity
                .iter()
                .map(|(f, n, _)| format!("{f}:{n}"))
                .collect();
            if keys.iter().any(|k| seen.contains(k)) {
                single.push(item);
                continue;
            }
            seen.extend(keys);
            batch.push(Entry {
                item,
                payload,
                identity,
            });
        }
        // The locks `deliver_record` takes, for every record at once (in a stable order).
        let prefix = self.record_scope("");
        let mut scopes: Vec<String> = single.iter().map(|it| self.record_scope(&it.key)).collect();
        for e in &batch {
            scopes.push(self.record_scope(&e.item.key));
            for (f, n, _) in &e.identity {
                scopes.push(format!("{prefix}\u{1f}match:{f}:{n}"));
            }
        }
        let guards = lock_scopes(scopes).await;
        let mut results = Vec::new();
        let claims = match &self.ledger {
            Some(l) => {
                let keys: Vec<&str> = batch.iter().map(|e| e.item.key.as_str()).collect();
                match l.claim_many(object, &keys) {
                    Ok(c) => c,
                    Err(reason) => {
                        return batch
                            .iter()
                            .map(|e| &e.item)
                            .chain(&single)
                            .map(|it| self.unsent(it, object, &reason))
                            .collect();
                    }
                }
            }
            None => vec![Claim::Fresh; batch.len()],
        };
        let (mut verify, mut find, mut create) = (Vec::new(), Vec::new(), Vec::new());
        for (e, c) in batch.into_iter().zip(claims) {
            match c {
                Claim::Fresh => {
                    let indexed = self.ledger.as_ref().and_then(|l| {
                        e.identity
                            .iter()
                            .find_map(|(f, n, _)| l.index_get(object, &format!("{f}:{n}")))
                    });
                    match indexed {
                        Some(id) => verify.push((e, id, Source::Index)),
                        None if e.identity.is_empty() => create.push(e),
                        None => find.push(e),
                    }
                }
                Claim::Done(text) => match stored_id(text) {
                    Value::Null => single.push(e.item),
                    id => verify.push((e, id, Source::Delivered)),
                },
                Claim::Unknown | Claim::Busy { .. } => single.push(e.item),
            }
        }
        // Ids to verify and records to look up are different records: both at once.
        let (verified, looked_up) = futures::join!(
            self.verify_many(object, verify),
            self.find_many(object, find)
        );
        let mut existing = Vec::new();
        for (e, id, source, ok) in verified {
            if ok {
                existing.push((e, id, source));
            } else {
                // Gone, another record's now, or not known: the one-record path verifies it
                // again, forgets it and looks the record up.
                single.push(self.release(object, e, source));
            }
        }
        for (e, found) in looked_up {
            match found {
                Lookup::Found(id) => existing.push((e, id, Source::Vendor)),
                Lookup::Missing => create.push(e),
                Lookup::Unknown => single.push(self.release(object, e, Source::Vendor)),
            }
        }
        // Updates and creates concern different records too.
        let ((done, unsettled), (created, unknown)) = futures::join!(
            self.update_existing_many(object, existing),
            self.create_many(object, create)
        );
        results.extend(done);
        results.extend(created);
        single.extend(unsettled);
        single.extend(unknown);
        for it in single {
            results.push(self.deliver_record_locked(it).await);
        }
        drop(guards);
        results
    }

    /// Create the records found nowhere with batch creates: their results, and the records
    /// whose answer is unknown (they go the one-record way, which reconciles first).
    async fn create_many(
        &self,
        object: &str,
        create: Vec<Entry>,
    ) -> (Vec<RecordResult>, Vec<DeliveryItem>) {
        let (mut results, mut single) = (Vec::new(), Vec::new());
        let Some(op) = self
            .session
            .connector
            .find_op(object, OperationKind::BatchCreate)
            .filter(|_| !create.is_empty())
        else {
            single.extend(create.into_iter().map(|e| e.item));
            return (results, single);
        };
        let (items, payloads): (Vec<DeliveryItem>, Vec<Map<String, Value>>) =
            create.into_iter().map(|e| (e.item, e.payload)).unzip();
        let answers = self.send_batch(op, object, &items, &payloads).await;
        let mut created = Vec::new();
        for ((it, p), r) in items.into_iter().zip(payloads).zip(answers) {
            match r {
                BatchResult::Created(id) => created.push((it, p, id)),
                BatchResult::Refused(reason) => results.push(self.refused(&it, object, reason)),
                BatchResult::Unknown => single.push(it),
            }
        }
        results.extend(self.settle_created(object, created).await);
        (results, single)
    }

    /// A record claimed for the batch that goes the one-record way before anything was sent
    /// for it: its claim is released (nothing was created), so that the one-record path
    /// starts afresh instead of reconciling.
    fn release(&self, object: &str, e: Entry, source: Source) -> DeliveryItem {
        if source != Source::Delivered
            && let Some(l) = &self.ledger
        {
            l.settle_refused(object, &e.item.key);
        }
        e.item
    }

    /// Verify ids the store holds (earlier deliveries, the dedupe index) with one read by id
    /// per `batch.max`: each must still exist and carry one of its record's match keys.
    async fn verify_many(
        &self,
        object: &str,
        verify: Vec<(Entry, Value, Source)>,
    ) -> Vec<(Entry, Value, Source, bool)> {
        if verify.is_empty() {
            return Vec::new();
        }
        if self.session.is_dry_run() {
            return verify
                .into_iter()
                .map(|(e, id, s)| (e, id, s, true))
                .collect();
        }
        let ids: Vec<Value> = verify.iter().map(|(_, id, _)| id.clone()).collect();
        let reads = self.read_many(object, None, &ids).await;
        let op = self.lookup_op(object, OperationKind::BatchRead);
        verify
            .into_iter()
            .zip(reads)
            .map(|((e, id, source), r)| {
                let ok = match (&r, op) {
                    (Read::Found(rec), Some(op)) => {
                        let fields = self.session.record_fields(op, rec);
                        e.identity.is_empty()
                            || e.identity
                                .iter()
                                .any(|(f, n, _)| dedupe::record_matches(fields, f, n))
                    }
                    _ => false,
                };
                (e, id, source, ok)
            })
            .collect()
    }

    /// Look records up at the vendor, field by field (unique fields first, by reads; then the
    /// others, by searches for many values at once): found, missing everywhere, or unknown.
    async fn find_many(&self, object: &str, entries: Vec<Entry>) -> Vec<(Entry, Lookup)> {
        let mut out = Vec::new();
        let mut open = entries;
        let unique = self.unique_fields(object).to_vec();
        let mut fields = self.reconcile_fields(object);
        fields.sort_by_key(|f| !unique.contains(f));
        for field in fields {
            if open.is_empty() {
                break;
            }
            let (with, without): (Vec<Entry>, Vec<Entry>) = open
                .into_iter()
                .partition(|e| e.identity.iter().any(|(f, ..)| *f == field));
            open = without;
            let answers = if unique.contains(&field) {
                self.read_by_field(object, &field, &with).await
            } else {
                self.search_by_field(object, &field, &with).await
            };
            for (e, a) in with.into_iter().zip(answers) {
                match a {
                    Lookup::Missing => open.push(e),
                    other => out.push((e, other)),
                }
            }
        }
        out.extend(open.into_iter().map(|e| (e, Lookup::Missing)));
        out
    }

    /// The records' values of `field`, each with the index of its record.
    fn values_of(field: &str, entries: &[Entry]) -> Vec<(usize, String, Value)> {
        let mut out = Vec::new();
        for (i, e) in entries.iter().enumerate() {
            if let Some((_, norm, raw)) = e.identity.iter().find(|(f, ..)| f == field) {
                for v in dedupe::search_values(field, raw, norm) {
                    out.push((i, norm.clone(), v));
                }
            }
        }
        out
    }

    async fn read_by_field(&self, object: &str, field: &str, entries: &[Entry]) -> Vec<Lookup> {
        let values = Self::values_of(field, entries);
        let sent: Vec<Value> = values.iter().map(|(_, _, v)| v.clone()).collect();
        let reads = self.read_many(object, Some(field), &sent).await;
        let op = self.lookup_op(object, OperationKind::BatchRead);
        let mut answers: Vec<Lookup> = entries.iter().map(|_| Lookup::Missing).collect();
        for ((i, _, _), r) in values.iter().zip(reads) {
            let a = match (r, op) {
                (Read::Found(rec), Some(op)) => {
                    record_id(op, &rec).map_or(Lookup::Unknown, Lookup::Found)
                }
                (Read::Missing, _) => Lookup::Missing,
                _ => Lookup::Unknown,
            };
            answers[*i] = match (std::mem::replace(&mut answers[*i], Lookup::Missing), a) {
                (found @ Lookup::Found(_), _) | (_, found @ Lookup::Found(_)) => found,
                (Lookup::Unknown, _) | (_, Lookup::Unknown) => Lookup::Unknown,
                _ => Lookup::Missing,
            };
        }
        answers
    }

    async fn search_by_field(&self, object: &str, field: &str, entries: &[Entry]) -> Vec<Lookup> {
        let Some(op) = self.lookup_op(object, OperationKind::BatchSearch) else {
            // One search per record, paced by the search budget.
            let mut out = Vec::with_capacity(entries.len());
            for e in entries {
                let Some((_, norm, raw)) = e.identity.iter().find(|(f, ..)| f == field) else {
                    out.push(Lookup::Missing);
                    continue;
                };
                out.push(match self.search(object, field, raw, norm).await {
                    Ok(Some(id)) => Lookup::Found(id),
                    Ok(None) => Lookup::Missing,
                    Err(_) => Lookup::Unknown,
                });
            }
            return out;
        };
        let max = op.spec.batch.as_ref().map_or(1, |b| b.max.max(1));
        let values = Self::values_of(field, entries);
        let mut answers: Vec<Lookup> = entries.iter().map(|_| Lookup::Missing).collect();
        // Chunks of at most `max` values that never split one record's values.
        let mut start = 0;
        while start < values.len() {
            let mut end = (start + max).min(values.len());
            while end < values.len() && end > start + 1 && values[end].0 == values[end - 1].0 {
                end -= 1;
            }
            let chunk = &values[start..end];
            start = end;
            let sent: Vec<Value> = chunk.iter().map(|(_, _, v)| v.clone()).collect();
            let owners: Vec<usize> = {
                let mut o: Vec<usize> = chunk.iter().map(|(i, ..)| *i).collect();
                o.dedup();
                o
            };
            match self.search_many(op, object, field, &sent).await {
                Err(e) => {
                    tracing::info!(object, field, error = %self.reason(&e), "batch search failed; its records are looked up one by one");
                    for i in owners {
                        answers[i] = Lookup::Unknown;
                    }
                }
                Ok((records, incomplete)) => {
                    for i in owners {
                        let norm = chunk
                            .iter()
                            .find(|(j, ..)| *j == i)
                            .map(|(_, n, _)| n.as_str())
                            .unwrap_or_default();
                        let hit = records.iter().find(|r| {
                            dedupe::record_matches(self.session.record_fields(op, r), field, norm)
                        });
                        answers[i] = match hit {
                            Some(r) => record_id(op, r).map_or(Lookup::Unknown, Lookup::Found),
                            None if incomplete => Lookup::Unknown,
                            None => Lookup::Missing,
                        };
                    }
                }
            }
        }
        answers
    }

    /// Records found to exist: left alone (`action = "skip"`) or updated, in batches when the
    /// connector has a `batch_update`. Returns the finished records and those that go the
    /// one-record way (an update refused or not known).
    async fn update_existing_many(
        &self,
        object: &str,
        existing: Vec<(Entry, Value, Source)>,
    ) -> (Vec<RecordResult>, Vec<DeliveryItem>) {
        let (mut done, mut single) = (Vec::new(), Vec::new());
        if existing.is_empty() {
            return (done, single);
        }
        let conn = &self.session.connector;
        let skip = self
            .dd_for(object)
            .is_some_and(|d| d.action == DuplicateAction::Skip);
        if skip || conn.find_op(object, OperationKind::Update).is_none() {
            let note = |s: Source| -> String {
                match (skip, s) {
                    (true, Source::Delivered) => "delivered before (duplicate action: skip)".into(),
                    (true, _) => "duplicate (action: skip)".into(),
                    (false, _) => format!(
                        "exists already, and connector has no update operation for `{object}`"
                    ),
                }
            };
            let settled = self.settle_many(object, &existing, true);
            for (e, id, s) in existing {
                let mut r = self
                    .finish(&e, object, Outcome::Skipped, id, Some(note(s)))
                    .await;
                if let (Err(why), Some(o)) = (&settled, r.objects.first_mut()) {
                    o.reason = Some(why.clone());
                }
                done.push(r);
            }
            return (done, single);
        }
        // Record each object as its record's before updating it, so that a crash during the
        // update leaves a verified id, not a lookup to repeat.
        let (fresh, mut existing): (Vec<_>, Vec<_>) = existing
            .into_iter()
            .partition(|(_, _, s)| *s != Source::Delivered);
        match self.settle_many(object, &fresh, false) {
            Ok(()) => existing.extend(fresh),
            Err(why) => {
                // The one-record path meets the store's refusal again and dead-letters it.
                tracing::error!(object, %why, "could not record existing objects before updating them");
                single.extend(fresh.into_iter().map(|(e, ..)| e.item));
            }
        }
        let updated = self.update_many(object, &existing).await;
        let (ok, failed): (Vec<_>, Vec<_>) =
            existing.into_iter().zip(updated).partition(|(_, ok)| *ok);
        single.extend(failed.into_iter().map(|((e, ..), _)| e.item));
        let ok: Vec<(Entry, Value, Source)> = ok.into_iter().map(|(x, _)| x).collect();
        let settled = self.settle_many(object, &ok, true);
        for (e, id, _) in ok {
            let mut r = self.finish(&e, object, Outcome::Updated, id, None).await;
            if let (Err(why), Some(o)) = (&settled, r.objects.first_mut()) {
                o.reason = Some(why.clone());
            }
            done.push(r);
        }
        (done, single)
    }

    /// Send the updates, `batch.max` a request: whether each surely happened. Without a
    /// `batch_update` operation every record goes the one-record way.
    async fn update_many(&self, object: &str, existing: &[(Entry, Value, Source)]) -> Vec<bool> {
        let conn = &self.session.connector;
        let Some(op) = conn.find_op(object, OperationKind::BatchUpdate) else {
            return vec![false; existing.len()];
        };
        let max = op.spec.batch.as_ref().map_or(1, |b| b.max.max(1));
        let t = &conn.templates;
        let mut out = Vec::with_capacity(existing.len());
        for chunk in existing.chunks(max) {
            let mut items = Vec::with_capacity(chunk.len());
            let mut rendered = vec![true; chunk.len()];
            for (i, (e, id, _)) in chunk.iter().enumerate() {
                let mut vars = self.vars(object, &e.item.key, &e.payload, &Map::new());
                vars.insert("id".into(), id.clone());
                let ctx = self.session.context(vars);
                let item = match &op.item {
                    Some(tree) => match t.tree(tree, &ctx) {
                        Ok(v) => v.unwrap_or(Value::Null),
                        Err(_) => {
                            // The one-record path reports the reason for this record alone.
                            rendered[i] = false;
                            continue;
                        }
                    },
                    None => Value::Object(e.payload.clone()),
                };
                items.push(item);
            }
            if items.is_empty() {
                out.extend(rendered);
                continue;
            }
            let mut vars = Map::new();
            vars.insert("items".into(), Value::Array(items));
            vars.insert(
                "object".into(),
                Value::String(conn.api_name(object).to_string()),
            );
            let resp = match self.session.call(&op.name, vars, Retrying::Safe).await {
                Ok(r) => r,
                Err(e) => {
                    tracing::info!(object, error = %self.reason(&e), "batch update failed; its records are updated one by one");
                    out.extend(vec![false; chunk.len()]);
                    continue;
                }
            };
            if self.session.is_dry_run() {
                out.extend(rendered);
                continue;
            }
            let ids: HashSet<String> = op
                .batch_results
                .as_ref()
                .map(|p| p.records(&resp.body))
                .unwrap_or_default()
                .iter()
                .filter_map(|r| record_id(op, r))
                .map(|id| scalar(&id))
                .collect();
            for ((_, id, _), sent) in chunk.iter().zip(rendered) {
                out.push(sent && ids.contains(&scalar(id)));
            }
        }
        out
    }

    /// Record existing objects as their records' (`completes`: the record is delivered),
    /// in one transaction.
    fn settle_many(
        &self,
        object: &str,
        rows: &[(Entry, Value, Source)],
        completes: bool,
    ) -> Result<(), String> {
        let Some(l) = &self.ledger else {
            return Ok(());
        };
        if rows.is_empty() || self.session.is_dry_run() {
            return Ok(());
        }
        let texts: Vec<String> = rows.iter().map(|(_, id, _)| id.to_string()).collect();
        let keys: Vec<Vec<String>> = rows
            .iter()
            .map(|(e, ..)| self.index_keys(object, &e.payload))
            .collect();
        let delivered: Vec<Delivered<'_>> = rows
            .iter()
            .zip(&texts)
            .zip(&keys)
            .map(|(((e, ..), text), keys)| Delivered {
                object,
                key: &e.item.key,
                id: text,
                match_keys: keys,
                completes_record: completes,
            })
            .collect();
        l.settle_done(&delivered)
    }

    /// A record's result, after its workflow triggers ran.
    async fn finish(
        &self,
        e: &Entry,
        object: &str,
        outcome: Outcome,
        id: Value,
        note: Option<String>,
    ) -> RecordResult {
        let mut ids = Map::new();
        ids.insert(object.to_string(), id.clone());
        let actions = self.run_triggers(&e.item, &ids).await;
        RecordResult {
            objects: vec![ObjectOutcome {
                key: e.item.key.clone(),
                object: object.to_string(),
                outcome,
                id: Some(scalar(&id)),
                raw_id: Some(id),
                reason: note,
            }],
            actions,
            ..RecordResult::default()
        }
    }
}
