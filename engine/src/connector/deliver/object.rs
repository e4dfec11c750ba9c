//! One object of one record through the delivery state machine: claim → resolve what exists
//! (verify an indexed id, reconcile an unknown outcome, search for duplicates) → update or
//! create (a conflict that names the existing object becomes an update; an unknown create is
//! reconciled before any retry) → settle.

use super::{Deliverer, Outcome};
use crate::connector::{CompiledOp, ConnectorError, ErrorKind, Retrying, scalar};
use crate::dedupe;
use crate::spec::connector::OperationKind;
use crate::spec::mapping::DuplicateAction;
use crate::store::{Claim, Delivered, Settle};
use serde_json::{Map, Value, json};

/// A delivered (or deliberately skipped) object.
pub(super) struct Done {
    pub outcome: Outcome,
    pub id: Option<Value>,
    pub note: Option<String>,
}

/// A failed object: why (redacted), attempts, and the delivery state to write with its dead
/// letter (`None`: leave the state as it is — the object exists, only its update failed).
pub(super) struct Fail {
    pub reason: String,
    pub attempts: u32,
    pub settle: Option<Settle>,
}

/// Where an existing object's id came from, which decides whether it must be verified.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Source {
    /// Our own record of an earlier delivery of this record: the CRM may have forgotten it
    /// or re-issued the id.
    Delivered,
    /// The dedupe index (a match key seen before): same doubt.
    Index,
    /// The vendor just said so (search, or a conflict answer naming it).
    Vendor,
}

/// A match key of a payload: field, normalised value, value as written.
pub(super) type Identity = Vec<(String, String, Value)>;

impl Deliverer {
    /// Fields whose values identify a record: the duplicate detection's match fields, else the
    /// batch operation's match field.
    pub(super) fn reconcile_fields(&self, object: &str) -> Vec<String> {
        if let Some(d) = self.dd_for(object) {
            return d.match_fields.clone();
        }
        self.session
            .connector
            .find_op(object, OperationKind::BatchCreate)
            .and_then(|o| o.spec.batch.as_ref()?.match_field.clone())
            .into_iter()
            .collect()
    }

    /// The operation that creates `object`: its create, else its upsert.
    fn create_op(&self, object: &str) -> Option<&CompiledOp> {
        let conn = &self.session.connector;
        conn.find_op(object, OperationKind::Create)
            .or_else(|| conn.find_op(object, OperationKind::Upsert))
    }

    pub(super) fn identity(&self, object: &str, payload: &Map<String, Value>) -> Identity {
        dedupe::match_keys(&self.reconcile_fields(object), payload)
    }

    /// Match keys (`field:normalised`) a delivered object is indexed under.
    pub(super) fn index_keys(&self, object: &str, payload: &Map<String, Value>) -> Vec<String> {
        self.identity(object, payload)
            .into_iter()
            .map(|(f, n, _)| format!("{f}:{n}"))
            .collect()
    }

    pub(super) fn vars(
        &self,
        object: &str,
        key: &str,
        payload: &Map<String, Value>,
        ids: &Map<String, Value>,
    ) -> Map<String, Value> {
        let mut v = Map::new();
        v.insert("payload".into(), Value::Object(payload.clone()));
        v.insert("ids".into(), Value::Object(ids.clone()));
        v.insert(
            "object".into(),
            Value::String(self.session.connector.api_name(object).to_string()),
        );
        v.insert(
            "idempotency_key".into(),
            Value::String(super::idem_key(self.tenant(), self.cname(), object, key)),
        );
        v.insert("key".into(), Value::String(key.to_string()));
        v
    }

