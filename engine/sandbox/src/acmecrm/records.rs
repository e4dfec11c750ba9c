//! AcmeCRM's endpoints: CSV contact lists (50 a page, `X-Next-Page` and `Link`), XML deal
//! lists, and JSON writes answered with an XML `<result>`.

use super::super::state::Shared;
use super::super::util::set_header;
use super::codec::{csv_field, error, escape, text, xml};
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{Method, Uri};
use axum::response::Response;
use serde_json::{Map, Value};
use std::sync::Arc;

const PAGE: usize = 50;
const CONTACT_COLUMNS: [&str; 5] = ["id", "email", "name", "phone", "company"];

fn query(uri: &Uri) -> Vec<(String, String)> {
    url::form_urlencoded::parse(uri.query().unwrap_or_default().as_bytes())
        .into_owned()
        .collect()
}

/// Every signed request lands here (the signature was checked by the auth middleware).
pub(super) async fn dispatch(
    State(shared): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    body: Bytes,
) -> Response {
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
