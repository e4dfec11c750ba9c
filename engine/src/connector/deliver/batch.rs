//! Batch creates: records never sent before go out up to the operation's `batch.max` per
//! request; every other record (delivered before, outcome unknown, claimed elsewhere) and
//! every input whose batch result is unknown or refused as a whole goes through the one-record
//! state machine, which reconciles before it creates.

use super::object::{record_id, result_reason};
use super::{Deliverer, DeliveryItem, ObjectOutcome, Outcome, RecordResult};
use crate::connector::{CompiledOp, ErrorKind, Retrying, scalar, truthy};
use crate::dedupe;
use crate::spec::connector::OperationKind;
use crate::store::{Claim, Delivered, Settle};
use serde_json::{Map, Value, json};

/// What a batch answer says of one input.
#[derive(Debug, Clone)]
pub(super) enum BatchResult {
    /// Created, with the id when the vendor gave one.
    Created(Option<Value>),
    /// Refused for this reason (nothing created).
    Refused(String),
    /// Not known: the record goes through the one-record path, which reconciles first.
    Unknown,
}

impl Deliverer {
    pub(super) async fn deliver_batch(
        &self,
        object: String,
        items: Vec<DeliveryItem>,
    ) -> Vec<RecordResult> {
        let conn = &self.session.connector;
        let Some(op) = conn.find_op(&object, OperationKind::BatchCreate) else {
            let mut out = Vec::new();
            for it in items {
                out.push(self.deliver_record(it).await);
            }
            return out;
        };
        // Hold every record's lock (in a stable order, so two batches cannot deadlock).
        let scopes = items.iter().map(|it| self.record_scope(&it.key)).collect();
        let guards = super::ledger::lock_scopes(scopes).await;
        let claims = match &self.ledger {
            Some(l) => {
                let keys: Vec<&str> = items.iter().map(|it| it.key.as_str()).collect();
                match l.claim_many(&object, &keys) {
                    Ok(c) => c,
                    Err(reason) => {
                        return items
                            .into_iter()
                            .map(|it| self.unsent(&it, &object, &reason))
                            .collect();
                    }
                }
            }
            None => vec![Claim::Fresh; items.len()],
        };
        let mut fresh = Vec::new();
        let mut single = Vec::new();
        for (it, c) in items.into_iter().zip(claims) {
            match c {
                Claim::Fresh => fresh.push(it),
                _ => single.push(it),
            }
        }
        let mut results = Vec::new();
        if fresh.len() == 1 {
            single.append(&mut fresh);
        }
        if !fresh.is_empty() {
            let payloads: Vec<Map<String, Value>> = fresh
                .iter()
                .map(|it| it.mapped.objects.get(&object).cloned().unwrap_or_default())
                .collect();
            let outcome = self.send_batch(op, &object, &fresh, &payloads).await;
            let mut created = Vec::new();
            for ((it, p), r) in fresh.into_iter().zip(payloads).zip(outcome) {
                match r {
                    BatchResult::Created(id) => created.push((it, p, id)),
                    BatchResult::Refused(reason) => {
                        results.push(self.refused(&it, &object, reason));
                    }
                    BatchResult::Unknown => single.push(it),
                }
            }
            results.extend(self.settle_created(&object, created).await);
        }
        // The one-record path under the locks already held.
        for it in single {
            results.push(self.deliver_record_locked(it).await);
        }
        drop(guards);
        results
    }

    /// A record the batch could not even claim: failed, not sent.
    pub(super) fn unsent(&self, it: &DeliveryItem, object: &str, reason: &str) -> RecordResult {
        let mut r = RecordResult {
            objects: vec![ObjectOutcome {
                key: it.key.clone(),
                object: object.to_string(),
                outcome: Outcome::Failed,
                id: None,
                raw_id: None,
                reason: Some(reason.to_string()),
            }],
            ..RecordResult::default()
        };
        if let Some(l) = &self.ledger {
            let payload = json!({"objects": it.mapped.objects, "triggers": it.mapped.triggers});
            let (dead, failed, _) = l.dead_letter(object, &it.key, &payload, reason, 0, None);
            r.dead = dead;
            r.dead_letter_failed = failed;
        }
        r
    }

