//! AcmeCRM wire format shared by the AcmeCRM plugins: request signing and CSV/XML decoding.
//! Plain Rust (no plugin bindings), so the connector and the codec plugin can both use it.

use hmac::{Hmac, Mac};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

/// `hex(hmac_sha256(secret, METHOD \n PATH?QUERY \n TIMESTAMP \n hex(sha256(body))))`.
pub fn signature(
    secret: &str,
    method: &str,
    path_and_query: &str,
    timestamp: &str,
    body: &[u8],
) -> String {
    let canonical = format!(
        "{method}\n{path_and_query}\n{timestamp}\n{}",
        hex::encode(Sha256::digest(body))
    );
    let mut mac = match Hmac::<Sha256>::new_from_slice(secret.as_bytes()) {
        Ok(m) => m,
        Err(_) => return String::new(),
    };
    mac.update(canonical.as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

/// The path and query of an absolute URL (`/` when it has none).
pub fn path_and_query(url: &str) -> &str {
    let after_scheme = url.split_once("://").map_or(url, |(_, rest)| rest);
    after_scheme.find('/').map_or("/", |i| &after_scheme[i..])
}

/// CSV or XML text to JSON objects, by content type.
pub fn decode(content_type: &str, text: &str) -> Result<Vec<Value>, String> {
    if content_type.starts_with("text/csv") {
        Ok(parse_csv(text))
    } else if content_type.contains("xml") {
        parse_xml(text)
    } else {
        Err(format!("unexpected content type `{content_type}`"))
    }
}

/// RFC 4180 CSV (quoted fields, doubled quotes, CRLF) with a header row.
pub fn parse_csv(text: &str) -> Vec<Value> {
    let mut rows: Vec<Vec<String>> = Vec::new();
    let (mut row, mut field, mut quoted) = (Vec::new(), String::new(), false);
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match (c, quoted) {
            ('"', true) if chars.peek() == Some(&'"') => {
                chars.next();
                field.push('"');
            }
            ('"', _) => quoted = !quoted,
            (',', false) => row.push(std::mem::take(&mut field)),
            ('\r', false) => {}
            ('\n', false) => {
                row.push(std::mem::take(&mut field));
                rows.push(std::mem::take(&mut row));
            }
            (c, _) => field.push(c),
        }
    }
    if !field.is_empty() || !row.is_empty() {
        row.push(field);
        rows.push(row);
    }
    let mut it = rows.into_iter();
    let header = it.next().unwrap_or_default();
    it.map(|r| {
        let obj: Map<String, Value> = header
            .iter()
            .cloned()
            .zip(r.into_iter().map(Value::String))
            .collect();
        Value::Object(obj)
    })
    .collect()
}

/// `<list><item id=".."><field>text</field>..</item>..</list>` (or a single `<result>`) to JSON
/// objects: attributes and child elements become string fields.
pub fn parse_xml(text: &str) -> Result<Vec<Value>, String> {
    use quick_xml::events::Event;
    let bad = |e: &dyn std::fmt::Display| format!("invalid xml: {e}");
    let mut reader = quick_xml::Reader::from_str(text);
    let mut depth = 0usize;
    let mut out = Vec::new();
    let mut current = Map::new();
    let mut field: Option<String> = None;
    let mut value = String::new();
    let mut single = false;
    loop {
        match reader.read_event().map_err(|e| bad(&e))? {
            Event::Start(e) => {
                depth += 1;
                let name = String::from_utf8_lossy(e.local_name().as_ref()).into_owned();
                if depth == 1 && name == "result" {
                    single = true;
                    depth += 1;
                }
                if depth == 2 {
                    current = Map::new();
                    for a in e.attributes().flatten() {
                        let k = String::from_utf8_lossy(a.key.local_name().as_ref()).into_owned();
                        let v = a
                            .normalized_value(quick_xml::XmlVersion::Implicit1_0)
                            .map_err(|e| bad(&e))?
                            .into_owned();
                        current.insert(k, Value::String(v));
                    }
                } else if depth == 3 {
                    field = Some(name);
                    value.clear();
                }
            }
            Event::Text(t) if field.is_some() => {
                value.push_str(&t.decode().map_err(|e| bad(&e))?);
            }
            Event::GeneralRef(r) if field.is_some() => {
                if let Some(c) = r.resolve_char_ref().map_err(|e| bad(&e))? {
                    value.push(c);
                } else {
                    let name = r.decode().map_err(|e| bad(&e))?;
                    let entity = format!("&{name};");
                    value.push_str(&quick_xml::escape::unescape(&entity).map_err(|e| bad(&e))?);
                }
            }
            Event::End(_) => {
                if depth == 3 {
                    if let Some(f) = field.take() {
                        current.insert(f, Value::String(std::mem::take(&mut value)));
                    }
                } else if depth == 2 {
                    out.push(Value::Object(std::mem::take(&mut current)));
                    if single {
                        depth -= 1;
                    }
                }
                depth = depth.saturating_sub(1);
            }
            Event::Eof => break,
            _ => {}
        }
    }
    Ok(out)
}
