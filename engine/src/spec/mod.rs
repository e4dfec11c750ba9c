//! The spec model: the four kinds of spec as Rust types, loading from TOML or JSON (same
//! meaning), JSON Schemas generated from the types, and validation (schema, then semantics).
//!
//! Only this module derives `Serialize`/`Deserialize`; everything else works on compiled plans.

pub mod attribution;
pub mod common;
pub mod connector;
pub mod mapping;
pub mod plugin;
pub mod schema;
pub mod source;
pub mod validate;

pub use attribution::AttributionSpec;
pub use common::{FieldType, SpecVersion};
pub use connector::ConnectorSpec;
pub use mapping::MappingSpec;
pub use plugin::PluginManifest;
pub use source::{ReadError, SourceFile, SyntaxFormat};

use crate::diag::{Diagnostic, Diagnostics};
use std::path::{Path, PathBuf};

/// The kinds of spec.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SpecKind {
    /// A connector spec (`[connector]`).
    Connector,
    /// A mapping spec (`crm_config`).
    Mapping,
    /// An attribution spec (`[attribution]`).
    Attribution,
    /// A plugin manifest (`[plugin]`).
    Plugin,
}

impl SpecKind {
    /// All kinds.
    pub const ALL: [SpecKind; 4] = [
        SpecKind::Connector,
        SpecKind::Mapping,
        SpecKind::Attribution,
        SpecKind::Plugin,
    ];

    /// Lowercase name.
    pub fn as_str(self) -> &'static str {
        match self {
            SpecKind::Connector => "connector",
            SpecKind::Mapping => "mapping",
            SpecKind::Attribution => "attribution",
            SpecKind::Plugin => "plugin",
        }
    }

    /// Tell the kind of a document from its distinctive top-level key.
    pub fn detect(value: &serde_json::Value) -> Option<SpecKind> {
        let obj = value.as_object()?;
        if obj.contains_key("crm_config") {
            Some(SpecKind::Mapping)
        } else if obj.get("connector").is_some_and(|c| c.is_object()) {
            Some(SpecKind::Connector)
        } else if obj.contains_key("attribution") {
            Some(SpecKind::Attribution)
        } else if obj.contains_key("plugin") {
            Some(SpecKind::Plugin)
        } else {
            None
        }
    }
}

impl std::fmt::Display for SpecKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A typed spec of any kind.
#[derive(Debug, Clone, PartialEq)]
pub enum Spec {
    /// A connector spec.
    Connector(Box<ConnectorSpec>),
    /// A mapping spec.
    Mapping(Box<MappingSpec>),
    /// An attribution spec.
    Attribution(Box<AttributionSpec>),
    /// A plugin manifest.
    Plugin(Box<PluginManifest>),
}

impl Spec {
    /// The kind.
    pub fn kind(&self) -> SpecKind {
        match self {
            Spec::Connector(_) => SpecKind::Connector,
            Spec::Mapping(_) => SpecKind::Mapping,
            Spec::Attribution(_) => SpecKind::Attribution,
            Spec::Plugin(_) => SpecKind::Plugin,
        }
    }
}

/// A spec file after loading: its source and, when it passed schema validation, its typed form.
#[derive(Debug, Clone)]
pub struct LoadedSpec {
    /// The file.
    pub source: SourceFile,
    /// Its kind, when it could be told.
    pub kind: Option<SpecKind>,
    /// The typed spec, when the document is structurally valid.
    pub spec: Option<Spec>,
}

/// Load one file: syntax, kind, JSON Schema, then typed deserialisation. All problems found
/// on the way are returned as placed diagnostics; I/O errors are returned as `Err`.
pub fn load_file(path: &Path) -> Result<(Option<LoadedSpec>, Diagnostics), std::io::Error> {
    let mut diags = Diagnostics::default();
    let source = match SourceFile::read(path) {
        Ok(s) => s,
        Err(ReadError::Io(e)) => return Err(e),
        Err(ReadError::Syntax(d)) => {
            diags.push(*d);
            return Ok((None, diags));
        }
    };
    let (loaded, d) = load_source(source);
    diags.extend(d);
    Ok((Some(loaded), diags))
}

/// Load a parsed source (see [`load_file`]).
pub fn load_source(source: SourceFile) -> (LoadedSpec, Diagnostics) {
    let mut diags = Diagnostics::default();
    let Some(kind) = SpecKind::detect(&source.value) else {
        diags.push(source.place(
            Diagnostic::error("E002", "", "cannot tell which kind of spec this is")
                .with_hint("a connector spec has a [connector] table, a mapping spec a `crm_config`, an attribution spec an [attribution] table, a plugin manifest a [plugin] table"),
        ));
        return (
            LoadedSpec {
                source,
                kind: None,
                spec: None,
            },
            diags,
        );
    };
    for dup in &source.duplicate_keys {
        let key = dup.rsplit('/').next().unwrap_or_default();
        diags.push(source.place(
            Diagnostic::error("E209", dup.clone(), format!("duplicate key `{key}`")).with_hint(
                "JSON keeps only the last value of a repeated key; remove or rename one",
            ),
        ));
    }
    let schema_diags = schema::validate_value(kind, &source);
    let structurally_valid = !schema_diags.has_errors();
    diags.extend(schema_diags);
    let spec = if structurally_valid {
        match typed(kind, &source.value) {
            Ok(s) => Some(s),
            Err((ptr, msg)) => {
                diags.push(source.place(Diagnostic::error("E109", ptr, msg)));
                None
            }
        }
    } else {
        None
    };
    (
        LoadedSpec {
            source,
            kind: Some(kind),
            spec,
        },
        diags,
    )
}

