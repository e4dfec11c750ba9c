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
    /// The diagnostic code: E211 (syntax) or E231 (a limit, or a partial or decorator).
    pub code: &'static str,
    /// The compiler's reason.
    pub reason: String,
}

/// Longest template text, in bytes.
pub const MAX_TEMPLATE_BYTES: usize = 64 * 1024;
/// Most `{{…}}` tags in one template.
pub const MAX_TEMPLATE_TAGS: usize = 256;
/// Deepest nesting of blocks (`{{#if}}…{{/if}}`) and subexpressions (`(gt x 1)`) in one
/// template.
pub const MAX_TEMPLATE_DEPTH: usize = 16;

/// Compile a template with the engine's limits; every template of every spec goes through
/// here (mapping and connector templates alike).
///
/// The limits are there because `handlebars` (6.x) computes the line and column of every
/// element by rescanning the template from its start (pest's `Position::line_col`), so its
/// compile time grows with the square of the template: 40k `{{x}}` took 27 s. Bounding the text
/// and the number of tags bounds that to milliseconds. Block and subexpression nesting is
/// bounded because rendering recurses once per level, and partials and decorators are refused
/// because an inline partial that includes itself recurses without end at render time.
pub fn compile(src: &str) -> Result<handlebars::Template, TemplateError> {
    let limit = |reason: String| TemplateError {
        code: "E231",
        reason,
    };
    if src.len() > MAX_TEMPLATE_BYTES {
        return Err(limit(format!(
            "the template is {} bytes long; at most {MAX_TEMPLATE_BYTES} are allowed",
            src.len()
        )));
    }
    let tags = src.matches("{{").count();
    if tags > MAX_TEMPLATE_TAGS {
        return Err(limit(format!(
            "the template has {tags} `{{{{…}}}}` tags; at most {MAX_TEMPLATE_TAGS} are allowed"
        )));
    }
    let t = handlebars::Template::compile(src).map_err(|e| TemplateError {
        code: "E211",
        reason: template_error_text(&e),
    })?;
    check_tree(&t).map_err(limit)?;
    Ok(t)
}

