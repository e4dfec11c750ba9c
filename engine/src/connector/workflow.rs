//! Workflow actions: the triggers a mapping fired for a record (`Mapped.triggers`) run the
//! actions their connector declares under `[actions]`, each a connector operation or an
//! outbound webhook (a JSON POST), after the record's objects are delivered.

use crate::connector::deliver::ActionOutcome;
use crate::connector::template::{Templates, Tpl, TplTree};
use crate::connector::{ConnectorError, DeliveryItem, Retrying, Session};
use crate::spec::connector::ActionSpec;
use serde_json::{Map, Value};

/// An action compiled with its connector.
#[derive(Debug)]
pub struct CompiledAction {
    operation: Option<String>,
    webhook: Option<Tpl>,
    payload: Option<TplTree>,
}

impl CompiledAction {
    /// Compile an action's templates.
    pub fn compile(a: &ActionSpec, t: &mut Templates) -> Result<Self, ConnectorError> {
        Ok(Self {
            operation: a.operation.clone(),
            webhook: a.webhook.as_deref().map(|w| t.compile(w)).transpose()?,
            payload: a.payload.as_ref().map(|p| t.compile_tree(p)).transpose()?,
        })
    }
}

/// How a workflow action ended, for its [`ActionLedger`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ActionEnd {
    /// It ran.
    Ran,
    /// It was refused (nothing happened): it may run again.
    Refused,
    /// Unknown whether it happened: it is not repeated.
    Unknown,
}

/// Makes workflow actions run once per record and trigger across runs and processes (the
/// store's delivery ledger implements it).
pub trait ActionLedger: Send + Sync {
    /// Claim the action for the record; `Some(reason)` when it must not run (it ran already,
    /// its earlier outcome is unknown, or another process runs it).
    fn begin(&self, key: &str, trigger: &str, action: &str) -> Option<String>;
    /// [`ActionLedger::begin`] for an idempotent request (an association): one whose earlier
    /// outcome is unknown (a crash between the request and its record) runs again.
    fn begin_idempotent(&self, key: &str, trigger: &str, action: &str) -> Option<String> {
        self.begin(key, trigger, action)
    }
    /// Record how it ended.
    fn finish(&self, key: &str, trigger: &str, action: &str, end: ActionEnd);
}

/// Run every action of every fired trigger of `item`, each at most once per record when a
/// ledger is given. The template context has `payload` (the route's default object, else the
/// first), `record` (every object), `ids` (remote ids by object), `trigger` and `action`.
pub async fn run_triggers(
    session: &Session,
    item: &DeliveryItem,
    ids: &Map<String, Value>,
    default_object: &str,
    ledger: Option<&dyn ActionLedger>,
) -> Vec<ActionOutcome> {
    let mut out = Vec::new();
    if item.mapped.triggers.is_empty() {
        return out;
    }
    let payload = item
        .mapped
        .objects
        .get(default_object)
        .or_else(|| item.mapped.objects.values().next())
        .cloned()
        .unwrap_or_default();
    let record: Map<String, Value> = item
        .mapped
        .objects
        .iter()
        .map(|(k, v)| (k.clone(), Value::Object(v.clone())))
        .collect();
    for trig in &item.mapped.triggers {
        for action in &trig.actions {
            let mut vars = Map::new();
            vars.insert("payload".into(), Value::Object(payload.clone()));
            vars.insert("record".into(), Value::Object(record.clone()));
            vars.insert("ids".into(), Value::Object(ids.clone()));
            vars.insert(
                "id".into(),
                ids.get(default_object).cloned().unwrap_or(Value::Null),
            );
            vars.insert("trigger".into(), Value::String(trig.name.clone()));
            vars.insert("action".into(), Value::String(action.clone()));
            vars.insert("key".into(), Value::String(item.key.clone()));
            if let Some(why) = ledger.and_then(|l| l.begin(&item.key, &trig.name, action)) {
                out.push(ActionOutcome {
                    key: item.key.clone(),
                    trigger: trig.name.clone(),
                    action: action.clone(),
                    status: "skipped",
                    reason: Some(why),
                });
                continue;
            }
            let res = run_action(session, action, vars).await;
            let end = match &res {
                Ok(None) => ActionEnd::Ran,
                // Not configured for this tenant: nothing happened, it may run later.
                Ok(Some(_)) => ActionEnd::Refused,
                Err(e) if e.kind() == crate::connector::ErrorKind::Transient => ActionEnd::Unknown,
                Err(_) => ActionEnd::Refused,
            };
            if let Some(l) = ledger
                && !session.is_dry_run()
            {
                l.finish(&item.key, &trig.name, action, end);
            }
            let (status, reason) = match res {
                Ok(None) => ("ran", None),
                Ok(Some(why)) => ("skipped", Some(why)),
                Err(e) => ("failed", Some(e.to_string())),
            };
            out.push(ActionOutcome {
                key: item.key.clone(),
                trigger: trig.name.clone(),
                action: action.clone(),
                status,
                reason,
            });
        }
    }
    out
}

/// Run one action; `Ok(Some(reason))` when the connector declares no such action.
pub async fn run_action(
    session: &Session,
    name: &str,
    mut vars: Map<String, Value>,
) -> Result<Option<String>, ConnectorError> {
    let conn = &session.connector;
    let Some(a) = conn.actions.get(name) else {
        return Ok(Some(format!(
            "connector `{}` declares no action `{name}`",
            conn.name()
        )));
    };
    if let Some(p) = &a.payload {
        let ctx = session.context(vars.clone());
        let rendered = conn.templates.tree(p, &ctx)?.unwrap_or(Value::Null);
        vars.insert("payload".into(), rendered);
    }
    if let Some(op) = &a.operation {
        session.call(op, vars, Retrying::Unsafe).await?;
        return Ok(None);
    }
    if let Some(w) = &a.webhook {
        let ctx = session.context(vars.clone());
        let url = conn.templates.string(w, &ctx)?;
        if url.is_empty() {
            return Ok(Some(format!(
                "action `{name}` posts to a webhook whose URL is not configured for this tenant"
            )));
        }
        let body = vars.get("payload").cloned().unwrap_or(Value::Null);
        if let Some(sink) = &session.dry_run {
            sink.lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(serde_json::json!({"method": "POST", "url": url, "headers": {"content-type": "application/json"}, "body": body}));
            return Ok(None);
        }
        let resp = session
            .http
            .post(&url)
            .json(&body)
            .timeout(std::time::Duration::from_millis(conn.retry.timeout_ms))
            .send()
            .await
            .map_err(|e| ConnectorError::Transient {
                path: "webhook".into(),
                message: e.without_url().to_string(),
                attempts: 1,
            })?;
        if !resp.status().is_success() {
            return Err(ConnectorError::Http {
                method: "POST".into(),
                path: "webhook".into(),
                status: resp.status().as_u16(),
                code: None,
                message: "webhook refused the action".into(),
                existing: None,
                created_before: false,
            });
        }
    }
    Ok(None)
}
