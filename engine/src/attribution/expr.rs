//! Attribution's view of the engine's expression dialect ([`crate::expr`]): compiles each spec
//! expression once and evaluates it against a record, optionally with the conversion's
//! `journey` object beside it.
//!
//! The dialect is the mapping specs' one (JS-style `==`, `&&`, `||`, `!`, `a ? b : c`, single- or
//! double-quoted strings, function calls), with dotted field paths into the JSON record (array
//! elements by number: `associations.contacts.0`). A missing field is absent: a comparison with
//! it is false, arithmetic over it is absent. Functions attribution specs use beyond the
//! mapping ones are ordinary dialect functions (`number`, `exists`, `starts_with`,
//! `strip_prefix`, `max`, `min`; see `expr/functions/`).
//!
//! Paths are split into segments at compile time, and `journey.*` paths are bound to the
//! journey object, so evaluation never copies the record. A run-time failure (e.g. `x * 2` on
//! text) makes the expression absent — a condition is then false and a value missing, which the
//! plan reports where it matters (a conversion without a value or time) — rather than failing
//! the whole run.

use crate::expr::{EvalCtx, Expr, ExprEnv, ExprError, Val};
use serde_json::Value;

/// An expression compiled once at spec load.
#[derive(Debug, Clone)]
pub struct CompiledExpr {
    expr: Expr,
    /// Per variable of `expr`: where it is read from.
    paths: Vec<VarPath>,
}

#[derive(Debug, Clone)]
struct VarPath {
    /// `journey.…`: read from the journey object when there is one.
    journey: bool,
    /// Segments (for `journey.…`, without the leading `journey`).
    segs: Vec<String>,
    /// The whole path split, for evaluation without a journey.
    full: Vec<String>,
}

/// What an expression is evaluated against.
#[derive(Debug, Clone, Copy)]
pub struct Scope<'a> {
    /// The record.
    pub record: &'a Value,
    /// The conversion's `journey` object, which shadows a `journey` field of the record.
    pub journey: Option<&'a Value>,
    /// The clock for `today()` / `now()`.
    pub ctx: &'a EvalCtx,
}

impl CompiledExpr {
    /// Compile an expression.
    pub fn compile(text: &str) -> Result<CompiledExpr, ExprError> {
        let expr = Expr::compile(text, &ExprEnv::empty())?;
        let paths = expr
            .vars
            .iter()
            .map(|v| {
                let full: Vec<String> = v.split('.').map(str::to_string).collect();
                let journey = full.first().is_some_and(|s| s == "journey");
                VarPath {
                    journey,
                    segs: if journey {
                        full[1..].to_vec()
                    } else {
                        Vec::new()
                    },
                    full,
                }
            })
            .collect();
        Ok(CompiledExpr { expr, paths })
    }

    /// The expression as written.
    pub fn text(&self) -> &str {
        &self.expr.source
    }

    /// Evaluate; a run-time failure is absent.
    pub fn eval<'a>(&'a self, scope: &Scope<'a>) -> Val<'a> {
        let get = |i: usize| -> Val<'a> {
            let p = &self.paths[i];
            let found = match (p.journey, scope.journey) {
                (true, Some(j)) => lookup(j, &p.segs),
                _ => lookup(scope.record, &p.full),
            };
            found.map_or(Val::Absent, Val::from_json)
        };
        self.expr.eval_with(&get, scope.ctx).unwrap_or(Val::Absent)
    }

    /// Evaluate as a condition: true only when the result is truthy (JS truthiness).
    pub fn eval_bool(&self, scope: &Scope<'_>) -> bool {
        self.eval(scope).truthy()
    }

    /// Evaluate to JSON; `None` when absent.
    pub fn eval_json(&self, scope: &Scope<'_>) -> Option<Value> {
        self.eval(scope).to_json()
    }
}

/// Follow path segments into a JSON value (array elements by index).
fn lookup<'a>(value: &'a Value, path: &[String]) -> Option<&'a Value> {
    let mut cur = value;
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
mod tests {
    use super::*;
    use serde_json::json;

