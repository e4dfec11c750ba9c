//! Templates of connector specs (paths, queries, headers, bodies), compiled once per spec.
//!
//! A string that is exactly one `{{path}}` keeps the value's JSON type (an object stays an
//! object, a number a number) and, inside a JSON tree, a missing value drops the key. Any other
//! string is a handlebars template rendered without HTML escaping. The key `"..."` in a JSON
//! object spreads the object its template yields into the enclosing object.

use handlebars::Handlebars;
use serde_json::{Map, Value};
use std::sync::atomic::{AtomicUsize, Ordering};

/// Errors from compiling or rendering templates.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TemplateError {
    /// A template does not compile.
    #[error("template `{template}` does not compile: {reason}")]
    Compile {
        /// The template text.
        template: String,
        /// Why.
        reason: String,
    },
    /// A template failed to render.
    #[error("template failed to render: {0}")]
    Render(String),
}

/// One compiled string template.
#[derive(Debug, Clone)]
pub enum Tpl {
    /// No placeholders.
    Lit(String),
    /// Exactly one `{{a.b.c}}`: the value at that path, type kept.
    Path(Vec<String>),
    /// Exactly one `{{strings a.b}}`: the object at that path with every number and boolean
    /// turned into a string and nulls dropped (HubSpot property values are strings).
    Strings(Vec<String>),
    /// A handlebars template registered under this name.
    Hb(String),
}

/// A compiled JSON tree whose string leaves are templates.
#[derive(Debug, Clone)]
pub enum TplTree {
    /// A non-string leaf.
    Lit(Value),
    /// A string leaf.
    Str(Tpl),
    /// An array.
    Arr(Vec<TplTree>),
    /// An object (keys in order; `...` spreads).
    Obj(Vec<(String, TplTree)>),
}

/// The registry every template of one connector spec is compiled into.
pub struct Templates {
    hb: Handlebars<'static>,
    next: AtomicUsize,
}

impl std::fmt::Debug for Templates {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Templates").finish_non_exhaustive()
    }
}

impl Default for Templates {
    fn default() -> Self {
        Self::new()
    }
}

fn soql_helper(
    h: &handlebars::Helper<'_>,
    _: &Handlebars<'_>,
    _: &handlebars::Context,
    _: &mut handlebars::RenderContext<'_, '_>,
    out: &mut dyn handlebars::Output,
) -> handlebars::HelperResult {
    let v = h.param(0).map(|p| p.value().clone()).unwrap_or(Value::Null);
    let s = match v {
        Value::String(s) => s,
        Value::Null => String::new(),
        other => other.to_string(),
    };
    out.write(&s.replace('\\', "\\\\").replace('\'', "\\'"))?;
    Ok(())
}

/// `{{emailDomain x}}`: the domain of an e-mail address, trimmed and lowercased (`Ada@Example.COM`
/// → `example.com`); empty when `x` is not an address.
fn email_domain_helper(
    h: &handlebars::Helper<'_>,
    _: &Handlebars<'_>,
    _: &handlebars::Context,
    _: &mut handlebars::RenderContext<'_, '_>,
    out: &mut dyn handlebars::Output,
) -> handlebars::HelperResult {
    let v = h.param(0).map(|p| p.value().clone()).unwrap_or(Value::Null);
    out.write(&email_domain(v.as_str().unwrap_or_default()))?;
    Ok(())
}

/// `{{businessDomain x}}`: [`email_domain`], but empty for the domains of consumer mail
/// providers (`gmail.com`, `outlook.com`, …), which name no company.
fn business_domain_helper(
    h: &handlebars::Helper<'_>,
    _: &Handlebars<'_>,
    _: &handlebars::Context,
    _: &mut handlebars::RenderContext<'_, '_>,
    out: &mut dyn handlebars::Output,
) -> handlebars::HelperResult {
    let v = h.param(0).map(|p| p.value().clone()).unwrap_or(Value::Null);
    let d = email_domain(v.as_str().unwrap_or_default());
    if !FREE_MAIL.contains(&d.as_str()) {
        out.write(&d)?;
    }
    Ok(())
}

/// Consumer mail providers' domains: an address there says nothing of the person's company.
const FREE_MAIL: &[&str] = &[
    "163.com",
    "aol.com",
    "comcast.net",
    "gmail.com",
    "gmx.com",
    "gmx.de",
    "gmx.net",
    "googlemail.com",
    "hotmail.co.uk",
    "hotmail.com",
    "hotmail.fr",
    "icloud.com",
    "live.com",
    "mac.com",
    "mail.com",
    "mail.ru",
    "me.com",
    "msn.com",
    "outlook.com",
    "proton.me",
    "protonmail.com",
    "qq.com",
    "web.de",
    "yahoo.co.uk",
    "yahoo.com",
    "yahoo.fr",
    "yandex.ru",
    "zoho.com",
];