    /// Search the vendor for a record whose `field` normalises to `norm`.
    pub(super) async fn search(
        &self,
        object: &str,
        field: &str,
        raw: &Value,
        norm: &str,
    ) -> Result<Option<Value>, ConnectorError> {
        let Some(op) = self
            .session
            .connector
            .find_op(object, OperationKind::Search)
        else {
            return Ok(None);
        };
        // E-mails normalised; phones in E.164, then as written (`dedupe::search_values`).
        for value in dedupe::search_values(field, raw, norm) {
            let mut vars = Map::new();
            vars.insert(
                "match".into(),
                json!({"field": field, "value": value, "normalised": norm}),
            );
            let mut found = Vec::new();
            self.session
                .list(&op.name, vars, Some(50), |r| found.push(r))
                .await?;
            for r in &found {
                let fields = self.session.record_fields(op, r);
                if dedupe::record_matches(fields, field, norm) {
                    return Ok(record_id(op, r));
                }
            }
        }
        Ok(None)
    }

    /// The first vendor record found by any of the identity's match keys. A search that fails
    /// for a transient reason is tried again a few times (after its own retries): an answer
    /// here is what keeps an unknown outcome from ending in a dead letter.
    async fn reconcile(
        &self,
        object: &str,
        identity: &Identity,
    ) -> Result<Option<Value>, ConnectorError> {
        let retry = &self.session.connector.retry;
        let mut round = 0;
        loop {
            round += 1;
            match self.reconcile_once(object, identity).await {
                Err(e) if e.kind() == ErrorKind::Transient && round < 3 => {
                    tokio::time::sleep(crate::connector::http::backoff(retry, round + 2)).await;
                }
                r => return r,
            }
        }
    }

    async fn reconcile_once(
        &self,
        object: &str,
        identity: &Identity,
    ) -> Result<Option<Value>, ConnectorError> {
        for (f, norm, raw) in self.lookup_order(object, identity) {
            if let Some(id) = self.find(object, f, raw, norm).await? {
                return Ok(Some(id));
            }
        }
        Ok(None)
    }

