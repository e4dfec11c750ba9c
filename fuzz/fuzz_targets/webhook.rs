//! Webhook verification with fuzzed headers, body, URL and clock, through the public
//! `connector::webhook::verify` for every built-in scheme (Stripe-Signature parsing, HubSpot
//! v3 and Zendesk timestamps, HMAC over the body in hex and base64). Nothing may panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use serde_json::json;
use std::collections::HashMap;
use std::sync::LazyLock;
use switchyard::connector::Secret;
use switchyard::connector::webhook::{WebhookRequest, verify};
use switchyard::spec::connector::WebhookVerify;

static SCHEMES: LazyLock<Vec<WebhookVerify>> = LazyLock::new(|| {
    [
        json!({"scheme": "stripe", "secret": "s"}),
        json!({"scheme": "hubspot_v3", "secret": "s"}),
        json!({"scheme": "zendesk", "secret": "s"}),
        json!({"scheme": "hmac_body", "header": "signature", "algorithm": "sha1", "encoding": "base64", "secret": "s"}),
        json!({"scheme": "hmac_body", "header": "x-sig", "algorithm": "sha256", "encoding": "hex", "secret": "s"}),
    ]
    .into_iter()
    .map(|v| serde_json::from_value(v).expect("scheme"))
    .collect()
});

const NAMES: [&str; 8] = [
    "stripe-signature",
    "x-hubspot-signature-v3",
    "x-hubspot-request-timestamp",
    "x-zendesk-webhook-signature",
    "x-zendesk-webhook-signature-timestamp",
    "signature",
    "x-sig",
    "content-type",
];

fuzz_target!(|data: &[u8]| {
    // Layout: clock (8 bytes), then `\n`-separated parts: URL, headers as `i:value` (i picks a
    // header name), and the rest is the body.
    if data.len() < 8 {
        return;
    }
    let now = i64::from_le_bytes(data[..8].try_into().expect("8 bytes"));
    let rest = &data[8..];
    let text = String::from_utf8_lossy(rest);
    let mut parts = text.splitn(6, '\n');
    let url = parts.next().unwrap_or_default().to_string();
    let mut headers = Vec::new();
    let mut body = Vec::new();
    for (i, p) in parts.enumerate() {
        if i == 4 {
            body = p.as_bytes().to_vec();
            break;
        }
        let (k, v) = p.split_once(':').unwrap_or(("0", p));
        let name = NAMES[k.bytes().map(usize::from).sum::<usize>() % NAMES.len()];
        headers.push((name.to_string(), v.to_string()));
    }
    let mut secrets = HashMap::new();
    secrets.insert("s".to_string(), Secret::new("whsec_test"));
    let req = WebhookRequest {
        method: "POST",
        url: &url,
        headers: &headers,
        body: &body,
    };
    for scheme in SCHEMES.iter() {
        let _ = futures::executor::block_on(verify(scheme, &secrets, None, &req, now));
    }
});
