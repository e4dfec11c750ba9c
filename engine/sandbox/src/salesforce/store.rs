//! Salesforce's record store: ids with the case checksum, field checks, required fields,
//! inserts, patches, external-id lookups and upserts, and how a record is rendered.

use super::super::state::Db;
use super::super::util::{looks_like_email, to_millis};
use super::USER_ID;
use super::errors::{SfError, err, sf_error};
use super::schema::Kind::{Bool, Date, DateTime, Email, Number, Text};
use super::schema::{ObjectDef, SYSTEM_FIELDS};
use axum::response::Response;
use serde_json::{Map, Value, json};

/// An 18-character Salesforce id with its case-folding checksum.
pub(super) fn make_id(prefix: &str, n: u64) -> String {
    let base = format!("{prefix}{n:012}");
    let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ012345";
    let mut suffix = String::new();
    for chunk in base.as_bytes().chunks(5) {
        let mut bits = 0usize;
        for (i, c) in chunk.iter().enumerate() {
            if c.is_ascii_uppercase() {
                bits |= 1 << i;
            }
        }
        suffix.push(alphabet[bits] as char);
    }
    base + &suffix
}

pub(super) fn sf_now() -> String {
    chrono::Utc::now()
        .format("%Y-%m-%dT%H:%M:%S%.3f+0000")
        .to_string()
}

/// Checks and canonicalises the fields of a write.
pub(super) fn clean_fields(
    def: &ObjectDef,
    input: &Map<String, Value>,
) -> Result<Map<String, Value>, SfError> {
    let mut out = Map::new();
    for (k, v) in input {
        if k == "attributes" {
            continue;
        }
        let Some((name, kind)) = def.field(k) else {
            return Err(sf_error(
                "INVALID_FIELD",
                format!("No such column '{k}' on sobject of type {}", def.name),
                &[],
            ));
        };
        if SYSTEM_FIELDS.iter().any(|(n, _)| *n == name)
            || name == "Name" && def.name != "Account" && def.name != "Opportunity"
        {
            return Err(sf_error(
                "INVALID_FIELD_FOR_INSERT_UPDATE",
                format!(
                    "Unable to create/update fields: {name}. Please check the security settings of this field and verify that it is read/write for your profile or permission set."
                ),
                &[&name],
            ));
        }
        let bad_value = |what: &str| {
            sf_error(
                "JSON_PARSER_ERROR",
                format!(
                    "Cannot deserialize instance of {what} from VALUE_STRING value {v} or request may be missing a required field"
                ),
                &[],
            )
        };
        let value = match (kind, v) {
            (_, Value::Null) => Value::Null,
            (Number, Value::Number(_)) => v.clone(),
            (Number, Value::String(s)) => match s.trim().parse::<f64>() {
                Ok(f) => json!(f),
                Err(_) => return Err(bad_value("double")),
            },
            (Bool, Value::Bool(_)) => v.clone(),
            (Bool, Value::String(s)) if s == "true" || s == "false" => Value::Bool(s == "true"),
            (Date, Value::String(s)) => {
                if chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d").is_err() {
                    return Err(bad_value("date"));
                }
                v.clone()
            }
            (DateTime, Value::String(s)) => {
                if to_millis(s).is_none() {
                    return Err(bad_value("datetime"));
                }
                v.clone()
            }
            (Email, Value::String(s)) => {
                if !s.is_empty() && !looks_like_email(s) {
                    return Err(sf_error(
                        "INVALID_EMAIL_ADDRESS",
                        format!("{name}: invalid email address: {s}"),
                        &[&name],
                    ));
                }
                v.clone()
            }
            (Text, Value::String(_)) => v.clone(),
            (Text, Value::Number(_) | Value::Bool(_)) => Value::String(v.to_string()),
            (_, Value::Array(_) | Value::Object(_)) | (_, _) => {
                return Err(bad_value(match kind {
                    Number => "double",
                    Bool => "boolean",
                    _ => "string",
                }));
            }
        };
        out.insert(name, value);
    }
    Ok(out)
}

pub(super) fn missing_required(def: &ObjectDef, rec: &Map<String, Value>) -> Option<SfError> {
    let missing: Vec<&str> = def
        .required
        .iter()
        .copied()
        .filter(|f| {
            rec.get(*f)
                .is_none_or(|v| v.is_null() || v.as_str() == Some(""))
        })
        .collect();
    (!missing.is_empty()).then(|| {
        sf_error(
            "REQUIRED_FIELD_MISSING",
            format!("Required fields are missing: [{}]", missing.join(", ")),
            &missing,
        )
    })
}

pub(super) fn compute_name(def: &ObjectDef, rec: &mut Map<String, Value>) {
    if def.name == "Lead" || def.name == "Contact" {
        let first = rec.get("FirstName").and_then(Value::as_str).unwrap_or("");
        let last = rec.get("LastName").and_then(Value::as_str).unwrap_or("");
        let name = format!("{first} {last}").trim().to_string();
        rec.insert("Name".into(), Value::String(name));
    }
}

