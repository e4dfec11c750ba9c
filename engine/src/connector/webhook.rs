//! Inbound webhook verification, as an inbound source's connector spec declares it
//! (`[inbound] webhook = { scheme = … }`): an HMAC over the raw body (CallRail), Stripe's
//! `t=…,v1=…`, HubSpot v3, Zendesk, or a webhook-verifier plugin. Signatures are compared in
//! constant time; timestamped schemes refuse requests outside their replay window. Reasons
//! never contain a secret or a computed signature.

use super::Secret;
use crate::plugin::{PluginSet, exec};
use crate::spec::connector::WebhookVerify;
use base64::Engine as _;
use ring::hmac;
use std::collections::HashMap;

/// A received webhook request.
#[derive(Debug, Clone, Copy)]
pub struct WebhookRequest<'a> {
    /// HTTP method.
    pub method: &'a str,
    /// The full URL the sender signed (HubSpot v3 signs it).
    pub url: &'a str,
    /// Headers as received.
    pub headers: &'a [(String, String)],
    /// The raw body.
    pub body: &'a [u8],
}

impl WebhookRequest<'_> {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.trim())
    }
}

fn secret<'s>(secrets: &'s HashMap<String, Secret>, name: &str) -> Result<&'s str, String> {
    secrets
        .get(name)
        .map(Secret::expose)
        .ok_or_else(|| format!("the webhook secret `{name}` is not configured for this tenant"))
}

fn within(now: i64, t: i64, tolerance: u64) -> Result<(), String> {
    if now.abs_diff(t) > tolerance {
        return Err(format!(
            "timestamp {t} is outside the {tolerance} s replay window"
        ));
    }
    Ok(())
}

fn verify_b64(key: &hmac::Key, msg: &[u8], sig: &str) -> Result<(), String> {
    let raw = base64::engine::general_purpose::STANDARD
        .decode(sig.trim())
        .map_err(|_| "the signature is not base64".to_string())?;
    hmac::verify(key, msg, &raw).map_err(|_| "signature mismatch".to_string())
}

