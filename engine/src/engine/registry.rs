//! The connector registry of an engine: specs found by name (single files given to the
//! builder first, then the connectors folder), loaded and compiled once each, shared by every
//! route.

use super::EngineError;
use crate::connector::{Connector, find_spec_file};
use crate::spec::connector::ConnectorSpec;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// A connector spec as the registry holds it.
#[derive(Debug, Clone)]
pub struct Entry {
    /// The spec.
    pub spec: ConnectorSpec,
    /// Its file (plugin manifests are relative to it).
    pub path: PathBuf,
    /// Compiled once.
    pub compiled: Arc<Connector>,
}

/// Connector specs by name.
#[derive(Debug)]
pub struct Registry {
    dir: Option<PathBuf>,
    files: Vec<PathBuf>,
    cache: Mutex<HashMap<String, Arc<Entry>>>,
}

impl Registry {
    pub(super) fn new(dir: Option<PathBuf>, files: Vec<PathBuf>) -> Self {
        Self {
            dir,
            files,
            cache: Mutex::default(),
        }
    }

    /// The connectors folder.
    pub fn dir(&self) -> Option<&Path> {
        self.dir.as_deref()
    }

    /// The spec named `name`, compiled (cached after the first call).
    pub fn get(&self, name: &str) -> Result<Arc<Entry>, EngineError> {
        if let Some(e) = self
            .cache
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(name)
        {
            return Ok(e.clone());
        }
        let (spec, path) = self.find(name)?;
        let compiled = Arc::new(Connector::compile(spec.clone())?);
        let e = Arc::new(Entry {
            spec,
            path,
            compiled,
        });
        self.cache
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(name.to_string(), e.clone());
        Ok(e)
    }

    /// Forget the compiled spec of `name` (it is read again on the next [`Registry::get`]):
    /// hot reload of a changed connector spec.
    pub fn invalidate(&self, name: &str) {
        self.cache
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(name);
    }

    fn find(&self, name: &str) -> Result<(ConnectorSpec, PathBuf), EngineError> {
        for f in &self.files {
            let spec = crate::spec::load_as::<ConnectorSpec>(f)?.0;
            if spec.connector.name == name {
                return Ok((spec, f.clone()));
            }
        }
        match &self.dir {
            Some(d) => Ok(find_spec_file(d, name)?),
            None => Err(EngineError::Invalid(format!(
                "no connector spec named `{name}` (the engine has no connectors folder)"
            ))),
        }
    }
}
