//! Example connector plugin for "AcmeCRM", whose API needs HMAC-signed requests and answers in
//! CSV (contacts) or XML (deals, write results).
//!
//! Signature: `X-Acme-Signature = hex(hmac_sha256(api_secret, METHOD \n PATH?QUERY \n TIMESTAMP \n
//! hex(sha256(body))))`, with `X-Acme-Key` (config `key_id`) and `X-Acme-Timestamp` (unix ms).

use serde_json::Value;
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
            out.push(
                decoded
                    .into_iter()
                    .next()
                    .unwrap_or(Value::Null)
                    .to_string(),
            );
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
    let signature = acme_common::signature(&secret, method, path_and_query, &timestamp, &body);
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
    acme_common::decode(ct, text).map_err(PluginError::Upstream)
}
