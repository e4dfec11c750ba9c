//! `min(a, b, …)`: the smallest number.

use super::{Example, FunctionDef};

/// `min(a, b, …)`.
pub static DEF: FunctionDef = FunctionDef {
    name: "min",
    min_args: 1,
    max_args: usize::MAX,
    absent_propagates: true,
    summary: "The smallest of its arguments, numbers or numeric text (returned as given). \
              Absent when any argument is absent; other values are an error.",
    examples: &[
        Example {
            expr: "min(1, 2.5, -3)",
            result: "-3",
        },
        Example {
            expr: "min(' 0.5', 1)",
            result: "0.5",
        },
        Example {
            expr: "min(score, missing)",
            result: "absent",
        },
    ],
    call: |args, _| super::max::extreme(args, std::cmp::Ordering::Less),
};
