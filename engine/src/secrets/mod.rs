//! Secrets: references written in specs (`secret:NAME`, `env:NAME`, `file:PATH`), the
//! [`SecretProvider`] trait that resolves them (environment, files, in-memory for tests, and a
//! chain), and [`Secret`], a value that never shows itself in Debug, Display or logs.

mod redact;

pub use redact::{REDACTED, Redactor};

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// A secret value — the one type for every secret in the engine (connector credentials,
/// mapping secrets, plugin grants). `Debug` and `Display` print `[redacted]`; read it with
/// [`Secret::expose`] only where a request is built. Cheap to clone.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(Arc<str>);

impl Secret {
    /// Wrap a value.
    pub fn new(v: impl Into<Arc<str>>) -> Self {
        Secret(v.into())
    }
    /// The value, for building a request. Never log it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("[redacted]")
    }
}

impl std::fmt::Display for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("[redacted]")
    }
}

/// A parsed secret reference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretRef {
    /// `secret:NAME`: a named secret of the secret store (e.g. a cloud secret manager path).
    Named(String),
    /// `env:NAME`: an environment variable.
    Env(String),
    /// `file:PATH`: the contents of a file (one trailing newline removed).
    File(PathBuf),
}

/// Why a reference is malformed or cannot be resolved.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SecretError {
    /// Not of the `secret:`, `env:` or `file:` form, or with an empty or invalid name.
    #[error("malformed secret reference: {0}")]
    Malformed(String),
    /// The provider does not know it.
    #[error("secret {0} is not available")]
    NotFound(String),
    /// An `env:` reference whose variable is not set.
    #[error("environment variable `{0}` is not set")]
    EnvUnset(String),
    /// Reading it failed.
    #[error("secret {0} could not be read: {1}")]
    Unreadable(String, String),
}

impl SecretError {
    /// What kind of failure it is.
    pub fn kind(&self) -> &'static str {
        match self {
            SecretError::Malformed(_) => "malformed",
            SecretError::NotFound(_) | SecretError::EnvUnset(_) => "not_found",
            SecretError::Unreadable(..) => "unreadable",
        }
    }
}

/// Whether a string is written as a secret reference (starts with a known prefix).
pub fn looks_like_ref(s: &str) -> bool {
    ["secret:", "env:", "file:"]
        .iter()
        .any(|p| s.starts_with(p))
}

impl SecretRef {
    /// Parse `secret:NAME`, `env:NAME` or `file:PATH`.
    pub fn parse(s: &str) -> Result<SecretRef, SecretError> {
        if let Some(name) = s.strip_prefix("secret:") {
            let ok = !name.is_empty()
                && name.chars().all(|c| {
                    c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '/' | '.' | '@' | ':')
                });
            if !ok {
                return Err(SecretError::Malformed(
                    "`secret:` needs a name of letters, digits and `_ - / . @ :`".into(),
                ));
            }
            return Ok(SecretRef::Named(name.to_string()));
        }
        if let Some(name) = s.strip_prefix("env:") {
            let ok = name
                .chars()
                .next()
                .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
                && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
            if !ok {
                return Err(SecretError::Malformed(
                    "`env:` needs a variable name like `HUBSPOT_TOKEN`".into(),
                ));
            }
            return Ok(SecretRef::Env(name.to_string()));
        }
        if let Some(path) = s.strip_prefix("file:") {
            if path.trim().is_empty() || path.contains('\0') {
                return Err(SecretError::Malformed("`file:` needs a path".into()));
            }
            return Ok(SecretRef::File(PathBuf::from(path)));
        }
        Err(SecretError::Malformed(
            "expected `secret:NAME`, `env:NAME` or `file:PATH`".into(),
        ))
    }

    /// A printable name of the reference (never the value).
    pub fn label(&self) -> String {
        match self {
            SecretRef::Named(n) => format!("`secret:{n}`"),
            SecretRef::Env(n) => format!("`env:{n}`"),
            SecretRef::File(p) => format!("`file:{}`", p.display()),
        }
    }
}

/// Resolves secret references. Implementations must be usable from many threads.
pub trait SecretProvider: Send + Sync {
    /// The secret a reference names.
    fn resolve(&self, r: &SecretRef) -> Result<Secret, SecretError>;
}

/// `env:NAME` from the process environment.
#[derive(Debug, Default, Clone, Copy)]
pub struct EnvProvider;

impl SecretProvider for EnvProvider {
    fn resolve(&self, r: &SecretRef) -> Result<Secret, SecretError> {
        match r {
            SecretRef::Env(n) => std::env::var(n)
                .map(Secret::new)
                .map_err(|_| SecretError::EnvUnset(n.clone())),
            _ => Err(SecretError::NotFound(r.label())),
        }
    }
}

/// `file:PATH`, relative paths against a base folder.
#[derive(Debug, Default, Clone)]
pub struct FileProvider {
    /// Folder relative paths are read from. Default: the working directory.
    pub base: Option<PathBuf>,
}