    /// A record the vendor refused in a batch answer: dead-lettered as refused.
    pub(super) fn refused(&self, it: &DeliveryItem, object: &str, reason: String) -> RecordResult {
        let reason = self.redactor.redact(&reason).into_owned();
        let mut r = RecordResult {
            objects: vec![ObjectOutcome {
                key: it.key.clone(),
                object: object.to_string(),
                outcome: Outcome::Failed,
                id: None,
                raw_id: None,
                reason: Some(reason.clone()),
            }],
            ..RecordResult::default()
        };
        if let Some(l) = &self.ledger {
            let payload = json!({"objects": it.mapped.objects, "triggers": it.mapped.triggers});
            let (dead, failed, note) =
                l.dead_letter(object, &it.key, &payload, &reason, 1, Some(Settle::Refused));
            r.dead = dead;
            r.dead_letter_failed = failed;
            if let (Some(n), Some(o)) = (note, r.objects.first_mut()) {
                o.reason = Some(format!("{reason}; {n}"));
            }
        }
        r
    }

    /// Record the batch's creations in one transaction, then run each record's triggers.
    pub(super) async fn settle_created(
        &self,
        object: &str,
        created: Vec<(DeliveryItem, Map<String, Value>, Option<Value>)>,
    ) -> Vec<RecordResult> {
        let dry = self.session.is_dry_run();
        let mut settle_error = None;
        if let (Some(l), false) = (&self.ledger, dry) {
            let texts: Vec<String> = created
                .iter()
                .map(|(_, _, id)| id.as_ref().unwrap_or(&Value::Null).to_string())
                .collect();
            let keys: Vec<Vec<String>> = created
                .iter()
                .map(|(_, p, _)| self.index_keys(object, p))
                .collect();
            let rows: Vec<Delivered<'_>> = created
                .iter()
                .zip(&texts)
                .zip(&keys)
                .map(|(((it, _, _), text), keys)| Delivered {
                    object,
                    key: &it.key,
                    id: text,
                    match_keys: keys,
                    completes_record: true,
                })
                .collect();
            if let Err(e) = l.settle_done(&rows) {
                settle_error = Some(e);
            }
        }
        let mut results = Vec::with_capacity(created.len());
        for (it, _, id) in created {
            // A dry run has no answer: later requests (actions) show a placeholder id, as
            // after a single create.
            let id = id.or_else(|| dry.then(|| Value::String(format!("dry-run-{object}-id"))));
            let o = ObjectOutcome {
                key: it.key.clone(),
                object: object.to_string(),
                outcome: Outcome::Created,
                id: id.as_ref().map(scalar),
                raw_id: id.clone(),
                reason: settle_error.clone(),
            };
            let mut ids = Map::new();
            if let Some(id) = id {
                ids.insert(object.to_string(), id);
            }
            let actions = self.run_triggers(&it, &ids).await;
            results.push(RecordResult {
                objects: vec![o],
                actions,
                ..RecordResult::default()
            });
        }
        results
    }