/// The domain of an e-mail address, trimmed and lowercased; empty when `s` is not an address
/// (the `emailDomain` template helper).
pub fn email_domain(s: &str) -> String {
    let s = s.trim();
    match s.rsplit_once('@') {
        Some((local, domain))
            if !local.is_empty()
                && domain.contains('.')
                && !domain.starts_with('.')
                && !domain.ends_with('.')
                && domain
                    .chars()
                    .all(|c| c.is_alphanumeric() || c == '.' || c == '-') =>
        {
            domain.to_lowercase()
        }
        _ => String::new(),
    }
}

impl Templates {
    /// An empty registry: the mapping templates' helpers (`json`, `default`, `upper`, `lower`,
    /// `formatDate`, no HTML escaping), `soql` (a string escaped for a SOQL literal),
    /// `emailDomain` (the domain of an e-mail address) and `businessDomain` (the same, empty for
    /// consumer mail providers).
    pub fn new() -> Self {
        // The mapping templates' registry (no escaping; json, default, upper, lower,
        // formatDate), plus the request-only `soql` helper.
        let mut hb = crate::template::new_registry();
        hb.register_helper("soql", Box::new(soql_helper));
        hb.register_helper("emailDomain", Box::new(email_domain_helper));
        hb.register_helper("businessDomain", Box::new(business_domain_helper));
        Self {
            hb,
            next: AtomicUsize::new(0),
        }
    }

    /// Compile one string.
    pub fn compile(&mut self, s: &str) -> Result<Tpl, TemplateError> {
        if !s.contains("{{") {
            return Ok(Tpl::Lit(s.to_string()));
        }
        if let Some(path) = exact_path(s) {
            return Ok(Tpl::Path(path));
        }
        if let Some(path) = s
            .trim()
            .strip_prefix("{{")
            .and_then(|r| r.strip_suffix("}}"))
            .and_then(|r| r.trim().strip_prefix("strings "))
            .and_then(|r| exact_path(&format!("{{{{{}}}}}", r.trim())))
        {
            return Ok(Tpl::Strings(path));
        }
        let name = format!("t{}", self.next.fetch_add(1, Ordering::Relaxed));
        // The engine's one template compiler, with its limits (size, tags, nesting).
        let t = crate::template::compile(s).map_err(|e| TemplateError::Compile {
            // A refused template can be megabytes long: the message quotes its start.
            template: crate::expr::excerpt(s, 0).into_owned(),
            reason: e.reason,
        })?;
        self.hb.register_template(&name, t);
        Ok(Tpl::Hb(name))
    }

    /// Compile a JSON tree.
    pub fn compile_tree(&mut self, v: &Value) -> Result<TplTree, TemplateError> {
        Ok(match v {
            Value::String(s) => TplTree::Str(self.compile(s)?),
            Value::Array(a) => TplTree::Arr(
                a.iter()
                    .map(|x| self.compile_tree(x))
                    .collect::<Result<_, _>>()?,
            ),
            Value::Object(m) => TplTree::Obj(
                m.iter()
                    .map(|(k, x)| Ok((k.clone(), self.compile_tree(x)?)))
                    .collect::<Result<_, TemplateError>>()?,
            ),
            other => TplTree::Lit(other.clone()),
        })
    }

    /// Render to a JSON value (`None` when an exact path is missing).
    pub fn value(&self, t: &Tpl, ctx: &Value) -> Result<Option<Value>, TemplateError> {
        Ok(match t {
            Tpl::Lit(s) => Some(Value::String(s.clone())),
            Tpl::Path(p) => lookup(ctx, p).cloned(),
            Tpl::Strings(p) => lookup(ctx, p).map(|v| match v {
                Value::Object(m) => Value::Object(
                    m.iter()
                        .filter(|(_, x)| !x.is_null())
                        .map(|(k, x)| {
                            let x = match x {
                                Value::Number(_) | Value::Bool(_) => Value::String(x.to_string()),
                                other => other.clone(),
                            };
                            (k.clone(), x)
                        })
                        .collect(),
                ),
                other => other.clone(),
            }),
            Tpl::Hb(name) => Some(Value::String(
                self.hb
                    .render(name, ctx)
                    .map_err(|e| TemplateError::Render(e.to_string()))?,
            )),
        })
    }

    /// Render to a string (missing is empty, non-strings as JSON text).
    pub fn string(&self, t: &Tpl, ctx: &Value) -> Result<String, TemplateError> {
        Ok(match self.value(t, ctx)? {
            None | Some(Value::Null) => String::new(),
            Some(Value::String(s)) => s,
            Some(v) => v.to_string(),
        })
    }

