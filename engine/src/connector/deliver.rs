//! Delivery of mapped records through a connector session: duplicate detection through the
//! search operation and the store's dedupe index, create or update (or batch create), safe
//! retries of non-idempotent creates (reconcile by search before retrying, so a timeout that
//! did create the record never creates it twice), dead letters, and workflow actions.

use super::{CompiledOp, ConnectorError, ErrorKind, Retrying, Session, scalar, truthy};
use crate::dedupe;
use crate::record::Mapped;
use crate::spec::connector::OperationKind;
use crate::spec::mapping::{DuplicateAction, DuplicateDetection};
use crate::store::Store;
use futures::StreamExt;
use serde::Serialize;
use serde_json::{Map, Value, json};
use std::collections::HashMap;
use std::sync::Arc;

/// One record to deliver: its idempotency key and what the mapping made of it.
#[derive(Debug, Clone)]
pub struct DeliveryItem {
    /// Idempotency key (the source's id, or a hash of the payload).
    pub key: String,
    /// Mapped objects and fired triggers.
    pub mapped: Mapped,
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
    /// Use batch endpoints for single-object records without duplicate detection.
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
    /// Left alone (duplicate with action `skip`).
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
    /// Why it failed or was skipped.
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

/// The summary of a delivery run.
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
    /// Per object results, in completion order.
    pub objects: Vec<ObjectOutcome>,
    /// Workflow action results.
    pub actions: Vec<ActionOutcome>,
}

impl DeliveryReport {
    fn add(&mut self, o: ObjectOutcome) {
        match o.outcome {
            Outcome::Created => self.created += 1,
            Outcome::Updated => self.updated += 1,
            Outcome::Skipped => self.skipped += 1,
            Outcome::Failed => self.failed += 1,
        }
        self.objects.push(o);
    }
}

/// Delivers mapped records through one session.
#[derive(Debug, Clone)]
pub struct Deliverer {
    session: Session,
    store: Option<Arc<Store>>,
    opts: DeliveryOptions,
    /// Records sharing a match key go one at a time (else two could both find no duplicate
    /// and both create).
    key_locks: Arc<std::sync::Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>>,
}

struct RecordResult {
    objects: Vec<ObjectOutcome>,
    actions: Vec<ActionOutcome>,
    dead: bool,
}

impl Deliverer {
    /// A deliverer; without a store there is no dedupe index and no dead-letter store.
    pub fn new(session: Session, store: Option<Arc<Store>>, opts: DeliveryOptions) -> Self {
        Self {
            session,
            store,
            opts,
            key_locks: Arc::default(),
        }
    }

    /// The session.
    pub fn session(&self) -> &Session {
        &self.session
    }

    /// Deliver every item; never loses one: each object ends created, updated, skipped or
    /// failed, and every failed record is dead-lettered (when there is a store).
    pub async fn deliver(&self, items: Vec<DeliveryItem>) -> DeliveryReport {
        self.deliver_with_progress(items, |_| {}).await
    }

    /// Like [`Deliverer::deliver`], calling `progress(n)` as records finish.
    pub async fn deliver_with_progress(
        &self,
        items: Vec<DeliveryItem>,
        mut progress: impl FnMut(usize),
    ) -> DeliveryReport {
        let mut report = DeliveryReport::default();
        let (batched, single): (Vec<_>, Vec<_>) = items
            .into_iter()
            .partition(|it| self.batchable(it).is_some());
        // Batches: group by object, chunk by the operation's max.
        let mut groups: indexmap::IndexMap<String, Vec<DeliveryItem>> = indexmap::IndexMap::new();
        for it in batched {
            if let Some(o) = self.batchable(&it) {
                groups.entry(o.to_string()).or_default().push(it);
            }
        }
        let mut chunks = Vec::new();
        for (object, its) in groups {
            let max = self
                .session
                .connector
                .find_op(&object, OperationKind::BatchCreate)
                .and_then(|o| o.spec.batch.as_ref().map(|b| b.max))
                .unwrap_or(1)
                .max(1);
            let mut its = its.into_iter().peekable();
            while its.peek().is_some() {
                chunks.push((object.clone(), its.by_ref().take(max).collect::<Vec<_>>()));
            }
        }
        let conc = self.opts.concurrency.max(1);
        let mut batch_stream = futures::stream::iter(chunks)
            .map(|(object, its)| self.deliver_batch(object, its))
            .buffer_unordered(conc);
        while let Some(results) = batch_stream.next().await {
            for r in results {
                progress(1);
                self.fold(&mut report, r);
            }
        }
        let mut stream = futures::stream::iter(single)
            .map(|it| self.deliver_record(it))
            .buffer_unordered(conc);
        while let Some(r) = stream.next().await {
            progress(1);
            self.fold(&mut report, r);
        }
        report
    }

