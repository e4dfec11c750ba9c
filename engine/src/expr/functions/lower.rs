//! `lower(text)`: lowercase.

use super::{Example, FunctionDef, s, text_arg};

/// `lower(text)`.
pub static DEF: FunctionDef = FunctionDef {
    name: "lower",
    min_args: 1,
    max_args: 1,
    absent_propagates: true,
    summary: "Lowercases text (Unicode-aware); numbers and booleans are turned into text first.",
    examples: &[
        Example {
            expr: "lower('KitChen')",
            result: r#""kitchen""#,
        },
        Example {
            expr: "lower('ÉCOLE')",
            result: r#""école""#,
        },
        Example {
            expr: "lower(missing)",
            result: "absent",
        },
    ],
    call: |args, _| Ok(s(text_arg(&args[0], "the argument")?.to_lowercase())),
};