    /// Render a JSON tree (`None` when the root is a missing exact path).
    pub fn tree(&self, t: &TplTree, ctx: &Value) -> Result<Option<Value>, TemplateError> {
        Ok(match t {
            TplTree::Lit(v) => Some(v.clone()),
            TplTree::Str(s) => self.value(s, ctx)?,
            TplTree::Arr(a) => {
                let mut out = Vec::with_capacity(a.len());
                for x in a {
                    if let Some(v) = self.tree(x, ctx)? {
                        out.push(v);
                    }
                }
                Some(Value::Array(out))
            }
            TplTree::Obj(m) => {
                let mut out = Map::new();
                for (k, x) in m {
                    match self.tree(x, ctx)? {
                        Some(Value::Object(spread)) if k == "..." => out.extend(spread),
                        Some(_) | None if k == "..." => {}
                        Some(v) => {
                            out.insert(k.clone(), v);
                        }
                        None => {}
                    }
                }
                Some(Value::Object(out))
            }
        })
    }
}

/// `{{ a.b.c }}` → `["a","b","c"]` when the template is exactly one plain path.
fn exact_path(s: &str) -> Option<Vec<String>> {
    let inner = s.trim().strip_prefix("{{")?.strip_suffix("}}")?.trim();
    if inner.is_empty()
        || inner.contains("{{")
        || inner.contains("}}")
        || !inner
            .chars()
            .all(|c| c.is_alphanumeric() || matches!(c, '_' | '.' | '-'))
    {
        return None;
    }
    Some(inner.split('.').map(str::to_string).collect())
}

/// The value at a dotted path (array indices as numbers).
pub fn lookup<'a>(v: &'a Value, path: &[String]) -> Option<&'a Value> {
    let mut cur = v;
    for seg in path {
        cur = match cur {
            Value::Object(m) => m.get(seg)?,
            Value::Array(a) => a.get(seg.parse::<usize>().ok()?)?,
            _ => return None,
        };
    }
    Some(cur)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;

    fn check(template: Value, ctx: Value, expected: Option<Value>) {
        let mut t = Templates::new();
        let c = t.compile_tree(&template).unwrap();
        assert_eq!(t.tree(&c, &ctx).unwrap(), expected);
    }

    #[test]
    fn exact_paths_keep_types_and_missing_keys_drop() {
        check(
            json!({"properties": "{{payload}}", "n": "{{payload.n}}", "gone": "{{nope}}"}),
            json!({"payload": {"n": 3}}),
            Some(json!({"properties": {"n": 3}, "n": 3})),
        );
    }

    #[test]
    fn strings_turns_scalars_into_strings() {
        check(
            json!({"properties": "{{strings payload}}"}),
            json!({"payload": {"n": 85, "b": true, "s": "x", "z": null}}),
            Some(json!({"properties": {"n": "85", "b": "true", "s": "x"}})),
        );
    }

    #[test]
    fn email_domain_is_the_lowercased_domain_of_an_address() {
        check(
            json!({"a": "{{emailDomain p.e}}", "b": "{{emailDomain p.x}}", "c": "{{emailDomain p.n}}"}),
            json!({"p": {"e": " Ada@Example.COM ", "x": "not an address", "n": 5}}),
            Some(json!({"a": "example.com", "b": "", "c": ""})),
        );
        check(
            json!({"a": "{{businessDomain p.e}}", "b": "{{businessDomain p.g}}"}),
            json!({"p": {"e": "ada@Analytical.example", "g": "Ada.L@GMail.com"}}),
            Some(json!({"a": "analytical.example", "b": ""})),
        );
        for bad in [
            "@x.com",
            "a@",
            "a@localhost",
            "a@.com",
            "a@x.com.",
            "a@x y.com",
        ] {
            assert_eq!(email_domain(bad), "", "{bad}");
        }
        assert_eq!(email_domain("a@b@sub.x-y.org"), "sub.x-y.org");
    }

    #[test]
    fn soql_escapes_quotes() {
        check(
            json!("SELECT Id FROM Lead WHERE Email = '{{soql match.value}}'"),
            json!({"match": {"value": "o'neil@x.com"}}),
            Some(json!("SELECT Id FROM Lead WHERE Email = 'o\\'neil@x.com'")),
        );
    }

    #[test]
    fn spread_merges_and_mixed_text_renders_unescaped() {
        check(
            json!({"attributes": {"type": "Lead"}, "...": "{{payload}}", "s": "<{{payload.a}}> & {{json payload}}"}),
            json!({"payload": {"a": "x&y"}}),
            Some(
                json!({"attributes": {"type": "Lead"}, "a": "x&y", "s": "<x&y> & {\"a\":\"x&y\"}"}),
            ),
        );
    }
}