impl SecretProvider for FileProvider {
    fn resolve(&self, r: &SecretRef) -> Result<Secret, SecretError> {
        let SecretRef::File(p) = r else {
            return Err(SecretError::NotFound(r.label()));
        };
        let path = match &self.base {
            Some(b) if p.is_relative() => b.join(p),
            _ => p.clone(),
        };
        read_secret_file(&path).map_err(|e| SecretError::Unreadable(r.label(), e.to_string()))
    }
}

fn read_secret_file(p: &Path) -> std::io::Result<Secret> {
    let mut s = std::fs::read_to_string(p)?;
    if s.ends_with('\n') {
        s.pop();
        if s.ends_with('\r') {
            s.pop();
        }
    }
    Ok(Secret::new(s))
}

/// In-memory secrets (tests, embedding hosts): any reference by its full text.
#[derive(Debug, Default, Clone)]
pub struct MemoryProvider {
    values: HashMap<String, Secret>,
}

impl MemoryProvider {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }
    /// Add a secret under its reference text (`secret:x`, `env:Y`, `file:z`).
    pub fn with(mut self, reference: &str, value: &str) -> Self {
        self.values
            .insert(reference.to_string(), Secret::new(value));
        self
    }
}

impl SecretProvider for MemoryProvider {
    fn resolve(&self, r: &SecretRef) -> Result<Secret, SecretError> {
        let key = match r {
            SecretRef::Named(n) => format!("secret:{n}"),
            SecretRef::Env(n) => format!("env:{n}"),
            SecretRef::File(p) => format!("file:{}", p.display()),
        };
        self.values
            .get(&key)
            .cloned()
            .ok_or_else(|| SecretError::NotFound(r.label()))
    }
}

/// Tries providers in order; the first that knows the reference wins.
#[derive(Default)]
pub struct ChainProvider(pub Vec<Box<dyn SecretProvider>>);

impl SecretProvider for ChainProvider {
    fn resolve(&self, r: &SecretRef) -> Result<Secret, SecretError> {
        let mut last = SecretError::NotFound(r.label());
        for p in &self.0 {
            match p.resolve(r) {
                Ok(s) => return Ok(s),
                // A provider that does not handle this kind of reference says only "not
                // available"; the more specific answer of the one that does is kept.
                Err(SecretError::NotFound(l)) if l == r.label() => {}
                Err(e) => last = e,
            }
        }
        Err(last)
    }
}

/// `secret:NAME` from a JSON object file mapping full references to values (the file named by
/// `SWITCHYARD_SECRETS`, standing in for a cloud secret manager).
#[derive(Debug, Default, Clone)]
pub struct SecretsFileProvider {
    path: PathBuf,
    values: HashMap<String, Secret>,
}

impl SecretsFileProvider {
    /// Read the file (a JSON object of reference → string value).
    pub fn read(path: &Path) -> Result<Self, SecretError> {
        let label = format!("file `{}`", path.display());
        let text = std::fs::read_to_string(path)
            .map_err(|e| SecretError::Unreadable(label.clone(), e.to_string()))?;
        let v: serde_json::Value = serde_json::from_str(&text)
            .map_err(|e| SecretError::Unreadable(label.clone(), e.to_string()))?;
        let serde_json::Value::Object(m) = v else {
            return Err(SecretError::Unreadable(
                label,
                "expected a JSON object of reference → value".into(),
            ));
        };
        let values = m
            .into_iter()
            .filter_map(|(k, v)| match v {
                serde_json::Value::String(s) => Some((k, Secret::new(s))),
                _ => None,
            })
            .collect();
        Ok(Self {
            path: path.to_path_buf(),
            values,
        })
    }
}

impl SecretProvider for SecretsFileProvider {
    fn resolve(&self, r: &SecretRef) -> Result<Secret, SecretError> {
        let key = match r {
            SecretRef::Named(n) => format!("secret:{n}"),
            SecretRef::Env(n) => format!("env:{n}"),
            SecretRef::File(p) => format!("file:{}", p.display()),
        };
        self.values.get(&key).cloned().ok_or_else(|| {
            SecretError::NotFound(format!("{} (not in `{}`)", r.label(), self.path.display()))
        })
    }
}

/// The default provider chain: environment variables, files, and — when `SWITCHYARD_SECRETS`
/// names one — the secrets file for `secret:` references.
pub fn default_provider() -> ChainProvider {
    let mut chain: Vec<Box<dyn SecretProvider>> =
        vec![Box::new(EnvProvider), Box::new(FileProvider::default())];
    if let Some(p) = std::env::var_os("SWITCHYARD_SECRETS")
        && let Ok(f) = SecretsFileProvider::read(Path::new(&p))
    {
        chain.push(Box::new(f));
    }
    ChainProvider(chain)
}

