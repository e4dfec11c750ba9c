//! The mapping engine: a tenant's mapping spec compiled once ([`compile`]) into a plan that
//! turns each inbound record into the payloads of the target objects plus the workflow
//! triggers that fired ([`CompiledMapping::apply`], [`CompiledMapping::apply_line`]).
//!
//! The plan knows every source path it reads. `apply_line` (used by `switchyard map`) scans a
//! raw NDJSON line with a validating scanner that captures only those paths as borrowed
//! slices, evaluates the precompiled sources over them and writes the output line straight
//! into a reused buffer; `apply` does the same over a parsed `serde_json::Value` and returns a
//! [`Mapped`](crate::record::Mapped). Both share one evaluator, so they agree.

mod apply;
mod compile;
mod line;
pub mod scan;
mod stream;

use crate::expr::{EvalCtx, Expr, Val};
use crate::secrets::SecretProvider;
use crate::spec::{ConnectorSpec, FieldType, MappingSpec};
use crate::template::Part;
use chrono::{DateTime, Utc};
use indexmap::IndexMap;
use serde_json::Value;
use std::sync::Arc;

pub use apply::{LineOutcome, Scratch};

/// A JSON value given a field type by the mapping's own rules (numeric text becomes a number,
/// an RFC 3339 timestamp a date, …); `Err` says why it cannot take the type. The connector
/// runtime uses it for custom fields whose types only the CRM knows (`field_keys.types`).
pub(crate) fn coerce_json(v: &Value, ty: FieldType) -> Result<Value, String> {
    let val = Val::from_json(v);
    let out = apply::coerce(val, ty, &[])?;
    Ok(out.to_json().unwrap_or(Value::Null))
}
pub use compile::compile;
pub use line::parse_record;
pub use stream::{MAX_RECORD_BYTES, load_mapping, map_stream, read_record};

/// What a mapping compiles against: the target connector and, optionally, the source.
#[derive(Clone, Copy)]
pub struct CompileEnv<'a> {
    /// The connector records are delivered to (its field catalogs and actions).
    pub target: &'a ConnectorSpec,
    /// The inbound source (its `inbound.object` catalog decides what bare strings are).
    pub source: Option<&'a ConnectorSpec>,
    /// The spec's plugins, loaded (their mapping functions become `alias.function`). `None`:
    /// calls of any function of a declared alias compile (static validation) but cannot run.
    pub plugins: Option<&'a Arc<crate::plugin::PluginSet>>,
}

/// Per-run context of [`CompiledMapping::apply`].
#[derive(Clone, Copy)]
pub struct MapContext<'a> {
    /// The clock of `today()` / `now()`.
    pub now: DateTime<Utc>,
    /// Secrets (mapping output never contains them; request building resolves them).
    pub secrets: &'a dyn SecretProvider,
    /// Runs plugin mapping functions (a [`crate::plugin::PluginSession`], one per run). `None`:
    /// a plan with plugins opens a session per record.
    pub ext: Option<&'a dyn crate::expr::ExtCalls>,
}

impl std::fmt::Debug for MapContext<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MapContext")
            .field("now", &self.now)
            .finish()
    }
}

/// Why one record was rejected. The rest of the input goes on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, serde::Serialize)]
#[error("{}", self.render())]
pub struct RecordError {
    /// 1-based input line, when the record came from NDJSON.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub line: Option<usize>,
    /// `object.field` (or `trigger:<name>`), when one field is at fault.
    pub field: Option<String>,
    /// JSON pointer into the mapping spec.
    pub pointer: String,
    /// The cause.
    pub reason: String,
}

impl RecordError {
    fn render(&self) -> String {
        match &self.field {
            Some(f) => format!("field `{f}` (spec {}): {}", self.pointer, self.reason),
            None => self.reason.clone(),
        }
    }
}

/// A compiled mapping. `Send + Sync`: share it between threads behind an `Arc`.
#[derive(Debug)]
pub struct CompiledMapping {
    /// Slot → dotted source path.
    pub(crate) paths: Vec<String>,
    pub(crate) segs: Vec<Vec<String>>,
    pub(crate) trie: scan::PathTrie,
    pub(crate) jsonpaths: Vec<(String, jsonpath_rust::parser::model::JpQuery)>,
    /// Whether applying needs the whole record as a `Value` (JSONPaths, helper templates).
    pub(crate) needs_value: bool,
    pub(crate) exprs: Vec<ExprPlan>,
    pub(crate) templates: Vec<TemplatePlan>,
    pub(crate) registry: Option<Arc<handlebars::Handlebars<'static>>>,
    pub(crate) objects: Vec<ObjectPlan>,
    pub(crate) triggers: Vec<TriggerPlan>,
    /// The plugins whose functions the plan calls.
    pub(crate) plugins: Option<Arc<crate::plugin::PluginSet>>,
}

