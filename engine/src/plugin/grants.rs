//! The operator's plugin configuration: what each plugin may reach, per tenant, and the host's
//! settings. Tenants' specs only *name* plugins; what a plugin is granted (outbound hosts,
//! secrets, configuration) comes from here, so a tenant cannot widen a plugin's reach.
//!
//! ```toml
//! [host]
//! cache_dir = ".switchyard/plugin-cache"  # compiled components (default)
//! watch_ms = 1000                         # hot-reload poll of spec-referenced plugins; 0: off
//!
//! [[grant]]
//! plugin = "crm-connector"                # the manifest's name, or "*"
//! tenants = ["acme"]                      # default: every tenant
//! allowed_hosts = ["https://api.acmecrm.example"]
//! secrets = { api_secret = "env:ACME_API_SECRET" }  # name → reference (env:, file:, secret:)
//! config = { key_id = "key-1" }
//! allow_private_networks = false
//! ```
//!
//! Every grant matching a (plugin, tenant) pair applies; their hosts, secrets and config are
//! merged in file order (a later grant's value for the same key wins).

use super::{Grants, HostConfig};
use crate::connector::SecretResolver;
use indexmap::IndexMap;
use serde::Deserialize;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The operator's plugin configuration file.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OperatorConfig {
    /// Host settings.
    #[serde(default)]
    pub host: HostSection,
    /// Grants, in order.
    #[serde(default, rename = "grant")]
    pub grants: Vec<Grant>,
}

/// `[host]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HostSection {
    /// Compiled-component cache folder. Default: `.switchyard/plugin-cache`.
    #[serde(default = "default_cache")]
    pub cache_dir: PathBuf,
    /// Hot-reload poll interval in milliseconds (0: off). Default: 1000.
    #[serde(default = "default_watch")]
    pub watch_ms: u64,
}

fn default_cache() -> PathBuf {
    PathBuf::from(".switchyard/plugin-cache")
}

fn default_watch() -> u64 {
    1000
}

impl Default for HostSection {
    fn default() -> Self {
        HostSection {
            cache_dir: default_cache(),
            watch_ms: default_watch(),
        }
    }
}

/// One `[[grant]]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Grant {
    /// Plugin name (the manifest's `plugin.name`) or `*`.
    pub plugin: String,
    /// Tenants it applies to. Default: all.
    #[serde(default)]
    pub tenants: Vec<String>,
    /// Outbound hosts (`scheme://host[:port]`, `*.` wildcards).
    #[serde(default)]
    pub allowed_hosts: Vec<String>,
    /// Secret name → reference (`env:NAME`, `file:PATH`, `secret:…`).
    #[serde(default)]
    pub secrets: IndexMap<String, String>,
    /// Configuration values.
    #[serde(default)]
    pub config: IndexMap<String, Value>,
    /// Let HTTP reach private and loopback addresses. Default: false.
    #[serde(default)]
    pub allow_private_networks: bool,
}

/// Why the operator configuration is unusable (never contains a secret value).
#[derive(Debug, thiserror::Error)]
pub enum GrantError {
    /// The file cannot be read.
    #[error("{path}: cannot read: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The file is not a valid configuration.
    #[error("{path}: {message}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// Where and what.
        message: String,
    },
    /// A granted secret's reference cannot be resolved.
    #[error("{path}: grant for plugin `{plugin}`: secret `{name}`: {cause}")]
    Secret {
        /// The file.
        path: PathBuf,
        /// The plugin.
        plugin: String,
        /// The secret's name.
        name: String,
        /// Why (names the reference, never the value).
        cause: String,
    },
}

/// The environment variable naming the operator's plugin configuration file.
pub const ENV: &str = "SWITCHYARD_PLUGIN_GRANTS";

