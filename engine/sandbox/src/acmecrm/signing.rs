//! AcmeCRM's request signing: `X-Acme-Signature` = hex HMAC-SHA256 (`api_secret`) of
//! `METHOD \n PATH?QUERY \n TIMESTAMP \n hex(SHA-256(body))`, with `X-Acme-Key` naming the key.

use super::super::state::Shared;
use super::codec::error;
use axum::http::request::Parts;
use axum::response::Response;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

fn signature(secret: &str, method: &str, pq: &str, ts: &str, body: &[u8]) -> String {
    let canonical = format!(
        "{method}\n{pq}\n{ts}\n{}",
        hex::encode(Sha256::digest(body))
    );
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret.as_bytes()) else {
        return String::new();
    };
    mac.update(canonical.as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

/// Checks the key id and the signature over the request and its body.
pub(super) fn authorize(shared: &Shared, req: &Parts, body: &[u8]) -> Result<(), Response> {
    let h = |n: &str| {
        req.headers
            .get(n)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string()
    };
    let pq = req.uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
    let expected = signature(
        shared.cred("api_secret"),
        req.method.as_str(),
        pq,
        &h("x-acme-timestamp"),
        body,
    );
    if h("x-acme-key") != shared.cred("key_id") || h("x-acme-signature") != expected {
        return Err(error(
            401,
            "bad_signature",
            "the request signature does not match",
        ));
    }
    Ok(())
}
