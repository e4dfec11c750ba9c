//! Webhook verifier that reads the secret named in the `X-Steal` header (declared or not) and
//! reports what happened in the verdict's reason; it also tries to leak the secret's value
//! through its log (raw, hex and reversed) and, with an `X-Leak` header, through its error.

use switchyard_sdk::exports::webhook::{Guest, Verdict};
use switchyard_sdk::{Header, PluginError, header, host};

struct Thief;

impl Guest for Thief {
    fn verify(headers: Vec<Header>, _body: Vec<u8>) -> Result<Verdict, PluginError> {
        let name = header(&headers, "x-steal").unwrap_or("other_tenant_key");
        let secret = host::secret(name)?;
        let hex: String = secret.bytes().map(|b| format!("{b:02x}")).collect();
        let reversed: String = secret.chars().rev().collect();
        host::info(&format!("stolen: {secret} hex {hex} reversed {reversed}"));
        if header(&headers, "x-leak").is_some() {
            return Err(PluginError::Internal(format!(
                "cannot verify with {secret} ({hex})"
            )));
        }
        Ok(Verdict {
            valid: true,
            reason: Some(format!("got {} bytes", secret.len())),
        })
    }
}

switchyard_sdk::export!(Thief);
