//! Zendesk users: the record rules (unique e-mail, roles, `user_fields` merged), create,
//! create-or-update by e-mail or external id, the authenticated agent (`users/me`) and
//! `users/search`.

use super::super::state::{Db, Shared};
use super::super::util::looks_like_email;
use super::super::util::{json, scalar_text};
use super::errors::{ZdBody, detail, invalid, now};
use super::paging::paged;
use axum::extract::{Query, State};
use axum::response::Response;
use serde_json::{Map, Value, json};
use std::collections::HashMap;
use std::sync::Arc;

pub(super) const USER_FIELDS: &[&str] = &[
    "name",
    "email",
    "role",
    "phone",
    "external_id",
    "organization_id",
    "user_fields",
    "tags",
    "time_zone",
    "locale",
    "details",
    "notes",
    "verified",
    "alias",
    "signature",
    "custom_role_id",
];

pub(super) fn user_by(db: &Db, field: &str, value: &str) -> Option<String> {
    db.tables.get("users").and_then(|t| {
        t.iter()
            .find(|(_, u)| {
                u[field]
                    .as_str()
                    .is_some_and(|v| v.eq_ignore_ascii_case(value.trim()))
            })
            .map(|(k, _)| k.clone())
    })
}

pub(super) fn apply_user(
    db: &Db,
    rec: &mut Map<String, Value>,
    input: &Map<String, Value>,
    self_id: Option<&str>,
) -> Result<(), Value> {
    for (k, v) in input {
        if !USER_FIELDS.contains(&k.as_str()) {
            continue; // Zendesk ignores unknown user attributes.
        }
        match k.as_str() {
            "email" if !v.is_null() => {
                let e = scalar_text(v);
                if !looks_like_email(&e) {
                    return Err(detail(
                        "email",
                        "InvalidFormat",
                        format!("Email: {e} is not properly formatted"),
                    ));
                }
                if let Some(other) = user_by(db, "email", &e)
                    && Some(other.as_str()) != self_id
                {
                    return Err(detail(
                        "email",
                        "DuplicateValue",
                        format!("Email: {e} is already being used by another user"),
                    ));
                }
                rec.insert(k.clone(), json!(e.to_lowercase()));
            }
            "role" => match v.as_str() {
                Some("end-user" | "agent" | "admin") => {
                    rec.insert(k.clone(), v.clone());
                }
                _ => return Err(detail("role", "InvalidValue", "Role: is invalid".into())),
            },
            "user_fields" => {
                let mut merged = rec
                    .get("user_fields")
                    .and_then(Value::as_object)
                    .cloned()
                    .unwrap_or_default();
                if let Value::Object(m) = v {
                    merged.extend(m.clone());
                }
                rec.insert(k.clone(), Value::Object(merged));
            }
            _ => {
                rec.insert(k.clone(), v.clone());
            }
        }
    }
    Ok(())
}

pub(super) fn new_user(
    shared: &Shared,
    db: &mut Db,
    input: &Map<String, Value>,
) -> Result<Value, Value> {
    if input
        .get("name")
        .and_then(Value::as_str)
        .is_none_or(|s| s.trim().is_empty())
    {
        return Err(detail(
            "name",
            "BlankValue",
            "Name: is too short (minimum is 1 character)".into(),
        ));
    }
    let mut rec = Map::new();
    apply_user(db, &mut rec, input, None)?;
    let id = db.next_id() + 360_000_000_000;
    let t = now();
    rec.insert("id".into(), json!(id));
    rec.insert(
        "url".into(),
        json!(format!("{}/api/v2/users/{id}.json", shared.base_url)),
    );
    rec.entry("email").or_insert(Value::Null);
    rec.entry("role").or_insert(json!("end-user"));
    rec.entry("phone").or_insert(Value::Null);
    rec.entry("external_id").or_insert(Value::Null);
    rec.entry("organization_id").or_insert(Value::Null);
    rec.entry("user_fields").or_insert(json!({}));
    rec.entry("tags").or_insert(json!([]));
    rec.insert("active".into(), json!(true));
    rec.insert("verified".into(), json!(false));
    rec.insert("created_at".into(), json!(t));
    rec.insert("updated_at".into(), json!(t));
    let v = Value::Object(rec);
    db.insert("users", &id.to_string(), v.clone());
    db.changed("users", &id.to_string());
    Ok(v)
}

