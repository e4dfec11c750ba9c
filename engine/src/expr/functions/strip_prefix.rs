//! `strip_prefix(text, prefix)`: the rest of text after a prefix.

use super::{Example, FunctionDef, s, text_arg};
use crate::expr::Val;

/// `strip_prefix(text, prefix)`.
pub static DEF: FunctionDef = FunctionDef {
    name: "strip_prefix",
    min_args: 2,
    max_args: 2,
    absent_propagates: true,
    summary: "The text after `prefix` (case-sensitive); absent when the text does not begin \
              with it, so `strip_prefix(custom_id, 'utm:')` reads only tagged values.",
    examples: &[
        Example {
            expr: "strip_prefix('utm:google', 'utm:')",
            result: r#""google""#,
        },
        Example {
            expr: "strip_prefix('google', 'utm:')",
            result: "absent",
        },
        Example {
            expr: "strip_prefix(missing, 'utm:')",
            result: "absent",
        },
    ],
    call: |args, _| {
        let prefix = text_arg(&args[1], "the prefix")?;
        Ok(match args[0].text() {
            Some(t) => match t.strip_prefix(prefix.as_ref()) {
                Some(rest) => s(rest.to_string()),
                None => Val::Absent,
            },
            None => Val::Absent,
        })
    },
};
