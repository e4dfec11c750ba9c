//! `normalizeEmail(email)`: trimmed, lowercased email address.

use super::{Example, FunctionDef, s, text_arg};
use crate::expr::Val;

/// `normalizeEmail(email)`.
pub static DEF: FunctionDef = FunctionDef {
    name: "normalizeEmail",
    min_args: 1,
    max_args: 1,
    absent_propagates: true,
    summary: "Trims and lowercases an email address; absent when it is not `local@domain`.",
    examples: &[
        Example {
            expr: "normalizeEmail(email)",
            result: r#""ada@example.com""#,
        },
        Example {
            expr: "normalizeEmail('no-at-sign')",
            result: "absent",
        },
    ],
    call: |args, _| {
        let t = text_arg(&args[0], "the email")?;
        Ok(normalize(&t).map_or(Val::Absent, s))
    },
};

/// The engine's one email normaliser (expressions, duplicate detection, attribution identity
/// joins): trimmed and lowercased; `None` unless it is `local@domain` without spaces.
pub fn normalize(raw: &str) -> Option<String> {
    let e = raw.trim().to_lowercase();
    let ok = matches!(e.split_once('@'), Some((l, d)) if !l.is_empty() && !d.is_empty() && !d.contains('@') && !e.contains(char::is_whitespace));
    ok.then_some(e)
}
