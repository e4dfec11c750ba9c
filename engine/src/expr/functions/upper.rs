//! `upper(text)`: uppercase.

use super::{Example, FunctionDef, s, text_arg};

/// `upper(text)`.
pub static DEF: FunctionDef = FunctionDef {
    name: "upper",
    min_args: 1,
    max_args: 1,
    absent_propagates: true,
    summary: "Uppercases text (Unicode-aware); numbers and booleans are turned into text first.",
    examples: &[
        Example {
            expr: "upper('high')",
            result: r#""HIGH""#,
        },
        Example {
            expr: "upper('straße')",
            result: r#""STRASSE""#,
        },
    ],
    call: |args, _| Ok(s(text_arg(&args[0], "the argument")?.to_uppercase())),
};
