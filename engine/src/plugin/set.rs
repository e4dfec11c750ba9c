//! The plugins one spec declares (`plugins = { alias = "path/to/plugin.toml" }`), loaded for
//! one tenant with the operator's grants, and the glue that lets synchronous code (mapping
//! expressions) call their mapping functions.
//!
//! Mapping functions are registered at load under `alias.function`; a [`PluginSession`] (one
//! per run) keeps one bounded-batch instance per plugin, so consecutive records reuse an
//! instance instead of instantiating one per call. Sessions are per tenant: a compiled mapping
//! belongs to one tenant, and so do its plugin handles.

use super::{GrantSource, Grants, PluginBatch, PluginError, PluginHandle, PluginHost, exec};
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
    /// the grants `grants(manifest)` gives (looked up by the loaded wasm's digest), and registers
    /// the functions of mapping-functions plugins.
    pub fn load(
        host: &PluginHost,
        spec: &Path,
        decl: &IndexMap<String, String>,
        grants: &dyn Fn(&Path) -> GrantSource,
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
            let h = host
                .load(&manifest, grants(&manifest))
                .map_err(|e| err(e.to_string()))?;
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
    shared: Arc<EnvShared>,
    host: std::sync::OnceLock<Result<PluginHost, String>>,
}

/// What the grant lookups of loaded plugins need (they run again at every reload).
struct EnvShared {
    config: super::OperatorConfig,
    config_path: PathBuf,
    resolver: crate::secrets::SecretResolver,
    /// Extra grants by manifest (canonical path when it resolves).
    extra: Mutex<Vec<(PathBuf, Grants)>>,
}

impl std::fmt::Debug for PluginEnv {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PluginEnv")
            .field("config", &self.shared.config_path)
            .finish_non_exhaustive()
    }
}

/// A manifest path as compared for extra grants.
fn manifest_key(manifest: &Path) -> PathBuf {
    std::fs::canonicalize(manifest).unwrap_or_else(|_| manifest.to_path_buf())
}

impl PluginEnv {
    /// The environment from the operator file `explicit`, else `SWITCHYARD_PLUGIN_GRANTS`, else
    /// none (plugins get no hosts, secrets or configuration).
    pub fn discover(explicit: Option<&Path>) -> Result<PluginEnv, String> {
        let (config, path) =
            super::OperatorConfig::discover(explicit).map_err(|e| e.to_string())?;
        let resolver = crate::secrets::SecretResolver::from_env().map_err(|e| e.to_string())?;
        Ok(PluginEnv {
            shared: Arc::new(EnvShared {
                config,
                config_path: path.unwrap_or_else(|| PathBuf::from("(no operator grants)")),
                resolver,
                extra: Mutex::new(Vec::new()),
            }),
            host: std::sync::OnceLock::new(),
        })
    }

    /// Adds grants for the plugin of `manifest` (any tenant, whatever wasm it pins) on top of
    /// the operator's: a sandbox run grants the plugins its connector spec declares the emulator
    /// it started. Bound to the manifest's path, never to the name it claims.
    pub fn grant_extra(&self, manifest: &Path, grants: Grants) {
        self.shared
            .extra
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push((manifest_key(manifest), grants));
    }

    /// The host (created on first use).
    pub fn host(&self) -> Result<&PluginHost, String> {
        self.host
            .get_or_init(|| {
                PluginHost::new(self.shared.config.host_config()).map_err(|e| e.to_string())
            })
            .as_ref()
            .map_err(Clone::clone)
    }

    /// What the plugin of `manifest` is granted for `tenant`: the operator's grants for the
    /// sha256 of the wasm actually loaded (checked against the manifest's pin first), plus the
    /// extra grants given for this manifest. Pass it to [`PluginHost::load`].
    pub fn grants(&self, manifest: &Path, tenant: &str) -> GrantSource {
        let shared = self.shared.clone();
        let key = manifest_key(manifest);
        let tenant = tenant.to_string();
        GrantSource::BySha256(Arc::new(move |sha256: &str| {
            let mut g = shared
                .config
                .grants_for(sha256, &tenant, &shared.resolver, &shared.config_path)
                .map_err(|e| e.to_string())?;
            for (path, extra) in shared
                .extra
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .iter()
            {
                if *path == key {
                    g.merge(extra.clone());
                }
            }
            Ok(g)
        }))
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
        PluginSet::load(host, spec, decl, &|manifest| self.grants(manifest, tenant)).map(Arc::new)
    }

    /// Starts hot reload of `set`'s plugins, when the operator turned it on and there are any.
    pub fn watch(&self, set: &PluginSet) -> Option<super::WatchGuard> {
        let interval = self.shared.config.watch_interval()?;
        if set.is_empty() {
            return None;
        }
        let host = self.host().ok()?;
        Some(host.watch(set.handles(), interval))
    }
}
