//! AcmeCRM emulator: a CRM whose API needs HMAC-signed requests and answers in CSV (contacts)
//! and XML (deals, write results, errors) — the kind of system a spec alone cannot talk to, so
//! connectors reach it through plugins (`plugins/acme-codec`, `plugins/crm-connector`).
//!
//! Every request carries `X-Acme-Key` (the key id), `X-Acme-Timestamp` (Unix ms) and
//! `X-Acme-Signature` = hex(HMAC-SHA256(api_secret, METHOD \n PATH?QUERY \n TIMESTAMP \n
//! hex(SHA-256(body))); a wrong or missing signature is 401 with an XML error
//! (`<errors><error code="…"><message>…</message></error></errors>`). Contacts:
//! `GET /contacts[?email=…][&page=N]` (CSV, 50 per page, `X-Next-Page` and `Link: rel="next"`
//! when more), `POST /contacts` (JSON body; 409 on a duplicate email), `PUT /contacts/{id}`.
//! Deals: `GET /deals` (XML), `POST /deals`. Writes answer `<result status="created|updated">
//! <id>…</id></result>`.

use super::Credentials;
use super::ratelimit::Decision;
use super::state::Shared;
use super::util::set_header;
use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, Method, Uri};
use axum::response::Response;
use hmac::{Hmac, Mac};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use std::sync::Arc;
use std::time::Duration;

/// 120 requests per minute.
pub(super) const DEFAULT_LIMIT: (u32, Duration) = (120, Duration::from_secs(60));
const PAGE: usize = 50;
const CONTACT_COLUMNS: [&str; 5] = ["id", "email", "name", "phone", "company"];

pub(super) fn credentials(_base_url: &str) -> Credentials {
    Credentials::from_pairs(&[
        ("api_secret", "sandbox-acme-signing-secret"),
        ("key_id", "sandbox-key-1"),
    ])
}

pub(super) fn router(shared: Arc<Shared>) -> Router {
    Router::new().fallback(handle).with_state(shared)
}

fn xml(status: u16, body: String) -> Response {
    let mut r = Response::new(Body::from(body));
    *r.status_mut() = axum::http::StatusCode::from_u16(status)
        .unwrap_or(axum::http::StatusCode::INTERNAL_SERVER_ERROR);
    set_header(r.headers_mut(), "content-type", "application/xml");
    r
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn error(status: u16, code: &str, message: &str) -> Response {
    xml(
        status,
        format!(
            "<?xml version=\"1.0\"?><errors><error code=\"{code}\"><message>{}</message></error></errors>",
            escape(message)
        ),
    )
}

pub(super) fn server_error(_shared: &Shared, status: u16) -> Response {
    error(status, "server_error", "AcmeCRM is having a moment")
}

pub(super) fn throttled(_shared: &Shared, d: &Decision) -> Response {
    let mut r = error(429, "rate_limited", "too many requests");
    set_header(
        r.headers_mut(),
        "retry-after",
        &d.retry_after.as_secs().max(1).to_string(),
    );
    r
}

pub(super) fn limit_headers(d: &Decision, h: &mut HeaderMap) {
    set_header(h, "x-ratelimit-remaining", &d.remaining.to_string());
}

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

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

fn text(v: Option<&Value>) -> String {
    match v {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Null) | None => String::new(),
        Some(other) => other.to_string(),
    }
}

fn query(uri: &Uri) -> Vec<(String, String)> {
    url::form_urlencoded::parse(uri.query().unwrap_or_default().as_bytes())
        .into_owned()
        .collect()
}

async fn handle(
    State(shared): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let h = |n: &str| {
        headers
            .get(n)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string()
    };
    let pq = uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
    let expected = signature(
        shared.cred("api_secret"),
        method.as_str(),
        pq,
        &h("x-acme-timestamp"),
        &body,
    );
    if h("x-acme-key") != shared.cred("key_id") || h("x-acme-signature") != expected {
        return error(401, "bad_signature", "the request signature does not match");
    }
    let segs: Vec<&str> = uri.path().trim_matches('/').split('/').collect();
    match (method.as_str(), segs.as_slice()) {
        ("GET", ["contacts"]) => list_contacts(&shared, &uri),
        ("POST", ["contacts"]) => write(&shared, "contacts", None, &body),
        ("PUT" | "PATCH", ["contacts", id]) => write(&shared, "contacts", Some(id), &body),
        ("GET", ["deals"]) => list_deals(&shared),
        ("POST", ["deals"]) => write(&shared, "deals", None, &body),
        _ => error(
            404,
            "not_found",
            &format!("no route {} {}", method, uri.path()),
        ),
    }
}

