//! `parseDate(text, format)`: read a date or timestamp written in a strftime format.

use super::{Example, FunctionDef, s, text_arg};
use chrono::{NaiveDate, NaiveDateTime};

/// `parseDate(text, format)`.
pub static DEF: FunctionDef = FunctionDef {
    name: "parseDate",
    min_args: 2,
    max_args: 2,
    absent_propagates: true,
    summary: "Parses text with a chrono strftime format: a format with a time gives an RFC 3339 \
              UTC timestamp, a date-only format gives `YYYY-MM-DD`.",
    examples: &[
        Example {
            expr: "parseDate('05/01/2026', '%d/%m/%Y')",
            result: r#""2026-01-05""#,
        },
        Example {
            expr: "parseDate('2026-01-05 14:07', '%Y-%m-%d %H:%M')",
            result: r#""2026-01-05T14:07:00Z""#,
        },
        Example {
            expr: "addDays(parseDate('12/31/2025', '%m/%d/%Y'), 1)",
            result: r#""2026-01-01""#,
        },
    ],
    call: |args, _| {
        let t = text_arg(&args[0], "the text")?;
        let fmt = text_arg(&args[1], "the format")?;
        if let Ok(dt) = NaiveDateTime::parse_from_str(t.trim(), &fmt) {
            return Ok(s(dt
                .and_utc()
                .to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)));
        }
        NaiveDate::parse_from_str(t.trim(), &fmt)
            .map(|d| s(d.format("%Y-%m-%d").to_string()))
            .map_err(|e| format!("{} does not match `{fmt}`: {e}", args[0].describe()))
    },
};
