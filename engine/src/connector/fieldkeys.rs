//! Custom fields a CRM addresses by keys of its own (an object's `field_keys`): the names a
//! tenant writes are resolved to the keys of the CRM's field definitions before a create or
//! update is rendered. Pipedrive is the case in point (40-character hash keys; the definitions
//! come from `GET /v1/personFields`), but nothing here knows a vendor: the spec names the list
//! operation and where a definition keeps its name and key.
//!
//! The definitions of an object are listed once per session (sessions cloned from one share
//! them), single-flight, and only when a payload first carries a field the catalog does not
//! declare. A name that matches nothing is listed again once when the definitions are older
//! than [`REFRESH_AFTER`] (a tenant who just created the field in the CRM), then fails the
//! record with an error that names it.

use super::{ConnectorError, Path, Session, scalar};
use crate::spec::FieldType;
use crate::spec::connector::{ConnectorSpec, FieldKeys, OperationKind};
use serde_json::{Map, Value};
use std::borrow::Cow;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

/// How old the definitions may be before a name they do not know makes them listed again.
pub const REFRESH_AFTER: Duration = Duration::from_secs(60);

/// An object's `field_keys`, compiled.
#[derive(Debug)]
pub(crate) struct FieldKeysPlan {
    operation: String,
    name: Path,
    key: Path,
    into: Option<String>,
    field_type: Option<Path>,
    types: HashMap<String, FieldType>,
}

impl FieldKeysPlan {
    /// Compile `objects.<object>.field_keys`: its operation must be a `list` of the spec.
    pub(crate) fn compile(
        object: &str,
        fk: &FieldKeys,
        spec: &ConnectorSpec,
    ) -> Result<Self, ConnectorError> {
        match spec.operations.get(&fk.operation).map(|o| o.kind) {
            Some(OperationKind::List) => {}
            Some(kind) => {
                return Err(ConnectorError::Config(format!(
                    "objects.{object}.field_keys.operation `{}` is a `{kind:?}` operation, not a `list`",
                    fk.operation
                )));
            }
            None => {
                return Err(ConnectorError::Config(format!(
                    "objects.{object}.field_keys.operation names no operation (`{}`)",
                    fk.operation
                )));
            }
        }
        Ok(Self {
            operation: fk.operation.clone(),
            name: Path::compile(&fk.name)?,
            key: Path::compile(&fk.key)?,
            into: fk.into.clone(),
            field_type: fk.field_type.as_deref().map(Path::compile).transpose()?,
            types: fk.types.iter().map(|(k, t)| (k.clone(), *t)).collect(),
        })
    }
}

/// The field definitions of one object as the CRM listed them.
#[derive(Debug)]
struct FieldIndex {
    keys: HashSet<String>,
    /// Keys by the name as written.
    by_name: HashMap<String, Vec<String>>,
    /// Keys by the name with case, spaces and punctuation ignored ([`normalise`]).
    by_norm: HashMap<String, Vec<String>>,
    /// Every name, for "did you mean".
    names: Vec<String>,
    /// Engine type and CRM type of the fields whose CRM type `types` maps, by key.
    types: HashMap<String, (FieldType, String)>,
    listed: Instant,
}

impl FieldIndex {
    fn new(plan: &FieldKeysPlan, definitions: &[Value]) -> Self {
        let mut ix = FieldIndex {
            keys: HashSet::new(),
            by_name: HashMap::new(),
            by_norm: HashMap::new(),
            names: Vec::new(),
            types: HashMap::new(),
            listed: Instant::now(),
        };
        for d in definitions {
            let Some(key) = plan.key.first(d).map(scalar).filter(|k| !k.is_empty()) else {
                continue;
            };
            ix.keys.insert(key.clone());
            let crm_type = plan
                .field_type
                .as_ref()
                .and_then(|p| p.first(d))
                .and_then(Value::as_str);
            if let Some((t, crm)) = crm_type.and_then(|c| Some((*plan.types.get(c)?, c))) {
                ix.types.insert(key.clone(), (t, crm.to_string()));
            }
            if let Some(name) = plan.name.first(d).and_then(Value::as_str) {
                ix.by_name
                    .entry(name.to_string())
                    .or_default()
                    .push(key.clone());
                ix.by_norm.entry(normalise(name)).or_default().push(key);
                ix.names.push(name.to_string());
            }
        }
        ix
    }

    /// The key a payload field name stands for: a key itself, else the one definition of
    /// that name, else the one of that name with case, spaces and punctuation ignored.
    fn resolve(&self, field: &str) -> Result<String, Miss> {
        if self.keys.contains(field) {
            return Ok(field.to_string());
        }
        for keys in [self.by_name.get(field), self.by_norm.get(&normalise(field))]
            .into_iter()
            .flatten()
        {
            match keys.as_slice() {
                [one] => return Ok(one.clone()),
                [] => {}
                many => return Err(Miss::Ambiguous(many.to_vec())),
            }
        }
        Err(Miss::Unknown)
    }
}

