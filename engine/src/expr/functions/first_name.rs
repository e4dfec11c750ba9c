//! `firstName(full)`: the first word of a full name.

use super::{Example, FunctionDef, s, text_arg};
use crate::expr::Val;

/// `firstName(full)`.
pub static DEF: FunctionDef = FunctionDef {
    name: "firstName",
    min_args: 1,
    max_args: 1,
    absent_propagates: true,
    summary: "The first word of a full name (split on whitespace); absent for a blank name.",
    examples: &[
        Example {
            expr: "firstName(customer_name)",
            result: r#""Ada""#,
        },
        Example {
            expr: "firstName('  Cher ')",
            result: r#""Cher""#,
        },
        Example {
            expr: "firstName('   ')",
            result: "absent",
        },
    ],
    call: |args, _| {
        let t = text_arg(&args[0], "the name")?;
        Ok(t.split_whitespace()
            .next()
            .map_or(Val::Absent, |w| s(w.to_string())))
    },
};
