//! One NDJSON input line as a record: the rules `map` (through the scanner or serde_json) and
//! `run` share, so every input line is judged the same way whichever path reads it.
//!
//! Numbers: a record's numbers are 64-bit floats (integers that fit stay integers). A number
//! whose magnitude does not fit a float (`1e400`, a 400-digit integer) rejects the whole
//! record, wherever it is in the record and whether or not the mapping reads it — the same
//! rule `serde_json` applies, named with the field's dotted path and the column. Tiny numbers
//! (`1e-400`) become `0`, as in `serde_json`.

use super::RecordError;
use serde_json::Value;

/// Parse one NDJSON line into a record (a JSON object). The error's `line` is left for the
/// caller, who knows it.
pub fn parse_record(line: &str) -> Result<Value, RecordError> {
    match serde_json::from_str::<Value>(line) {
        Ok(v) if v.is_object() => Ok(v),
        Ok(_) => Err(input_error("a record must be a JSON object".into())),
        Err(e) => Err(json_error(line, &e)),
    }
}

/// The rejection for a line that `serde_json` refused with `e`.
pub(crate) fn json_error(line: &str, e: &serde_json::Error) -> RecordError {
    if e.to_string().starts_with("number out of range") {
        return out_of_range(line);
    }
    input_error(format!("invalid JSON: {e}"))
}

/// The rejection for a line holding a number too large for a float: finds its field.
pub(crate) fn out_of_range(line: &str) -> RecordError {
    let mut de = serde_json::Deserializer::from_str(line);
    let (path, column) = match serde_path_to_error::deserialize::<_, Value>(&mut de) {
        Err(e) => (dotted(e.path()), number_start(line, e.inner().column())),
        // Not reached for a line the scanner refused for this reason; stay truthful anyway.
        Ok(_) => (String::new(), 0),
    };
    let at = if path.is_empty() {
        String::new()
    } else {
        format!(" at `{path}`")
    };
    input_error(format!(
        "number{at} (column {column}) is out of range: it does not fit a 64-bit float \
         (magnitude above 1.8e308)"
    ))
}

fn input_error(reason: String) -> RecordError {
    RecordError {
        line: None,
        field: None,
        pointer: String::new(),
        reason,
    }
}

/// `a.b.2.c`, the engine's own path syntax.
fn dotted(p: &serde_path_to_error::Path) -> String {
    use serde_path_to_error::Segment;
    let mut out = String::new();
    for seg in p.iter() {
        let s = match seg {
            Segment::Seq { index } => index.to_string(),
            Segment::Map { key } => key.clone(),
            Segment::Enum { .. } | Segment::Unknown => continue,
        };
        if !out.is_empty() {
            out.push('.');
        }
        out.push_str(&s);
    }
    out
}

/// 1-based column where the number ending at 1-based `end` (as `serde_json` reports) starts.
fn number_start(line: &str, end: usize) -> usize {
    let b = line.as_bytes();
    let mut i = end.min(b.len());
    while i > 0 && matches!(b[i - 1], b'0'..=b'9' | b'.' | b'e' | b'E' | b'+' | b'-') {
        i -= 1;
    }
    i + 1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_too_large_for_a_float_name_their_field_and_column() {
        let e = parse_record(r#"{"a": 1, "b": {"c": [1, 2, -1e400]}}"#).expect_err("refused");
        assert_eq!(
            e.reason,
            "number at `b.c.2` (column 28) is out of range: it does not fit a 64-bit float \
             (magnitude above 1.8e308)"
        );
        let big = format!("{{\"n\": {}}}", "9".repeat(400));
        assert!(
            parse_record(&big)
                .expect_err("refused")
                .reason
                .contains("at `n` (column 7)")
        );
        assert_eq!(
            parse_record(r#"{"a": 1e-400}"#).expect("tiny is 0")["a"],
            0.0
        );
        assert!(parse_record("[1]").is_err());
        assert!(
            parse_record("{")
                .expect_err("bad")
                .reason
                .starts_with("invalid JSON: "),
            "plain syntax errors keep their text"
        );
    }
}
