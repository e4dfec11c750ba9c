//! The operator's plugin configuration: what each plugin may reach, per tenant, and the host's
//! settings. Tenants' specs only *name* plugins; what a plugin is granted (outbound hosts,
//! secrets, configuration) comes from here, so a tenant cannot widen a plugin's reach.
//!
//! A grant names the plugin by the sha256 of its wasm — the bytes the operator reviewed — never
//! by the `name` a manifest claims: a spec can point at any manifest, and any manifest can say
//! `name = "trusted"`. The host loads only manifests that pin their wasm's sha256, checks the
//! bytes against the pin, and only then looks up the grants for that digest, so a grant reaches
//! exactly the code it was written for (and nothing after the wasm changes until the operator
//! grants the new digest).
//!
//! ```toml
//! [host]
//! # Compiled components. Default: $SWITCHYARD_PLUGIN_CACHE, else
//! # $XDG_CACHE_HOME/switchyard/plugins, else ~/.cache/switchyard/plugins.
//! cache_dir = "/var/cache/switchyard/plugins"
//! watch_ms = 1000                         # hot-reload poll of spec-referenced plugins; 0: off
//!
//! [[grant]]
//! # The wasm this grant is for (`switchyard plugin pin --check plugin.toml` prints it).
//! sha256 = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
//! tenants = ["acme"]                      # default: every tenant
//! allowed_hosts = ["https://api.acmecrm.example"]
//! secrets = { api_secret = "env:ACME_API_SECRET" }  # name → reference (env:, file:, secret:)
//! config = { key_id = "key-1" }
//! allow_private_networks = false
//! ```
//!
//! Every grant matching a (wasm sha256, tenant) pair applies; their hosts, secrets and config are
//! merged in file order (a later grant's value for the same key wins). The file is read like a
//! manifest: a regular file of at most [`HostConfig::MAX_MANIFEST_BYTES`].

use super::{Grants, HostConfig};
use crate::secrets::SecretResolver;
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
    /// Compiled-component cache folder. Default: the per-user folder of
    /// [`super::default_cache_dir`] (`$SWITCHYARD_PLUGIN_CACHE`,
    /// `$XDG_CACHE_HOME/switchyard/plugins` or `~/.cache/switchyard/plugins`).
    #[serde(default)]
    pub cache_dir: Option<PathBuf>,
    /// Hot-reload poll interval in milliseconds (0: off). Default: 1000.
    #[serde(default = "default_watch")]
    pub watch_ms: u64,
}

fn default_watch() -> u64 {
    1000
}

impl Default for HostSection {
    fn default() -> Self {
        HostSection {
            cache_dir: None,
            watch_ms: default_watch(),
        }
    }
}

