//! `formatDate(date, format)`: render a date or timestamp with a strftime format.

use super::{Example, FunctionDef, s, text_arg};
use crate::expr::Val;
use chrono::{DateTime, NaiveDate, NaiveDateTime};
use std::fmt::Write as _;

/// `formatDate(date, format)`.
pub static DEF: FunctionDef = FunctionDef {
    name: "formatDate",
    min_args: 2,
    max_args: 2,
    absent_propagates: true,
    summary: "Formats a `YYYY-MM-DD` date, an RFC 3339 timestamp or Unix seconds with a chrono \
              strftime format (`%Y-%m-%d`, `%d/%m/%Y`, `%B %-d, %Y`, …).",
    examples: &[
        Example {
            expr: "formatDate('2026-01-05', '%d/%m/%Y')",
            result: r#""05/01/2026""#,
        },
        Example {
            expr: "formatDate('2026-01-05T14:07:00Z', '%H:%M on %b %-d')",
            result: r#""14:07 on Jan 5""#,
        },
        Example {
            expr: "formatDate(0, '%Y-%m-%d')",
            result: r#""1970-01-01""#,
        },
    ],
    call: |args, _| {
        let fmt = text_arg(&args[1], "the format")?;
        let t = to_naive(&args[0]).ok_or_else(|| {
            format!(
                "{} is not a date, timestamp or Unix time",
                args[0].describe()
            )
        })?;
        let mut out = String::new();
        write!(out, "{}", t.format(&fmt)).map_err(|_| format!("invalid date format `{fmt}`"))?;
        Ok(s(out))
    },
};

/// Read a date, RFC 3339 timestamp (its local time) or Unix seconds.
pub(crate) fn to_naive(v: &Val) -> Option<NaiveDateTime> {
    match v {
        Val::Int(_) | Val::Float(_) => {
            DateTime::from_timestamp(v.as_f64()? as i64, 0).map(|t| t.naive_utc())
        }
        Val::Str(t) => {
            if let Ok(d) = NaiveDate::parse_from_str(t, "%Y-%m-%d") {
                return d.and_hms_opt(0, 0, 0);
            }
            DateTime::parse_from_rfc3339(t)
                .ok()
                .map(|t| t.naive_local())
        }
        _ => None,
    }
}