enum Miss {
    Unknown,
    Ambiguous(Vec<String>),
}

/// `Call Recording URL` and `call_recording_url` alike: lowercase, every run of other
/// characters than letters and digits one `_`, none at the ends.
pub fn normalise(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for c in name.chars() {
        if c.is_alphanumeric() {
            out.extend(c.to_lowercase());
        } else if !out.is_empty() && !out.ends_with('_') {
            out.push('_');
        }
    }
    while out.ends_with('_') {
        out.pop();
    }
    out
}

/// One object's definitions once listed, behind the async lock that makes listing them
/// single-flight.
type Slot = Arc<tokio::sync::Mutex<Option<Arc<FieldIndex>>>>;

/// The definitions of each object, per session.
#[derive(Debug, Default)]
pub(crate) struct FieldKeyCache {
    objects: std::sync::Mutex<HashMap<String, Slot>>,
}

impl FieldKeyCache {
    fn slot(&self, object: &str) -> Slot {
        self.objects
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(object.to_string())
            .or_default()
            .clone()
    }
}

impl Session {
    /// `payload` of `object` as the CRM addresses it: every field the object's catalog does
    /// not declare renamed to its key (and moved under `field_keys.into`), see the module
    /// docs. Unchanged for an object without `field_keys`. In a dry run the definitions are
    /// asked for (the request shows) but nothing answers: names stay as written.
    pub async fn resolve_fields<'p>(
        &self,
        object: &str,
        payload: &'p Map<String, Value>,
    ) -> Result<Cow<'p, Map<String, Value>>, ConnectorError> {
        let Some(plan) = self.connector.field_keys.get(object) else {
            return Ok(Cow::Borrowed(payload));
        };
        let declared = self.connector.spec.objects.get(object).map(|o| &o.fields);
        let is_custom = |k: &String| {
            declared.is_none_or(|d| !d.contains_key(k)) && plan.into.as_ref() != Some(k)
        };
        if !payload.keys().any(is_custom) {
            return Ok(Cow::Borrowed(payload));
        }
        let mut index = self.field_index(object, plan, false).await?;
        let mut keys = self.keys_of(object, plan, &index, payload, &is_custom);
        if keys.is_err() && index.listed.elapsed() >= REFRESH_AFTER {
            index = self.field_index(object, plan, true).await?;
            keys = self.keys_of(object, plan, &index, payload, &is_custom);
        }
        let keys = keys?;
        let typed = self.typed_values(object, &index, payload, &keys)?;
        let mut out = Map::new();
        let mut grouped = match plan.into.as_ref().and_then(|i| payload.get(i)) {
            Some(Value::Object(m)) => m.clone(),
            _ => Map::new(),
        };
        for (k, v) in payload {
            let v = typed.get(k).unwrap_or(v);
            match keys.get(k) {
                Some(key) if plan.into.is_some() => {
                    grouped.insert(key.clone(), v.clone());
                }
                Some(key) => {
                    out.insert(key.clone(), v.clone());
                }
                None if plan.into.as_ref() == Some(k) => {}
                None => {
                    out.insert(k.clone(), v.clone());
                }
            }
        }
        if let Some(into) = &plan.into
            && !grouped.is_empty()
        {
            out.insert(into.clone(), Value::Object(grouped));
        }
        Ok(Cow::Owned(out))
    }

    /// The values of resolved fields whose CRM type `types` maps, converted to the engine
    /// type; one error naming every value that cannot take its field's type.
    fn typed_values(
        &self,
        object: &str,
        index: &FieldIndex,
        payload: &Map<String, Value>,
        keys: &HashMap<String, String>,
    ) -> Result<HashMap<String, Value>, ConnectorError> {
        let mut out = HashMap::new();
        let mut problems = Vec::new();
        for (field, key) in keys {
            let (Some((ty, crm)), Some(v)) = (index.types.get(key), payload.get(field)) else {
                continue;
            };
            match crate::mapping::coerce_json(v, *ty) {
                Ok(c) => {
                    out.insert(field.clone(), c);
                }
                Err(why) => problems.push(format!(
                    "`{field}` (a {crm} field in the CRM) cannot be {ty}: {why}"
                )),
            }
        }
        if problems.is_empty() {
            return Ok(out);
        }
        problems.sort();
        Err(ConnectorError::Config(format!(
            "custom fields of `{}` object `{object}` refused: {}",
            self.connector.name(),
            problems.join("; ")
        )))
    }

    /// The key of every custom field of `payload`, or one error naming every field that
    /// resolves to none (or to more than one).
    fn keys_of(
        &self,
        object: &str,
        plan: &FieldKeysPlan,
        index: &FieldIndex,
        payload: &Map<String, Value>,
        is_custom: &impl Fn(&String) -> bool,
    ) -> Result<HashMap<String, String>, ConnectorError> {
        let mut keys = HashMap::new();
        let mut problems = Vec::new();
        let mut taken: HashMap<String, String> = HashMap::new();
        for k in payload.keys().filter(|k| is_custom(k)) {
            if self.is_dry_run() {
                keys.insert(k.clone(), k.clone());
                continue;
            }
            match index.resolve(k) {
                Ok(key) => {
                    if let Some(other) = taken.insert(key.clone(), k.clone()) {
                        problems.push(format!(
                            "`{other}` and `{k}` are the same field (key `{key}`): map it once"
                        ));
                    }
                    keys.insert(k.clone(), key);
                }
                Err(Miss::Ambiguous(many)) => problems.push(format!(
                    "`{k}` names {} fields (keys {}): write the key instead",
                    many.len(),
                    many.iter()
                        .map(|m| format!("`{m}`"))
                        .collect::<Vec<_>>()
                        .join(", ")
                )),
                Err(Miss::Unknown) => {
                    let hint = crate::diag::closest(k, index.names.iter().map(String::as_str))
                        .map(|n| format!(" (did you mean `{n}`?)"))
                        .unwrap_or_default();
                    problems.push(format!(
                        "`{k}` is the name or key of none of the {} fields `{}` lists{hint}",
                        index.keys.len(),
                        plan.operation
                    ));
                }
            }
        }
        if problems.is_empty() {
            return Ok(keys);
        }
        Err(ConnectorError::Config(format!(
            "custom fields of `{}` object `{object}` not found in the CRM: {}; create them there, or map fields it has",
            self.connector.name(),
            problems.join("; ")
        )))
    }

    /// The definitions of `object`, listed when this session has none yet (or `again`).
    async fn field_index(
        &self,
        object: &str,
        plan: &FieldKeysPlan,
        again: bool,
    ) -> Result<Arc<FieldIndex>, ConnectorError> {
        let slot = self.field_keys.slot(object);
        let mut held = slot.lock().await;
        if let Some(ix) = held.as_ref()
            && !(again && ix.listed.elapsed() >= REFRESH_AFTER)
        {
            return Ok(ix.clone());
        }
        let mut definitions = Vec::new();
        self.list(&plan.operation, Map::new(), None, |d| definitions.push(d))
            .await?;
        let ix = Arc::new(FieldIndex::new(plan, &definitions));
        tracing::debug!(
            connector = self.connector.name(),
            object,
            fields = ix.keys.len(),
            "listed field definitions"
        );
        *held = Some(ix.clone());
        Ok(ix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_match_ignoring_case_spaces_and_punctuation() {
        assert_eq!(normalise("Call Recording URL"), "call_recording_url");
        assert_eq!(normalise("  AI lead-score (0–100) "), "ai_lead_score_0_100");
        assert_eq!(normalise("call_recording_url"), "call_recording_url");
        assert_eq!(normalise("Größe"), "größe");
    }

    fn index() -> FieldIndex {
        let plan = FieldKeysPlan {
            operation: "list_fields".into(),
            name: Path::compile("$.name").unwrap_or_else(|e| panic!("{e}")),
            key: Path::compile("$.key").unwrap_or_else(|e| panic!("{e}")),
            into: None,
            field_type: Path::compile("$.type").ok(),
            types: HashMap::from([("double".to_string(), FieldType::Number)]),
        };
        let defs = serde_json::json!([
            {"key": "name", "name": "Name"},
            {"key": "a1", "name": "Call recording URL"},
            {"key": "b2", "name": "Score", "type": "double"},
            {"key": "c3", "name": "score"},
            {"name": "no key"},
        ]);
        FieldIndex::new(
            &plan,
            defs.as_array().map(Vec::as_slice).unwrap_or_default(),
        )
    }

    #[test]
    fn a_field_resolves_by_key_then_name_then_normalised_name() {
        let ix = index();
        assert_eq!(ix.resolve("a1").ok(), Some("a1".into()));
        assert_eq!(ix.resolve("Call recording URL").ok(), Some("a1".into()));
        assert_eq!(ix.resolve("call_recording_url").ok(), Some("a1".into()));
        // Exact names first: `Score` is one field, though two normalise alike.
        assert_eq!(ix.resolve("Score").ok(), Some("b2".into()));
        assert!(matches!(ix.resolve("SCORE"), Err(Miss::Ambiguous(k)) if k.len() == 2));
        assert!(matches!(ix.resolve("colour"), Err(Miss::Unknown)));
        assert_eq!(ix.keys.len(), 4, "a definition without a key is skipped");
        assert_eq!(
            ix.types.get("b2"),
            Some(&(FieldType::Number, "double".to_string()))
        );
        assert_eq!(
            ix.types.len(),
            1,
            "CRM types `types` does not map: as mapped"
        );
    }
}