pub(super) fn insert(
    db: &mut Db,
    def: &ObjectDef,
    input: &Map<String, Value>,
) -> Result<String, SfError> {
    let mut rec = clean_fields(def, input)?;
    for (k, v) in def.defaults {
        rec.entry(k.to_string())
            .or_insert_with(|| Value::String(v.to_string()));
    }
    if let Some(e) = missing_required(def, &rec) {
        return Err(e);
    }
    let id = make_id(def.prefix, db.next_id());
    let now = sf_now();
    compute_name(def, &mut rec);
    rec.insert("Id".into(), Value::String(id.clone()));
    rec.insert("IsDeleted".into(), Value::Bool(false));
    for f in ["CreatedDate", "LastModifiedDate", "SystemModstamp"] {
        rec.insert(f.into(), Value::String(now.clone()));
    }
    rec.insert("CreatedById".into(), Value::String(USER_ID.into()));
    rec.insert("LastModifiedById".into(), Value::String(USER_ID.into()));
    db.insert(def.name, &id, Value::Object(rec));
    Ok(id)
}

/// Resolves a 15- or 18-character id to the stored key.
pub(super) fn resolve_id(db: &Db, def: &ObjectDef, id: &str) -> Option<String> {
    let table = db.tables.get(def.name)?;
    if table.contains_key(id) {
        return Some(id.to_string());
    }
    (id.len() == 15)
        .then(|| table.keys().find(|k| k.starts_with(id)).cloned())
        .flatten()
}

pub(super) fn patch(
    db: &mut Db,
    def: &ObjectDef,
    id: &str,
    input: &Map<String, Value>,
) -> Result<(), SfError> {
    let fields = clean_fields(def, input)?;
    let Some(key) = resolve_id(db, def, id) else {
        return Err(sf_error("ENTITY_IS_DELETED", "entity is deleted", &[]));
    };
    let Some(Value::Object(rec)) = db.table(def.name).get_mut(&key) else {
        return Err(sf_error("ENTITY_IS_DELETED", "entity is deleted", &[]));
    };
    let mut next = rec.clone();
    next.extend(fields);
    if let Some(e) = missing_required(def, &next) {
        return Err(e);
    }
    compute_name(def, &mut next);
    let now = sf_now();
    next.insert("LastModifiedDate".into(), Value::String(now.clone()));
    next.insert("SystemModstamp".into(), Value::String(now));
    *rec = next;
    Ok(())
}

/// The record as the API returns it: `attributes` first, then the fields (all or `only`).
pub(super) fn render(def: &ObjectDef, rec: &Value, only: Option<&[String]>) -> Value {
    let id = rec["Id"].as_str().unwrap_or_default();
    let mut out = Map::new();
    out.insert(
        "attributes".into(),
        json!({"type": def.name, "url": def.url(id)}),
    );
    match only {
        Some(fields) => {
            for f in fields {
                let (name, _) = def.field(f).unwrap_or((f.clone(), Text));
                out.insert(name.clone(), rec.get(&name).cloned().unwrap_or(Value::Null));
            }
        }
        None => {
            if let Some(m) = rec.as_object() {
                for (k, v) in m {
                    out.insert(k.clone(), v.clone());
                }
            }
        }
    }
    Value::Object(out)
}
/// Ids of records whose `field` equals `value` (case-insensitive text).
pub(super) fn find_by(db: &Db, def: &ObjectDef, field: &str, value: &str) -> Vec<String> {
    db.tables
        .get(def.name)
        .map(|t| {
            t.iter()
                .filter(|(_, r)| {
                    r.get(field)
                        .map(super::super::util::scalar_text)
                        .is_some_and(|v| v.eq_ignore_ascii_case(value))
                })
                .map(|(k, _)| k.clone())
                .collect()
        })
        .unwrap_or_default()
}

pub(super) fn external_field(def: &ObjectDef, field: &str) -> Result<String, Response> {
    match def.field(field) {
        Some((name, _)) if name == "Id" || name.ends_with("__c") => Ok(name),
        Some((name, _)) => Err(err(
            400,
            "INVALID_FIELD",
            &format!("Field {name} is not an External ID or Id field"),
        )),
        None => Err(err(
            400,
            "INVALID_FIELD",
            &format!("No such column '{field}' on entity '{}'", def.name),
        )),
    }
}
/// Upsert one record by external id: (status, created id, created?) or an error.
pub(super) fn upsert_one(
    db: &mut Db,
    def: &ObjectDef,
    field: &str,
    value: &str,
    input: &Map<String, Value>,
) -> Result<(String, bool), (u16, SfError)> {
    let ids = find_by(db, def, field, value);
    match ids.as_slice() {
        [] => {
            let mut rec = input.clone();
            if field != "Id" {
                rec.insert(field.to_string(), Value::String(value.to_string()));
            }
            insert(db, def, &rec)
                .map(|id| (id, true))
                .map_err(|e| (400, e))
        }
        [one] => {
            let mut rec = input.clone();
            rec.remove(field);
            patch(db, def, one, &rec)
                .map(|()| (one.clone(), false))
                .map_err(|e| (400, e))
        }
        _ => Err((
            300,
            sf_error(
                "DUPLICATE_EXTERNAL_ID",
                format!("{field}: more than one record found for external id field: {value}"),
                &[field],
            ),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_have_a_case_checksum() {
        let id = make_id("00Q", 1);
        assert_eq!(id.len(), 18);
        assert_eq!(&id[15..], "EAA");
    }
}
