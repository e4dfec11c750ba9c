//! [`Attribution`]: an attribution spec compiled by the engine (its expressions once, its
//! enrichment plugin loaded with the operator's grants), ready to run over records — read
//! from a file, or pulled through the engine's routes.

use super::{Engine, EngineError};
use crate::attribution::{Outcome, Plan, enrich};
use crate::diag::{Diagnostic, Diagnostics};
use crate::spec::attribution::AttributionSpec;
use std::path::{Path, PathBuf};

/// A compiled attribution spec.
pub struct Attribution {
    spec: AttributionSpec,
    path: PathBuf,
    plan: Plan,
    enricher: Option<crate::plugin::PluginHandle>,
}

impl std::fmt::Debug for Attribution {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Attribution")
            .field("path", &self.path)
            .field("enricher", &self.enricher.is_some())
            .finish_non_exhaustive()
    }
}

impl Engine {
    /// Load and compile the attribution spec `path`; its errors are placed diagnostics (`E600`
    /// plan, `E601` enrichment plugin).
    pub fn attribution_file(&self, path: &Path) -> Result<Attribution, EngineError> {
        let (spec, source) = crate::spec::load_as::<AttributionSpec>(path)?;
        let placed = |code: &'static str, pointer: &str, message: String| {
            let mut d = Diagnostics::default();
            d.push(source.place(Diagnostic::error(code, pointer.to_string(), message)));
            EngineError::Spec {
                path: path.to_path_buf(),
                diagnostics: d,
            }
        };
        let plan = match Plan::compile(&spec) {
            Ok(p) => p,
            Err(crate::attribution::AttributionError::InvalidSpec { pointer, message }) => {
                return Err(placed("E600", &pointer, message));
            }
            Err(e) => return Err(placed("E600", "", e.to_string())),
        };
        // The enrichment plugin is loaded (and compiled) before any record is read, with what
        // the operator grants it for this tenant.
        let enricher = match &spec.attribution.enrichment {
            None => None,
            Some(settings) => {
                let manifest = enrich::manifest_path(path, settings);
                let grants = self.plugins().grants(&manifest, &spec.attribution.tenant);
                let h = self
                    .plugins()
                    .host()
                    .and_then(|host| enrich::load_enricher(host, &manifest, grants))
                    .map_err(|m| placed("E601", enrich::POINTER, m))?;
                Some(h)
            }
        };
        Ok(Attribution {
            spec,
            path: path.to_path_buf(),
            plan,
            enricher,
        })
    }
}

impl Attribution {
    /// The spec.
    pub fn spec(&self) -> &AttributionSpec {
        &self.spec
    }

    /// Run the plan over records (pulled ones and read ones alike), then the enrichment
    /// plugin; an enrichment failure keeps the record without `kse_enhancement` and is returned
    /// with its record id.
    pub async fn run(
        &self,
        records: &[serde_json::Value],
    ) -> Result<(Outcome, Vec<enrich::EnrichFailure>), crate::attribution::AttributionError> {
        let mut outcome = self.plan.run(records)?;
        let failures = match &self.enricher {
            Some(h) => enrich::enrich_records(h, &mut outcome.records).await,
            None => Vec::new(),
        };
        Ok((outcome, failures))
    }

    /// Pull one `[[attribution.pull]]` rule's records through `route` (its connector's list
    /// operation, every page), each tagged with the rule's source and object.
    pub async fn pull(
        &self,
        route: &super::Route,
        rule: &crate::spec::attribution::PullRule,
    ) -> Result<Vec<serde_json::Value>, EngineError> {
        let session = route.session();
        let conn = &session.connector;
        let op = conn
            .find_op(&rule.object, crate::spec::connector::OperationKind::List)
            .ok_or_else(|| {
                EngineError::Invalid(format!(
                    "connector `{}` has no list operation for object `{}`",
                    conn.name(),
                    rule.object
                ))
            })?;
        let mut vars = serde_json::Map::new();
        if !rule.query.is_empty() {
            // `Session::list` adds these to the query of every page request.
            let q: serde_json::Map<String, serde_json::Value> = rule
                .query
                .iter()
                .map(|(k, v)| (k.clone(), serde_json::Value::String(v.clone())))
                .collect();
            vars.insert("extra_query".into(), serde_json::Value::Object(q));
        }
        let mut out = Vec::new();
        session.list(&op.name, vars, None, |r| out.push(r)).await?;
        let cfg = &self.spec.attribution;
        for rec in &mut out {
            if let serde_json::Value::Object(m) = rec {
                m.insert(
                    cfg.source_field.clone(),
                    serde_json::Value::String(rule.source().into()),
                );
                m.entry(cfg.object_field.clone())
                    .or_insert_with(|| serde_json::Value::String(rule.record_object().into()));
            }
        }
        Ok(out)
    }
}
