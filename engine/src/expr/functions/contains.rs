//! `contains(haystack, needle)`: substring or array membership.

use super::{Example, FunctionDef};
use crate::expr::Val;

/// `contains(haystack, needle)`.
pub static DEF: FunctionDef = FunctionDef {
    name: "contains",
    min_args: 2,
    max_args: 2,
    absent_propagates: false,
    summary: "Whether text contains a substring (case-sensitive), or an array contains a value. \
              An absent haystack contains nothing.",
    examples: &[
        Example {
            expr: "contains('kitchen remodel', 'remodel')",
            result: "true",
        },
        Example {
            expr: "contains(tags, 'b')",
            result: "true",
        },
        Example {
            expr: "contains(missing, 'x')",
            result: "false",
        },
    ],
    call: |args, _| {
        let found = match (&args[0], &args[1]) {
            (Val::Absent | Val::Null, _) | (_, Val::Absent) => false,
            (h @ (Val::Raw(_) | Val::Json(_)), n) => match h.to_json() {
                Some(serde_json::Value::Array(a)) => {
                    let n = n.to_json();
                    a.iter().any(|x| Some(x) == n.as_ref())
                }
                _ => false,
            },
            (h, n) => match (h.text(), n.text()) {
                (Some(h), Some(n)) => h.contains(n.as_ref()),
                _ => false,
            },
        };
        Ok(Val::Bool(found))
    },
};
