//! A deliberately tiny expression adapter over `evalexpr` for attribution conditions and values,
//! so that it can later be swapped for the engine's own `crate::expr` without touching callers.
//!
//! Accepted beyond evalexpr's own syntax: single-quoted strings (`'closedwon'`) and dotted field
//! paths (`properties.dealstage`, resolved into the JSON record; array elements by number,
//! `lines.0.amount`). Every number is a float (JSON numbers and integer literals alike), so
//! `amount / 100` divides exactly and `lead_score == 85` matches `85.0`. A missing field is
//! absent (evalexpr's empty value): a condition over it that cannot be evaluated is false and a
//! value is `None`. Extra functions: `number(x)` (numeric strings → numbers, absent otherwise),
//! `exists(x)` (present and not an empty string), `lower(x)`, `upper(x)`, `starts_with(s, p)`,
//! `strip_prefix(s, p)` (absent when `s` does not start with `p`). evalexpr's `str::regex_*`
//! functions are not available (its `regex` feature is off).

use evalexpr::{
    Context, DefaultNumericTypes, EvalexprError, EvalexprResult, Node, Value,
    error::EvalexprResultValue,
};

type V = Value<DefaultNumericTypes>;

/// An expression compiled once at spec load.
#[derive(Debug, Clone)]
pub struct CompiledExpr {
    /// Set when the whole expression is one field path: read directly, no evaluator.
    bare_path: Option<Vec<String>>,
    tree: Node<DefaultNumericTypes>,
    /// The identifiers the expression reads, each split into path segments.
    vars: Vec<(String, Vec<String>)>,
    /// The source text, for messages.
    text: String,
}

impl CompiledExpr {
    /// Compile an expression; the error says what is wrong with it.
    pub fn compile(text: &str) -> Result<CompiledExpr, String> {
        let rewritten = rewrite(text)?;
        let tree = evalexpr::build_operator_tree::<DefaultNumericTypes>(&rewritten)
            .map_err(|e| e.to_string())?;
        let mut vars: Vec<(String, Vec<String>)> = Vec::new();
        for id in tree.iter_read_variable_identifiers() {
            if !vars.iter().any(|(v, _)| v == id) {
                vars.push((id.to_string(), id.split('.').map(str::to_string).collect()));
            }
        }
        let trimmed = text.trim();
        let bare_path = (vars.len() == 1 && vars[0].0 == trimmed && tree.iter().count() <= 2)
            .then(|| vars[0].1.clone());
        Ok(CompiledExpr {
            bare_path,
            tree,
            vars,
            text: text.to_string(),
        })
    }

    /// The expression as written.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// Evaluate as a condition: true only when it evaluates to boolean true.
    pub fn eval_bool(&self, record: &serde_json::Value) -> bool {
        matches!(self.eval(record), Some(Value::Boolean(true)))
    }

    /// Evaluate to a JSON value; `None` when absent or when evaluation fails.
    pub fn eval_value(&self, record: &serde_json::Value) -> Option<serde_json::Value> {
        self.eval(record).and_then(|v| to_json(&v))
    }

    fn eval(&self, record: &serde_json::Value) -> Option<V> {
        if let Some(path) = &self.bare_path {
            // Same result as the evaluator's, without building a context.
            return match lookup(record, path).map(from_json) {
                None | Some(V::Empty) => None,
                v => v,
            };
        }
        let ctx = Ctx {
            vars: self
                .vars
                .iter()
                .map(|(name, path)| {
                    (
                        name.as_str(),
                        lookup(record, path).map_or(V::Empty, from_json),
                    )
                })
                .collect(),
        };
        match self.tree.eval_with_context(&ctx) {
            Ok(V::Empty) | Err(_) => None,
            Ok(v) => Some(v),
        }
    }
}

/// Follow a dotted path into a JSON value.
fn lookup<'a>(value: &'a serde_json::Value, path: &[String]) -> Option<&'a serde_json::Value> {
    let mut cur = value;
    for seg in path {
        cur = match cur {
            serde_json::Value::Object(m) => m.get(seg)?,
            serde_json::Value::Array(a) => a.get(seg.parse::<usize>().ok()?)?,
            _ => return None,
        };
    }
    Some(cur)
}