    /// The identity's match keys in the order they are looked up: the object's unique fields
    /// first (a read names one object and sees writes at once), then the others as listed.
    pub(super) fn lookup_order<'a>(
        &self,
        object: &str,
        identity: &'a Identity,
    ) -> Vec<&'a (String, String, Value)> {
        let unique = self.unique_fields(object);
        let (mut first, rest): (Vec<_>, Vec<_>) =
            identity.iter().partition(|(f, ..)| unique.contains(f));
        first.extend(rest);
        first
    }

    /// Look a match key up at the vendor: by a read when the field is unique, else by search.
    async fn find(
        &self,
        object: &str,
        field: &str,
        raw: &Value,
        norm: &str,
    ) -> Result<Option<Value>, ConnectorError> {
        if self.unique_fields(object).iter().any(|u| u == field) {
            self.read_by(object, field, raw, norm).await
        } else {
            self.search(object, field, raw, norm).await
        }
    }

    /// Whether the CRM object `id` is still the record's: it exists and carries one of the
    /// record's match keys. Without a get operation the update's 404 is the only check;
    /// without match keys, existence is.
    async fn verify(
        &self,
        object: &str,
        id: &Value,
        identity: &Identity,
    ) -> Result<bool, ConnectorError> {
        let Some(op) = self.session.connector.find_op(object, OperationKind::Get) else {
            return Ok(true);
        };
        let mut vars = Map::new();
        vars.insert("id".into(), id.clone());
        vars.insert(
            "object".into(),
            Value::String(self.session.connector.api_name(object).to_string()),
        );
        match self.session.call(&op.name, vars, Retrying::Safe).await {
            Err(ConnectorError::Http {
                status: 404 | 410, ..
            }) => Ok(false),
            Err(e) => Err(e),
            Ok(resp) => {
                if identity.is_empty() || self.session.is_dry_run() {
                    return Ok(true);
                }
                let fields = self.session.record_fields(op, &resp.body);
                Ok(identity
                    .iter()
                    .any(|(f, n, _)| dedupe::record_matches(fields, f, n)))
            }
        }
    }

    fn fail(&self, e: &ConnectorError, attempts: u32, settle: Option<Settle>) -> Fail {
        Fail {
            reason: self.reason(e),
            attempts,
            settle,
        }
    }

    pub(super) fn settle(
        &self,
        object: &str,
        key: &str,
        id: &Value,
        payload: &Map<String, Value>,
        last: bool,
    ) -> Result<(), Fail> {
        let Some(l) = &self.ledger else { return Ok(()) };
        let keys = self.index_keys(object, payload);
        let text = id.to_string();
        l.settle_done(&[Delivered {
            object,
            key,
            id: &text,
            match_keys: &keys,
            completes_record: last,
        }])
        .map_err(|reason| Fail {
            reason,
            attempts: 1,
            settle: None,
        })
    }

    /// Deliver one object of a record (see the module doc).
    pub(super) async fn deliver_object(
        &self,
        key: &str,
        object: &str,
        payload: &Map<String, Value>,
        ids: &Map<String, Value>,
        last: bool,
    ) -> Result<Done, Fail> {
        // Custom fields the CRM addresses by keys of its own: resolved before anything is
        // claimed or sent (a name the CRM does not know fails the record, naming it).
        let sent = self
            .session
            .resolve_fields(object, payload)
            .await
            .map_err(|e| self.fail(&e, 0, None))?;
        let claim = match &self.ledger {
            Some(l) => l.claim(object, key).await.map_err(|reason| Fail {
                reason,
                attempts: 0,
                settle: None,
            })?,
            None => Claim::Fresh,
        };
        let conn = &self.session.connector;
        let dd = self.dd_for(object);
        let action = dd.map(|d| d.action).unwrap_or_default();
        let dry = self.session.is_dry_run();
        let vars = self.vars(object, key, &sent, ids);
        let identity = self.identity(object, payload);
        let idempotent = self.create_op(object).is_some_and(is_idempotent);
        let mut existing: Option<(Value, Source)> = None;
        // Whether our row for this record is `pending` (written before any create).
        let mut pending = self.ledger.is_some();
        match claim {
            Claim::Done(text) => {
                pending = false;
                let id = super::ledger::stored_id(text);
                if id.is_null() {
                    return Ok(Done {
                        outcome: Outcome::Skipped,
                        id: None,
                        note: Some(
                            "delivered before; the CRM answered no id to update it by".into(),
                        ),
                    });
                }
                existing = Some((id, Source::Delivered));
            }
            Claim::Unknown => match self.reconcile(object, &identity).await {
                Ok(Some(id)) => existing = Some((id, Source::Vendor)),
                Ok(None) if !identity.is_empty() || idempotent => {}
                Ok(None) => {
                    return Err(Fail {
                        reason: "an earlier attempt's outcome is unknown and the record has no match field to look it up by; not sent again, so it cannot be duplicated".into(),
                        attempts: 0,
                        settle: Some(Settle::Unknown),
                    });
                }
                Err(e) => {
                    let mut f = self.fail(&e, 0, Some(Settle::Unknown));
                    f.reason = format!(
                        "an earlier attempt's outcome is unknown and looking it up failed: {}",
                        f.reason
                    );
                    return Err(f);
                }
            },
            Claim::Fresh | Claim::Busy { .. } => {}
        }
        // Duplicate detection: our index of match keys, then the vendor's search.
        let searchable = dd.is_some() && action != DuplicateAction::Create;
        if existing.is_none() && searchable && !(dry && identity.is_empty()) {
            // With duplicate detection on, the identity is its match keys.
            for (f, norm, raw) in self.lookup_order(object, &identity) {
                if let Some(l) = &self.ledger
                    && let Some(id) = l.index_get(object, &format!("{f}:{norm}"))
                {
                    existing = Some((id, Source::Index));
                    break;
                }
                match self.find(object, f, raw, norm).await {
                    Ok(Some(id)) => {
                        existing = Some((id, Source::Vendor));
                        break;
                    }
                    Ok(None) => {}
                    Err(e) => return Err(self.fail(&e, 1, pending.then_some(Settle::Refused))),
                }
            }
        }
        let mut rounds = 0;
        // Ids seen gone in this delivery: a vendor's search lags its deletes too, so a search
        // may still answer one of them; it is not this record's object any more.
        let mut gone: Vec<Value> = Vec::new();
        while let Some((id, source)) = existing.take() {
            rounds += 1;
            if source != Source::Vendor && !dry {
                match self.verify(object, &id, &identity).await {
                    Ok(true) => {}
                    Ok(false) => {
                        tracing::info!(object, id = %id, "the CRM object recorded for this record is gone or is another record's now; looking again");
                        if let Some(l) = &self.ledger {
                            l.forget(object, key, &id);
                        }
                        gone.push(id.clone());
                        if rounds < 3
                            && let Ok(Some(found)) = self.reconcile(object, &identity).await
                            && !gone.contains(&found)
                        {
                            existing = Some((found, Source::Vendor));
                        }
                        continue;
                    }
                    Err(e) => return Err(self.fail(&e, 1, None)),
                }
            }
            if action == DuplicateAction::Skip && dd.is_some() {
                self.settle(object, key, &id, payload, last)?;
                let why = if let Some(f) = self.related_find(object) {
                    format!("exists (found by {}); reused", f.match_fields.join(", "))
                } else if source == Source::Delivered {
                    "delivered before (duplicate action: skip)".into()
                } else {
                    "duplicate (action: skip)".into()
                };
                return Ok(Done {
                    outcome: Outcome::Skipped,
                    id: Some(id),
                    note: Some(why),
                });
            }
            let Some(up) = conn.find_op(object, OperationKind::Update) else {
                self.settle(object, key, &id, payload, last)?;
                return Ok(Done {
                    outcome: Outcome::Skipped,
                    id: Some(id),
                    note: Some(format!(
                        "exists already, and connector has no update operation for `{object}`"
                    )),
                });
            };
            // Record the object as this record's before updating it, so that a crash during
            // the update leaves a verified id, not a search to repeat.
            if source == Source::Vendor {
                self.settle(object, key, &id, payload, false)?;
            }
            let mut v = vars.clone();
            v.insert("id".into(), id.clone());
            match self.session.call(&up.name, v, Retrying::Safe).await {
                Err(ConnectorError::Http {
                    status: 404 | 410, ..
                }) if rounds < 3 => {
                    tracing::info!(object, id = %id, "the CRM object is gone; looking again");
                    if let Some(l) = &self.ledger {
                        l.forget(object, key, &id);
                    }
                    gone.push(id.clone());
                    if let Ok(Some(found)) = self.reconcile(object, &identity).await
                        && !gone.contains(&found)
                    {
                        existing = Some((found, Source::Vendor));
                    }
                    continue;
                }
                Err(e) => return Err(self.fail(&e, 1, None)),
                Ok(_) => {}
            }
            self.settle(object, key, &id, payload, last)?;
            return Ok(Done {
                outcome: Outcome::Updated,
                id: Some(id),
                note: None,
            });
        }
        self.create(key, object, payload, &vars, &identity, last)
            .await
    }

    /// Create the object: `pending` is written first (claimed again if an earlier delivery was
    /// forgotten); a conflict naming the existing object becomes an update; an unknown
    /// outcome is reconciled before any retry.
    async fn create(
        &self,
        key: &str,
        object: &str,
        payload: &Map<String, Value>,
        vars: &Map<String, Value>,
        identity: &Identity,
        last: bool,
    ) -> Result<Done, Fail> {
        let conn = &self.session.connector;
        let dry = self.session.is_dry_run();
        let Some(create) = self.create_op(object) else {
            return Err(Fail {
                reason: format!(
                    "connector `{}` has no create operation for object `{object}`",
                    conn.name()
                ),
                attempts: 0,
                settle: Some(Settle::Refused),
            });
        };
        if let Some(l) = &self.ledger {
            // The row may have been forgotten (a verified-away id): `pending` again, durably,
            // before the request.
            match l.claim(object, key).await {
                Ok(Claim::Done(text)) => {
                    // Another delivery of this record finished meanwhile: not created twice.
                    let id = super::ledger::stored_id(text);
                    return Ok(Done {
                        outcome: Outcome::Skipped,
                        id: (!id.is_null()).then_some(id),
                        note: Some("delivered meanwhile by another run".into()),
                    });
                }
                Ok(_) => {}
                Err(reason) => {
                    return Err(Fail {
                        reason,
                        attempts: 0,
                        settle: None,
                    });
                }
            }
        }
        let idempotent = is_idempotent(create);
        let retrying = if idempotent {
            Retrying::Safe
        } else {
            Retrying::Unsafe
        };
        let max = conn.retry.max_attempts.max(1);
        let mut last_err = None;
        for attempt in 1..=max {
            match self
                .session
                .call(&create.name, vars.clone(), retrying)
                .await
            {
                Ok(resp) => {
                    let id = create
                        .id
                        .as_ref()
                        .and_then(|p| p.first(&resp.body))
                        .filter(|v| !v.is_null())
                        .cloned();
                    if !dry {
                        self.settle(
                            object,
                            key,
                            id.as_ref().unwrap_or(&Value::Null),
                            payload,
                            last,
                        )?;
                    }
                    // A dry run has no response: later requests (actions, dependent objects)
                    // show a placeholder id.
                    let id =
                        id.or_else(|| dry.then(|| Value::String(format!("dry-run-{object}-id"))));
                    return Ok(Done {
                        outcome: Outcome::Created,
                        id,
                        note: None,
                    });
                }
                Err(ConnectorError::Http {
                    existing: Some(id), ..
                }) => {
                    // The vendor refused the create because the object exists, and named it:
                    // this record's object is that one.
                    return self
                        .update_existing(key, object, payload, vars, *id, last)
                        .await;
                }
                Err(
                    e @ ConnectorError::Http {
                        created_before: true,
                        ..
                    },
                ) => {
                    // The vendor says an earlier request created it (Stripe: this record's
                    // Idempotency-Key was used before, with other parameters) but not which
                    // object: find it and update it, never create another.
                    return self
                        .created_before(key, object, payload, vars, identity, last, (e, attempt))
                        .await;
                }
                Err(e) if e.kind() == ErrorKind::Transient && !idempotent => {
                    // The create may have happened: look before trying again.
                    if identity.is_empty() {
                        let mut f = self.fail(&e, attempt, Some(Settle::Unknown));
                        f.reason = format!(
                            "{}; outcome unknown and no match field to check it, so not retried (a retry could duplicate the record)",
                            f.reason
                        );
                        return Err(f);
                    }
                    // A failed search leaves the outcome unknown; the next round looks again.
                    if let Ok(Some(id)) = self.reconcile(object, identity).await {
                        self.settle(object, key, &id, payload, last)?;
                        return Ok(Done {
                            outcome: Outcome::Created,
                            id: Some(id),
                            note: None,
                        });
                    }
                    last_err = Some(e);
                    tokio::time::sleep(crate::connector::http::backoff(&conn.retry, attempt)).await;
                }
                Err(e) if e.kind() == ErrorKind::Transient => {
                    // Idempotent: the next run may send it again under the same key.
                    return Err(self.fail(&e, attempt, Some(Settle::Unknown)));
                }
                Err(e) => return Err(self.fail(&e, attempt, Some(Settle::Refused))),
            }
        }
        let e = last_err.unwrap_or_else(|| ConnectorError::Transient {
            path: create.name.clone(),
            message: "create failed".into(),
            attempts: max,
        });
        let mut f = self.fail(&e, max, Some(Settle::Unknown));
        f.reason = format!(
            "{}; the outcome is unknown (it was looked up and not found); a rerun or replay looks again before creating",
            f.reason
        );
        Err(f)
    }

    /// A create the vendor refused because an earlier request created the object: look it
    /// up by the record's match keys, a few times (vendors' searches lag their writes), and
    /// update what is found; otherwise the outcome stays unknown (dead-lettered, looked up
    /// again by a rerun or replay).
    #[allow(clippy::too_many_arguments)]
    async fn created_before(
        &self,
        key: &str,
        object: &str,
        payload: &Map<String, Value>,
        vars: &Map<String, Value>,
        identity: &Identity,
        last: bool,
        (e, attempt): (ConnectorError, u32),
    ) -> Result<Done, Fail> {
        if !identity.is_empty() {
            let retry = &self.session.connector.retry;
            for round in 1..=5 {
                if let Ok(Some(id)) = self.reconcile(object, identity).await {
                    return self
                        .update_existing(key, object, payload, vars, id, last)
                        .await;
                }
                tokio::time::sleep(crate::connector::http::backoff(retry, round + 1)).await;
            }
        }
        let mut f = self.fail(&e, attempt, Some(Settle::Unknown));
        f.reason = if identity.is_empty() {
            format!(
                "{}; the vendor says an earlier request created it, and there is no match field to find it by (not created again)",
                f.reason
            )
        } else {
            format!(
                "{}; the vendor says an earlier request created it, but its search does not find it yet; a rerun or replay looks again (not created again)",
                f.reason
            )
        };
        Err(f)
    }

    /// Update an object the vendor named in a conflict answer.
    async fn update_existing(
        &self,
        key: &str,
        object: &str,
        payload: &Map<String, Value>,
        vars: &Map<String, Value>,
        id: Value,
        last: bool,
    ) -> Result<Done, Fail> {
        self.settle(object, key, &id, payload, false)?;
        let dd = self.dd_for(object);
        if dd.is_some_and(|d| d.action == DuplicateAction::Skip) {
            self.settle(object, key, &id, payload, last)?;
            return Ok(Done {
                outcome: Outcome::Skipped,
                id: Some(id),
                note: Some("duplicate (action: skip)".into()),
            });
        }
        let Some(up) = self
            .session
            .connector
            .find_op(object, OperationKind::Update)
        else {
            self.settle(object, key, &id, payload, last)?;
            return Ok(Done {
                outcome: Outcome::Skipped,
                id: Some(id),
                note: Some(format!(
                    "exists already, and connector has no update operation for `{object}`"
                )),
            });
        };
        let mut v = vars.clone();
        v.insert("id".into(), id.clone());
        if let Err(e) = self.session.call(&up.name, v, Retrying::Safe).await {
            return Err(self.fail(&e, 1, None));
        }
        self.settle(object, key, &id, payload, last)?;
        Ok(Done {
            outcome: Outcome::Updated,
            id: Some(id),
            note: None,
        })
    }
}

/// Whether sending a create again cannot make a second object (an idempotency header, or an
/// upsert).
fn is_idempotent(create: &CompiledOp) -> bool {
    create.spec.idempotency_header.is_some() || create.spec.kind == OperationKind::Upsert
}

/// The id of one record of a list/search/batch answer.
pub(super) fn record_id(op: &CompiledOp, r: &Value) -> Option<Value> {
    op.id
        .as_ref()
        .and_then(|p| p.first(r))
        .or_else(|| r.get("id").or_else(|| r.get("Id")))
        .filter(|v| !v.is_null())
        .cloned()
}

/// A vendor's per-record refusal, as text.
pub(super) fn result_reason(r: &Value) -> String {
    for k in ["errors", "reasons", "message", "error"] {
        if let Some(v) = r.get(k) {
            return match v {
                Value::Array(a) => a
                    .iter()
                    .map(|e| {
                        e.get("message")
                            .map(scalar)
                            .unwrap_or_else(|| e.to_string())
                    })
                    .collect::<Vec<_>>()
                    .join("; "),
                other => scalar(other),
            };
        }
    }
    r.to_string()
}
