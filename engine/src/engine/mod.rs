//! [`Engine`]: the one way in, for the command line, `switchyard serve` and any host service.
//!
//! An engine owns exactly one connector runtime (one HTTP client; rate limiters and token
//! caches per tenant + connector, shared by every route), one plugin environment and one store.
//! [`Engine::route_file`] compiles a tenant's mapping spec into a [`Route`]: map, deliver
//! (streaming, bounded memory), dry-run, and the read operations its connector declares;
//! [`Engine::webhook_route`] adds the inbound verification of the route's source.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use switchyard::engine::{Engine, RouteOptions};
//! let engine = Engine::builder()
//!     .connectors_dir("connector-specs")
//!     .store(".switchyard/switchyard.sqlite".parse()?)
//!     .build()?;
//! let route = engine.route_file("mapping-specs/examples/hubspot-contact.json".as_ref(), RouteOptions::default())?;
//! let mapped = route.map(&serde_json::json!({"email": "ada@example.com"}))?;
//! let report = route.deliver(vec![route.item("call-1", mapped)]).await;
//! println!("created {}", report.created);
//! # Ok(()) }
//! ```

mod attribution;
mod mapper;
mod registry;
mod route;
mod webhook;

pub use attribution::Attribution;
pub use mapper::{Mapper, SpecTestRun};
pub use registry::Registry;
pub use route::{NdjsonOptions, Route, RouteOptions, SandboxBinding, correlation_id};
pub use webhook::{WebhookError, WebhookRoute};

use crate::connector::{ConnectorError, Runtime};
use crate::diag::Diagnostics;
use crate::plugin::PluginEnv;
use crate::secrets::{SecretError, SecretResolver};
use crate::store::{LeaseHolder, Store, StoreError};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Where the engine keeps its state.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum StoreUrl {
    /// No store: no state between runs (dry runs, tests).
    None,
    /// An embedded SQLite file (the default; `sqlite:PATH`, `sqlite://PATH` or a bare path).
    Sqlite(PathBuf),
}

impl std::str::FromStr for StoreUrl {
    type Err = EngineError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        if let Some(p) = s
            .strip_prefix("sqlite://")
            .or_else(|| s.strip_prefix("sqlite:"))
        {
            return Ok(StoreUrl::Sqlite(PathBuf::from(p)));
        }
        if let Some((scheme, _)) = s.split_once("://") {
            return Err(EngineError::Invalid(format!(
                "store `{scheme}://…` is not supported by this build (use a SQLite file path)"
            )));
        }
        if s.is_empty() {
            return Err(EngineError::Invalid("the store URL is empty".into()));
        }
        Ok(StoreUrl::Sqlite(PathBuf::from(s)))
    }
}

/// Runtime limits of an engine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Records (or batches) in flight at once per delivery. Default: 8.
    pub concurrency: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self { concurrency: 8 }
    }
}

/// Why the engine could not do what was asked.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EngineError {
    /// A spec is invalid: every diagnostic, placed in its file.
    #[error("`{path}` is not valid:\n{diagnostics}")]
    Spec {
        /// The spec file.
        path: PathBuf,
        /// What is wrong.
        diagnostics: Diagnostics,
    },
    /// A spec file could not be loaded.
    #[error(transparent)]
    Load(#[from] crate::spec::LoadError),
    /// The connector runtime refused (a spec or setting it cannot use, or a vendor error).
    #[error(transparent)]
    Connector(#[from] ConnectorError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A secret reference could not be resolved.
    #[error(transparent)]
    Secret(#[from] SecretError),
    /// A plugin could not be loaded.
    #[error(transparent)]
    Plugin(#[from] crate::plugin::PluginSetError),
    /// A file could not be read.
    #[error("cannot read `{path}`")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// Another live process holds the lease of this work (a run of the same input).
    #[error(
        "another run is delivering {what} ({holder}); wait for it to finish or stop it (a stopped run's lease lapses as soon as its process is gone)"
    )]
    Busy {
        /// What is leased, in words.
        what: String,
        /// Who holds it.
        holder: LeaseHolder,
    },
    /// A request the engine cannot serve as given (an unknown object or operation, a bad
    /// option).
    #[error("{0}")]
    Invalid(String),
}

/// Builds an [`Engine`].
#[derive(Debug)]
pub struct EngineBuilder {
    connectors_dir: Option<PathBuf>,
    connector_specs: Vec<PathBuf>,
    store: StoreUrl,
    secrets: Option<SecretResolver>,
    plugin_grants: Option<PathBuf>,
    store_key: Option<String>,
    limits: Limits,
}

impl Default for EngineBuilder {
    fn default() -> Self {
        Self {
            connectors_dir: None,
            connector_specs: Vec::new(),
            store: StoreUrl::None,
            secrets: None,
            plugin_grants: None,
            store_key: None,
            limits: Limits::default(),
        }
    }
}

impl EngineBuilder {
    /// A folder of connector specs (`<name>.toml`, `<name>.json`, or any file whose
    /// `connector.name` matches), read on demand and compiled once each.
    pub fn connectors_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.connectors_dir = Some(dir.into());
        self
    }

    /// One connector spec file (wins over the folder's spec of the same name).
    pub fn connector_spec(mut self, file: impl Into<PathBuf>) -> Self {
        self.connector_specs.push(file.into());
        self
    }

    /// Where state lives (default: none).
    pub fn store(mut self, url: StoreUrl) -> Self {
        self.store = url;
        self
    }

    /// The key OAuth tokens are sealed with at rest (default: `SWITCHYARD_STORE_KEY`; without
    /// one, tokens are not persisted).
    pub fn store_key(mut self, key: impl Into<String>) -> Self {
        self.store_key = Some(key.into());
        self
    }

    /// The secret resolver (default: [`SecretResolver::from_env`]: environment, files and the
    /// `SWITCHYARD_SECRETS` file).
    pub fn secrets(mut self, r: SecretResolver) -> Self {
        self.secrets = Some(r);
        self
    }

    /// The operator's plugin grants file (default: `SWITCHYARD_PLUGIN_GRANTS`, else none).
    pub fn plugin_grants(mut self, file: Option<PathBuf>) -> Self {
        self.plugin_grants = file;
        self
    }

    /// Runtime limits.
    pub fn limits(mut self, l: Limits) -> Self {
        self.limits = l;
        self
    }

    /// Open the store, discover the plugin environment and bind the connector registry.
    pub fn build(self) -> Result<Engine, EngineError> {
        let store = match &self.store {
            StoreUrl::None => None,
            StoreUrl::Sqlite(p) => {
                let s = Store::open(p)?;
                let s = match &self.store_key {
                    Some(k) => s.with_key(k),
                    None => s,
                };
                Some(Arc::new(s))
            }
        };
        let secrets = match self.secrets {
            Some(s) => s,
            None => SecretResolver::from_env()?,
        };
        let plugins =
            PluginEnv::discover(self.plugin_grants.as_deref()).map_err(EngineError::Invalid)?;
        let registry = Registry::new(self.connectors_dir, self.connector_specs);
        Ok(Engine(Arc::new(Inner {
            registry,
            store,
            secrets,
            plugins,
            runtime: Runtime::new(),
            limits: self.limits,
        })))
    }
}

