//! `len(x)`: length of text (in characters) or of an array.

use super::{Example, FunctionDef};
use crate::expr::Val;

/// `len(x)`.
pub static DEF: FunctionDef = FunctionDef {
    name: "len",
    min_args: 1,
    max_args: 1,
    absent_propagates: true,
    summary: "The number of characters of text, of items of an array, or of keys of an object.",
    examples: &[
        Example {
            expr: "len('héllo')",
            result: "5",
        },
        Example {
            expr: "len(tags)",
            result: "2",
        },
        Example {
            expr: "len(missing)",
            result: "absent",
        },
    ],
    call: |args, _| {
        let n = match &args[0] {
            Val::Str(t) => t.chars().count(),
            v @ (Val::Raw(_) | Val::Json(_)) => match v.to_json() {
                Some(serde_json::Value::Array(a)) => a.len(),
                Some(serde_json::Value::Object(m)) => m.len(),
                _ => 0,
            },
            other => {
                return Err(format!(
                    "cannot take the length of {} {}",
                    other.kind_name(),
                    other.describe()
                ));
            }
        };
        Ok(Val::Int(n as i64))
    },
};
