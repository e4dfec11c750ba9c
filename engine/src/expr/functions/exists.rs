//! `exists(x)`: whether a value is there.

use super::{Example, FunctionDef};
use crate::expr::Val;

/// `exists(x)`.
pub static DEF: FunctionDef = FunctionDef {
    name: "exists",
    min_args: 1,
    max_args: 1,
    absent_propagates: false,
    summary: "Whether `x` is present: not absent, not null and not blank text. Unlike plain \
              truthiness, `0` and `false` exist (a lead score of 0 is a lead score).",
    examples: &[
        Example {
            expr: "exists(email)",
            result: "true",
        },
        Example {
            expr: "exists(missing)",
            result: "false",
        },
        Example {
            expr: "exists(null)",
            result: "false",
        },
        Example {
            expr: "exists('  ')",
            result: "false",
        },
        Example {
            expr: "exists(0)",
            result: "true",
        },
        Example {
            expr: "exists(tags)",
            result: "true",
        },
    ],
    call: |args, _| {
        Ok(Val::Bool(match &args[0] {
            Val::Absent | Val::Null => false,
            Val::Str(s) => !s.trim().is_empty(),
            _ => true,
        }))
    },
};