/// One `[[grant]]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Grant {
    /// The sha256 (lowercase or uppercase hex) of the wasm this grant is for. Required.
    #[serde(default)]
    pub sha256: Option<toml::Spanned<String>>,
    /// Refused with a message saying what to write instead: grants are not given by name.
    #[serde(default)]
    plugin: Option<toml::Spanned<String>>,
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
    #[error("{path}: grant for the plugin with sha256 {plugin}: secret `{name}`: {cause}")]
    Secret {
        /// The file.
        path: PathBuf,
        /// The plugin's wasm sha256.
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
    /// Reads a configuration file (a regular file of at most
    /// [`HostConfig::MAX_MANIFEST_BYTES`]).
    pub fn load(path: &Path) -> Result<OperatorConfig, GrantError> {
        let io = |source| GrantError::Io {
            path: path.to_path_buf(),
            source,
        };
        let bytes =
            super::fsread::read_regular_file(path, HostConfig::MAX_MANIFEST_BYTES).map_err(io)?;
        let text = String::from_utf8(bytes).map_err(|e| GrantError::Invalid {
            path: path.to_path_buf(),
            message: format!(
                "not UTF-8 text (invalid byte at offset {})",
                e.utf8_error().valid_up_to()
            ),
        })?;
        Self::parse(&text, path)
    }

    /// Parses configuration text (`path` names it in errors).
    pub fn parse(text: &str, path: &Path) -> Result<OperatorConfig, GrantError> {
        let line = |at: usize| text[..at.min(text.len())].matches('\n').count() + 1;
        let invalid = |message: String| GrantError::Invalid {
            path: path.to_path_buf(),
            message,
        };
        let config: OperatorConfig = toml::from_str(text).map_err(|e| {
            let at = e
                .span()
                .map(|s| format!("line {}: ", line(s.start)))
                .unwrap_or_default();
            invalid(format!("{at}{}", e.message()))
        })?;
        for (i, g) in config.grants.iter().enumerate() {
            if let Some(name) = &g.plugin {
                return Err(invalid(format!(
                    "line {}: grant {}: `plugin = \"{}\"`: grants name a plugin by the sha256 of its wasm, not by the name its manifest claims; write `sha256 = \"<hex>\"` instead (`switchyard plugin pin --check <plugin.toml>` prints it)",
                    line(name.span().start),
                    i + 1,
                    name.get_ref().escape_default()
                )));
            }
            match &g.sha256 {
                None => {
                    return Err(invalid(format!(
                        "grant {}: `sha256` is missing: a grant names the wasm it is for by its sha256 (`switchyard plugin pin --check <plugin.toml>` prints it)",
                        i + 1
                    )));
                }
                Some(sha)
                    if sha.get_ref().len() != 64
                        || !sha.get_ref().bytes().all(|b| b.is_ascii_hexdigit()) =>
                {
                    return Err(invalid(format!(
                        "line {}: grant {}: sha256 `{}` is not 64 hex digits",
                        line(sha.span().start),
                        i + 1,
                        sha.get_ref()
                            .chars()
                            .take(80)
                            .collect::<String>()
                            .escape_default()
                    )));
                }
                Some(_) => {}
            }
        }
        Ok(config)
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
            cache_dir: self
                .host
                .cache_dir
                .clone()
                .or_else(super::default_cache_dir),
            ..HostConfig::default()
        }
    }

    /// The hot-reload interval, when on.
    pub fn watch_interval(&self) -> Option<Duration> {
        (self.host.watch_ms > 0).then(|| Duration::from_millis(self.host.watch_ms))
    }

    /// What the plugin whose wasm hashes to `sha256` is granted for `tenant`, secrets resolved
    /// with `resolver`.
    pub fn grants_for(
        &self,
        sha256: &str,
        tenant: &str,
        resolver: &SecretResolver,
        path: &Path,
    ) -> Result<Grants, GrantError> {
        let mut g = Grants::default();
        for grant in &self.grants {
            let plugin_ok = grant
                .sha256
                .as_ref()
                .is_some_and(|s| s.get_ref().eq_ignore_ascii_case(sha256));
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
                        plugin: sha256.to_string(),
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

    const A: &str = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    const B: &str = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";

    fn text() -> String {
        format!(
            r#"
[[grant]]
sha256 = "{A}"
config = {{ region = "eu" }}

[[grant]]
sha256 = "{}"
tenants = ["acme"]
allowed_hosts = ["https://api.acmecrm.example"]
secrets = {{ api_secret = "env:SWITCHYARD_TEST_GRANT_SECRET" }}
config = {{ key_id = "key-1", region = "us" }}
"#,
            A.to_uppercase()
        )
    }

    #[test]
    fn grants_merge_per_wasm_digest_and_tenant() {
        let c = OperatorConfig::parse(&text(), Path::new("grants.toml")).expect("parses");
        let mut r = SecretResolver::default();
        r.insert(
            "env:SWITCHYARD_TEST_GRANT_SECRET",
            crate::secrets::Secret::new("s3"),
        );
        let p = Path::new("grants.toml");
        let acme = c.grants_for(A, "acme", &r, p).expect("ok");
        assert_eq!(acme.allowed_hosts, ["https://api.acmecrm.example"]);
        assert_eq!(acme.secrets["api_secret"].expose(), "s3");
        assert_eq!(acme.config["region"], "us");
        let other = c.grants_for(A, "globex", &r, p).expect("ok");
        assert!(other.allowed_hosts.is_empty() && other.secrets.is_empty());
        assert_eq!(other.config["region"], "eu");
        // Another wasm gets nothing, whatever its manifest calls itself.
        let b = c.grants_for(B, "acme", &r, p).expect("ok");
        assert!(b.allowed_hosts.is_empty() && b.secrets.is_empty() && b.config.is_empty());
    }

    #[test]
    fn grants_by_name_are_refused_with_what_to_write_instead() {
        let e = OperatorConfig::parse(
            "[[grant]]\nplugin = \"trusted\"\nconfig = { a = 1 }\n",
            Path::new("g.toml"),
        )
        .expect_err("by name");
        assert_eq!(
            e.to_string(),
            "g.toml: line 2: grant 1: `plugin = \"trusted\"`: grants name a plugin by the sha256 of its wasm, not by the name its manifest claims; write `sha256 = \"<hex>\"` instead (`switchyard plugin pin --check <plugin.toml>` prints it)"
        );
        let e = OperatorConfig::parse("[[grant]]\ntenants = []\n", Path::new("g.toml"))
            .expect_err("no digest");
        assert!(
            e.to_string().contains("grant 1: `sha256` is missing"),
            "{e}"
        );
        let e = OperatorConfig::parse("[[grant]]\nsha256 = \"*\"\n", Path::new("g.toml"))
            .expect_err("wildcard");
        assert_eq!(
            e.to_string(),
            "g.toml: line 2: grant 1: sha256 `*` is not 64 hex digits"
        );
    }

    #[test]
    fn errors_name_the_file_and_line_and_never_the_secret() {
        let e = OperatorConfig::parse(
            &format!("[[grant]]\nsha256 = \"{A}\"\nhosts = []\n"),
            Path::new("g.toml"),
        )
        .expect_err("unknown key");
        let msg = e.to_string();
        assert!(
            msg.starts_with("g.toml: line 3: unknown field `hosts`"),
            "{msg}"
        );
        let c = OperatorConfig::parse(
            &format!(
                "[[grant]]\nsha256 = \"{A}\"\nsecrets = {{ k = \"env:SWITCHYARD_TEST_UNSET_VAR_9\" }}\n"
            ),
            Path::new("g.toml"),
        )
        .expect("parses");
        let e = c
            .grants_for(A, "t", &SecretResolver::default(), Path::new("g.toml"))
            .expect_err("unset");
        assert_eq!(
            e.to_string(),
            format!(
                "g.toml: grant for the plugin with sha256 {A}: secret `k`: environment variable `SWITCHYARD_TEST_UNSET_VAR_9` is not set"
            )
        );
    }

    #[cfg(unix)]
    #[test]
    fn a_grants_file_that_is_a_device_is_refused() {
        let e = OperatorConfig::load(Path::new("/dev/zero")).expect_err("device");
        assert_eq!(
            e.to_string(),
            "/dev/zero: cannot read: a character device is not read: only regular files are"
        );
    }
}
