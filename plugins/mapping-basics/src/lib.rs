//! Example mapping-function plugin: `phone_e164`, `split_name`, `split_address`, `contact_key`.
//!
//! It implements `call_args`, so arguments are parsed lazily: `contact_key` reads three members
//! of a record and skips the rest of it without building it.

use serde_json::{Value, json};
use switchyard_sdk::{Args, MappingFunctions, PluginError};

struct Basics;

impl MappingFunctions for Basics {
    fn functions() -> Vec<String> {
        ["phone_e164", "split_name", "split_address", "contact_key"]
            .map(String::from)
            .to_vec()
    }

    fn call_args(name: &str, args: &Args) -> Result<Value, PluginError> {
        let text = |i: usize| args.str(i).map(Option::unwrap_or_default);
        match name {
            "phone_e164" => phone_e164(&text(0)?, args.str(1)?.as_deref()),
            "split_name" => Ok(split_name(&text(0)?)),
            "split_address" => Ok(split_address(&text(0)?)),
            "contact_key" => {
                let [email, first, last] = args.fields(0, ["email", "first_name", "last_name"])?;
                Ok(contact_key(email, first, last))
            }
            other => Err(PluginError::InvalidInput(format!(
                "unknown function `{other}`"
            ))),
        }
    }
}

switchyard_sdk::export_mapping_functions!(Basics);

/// Parses a phone number (with an optional default region such as `US`) into E.164, or null.
fn phone_e164(raw: &str, region: Option<&str>) -> Result<Value, PluginError> {
    let region = match region {
        Some(r) => Some(
            r.parse::<phonenumber::country::Id>()
                .map_err(|_| PluginError::InvalidInput(format!("unknown region `{r}`")))?,
        ),
        None => None,
    };
    Ok(match phonenumber::parse(region, raw) {
        Ok(n) if phonenumber::is_valid(&n) => {
            Value::String(n.format().mode(phonenumber::Mode::E164).to_string())
        }
        _ => Value::Null,
    })
}

/// Splits "Dr. Ada M. Lovelace Jr." / "Lovelace, Ada" into parts.
fn split_name(full: &str) -> Value {
    const TITLES: [&str; 6] = ["mr", "mrs", "ms", "dr", "prof", "mx"];
    const SUFFIXES: [&str; 6] = ["jr", "sr", "ii", "iii", "iv", "phd"];
    let (mut words, comma_last): (Vec<&str>, Option<&str>) = match full.split_once(',') {
        Some((last, rest)) if !rest.trim().is_empty() => {
            (rest.split_whitespace().collect(), Some(last.trim()))
        }
        _ => (full.split_whitespace().collect(), None),
    };
    let bare = |w: &str| w.trim_end_matches('.').to_ascii_lowercase();
    let title = match words.first() {
        Some(w) if TITLES.contains(&bare(w).as_str()) => Some(words.remove(0).to_string()),
        _ => None,
    };
    let suffix = match words.last() {
        Some(w)
            if comma_last.is_none() && words.len() > 1 && SUFFIXES.contains(&bare(w).as_str()) =>
        {
            words.pop().map(String::from)
        }
        _ => None,
    };
    let last = match comma_last {
        Some(l) => Some(l.to_string()),
        None if words.len() > 1 => words.pop().map(String::from),
        None => None,
    };
    let first = (!words.is_empty()).then(|| words.remove(0).to_string());
    let middle = (!words.is_empty()).then(|| words.join(" "));
    json!({"title": title, "first": first, "middle": middle, "last": last, "suffix": suffix})
}

/// Splits "221B Baker Street, London NW1 6XE" into number, street and the rest.
fn split_address(line: &str) -> Value {
    let mut parts = line.splitn(2, ',');
    let street_line = parts.next().unwrap_or_default().trim();
    let rest = parts.next().map(str::trim).filter(|s| !s.is_empty());
    let (number, street) = match street_line.split_once(' ') {
        Some((n, s)) if n.chars().next().is_some_and(|c| c.is_ascii_digit()) => (Some(n), s.trim()),
        _ => (None, street_line),
    };
    let postal_code = rest.and_then(|r| {
        r.split_whitespace()
            .rev()
            .find(|w| w.chars().any(|c| c.is_ascii_digit()))
    });
    json!({"number": number, "street": street, "locality": rest, "postal_code": postal_code})
}

/// A de-duplication key for a contact record: its e-mail address trimmed and lower-cased, else
/// `first.last` lower-cased, else null.
fn contact_key(email: Option<Value>, first: Option<Value>, last: Option<Value>) -> Value {
    let clean = |v: &Option<Value>| {
        v.as_ref()
            .and_then(Value::as_str)
            .map(|s| s.trim().to_lowercase())
            .filter(|s| !s.is_empty())
    };
    if let Some(e) = clean(&email) {
        return Value::String(e);
    }
    match (clean(&first), clean(&last)) {
        (Some(f), Some(l)) => Value::String(format!("{f}.{l}")),
        (Some(one), None) | (None, Some(one)) => Value::String(one),
        (None, None) => Value::Null,
    }
}
