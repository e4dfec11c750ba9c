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
        let connector = self.registry().get(&mapping.connector)?;
        let c = super::route::compile(self, &mapping, path, Some(&source), &connector)?;
        Ok(Mapper {
            engine: self.clone(),
            plan: c.plan,
            _watch: c.watch,
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
