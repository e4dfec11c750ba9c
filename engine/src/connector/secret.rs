//! Secrets: a string that never shows itself in logs, errors or output, and the resolution of
//! a tenant's secret references (`env:NAME`, `file:PATH`, `secret:…` through a secrets file).

use std::collections::HashMap;

pub use crate::secrets::Secret;

/// Why a secret reference could not be resolved (never contains the value).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SecretError {
    /// `env:NAME` names an unset variable.
    #[error("environment variable `{0}` is not set")]
    Env(String),
    /// `file:PATH` could not be read.
    #[error("cannot read secret file `{0}`")]
    File(String, #[source] std::io::Error),
    /// `secret:…` is not in the secrets file.
    #[error(
        "secret `{0}` is not in the secrets file (set SWITCHYARD_SECRETS to a JSON file mapping references to values)"
    )]
    Missing(String),
}

/// Resolves secret references. `secret:` references (e.g. a cloud secret manager path) are
/// looked up in a JSON object file named by `SWITCHYARD_SECRETS`, keyed by the full reference.
#[derive(Debug, Default, Clone)]
pub struct SecretResolver {
    table: HashMap<String, Secret>,
}

impl SecretResolver {
    /// A resolver reading `SWITCHYARD_SECRETS` when set.
    pub fn from_env() -> Result<Self, SecretError> {
        let mut table = HashMap::new();
        if let Ok(path) = std::env::var("SWITCHYARD_SECRETS") {
            let text =
                std::fs::read_to_string(&path).map_err(|e| SecretError::File(path.clone(), e))?;
            if let Ok(serde_json::Value::Object(m)) = serde_json::from_str(&text) {
                for (k, v) in m {
                    if let serde_json::Value::String(s) = v {
                        table.insert(k, Secret::new(s));
                    }
                }
            }
        }
        Ok(Self { table })
    }

    /// Add a reference → value pair.
    pub fn insert(&mut self, reference: impl Into<String>, value: Secret) {
        self.table.insert(reference.into(), value);
    }

    /// Resolve a reference; a string with no known prefix is the secret itself.
    pub fn resolve(&self, reference: &str) -> Result<Secret, SecretError> {
        if let Some(s) = self.table.get(reference) {
            return Ok(s.clone());
        }
        if let Some(name) = reference.strip_prefix("env:") {
            return std::env::var(name)
                .map(Secret::new)
                .map_err(|_| SecretError::Env(name.to_string()));
        }
        if let Some(path) = reference.strip_prefix("file:") {
            return std::fs::read_to_string(path)
                .map(|s| Secret::new(s.trim_end_matches(['\n', '\r'])))
                .map_err(|e| SecretError::File(path.to_string(), e));
        }
        if reference.starts_with("secret:") {
            return Err(SecretError::Missing(reference.to_string()));
        }
        Ok(Secret::new(reference))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn secrets_redact_themselves() {
        let s = Secret::new("sk_live_123");
        assert_eq!(format!("{s} {s:?}"), "[redacted] [redacted]");
        assert_eq!(s.expose(), "sk_live_123");
        let r = SecretResolver::default();
        let e = r.resolve("secret:projects/p/secrets/x").unwrap_err();
        assert!(e.to_string().contains("secret:projects/p/secrets/x"));
        assert_eq!(r.resolve("plain").unwrap().expose(), "plain");
    }
}
