//! `concat(a, b, …)`: join the text of every argument.

use super::{Example, FunctionDef, s};

/// `concat(a, b, …)`.
pub static DEF: FunctionDef = FunctionDef {
    name: "concat",
    min_args: 1,
    max_args: usize::MAX,
    absent_propagates: false,
    summary: "Joins its arguments' text; absent and null arguments add nothing, numbers are \
              written as JSON writes them.",
    examples: &[
        Example {
            expr: "concat('a', 1, true)",
            result: r#""a1true""#,
        },
        Example {
            expr: "concat(customer_name, ' <', missing, '>')",
            result: r#""Ada King Lovelace <>""#,
        },
        Example {
            expr: "concat(2.5, '%')",
            result: r#""2.5%""#,
        },
    ],
    call: |args, _| {
        let mut out = String::new();
        for a in &args {
            if let Some(t) = a.text() {
                out.push_str(&t);
            } else if !a.is_nothing() {
                return Err(format!(
                    "cannot concatenate {} {}",
                    a.kind_name(),
                    a.describe()
                ));
            }
        }
        Ok(s(out))
    },
};
