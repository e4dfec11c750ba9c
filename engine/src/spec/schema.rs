//! JSON Schemas (draft 2020-12) generated from the spec types, and structural validation of a
//! document against them with every problem turned into a precise diagnostic.

use super::{AttributionSpec, ConnectorSpec, MappingSpec, PluginManifest, SourceFile, SpecKind};
use crate::diag::{Diagnostic, Diagnostics, did_you_mean, pointer_join};
use jsonschema::error::{TypeKind, ValidationErrorKind};
use jsonschema::{ValidationError, Validator};
use serde_json::Value;
use std::collections::HashMap;
use std::sync::OnceLock;

/// The JSON Schema of a spec kind, as a JSON value.
pub fn schema_for(kind: SpecKind) -> Value {
    let generator = schemars::generate::SchemaSettings::draft2020_12().into_generator();
    let mut schema = match kind {
        SpecKind::Connector => generator.into_root_schema_for::<ConnectorSpec>(),
        SpecKind::Mapping => generator.into_root_schema_for::<MappingSpec>(),
        SpecKind::Attribution => generator.into_root_schema_for::<AttributionSpec>(),
        SpecKind::Plugin => generator.into_root_schema_for::<PluginManifest>(),
    }
    .to_value();
    if let Some(obj) = schema.as_object_mut() {
        obj.insert(
            "$id".into(),
            Value::String(format!(
                "https://switchyard.dev/schemas/{}.schema.json",
                kind.as_str()
            )),
        );
    }
    schema
}

/// The schema as pretty JSON text with a trailing newline (what `schemas/*.json` hold).
pub fn schema_text(kind: SpecKind) -> String {
    let mut s = serde_json::to_string_pretty(&schema_for(kind)).unwrap_or_default();
    s.push('\n');
    s
}

struct Compiled {
    schema: Value,
    validator: Validator,
}

fn compiled(kind: SpecKind) -> &'static Compiled {
    static CACHE: OnceLock<HashMap<SpecKind, Compiled>> = OnceLock::new();
    let map = CACHE.get_or_init(|| {
        SpecKind::ALL
            .iter()
            .map(|&k| {
                let schema = schema_for(k);
                #[allow(clippy::expect_used)] // the schema is generated from our own types
                let validator =
                    jsonschema::draft202012::new(&schema).expect("generated schema compiles");
                (k, Compiled { schema, validator })
            })
            .collect()
    });
    #[allow(clippy::expect_used)]
    map.get(&kind).expect("every kind is compiled")
}

/// Validate a document against its kind's schema; every error becomes a placed diagnostic.
pub fn validate_value(kind: SpecKind, source: &SourceFile) -> Diagnostics {
    let c = compiled(kind);
    let mut out = Diagnostics::default();
    for err in c.validator.iter_errors(&source.value) {
        convert(&c.schema, &source.value, &err, source, &mut out);
    }
    out
}

fn json_type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "an integer",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "a table/object",
    }
}

fn type_kind_name(k: &TypeKind) -> String {
    match k {
        TypeKind::Single(t) => t.to_string(),
        TypeKind::Multiple(ts) => {
            let v: Vec<String> = ts.iter().map(|t| t.to_string()).collect();
            v.join(" or ")
        }
    }
}

fn short(v: &Value) -> String {
    let s = v.to_string();
    if s.chars().count() > 60 {
        format!("{}…", s.chars().take(57).collect::<String>())
    } else {
        s
    }
}

/// Walk a schema-location pointer from the root, following `$ref`s.
fn resolve_schema<'a>(root: &'a Value, path: &str) -> Option<&'a Value> {
    let mut node = root;
    for tok in path.split('/').skip(1) {
        let tok = tok.replace("~1", "/").replace("~0", "~");
        if tok == "$ref" {
            let r = node.get("$ref")?.as_str()?;
            node = root.pointer(r.strip_prefix('#')?)?;
            continue;
        }
        node = match node {
            Value::Object(m) => m.get(&tok)?,
            Value::Array(a) => a.get(tok.parse::<usize>().ok()?)?,
            _ => return None,
        };
    }
    // A trailing $ref is resolved too.
    while let Some(r) = node.get("$ref").and_then(|r| r.as_str()) {
        node = root.pointer(r.strip_prefix('#')?)?;
    }
    Some(node)
}

fn allowed_properties(root: &Value, schema_path: &str) -> Vec<String> {
    let parent = schema_path.rsplit_once('/').map(|(p, _)| p).unwrap_or("");
    resolve_schema(root, parent)
        .and_then(|n| n.get("properties"))
        .and_then(|p| p.as_object())
        .map(|m| m.keys().cloned().collect())
        .unwrap_or_default()
}