impl OperatorConfig {
    /// Reads a configuration file.
    pub fn load(path: &Path) -> Result<OperatorConfig, GrantError> {
        let text = std::fs::read_to_string(path).map_err(|source| GrantError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Self::parse(&text, path)
    }

    /// Parses configuration text (`path` names it in errors).
    pub fn parse(text: &str, path: &Path) -> Result<OperatorConfig, GrantError> {
        toml::from_str(text).map_err(|e| {
            let at = e
                .span()
                .map(|s| {
                    let line = text[..s.start.min(text.len())].matches('\n').count() + 1;
                    format!("line {line}: ")
                })
                .unwrap_or_default();
            GrantError::Invalid {
                path: path.to_path_buf(),
                message: format!("{at}{}", e.message()),
            }
        })
    }

    /// The file named by `explicit`, else by `SWITCHYARD_PLUGIN_GRANTS`, else none (no grants:
    /// plugins get no hosts, secrets or config).
    pub fn discover(
        explicit: Option<&Path>,
    ) -> Result<(OperatorConfig, Option<PathBuf>), GrantError> {
        let path = explicit
            .map(Path::to_path_buf)
            .or_else(|| std::env::var_os(ENV).map(PathBuf::from));
        match path {
            Some(p) => Ok((Self::load(&p)?, Some(p))),
            None => Ok((OperatorConfig::default(), None)),
        }
    }

    /// The host configuration these settings describe.
    pub fn host_config(&self) -> HostConfig {
        HostConfig {
            cache_dir: Some(self.host.cache_dir.clone()),
            ..HostConfig::default()
        }
    }

    /// The hot-reload interval, when on.
    pub fn watch_interval(&self) -> Option<Duration> {
        (self.host.watch_ms > 0).then(|| Duration::from_millis(self.host.watch_ms))
    }

    /// What `plugin` is granted for `tenant`, secrets resolved with `resolver`.
    pub fn grants_for(
        &self,
        plugin: &str,
        tenant: &str,
        resolver: &SecretResolver,
        path: &Path,
    ) -> Result<Grants, GrantError> {
        let mut g = Grants::default();
        for grant in &self.grants {
            let plugin_ok = grant.plugin == "*" || grant.plugin == plugin;
            let tenant_ok = grant.tenants.is_empty() || grant.tenants.iter().any(|t| t == tenant);
            if !(plugin_ok && tenant_ok) {
                continue;
            }
            let mut secrets = IndexMap::new();
            for (name, reference) in &grant.secrets {
                let v = resolver
                    .resolve(reference)
                    .map_err(|e| GrantError::Secret {
                        path: path.to_path_buf(),
                        plugin: plugin.to_string(),
                        name: name.clone(),
                        cause: e.to_string(),
                    })?;
                secrets.insert(name.clone(), v);
            }
            g.merge(Grants {
                allowed_hosts: grant.allowed_hosts.clone(),
                secrets,
                config: grant.config.clone(),
                allow_private_networks: grant.allow_private_networks,
            });
        }
        Ok(g)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = r#"
[[grant]]
plugin = "*"
config = { region = "eu" }

[[grant]]
plugin = "crm-connector"
tenants = ["acme"]
allowed_hosts = ["https://api.acmecrm.example"]
secrets = { api_secret = "env:SWITCHYARD_TEST_GRANT_SECRET" }
config = { key_id = "key-1", region = "us" }
"#;

    #[test]
    fn grants_merge_per_plugin_and_tenant() {
        let c = OperatorConfig::parse(TEXT, Path::new("grants.toml")).expect("parses");
        let mut r = SecretResolver::default();
        r.insert(
            "env:SWITCHYARD_TEST_GRANT_SECRET",
            crate::connector::Secret::new("s3"),
        );
        let p = Path::new("grants.toml");
        let acme = c.grants_for("crm-connector", "acme", &r, p).expect("ok");
        assert_eq!(acme.allowed_hosts, ["https://api.acmecrm.example"]);
        assert_eq!(acme.secrets["api_secret"].expose(), "s3");
        assert_eq!(acme.config["region"], "us");
        let other = c.grants_for("crm-connector", "globex", &r, p).expect("ok");
        assert!(other.allowed_hosts.is_empty() && other.secrets.is_empty());
        assert_eq!(other.config["region"], "eu");
    }

    #[test]
    fn errors_name_the_file_and_line_and_never_the_secret() {
        let e = OperatorConfig::parse(
            "[[grant]]\nplugin = \"x\"\nhosts = []\n",
            Path::new("g.toml"),
        )
        .expect_err("unknown key");
        let msg = e.to_string();
        assert!(
            msg.starts_with("g.toml: line 3: unknown field `hosts`"),
            "{msg}"
        );
        let c = OperatorConfig::parse(
            "[[grant]]\nplugin = \"x\"\nsecrets = { k = \"env:SWITCHYARD_TEST_UNSET_VAR_9\" }\n",
            Path::new("g.toml"),
        )
        .expect("parses");
        let e = c
            .grants_for("x", "t", &SecretResolver::default(), Path::new("g.toml"))
            .expect_err("unset");
        assert_eq!(
            e.to_string(),
            "g.toml: grant for plugin `x`: secret `k`: environment variable `SWITCHYARD_TEST_UNSET_VAR_9` is not set"
        );
    }
}
