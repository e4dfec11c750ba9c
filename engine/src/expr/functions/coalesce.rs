//! `coalesce(a, b, …)`: the first argument that is present and not null.

use super::{Example, FunctionDef};
use crate::expr::Val;

/// `coalesce(a, b, …)`.
pub static DEF: FunctionDef = FunctionDef {
    name: "coalesce",
    min_args: 1,
    max_args: usize::MAX,
    absent_propagates: false,
    summary: "The first argument that is neither absent nor null (unlike `||`, keeps `0`, \
              `false` and `\"\"`); absent when there is none.",
    examples: &[
        Example {
            expr: "coalesce(missing, null, 0, 5)",
            result: "0",
        },
        Example {
            expr: "coalesce(missing, phone)",
            result: r#""(555) 010-4477""#,
        },
        Example {
            expr: "coalesce(missing)",
            result: "absent",
        },
    ],
    call: |args, _| {
        Ok(args
            .into_iter()
            .find(|v| !v.is_nothing())
            .unwrap_or(Val::Absent))
    },
};