fn list_contacts(shared: &Shared, uri: &Uri) -> Response {
    let q = query(uri);
    let get = |k: &str| q.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    let page: usize = get("page").and_then(|p| p.parse().ok()).unwrap_or(1).max(1);
    let email = get("email").map(str::to_ascii_lowercase);
    let all: Vec<Value> = shared
        .records("contacts")
        .into_iter()
        .filter(|r| {
            email
                .as_deref()
                .is_none_or(|e| text(r.get("email")).to_ascii_lowercase() == e)
        })
        .collect();
    let mut out = CONTACT_COLUMNS.join(",");
    out.push_str("\r\n");
    for r in all.iter().skip((page - 1) * PAGE).take(PAGE) {
        let row: Vec<String> = CONTACT_COLUMNS
            .iter()
            .map(|c| csv_field(&text(r.get(*c))))
            .collect();
        out.push_str(&row.join(","));
        out.push_str("\r\n");
    }
    let mut r = Response::new(Body::from(out));
    set_header(r.headers_mut(), "content-type", "text/csv");
    if all.len() > page * PAGE {
        let mut next: Vec<(String, String)> = q.into_iter().filter(|(k, _)| k != "page").collect();
        next.push(("page".into(), (page + 1).to_string()));
        let qs = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(next)
            .finish();
        set_header(r.headers_mut(), "x-next-page", &(page + 1).to_string());
        set_header(
            r.headers_mut(),
            "link",
            &format!("<{}{}?{qs}>; rel=\"next\"", shared.base_url, uri.path()),
        );
    }
    r
}

fn list_deals(shared: &Shared) -> Response {
    let mut out = String::from("<?xml version=\"1.0\"?><deals>");
    for d in shared.records("deals") {
        out.push_str(&format!("<deal id=\"{}\">", escape(&text(d.get("id")))));
        if let Value::Object(m) = &d {
            for (k, v) in m.iter().filter(|(k, _)| k.as_str() != "id") {
                out.push_str(&format!("<{k}>{}</{k}>", escape(&text(Some(v)))));
            }
        }
        out.push_str("</deal>");
    }
    out.push_str("</deals>");
    xml(200, out)
}

fn write(shared: &Shared, table: &str, id: Option<&str>, body: &[u8]) -> Response {
    let Ok(Value::Object(fields)) = serde_json::from_slice::<Value>(body) else {
        return error(400, "invalid_body", "the body must be a JSON object");
    };
    // Field names become XML elements: keep them to letters, digits and `_`.
    if let Some(bad) = fields
        .keys()
        .find(|k| k.is_empty() || !k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'))
    {
        return error(400, "invalid_field", &format!("invalid field name `{bad}`"));
    }
    let mut db = shared.db();
    let (id, status, code) = match id {
        Some(id) => {
            if db.get(table, id).is_none() {
                return error(404, "not_found", &format!("no {table} record `{id}`"));
            }
            (id.to_string(), "updated", 200)
        }
        None => {
            if table == "contacts" {
                let email = text(fields.get("email")).to_ascii_lowercase();
                if email.is_empty() {
                    return error(422, "missing_email", "a contact needs an email");
                }
                let dup = db
                    .table(table)
                    .values()
                    .any(|r| text(r.get("email")).to_ascii_lowercase() == email);
                if dup {
                    return error(
                        409,
                        "duplicate",
                        &format!("a contact with email {email} exists"),
                    );
                }
            }
            let n = db.next_id();
            let prefix = if table == "contacts" { "c" } else { "d" };
            (format!("{prefix}-{n}"), "created", 201)
        }
    };
    let mut record: Map<String, Value> = db
        .get(table, &id)
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    record.insert("id".into(), Value::String(id.clone()));
    for (k, v) in fields {
        if k != "id" {
            record.insert(k, v);
        }
    }
    db.insert(table, &id, Value::Object(record));
    xml(
        code,
        format!(
            "<?xml version=\"1.0\"?><result status=\"{status}\"><id>{}</id></result>",
            escape(&id)
        ),
    )
}
