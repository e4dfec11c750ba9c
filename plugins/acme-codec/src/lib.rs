//! Request signer and response decoder for AcmeCRM: a connector spec keeps its HTTP declarative
//! and delegates `auth` (signing) and CSV/XML bodies to this plugin.

use switchyard_sdk::exports::{decoder, signer};
use switchyard_sdk::{Header, HttpRequest, PluginError, host};

struct AcmeCodec;

impl signer::Guest for AcmeCodec {
    fn sign(mut request: HttpRequest) -> Result<HttpRequest, PluginError> {
        let secret = host::secret("api_secret")?;
        let key_id = host::config_str("key_id").unwrap_or_default();
        let timestamp = host::now_unix_ms().to_string();
        let pq = acme_common::path_and_query(&request.url);
        let signature =
            acme_common::signature(&secret, &request.method, pq, &timestamp, &request.body);
        for (name, value) in [
            ("X-Acme-Key", key_id),
            ("X-Acme-Timestamp", timestamp),
            ("X-Acme-Signature", signature),
        ] {
            request.headers.push(Header {
                name: name.into(),
                value,
            });
        }
        Ok(request)
    }
}

impl decoder::Guest for AcmeCodec {
    fn decode(content_type: String, body: Vec<u8>) -> Result<String, PluginError> {
        let text = std::str::from_utf8(&body)
            .map_err(|_| PluginError::InvalidInput("body is not utf-8".into()))?;
        let records =
            acme_common::decode(&content_type, text).map_err(PluginError::InvalidInput)?;
        Ok(serde_json::Value::Array(records).to_string())
    }
}

switchyard_sdk::export!(AcmeCodec);