struct Inner {
    registry: Registry,
    store: Option<Arc<Store>>,
    secrets: SecretResolver,
    plugins: PluginEnv,
    runtime: Runtime,
    limits: Limits,
}

/// The engine: cheap to clone, shared by every route it makes.
#[derive(Clone)]
pub struct Engine(Arc<Inner>);

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("registry", &self.0.registry)
            .field(
                "store",
                &self.0.store.as_ref().map(|s| s.path().to_string()),
            )
            .finish_non_exhaustive()
    }
}

impl Engine {
    /// A builder.
    pub fn builder() -> EngineBuilder {
        EngineBuilder::default()
    }

    /// Retire this process from the store when it stops: its claims and leases are released
    /// at once for other processes (otherwise they lapse when its heartbeat goes stale).
    pub fn retire(&self) -> Result<(), EngineError> {
        if let Some(s) = &self.0.store {
            s.retire(crate::connector::deliver::process_owner())?;
        }
        Ok(())
    }

    /// The store, when there is one.
    pub fn store(&self) -> Option<&Arc<Store>> {
        self.0.store.as_ref()
    }

    /// The connector runtime (shared rate limiters and token caches).
    pub fn runtime(&self) -> &Runtime {
        &self.0.runtime
    }

    /// The plugin environment.
    pub fn plugins(&self) -> &PluginEnv {
        &self.0.plugins
    }

    /// The secret resolver.
    pub fn secrets(&self) -> &SecretResolver {
        &self.0.secrets
    }

    /// The connector registry.
    pub fn registry(&self) -> &Registry {
        &self.0.registry
    }

    /// The limits.
    pub fn limits(&self) -> &Limits {
        &self.0.limits
    }

    /// A route with no tenant settings for `connector` (enough for an emulator, or to report
    /// which settings are missing).
    pub fn default_route(connector: &str) -> Result<crate::spec::MappingSpec, EngineError> {
        let crm_type = if connector == "custom-rest" {
            "custom"
        } else {
            connector
        };
        serde_json::from_value(serde_json::json!({
            "spec_version": 1,
            "tenant": "default",
            "connector": connector,
            "crm_config": {"type": crm_type},
        }))
        .map_err(|e| {
            EngineError::Invalid(format!(
                "cannot build a default route for `{connector}`: {e}"
            ))
        })
    }

    /// Compile the mapping spec file `path` into a route.
    pub fn route_file(&self, path: &Path, opts: RouteOptions) -> Result<Route, EngineError> {
        let (mapping, source) = crate::spec::load_as::<crate::spec::MappingSpec>(path)?;
        Route::build(self, mapping, path, Some(source), opts)
    }

    /// Compile a mapping spec held in memory as text (JSON, or TOML when `name` ends in
    /// `.toml`); diagnostics are placed in it under `name`.
    pub fn route_text(
        &self,
        name: &Path,
        text: String,
        opts: RouteOptions,
    ) -> Result<Route, EngineError> {
        let (mapping, source) = crate::spec::parse_as::<crate::spec::MappingSpec>(name, text)?;
        Route::build(self, mapping, name, Some(source), opts)
    }

    /// Compile an in-memory mapping spec into a route; `origin` names it (dead letters keep it
    /// for replay; plugin manifests are relative to its folder).
    pub fn route(
        &self,
        mapping: crate::spec::MappingSpec,
        origin: &Path,
        opts: RouteOptions,
    ) -> Result<Route, EngineError> {
        Route::build(self, mapping, origin, None, opts)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn store_urls() {
        assert_eq!(
            "sqlite:/tmp/a.db".parse::<StoreUrl>().unwrap(),
            StoreUrl::Sqlite("/tmp/a.db".into())
        );
        assert_eq!(
            "x/y.sqlite".parse::<StoreUrl>().unwrap(),
            StoreUrl::Sqlite("x/y.sqlite".into())
        );
        assert!("postgres://u@h/db".parse::<StoreUrl>().is_err());
    }
}
