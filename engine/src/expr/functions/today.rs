//! `today()`: the current date (UTC) as `YYYY-MM-DD`, from the injected clock.

use super::{Example, FunctionDef, s};

/// `today()`.
pub static DEF: FunctionDef = FunctionDef {
    name: "today",
    min_args: 0,
    max_args: 0,
    absent_propagates: true,
    summary: "The current date in UTC as `YYYY-MM-DD` (honours `--now`). `today + n` adds days.",
    examples: &[
        Example {
            expr: "today()",
            result: r#""2026-01-15""#,
        },
        Example {
            expr: "today + 1",
            result: r#""2026-01-16""#,
        },
        Example {
            expr: "today() - 15",
            result: r#""2025-12-31""#,
        },
    ],
    call: |_, ctx| Ok(s(ctx.now.format("%Y-%m-%d").to_string())),
};
