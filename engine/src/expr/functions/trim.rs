//! `trim(text)`: strip surrounding whitespace.

use super::{Example, FunctionDef, s, text_arg};

/// `trim(text)`.
pub static DEF: FunctionDef = FunctionDef {
    name: "trim",
    min_args: 1,
    max_args: 1,
    absent_propagates: true,
    summary: "Removes leading and trailing whitespace (Unicode).",
    examples: &[
        Example {
            expr: "trim('  Ada \\n')",
            result: r#""Ada""#,
        },
        Example {
            expr: "trim('')",
            result: r#""""#,
        },
    ],
    call: |args, _| Ok(s(text_arg(&args[0], "the argument")?.trim().to_string())),
};
