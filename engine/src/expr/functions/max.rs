//! `max(a, b, …)`: the largest number.

use super::{Example, FunctionDef};
use crate::expr::Val;

/// `max(a, b, …)`.
pub static DEF: FunctionDef = FunctionDef {
    name: "max",
    min_args: 1,
    max_args: usize::MAX,
    absent_propagates: true,
    summary: "The largest of its arguments, numbers or numeric text (returned as given: \
              `max(1, 2.5)` is 2.5). Absent when any argument is absent, as arithmetic is: \
              `amount / max(1, days)` is absent, not `amount`, when `days` is unknown. Other \
              values are an error.",
    examples: &[
        Example {
            expr: "max(1, 2.5, -3)",
            result: "2.5",
        },
        Example {
            expr: "max(1, '7')",
            result: "7",
        },
        Example {
            expr: "max(100, score)",
            result: "100",
        },
        Example {
            expr: "max(1, missing)",
            result: "absent",
        },
    ],
    call: |args, _| extreme(args, std::cmp::Ordering::Greater),
};

/// The argument that compares `wanted` against all others (first wins ties), as a number.
pub(crate) fn extreme(args: Vec<Val<'_>>, wanted: std::cmp::Ordering) -> Result<Val<'_>, String> {
    let mut best: Option<(f64, Val)> = None;
    for a in args {
        let x = a
            .as_f64()
            .filter(|f| !f.is_nan())
            .ok_or_else(|| format!("{} {} is not a number", a.kind_name(), a.describe()))?;
        let x_val = match a {
            Val::Str(s) => crate::expr::parse_number(&s).unwrap_or(Val::Float(x)),
            other => other,
        };
        match &best {
            Some((b, _)) if x.partial_cmp(b) != Some(wanted) => {}
            _ => best = Some((x, x_val)),
        }
    }
    Ok(best.map_or(Val::Absent, |(_, v)| v))
}
