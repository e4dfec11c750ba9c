//! Salesforce's credentials: the OAuth token endpoint (password, refresh_token and JWT
//! bearer grants, RS256 checked against a test key pair) and bearer access tokens.

use super::super::state::Shared;
use super::super::util::{bearer, json, now_unix};
use super::errors::{err, not_found};
use super::{ORG_ID, USER_ID};
use axum::body::Bytes;
use axum::extract::State;
use axum::http::request::Parts;
use axum::response::Response;
use base64::Engine as _;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::Arc;

/// The private half of the JWT bearer test key pair (PKCS#8 PEM); a test key, not a secret.
pub const JWT_TEST_PRIVATE_KEY_PEM: &str = include_str!("keys/salesforce-jwt-test-key.pem");
const JWT_TEST_PUBLIC_KEY_PEM: &str = include_str!("keys/salesforce-jwt-test-key.pub.pem");

/// The version segment of a data path (`/services/data/{version}/…`) must be a real API
/// version (else 404, before any auth check, as Salesforce answers); then the bearer token
/// must be the static one or one the token endpoint issued.
pub(super) fn authorize(shared: &Shared, req: &Parts) -> Result<(), Response> {
    if let Some(version) = req
        .uri
        .path()
        .strip_prefix("/services/data/")
        .and_then(|rest| rest.split('/').next())
    {
        check_version(version)?;
    }
    let ok = bearer(&req.headers)
        .is_some_and(|t| t == shared.cred("access_token") || shared.db().issued_tokens.contains(t));
    if ok {
        Ok(())
    } else {
        Err(err(401, "INVALID_SESSION_ID", "Session expired or invalid"))
    }
}

fn check_version(v: &str) -> Result<(), Response> {
    let ok = v
        .strip_prefix('v')
        .is_some_and(|n| n.parse::<f64>().is_ok_and(|f| (20.0..=70.0).contains(&f)));
    if ok { Ok(()) } else { Err(not_found()) }
}

fn oauth_error(error: &str, description: &str) -> Response {
    json(
        400,
        json!({"error": error, "error_description": description}),
    )
}

pub(super) async fn token(State(shared): State<Arc<Shared>>, body: Bytes) -> Response {
    let form: HashMap<String, String> = serde_urlencoded::from_bytes(&body).unwrap_or_default();
    let field = |k: &str| form.get(k).map(String::as_str).unwrap_or_default();
    let grant = field("grant_type");
    match grant {
        "password" => {
            if field("client_id") != shared.cred("client_id") {
                return oauth_error("invalid_client_id", "client identifier invalid");
            }
            if field("client_secret") != shared.cred("client_secret") {
                return oauth_error("invalid_client", "invalid client credentials");
            }
            let pw = field("password");
            let with_token = format!(
                "{}{}",
                shared.cred("password"),
                shared.cred("security_token")
            );
            // 127.0.0.1 counts as a trusted IP range, so the bare password works too.
            if field("username") != shared.cred("username")
                || (pw != with_token && pw != shared.cred("password"))
            {
                return oauth_error("invalid_grant", "authentication failure");
            }
        }
        "refresh_token" => {
            if field("client_id") != shared.cred("client_id") {
                return oauth_error("invalid_client_id", "client identifier invalid");
            }
            if form.contains_key("client_secret")
                && field("client_secret") != shared.cred("client_secret")
            {
                return oauth_error("invalid_client", "invalid client credentials");
            }
            let rt = field("refresh_token");
            if rt != shared.cred("refresh_token") && !shared.db().refresh_tokens.contains(rt) {
                return oauth_error("invalid_grant", "expired access/refresh token");
            }
        }
        "authorization_code" => {
            return oauth_error("invalid_grant", "invalid authorization code");
        }
        "urn:ietf:params:oauth:grant-type:jwt-bearer" => {
            if let Err(desc) = check_jwt(&shared, field("assertion")) {
                return oauth_error(desc.0, &desc.1);
            }
        }
        _ => return oauth_error("unsupported_grant_type", "grant type not supported"),
    }
    let mut db = shared.db();
    let access = format!("{}!{}", &ORG_ID[..15], db.token(shared.seed));
    db.issued_tokens.insert(access.clone());
    drop(db);
    let issued_at = chrono::Utc::now().timestamp_millis().to_string();
    let signature = base64::engine::general_purpose::STANDARD
        .encode(super::super::state::mix(shared.seed, issued_at.len() as u64).to_be_bytes());
    let body = json!({
        "access_token": access,
        "instance_url": shared.base_url,
        "id": format!("{}/id/{ORG_ID}/{USER_ID}", shared.base_url),
        "token_type": "Bearer",
        "issued_at": issued_at,
        "signature": signature,
        "scope": "api refresh_token",
    });
    // None of the three grants returns a new refresh token.
    json(200, body)
}