/// Verifies `req` per `scheme` with the tenant's `secrets` (and, for `plugin`, its loaded
/// `plugins`); `now` is Unix seconds. `Err` holds the reason it is refused.
pub async fn verify(
    scheme: &WebhookVerify,
    secrets: &HashMap<String, Secret>,
    plugins: Option<&PluginSet>,
    req: &WebhookRequest<'_>,
    now: i64,
) -> Result<(), String> {
    match scheme {
        WebhookVerify::HmacBody {
            header,
            algorithm,
            encoding,
            secret: name,
        } => {
            let alg = match algorithm.to_ascii_lowercase().as_str() {
                "sha1" => hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY,
                "sha256" => hmac::HMAC_SHA256,
                other => return Err(format!("unsupported HMAC algorithm `{other}`")),
            };
            let key = hmac::Key::new(alg, secret(secrets, name)?.as_bytes());
            let sig = req
                .header(header)
                .ok_or_else(|| format!("missing `{header}` header"))?;
            match encoding.as_str() {
                "hex" => {
                    let raw =
                        hex::decode(sig).map_err(|_| "the signature is not hex".to_string())?;
                    hmac::verify(&key, req.body, &raw).map_err(|_| "signature mismatch".into())
                }
                _ => verify_b64(&key, req.body, sig),
            }
        }
        WebhookVerify::Stripe {
            secret: name,
            tolerance_secs,
        } => {
            let h = req
                .header("stripe-signature")
                .ok_or("missing `Stripe-Signature` header")?;
            let mut t = None;
            let mut v1 = Vec::new();
            for part in h.split(',') {
                match part.trim().split_once('=') {
                    Some(("t", v)) => t = v.parse::<i64>().ok(),
                    Some(("v1", v)) => v1.extend(hex::decode(v).ok()),
                    _ => {}
                }
            }
            let t = t.ok_or("malformed `Stripe-Signature` header (no t=)")?;
            within(now, t, *tolerance_secs)?;
            let key = hmac::Key::new(hmac::HMAC_SHA256, secret(secrets, name)?.as_bytes());
            let mut msg = format!("{t}.").into_bytes();
            msg.extend_from_slice(req.body);
            if v1.iter().any(|s| hmac::verify(&key, &msg, s).is_ok()) {
                Ok(())
            } else {
                Err("signature mismatch".into())
            }
        }
        WebhookVerify::HubspotV3 {
            secret: name,
            tolerance_secs,
        } => {
            let sig = req
                .header("x-hubspot-signature-v3")
                .ok_or("missing `X-HubSpot-Signature-v3` header")?;
            let ts = req
                .header("x-hubspot-request-timestamp")
                .ok_or("missing `X-HubSpot-Request-Timestamp` header")?;
            let ms: i64 = ts
                .parse()
                .map_err(|_| "malformed `X-HubSpot-Request-Timestamp` header".to_string())?;
            within(now, ms / 1000, *tolerance_secs)?;
            let key = hmac::Key::new(hmac::HMAC_SHA256, secret(secrets, name)?.as_bytes());
            let mut msg = format!("{}{}", req.method, req.url).into_bytes();
            msg.extend_from_slice(req.body);
            msg.extend_from_slice(ts.as_bytes());
            verify_b64(&key, &msg, sig)
        }
        WebhookVerify::Zendesk { secret: name } => {
            let sig = req
                .header("x-zendesk-webhook-signature")
                .ok_or("missing `X-Zendesk-Webhook-Signature` header")?;
            let ts = req
                .header("x-zendesk-webhook-signature-timestamp")
                .ok_or("missing `X-Zendesk-Webhook-Signature-Timestamp` header")?;
            let key = hmac::Key::new(hmac::HMAC_SHA256, secret(secrets, name)?.as_bytes());
            let mut msg = ts.as_bytes().to_vec();
            msg.extend_from_slice(req.body);
            verify_b64(&key, &msg, sig)
        }
        WebhookVerify::Plugin { plugin } => {
            let h = plugins
                .and_then(|p| p.get(plugin))
                .cloned()
                .ok_or_else(|| format!("webhook plugin `{plugin}` is not loaded"))?;
            let headers = req.headers.to_vec();
            let body = req.body.to_vec();
            let verdict = exec::run(async move { h.verify_webhook(&headers, &body).await })
                .await?
                .map_err(|e| e.to_string())?;
            if verdict.valid {
                Ok(())
            } else {
                Err(verdict
                    .reason
                    .unwrap_or_else(|| format!("refused by plugin `{plugin}`")))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secrets() -> HashMap<String, Secret> {
        [("k".to_string(), Secret::new("whsec_test"))]
            .into_iter()
            .collect()
    }

    fn req<'a>(headers: &'a [(String, String)], body: &'a [u8]) -> WebhookRequest<'a> {
        WebhookRequest {
            method: "POST",
            url: "https://hooks.example/webhooks/t/hubspot",
            headers,
            body,
        }
    }

    fn b64(alg: hmac::Algorithm, msg: &[u8]) -> String {
        let key = hmac::Key::new(alg, b"whsec_test");
        base64::engine::general_purpose::STANDARD.encode(hmac::sign(&key, msg).as_ref())
    }

    #[tokio::test]
    async fn hmac_body_sha1_base64_like_callrail() {
        let scheme = WebhookVerify::HmacBody {
            header: "Signature".into(),
            algorithm: "sha1".into(),
            encoding: "base64".into(),
            secret: "k".into(),
        };
        let body = br#"{"call_id":"C1"}"#;
        let h = vec![(
            "signature".to_string(),
            b64(hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, body),
        )];
        assert_eq!(
            verify(&scheme, &secrets(), None, &req(&h, body), 0).await,
            Ok(())
        );
        let e = verify(&scheme, &secrets(), None, &req(&h, b"{}"), 0).await;
        assert_eq!(e, Err("signature mismatch".into()));
        let e = verify(&scheme, &secrets(), None, &req(&[], body), 0).await;
        assert_eq!(e, Err("missing `Signature` header".into()));
        let e = verify(&scheme, &HashMap::new(), None, &req(&h, body), 0).await;
        assert_eq!(
            e,
            Err("the webhook secret `k` is not configured for this tenant".into())
        );
    }

    #[tokio::test]
    async fn stripe_signature_and_replay_window() {
        let scheme = WebhookVerify::Stripe {
            secret: "k".into(),
            tolerance_secs: 300,
        };
        let body = br#"{"type":"payment_intent.succeeded"}"#;
        let key = hmac::Key::new(hmac::HMAC_SHA256, b"whsec_test");
        let sig = hex::encode(hmac::sign(
            &key,
            &[b"1700000000.".as_slice(), body].concat(),
        ));
        let h = vec![(
            "Stripe-Signature".to_string(),
            format!("t=1700000000,v1=deadbeef,v1={sig}"),
        )];
        assert_eq!(
            verify(&scheme, &secrets(), None, &req(&h, body), 1_700_000_100).await,
            Ok(())
        );
        let e = verify(&scheme, &secrets(), None, &req(&h, body), 1_700_001_000).await;
        assert_eq!(
            e,
            Err("timestamp 1700000000 is outside the 300 s replay window".into())
        );
    }

    #[tokio::test]
    async fn hubspot_v3_and_zendesk() {
        let body = br#"[{"objectId":1}]"#;
        let ts = "1700000000123";
        let msg = [
            b"POSThttps://hooks.example/webhooks/t/hubspot".as_slice(),
            body,
            ts.as_bytes(),
        ]
        .concat();
        let h = vec![
            (
                "X-HubSpot-Signature-v3".to_string(),
                b64(hmac::HMAC_SHA256, &msg),
            ),
            ("X-HubSpot-Request-Timestamp".to_string(), ts.to_string()),
        ];
        let scheme = WebhookVerify::HubspotV3 {
            secret: "k".into(),
            tolerance_secs: 300,
        };
        assert_eq!(
            verify(&scheme, &secrets(), None, &req(&h, body), 1_700_000_001).await,
            Ok(())
        );
        let zmsg = [ts.as_bytes(), body].concat();
        let h = vec![
            (
                "X-Zendesk-Webhook-Signature".to_string(),
                b64(hmac::HMAC_SHA256, &zmsg),
            ),
            (
                "X-Zendesk-Webhook-Signature-Timestamp".to_string(),
                ts.to_string(),
            ),
        ];
        let scheme = WebhookVerify::Zendesk { secret: "k".into() };
        assert_eq!(
            verify(&scheme, &secrets(), None, &req(&h, body), 0).await,
            Ok(())
        );
        let e = verify(&scheme, &secrets(), None, &req(&h, b"[]"), 0).await;
        assert_eq!(e, Err("signature mismatch".into()));
    }
}
