//! Example connector plugin for "AcmeCRM", whose API needs HMAC-signed requests and answers in
//! CSV (contacts) or XML (deals, write results).
//!
//! Signature: `X-Acme-Signature = hex(hmac_sha256(api_secret, METHOD \n PATH?QUERY \n TIMESTAMP \n
//! hex(sha256(body))))`, with `X-Acme-Key` (config `key_id`) and `X-Acme-Timestamp` (unix ms).

use hmac::{Hmac, Mac};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use switchyard_sdk::exports::connector::{Guest, Page};
use switchyard_sdk::{Header, HttpRequest, HttpResponse, PluginError, header, host};

struct AcmeCrm;

impl Guest for AcmeCrm {
    fn read(stream: String, _params: String, cursor: Option<String>) -> Result<Page, PluginError> {
        let page: u64 = cursor.as_deref().unwrap_or("1").parse().map_err(|_| {
            PluginError::InvalidInput(format!("invalid cursor `{}`", cursor.unwrap_or_default()))
        })?;
        let resp = call("GET", &format!("/{stream}?page={page}"), Vec::new())?;
        let records = decode(&resp)?;
        let next_cursor = header(&resp.headers, "x-next-page").map(str::to_string);
        Ok(Page {
            records: records.iter().map(Value::to_string).collect(),
            next_cursor,
        })
    }

    fn write(stream: String, records: Vec<String>) -> Result<Vec<String>, PluginError> {
        let mut out = Vec::with_capacity(records.len());
        for record in records {
            let resp = call("POST", &format!("/{stream}"), record.into_bytes())?;
            let decoded = decode(&resp)?;
            out.push(decoded.into_iter().next().unwrap_or(Value::Null).to_string());
        }
        Ok(out)
    }
}

switchyard_sdk::export!(AcmeCrm);

/// Sends a signed request to the CRM and fails on non-2xx answers.
fn call(method: &str, path_and_query: &str, body: Vec<u8>) -> Result<HttpResponse, PluginError> {
    let base = host::config_str("base_url")
        .ok_or_else(|| PluginError::InvalidInput("config `base_url` is not set".into()))?;
    let key_id = host::config_str("key_id").unwrap_or_default();
    let secret = host::secret("api_secret")?;
    let timestamp = host::now_unix_ms().to_string();
    let canonical = format!(
        "{method}\n{path_and_query}\n{timestamp}\n{}",
        hex::encode(Sha256::digest(&body))
    );
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes())
        .map_err(|e| PluginError::Internal(e.to_string()))?;
    mac.update(canonical.as_bytes());
    let signature = hex::encode(mac.finalize().into_bytes());
    let h = |name: &str, value: &str| Header {
        name: name.into(),
        value: value.into(),
    };
    let mut headers = vec![
        h("X-Acme-Key", &key_id),
        h("X-Acme-Timestamp", &timestamp),
        h("X-Acme-Signature", &signature),
    ];
    if !body.is_empty() {
        headers.push(h("Content-Type", "application/json"));
    }
    let resp = host::send(&HttpRequest {
        method: method.into(),
        url: format!("{}{path_and_query}", base.trim_end_matches('/')),
        headers,
        body,
    })?;
    if !(200..300).contains(&resp.status) {
        return Err(PluginError::Upstream(format!(
            "acmecrm answered {}: {}",
            resp.status,
            String::from_utf8_lossy(&resp.body)
        )));
    }
    Ok(resp)
}

/// CSV or XML body to JSON objects, by content type.
fn decode(resp: &HttpResponse) -> Result<Vec<Value>, PluginError> {
    let ct = header(&resp.headers, "content-type").unwrap_or_default();
    let text = std::str::from_utf8(&resp.body)
        .map_err(|_| PluginError::Upstream("response is not utf-8".into()))?;
    if ct.starts_with("text/csv") {
        Ok(parse_csv(text))
    } else if ct.contains("xml") {
        parse_xml(text)
    } else {
        Err(PluginError::Upstream(format!("unexpected content type `{ct}`")))
    }
}

/// RFC 4180 CSV (quoted fields, doubled quotes, CRLF) with a header row.
fn parse_csv(text: &str) -> Vec<Value> {
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
fn parse_xml(text: &str) -> Result<Vec<Value>, PluginError> {
    use quick_xml::events::Event;
    let bad = |e: &dyn std::fmt::Display| PluginError::Upstream(format!("invalid xml: {e}"));
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
                        let v = a.normalized_value(quick_xml::XmlVersion::Implicit1_0).map_err(|e| bad(&e))?.into_owned();
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