fn from_json(v: &serde_json::Value) -> V {
    match v {
        serde_json::Value::Null | serde_json::Value::Object(_) => V::Empty,
        serde_json::Value::Bool(b) => V::Boolean(*b),
        serde_json::Value::Number(n) => n.as_f64().map_or(V::Empty, V::Float),
        serde_json::Value::String(s) => V::String(s.clone()),
        serde_json::Value::Array(a) => V::Tuple(a.iter().map(from_json).collect()),
    }
}

fn to_json(v: &V) -> Option<serde_json::Value> {
    Some(match v {
        V::Empty => return None,
        V::Boolean(b) => serde_json::Value::Bool(*b),
        V::Int(i) => serde_json::Value::from(*i),
        V::Float(f) => serde_json::Number::from_f64(*f).map(serde_json::Value::Number)?,
        V::String(s) => serde_json::Value::String(s.clone()),
        V::Tuple(t) => serde_json::Value::Array(t.iter().filter_map(to_json).collect()),
    })
}

/// Turn single-quoted strings into evalexpr's double-quoted ones and integer literals into
/// float literals, leaving double-quoted strings alone.
fn rewrite(text: &str) -> Result<String, String> {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len() + 8);
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c == '\'' || c == '"' {
            let quote = c;
            out.push('"');
            i += 1;
            loop {
                let Some(&d) = chars.get(i) else {
                    return Err(format!("unterminated string starting with {quote}"));
                };
                i += 1;
                match d {
                    '\\' => {
                        let Some(&e) = chars.get(i) else {
                            return Err("unterminated escape".into());
                        };
                        i += 1;
                        if e == '\'' {
                            out.push('\'');
                        } else {
                            out.push('\\');
                            out.push(e);
                        }
                    }
                    '"' if quote == '\'' => out.push_str("\\\""),
                    d if d == quote => break,
                    d => out.push(d),
                }
            }
            out.push('"');
        } else if c.is_ascii_digit()
            && !i
                .checked_sub(1)
                .and_then(|p| chars.get(p))
                .is_some_and(|p| p.is_alphanumeric() || *p == '_' || *p == '.')
        {
            let start = i;
            while chars.get(i).is_some_and(char::is_ascii_digit) {
                i += 1;
            }
            out.extend(&chars[start..i]);
            let next = chars.get(i);
            if !next.is_some_and(|n| *n == '.' || *n == 'e' || *n == 'E' || n.is_alphanumeric()) {
                out.push_str(".0");
            }
        } else {
            out.push(c);
            i += 1;
        }
    }
    Ok(out)
}

struct Ctx<'a> {
    vars: Vec<(&'a str, V)>,
}

