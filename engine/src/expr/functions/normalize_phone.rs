//! `normalizePhone(phone, region)`: E.164 form of a phone number.

use super::{Example, FunctionDef, s, text_arg};
use crate::expr::Val;
use std::str::FromStr;

/// `normalizePhone(phone, region)`.
pub static DEF: FunctionDef = FunctionDef {
    name: "normalizePhone",
    min_args: 1,
    max_args: 2,
    absent_propagates: true,
    summary: "The E.164 form (`+15550104477`) of a phone number, reading national numbers in \
              `region` (ISO 3166 code, default `US`); absent when it is not a phone number.",
    examples: &[
        Example {
            expr: "normalizePhone('(202) 555-0143')",
            result: r#""+12025550143""#,
        },
        Example {
            expr: "normalizePhone('020 7946 0958', 'GB')",
            result: r#""+442079460958""#,
        },
        Example {
            expr: "normalizePhone('+33 1 42 68 53 00')",
            result: r#""+33142685300""#,
        },
        Example {
            expr: "normalizePhone('not a phone')",
            result: "absent",
        },
    ],
    call: |args, _| {
        let t = text_arg(&args[0], "the phone number")?;
        let region = match args.get(1) {
            Some(r) => {
                let r = text_arg(r, "the region")?;
                Some(
                    phonenumber::country::Id::from_str(&r.to_ascii_uppercase())
                        .map_err(|_| format!("unknown region `{r}`"))?,
                )
            }
            None => Some(phonenumber::country::Id::US),
        };
        // An international number carries its own country code.
        let region = if t.trim_start().starts_with('+') {
            None
        } else {
            region
        };
        Ok(match phonenumber::parse(region, t.as_ref()) {
            Ok(n) => s(n.format().mode(phonenumber::Mode::E164).to_string()),
            Err(_) => Val::Absent,
        })
    },
};