/// Refuse partials and decorators and nesting past [`MAX_TEMPLATE_DEPTH`], walking the compiled
/// template with an explicit stack.
fn check_tree(t: &handlebars::Template) -> Result<(), String> {
    use handlebars::template::{Parameter, TemplateElement as E};
    let mut stack: Vec<(&E, usize)> = t.elements.iter().map(|e| (e, 0)).collect();
    let mut params: Vec<(&Parameter, usize)> = Vec::new();
    while let Some((el, depth)) = stack.pop() {
        if depth > MAX_TEMPLATE_DEPTH {
            return Err(format!(
                "blocks and subexpressions nest more than {MAX_TEMPLATE_DEPTH} deep"
            ));
        }
        match el {
            E::RawString(_) | E::Comment(_) => {}
            E::Expression(h) | E::HtmlExpression(h) | E::HelperBlock(h) => {
                params.extend(h.params.iter().map(|p| (p, depth)));
                params.extend(h.hash.values().map(|p| (p, depth)));
                params.push((&h.name, depth));
                for inner in [&h.template, &h.inverse].into_iter().flatten() {
                    stack.extend(inner.elements.iter().map(|e| (e, depth + 1)));
                }
            }
            E::DecoratorExpression(_) | E::DecoratorBlock(_) => {
                return Err("decorators (`{{* …}}`, `{{#* …}}`) are not supported".into());
            }
            E::PartialExpression(_) | E::PartialBlock(_) => {
                return Err("partials (`{{> …}}`, `{{#> …}}`) are not supported".into());
            }
            // A kind of element a later `handlebars` adds: refused until it is looked at.
            _ => return Err("an unsupported template element".into()),
        }
        while let Some((p, d)) = params.pop() {
            if let Parameter::Subexpression(sub) = p {
                stack.push((sub.element.as_ref(), d + 1));
            }
        }
    }
    Ok(())
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

/// Check that a template compiles within the limits (E211, E231).
pub fn check(src: &str) -> Result<(), TemplateError> {
    compile(src).map(|_| ())
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

/// A short, single-line reason for a handlebars compile error, with its position in the template.
pub fn template_error_text(e: &handlebars::TemplateError) -> String {
    let reason = e.reason().to_string();
    let reason = reason
        .split(": expected")
        .next()
        .unwrap_or(&reason)
        .trim()
        .to_string();
    match e.pos() {
        Some((line, col)) => format!("{reason} at line {line}, column {col} of the template"),
        None => reason,
    }
}

/// The text inside each `{{…}}` tag of a template string, in order (an unclosed tag ends it).
pub fn tags(t: &str) -> impl Iterator<Item = &str> {
    let mut rest = t;
    std::iter::from_fn(move || {
        let after = &rest[rest.find("{{")? + 2..];
        let j = after.find("}}")?;
        rest = &after[j + 2..];
        Some(&after[..j])
    })
}

/// Names a template string refers to under `secrets.` and `config.`.
pub fn template_refs(t: &str) -> Vec<(&'static str, String)> {
    let mut out = Vec::new();
    for tag in tags(t) {
        let inner = tag
            .trim()
            .trim_start_matches('{')
            .trim_end_matches('}')
            .trim();
        for word in inner.split_whitespace() {
            for (prefix, kind) in [("secrets.", "secrets"), ("config.", "config")] {
                if let Some(name) = word.strip_prefix(prefix) {
                    let name: String = name
                        .chars()
                        .take_while(|c| c.is_alphanumeric() || *c == '_' || *c == '-')
                        .collect();
                    out.push((kind, name));
                }
            }
        }
    }
    out
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
    fn a_template_of_200k_placeholders_is_refused_at_once_not_compiled_for_minutes() {
        // 40k `{{x}}` used to take 27 s to compile and 200k never finished.
        // 10k tags fit the byte limit and are refused by the tag limit (first: before the
        // limits, this one took 4.4 s in a debug build, so the test fails fast there).
        for src in ["{{x}}".repeat(10_000), "{{x}}".repeat(200_000)] {
            let t = std::time::Instant::now();
            let e = check(&src).expect_err("refused");
            assert_eq!(e.code, "E231");
            assert!(e.reason.contains("at most"), "{}", e.reason);
            assert!(
                t.elapsed() < std::time::Duration::from_secs(2),
                "{:?}",
                t.elapsed()
            );
        }
        let e = check(&"a".repeat(MAX_TEMPLATE_BYTES + 1)).expect_err("refused");
        assert_eq!(e.code, "E231");
    }

    #[test]
    fn the_largest_template_allowed_compiles_quickly() {
        // At the limits (64 KiB, 256 tags spread over it) the quadratic cost inside
        // `handlebars` stays small: milliseconds in release, well under a second in debug.
        let gap = "a".repeat(MAX_TEMPLATE_BYTES / MAX_TEMPLATE_TAGS - 12);
        let src: String = (0..MAX_TEMPLATE_TAGS)
            .map(|i| format!("{gap}{{{{x{i}}}}}"))
            .collect();
        assert!(src.len() <= MAX_TEMPLATE_BYTES);
        let t = std::time::Instant::now();
        check(&src).expect("compiles");
        eprintln!("the largest template allowed compiled in {:?}", t.elapsed());
        assert!(
            t.elapsed() < std::time::Duration::from_secs(5),
            "{:?}",
            t.elapsed()
        );
        assert_eq!(
            check(&format!("{src}{{{{y}}}}")).map_err(|e| e.code),
            Err("E231")
        );
    }

    #[test]
    fn deep_blocks_subexpressions_and_recursive_partials_are_refused_not_overflowed() {
        // 1,000 nested `{{#if}}` compiled, then overflowed the stack when rendered; an inline
        // partial that includes itself recursed until the stack overflowed.
        let nest = |n: usize| format!("{}x{}", "{{#if a}}".repeat(n), "{{/if}}".repeat(n));
        let sub = |n: usize| format!("{{{{lower {}x{}}}}}", "(lower ".repeat(n), ")".repeat(n));
        for (what, src) in [
            ("1,000 blocks", nest(1_000)),
            ("17 blocks", nest(MAX_TEMPLATE_DEPTH + 1)),
            ("17 subexpressions", sub(MAX_TEMPLATE_DEPTH + 1)),
            (
                "blocks in else",
                format!(
                    "{}x{}",
                    "{{#if a}}{{else}}".repeat(20),
                    "{{/if}}".repeat(20)
                ),
            ),
            (
                "recursive partial",
                r#"{{#*inline "p"}}x{{> p}}{{/inline}}{{> p}}"#.into(),
            ),
            ("partial", "{{> header}}".into()),
            ("decorator", "{{* log}}".into()),
        ] {
            let e = check(&src).expect_err(what);
            assert_eq!(e.code, "E231", "{what}: {}", e.reason);
        }
        let mut h = new_registry();
        for (i, src) in [nest(MAX_TEMPLATE_DEPTH), sub(MAX_TEMPLATE_DEPTH - 1)]
            .iter()
            .enumerate()
        {
            let t = compile(src).expect("at the limit");
            h.register_template(&i.to_string(), t);
            h.render(&i.to_string(), &json!({"a": true, "x": "X"}))
                .expect("renders");
        }
        assert_eq!(check("{{#if}}").map_err(|e| e.code), Err("E211"));
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
