//! `addHours(timestamp, n)`: shift a timestamp by hours.

use super::{Example, FunctionDef, s, text_arg};
use chrono::{DateTime, Duration, NaiveDate};

/// `addHours(timestamp, n)`.
pub static DEF: FunctionDef = FunctionDef {
    name: "addHours",
    min_args: 2,
    max_args: 2,
    absent_propagates: true,
    summary: "Adds `n` hours (may be negative or fractional) to an RFC 3339 timestamp; a \
              `YYYY-MM-DD` date is read as midnight UTC. The result is RFC 3339.",
    examples: &[
        Example {
            expr: "addHours('2026-01-15T23:00:00Z', 2)",
            result: r#""2026-01-16T01:00:00Z""#,
        },
        Example {
            expr: "addHours('2026-01-15', 1.5)",
            result: r#""2026-01-15T01:30:00Z""#,
        },
        Example {
            expr: "addHours('2026-01-15T10:00:00-05:00', -1)",
            result: r#""2026-01-15T09:00:00-05:00""#,
        },
    ],
    call: |args, _| {
        let d = text_arg(&args[0], "the timestamp")?;
        let h = args[1].as_f64().ok_or_else(|| {
            format!(
                "the number of hours must be a number, found {}",
                args[1].describe()
            )
        })?;
        let delta =
            Duration::try_seconds((h * 3600.0).round() as i64).ok_or("hours out of range")?;
        let bad = || {
            format!(
                "{} is not a date or an RFC 3339 timestamp",
                args[0].describe()
            )
        };
        if let Ok(date) = NaiveDate::parse_from_str(&d, "%Y-%m-%d") {
            let t = date.and_hms_opt(0, 0, 0).ok_or_else(bad)?.and_utc();
            let t = t.checked_add_signed(delta).ok_or_else(bad)?;
            return Ok(s(t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)));
        }
        let t = DateTime::parse_from_rfc3339(&d).map_err(|_| bad())?;
        let use_z = d.ends_with('Z') || d.ends_with('z');
        let t = t.checked_add_signed(delta).ok_or_else(bad)?;
        Ok(s(t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, use_z)))
    },
};
