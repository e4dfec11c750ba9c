//! The plugins one spec declares (`plugins = { alias = "path/to/plugin.toml" }`), loaded for
//! one tenant with the operator's grants, and the glue that lets synchronous code (mapping
//! expressions) call their mapping functions.
//!
//! Mapping functions are registered at load under `alias.function`; a [`PluginSession`] (one
//! per run) keeps one bounded-batch instance per plugin, so consecutive records reuse an
//! instance instead of instantiating one per call. Sessions are per tenant: a compiled mapping
//! belongs to one tenant, and so do its plugin handles.

use super::{Grants, PluginBatch, PluginError, PluginHandle, PluginHost, exec};
use crate::expr::{ExtCalls, ExtFn, ExtFunctions};
use crate::spec::plugin::PluginWorld;
use indexmap::IndexMap;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// Calls one batch instance serves before it is replaced.
pub const BATCH_CALLS: u32 = 1000;

/// Why a declared plugin could not be loaded.
#[derive(Debug, thiserror::Error)]
#[error("{spec}: /plugins/{alias}: {cause}")]
pub struct PluginSetError {
    /// The spec that declares it.
    pub spec: PathBuf,
    /// Its alias in the spec.
    pub alias: String,
    /// Why.
    pub cause: String,
}

/// The plugins of one spec for one tenant, by alias.
#[derive(Debug, Default)]
pub struct PluginSet {
    entries: IndexMap<String, PluginHandle>,
    functions: ExtFunctions,
}

impl PluginSet {
    /// Loads every plugin `decl` names (manifest paths relative to `spec`'s folder), each with
    /// the grants `grants(plugin_name)` returns, and registers the functions of
    /// mapping-functions plugins.
    pub fn load(
        host: &PluginHost,
        spec: &Path,
        decl: &IndexMap<String, String>,
        grants: &dyn Fn(&str) -> Result<Grants, String>,
    ) -> Result<PluginSet, PluginSetError> {
        let base = spec.parent().unwrap_or(Path::new("."));
        let mut set = PluginSet::default();
        for (alias, rel) in decl {
            let err = |cause: String| PluginSetError {
                spec: spec.to_path_buf(),
                alias: alias.clone(),
                cause,
            };
            let manifest = base.join(rel);
            let name = manifest_name(&manifest).map_err(&err)?;
            let g = grants(&name).map_err(&err)?;
            let h = host.load(&manifest, g).map_err(|e| err(e.to_string()))?;
            let names = if h.world() == PluginWorld::MappingFunctions {
                exec::block_on(h.functions())
                    .map_err(&err)?
                    .map_err(|e| err(e.to_string()))?
            } else {
                Vec::new()
            };
            set.functions.add_provider(alias, &names);
            set.entries.insert(alias.clone(), h);
        }
        Ok(set)
    }

    /// A plugin by alias.
    pub fn get(&self, alias: &str) -> Option<&PluginHandle> {
        self.entries.get(alias)
    }

    /// The registered mapping functions (`alias.function`).
    pub fn functions(&self) -> &ExtFunctions {
        &self.functions
    }

    /// Every handle (for [`PluginHost::watch`]).
    pub fn handles(&self) -> Vec<PluginHandle> {
        self.entries.values().cloned().collect()
    }

    /// Whether no plugin is declared.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// A session for one run (one batch instance per plugin, created on first use).
    pub fn session(self: &Arc<Self>) -> PluginSession {
        PluginSession {
            set: self.clone(),
            batches: self.entries.keys().map(|_| Mutex::new(None)).collect(),
        }
    }
}

/// The `plugin.name` of a manifest (grants are keyed by it).
pub fn manifest_name(manifest: &Path) -> Result<String, String> {
    let (loaded, diags) =
        crate::spec::load_file(manifest).map_err(|e| format!("{}: {e}", manifest.display()))?;
    if diags.has_errors() {
        return Err(crate::diag::render_human(&diags, None)
            .trim_end()
            .to_string());
    }
    match loaded.and_then(|l| l.spec) {
        Some(crate::spec::Spec::Plugin(m)) => Ok(m.plugin.name),
        _ => Err(format!("{}: not a plugin manifest", manifest.display())),
    }
}

/// Runs mapping functions for one run: one bounded batch instance per plugin.
pub struct PluginSession {
    set: Arc<PluginSet>,
    batches: Vec<Mutex<Option<PluginBatch>>>,
}

