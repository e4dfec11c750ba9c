//! `lastName(full)`: a full name without its first word.

use super::{Example, FunctionDef, s, text_arg};
use crate::expr::Val;

/// `lastName(full)`.
pub static DEF: FunctionDef = FunctionDef {
    name: "lastName",
    min_args: 1,
    max_args: 1,
    absent_propagates: true,
    summary: "Everything after the first word of a full name (words joined by one space); absent \
              for a one-word name.",
    examples: &[
        Example {
            expr: "lastName(customer_name)",
            result: r#""King Lovelace""#,
        },
        Example {
            expr: "lastName('Grace  Hopper')",
            result: r#""Hopper""#,
        },
        Example {
            expr: "lastName('Cher')",
            result: "absent",
        },
    ],
    call: |args, _| {
        let t = text_arg(&args[0], "the name")?;
        let rest: Vec<&str> = t.split_whitespace().skip(1).collect();
        Ok(if rest.is_empty() {
            Val::Absent
        } else {
            s(rest.join(" "))
        })
    },
};
