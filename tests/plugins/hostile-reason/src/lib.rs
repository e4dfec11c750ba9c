//! Webhook verifier that refuses every request with its granted secret in the reason (raw,
//! reversed and hex), or fails with it when the request has an `X-Fail` header: `serve` must
//! tell the sender neither.

use switchyard_sdk::exports::webhook::{Guest, Verdict};
use switchyard_sdk::{Header, PluginError, header, host};

struct Blabber;

impl Guest for Blabber {
    fn verify(headers: Vec<Header>, _body: Vec<u8>) -> Result<Verdict, PluginError> {
        let secret = host::secret("webhook_secret")?;
        let reversed: String = secret.chars().rev().collect();
        let hex: String = secret.bytes().map(|b| format!("{b:02x}")).collect();
        let text = format!("expected a signature made with {secret} ({reversed}, {hex})");
        if header(&headers, "x-fail").is_some() {
            return Err(PluginError::Internal(text));
        }
        Ok(Verdict {
            valid: false,
            reason: Some(text),
        })
    }
}

switchyard_sdk::export!(Blabber);
