//! Duplicate detection (seed 003 `duplicate_detection`): match fields normalised (email
//! trimmed and case-folded, phone in E.164), exact strategy, and the decision what to do with
//! a match (`update_existing`, `skip`, `create`).

use serde_json::{Map, Value};

/// Normalise a value of a match field: emails (fields named `email`, or values with `@`)
/// trimmed and lowercased; phones (fields whose name contains `phone` or `mobile`) in E.164
/// (default region US), else their digits and `+`; anything else trimmed and lowercased.
pub fn normalise(field: &str, v: &Value) -> Option<String> {
    let s = match v {
        Value::String(s) => s.trim().to_string(),
        Value::Number(n) => n.to_string(),
        _ => return None,
    };
    if s.is_empty() {
        return None;
    }
    if field.to_ascii_lowercase().contains("email") || s.contains('@') {
        return Some(
            crate::expr::functions::normalize_email::normalize(&s)
                .unwrap_or_else(|| s.to_lowercase()),
        );
    }
    if is_phone_field(field) {
        return Some(e164(&s).unwrap_or_else(|| {
            s.chars()
                .filter(|c| c.is_ascii_digit() || *c == '+')
                .collect()
        }));
    }
    Some(s.to_lowercase())
}

/// The values a vendor search sends for one match key, in order, until one finds the record:
/// an email normalised; a phone in E.164 first (the form duplicate detection compares in, and
/// the one a number stored by any tool in any format is most often kept in), then as the record
/// wrote it (a vendor that stores and compares numbers as text finds it only so); anything
/// else as given.
pub fn search_values(field: &str, raw: &Value, normalised: &str) -> Vec<Value> {
    if normalised.contains('@') {
        return vec![Value::String(normalised.to_string())];
    }
    if is_phone_field(field) && normalised.starts_with('+') {
        let mut out = vec![Value::String(normalised.to_string())];
        if raw.as_str().is_none_or(|r| r.trim() != normalised) {
            out.push(raw.clone());
        }
        return out;
    }
    vec![raw.clone()]
}

/// Whether a match field holds phone numbers (its name contains `phone` or `mobile`).
fn is_phone_field(field: &str) -> bool {
    let f = field.to_ascii_lowercase();
    f.contains("phone") || f.contains("mobile")
}

/// A phone number in E.164 (`+15551234567`), parsed with region US when it has no `+`.
pub fn e164(s: &str) -> Option<String> {
    crate::expr::functions::normalize_phone::e164(s, Some(phonenumber::country::Id::US))
}

/// Match keys of a payload (`field:normalised`), in the order of `match_fields`.
pub fn match_keys(
    match_fields: &[String],
    payload: &Map<String, Value>,
) -> Vec<(String, String, Value)> {
    match_fields
        .iter()
        .filter_map(|f| {
            let v = payload.get(f)?;
            let n = normalise(f, v)?;
            Some((f.clone(), n, v.clone()))
        })
        .collect()
}

/// Whether a vendor record's fields match `field` = `normalised` exactly.
pub fn record_matches(fields: &Value, field: &str, normalised: &str) -> bool {
    let v = fields.get(field).or_else(|| {
        // Vendors differ in case (`Email` vs `email`) and wrap values (Pipedrive
        // `emails: [{value}]`).
        fields.as_object().and_then(|m| {
            m.iter()
                .find(|(k, _)| {
                    k.eq_ignore_ascii_case(field) || k.eq_ignore_ascii_case(&format!("{field}s"))
                })
                .map(|(_, v)| v)
        })
    });
    let Some(v) = v else { return false };
    let candidates: Vec<&Value> = match v {
        Value::Array(a) => a.iter().map(|x| x.get("value").unwrap_or(x)).collect(),
        other => vec![other],
    };
    candidates
        .into_iter()
        .any(|c| normalise(field, c).as_deref() == Some(normalised))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn normalises_email_and_phone() {
        assert_eq!(
            normalise("email", &json!("  Jane.Doe@Example.COM ")).as_deref(),
            Some("jane.doe@example.com")
        );
        assert_eq!(
            normalise("phone", &json!("(555) 123-4567")).as_deref(),
            Some("+15551234567")
        );
        assert_eq!(
            normalise("phone", &json!("+1 555 123 4567")).as_deref(),
            Some("+15551234567")
        );
        assert_eq!(normalise("phone", &json!("")), None);
    }

    #[test]
    fn phone_searches_send_e164_first_then_the_written_form() {
        assert_eq!(
            search_values("phone", &json!("(555) 123-4567"), "+15551234567"),
            vec![json!("+15551234567"), json!("(555) 123-4567")]
        );
        assert_eq!(
            search_values("phone", &json!("+15551234567"), "+15551234567"),
            vec![json!("+15551234567")]
        );
        assert_eq!(
            search_values("email", &json!(" A@B.c"), "a@b.c"),
            vec![json!("a@b.c")]
        );
        assert_eq!(
            search_values("name", &json!("Ann"), "ann"),
            vec![json!("Ann")]
        );
    }

    #[test]
    fn matches_vendor_shapes() {
        assert!(record_matches(
            &json!({"Email": "JANE@x.com"}),
            "email",
            "jane@x.com"
        ));
        assert!(record_matches(
            &json!({"phones": [{"value": "555-123-4567"}]}),
            "phone",
            "+15551234567"
        ));
        assert!(!record_matches(
            &json!({"email": "other@x.com"}),
            "email",
            "jane@x.com"
        ));
        let keys = match_keys(
            &["phone".into(), "email".into()],
            json!({"email": "A@B.co"}).as_object().unwrap(),
        );
        assert_eq!(keys.len(), 1);
        assert_eq!(keys[0].1, "a@b.co");
    }
}