    /// Send one batch create; what it says of each input.
    pub(super) async fn send_batch(
        &self,
        op: &CompiledOp,
        object: &str,
        items: &[DeliveryItem],
        payloads: &[Map<String, Value>],
    ) -> Vec<BatchResult> {
        let n = items.len();
        let t = &self.session.connector.templates;
        let mut rendered = Vec::with_capacity(n);
        let mut unrendered: Vec<Option<String>> = vec![None; n];
        for (i, (it, p)) in items.iter().zip(payloads).enumerate() {
            let p = match self.session.resolve_fields(object, p).await {
                Ok(p) => p,
                Err(e) => {
                    unrendered[i] = Some(self.reason(&e));
                    rendered.push(Value::Null);
                    continue;
                }
            };
            let vars = self.vars(object, &it.key, &p, &Map::new());
            let ctx = self.session.context(vars);
            let v = match &op.item {
                Some(tree) => match t.tree(tree, &ctx) {
                    Ok(v) => v.unwrap_or(Value::Null),
                    Err(e) => {
                        unrendered[i] = Some(format!(
                            "the batch item template of `{}` does not render for this record: {e}",
                            op.name
                        ));
                        Value::Null
                    }
                },
                None => Value::Object(p.into_owned()),
            };
            rendered.push(v);
        }
        // A record whose item cannot be rendered is refused on its own (never sent as
        // `null`); the batch is not sent, and the others go the one-record way.
        if unrendered.iter().any(Option::is_some) {
            return unrendered
                .into_iter()
                .map(|r| r.map_or(BatchResult::Unknown, BatchResult::Refused))
                .collect();
        }
        let mut vars = Map::new();
        vars.insert("items".into(), Value::Array(rendered));
        vars.insert(
            "object".into(),
            Value::String(self.session.connector.api_name(object).to_string()),
        );
        let resp = match self.session.call(&op.name, vars, Retrying::Unsafe).await {
            Ok(r) => r,
            // The outcome is unknown (or the vendor refused the batch as a whole, which says
            // nothing of each record): each record goes the one-record way, which looks before
            // it creates and gets the vendor's reason for that record alone.
            Err(e) if matches!(e.kind(), ErrorKind::Transient | ErrorKind::Rejected) => {
                if e.kind() == ErrorKind::Rejected
                    && let Some(l) = &self.ledger
                {
                    // A refused batch created nothing: no need to reconcile.
                    for it in items {
                        l.settle_refused(object, &it.key);
                    }
                }
                return vec![BatchResult::Unknown; n];
            }
            Err(e) => return vec![BatchResult::Refused(self.reason(&e)); n],
        };
        if self.session.is_dry_run() {
            return vec![BatchResult::Created(None); n];
        }
        let batch = op.spec.batch.as_ref();
        let results = op
            .batch_results
            .as_ref()
            .map(|p| p.records(&resp.body))
            .unwrap_or_default();
        let has_errors = op
            .batch_errors
            .as_ref()
            .map(|p| !p.records(&resp.body).is_empty())
            .unwrap_or(false);
        let success = |r: &Value| -> Result<(), String> {
            let Some(p) = &op.batch_success else {
                return Ok(());
            };
            let v = p.first(r).cloned().unwrap_or(Value::Null);
            let ok = truthy(&v)
                && (v.is_boolean()
                    || batch.is_none_or(|b| {
                        b.success_values.is_empty() || b.success_values.contains(&scalar(&v))
                    }))
                || batch.is_some_and(|b| b.success_values.contains(&scalar(&v)));
            if ok {
                Ok(())
            } else {
                Err(format!("refused: {}", result_reason(r)))
            }
        };
        let judge = |r: &Value| match success(r) {
            Ok(()) => BatchResult::Created(record_id(op, r)),
            Err(why) => BatchResult::Refused(why),
        };
        if results.len() == n && !has_errors {
            return results.iter().map(judge).collect();
        }
        // A partial failure drops failed inputs from the results, out of input order: pair
        // the results by the echoed match field; every other input goes the one-record way,
        // which gets the vendor's own reason for it (or finds it, if it was created after all).
        let Some(mf) = batch.and_then(|b| b.match_field.as_ref()) else {
            return vec![BatchResult::Unknown; n];
        };
        let mut by_key = std::collections::HashMap::new();
        for r in &results {
            let fields = self.session.record_fields(op, r);
            if let Some(k) = fields.get(mf).and_then(|v| dedupe::normalise(mf, v)) {
                by_key.insert(k, r);
            }
        }
        payloads
            .iter()
            .map(|p| {
                p.get(mf)
                    .and_then(|v| dedupe::normalise(mf, v))
                    .and_then(|k| by_key.get(&k))
                    .map_or(BatchResult::Unknown, |r| judge(r))
            })
            .collect()
    }
}
