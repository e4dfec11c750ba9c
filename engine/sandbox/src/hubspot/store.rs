//! HubSpot's object store: the object types, how a stored object is rendered, property
//! checks, the contact e-mail index, and the writes every endpoint (single, batch, seed)
//! shares.

use super::super::state::Db;
use super::super::util::{looks_like_email, now_iso, scalar_text};
use super::errors::{WriteError, conflict};
use super::{associations, properties};
use serde_json::{Map, Value, json};

/// Canonical object name for a path segment (`contacts` or `0-1`).
pub(super) fn object_name(seg: &str) -> Option<&'static str> {
    match seg.to_ascii_lowercase().as_str() {
        "contacts" | "contact" | "0-1" => Some("contacts"),
        "companies" | "company" | "0-2" => Some("companies"),
        "deals" | "deal" | "0-3" => Some("deals"),
        "tickets" | "ticket" | "0-5" => Some("tickets"),
        "tasks" | "task" | "0-27" => Some("tasks"),
        _ => None,
    }
}

pub(super) fn default_properties(object: &str) -> &'static [&'static str] {
    match object {
        "contacts" => &[
            "createdate",
            "email",
            "firstname",
            "hs_object_id",
            "lastmodifieddate",
            "lastname",
        ],
        "companies" => &[
            "createdate",
            "domain",
            "hs_lastmodifieddate",
            "hs_object_id",
            "name",
        ],
        "deals" => &[
            "amount",
            "closedate",
            "createdate",
            "dealname",
            "dealstage",
            "hs_lastmodifieddate",
            "hs_object_id",
            "pipeline",
        ],
        "tasks" => &["hs_createdate", "hs_lastmodifieddate", "hs_object_id"],
        _ => &[
            "content",
            "createdate",
            "hs_lastmodifieddate",
            "hs_object_id",
            "hs_pipeline",
            "hs_pipeline_stage",
            "hs_ticket_category",
            "hs_ticket_priority",
            "subject",
        ],
    }
}

/// The stored object as returned: default properties plus `wanted`, absent ones as null.
pub(super) fn render(record: &Value, object: &str, wanted: &[String], all: bool) -> Value {
    let mut out = record.clone();
    let stored = record.get("properties").and_then(Value::as_object);
    let mut props = Map::new();
    let names = default_properties(object)
        .iter()
        .map(|s| s.to_string())
        .chain(wanted.iter().cloned());
    for name in names {
        let v = stored
            .and_then(|p| p.get(&name))
            .cloned()
            .unwrap_or(Value::Null);
        props.insert(name, v);
    }
    if all && let Some(p) = stored {
        for (k, v) in p {
            props.entry(k.clone()).or_insert_with(|| v.clone());
        }
    }
    let mut keys: Vec<_> = props.into_iter().collect();
    keys.sort_by(|a, b| a.0.cmp(&b.0));
    out["properties"] = Value::Object(keys.into_iter().collect());
    if let Some(o) = out.as_object_mut() {
        o.remove("objectWriteTraceId");
        // Associations are returned only when a read asks for them (`for_read`).
        o.remove("associations");
    }
    out
}

/// The properties of a write, checked as HubSpot checks them before anything is written:
/// values are scalars (made strings), every property exists in the portal's registry, a
/// tenant enumeration's value is one of its options, e-mails look like e-mails.
pub(super) fn checked_properties(
    db: &Db,
    object: &str,
    input: &Value,
) -> Result<Map<String, Value>, WriteError> {
    let props = clean_properties(object, input.get("properties"))
        .map_err(|m| WriteError::new(400, "VALIDATION_ERROR", m, Value::Null))?;
    properties::check_known(db, object, &props)?;
    properties::check_options(db, object, &props)?;
    super::owners::check(db, &props)?;
    super::pipelines::check(object, &props)?;
    Ok(props)
}

/// Checks and normalises a `properties` object: every value becomes a string.
pub(super) fn clean_properties(
    object: &str,
    props: Option<&Value>,
) -> Result<Map<String, Value>, String> {
    let Some(props) = props else {
        return Ok(Map::new());
    };
    let Some(map) = props.as_object() else {
        return Err("Invalid input JSON: `properties` must be an object".to_string());
    };
    let mut out = Map::new();
    let mut invalid = Vec::new();
    for (k, v) in map {
        let text = match v {
            Value::Array(_) | Value::Object(_) => {
                invalid.push(
                    json!({"isValid": false, "message": format!("{k} must be a string"),
                                    "error": "INVALID_PROPERTY_VALUE", "name": k}),
                );
                continue;
            }
            other => scalar_text(other),
        };
        if object == "contacts" && k == "email" && !text.is_empty() && !looks_like_email(&text) {
            invalid.push(json!({"isValid": false,
                                "message": format!("Email address {text} is invalid"),
                                "error": "INVALID_EMAIL", "name": "email"}));
            continue;
        }
        out.insert(k.clone(), Value::String(text));
    }
    if invalid.is_empty() {
        Ok(out)
    } else {
        Err(format!(
            "Property values were not valid: {}",
            Value::Array(invalid)
        ))
    }
}