    fn fold(&self, report: &mut DeliveryReport, r: RecordResult) {
        if r.dead {
            report.dead_lettered += 1;
        }
        for o in r.objects {
            report.add(o);
        }
        report.actions.extend(r.actions);
    }

    fn dd_for(&self, object: &str) -> Option<&DuplicateDetection> {
        self.opts
            .duplicate_detection
            .as_ref()
            .filter(|d| d.enabled && object == self.opts.dedupe_object)
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

    /// The dedupe index's namespace: the connector, and the base URL when the binding replaces
    /// it (an emulator on a fresh port is another CRM instance, whose ids mean other records).
    fn index_ns(&self) -> String {
        match &self.session.binding.base_url {
            Some(b) => format!("{}@{b}", self.cname()),
            None => self.cname().to_string(),
        }
    }

    /// Ids are kept as JSON text so that their type survives.
    fn index_get(&self, object: &str, key: &str) -> Option<Value> {
        let text = self
            .store
            .as_ref()?
            .dedupe_get(self.tenant(), &self.index_ns(), object, key)
            .ok()
            .flatten()?;
        Some(serde_json::from_str(&text).unwrap_or(Value::String(text)))
    }

    fn index_put(&self, object: &str, keys: &[String], id: &Value) {
        let text = id.to_string();
        if let Some(Err(e)) = self
            .store
            .as_ref()
            .map(|s| s.dedupe_put(self.tenant(), &self.index_ns(), object, keys, &text))
        {
            tracing::warn!(error = %e, "dedupe index write failed");
        }
    }

    /// Forget every index entry pointing at `id` (the CRM no longer has it).
    fn index_forget(&self, object: &str, id: &Value) {
        let text = id.to_string();
        if let Some(Err(e)) = self
            .store
            .as_ref()
            .map(|s| s.dedupe_forget(self.tenant(), &self.index_ns(), object, &text))
        {
            tracing::warn!(error = %e, "dedupe index delete failed");
        }
    }

    fn dead_letter(&self, item: &DeliveryItem, object: &str, reason: &str) -> bool {
        let Some(s) = &self.store else { return false };
        let payload = json!({"objects": item.mapped.objects, "triggers": item.mapped.triggers});
        match s.dead_letter(
            self.tenant(),
            self.cname(),
            &self.opts.route,
            object,
            &item.key,
            &payload,
            reason,
            self.session.connector.retry.max_attempts,
        ) {
            Ok(_) => true,
            Err(e) => {
                tracing::error!(error = %e, key = %item.key, "dead-letter write failed");
                false
            }
        }
    }

    /// Fields whose values identify a record for reconciliation after an unknown outcome.
    fn reconcile_fields(&self, object: &str) -> Vec<String> {
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

    /// Search the vendor for a record whose `field` normalises to `norm`.
    async fn search(
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
        // E-mails are searched normalised (vendors compare them case-insensitively, but not
        // with stray spaces); phones as given, the form the vendor stored them in.
        let value = if norm.contains('@') {
            Value::String(norm.to_string())
        } else {
            raw.clone()
        };
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
        Ok(None)
    }

    /// Look for an existing record: our own index (record key, match keys), then the vendor.
    async fn find_existing(
        &self,
        object: &str,
        key: &str,
        fields: &[String],
        payload: &Map<String, Value>,
        use_index: bool,
    ) -> Result<Option<Value>, ConnectorError> {
        if use_index && let Some(id) = self.index_get(object, &format!("record:{key}")) {
            return Ok(Some(id));
        }
        for (f, norm, raw) in dedupe::match_keys(fields, payload) {
            if use_index && let Some(id) = self.index_get(object, &format!("{f}:{norm}")) {
                return Ok(Some(id));
            }
            if let Some(id) = self.search(object, &f, &raw, &norm).await? {
                return Ok(Some(id));
            }
        }
        Ok(None)
    }

    fn index_keys(&self, object: &str, key: &str, payload: &Map<String, Value>) -> Vec<String> {
        let mut keys = vec![format!("record:{key}")];
        for (f, norm, _) in dedupe::match_keys(&self.reconcile_fields(object), payload) {
            keys.push(format!("{f}:{norm}"));
        }
        keys
    }

    fn vars(
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
            Value::String(idem_key(self.tenant(), self.cname(), object, key)),
        );
        v.insert("key".into(), Value::String(key.to_string()));
        v
    }

    async fn deliver_record(&self, item: DeliveryItem) -> RecordResult {
        let mut keys: Vec<String> = Vec::new();
        if let Some(d) = self.dd_for(&self.opts.dedupe_object)
            && let Some(p) = item.mapped.objects.get(&self.opts.dedupe_object)
        {
            keys = dedupe::match_keys(&d.match_fields, p)
                .into_iter()
                .map(|(f, n, _)| format!("{f}:{n}"))
                .collect();
            keys.sort();
            keys.dedup();
        }
        let locks: Vec<Arc<tokio::sync::Mutex<()>>> = {
            let mut m = self.key_locks.lock().unwrap_or_else(|p| p.into_inner());
            keys.iter()
                .map(|k| m.entry(k.clone()).or_default().clone())
                .collect()
        };
        let mut _guards = Vec::with_capacity(locks.len());
        for l in &locks {
            _guards.push(l.lock().await);
        }
        self.deliver_record_locked(item).await
    }

    async fn deliver_record_locked(&self, item: DeliveryItem) -> RecordResult {
        let mut out = RecordResult {
            objects: vec![],
            actions: vec![],
            dead: false,
        };
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
        for (object, payload) in &item.mapped.objects {
            let o = self.deliver_object(&item.key, object, payload, &ids).await;
            let failed = o.outcome == Outcome::Failed;
            if let Some(id) = &o.raw_id {
                ids.insert(object.clone(), id.clone());
            }
            let reason = o.reason.clone();
            out.objects.push(o);
            if failed {
                out.dead = self.dead_letter(&item, object, reason.as_deref().unwrap_or("failed"));
                return out;
            }
        }
        out.actions =
            crate::workflow::run_triggers(&self.session, &item, &ids, &self.opts.dedupe_object)
                .await;
        out
    }

    async fn deliver_object(
        &self,
        key: &str,
        object: &str,
        payload: &Map<String, Value>,
        ids: &Map<String, Value>,
    ) -> ObjectOutcome {
        let res = self.try_deliver_object(key, object, payload, ids).await;
        match res {
            Ok((outcome, id, reason)) => ObjectOutcome {
                key: key.to_string(),
                object: object.to_string(),
                outcome,
                id: id.as_ref().map(scalar),
                raw_id: id,
                reason,
            },
            Err(e) => ObjectOutcome {
                key: key.to_string(),
                object: object.to_string(),
                outcome: Outcome::Failed,
                id: None,
                raw_id: None,
                reason: Some(e.to_string()),
            },
        }
    }

    async fn try_deliver_object(
        &self,
        key: &str,
        object: &str,
        payload: &Map<String, Value>,
        ids: &Map<String, Value>,
    ) -> Result<(Outcome, Option<Value>, Option<String>), ConnectorError> {
        let conn = &self.session.connector;
        let dd = self.dd_for(object);
        let match_fields: Vec<String> = dd.map(|d| d.match_fields.clone()).unwrap_or_default();
        let action = dd.map(|d| d.action).unwrap_or_default();
        let dry = self.session.is_dry_run();
        let vars = self.vars(object, key, payload, ids);
        // Our index may point at a record the CRM no longer has (deleted there, or another
        // instance, e.g. a fresh emulator): on 404 the entry is forgotten and the vendor is
        // asked again.
        let mut use_index = true;
        loop {
            let existing = if dry && match_fields.is_empty() {
                None
            } else {
                self.find_existing(object, key, &match_fields, payload, use_index)
                    .await?
            };
            if let Some(id) = existing.filter(|_| action != DuplicateAction::Create || dd.is_none())
            {
                if action == DuplicateAction::Skip && dd.is_some() {
                    return Ok((
                        Outcome::Skipped,
                        Some(id),
                        Some("duplicate (action: skip)".into()),
                    ));
                }
                let Some(up) = conn.find_op(object, OperationKind::Update) else {
                    return Ok((
                        Outcome::Skipped,
                        Some(id),
                        Some(format!(
                            "duplicate, and connector has no update operation for `{object}`"
                        )),
                    ));
                };
                let mut v = vars.clone();
                v.insert("id".into(), id.clone());
                match self.session.call(&up.name, v, Retrying::Safe).await {
                    Err(ConnectorError::Http { status: 404, .. }) if use_index => {
                        tracing::info!(object, id = %id, "indexed record is gone from the CRM; looking again");
                        self.index_forget(object, &id);
                        use_index = false;
                        continue;
                    }
                    r => {
                        r?;
                    }
                }
                self.index_put(object, &self.index_keys(object, key, payload), &id);
                return Ok((Outcome::Updated, Some(id), None));
            }
            break;
        }
        let create = conn
            .find_op(object, OperationKind::Create)
            .or_else(|| conn.find_op(object, OperationKind::Upsert))
            .ok_or_else(|| {
                ConnectorError::Config(format!(
                    "connector `{}` has no create operation for object `{object}`",
                    conn.name()
                ))
            })?;
        let idempotent =
            create.spec.idempotency_header.is_some() || create.spec.kind == OperationKind::Upsert;
        let retrying = if idempotent {
            Retrying::Safe
        } else {
            Retrying::Unsafe
        };
        let reconcile = self.reconcile_fields(object);
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
                    if let Some(id) = &id {
                        self.index_put(object, &self.index_keys(object, key, payload), id);
                    }
                    // A dry run has no response: later requests (actions, dependent objects)
                    // show a placeholder id.
                    let id =
                        id.or_else(|| dry.then(|| Value::String(format!("dry-run-{object}-id"))));
                    return Ok((Outcome::Created, id, None));
                }
                Err(e) if e.kind() == ErrorKind::Transient && !idempotent => {
                    // The create may have happened: look before trying again.
                    let keys = dedupe::match_keys(&reconcile, payload);
                    if keys.is_empty() {
                        return Err(ConnectorError::Transient {
                            path: create.name.clone(),
                            message: format!(
                                "{e}; outcome unknown and no match field to check it, so not retried (a retry could duplicate the record)"
                            ),
                            attempts: attempt,
                        });
                    }
                    let mut found = None;
                    for (f, norm, raw) in keys {
                        // A failed search leaves the outcome unknown; the next round looks again.
                        if let Ok(Some(id)) = self.search(object, &f, &raw, &norm).await {
                            found = Some(id);
                            break;
                        }
                    }
                    if let Some(id) = found {
                        self.index_put(object, &self.index_keys(object, key, payload), &id);
                        return Ok((Outcome::Created, Some(id), None));
                    }
                    last_err = Some(e);
                    tokio::time::sleep(super::http::backoff(&conn.retry, attempt)).await;
                }
                Err(e) => return Err(e),
            }
        }
        Err(last_err.unwrap_or_else(|| ConnectorError::Transient {
            path: create.name.clone(),
            message: "create failed".into(),
            attempts: max,
        }))
    }

    async fn deliver_batch(&self, object: String, items: Vec<DeliveryItem>) -> Vec<RecordResult> {
        let conn = &self.session.connector;
        let Some(op) = conn.find_op(&object, OperationKind::BatchCreate) else {
            return vec![];
        };
        let payloads: Vec<Map<String, Value>> = items
            .iter()
            .map(|it| it.mapped.objects.get(&object).cloned().unwrap_or_default())
            .collect();
        let outcome = self.send_batch(op, &object, &items, &payloads).await;
        let mut results = Vec::with_capacity(items.len());
        let mut fallback = Vec::new();
        for (i, it) in items.into_iter().enumerate() {
            match outcome.get(i).cloned().flatten() {
                Some(Ok(id)) => {
                    if let Some(id) = &id {
                        self.index_put(
                            &object,
                            &self.index_keys(&object, &it.key, &payloads[i]),
                            id,
                        );
                    }
                    let o = ObjectOutcome {
                        key: it.key.clone(),
                        object: object.clone(),
                        outcome: Outcome::Created,
                        id: id.as_ref().map(scalar),
                        raw_id: id.clone(),
                        reason: None,
                    };
                    let mut ids = Map::new();
                    if let Some(id) = id {
                        ids.insert(object.clone(), id);
                    }
                    let actions = crate::workflow::run_triggers(
                        &self.session,
                        &it,
                        &ids,
                        &self.opts.dedupe_object,
                    )
                    .await;
                    results.push(RecordResult {
                        objects: vec![o],
                        actions,
                        dead: false,
                    });
                }
                Some(Err(reason)) => {
                    let dead = self.dead_letter(&it, &object, &reason);
                    results.push(RecordResult {
                        objects: vec![ObjectOutcome {
                            key: it.key.clone(),
                            object: object.clone(),
                            outcome: Outcome::Failed,
                            id: None,
                            raw_id: None,
                            reason: Some(reason),
                        }],
                        actions: vec![],
                        dead,
                    });
                }
                None => fallback.push(it),
            }
        }
        // Unknown outcomes: one by one, reconciling by search before any create.
        for it in fallback {
            results.push(self.deliver_record(it).await);
        }
        results
    }

    /// Per input: `Some(Ok(id))` created, `Some(Err(reason))` refused, `None` unknown.
    async fn send_batch(
        &self,
        op: &CompiledOp,
        object: &str,
        items: &[DeliveryItem],
        payloads: &[Map<String, Value>],
    ) -> Vec<Option<Result<Option<Value>, String>>> {
        let n = items.len();
        let t = &self.session.connector.templates;
        let mut rendered = Vec::with_capacity(n);
        for (it, p) in items.iter().zip(payloads) {
            let vars = self.vars(object, &it.key, p, &Map::new());
            let ctx = self.session.context(vars);
            let v = match &op.item {
                Some(tree) => t.tree(tree, &ctx).ok().flatten().unwrap_or(Value::Null),
                None => Value::Object(p.clone()),
            };
            rendered.push(v);
        }
        let mut vars = Map::new();
        vars.insert("items".into(), Value::Array(rendered));
        vars.insert(
            "object".into(),
            Value::String(self.session.connector.api_name(object).to_string()),
        );
        let resp = match self.session.call(&op.name, vars, Retrying::Unsafe).await {
            Ok(r) => r,
            Err(e) if e.kind() == ErrorKind::Transient => {
                if self.reconcile_fields(object).is_empty() {
                    let why = format!(
                        "{e}; outcome unknown and no match field to check it, so not retried (a retry could duplicate the record)"
                    );
                    return vec![Some(Err(why)); n];
                }
                return vec![None; n];
            }
            Err(e) => return vec![Some(Err(e.to_string())); n],
        };
        if self.session.is_dry_run() {
            return vec![Some(Ok(None)); n];
        }
        let batch = op.spec.batch.as_ref();
        let results = op
            .batch_results
            .as_ref()
            .map(|p| p.records(&resp.body))
            .unwrap_or_default();
        let errors: Vec<String> = op
            .batch_errors
            .as_ref()
            .map(|p| p.records(&resp.body))
            .unwrap_or_default()
            .iter()
            .map(|e| {
                e.get("message")
                    .map(scalar)
                    .unwrap_or_else(|| e.to_string())
            })
            .collect();
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
        if results.len() == n && errors.is_empty() {
            return results
                .iter()
                .map(|r| Some(success(r).map(|_| record_id(op, r))))
                .collect();
        }
        // Partial failure without input order: pair by the echoed match field.
        let Some(mf) = batch.and_then(|b| b.match_field.as_ref()) else {
            return vec![None; n];
        };
        let mut by_key = std::collections::HashMap::new();
        for r in &results {
            let fields = self.session.record_fields(op, r);
            if let Some(k) = fields.get(mf).and_then(|v| dedupe::normalise(mf, v)) {
                by_key.insert(k, r);
            }
        }
        let why = if errors.is_empty() {
            "not in the batch results".to_string()
        } else {
            errors.join("; ")
        };
        payloads
            .iter()
            .map(|p| {
                let k = p.get(mf).and_then(|v| dedupe::normalise(mf, v))?;
                Some(match by_key.get(&k) {
                    Some(r) => success(r).map(|_| record_id(op, r)),
                    None => Err(format!("refused: {why}")),
                })
            })
            .collect()
    }
}

fn record_id(op: &CompiledOp, r: &Value) -> Option<Value> {
    op.id
        .as_ref()
        .and_then(|p| p.first(r))
        .or_else(|| r.get("id").or_else(|| r.get("Id")))
        .filter(|v| !v.is_null())
        .cloned()
}

fn result_reason(r: &Value) -> String {
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

/// An idempotency key for one object of one record (≤ 64 hex chars, stable across retries).
pub fn idem_key(tenant: &str, connector: &str, object: &str, key: &str) -> String {
    use sha2::Digest;
    let d = sha2::Sha256::digest(format!(
        "{tenant}\u{1f}{connector}\u{1f}{object}\u{1f}{key}"
    ));
    hex::encode(d)
}
