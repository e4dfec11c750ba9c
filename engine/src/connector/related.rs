//! The compiled `[lookups]`, `[related]` and `[associations]` of a connector spec: values
//! looked up once per session, objects a delivered record brings along, and the associations
//! made between a record's objects. Delivery uses them in `deliver/related.rs`, the session's
//! lookup cache is `lookup.rs`.

use super::template::{Templates, Tpl, TplTree};
use super::{ConnectorError, Path};
use crate::spec::connector::{ConnectorSpec, OperationKind};
use crate::spec::mapping::{DuplicateAction, DuplicateDetection, MatchStrategy};
use std::time::Duration;

/// A compiled `[lookups.<name>]`.
#[derive(Debug)]
pub(crate) struct CompiledLookup {
    pub name: String,
    pub operation: String,
    pub input: Tpl,
    pub value: Option<Path>,
    pub ttl: Duration,
}

/// A compiled `[related.<object>]`.
#[derive(Debug)]
pub(crate) struct CompiledRelated {
    pub object: String,
    pub when: Tpl,
    pub payload: TplTree,
    /// With `find_by`: reuse the object that has the record's value of that field (the
    /// delivery state machine's duplicate detection, action `skip`).
    pub find: Option<DuplicateDetection>,
}

/// A compiled `[associations.<name>]`.
#[derive(Debug)]
pub(crate) struct CompiledAssociation {
    pub name: String,
    pub from: String,
    pub to: String,
    pub operation: String,
}

/// Everything of the three tables, compiled into the connector's template registry.
pub(crate) struct Plans {
    pub lookups: Vec<CompiledLookup>,
    pub related: Vec<CompiledRelated>,
    pub associations: Vec<CompiledAssociation>,
}

/// Compile the tables of `spec` (operations and objects they name must exist).
pub(crate) fn compile(spec: &ConnectorSpec, t: &mut Templates) -> Result<Plans, ConnectorError> {
    let op = |name: &str, what: String| {
        if spec.operations.contains_key(name) {
            Ok(name.to_string())
        } else {
            Err(ConnectorError::Config(format!(
                "{what} names operation `{name}`, which connector `{}` does not declare",
                spec.connector.name
            )))
        }
    };
    let object = |name: &str, what: String| {
        if spec.objects.contains_key(name) {
            Ok(name.to_string())
        } else {
            Err(ConnectorError::Config(format!(
                "{what} names object `{name}`, which connector `{}` does not declare",
                spec.connector.name
            )))
        }
    };
    let mut lookups = Vec::new();
    for (name, l) in &spec.lookups {
        lookups.push(CompiledLookup {
            name: name.clone(),
            operation: op(&l.operation, format!("lookup `{name}`"))?,
            input: t.compile(&l.input)?,
            value: l.value.as_deref().map(Path::compile).transpose()?,
            ttl: Duration::from_secs(l.cache_secs),
        });
    }
    let mut related = Vec::new();
    for (name, r) in &spec.related {
        let what = format!("related object `{name}`");
        let object = object(name, what.clone())?;
        let creates = spec.operations.values().any(|o| {
            o.object.as_deref() == Some(name.as_str())
                && matches!(o.kind, OperationKind::Create | OperationKind::Upsert)
        });
        if !creates {
            return Err(ConnectorError::Config(format!(
                "{what} has no create operation"
            )));
        }
        if !r.payload.is_object() {
            return Err(ConnectorError::Config(format!(
                "{what}: its payload must be a JSON object"
            )));
        }
        related.push(CompiledRelated {
            object,
            when: t.compile(&r.when)?,
            payload: t.compile_tree(&r.payload)?,
            find: r.find_by.as_ref().map(|f| DuplicateDetection {
                enabled: true,
                match_fields: vec![f.clone()],
                match_strategy: MatchStrategy::Exact,
                action: DuplicateAction::Skip,
            }),
        });
    }
    let mut associations = Vec::new();
    for (name, a) in &spec.associations {
        let what = format!("association `{name}`");
        associations.push(CompiledAssociation {
            name: name.clone(),
            from: object(&a.from, what.clone())?,
            to: object(&a.to, what.clone())?,
            operation: op(&a.operation, what)?,
        });
    }
    Ok(Plans {
        lookups,
        related,
        associations,
    })
}