/// The index key of a contact e-mail (case-insensitive).
fn email_key(email: &str) -> String {
    format!("contacts/email/{}", email.trim().to_lowercase())
}

/// The id of a live contact with this e-mail (case-insensitive), if any.
pub(super) fn contact_by_email(db: &Db, email: &str, except: Option<&str>) -> Option<String> {
    if email.trim().is_empty() {
        return None;
    }
    db.unique
        .get(&email_key(email))
        .filter(|id| Some(id.as_str()) != except)
        .cloned()
}

/// Keeps the e-mail index in step with a contact's old and new e-mail.
pub(super) fn reindex_email(db: &mut Db, id: &str, old: Option<&str>, new: Option<&str>) {
    if let Some(o) = old.filter(|o| !o.trim().is_empty()) {
        db.unique.remove(&email_key(o));
    }
    if let Some(n) = new.filter(|n| !n.trim().is_empty()) {
        db.unique.insert(email_key(n), id.to_string());
    }
}

/// Archives (removes) an object, dropping it from the e-mail index.
pub(super) fn archive_object(db: &mut Db, object: &str, id: &str) {
    if let Some(r) = db.table(object).shift_remove(id) {
        db.indexed(object, id);
        if object == "contacts" {
            let email = r["properties"]["email"].as_str().map(String::from);
            reindex_email(db, id, email.as_deref(), None);
        }
    }
}

pub(super) fn insert_object(
    db: &mut Db,
    object: &str,
    input: &Value,
) -> Result<(String, Value), WriteError> {
    let mut props = checked_properties(db, object, input)?;
    let links = associations::validate(db, object, input.get("associations"))?;
    if object == "contacts"
        && let Some(email) = props.get("email").and_then(Value::as_str)
        && let Some(existing) = contact_by_email(db, email, None)
    {
        return Err(conflict(&existing));
    }
    if object == "tickets" && !props.contains_key("hs_pipeline_stage") {
        return Err(WriteError::new(
            400,
            "VALIDATION_ERROR",
            "Property values were not valid: [{\"isValid\":false,\"message\":\"hs_pipeline_stage is required\",\"error\":\"REQUIRED_PROPERTY\",\"name\":\"hs_pipeline_stage\"}]".to_string(),
            Value::Null,
        ));
    }
    if object == "tasks" {
        check_task(&props)?;
    }
    // Ids are never issued twice (records loaded with `seed` keep theirs).
    let id = loop {
        let id = (db.next_id() + 100_000).to_string();
        if db.get(object, &id).is_none() {
            break id;
        }
    };
    let now = now_iso();
    if object == "tasks" {
        props.insert("hs_createdate".into(), Value::String(now.clone()));
    }
    props.insert("hs_object_id".into(), Value::String(id.clone()));
    props.insert("createdate".into(), Value::String(now.clone()));
    props.insert("lastmodifieddate".into(), Value::String(now.clone()));
    props.insert("hs_lastmodifieddate".into(), Value::String(now.clone()));
    let record = json!({"id": id, "properties": props, "createdAt": now, "updatedAt": now,
                        "archived": false});
    db.insert(object, &id, record);
    associations::store(db, object, &id, &links);
    if object == "contacts" {
        let email = db
            .get(object, &id)
            .and_then(|r| r["properties"]["email"].as_str())
            .map(String::from);
        reindex_email(db, &id, None, email.as_deref());
    }
    db.indexed(object, &id);
    for l in &links {
        db.indexed(l.object(), l.id());
    }
    let record = db.get(object, &id).cloned().unwrap_or(Value::Null);
    Ok((id, record))
}

/// Loads one fixture record (see [`crate::Emulator::seed`]): its numeric id and properties are
/// kept, bookkeeping properties filled in when absent, e-mails indexed (duplicates refused);
/// properties the portal does not have are registered (the fixture's portal had them);
/// associations are taken in HubSpot's read shape, as ids by object type, or as a create's
/// array, and are searchable at once.
pub(crate) fn seed(db: &mut Db, object: &str, input: &Value) -> Result<(), String> {
    let object = object_name(object).ok_or_else(|| format!("unknown object `{object}`"))?;
    let id = input.get("id").map(scalar_text).unwrap_or_default();
    let Ok(n) = id.parse::<u64>() else {
        return Err(format!("`id` must be a numeric string, found `{id}`"));
    };
    if db.get(object, &id).is_some() {
        return Err(format!("id {id} is already loaded"));
    }
    let mut props = clean_properties(object, input.get("properties"))?;
    if object == "contacts"
        && let Some(email) = props.get("email").and_then(Value::as_str)
        && let Some(existing) = contact_by_email(db, email, None)
    {
        return Err(format!("Contact already exists. Existing ID: {existing}"));
    }
    let created = props
        .get("createdate")
        .and_then(Value::as_str)
        .map_or_else(now_iso, String::from);
    for k in ["createdate", "lastmodifieddate", "hs_lastmodifieddate"] {
        props
            .entry(k)
            .or_insert_with(|| Value::String(created.clone()));
    }
    props.insert("hs_object_id".into(), Value::String(id.clone()));
    let updated = props
        .get("lastmodifieddate")
        .cloned()
        .unwrap_or_else(|| Value::String(created.clone()));
    let mut record = json!({"id": id, "properties": props, "createdAt": created,
                            "updatedAt": updated, "archived": false});
    if let Some(a) = input.get("associations").filter(|a| !a.is_null()) {
        let stored = associations::from_fixture(object, a)?;
        if stored.as_object().is_some_and(|m| !m.is_empty()) {
            record["associations"] = stored;
        }
    }
    if let Some(p) = record["properties"].as_object() {
        properties::register_seeded(db, object, p);
    }
    let email = record["properties"]["email"].as_str().map(String::from);
    db.insert(object, &id, record);
    // Created ids continue after the highest seeded one, so a seeded id is never reissued,
    // not even once its record is archived.
    db.reserve_id(n.saturating_sub(100_000));
    if object == "contacts" {
        reindex_email(db, &id, None, email.as_deref());
    }
    db.indexed_now(object, &id);
    Ok(())
}