/// Checks a JWT bearer assertion: RS256 over the test public key, iss, sub, aud, exp.
fn check_jwt(shared: &Shared, assertion: &str) -> Result<(), (&'static str, String)> {
    let invalid = |m: &str| ("invalid_grant", m.to_string());
    let parts: Vec<&str> = assertion.split('.').collect();
    let [h, p, s] = parts.as_slice() else {
        return Err(invalid("invalid assertion"));
    };
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let header: Value = b64
        .decode(h.trim_end_matches('='))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .ok_or_else(|| invalid("invalid assertion"))?;
    if header.get("alg").and_then(Value::as_str) != Some("RS256") {
        return Err(invalid("invalid assertion: alg must be RS256"));
    }
    let sig = b64
        .decode(s.trim_end_matches('='))
        .map_err(|_| invalid("invalid assertion"))?;
    let der = pem_der(JWT_TEST_PUBLIC_KEY_PEM);
    let key =
        ring::signature::UnparsedPublicKey::new(&ring::signature::RSA_PKCS1_2048_8192_SHA256, der);
    key.verify(format!("{h}.{p}").as_bytes(), &sig)
        .map_err(|_| invalid("invalid assertion: signature does not verify"))?;
    let claims: Value = b64
        .decode(p.trim_end_matches('='))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .ok_or_else(|| invalid("invalid assertion"))?;
    if claims.get("iss").and_then(Value::as_str) != Some(shared.cred("client_id")) {
        return Err(("invalid_client_id", "client identifier invalid".into()));
    }
    if claims.get("sub").and_then(Value::as_str) != Some(shared.cred("username")) {
        return Err(invalid("user hasn't approved this consumer"));
    }
    let aud_ok = |a: &str| {
        let a = a.trim_end_matches('/');
        a == shared.base_url
            || a == "https://login.salesforce.com"
            || a == "https://test.salesforce.com"
    };
    let aud = match claims.get("aud") {
        Some(Value::String(a)) => aud_ok(a),
        Some(Value::Array(a)) => a.iter().filter_map(Value::as_str).any(aud_ok),
        _ => false,
    };
    if !aud {
        return Err(invalid("audience is invalid"));
    }
    // `exp` is NumericDate, which Salesforce also takes as a numeric string (what
    // simple-salesforce sends).
    let exp = claims
        .get("exp")
        .and_then(|e| {
            e.as_i64()
                .or_else(|| e.as_str().and_then(|s| s.trim().parse().ok()))
        })
        .unwrap_or(0);
    if exp <= now_unix() {
        return Err(invalid("expired authorization code"));
    }
    Ok(())
}

/// The DER bytes inside a PEM block.
fn pem_der(pem: &str) -> Vec<u8> {
    let b64: String = pem
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .collect::<Vec<_>>()
        .concat();
    base64::engine::general_purpose::STANDARD
        .decode(b64.trim())
        .unwrap_or_default()
}
