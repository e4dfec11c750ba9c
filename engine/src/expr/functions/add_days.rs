//! `addDays(date, n)`: shift a date or timestamp by whole days, keeping its form.

use super::{Example, FunctionDef, s, text_arg};
use chrono::{DateTime, Duration, NaiveDate};

/// `addDays(date, n)`.
pub static DEF: FunctionDef = FunctionDef {
    name: "addDays",
    min_args: 2,
    max_args: 2,
    absent_propagates: true,
    summary: "Adds `n` days (may be negative) to a `YYYY-MM-DD` date or an RFC 3339 timestamp; \
              the result has the input's form.",
    examples: &[
        Example {
            expr: "addDays('2026-01-30', 3)",
            result: r#""2026-02-02""#,
        },
        Example {
            expr: "addDays('2026-03-01', -1)",
            result: r#""2026-02-28""#,
        },
        Example {
            expr: "addDays('2026-01-15T08:00:00+02:00', 1)",
            result: r#""2026-01-16T08:00:00+02:00""#,
        },
        Example {
            expr: "addDays(today(), '7')",
            result: r#""2026-01-22""#,
        },
        Example {
            expr: "addDays(missing.date, 1)",
            result: "absent",
        },
    ],
    call: |args, _| {
        let d = text_arg(&args[0], "the date")?;
        let n = args[1].as_i64().ok_or_else(|| {
            format!(
                "the number of days must be an integer, found {}",
                args[1].describe()
            )
        })?;
        shift_days(&d, n).map(s).ok_or_else(|| {
            format!(
                "{} is not a date or an RFC 3339 timestamp",
                args[0].describe()
            )
        })
    },
};

/// Shift a date or RFC 3339 timestamp by `n` days, keeping its form; `None` if it is neither.
pub fn shift_days(d: &str, n: i64) -> Option<String> {
    let delta = Duration::try_days(n)?;
    if let Ok(date) = NaiveDate::parse_from_str(d, "%Y-%m-%d") {
        return date
            .checked_add_signed(delta)
            .map(|x| x.format("%Y-%m-%d").to_string());
    }
    let t = DateTime::parse_from_rfc3339(d).ok()?;
    let use_z = d.ends_with('Z') || d.ends_with('z');
    t.checked_add_signed(delta)
        .map(|x| x.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, use_z))
}
