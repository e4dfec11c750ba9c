//! Handlebars templates of mapping specs (payload templates, deal titles, endpoint paths and
//! headers), compiled at load and never HTML-escaped.
//!
//! Every template is checked by the `handlebars` compiler. A template made only of text and
//! `{{path}}` substitutions (the common case) is compiled further into parts rendered straight
//! from the record, without building a JSON context; anything else (helpers, blocks) is
//! rendered by `handlebars` with the helpers `default`, `json`, `upper`, `lower`, `formatDate`
//! and the built-in `eq`/`gt`/`lt` for `{{#if}}`. References to `auth.*`, `secrets.*` and
//! `config.*` are left as written: they are filled when a request is built, never in mapping
//! output.

use handlebars::{
    Context, Handlebars, Helper, HelperResult, Output, RenderContext, RenderErrorReason,
};
use serde_json::Value;
use std::sync::Arc;

/// Why a template does not compile.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("template does not compile: {reason}")]
pub struct TemplateError {
    /// The compiler's reason.
    pub reason: String,
}

/// One piece of a simple template.
#[derive(Debug, Clone, PartialEq)]
pub enum Part {
    /// Literal text.
    Text(String),
    /// A record path, by slot index (given by the caller's interner).
    Path(usize),
    /// Text kept as written (`{{auth.token}}`, `{{secrets.x}}`), filled at request time.
    Keep(String),
}

/// A compiled string template.
#[derive(Clone)]
pub struct Template {
    /// The source text.
    pub source: String,
    /// Parts, when the template is simple.
    pub parts: Option<Vec<Part>>,
    /// Name in the shared registry, when it needs `handlebars` to render.
    pub registered: Option<String>,
}

impl std::fmt::Debug for Template {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Template")
            .field("source", &self.source)
            .finish()
    }
}

/// Whether a name is kept for request time.
pub fn is_request_time(path: &str) -> bool {
    ["auth.", "secrets.", "config."]
        .iter()
        .any(|p| path.starts_with(p))
}

fn is_plain_path(s: &str) -> bool {
    !s.is_empty()
        && !s.starts_with(['#', '/', '!', '>', '^', '@', '.'])
        && s != "else"
        && s != "this"
        && s.chars()
            .all(|c| c.is_alphanumeric() || c == '_' || c == '.' || c == '-')
}

/// Check that a template compiles (E211).
pub fn check(src: &str) -> Result<(), TemplateError> {
    handlebars::Template::compile(src)
        .map(|_| ())
        .map_err(|e| TemplateError {
            reason: e.reason().to_string(),
        })
}

/// Split a simple template into parts; `None` when it uses helpers or blocks.
pub fn simple_parts(src: &str, intern: &mut dyn FnMut(&str) -> usize) -> Option<Vec<Part>> {
    let mut parts = Vec::new();
    let mut rest = src;
    while let Some(i) = rest.find("{{") {
        if i > 0 {
            parts.push(Part::Text(rest[..i].to_string()));
        }
        let after = &rest[i..];
        let (open, close) = if after.starts_with("{{{") {
            ("{{{", "}}}")
        } else {
            ("{{", "}}")
        };
        let inner_start = open.len();
        let end = after[inner_start..].find(close)? + inner_start;
        let inner = after[inner_start..end].trim_matches('~').trim();
        if !is_plain_path(inner) {
            return None;
        }
        if is_request_time(inner) {
            parts.push(Part::Keep(after[..end + close.len()].to_string()));
        } else {
            parts.push(Part::Path(intern(inner)));
        }
        rest = &after[end + close.len()..];
    }
    if rest.contains("}}") {
        return None;
    }
    if !rest.is_empty() {
        parts.push(Part::Text(rest.to_string()));
    }
    Some(parts)
}

/// The shared `handlebars` registry of a compiled mapping: no escaping, non-strict, with the
/// mapping helpers. `Send + Sync`.
#[derive(Clone)]
pub struct Registry(pub Arc<Handlebars<'static>>);

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Registry")
    }
}

/// A fresh registry builder with the helpers installed.
pub fn new_registry() -> Handlebars<'static> {
    let mut h = Handlebars::new();
    h.register_escape_fn(handlebars::no_escape);
    h.register_helper("default", Box::new(default_helper));
    h.register_helper("json", Box::new(json_helper));
    h.register_helper("upper", Box::new(upper_helper));
    h.register_helper("lower", Box::new(lower_helper));
    h.register_helper("formatDate", Box::new(format_date_helper));
    h
}

