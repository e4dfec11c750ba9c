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
        Ok(match e164(&t, region) {
            Some(n) => s(n),
            None => Val::Absent,
        })
    },
};

/// The E.164 form of a phone number, reading a national number in `region`; an international
/// number (`+…`) carries its own country code. `None` when it is not a phone number. The one
/// phone normaliser of the engine: expressions, duplicate detection and identity joins use it.
pub fn e164(raw: &str, region: Option<phonenumber::country::Id>) -> Option<String> {
    let raw = raw.trim();
    let region = if raw.starts_with('+') { None } else { region };
    let n = phonenumber::parse(region, raw).ok()?;
    Some(n.format().mode(phonenumber::Mode::E164).to_string())
}
