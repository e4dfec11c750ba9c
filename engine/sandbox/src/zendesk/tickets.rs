//! Zendesk tickets: the record rules (enumerations, requester found or created, first
//! comment as description), audits.

use super::super::state::{Db, Shared};
use super::super::util::scalar_text;
use super::comments;
use super::errors::{detail, now};
use super::users::{agent, upsert_user};
use serde_json::{Map, Value, json};

pub(super) fn check_enum(field: &str, v: &Value, allowed: &[&str]) -> Result<(), Value> {
    match v {
        Value::Null => Ok(()),
        Value::String(s) if allowed.contains(&s.as_str()) => Ok(()),
        _ => {
            let name = format!("{}{}", field[..1].to_uppercase(), &field[1..]);
            Err(detail(field, "InvalidValue", format!("{name}: is invalid")))
        }
    }
}

pub(super) fn apply_ticket(
    shared: &Shared,
    db: &mut Db,
    rec: &mut Map<String, Value>,
    input: &Map<String, Value>,
) -> Result<(), Value> {
    for (k, v) in input {
        match k.as_str() {
            "priority" => check_enum(k, v, &["urgent", "high", "normal", "low"])?,
            "status" => check_enum(
                k,
                v,
                &["new", "open", "pending", "hold", "solved", "closed"],
            )?,
            "type" => check_enum(k, v, &["problem", "incident", "question", "task"])?,
            "comment" => {
                let body = v
                    .get("body")
                    .or_else(|| v.get("html_body"))
                    .map(scalar_text)
                    .unwrap_or_default();
                if !rec.contains_key("description") {
                    rec.insert("description".into(), json!(body));
                }
                continue;
            }
            "requester" => {
                let Some(r) = v.as_object() else {
                    return Err(detail(
                        "requester",
                        "InvalidValue",
                        "Requester: is invalid".into(),
                    ));
                };
                let (user, _) = upsert_user(shared, db, r)?;
                rec.insert("requester_id".into(), user["id"].clone());
                continue;
            }
            "requester_id" | "assignee_id" | "submitter_id" => {
                let id = scalar_text(v);
                if !v.is_null() && db.get("users", &id).is_none() {
                    let name = k.trim_end_matches("_id");
                    return Err(detail(
                        name,
                        "InvalidValue",
                        format!("{}: is invalid", name),
                    ));
                }
            }
            "custom_fields" if !v.is_array() => {
                return Err(detail(
                    "custom_fields",
                    "InvalidValue",
                    "Custom fields: must be an array of {id, value}".into(),
                ));
            }
            _ => {}
        }
        rec.insert(k.clone(), v.clone());
    }
    Ok(())
}

pub(super) fn new_ticket(
    shared: &Shared,
    db: &mut Db,
    input: &Map<String, Value>,
) -> Result<Value, Value> {
    let has_comment = input
        .get("comment")
        .and_then(|c| c.get("body").or_else(|| c.get("html_body")))
        .is_some_and(|b| !scalar_text(b).trim().is_empty())
        || input
            .get("description")
            .is_some_and(|d| !scalar_text(d).trim().is_empty());
    if !has_comment {
        return Err(detail(
            "description",
            "BlankValue",
            "Description: cannot be blank".into(),
        ));
    }
    let mut rec = Map::new();
    apply_ticket(shared, db, &mut rec, input)?;
    if !rec.contains_key("requester_id") {
        // The authenticated agent is the requester when none is given.
        let agent = agent(shared, db)?;
        rec.insert("requester_id".into(), agent["id"].clone());
    }
    let id = db.next_id();
    let t = now();
    let status = if rec.get("assignee_id").is_some_and(|a| !a.is_null()) {
        "open"
    } else {
        "new"
    };
    rec.insert("id".into(), json!(id));
    rec.insert(
        "url".into(),
        json!(format!("{}/api/v2/tickets/{id}.json", shared.base_url)),
    );
    rec.entry("status").or_insert(json!(status));
    rec.entry("subject").or_insert(Value::Null);
    rec.insert("raw_subject".into(), rec["subject"].clone());
    rec.entry("priority").or_insert(Value::Null);
    rec.entry("type").or_insert(Value::Null);
    rec.entry("external_id").or_insert(Value::Null);
    rec.entry("assignee_id").or_insert(Value::Null);
    rec.entry("group_id").or_insert(Value::Null);
    rec.entry("organization_id").or_insert(Value::Null);
    rec.entry("tags").or_insert(json!([]));
    rec.entry("custom_fields").or_insert(json!([]));
    rec.insert("submitter_id".into(), rec["requester_id"].clone());
    rec.insert(
        "via".into(),
        json!({"channel": "api", "source": {"from": {}, "to": {}, "rel": null}}),
    );
    rec.insert("created_at".into(), json!(t));
    rec.insert("updated_at".into(), json!(t));
    let v = Value::Object(rec);
    db.insert("tickets", &id.to_string(), v.clone());
    if let Some(c) = comments::first(input) {
        comments::record(db, &id.to_string(), &c, &v["submitter_id"]);
    }
    db.changed("tickets", &id.to_string());
    Ok(v)
}

pub(super) fn audit(shared: &Shared, db: &mut Db, ticket: &Value) -> Value {
    json!({"id": db.next_id(), "ticket_id": ticket["id"], "created_at": now(),
           "author_id": ticket["submitter_id"], "events": [], "metadata": {},
           "via": {"channel": "api"}, "request_id": shared.uuid()})
}
