//! `round(x, digits)`: round half away from zero.

use super::{Example, FunctionDef};
use crate::expr::Val;

/// `round(x, digits)`.
pub static DEF: FunctionDef = FunctionDef {
    name: "round",
    min_args: 1,
    max_args: 2,
    absent_propagates: true,
    summary: "Rounds a number (or numeric text) half away from zero to `digits` decimals \
              (default 0, which gives an integer).",
    examples: &[
        Example {
            expr: "round(2.5)",
            result: "3",
        },
        Example {
            expr: "round(score, 1)",
            result: "87.5",
        },
        Example {
            expr: "round('41.49')",
            result: "41",
        },
        Example {
            expr: "round(7)",
            result: "7",
        },
    ],
    call: |args, _| {
        let digits = match args.get(1) {
            Some(d) => d
                .as_i64()
                .ok_or_else(|| format!("digits must be an integer, found {}", d.describe()))?,
            None => 0,
        };
        if let Val::Int(i) = args[0]
            && digits >= 0
        {
            return Ok(Val::Int(i));
        }
        let x = args[0].as_f64().ok_or_else(|| {
            format!(
                "cannot round {} {}",
                args[0].kind_name(),
                args[0].describe()
            )
        })?;
        if digits == 0 {
            let r = x.round();
            if r.abs() < 9.0e15 {
                return Ok(Val::Int(r as i64));
            }
            return Ok(Val::Float(r));
        }
        let f = 10f64.powi(digits.clamp(-15, 15) as i32);
        Ok(Val::Float((x * f).round() / f))
    },
};
