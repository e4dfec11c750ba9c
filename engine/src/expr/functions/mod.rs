//! Built-in functions of the expression dialect: one file per function, each with its
//! documentation and examples; the examples are run as tests (`all_examples_hold`).

pub mod add_days;
pub mod add_hours;
pub mod coalesce;
pub mod concat;
pub mod contains;
pub mod exists;
pub mod first_name;
pub mod format_date;
pub mod last_name;
pub mod len;
pub mod lower;
pub mod matches;
pub mod max;
pub mod min;
pub mod normalize_email;
pub mod normalize_phone;
pub mod now;
pub mod number;
pub mod parse_date;
pub mod round;
pub mod starts_with;
pub mod strip_prefix;
pub mod today;
pub mod trim;
pub mod upper;

use super::{EvalCtx, Val};
use std::borrow::Cow;

/// One documented example: an expression and its result as JSON (`absent` for none). Examples
/// run with the clock at `2026-01-15T10:30:00Z` over [`EXAMPLE_RECORD`].
#[derive(Debug, Clone, Copy)]
pub struct Example {
    /// The expression.
    pub expr: &'static str,
    /// Its result: JSON text, or `absent`.
    pub result: &'static str,
}

/// The record examples are evaluated against.
pub const EXAMPLE_RECORD: &str = r#"{"customer_name": "Ada King Lovelace", "phone": "(555) 010-4477", "email": " Ada@Example.COM ", "score": 87.456, "tags": ["a", "b"]}"#;

/// The signature of a function's implementation.
pub type Call = for<'a> fn(Vec<Val<'a>>, &EvalCtx) -> Result<Val<'a>, String>;

/// A built-in function.
#[derive(Debug)]
pub struct FunctionDef {
    /// Name as written in expressions.
    pub name: &'static str,
    /// Fewest arguments.
    pub min_args: usize,
    /// Most arguments (`usize::MAX`: any number).
    pub max_args: usize,
    /// Whether an absent argument makes the result absent (without calling the function).
    pub absent_propagates: bool,
    /// What it does.
    pub summary: &'static str,
    /// Examples (docs and tests).
    pub examples: &'static [Example],
    /// The implementation.
    pub call: Call,
}

/// Every built-in function (one line per function).
pub static ALL: &[&FunctionDef] = &[
    &today::DEF,
    &now::DEF,
    &add_days::DEF,
    &add_hours::DEF,
    &format_date::DEF,
    &parse_date::DEF,
    &lower::DEF,
    &upper::DEF,
    &trim::DEF,
    &concat::DEF,
    &len::DEF,
    &contains::DEF,
    &matches::DEF,
    &round::DEF,
    &coalesce::DEF,
    &first_name::DEF,
    &last_name::DEF,
    &normalize_phone::DEF,
    &normalize_email::DEF,
    &number::DEF,
    &exists::DEF,
    &max::DEF,
    &min::DEF,
    &starts_with::DEF,
    &strip_prefix::DEF,
];

/// A function by name.
pub fn lookup(name: &str) -> Option<&'static FunctionDef> {
    ALL.iter().copied().find(|f| f.name == name)
}

/// Text of an argument, or an error naming what it is.
pub(crate) fn text_arg<'v>(v: &'v Val<'_>, what: &str) -> Result<Cow<'v, str>, String> {
    v.text()
        .ok_or_else(|| format!("{what} must be text, found {}", v.kind_name()))
}

/// An owned string result.
pub(crate) fn s(v: String) -> Val<'static> {
    Val::Str(Cow::Owned(v))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::expr::{Expr, ExprEnv};
    use indexmap::IndexMap;

    #[test]
    fn all_examples_hold() {
        let record: serde_json::Value = serde_json::from_str(EXAMPLE_RECORD).expect("json");
        let ctx = EvalCtx {
            now: "2026-01-15T10:30:00Z".parse().expect("time"),
        };
        let lookups = IndexMap::new();
        let mut count = 0;
        for f in ALL {
            assert!(!f.examples.is_empty(), "{} has no examples", f.name);
            for ex in f.examples {
                let e = Expr::compile(ex.expr, &ExprEnv::new(&lookups))
                    .unwrap_or_else(|e| panic!("{}: {e}", ex.expr));
                let got = e
                    .eval(&record, &ctx)
                    .unwrap_or_else(|e| panic!("{}: {e}", ex.expr));
                let want: Option<serde_json::Value> = if ex.result == "absent" {
                    None
                } else {
                    Some(serde_json::from_str(ex.result).expect("example result is json"))
                };
                assert_eq!(got.to_json(), want, "{}", ex.expr);
                count += 1;
            }
        }
        assert!(count >= 40, "{count}");
    }

    #[test]
    fn names_are_unique() {
        for (i, f) in ALL.iter().enumerate() {
            assert!(ALL[i + 1..].iter().all(|g| g.name != f.name), "{}", f.name);
        }
    }
}
