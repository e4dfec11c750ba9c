//! What the connector spec adds to a record's delivery beyond its mapped objects: the
//! `[related]` objects it brings along (added before units are formed, so they go through the
//! same state machine: claimed, settled, reused or updated on a rerun), the `[lookups]` its
//! requests read (resolved before anything of a unit is sent), and the `[associations]` made
//! once both objects are delivered (once per record and pair of ids, through the action
//! ledger).

use super::{ActionOutcome, Deliverer, DeliveryItem, ObjectOutcome, Outcome, RecordResult, Unit};
use crate::connector::workflow::{ActionEnd, ActionLedger};
use crate::connector::{Retrying, scalar, truthy};
use crate::spec::mapping::DuplicateDetection;
use serde_json::{Map, Value, json};

/// The trigger name association outcomes are reported (and ledgered) under.
const ASSOCIATIONS: &str = "associations";

impl Deliverer {
    /// Add the connector's related objects to the record (fields the mapping gave an object
    /// win); `Err` says why when a related template does not render (the record is not sent).
    pub(super) fn expand(&self, item: &mut DeliveryItem) -> Result<(), String> {
        let conn = &self.session.connector;
        if conn.related.is_empty() || item.mapped.objects.is_empty() {
            return Ok(());
        }
        let payload = item
            .mapped
            .objects
            .get(&self.opts.dedupe_object)
            .or_else(|| item.mapped.objects.values().next())
            .cloned()
            .unwrap_or_default();
        let record: Map<String, Value> = item
            .mapped
            .objects
            .iter()
            .map(|(k, v)| (k.clone(), Value::Object(v.clone())))
            .collect();
        let mut vars = Map::new();
        vars.insert("payload".into(), Value::Object(payload));
        vars.insert("record".into(), Value::Object(record));
        vars.insert("key".into(), Value::String(item.key.clone()));
        let ctx = self.session.context(vars);
        for r in &conn.related {
            let rendered = conn.templates.string(&r.when, &ctx).and_then(|w| {
                if !truthy(&Value::String(w.trim().to_string())) {
                    return Ok(None);
                }
                conn.templates.tree(&r.payload, &ctx)
            });
            let fields = match rendered {
                Ok(Some(Value::Object(m))) => m,
                Ok(_) => continue,
                Err(e) => {
                    return Err(format!(
                        "the related object `{}` does not render for this record: {e}",
                        r.object
                    ));
                }
            };
            let fields: Map<String, Value> = fields
                .into_iter()
                .filter(|(_, v)| !v.is_null() && v.as_str() != Some(""))
                .collect();
            let mapped = item.mapped.objects.contains_key(&r.object);
            let target = item.mapped.objects.entry(r.object.clone()).or_default();
            for (k, v) in fields {
                target.entry(k).or_insert(v);
            }
            // An object found by a field is brought only by records that have a value for it
            // (one the tenant mapped is delivered as mapped).
            let keyed = r.find.as_ref().is_none_or(|d| {
                d.match_fields
                    .iter()
                    .any(|f| target.get(f).is_some_and(|v| !scalar(v).trim().is_empty()))
            });
            if !keyed && !mapped {
                item.mapped.objects.shift_remove(&r.object);
            }
        }
        Ok(())
    }

    /// How a related object that is found by a field is found (duplicate detection with
    /// action `skip`), when the record's object is one.
    pub(super) fn related_find(&self, object: &str) -> Option<&DuplicateDetection> {
        if object == self.opts.dedupe_object {
            return None;
        }
        self.session
            .connector
            .related
            .iter()
            .find(|r| r.object == object)
            .and_then(|r| r.find.as_ref())
    }

    /// Locks of the match keys of a related object found by a field: two records that would
    /// find (or create) the same object go one after the other, so the second finds the
    /// first's in the dedupe index instead of creating another. Held only while that object
    /// is delivered, and no other lock is taken meanwhile, so they cannot deadlock.
    pub(super) async fn related_locks(
        &self,
        object: &str,
        payload: &Map<String, Value>,
    ) -> Vec<tokio::sync::OwnedMutexGuard<()>> {
        let Some(d) = self.related_find(object) else {
            return Vec::new();
        };
        let prefix = self.record_scope("");
        let scopes = crate::dedupe::match_keys(&d.match_fields, payload)
            .into_iter()
            .map(|(f, n, _)| format!("{prefix}\u{1f}match:{object}:{f}:{n}"))
            .collect();
        super::ledger::lock_scopes(scopes).await
    }