/// Tasks need `hs_timestamp` (when the task is due) and HubSpot's enumeration values.
pub(super) fn check_task(props: &Map<String, Value>) -> Result<(), WriteError> {
    let invalid = |name: &str, message: String| {
        WriteError::new(
            400,
            "VALIDATION_ERROR",
            format!(
                "Property values were not valid: {}",
                json!([{"isValid": false, "message": message, "error": "INVALID_OPTION", "name": name}])
            ),
            Value::Null,
        )
    };
    match props.get("hs_timestamp").and_then(Value::as_str) {
        Some(t) if super::super::util::to_millis(t).is_some() => {}
        Some(t) => {
            return Err(invalid(
                "hs_timestamp",
                format!("{t} is not a valid datetime"),
            ));
        }
        None => {
            return Err(invalid(
                "hs_timestamp",
                "hs_timestamp is required".to_string(),
            ));
        }
    }
    let enums: [(&str, &[&str]); 2] = [
        (
            "hs_task_status",
            &[
                "NOT_STARTED",
                "IN_PROGRESS",
                "WAITING",
                "COMPLETED",
                "DEFERRED",
            ],
        ),
        ("hs_task_priority", &["NONE", "LOW", "MEDIUM", "HIGH"]),
    ];
    for (name, allowed) in enums {
        if let Some(v) = props.get(name).and_then(Value::as_str)
            && !allowed.contains(&v)
        {
            return Err(invalid(
                name,
                format!(
                    "{v} was not one of the allowed options: {}",
                    allowed.join(", ")
                ),
            ));
        }
    }
    Ok(())
}

pub(super) fn update_object(
    db: &mut Db,
    object: &str,
    id: &str,
    input: &Value,
) -> Result<Value, WriteError> {
    let props = checked_properties(db, object, input)?;
    if db.get(object, id).is_none() {
        return Err(WriteError::new(
            404,
            "OBJECT_NOT_FOUND",
            "Object not found.  objectId are usually numeric.".to_string(),
            json!({"id": [id]}),
        ));
    }
    if object == "contacts"
        && let Some(email) = props.get("email").and_then(Value::as_str)
        && let Some(existing) = contact_by_email(db, email, Some(id))
    {
        return Err(conflict(&existing));
    }
    let now = now_iso();
    let new_email = props.get("email").and_then(Value::as_str).map(String::from);
    let record = db
        .table(object)
        .get_mut(id)
        .ok_or_else(|| WriteError::new(404, "OBJECT_NOT_FOUND", "not found".into(), Value::Null))?;
    let old_email = record["properties"]["email"].as_str().map(String::from);
    if let Some(p) = record["properties"].as_object_mut() {
        p.extend(props);
        p.insert("lastmodifieddate".into(), Value::String(now.clone()));
        p.insert("hs_lastmodifieddate".into(), Value::String(now.clone()));
    }
    record["updatedAt"] = Value::String(now);
    let out = record.clone();
    if object == "contacts" && new_email.is_some() {
        reindex_email(db, id, old_email.as_deref(), new_email.as_deref());
    }
    db.indexed(object, id);
    Ok(out)
}

/// Finds an object by id, or by a unique property when `id_property` is given.
pub(super) fn find_id(
    db: &Db,
    object: &str,
    id: &str,
    id_property: Option<&str>,
) -> Option<String> {
    match id_property {
        None | Some("hs_object_id") => db.get(object, id).map(|_| id.to_string()),
        Some("email") if object == "contacts" => contact_by_email(db, id, None),
        Some(prop) => db.tables.get(object).and_then(|t| {
            t.iter()
                .find(|(_, r)| {
                    r["properties"][prop]
                        .as_str()
                        .is_some_and(|v| v.eq_ignore_ascii_case(id.trim()))
                })
                .map(|(k, _)| k.clone())
        }),
    }
}
