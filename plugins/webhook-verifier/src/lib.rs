//! Example webhook verifier: `X-Signature: t=<unix seconds>,v1=<hex hmac_sha256(secret, "<t>.<body>")>`
//! with the secret `webhook_secret` and a tolerance (config `tolerance_s`, default 300 s).

use hmac::{Hmac, Mac};
use sha2::Sha256;
use switchyard_sdk::exports::webhook::{Guest, Verdict};
use switchyard_sdk::{Header, PluginError, header, host};

struct Verifier;

fn reject(reason: &str) -> Result<Verdict, PluginError> {
    Ok(Verdict {
        valid: false,
        reason: Some(reason.into()),
    })
}

impl Guest for Verifier {
    fn verify(headers: Vec<Header>, body: Vec<u8>) -> Result<Verdict, PluginError> {
        let Some(sig) = header(&headers, "x-signature") else {
            return reject("missing X-Signature header");
        };
        let (mut t, mut v1) = (None, None);
        for part in sig.split(',') {
            match part.trim().split_once('=') {
                Some(("t", v)) => t = v.parse::<u64>().ok(),
                Some(("v1", v)) => v1 = hex::decode(v).ok(),
                _ => {}
            }
        }
        let (Some(t), Some(v1)) = (t, v1) else {
            return reject("malformed X-Signature header");
        };
        let tolerance = host::config("tolerance_s")
            .and_then(|v| v.as_u64())
            .unwrap_or(300);
        let now = host::now_unix_ms() / 1000;
        if now.abs_diff(t) > tolerance {
            return reject("timestamp outside the tolerance");
        }
        let secret = host::secret("webhook_secret")?;
        let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes())
            .map_err(|e| PluginError::Internal(e.to_string()))?;
        mac.update(format!("{t}.").as_bytes());
        mac.update(&body);
        if mac.verify_slice(&v1).is_err() {
            return reject("signature mismatch");
        }
        Ok(Verdict {
            valid: true,
            reason: None,
        })
    }
}

switchyard_sdk::export!(Verifier);