#[allow(clippy::only_used_in_recursion)]
fn convert(
    root: &Value,
    doc: &Value,
    err: &ValidationError<'_>,
    src: &SourceFile,
    out: &mut Diagnostics,
) {
    let ptr = err.instance_path().as_str().to_string();
    let schema_path = err.schema_path().as_str().to_string();
    let instance = err.instance();
    match err.kind() {
        ValidationErrorKind::AdditionalProperties { unexpected }
        | ValidationErrorKind::UnevaluatedProperties { unexpected } => {
            let allowed = allowed_properties(root, &schema_path);
            for key in unexpected {
                let hint = did_you_mean(key, allowed.iter().map(String::as_str)).or_else(|| {
                    (!allowed.is_empty() && allowed.len() <= 12)
                        .then(|| format!("allowed keys here: {}", allowed.join(", ")))
                });
                out.push(
                    src.place(
                        Diagnostic::error(
                            "E100",
                            pointer_join(&ptr, key),
                            format!("unknown key `{key}`"),
                        )
                        .with_hint_opt(hint),
                    ),
                );
            }
        }
        ValidationErrorKind::Required { property } => {
            let p = property.as_str().unwrap_or_default();
            out.push(src.place(Diagnostic::error(
                "E102",
                ptr.clone(),
                format!("missing required key `{p}`"),
            )));
        }
        ValidationErrorKind::Type { kind } => {
            out.push(src.place_value(Diagnostic::error(
                "E101",
                ptr.clone(),
                format!(
                    "expected {}, found {}",
                    type_kind_name(kind),
                    json_type_name(instance)
                ),
            )));
        }
        ValidationErrorKind::Enum { options } => {
            let opts: Vec<String> = options
                .as_array()
                .map(|a| {
                    a.iter()
                        .map(|o| {
                            o.as_str()
                                .map(str::to_string)
                                .unwrap_or_else(|| o.to_string())
                        })
                        .collect()
                })
                .unwrap_or_default();
            let hint = instance
                .as_str()
                .and_then(|s| did_you_mean(s, opts.iter().map(String::as_str)))
                .or_else(|| Some(format!("expected one of: {}", opts.join(", "))));
            out.push(
                src.place_value(
                    Diagnostic::error(
                        "E103",
                        ptr.clone(),
                        format!("{} is not an allowed value", short(instance)),
                    )
                    .with_hint_opt(hint),
                ),
            );
        }
        ValidationErrorKind::Constant { expected_value } => {
            out.push(
                src.place_value(
                    Diagnostic::error(
                        "E103",
                        ptr.clone(),
                        format!("{} is not an allowed value", short(instance)),
                    )
                    .with_hint(format!("expected {expected_value}")),
                ),
            );
        }
        ValidationErrorKind::OneOfNotValid { context } | ValidationErrorKind::AnyOf { context } => {
            match pick_branch(&ptr, instance, context) {
                Some(branch) => {
                    for e in branch {
                        convert(root, doc, e, src, out);
                    }
                }
                None => {
                    let types = branch_types(root, &schema_path);
                    let expected = if types.is_empty() {
                        "a different shape".to_string()
                    } else {
                        types.join(", ")
                    };
                    out.push(src.place_value(Diagnostic::error(
                        "E101",
                        ptr.clone(),
                        format!("expected {expected}, found {}", json_type_name(instance)),
                    )));
                }
            }
        }
        _ => {
            out.push(src.place_value(Diagnostic::error("E104", ptr.clone(), err.to_string())));
        }
    }
}

/// Among the branches of a failed `oneOf`/`anyOf`, the one the author most likely meant: not a
/// branch of the wrong JSON type, not one whose discriminator (`type`, `style`, `scheme`)
/// disagrees, and then the one with the fewest errors.
fn pick_branch<'a>(
    ptr: &str,
    _instance: &Value,
    context: &'a [Vec<ValidationError<'static>>],
) -> Option<&'a [ValidationError<'static>]> {
    let mut best: Option<(usize, &'a [ValidationError<'static>])> = None;
    for branch in context {
        let wrong_type = branch.iter().any(|e| {
            e.instance_path().as_str() == ptr
                && matches!(e.kind(), ValidationErrorKind::Type { .. })
        });
        if wrong_type {
            continue;
        }
        let wrong_discriminator = branch.iter().any(|e| {
            let p = e.instance_path().as_str();
            matches!(
                e.kind(),
                ValidationErrorKind::Constant { .. } | ValidationErrorKind::Enum { .. }
            ) && ["type", "style", "scheme", "kind"]
                .iter()
                .any(|d| p == format!("{ptr}/{d}"))
        });
        let missing_discriminator = branch.iter().any(|e| {
            e.instance_path().as_str() == ptr
                && matches!(e.kind(), ValidationErrorKind::Required { property } if ["type", "style", "scheme"].contains(&property.as_str().unwrap_or("")))
        });
        let score = branch.len()
            + if wrong_discriminator || missing_discriminator {
                1000
            } else {
                0
            };
        if best.is_none_or(|(s, _)| score < s) {
            best = Some((score, branch.as_slice()));
        }
    }
    best.map(|(_, b)| b)
}

fn branch_types(root: &Value, schema_path: &str) -> Vec<String> {
    let Some(node) = resolve_schema(root, schema_path) else {
        return vec![];
    };
    let Some(branches) = node.as_array() else {
        return vec![];
    };
    let mut out = Vec::new();
    for b in branches {
        let mut b = b;
        while let Some(r) = b.get("$ref").and_then(|r| r.as_str()) {
            match r.strip_prefix('#').and_then(|p| root.pointer(p)) {
                Some(n) => b = n,
                None => break,
            }
        }
        let t = match b.get("type") {
            Some(Value::String(s)) => s.clone(),
            Some(Value::Array(a)) => a
                .iter()
                .filter_map(|x| x.as_str())
                .collect::<Vec<_>>()
                .join(" or "),
            _ if b.get("oneOf").is_some() || b.get("anyOf").is_some() => "object".into(),
            _ => continue,
        };
        if !out.contains(&t) {
            out.push(t);
        }
    }
    out
}