#[derive(Debug)]
pub(crate) struct ExprPlan {
    pub expr: Expr,
    /// Variable index → slot.
    pub slots: Vec<usize>,
}

#[derive(Debug)]
pub(crate) struct TemplatePlan {
    pub parts: Option<Vec<Part>>,
    pub name: String,
}

#[derive(Debug)]
pub(crate) struct ObjectPlan {
    pub name: String,
    /// `"name":` as JSON.
    pub key_json: String,
    pub fields: Vec<FieldPlan>,
}

#[derive(Debug)]
pub(crate) struct FieldPlan {
    pub name: String,
    /// `object.field`, for errors.
    pub label: String,
    /// `"name":` as JSON.
    pub key_json: String,
    pub pointer: String,
    pub src: Src,
    pub ty: FieldType,
    pub options: Vec<String>,
}

/// Where a value comes from (compiled).
#[derive(Debug)]
pub(crate) enum Src {
    Slot(usize),
    JsonPath(usize),
    Lit(Val<'static>),
    Expr(usize, String),
    Template(usize),
    Cond(Vec<(usize, String, Src)>, Option<Box<Src>>),
    WithDefault(Box<Src>, Val<'static>),
    Tree(Tree),
    Lookup {
        key: Box<Src>,
        table: IndexMap<String, Value>,
        default: Option<Value>,
    },
}

/// A payload template node.
#[derive(Debug)]
pub(crate) enum Tree {
    Object(Vec<(String, Tree)>),
    Array(Vec<Tree>),
    /// A value with the dotted label and pointer its note names when it gives nothing
    /// (both fixed at compile time).
    Leaf {
        src: Box<Src>,
        label: String,
        pointer: String,
    },
}

#[derive(Debug)]
pub(crate) struct TriggerPlan {
    pub name: String,
    pub name_json: String,
    pub actions: Vec<String>,
    pub expr: usize,
    pub pointer: String,
}

impl CompiledMapping {
    /// Compile a mapping spec; `Err` with every diagnostic when it has errors (warnings and
    /// notes are dropped; use [`compile`] to see them).
    pub fn compile(
        spec: &MappingSpec,
        env: &CompileEnv,
    ) -> Result<CompiledMapping, crate::diag::Diagnostics> {
        match compile(spec, env) {
            (Some(m), _) => Ok(m),
            (None, d) => Err(d),
        }
    }

    /// The dotted source paths the plan reads.
    pub fn source_paths(&self) -> &[String] {
        &self.paths
    }

    /// Names of the objects the mapping produces, in output order.
    pub fn object_names(&self) -> impl Iterator<Item = &str> {
        self.objects.iter().map(|o| o.name.as_str())
    }

    /// A plugin session for one run, when the plan calls plugin functions.
    pub fn plugin_session(&self) -> Option<crate::plugin::PluginSession> {
        self.plugins.as_ref().map(|p| p.session())
    }

    pub(crate) fn eval_ctx(ctx: &MapContext) -> EvalCtx {
        EvalCtx { now: ctx.now }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expressions_share_one_copy_of_a_lookup_table() {
        // Each expression reading a lookup table used to copy the whole table: one big table
        // and thousands of expressions made a small spec allocate gigabytes.
        let target: ConnectorSpec =
            toml::from_str(include_str!("../../../connector-specs/hubspot.toml")).expect("spec");
        let table: serde_json::Map<String, Value> = (0..1_000)
            .map(|i| (format!("k{i}"), Value::from(i)))
            .collect();
        let fields: serde_json::Map<String, Value> = (0..50)
            .map(|i| {
                (
                    format!("f{i}"),
                    serde_json::json!({"type": "computed", "formula": format!("big[x{i}] || 0")}),
                )
            })
            .collect();
        let spec: MappingSpec = serde_json::from_value(serde_json::json!({
            "spec_version": 1, "tenant": "t", "connector": "hubspot",
            "lookups": {"big": table},
            "crm_config": {"type": "hubspot", "field_mappings": fields}
        }))
        .expect("spec");
        let env = CompileEnv {
            target: &target,
            source: None,
            plugins: None,
        };
        let (plan, diags) = compile(&spec, &env);
        let plan = plan.unwrap_or_else(|| panic!("{diags}"));
        let first = &plan.exprs[0].expr.tables[0];
        assert_eq!(plan.exprs.len(), 50);
        for e in &plan.exprs {
            assert!(Arc::ptr_eq(first, &e.expr.tables[0]));
        }
    }

    #[test]
    fn compiled_mapping_is_send_and_sync() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<CompiledMapping>();
    }
}
