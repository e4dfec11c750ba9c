//! [`Mapper`]: a mapping spec compiled against its connector and source, without binding a
//! tenant's settings or secrets — what `switchyard map` and a playground need.

use super::{Engine, EngineError};
use crate::mapping::{CompiledMapping, MapContext};
use std::io::{Read, Write};
use std::path::Path;

/// A compiled mapping, ready to map records or NDJSON streams.
pub struct Mapper {
    engine: Engine,
    plan: CompiledMapping,
    _watch: Vec<crate::plugin::WatchGuard>,
}

impl std::fmt::Debug for Mapper {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mapper").finish_non_exhaustive()
    }
}

impl Engine {
    /// Compile the mapping spec `path` for mapping only (nothing is bound or sent).
    pub fn mapper_file(&self, path: &Path) -> Result<Mapper, EngineError> {
        let (mapping, source) = crate::spec::load_as::<crate::spec::MappingSpec>(path)?;
        let connector = super::route::tenant_entry(
            self.registry().get(&mapping.connector)?,
            &mapping,
            path,
            Some(&source),
        )?;
        let c = super::route::compile(self, &mapping, path, Some(&source), &connector)?;
        Ok(Mapper {
            engine: self.clone(),
            plan: c.plan,
            _watch: c.watch,
        })
    }
}

/// The outcome of the tests a mapping spec carries (`switchyard test`).
#[derive(Debug, Clone, serde::Serialize)]
pub struct SpecTestRun {
    /// The spec file.
    pub path: std::path::PathBuf,
    /// One outcome per test, in the spec's order.
    pub cases: Vec<crate::spectest::CaseOutcome>,
}

impl SpecTestRun {
    /// How many tests failed.
    pub fn failed(&self) -> usize {
        self.cases.iter().filter(|c| !c.passed()).count()
    }
}

impl Engine {
    /// Run the tests written in the mapping spec `path`: each input is mapped with the
    /// compiled spec (as a route maps it, nothing sent) and compared with its expectation.
    /// A spec that does not compile is an error; a spec without tests gives no cases.
    pub fn test_file(&self, path: &Path) -> Result<SpecTestRun, EngineError> {
        let (mapping, source) = crate::spec::load_as::<crate::spec::MappingSpec>(path)?;
        let static_checks = crate::spectest::check(&mapping, None);
        if static_checks.has_errors() {
            let mut diagnostics = crate::diag::Diagnostics(
                static_checks
                    .0
                    .into_iter()
                    .map(|d| source.place(d))
                    .collect(),
            );
            diagnostics.sort();
            return Err(EngineError::Spec {
                path: path.to_path_buf(),
                diagnostics,
            });
        }
        let mut cases = Vec::new();
        if mapping.tests.is_empty() {
            return Ok(SpecTestRun {
                path: path.to_path_buf(),
                cases,
            });
        }
        let mapper = self.mapper_file(path)?;
        let session = mapper.plan.plugin_session();
        let ext = session.as_ref().map(|s| s as &dyn crate::expr::ExtCalls);
        for (i, t) in mapping.tests.iter().enumerate() {
            let pointer = format!("/tests/{i}");
            let (line, column) = source.position(&pointer);
            let (mismatches, error) =
                match crate::spectest::run_case(&mapper.plan, t, self.secrets(), ext) {
                    Ok(m) => (m, None),
                    Err(e) => (Vec::new(), Some(e)),
                };
            cases.push(crate::spectest::CaseOutcome {
                name: t.name.clone(),
                pointer,
                line,
                column,
                mismatches,
                error,
            });
        }
        Ok(SpecTestRun {
            path: path.to_path_buf(),
            cases,
        })
    }
}

impl Mapper {
    /// The compiled mapping.
    pub fn plan(&self) -> &CompiledMapping {
        &self.plan
    }

    /// Map an NDJSON stream on one thread with the clock at `now`: one output line per mapped
    /// record, one reject line per rejected record (line, field, pointer, reason). Returns the
    /// number of rejected records.
    pub fn map_stream(
        &self,
        now: chrono::DateTime<chrono::Utc>,
        input: impl Read,
        output: impl Write,
        rejects: impl Write,
    ) -> std::io::Result<usize> {
        let session = self.plan.plugin_session();
        let ctx = MapContext {
            now,
            secrets: self.engine.secrets(),
            ext: session.as_ref().map(|s| s as &dyn crate::expr::ExtCalls),
        };
        crate::mapping::map_stream(&self.plan, &ctx, input, output, rejects)
    }
}