impl std::fmt::Debug for PluginSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PluginSession")
            .field("plugins", &self.set.entries.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl PluginSession {
    fn call_inner(&self, f: &ExtFn, args: &[Value]) -> Result<Value, PluginError> {
        let Some((_, handle)) = self.set.entries.get_index(f.provider) else {
            return Err(PluginError::Host(format!(
                "no plugin for `{}`",
                f.qualified
            )));
        };
        let Some(slot) = self.batches.get(f.provider) else {
            return Err(PluginError::Host(format!(
                "no plugin for `{}`",
                f.qualified
            )));
        };
        let mut slot = slot.lock().unwrap_or_else(|p| p.into_inner());
        if slot.is_none() {
            *slot = Some(exec::block_on(handle.batch(BATCH_CALLS)).map_err(PluginError::Host)??);
        }
        match slot.as_mut() {
            Some(b) => exec::block_on(b.call_function(&f.name, args)).map_err(PluginError::Host)?,
            None => Err(PluginError::Host("batch missing".into())),
        }
    }
}

impl ExtCalls for PluginSession {
    fn call(&self, f: &ExtFn, args: Vec<Value>) -> Result<Value, String> {
        self.call_inner(f, &args).map_err(|e| e.to_string())
    }
}

/// The operator's plugin environment: the configuration (grants, host settings), the secret
/// resolver for granted secrets, and the host, created on first use (a run whose specs declare
/// no plugin never starts the wasmtime engine).
pub struct PluginEnv {
    config: super::OperatorConfig,
    config_path: PathBuf,
    resolver: crate::connector::SecretResolver,
    host: std::sync::OnceLock<Result<PluginHost, String>>,
    extra: Mutex<Vec<(String, Grants)>>,
}

impl std::fmt::Debug for PluginEnv {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PluginEnv")
            .field("config", &self.config_path)
            .finish_non_exhaustive()
    }
}

impl PluginEnv {
    /// The environment from the operator file `explicit`, else `SWITCHYARD_PLUGIN_GRANTS`, else
    /// none (plugins get no hosts, secrets or configuration).
    pub fn discover(explicit: Option<&Path>) -> Result<PluginEnv, String> {
        let (config, path) =
            super::OperatorConfig::discover(explicit).map_err(|e| e.to_string())?;
        let resolver = crate::connector::SecretResolver::from_env().map_err(|e| e.to_string())?;
        Ok(PluginEnv {
            config,
            config_path: path.unwrap_or_else(|| PathBuf::from("(no operator grants)")),
            resolver,
            host: std::sync::OnceLock::new(),
            extra: Mutex::new(Vec::new()),
        })
    }

    /// Adds grants for `plugin` (any tenant) on top of the operator's: a sandbox run grants a
    /// connector's plugins the emulator it started.
    pub fn grant_extra(&self, plugin: &str, grants: Grants) {
        self.extra
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push((plugin.to_string(), grants));
    }

    /// The host (created on first use).
    pub fn host(&self) -> Result<&PluginHost, String> {
        self.host
            .get_or_init(|| PluginHost::new(self.config.host_config()).map_err(|e| e.to_string()))
            .as_ref()
            .map_err(Clone::clone)
    }

    /// What `plugin` is granted for `tenant`.
    pub fn grants(&self, plugin: &str, tenant: &str) -> Result<Grants, String> {
        let mut g = self
            .config
            .grants_for(plugin, tenant, &self.resolver, &self.config_path)
            .map_err(|e| e.to_string())?;
        for (name, extra) in self.extra.lock().unwrap_or_else(|p| p.into_inner()).iter() {
            if name == plugin || name == "*" {
                g.merge(extra.clone());
            }
        }
        Ok(g)
    }

    /// Loads the plugins a spec declares for `tenant`. With no declaration, an empty set and no
    /// engine start.
    pub fn load_set(
        &self,
        spec: &Path,
        decl: &IndexMap<String, String>,
        tenant: &str,
    ) -> Result<Arc<PluginSet>, PluginSetError> {
        if decl.is_empty() {
            return Ok(Arc::new(PluginSet::default()));
        }
        let host = self.host().map_err(|cause| PluginSetError {
            spec: spec.to_path_buf(),
            alias: decl.keys().next().cloned().unwrap_or_default(),
            cause,
        })?;
        PluginSet::load(host, spec, decl, &|name| self.grants(name, tenant)).map(Arc::new)
    }

    /// Starts hot reload of `set`'s plugins, when the operator turned it on and there are any.
    pub fn watch(&self, set: &PluginSet) -> Option<super::WatchGuard> {
        let interval = self.config.watch_interval()?;
        if set.is_empty() {
            return None;
        }
        let host = self.host().ok()?;
        Some(host.watch(set.handles(), interval))
    }
}
