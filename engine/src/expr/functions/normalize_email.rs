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
        let e = t.trim().to_lowercase();
        let ok = matches!(e.split_once('@'), Some((l, d)) if !l.is_empty() && !d.is_empty() && !d.contains('@') && !e.contains(char::is_whitespace));
        Ok(if ok { s(e) } else { Val::Absent })
    },
};