    /// The records of a unit that cannot be sent (a lookup their requests need failed, a
    /// related object does not render): each failed, dead-lettered with the reason, nothing
    /// claimed or sent.
    pub(super) fn not_sent(&self, u: Unit, reason: &str) -> Vec<RecordResult> {
        let items = match u {
            Unit::Batch(_, items) | Unit::Dedupe(_, items) => items,
            Unit::Single(it) | Unit::Unexpandable(it, _) => vec![it],
            Unit::Rejected(r) => return vec![self.reject(r)],
        };
        items.iter().map(|it| self.unsendable(it, reason)).collect()
    }

    /// One record that is not sent, for `reason`.
    pub(super) fn unsendable(&self, it: &DeliveryItem, reason: &str) -> RecordResult {
        let reason = self.redactor.redact(reason).into_owned();
        let object = it
            .mapped
            .objects
            .keys()
            .next()
            .cloned()
            .unwrap_or_else(|| "*".into());
        let mut out = RecordResult {
            objects: vec![ObjectOutcome {
                key: it.key.clone(),
                object: object.clone(),
                outcome: Outcome::Failed,
                id: None,
                raw_id: None,
                reason: Some(reason.clone()),
            }],
            ..RecordResult::default()
        };
        if let Some(l) = &self.ledger {
            let payload = json!({"objects": it.mapped.objects, "triggers": it.mapped.triggers});
            let (dead, failed, note) = l.dead_letter(&object, &it.key, &payload, &reason, 0, None);
            out.dead = dead;
            out.dead_letter_failed = failed;
            if let (Some(n), Some(o)) = (note, out.objects.first_mut()) {
                o.reason = Some(format!("{reason}; {n}"));
            }
        }
        out
    }

    /// Make the connector's associations between the delivered objects of a record (`ids`):
    /// each once per record and pair of ids (a rerun that finds the same objects skips it; one
    /// that failed or whose outcome is unknown runs again: the request is idempotent).
    pub(super) async fn associate(
        &self,
        item: &DeliveryItem,
        ids: &Map<String, Value>,
    ) -> Vec<ActionOutcome> {
        let conn = &self.session.connector;
        let mut out = Vec::new();
        for a in &conn.associations {
            let (Some(from), Some(to)) = (ids.get(&a.from), ids.get(&a.to)) else {
                continue;
            };
            let ledger = self.ledger.as_ref().map(|l| l as &dyn ActionLedger);
            let entry = format!("{}:{}:{}", a.name, scalar(from), scalar(to));
            let outcome = |status, reason| ActionOutcome {
                key: item.key.clone(),
                trigger: ASSOCIATIONS.into(),
                action: a.name.clone(),
                status,
                reason,
            };
            if let Some(why) =
                ledger.and_then(|l| l.begin_idempotent(&item.key, ASSOCIATIONS, &entry))
            {
                out.push(outcome("skipped", Some(why)));
                continue;
            }
            let mut vars = Map::new();
            vars.insert(
                "from".into(),
                json!({"object": conn.api_name(&a.from), "id": from}),
            );
            vars.insert(
                "to".into(),
                json!({"object": conn.api_name(&a.to), "id": to}),
            );
            vars.insert("ids".into(), Value::Object(ids.clone()));
            vars.insert("key".into(), Value::String(item.key.clone()));
            let res = self.session.call(&a.operation, vars, Retrying::Safe).await;
            let end = match &res {
                Ok(_) => ActionEnd::Ran,
                Err(e) if e.kind() == crate::connector::ErrorKind::Transient => {
                    // Idempotent: a later run may send it again.
                    ActionEnd::Refused
                }
                Err(_) => ActionEnd::Refused,
            };
            if let Some(l) = ledger
                && !self.session.is_dry_run()
            {
                l.finish(&item.key, ASSOCIATIONS, &entry, end);
            }
            out.push(match res {
                Ok(_) => outcome("ran", None),
                Err(e) => outcome("failed", Some(self.reason(&e))),
            });
        }
        out
    }
}