impl Context for Ctx<'_> {
    type NumericTypes = DefaultNumericTypes;

    fn get_value(&self, identifier: &str) -> Option<&V> {
        self.vars
            .iter()
            .find(|(n, _)| *n == identifier)
            .map(|(_, v)| v)
    }

    fn call_function(&self, identifier: &str, argument: &V) -> EvalexprResultValue {
        match identifier {
            "number" => Ok(match argument {
                V::Float(f) => V::Float(*f),
                V::Int(i) => V::Float(*i as f64),
                V::String(s) => s.trim().parse::<f64>().map_or(V::Empty, V::Float),
                _ => V::Empty,
            }),
            "exists" => Ok(V::Boolean(match argument {
                V::Empty => false,
                V::String(s) => !s.trim().is_empty(),
                _ => true,
            })),
            "lower" => Ok(match argument {
                V::String(s) => V::String(s.to_lowercase()),
                other => other.clone(),
            }),
            "starts_with" | "strip_prefix" => {
                let (subject, prefix) = match argument {
                    V::Tuple(t) if t.len() == 2 => (&t[0], &t[1]),
                    _ => return Ok(V::Empty),
                };
                let (V::String(subject), V::String(prefix)) = (subject, prefix) else {
                    return Ok(if identifier == "starts_with" {
                        V::Boolean(false)
                    } else {
                        V::Empty
                    });
                };
                Ok(match (identifier, subject.strip_prefix(prefix.as_str())) {
                    ("starts_with", rest) => V::Boolean(rest.is_some()),
                    (_, Some(rest)) => V::String(rest.to_string()),
                    (_, None) => V::Empty,
                })
            }
            "upper" => Ok(match argument {
                V::String(s) => V::String(s.to_uppercase()),
                other => other.clone(),
            }),
            _ => Err(EvalexprError::FunctionIdentifierNotFound(
                identifier.to_string(),
            )),
        }
    }

    fn are_builtin_functions_disabled(&self) -> bool {
        false
    }

    fn set_builtin_functions_disabled(
        &mut self,
        _: bool,
    ) -> EvalexprResult<(), DefaultNumericTypes> {
        Err(EvalexprError::ContextNotMutable)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn check_bool(expr: &str, record: serde_json::Value, expected: bool) {
        let e = CompiledExpr::compile(expr).expect("compiles");
        assert_eq!(e.eval_bool(&record), expected, "{expr} on {record}");
    }

    #[test]
    fn single_quotes_and_dotted_paths() {
        let r = json!({"properties": {"dealstage": "closedwon", "score": 85}});
        check_bool("properties.dealstage == 'closedwon'", r.clone(), true);
        check_bool("properties.dealstage == \"closedwon\"", r.clone(), true);
        check_bool("properties.dealstage == 'closedlost'", r.clone(), false);
        check_bool("properties.score == 85", r.clone(), true);
        check_bool(
            "properties.score > 80 && properties.dealstage == 'closedwon'",
            r,
            true,
        );
    }

    #[test]
    fn missing_fields_are_absent() {
        let r = json!({"properties": {}});
        check_bool("properties.dealstage == 'closedwon'", r.clone(), false);
        check_bool("properties.score > 80", r.clone(), false);
        check_bool("exists(properties.email)", r.clone(), false);
        let e = CompiledExpr::compile("amount / 100").expect("compiles");
        assert_eq!(e.eval_value(&r), None);
    }

    #[test]
    fn integer_division_is_exact() {
        let e = CompiledExpr::compile("amount / 100").expect("compiles");
        assert_eq!(e.eval_value(&json!({"amount": 12345})), Some(json!(123.45)));
        let e = CompiledExpr::compile("number(properties.amount) * 2").expect("compiles");
        assert_eq!(
            e.eval_value(&json!({"properties": {"amount": "50.5"}})),
            Some(json!(101.0))
        );
    }

    #[test]
    fn arrays_and_quotes_inside_strings() {
        let e = CompiledExpr::compile("lines.1.name").expect("compiles");
        assert_eq!(
            e.eval_value(&json!({"lines": [{"name": "a"}, {"name": "b"}]})),
            Some(json!("b"))
        );
        check_bool(
            r#"name == 'it\'s "x"'"#,
            json!({"name": "it's \"x\""}),
            true,
        );
        check_bool("str::to_lowercase(s) == 'abc'", json!({"s": "AbC"}), true);
        check_bool("starts_with(c, 'utm:')", json!({"c": "utm:google"}), true);
        check_bool("starts_with(c, 'utm:')", json!({}), false);
        let e = CompiledExpr::compile("strip_prefix(c, 'utm:')").expect("compiles");
        assert_eq!(
            e.eval_value(&json!({"c": "utm:google"})),
            Some(json!("google"))
        );
        assert_eq!(e.eval_value(&json!({"c": "google"})), None);
    }

    #[test]
    fn bare_paths_read_like_the_evaluator() {
        let record = json!({"a": {"b": 85, "c": "x", "d": true, "e": [1, {"f": 2}], "o": {}}});
        for path in ["a.b", "a.c", "a.d", "a.e", "a.o", "a.missing", "a.e.1.f"] {
            let fast = CompiledExpr::compile(path).expect("compiles");
            assert!(fast.bare_path.is_some(), "{path}");
            // `(path)` goes through evalexpr.
            let slow = CompiledExpr::compile(&format!("({path})")).expect("compiles");
            assert!(slow.bare_path.is_none(), "{path}");
            assert_eq!(fast.eval_value(&record), slow.eval_value(&record), "{path}");
            assert_eq!(fast.eval_bool(&record), slow.eval_bool(&record), "{path}");
        }
        assert!(
            CompiledExpr::compile("true")
                .expect("compiles")
                .bare_path
                .is_none()
        );
    }

    #[test]
    fn syntax_errors_are_reported_at_compile() {
        assert!(CompiledExpr::compile("a == 'x").is_err());
        assert!(CompiledExpr::compile("a == (1").is_err());
    }
}