/// Creates, or updates the user with the same email or external_id: (user, created?).
pub(super) fn upsert_user(
    shared: &Shared,
    db: &mut Db,
    input: &Map<String, Value>,
) -> Result<(Value, bool), Value> {
    let existing = input
        .get("email")
        .and_then(Value::as_str)
        .and_then(|e| user_by(db, "email", e))
        .or_else(|| {
            input
                .get("external_id")
                .map(scalar_text)
                .filter(|x| !x.is_empty())
                .and_then(|x| user_by(db, "external_id", &x))
        });
    match existing {
        Some(id) => {
            let Some(Value::Object(mut rec)) = db.get("users", &id).cloned() else {
                return Err(detail("id", "NotFound", "User not found".into()));
            };
            apply_user(db, &mut rec, input, Some(&id))?;
            rec.insert("updated_at".into(), json!(now()));
            let v = Value::Object(rec);
            db.table("users").insert(id.clone(), v.clone());
            db.changed("users", &id);
            Ok((v, false))
        }
        None => new_user(shared, db, input).map(|v| (v, true)),
    }
}

// ---------------------------------------------------------------------------------------
/// The authenticated agent's user record, created on first use.
pub(super) fn agent(shared: &Shared, db: &mut Db) -> Result<Value, Value> {
    if let Some(id) = user_by(db, "email", shared.cred("email"))
        && let Some(u) = db.get("users", &id)
    {
        return Ok(u.clone());
    }
    let mut a = Map::new();
    a.insert("name".into(), json!("Sandbox Agent"));
    a.insert("email".into(), json!(shared.cred("email")));
    a.insert("role".into(), json!("admin"));
    new_user(shared, db, &a)
}

pub(super) async fn me(State(shared): State<Arc<Shared>>) -> Response {
    let user = agent(&shared, &mut shared.db());
    match user {
        Ok(u) => json(200, json!({"user": u})),
        Err(d) => invalid(d),
    }
}

pub(super) async fn search_users(
    State(shared): State<Arc<Shared>>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let query = q.get("query").cloned().unwrap_or_default();
    let external = q.get("external_id").cloned();
    if query.is_empty() && external.is_none() {
        return json(
            400,
            json!({"error": "InvalidParameter", "description": "query or external_id is required"}),
        );
    }
    let users: Vec<Value> = shared
        .db()
        .tables
        .get("users")
        .map(|t| t.values().cloned().collect())
        .unwrap_or_default();
    let hits: Vec<Value> = users
        .into_iter()
        .filter(|u| {
            if let Some(x) = &external {
                return scalar_text(&u["external_id"]) == *x;
            }
            let (field, value) = match query.split_once(':') {
                Some((f, v)) => (Some(f.trim()), v.trim()),
                None => (None, query.trim()),
            };
            let value = value.trim_matches('"').to_lowercase();
            let text = |f: &str| scalar_text(&u[f]).to_lowercase();
            match field {
                Some("email") => text("email") == value,
                Some("name") => text("name").contains(&value),
                Some("external_id") => text("external_id") == value,
                Some("phone") => text("phone") == value,
                Some("role") => text("role") == value,
                Some(_) => false,
                None => ["email", "name", "phone", "external_id"]
                    .iter()
                    .any(|f| text(f).contains(&value)),
            }
        })
        .collect();
    paged(&shared, "/api/v2/users/search", "users", &q, hits)
}

pub(super) async fn create_or_update(
    State(shared): State<Arc<Shared>>,
    ZdBody(input): ZdBody,
) -> Response {
    let inner = input
        .get("user")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    let result = upsert_user(&shared, &mut shared.db(), &inner);
    match result {
        Ok((u, created)) => json(if created { 201 } else { 200 }, json!({"user": u})),
        Err(d) => invalid(d),
    }
}