/// The one way the engine resolves the secret values specs and grants refer to: text that is a
/// reference (`secret:`, `env:`, `file:`) goes through a provider chain; anything else is the
/// secret itself. References given with [`SecretResolver::insert`] win.
#[derive(Clone)]
pub struct SecretResolver {
    chain: Arc<dyn SecretProvider>,
    table: HashMap<String, Secret>,
}

impl std::fmt::Debug for SecretResolver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecretResolver")
            .field("overrides", &self.table.len())
            .finish_non_exhaustive()
    }
}

impl Default for SecretResolver {
    /// Environment variables and files only.
    fn default() -> Self {
        Self::with_provider(ChainProvider(vec![
            Box::new(EnvProvider),
            Box::new(FileProvider::default()),
        ]))
    }
}

impl SecretResolver {
    /// The default chain ([`default_provider`]); a `SWITCHYARD_SECRETS` file that cannot be
    /// read is an error here (rather than every `secret:` reference failing later).
    pub fn from_env() -> Result<Self, SecretError> {
        if let Some(p) = std::env::var_os("SWITCHYARD_SECRETS") {
            SecretsFileProvider::read(Path::new(&p))?;
        }
        Ok(Self::with_provider(default_provider()))
    }

    /// Resolve through `provider` (an embedding host's secret manager, a chain, memory).
    pub fn with_provider(provider: impl SecretProvider + 'static) -> Self {
        Self {
            chain: Arc::new(provider),
            table: HashMap::new(),
        }
    }

    /// Add a reference → value pair (wins over the providers).
    pub fn insert(&mut self, reference: impl Into<String>, value: Secret) {
        self.table.insert(reference.into(), value);
    }

    /// Resolve `text`: a reference through the providers, anything else as the value itself.
    pub fn resolve(&self, text: &str) -> Result<Secret, SecretError> {
        if let Some(s) = self.table.get(text) {
            return Ok(s.clone());
        }
        if !looks_like_ref(text) {
            return Ok(Secret::new(text));
        }
        let r = SecretRef::parse(text)?;
        self.chain.resolve(&r).map_err(|e| match (&r, e) {
            (SecretRef::Named(_), SecretError::NotFound(l)) if !l.contains("(not in") => {
                SecretError::NotFound(format!(
                    "{l} (set SWITCHYARD_SECRETS to a JSON file mapping references to values)"
                ))
            }
            (_, e) => e,
        })
    }
}

impl SecretProvider for SecretResolver {
    fn resolve(&self, r: &SecretRef) -> Result<Secret, SecretError> {
        let text = match r {
            SecretRef::Named(n) => format!("secret:{n}"),
            SecretRef::Env(n) => format!("env:{n}"),
            SecretRef::File(p) => format!("file:{}", p.display()),
        };
        SecretResolver::resolve(self, &text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_reference_forms() {
        assert_eq!(
            SecretRef::parse("secret:projects/P/secrets/x/versions/latest"),
            Ok(SecretRef::Named(
                "projects/P/secrets/x/versions/latest".into()
            ))
        );
        assert_eq!(
            SecretRef::parse("env:HUBSPOT_TOKEN"),
            Ok(SecretRef::Env("HUBSPOT_TOKEN".into()))
        );
        assert_eq!(
            SecretRef::parse("file:/run/secrets/t"),
            Ok(SecretRef::File("/run/secrets/t".into()))
        );
        for bad in [
            "secret:",
            "env:1X",
            "env:A-B",
            "file:",
            "vault:x",
            "secret:a b",
        ] {
            assert!(
                matches!(SecretRef::parse(bad), Err(SecretError::Malformed(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn secrets_redact_themselves() {
        let s = Secret::new("hunter2");
        assert_eq!(format!("{s}"), "[redacted]");
        assert!(!format!("{s:?}").contains("hunter2"));
        assert_eq!(s.expose(), "hunter2");
    }

    #[test]
    fn providers_resolve() {
        let dir = tempfile::tempdir().expect("tmp");
        std::fs::write(dir.path().join("tok"), "abc\n").expect("write");
        let f = FileProvider {
            base: Some(dir.path().to_path_buf()),
        };
        let r = SecretRef::parse("file:tok").expect("ref");
        assert_eq!(f.resolve(&r).expect("reads").expose(), "abc");
        let m = MemoryProvider::new().with("secret:a", "1");
        let chain = ChainProvider(vec![Box::new(f), Box::new(m)]);
        let r = SecretRef::parse("secret:a").expect("ref");
        assert_eq!(chain.resolve(&r).expect("found").expose(), "1");
        let missing = SecretRef::parse("secret:nope").expect("ref");
        let e = chain.resolve(&missing).expect_err("missing");
        assert_eq!(e.kind(), "not_found");
        let path = std::env::var("PATH").unwrap_or_default();
        if !path.is_empty() {
            let r = SecretRef::Env("PATH".into());
            assert_eq!(EnvProvider.resolve(&r).expect("env").expose(), path);
        }
    }
}
