//! `now()`: the current instant as an RFC 3339 UTC timestamp, from the injected clock.

use super::{Example, FunctionDef, s};

/// `now()`.
pub static DEF: FunctionDef = FunctionDef {
    name: "now",
    min_args: 0,
    max_args: 0,
    absent_propagates: true,
    summary: "The current instant as RFC 3339 in UTC, to the second (honours `--now`).",
    examples: &[
        Example {
            expr: "now()",
            result: r#""2026-01-15T10:30:00Z""#,
        },
        Example {
            expr: "addHours(now(), 2)",
            result: r#""2026-01-15T12:30:00Z""#,
        },
    ],
    call: |_, ctx| {
        Ok(s(ctx
            .now
            .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)))
    },
};