fn param_text(h: &Helper, i: usize) -> Option<String> {
    let v = h.param(i)?.value();
    match v {
        Value::Null => None,
        Value::String(s) => Some(s.clone()),
        other => Some(other.to_string()),
    }
}

fn default_helper(
    h: &Helper,
    _: &Handlebars,
    _: &Context,
    _: &mut RenderContext,
    out: &mut dyn Output,
) -> HelperResult {
    let v = param_text(h, 0)
        .filter(|s| !s.is_empty())
        .or_else(|| param_text(h, 1))
        .unwrap_or_default();
    out.write(&v)?;
    Ok(())
}

fn json_helper(
    h: &Helper,
    _: &Handlebars,
    _: &Context,
    _: &mut RenderContext,
    out: &mut dyn Output,
) -> HelperResult {
    let v = h.param(0).map(|p| p.value().clone()).unwrap_or(Value::Null);
    out.write(&v.to_string())?;
    Ok(())
}

fn upper_helper(
    h: &Helper,
    _: &Handlebars,
    _: &Context,
    _: &mut RenderContext,
    out: &mut dyn Output,
) -> HelperResult {
    out.write(&param_text(h, 0).unwrap_or_default().to_uppercase())?;
    Ok(())
}

fn lower_helper(
    h: &Helper,
    _: &Handlebars,
    _: &Context,
    _: &mut RenderContext,
    out: &mut dyn Output,
) -> HelperResult {
    out.write(&param_text(h, 0).unwrap_or_default().to_lowercase())?;
    Ok(())
}

fn format_date_helper(
    h: &Helper,
    _: &Handlebars,
    _: &Context,
    _: &mut RenderContext,
    out: &mut dyn Output,
) -> HelperResult {
    let Some(v) = h.param(0).map(|p| p.value().clone()) else {
        return Ok(());
    };
    let fmt = param_text(h, 1).unwrap_or_else(|| "%Y-%m-%d".into());
    let val = crate::expr::Val::from_json(&v);
    let Some(t) = crate::expr::functions::format_date::to_naive(&val) else {
        return Ok(());
    };
    use std::fmt::Write as _;
    let mut s = String::new();
    write!(s, "{}", t.format(&fmt))
        .map_err(|_| RenderErrorReason::Other(format!("invalid date format `{fmt}`")))?;
    out.write(&s)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn simple_templates_split_into_parts() {
        let mut names = Vec::new();
        let mut intern = |p: &str| {
            names.push(p.to_string());
            names.len() - 1
        };
        let parts = simple_parts(
            "{{customer_name}} - {{ai_analysis.project_type}} Project",
            &mut intern,
        )
        .expect("simple");
        assert_eq!(
            parts,
            vec![
                Part::Path(0),
                Part::Text(" - ".into()),
                Part::Path(1),
                Part::Text(" Project".into())
            ]
        );
        let parts = simple_parts("Bearer {{auth.token}}", &mut intern).expect("simple");
        assert_eq!(
            parts,
            vec![
                Part::Text("Bearer ".into()),
                Part::Keep("{{auth.token}}".into())
            ]
        );
        assert!(simple_parts("{{#if x}}a{{/if}}", &mut intern).is_none());
        assert!(simple_parts("{{upper x}}", &mut intern).is_none());
    }

    #[test]
    fn helpers_render_without_escaping() {
        let mut h = new_registry();
        h.register_template_string(
            "t",
            "{{upper name}}|{{default missing 'n/a'}}|{{json tags}}|{{formatDate d '%d/%m/%Y'}}|{{#if (gt score 80)}}hot{{else}}cold{{/if}}|{{lower name}} & <b>",
        )
        .expect("compiles");
        let out = h
            .render(
                "t",
                &json!({"name": "Ada \"A\"", "tags": ["x"], "d": "2026-01-05", "score": 81}),
            )
            .expect("renders");
        assert_eq!(out, "ADA \"A\"|n/a|[\"x\"]|05/01/2026|hot|ada \"a\" & <b>");
        assert!(check("{{#if x}}").is_err());
    }
}
