//! `starts_with(text, prefix)`: whether text begins with a prefix.

use super::{Example, FunctionDef};
use crate::expr::Val;

/// `starts_with(text, prefix)`.
pub static DEF: FunctionDef = FunctionDef {
    name: "starts_with",
    min_args: 2,
    max_args: 2,
    absent_propagates: false,
    summary: "Whether text begins with a prefix (case-sensitive). Absent, null and compound \
              values begin with nothing; numbers are read as their text.",
    examples: &[
        Example {
            expr: "starts_with('utm:google', 'utm:')",
            result: "true",
        },
        Example {
            expr: "starts_with(customer_name, 'ada')",
            result: "false",
        },
        Example {
            expr: "starts_with(missing, 'utm:')",
            result: "false",
        },
        Example {
            expr: "starts_with(2024, '20')",
            result: "true",
        },
    ],
    call: |args, _| {
        Ok(Val::Bool(match (args[0].text(), args[1].text()) {
            (Some(t), Some(p)) => t.starts_with(p.as_ref()),
            _ => false,
        }))
    },
};