    fn ctx() -> EvalCtx {
        EvalCtx {
            now: "2026-01-15T10:30:00Z".parse().expect("time"),
        }
    }

    fn value(expr: &str, record: &Value, journey: Option<&Value>) -> Option<Value> {
        let e = CompiledExpr::compile(expr).expect("compiles");
        let c = ctx();
        e.eval_json(&Scope {
            record,
            journey,
            ctx: &c,
        })
    }

    fn check_bool(expr: &str, record: Value, expected: bool) {
        let e = CompiledExpr::compile(expr).expect("compiles");
        let c = ctx();
        let scope = Scope {
            record: &record,
            journey: None,
            ctx: &c,
        };
        assert_eq!(e.eval_bool(&scope), expected, "{expr} on {record}");
    }

    #[test]
    fn quotes_and_dotted_paths() {
        let r = json!({"properties": {"dealstage": "closedwon", "score": 85}});
        check_bool("properties.dealstage == 'closedwon'", r.clone(), true);
        check_bool("properties.dealstage == \"closedwon\"", r.clone(), true);
        check_bool("properties.dealstage == 'closedlost'", r.clone(), false);
        check_bool("properties.score == 85.0", r.clone(), true);
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
        assert_eq!(value("amount / 100", &r, None), None);
        assert_eq!(value("number(properties.amount) * 2", &r, None), None);
    }

    #[test]
    fn division_is_exact_and_text_numbers_convert() {
        assert_eq!(
            value("amount / 100", &json!({"amount": 12345}), None),
            Some(json!(123.45))
        );
        assert_eq!(
            value(
                "number(properties.amount) * 2",
                &json!({"properties": {"amount": "50.5"}}),
                None
            ),
            Some(json!(101.0))
        );
    }

    #[test]
    fn arrays_prefixes_and_quotes_inside_strings() {
        assert_eq!(
            value(
                "lines.1.name",
                &json!({"lines": [{"name": "a"}, {"name": "b"}]}),
                None
            ),
            Some(json!("b"))
        );
        check_bool(
            r#"name == 'it\'s "x"'"#,
            json!({"name": "it's \"x\""}),
            true,
        );
        check_bool("lower(s) == 'abc'", json!({"s": "AbC"}), true);
        check_bool("starts_with(c, 'utm:')", json!({"c": "utm:google"}), true);
        check_bool("starts_with(c, 'utm:')", json!({}), false);
        let r = json!({"c": "utm:google"});
        assert_eq!(
            value("strip_prefix(c, 'utm:')", &r, None),
            Some(json!("google"))
        );
        assert_eq!(
            value("strip_prefix(c, 'utm:')", &json!({"c": "google"}), None),
            None
        );
    }

    #[test]
    fn journey_shadows_the_record_only_when_given() {
        let record = json!({"journey": {"touches": 9}, "amount": 5});
        let journey = json!({"touches": 2, "first_channel": "email"});
        assert_eq!(
            value("journey.touches", &record, Some(&journey)),
            Some(json!(2))
        );
        assert_eq!(value("journey.touches", &record, None), Some(json!(9)));
        assert_eq!(
            value(
                "journey.first_channel == 'email' && amount > 1",
                &record,
                Some(&journey)
            ),
            Some(json!(true))
        );
    }

    #[test]
    fn runtime_failures_are_absent() {
        assert_eq!(value("x * 2", &json!({"x": "abc"}), None), None);
        check_bool("x / 0 > 1", json!({"x": 3}), false);
    }

    #[test]
    fn errors_are_reported_at_compile() {
        assert!(CompiledExpr::compile("a == 'x").is_err());
        assert!(CompiledExpr::compile("a == (1").is_err());
        let e = CompiledExpr::compile("numbr(a)").expect_err("unknown function");
        assert_eq!(e.hint.as_deref(), Some("did you mean `number`?"));
    }
}
