//! A session's `[lookups]`: each value is looked up through its operation once per input and
//! kept for the lookup's `cache_secs` (a miss too), one lookup at a time however many records
//! are in flight; templates read the values as `{{lookups.<name>}}`.

use super::{Session, scalar};
use serde_json::{Map, Value};
use std::collections::HashMap;
use std::time::Instant;

/// What one lookup found for one input, and when.
#[derive(Debug, Clone)]
struct Found {
    input: String,
    value: Option<Value>,
    at: Instant,
}

/// The lookup values of a session (shared by its clones).
#[derive(Debug, Default)]
pub(crate) struct LookupCache {
    /// Held while lookups are resolved: concurrent records wait for one lookup, not each
    /// their own.
    found: tokio::sync::Mutex<HashMap<String, Found>>,
    /// The values templates see now, by lookup name.
    values: std::sync::Mutex<Map<String, Value>>,
}

impl LookupCache {
    /// The current values (empty when the connector has no lookups or none resolved yet).
    pub(crate) fn values(&self) -> Map<String, Value> {
        self.values
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    fn set(&self, name: &str, v: Option<Value>) {
        let mut m = self.values.lock().unwrap_or_else(|p| p.into_inner());
        match v {
            Some(v) => {
                m.insert(name.to_string(), v);
            }
            None => {
                m.remove(name);
            }
        }
    }
}

impl Session {
    /// Resolve the connector's lookups for this tenant (cached; see the module doc). `Err`
    /// says which lookup failed or found nothing, for which input: no request that reads it
    /// may be sent.
    pub async fn resolve_lookups(&self) -> Result<(), String> {
        let conn = self.connector.clone();
        if conn.lookups.is_empty() {
            return Ok(());
        }
        let mut found = self.lookups.found.lock().await;
        let ctx = self.context(Map::new());
        for l in &conn.lookups {
            let input = conn
                .templates
                .string(&l.input, &ctx)
                .map_err(|e| format!("lookup `{}`: its input does not render: {e}", l.name))?
                .trim()
                .to_string();
            if input.is_empty() {
                found.remove(&l.name);
                self.lookups.set(&l.name, None);
                continue;
            }
            let fresh = found
                .get(&l.name)
                .filter(|f| f.input == input && f.at.elapsed() < l.ttl)
                .cloned();
            let f = match fresh {
                Some(f) => f,
                None => {
                    let value = self.look_up(l, &input).await?;
                    let f = Found {
                        input: input.clone(),
                        value,
                        at: Instant::now(),
                    };
                    found.insert(l.name.clone(), f.clone());
                    f
                }
            };
            self.lookups.set(&l.name, f.value.clone());
            if f.value.is_none() {
                return Err(format!(
                    "lookup `{}` (operation `{}`) found nothing for `{input}`; nothing that needs it was sent",
                    l.name, l.operation
                ));
            }
        }
        Ok(())
    }

    async fn look_up(
        &self,
        l: &super::related::CompiledLookup,
        input: &str,
    ) -> Result<Option<Value>, String> {
        let mut vars = Map::new();
        vars.insert("input".into(), Value::String(input.to_string()));
        let mut first = None;
        self.list(&l.operation, vars, Some(1), |r| {
            if first.is_none() {
                first = Some(r);
            }
        })
        .await
        .map_err(|e| format!("lookup `{}` of `{input}` failed: {e}", l.name))?;
        if self.is_dry_run() {
            // Nothing was sent: later requests show a placeholder.
            return Ok(Some(Value::String(format!("dry-run-{}", l.name))));
        }
        let Some(record) = first else {
            return Ok(None);
        };
        let op = self.connector.op(&l.operation).map_err(|e| e.to_string())?;
        let v = match &l.value {
            Some(p) => p.first(&record).cloned(),
            None => op
                .id
                .as_ref()
                .and_then(|p| p.first(&record))
                .or_else(|| record.get("id"))
                .cloned(),
        };
        Ok(v.filter(|v| !v.is_null() && !scalar(v).is_empty()))
    }
}