/// Deserialise a JSON value into the typed spec of `kind`; errors carry a JSON pointer.
pub fn typed(kind: SpecKind, value: &serde_json::Value) -> Result<Spec, (String, String)> {
    fn go<T: serde::de::DeserializeOwned>(v: &serde_json::Value) -> Result<T, (String, String)> {
        let mut track = serde_path_to_error::Track::new();
        let de = serde_path_to_error::Deserializer::new(v, &mut track);
        T::deserialize(de).map_err(|e| (path_to_pointer(&track.path()), e.to_string()))
    }
    Ok(match kind {
        SpecKind::Connector => Spec::Connector(Box::new(go(value)?)),
        SpecKind::Mapping => Spec::Mapping(Box::new(go(value)?)),
        SpecKind::Attribution => Spec::Attribution(Box::new(go(value)?)),
        SpecKind::Plugin => Spec::Plugin(Box::new(go(value)?)),
    })
}

fn path_to_pointer(p: &serde_path_to_error::Path) -> String {
    use serde_path_to_error::Segment;
    let mut s = String::new();
    for seg in p.iter() {
        match seg {
            Segment::Seq { index } => s.push_str(&format!("/{index}")),
            Segment::Map { key } => {
                s.push_str(&format!("/{}", crate::diag::escape_pointer_token(key)))
            }
            Segment::Enum { .. } | Segment::Unknown => {}
        }
    }
    s
}

/// Every `.toml`/`.json` file under the given files and directories, sorted, skipping hidden
/// entries, `target/` and `node_modules/`.
pub fn collect_files(paths: &[PathBuf]) -> Result<Vec<PathBuf>, std::io::Error> {
    let mut out = Vec::new();
    for p in paths {
        let meta = std::fs::metadata(p)
            .map_err(|e| std::io::Error::new(e.kind(), format!("{}: {e}", p.display())))?;
        if meta.is_dir() {
            walk(p, &mut out)?;
        } else {
            out.push(p.clone());
        }
    }
    out.sort();
    out.dedup();
    Ok(out)
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> Result<(), std::io::Error> {
    let mut entries: Vec<_> = std::fs::read_dir(dir)?.collect::<Result<_, _>>()?;
    entries.sort_by_key(|e| e.path());
    for e in entries {
        let name = e.file_name();
        let name = name.to_string_lossy();
        if name.starts_with('.') || name == "target" || name == "node_modules" {
            continue;
        }
        let path = e.path();
        if e.file_type()?.is_dir() {
            walk(&path, out)?;
        } else if SyntaxFormat::from_path(&path).is_some() {
            out.push(path);
        }
    }
    Ok(())
}

/// A spec kind's typed form, for [`load_as`].
pub trait SpecType: Sized {
    /// The kind.
    const KIND: SpecKind;
    /// The typed spec, when `s` is of this kind.
    fn from_spec(s: Spec) -> Option<Self>;
}

macro_rules! spec_type {
    ($t:ty, $variant:ident, $kind:ident) => {
        impl SpecType for $t {
            const KIND: SpecKind = SpecKind::$kind;
            fn from_spec(s: Spec) -> Option<Self> {
                match s {
                    Spec::$variant(x) => Some(*x),
                    _ => None,
                }
            }
        }
    };
}
spec_type!(ConnectorSpec, Connector, Connector);
spec_type!(MappingSpec, Mapping, Mapping);
spec_type!(AttributionSpec, Attribution, Attribution);
spec_type!(PluginManifest, Plugin, Plugin);

/// Why [`load_as`] failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LoadError {
    /// The file could not be read.
    #[error("cannot read `{path}`")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The file is not a valid spec: every diagnostic, placed in the file.
    #[error("`{path}` is not a valid {kind} spec:\n{diagnostics}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// The kind that was expected.
        kind: SpecKind,
        /// What is wrong.
        diagnostics: Diagnostics,
    },
    /// The file is a valid spec of another kind.
    #[error("`{path}` is a {found} spec, not a {expected} spec")]
    WrongKind {
        /// The file.
        path: PathBuf,
        /// The kind found.
        found: SpecKind,
        /// The kind expected.
        expected: SpecKind,
    },
}

/// Load one spec file of kind `T`: the typed spec and its source (to place later diagnostics,
/// e.g. a mapping's compile errors, at their line and column).
pub fn load_as<T: SpecType>(path: &Path) -> Result<(T, SourceFile), LoadError> {
    let (loaded, diags) = load_file(path).map_err(|source| LoadError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let invalid = |diagnostics| LoadError::Invalid {
        path: path.to_path_buf(),
        kind: T::KIND,
        diagnostics,
    };
    if diags.has_errors() {
        return Err(invalid(diags));
    }
    let Some(loaded) = loaded else {
        return Err(invalid(diags));
    };
    match loaded.spec {
        Some(s) => {
            let found = s.kind();
            T::from_spec(s)
                .map(|t| (t, loaded.source))
                .ok_or(LoadError::WrongKind {
                    path: path.to_path_buf(),
                    found,
                    expected: T::KIND,
                })
        }
        None => Err(invalid(diags)),
    }
}
