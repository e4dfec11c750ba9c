//! `matches(text, regex)`: regular-expression test (Rust `regex` syntax).

use super::{Example, FunctionDef, text_arg};
use crate::expr::Val;

/// `matches(text, regex)`.
pub static DEF: FunctionDef = FunctionDef {
    name: "matches",
    min_args: 2,
    max_args: 2,
    absent_propagates: true,
    summary: "Whether text matches a regular expression (unanchored; use `^…$` to anchor). A \
              constant pattern is compiled at load and reported there when invalid.",
    examples: &[
        Example {
            expr: "matches('ada@example.com', '^[^@]+@[^@]+$')",
            result: "true",
        },
        Example {
            expr: "matches('555-0100', '^\\d{3}$')",
            result: "false",
        },
        Example {
            expr: "matches(missing, 'x')",
            result: "absent",
        },
    ],
    call: |args, _| {
        let t = text_arg(&args[0], "the text")?;
        let p = text_arg(&args[1], "the pattern")?;
        let re = regex::Regex::new(&p).map_err(|_| format!("invalid regex `{p}`"))?;
        Ok(Val::Bool(re.is_match(&t)))
    },
};
