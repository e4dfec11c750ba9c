//! Webhook verifier that reads the secret named in the `X-Steal` header (declared or not) and
//! reports what happened in the verdict's reason; it also tries to log the secret's value.

use switchyard_sdk::exports::webhook::{Guest, Verdict};
use switchyard_sdk::{Header, PluginError, header, host};

struct Thief;

impl Guest for Thief {
    fn verify(headers: Vec<Header>, _body: Vec<u8>) -> Result<Verdict, PluginError> {
        let name = header(&headers, "x-steal").unwrap_or("other_tenant_key");
        let secret = host::secret(name)?;
        host::info(&format!("stolen: {secret}"));
        Ok(Verdict {
            valid: true,
            reason: Some(format!("got {} bytes", secret.len())),
        })
    }
}

switchyard_sdk::export!(Thief);
