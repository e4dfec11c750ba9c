//! `number(x)`: a number, or the number its text holds.

use super::{Example, FunctionDef};
use crate::expr::{Val, parse_number};

/// `number(x)`.
pub static DEF: FunctionDef = FunctionDef {
    name: "number",
    min_args: 1,
    max_args: 1,
    absent_propagates: true,
    summary: "The number `x` is, or the number its text holds (HubSpot and PayPal send amounts \
              as text: `\"50.5\"` becomes 50.5; surrounding spaces are allowed); absent for \
              anything else (non-numeric text, booleans, null, arrays, objects), so a value \
              expression over it is absent rather than failing the record.",
    examples: &[
        Example {
            expr: "number(score)",
            result: "87.456",
        },
        Example {
            expr: "number(' 50.5 ')",
            result: "50.5",
        },
        Example {
            expr: "number('12') * 2",
            result: "24",
        },
        Example {
            expr: "number('abc')",
            result: "absent",
        },
        Example {
            expr: "number(null)",
            result: "absent",
        },
        Example {
            expr: "number(missing)",
            result: "absent",
        },
    ],
    call: |args, _| {
        Ok(match &args[0] {
            Val::Int(i) => Val::Int(*i),
            Val::Float(f) => Val::Float(*f),
            Val::Str(s) => parse_number(s).unwrap_or(Val::Absent),
            _ => Val::Absent,
        })
    },
};
