//! HubSpot associations on v3 objects: the `associations` of a create are validated (known
//! HUBSPOT_DEFINED type for this object, target object exists) and stored on both ends; a
//! read returns them only when asked with `?associations=companies,deals`, as an object keyed
//! by object type: `{"companies": {"results": [{"id": "123", "type": "contact_to_company"}]}}`
//! (what the official SDKs parse).

use super::super::state::Db;
use super::super::util::scalar_text;
use super::errors::WriteError;
use super::store::object_name;
use serde_json::{Map, Value, json};

/// HUBSPOT_DEFINED association types: (from, to, type id, the `type` a v3 read reports).
const TYPES: &[(&str, &str, u64, &str)] = &[
    ("contacts", "companies", 279, "contact_to_company_unlabeled"),
    ("contacts", "companies", 1, "contact_to_company"),
    ("companies", "contacts", 280, "company_to_contact_unlabeled"),
    ("companies", "contacts", 2, "company_to_contact"),
    ("deals", "contacts", 3, "deal_to_contact"),
    ("contacts", "deals", 4, "contact_to_deal"),
    ("deals", "companies", 341, "deal_to_company_unlabeled"),
    ("deals", "companies", 5, "deal_to_company"),
    ("companies", "deals", 342, "company_to_deal_unlabeled"),
    ("companies", "deals", 6, "company_to_deal"),
    ("contacts", "tickets", 15, "contact_to_ticket"),
    ("tickets", "contacts", 16, "ticket_to_contact"),
    ("tickets", "companies", 339, "ticket_to_company_unlabeled"),
    ("tickets", "companies", 26, "ticket_to_company"),
    ("companies", "tickets", 340, "company_to_ticket_unlabeled"),
    ("companies", "tickets", 25, "company_to_ticket"),
    ("deals", "tickets", 27, "deal_to_ticket"),
    ("tickets", "deals", 28, "ticket_to_deal"),
    ("tasks", "contacts", 204, "task_to_contact"),
    ("contacts", "tasks", 203, "contact_to_task"),
    ("tasks", "companies", 192, "task_to_company"),
    ("companies", "tasks", 191, "company_to_task"),
    ("tasks", "deals", 216, "task_to_deal"),
    ("deals", "tasks", 215, "deal_to_task"),
    ("tasks", "tickets", 230, "task_to_ticket"),
    ("tickets", "tasks", 229, "ticket_to_task"),
];

/// The most associations one create may carry (bounds the work one request can cause).
const PER_RECORD_MAX: usize = 500;

/// One validated association of a write: target object, target id, reported type.
pub(super) struct Link {
    to: &'static str,
    id: String,
    label: &'static str,
}

impl Link {
    /// The target's object type.
    pub(super) fn object(&self) -> &'static str {
        self.to
    }

    /// The target's id.
    pub(super) fn id(&self) -> &str {
        &self.id
    }
}

fn invalid(message: String, context: Value) -> WriteError {
    WriteError::new(400, "VALIDATION_ERROR", message, context)
}

/// The `type` the other end reports: `company_to_contact` for `contact_to_company`.
fn reverse_label(from: &str, to: &str, label: &str) -> String {
    let one = |o: &str| {
        o.strip_suffix("ies")
            .map_or_else(|| o.trim_end_matches('s').to_string(), |s| format!("{s}y"))
    };
    let base = format!("{}_to_{}", one(to), one(from));
    if label.ends_with("_unlabeled") {
        base + "_unlabeled"
    } else {
        base
    }
}

/// Checks the `associations` of a create of `object`: an array of
/// `{to: {id}, types: [{associationCategory, associationTypeId}]}` whose types exist for this
/// object and whose targets exist. `Ok(vec![])` when absent or null.
pub(super) fn validate(
    db: &Db,
    object: &str,
    input: Option<&Value>,
) -> Result<Vec<Link>, WriteError> {
    let items = match input {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Array(a)) => a,
        Some(_) => {
            return Err(invalid(
                "Invalid input JSON: `associations` must be an array".into(),
                Value::Null,
            ));
        }
    };
    if items.len() > PER_RECORD_MAX {
        return Err(invalid(
            format!("Too many associations: at most {PER_RECORD_MAX} per object"),
            Value::Null,
        ));
    }
    let mut links = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let id = item
            .get("to")
            .and_then(|t| t.get("id"))
            .map(scalar_text)
            .filter(|s| !s.is_empty())
            .ok_or_else(|| {
                invalid(
                    format!("Invalid input JSON: associations[{i}].to.id is required"),
                    Value::Null,
                )
            })?;
        let types = item
            .get("types")
            .and_then(Value::as_array)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| {
                invalid(
                    format!(
                        "Invalid input JSON: associations[{i}].types must be a non-empty array"
                    ),
                    Value::Null,
                )
            })?;
        for t in types {
            let category = t
                .get("associationCategory")
                .and_then(Value::as_str)
                .unwrap_or_default();
            let type_id = t.get("associationTypeId").and_then(|v| {
                v.as_u64()
                    .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
            });
            let found = (category == "HUBSPOT_DEFINED")
                .then(|| {
                    TYPES
                        .iter()
                        .find(|(f, _, n, _)| *f == object && Some(*n) == type_id)
                })
                .flatten();
            let Some((_, to, _, label)) = found else {
                return Err(invalid(
                    format!(
                        "association type {category} {} is not valid for {object}",
                        type_id.map_or_else(|| "(none)".to_string(), |n| n.to_string())
                    ),
                    json!({"associationTypeId": [type_id]}),
                ));
            };
            if db.get(to, &id).is_none() {
                let mut e = invalid(
                    "One or more associations are invalid".to_string(),
                    json!({"toObjectId": [id]}),
                );
                e.errors = vec![
                    json!({"message": format!("No {to} object with id {id} exists"),
                                       "code": "INVALID_OBJECT_ID",
                                       "context": {"toObjectId": [id], "toObjectType": [to]}}),
                ];
                return Err(e);
            }
            links.push(Link {
                to,
                id: id.clone(),
                label,
            });
        }
    }
    Ok(links)
}

/// Adds one entry to a record's stored associations (no duplicates).
fn add(record: &mut Value, to: &str, id: &str, label: &str) {
    if !record["associations"].is_object() {
        record["associations"] = json!({});
    }
    let list = &mut record["associations"][to]["results"];
    if !list.is_array() {
        *list = json!([]);
    }
    if let Some(a) = list.as_array_mut() {
        let entry = json!({"id": id, "type": label});
        if !a.contains(&entry) {
            a.push(entry);
        }
    }
}

/// Stores validated links on the new record `id` of `object` and on each target.
pub(super) fn store(db: &mut Db, object: &str, id: &str, links: &[Link]) {
    for l in links {
        if let Some(r) = db.table(object).get_mut(id) {
            add(r, l.to, &l.id, l.label);
        }
        let back = reverse_label(object, l.to, l.label);
        if let Some(r) = db.table(l.to).get_mut(&l.id) {
            add(r, object, id, &back);
        }
    }
}

/// A fixture's associations in any of three forms — HubSpot's read shape
/// (`{"contacts": {"results": [{"id", "type"}]}}`), ids by object type
/// (`{"contacts": ["501"]}`) or a create's array — in the stored read shape. Targets are not
/// checked (fixtures load in any order).
pub(super) fn from_fixture(object: &str, v: &Value) -> Result<Value, String> {
    // `add` writes under `associations` of the value it is given.
    let mut out = json!({"associations": {}});
    match v {
        Value::Null => {}
        Value::Object(m) => {
            for (k, entries) in m {
                let to =
                    object_name(k).ok_or_else(|| format!("unknown associated object `{k}`"))?;
                let default = TYPES
                    .iter()
                    .find(|(f, t, _, l)| *f == object && *t == to && !l.ends_with("_unlabeled"))
                    .map_or("", |(_, _, _, l)| *l);
                let list: Vec<Value> = match entries {
                    Value::Array(ids) => ids.clone(),
                    Value::Object(o) => o
                        .get("results")
                        .and_then(Value::as_array)
                        .cloned()
                        .unwrap_or_default(),
                    _ => return Err(format!("associations `{k}` must be a list")),
                };
                for e in list {
                    let (id, label) = match &e {
                        Value::Object(o) => (
                            o.get("id").map(scalar_text).unwrap_or_default(),
                            o.get("type")
                                .and_then(Value::as_str)
                                .unwrap_or(default)
                                .to_string(),
                        ),
                        other => (scalar_text(other), default.to_string()),
                    };
                    if id.is_empty() {
                        return Err(format!("associations `{k}` has an entry without an id"));
                    }
                    add(&mut out, to, &id, &label);
                }
            }
        }
        Value::Array(items) => {
            for item in items {
                let id = item
                    .get("to")
                    .and_then(|t| t.get("id"))
                    .map(scalar_text)
                    .unwrap_or_default();
                let type_id = item["types"][0]["associationTypeId"].as_u64();
                let Some((_, to, _, label)) = TYPES
                    .iter()
                    .find(|(f, _, n, _)| *f == object && Some(*n) == type_id)
                else {
                    return Err("an association has an unknown HUBSPOT_DEFINED type".into());
                };
                add(&mut out, to, &id, label);
            }
        }
        _ => return Err("`associations` must be an object or an array".into()),
    }
    Ok(out["associations"].take())
}

/// The associations of a stored record for a read that asked for `wanted` object types
/// (`companies`, `0-2`, …): `None` when none was asked or none exists.
pub(super) fn for_read(record: &Value, wanted: &[String]) -> Option<Value> {
    let stored = record.get("associations").and_then(Value::as_object)?;
    let mut out = Map::new();
    for w in wanted {
        let Some(to) = object_name(w) else { continue };
        if let Some(v) = stored.get(to) {
            out.insert(to.to_string(), v.clone());
        }
    }
    (!out.is_empty()).then_some(Value::Object(out))
}

// ---- associations v4: default associations and reading them --------------------------------

/// The default (most generic) HUBSPOT_DEFINED type from `from` to `to`: the unlabeled one
/// where there is one, else the only one.
fn default_type(from: &str, to: &str) -> Option<(u64, &'static str)> {
    let of_pair = || TYPES.iter().filter(|(f, t, _, _)| *f == from && *t == to);
    of_pair()
        .find(|(_, _, _, l)| l.ends_with("_unlabeled"))
        .or_else(|| of_pair().next())
        .map(|(_, _, n, l)| (*n, *l))
}

/// The type id of a stored association label (`contact_to_company` → 1).
fn type_id(from: &str, to: &str, label: &str) -> Option<u64> {
    TYPES
        .iter()
        .find(|(f, t, _, l)| *f == from && *t == to && *l == label)
        .map(|(_, _, n, _)| *n)
}

/// v4 names object types in upper case in its errors (`CONTACT=123 is not valid`).
fn v4_name(object: &str) -> String {
    object
        .strip_suffix("ies")
        .map_or_else(
            || object.trim_end_matches('s').to_string(),
            |s| format!("{s}y"),
        )
        .to_uppercase()
}

/// HubSpot's answer to an association whose ends do not exist.
fn invalid_ids(missing: &[(&str, &str)]) -> WriteError {
    let ids: Vec<&str> = missing.iter().map(|(_, id)| *id).collect();
    let types: Vec<String> = missing.iter().map(|(o, _)| v4_name(o)).collect();
    let named: Vec<String> = missing
        .iter()
        .map(|(o, id)| format!("{}={id} is not valid", v4_name(o)))
        .collect();
    WriteError::new(
        400,
        "VALIDATION_ERROR",
        "One or more associations are invalid".to_string(),
        json!({"INVALID_OBJECT_IDS": named, "objectId": ids, "objectType": types}),
    )
}

/// `PUT /crm/v4/objects/{from}/{fromId}/associations/default/{to}/{toId}`: associates two
/// existing objects with the default type, both directions; the answer lists both.
pub(super) fn associate_default(
    db: &mut Db,
    from: &str,
    from_id: &str,
    to: &str,
    to_id: &str,
) -> Result<Value, WriteError> {
    let (Some((type_id, label)), Some((back_id, _))) =
        (default_type(from, to), default_type(to, from))
    else {
        return Err(invalid(
            format!("There is no default association type between {from} and {to}"),
            json!({"fromObjectType": [from], "toObjectType": [to]}),
        ));
    };
    let missing: Vec<(&str, &str)> = [(from, from_id), (to, to_id)]
        .into_iter()
        .filter(|(o, id)| db.get(o, id).is_none())
        .collect();
    if !missing.is_empty() {
        return Err(invalid_ids(&missing));
    }
    let link = Link {
        to: match object_name(to) {
            Some(t) => t,
            None => return Err(invalid(format!("Unknown object type {to}"), Value::Null)),
        },
        id: to_id.to_string(),
        label,
    };
    store(db, from, from_id, std::slice::from_ref(&link));
    db.indexed(from, from_id);
    db.indexed(to, to_id);
    let now = super::super::util::now_iso();
    let spec = |n: u64| json!({"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": n});
    Ok(json!({
        "status": "COMPLETE",
        "results": [
            {"from": {"id": from_id}, "to": {"id": to_id}, "associationSpec": spec(type_id)},
            {"from": {"id": to_id}, "to": {"id": from_id}, "associationSpec": spec(back_id)},
        ],
        "startedAt": now, "completedAt": now,
    }))
}

/// `GET /crm/v4/objects/{object}/{id}/associations/{to}?after=&limit=` (limit at most 500):
/// `{results: [{toObjectId, associationTypes: [{category, typeId, label}]}], paging?}`.
pub(super) fn list_v4(
    db: &Db,
    object: &str,
    id: &str,
    to: &str,
    after: usize,
    limit: usize,
    base_url: &str,
) -> Result<Value, WriteError> {
    let Some(record) = db.get(object, id) else {
        return Err(invalid_ids(&[(object, id)]));
    };
    // One entry per associated object, with every type it is associated by.
    let mut by_id: indexmap::IndexMap<String, Vec<Value>> = indexmap::IndexMap::new();
    for e in record["associations"][to]["results"]
        .as_array()
        .into_iter()
        .flatten()
    {
        let other = e.get("id").map(scalar_text).unwrap_or_default();
        let label = e.get("type").and_then(Value::as_str).unwrap_or_default();
        let n = type_id(object, to, label);
        // Labels are null but for the primary company of a contact or deal.
        let shown = match n {
            Some(1 | 2 | 5 | 6) => json!("Primary"),
            _ => Value::Null,
        };
        let t = json!({"category": "HUBSPOT_DEFINED", "typeId": n, "label": shown});
        by_id.entry(other).or_default().push(t);
    }
    let all: Vec<Value> = by_id
        .into_iter()
        .map(|(other, types)| json!({"toObjectId": other, "associationTypes": types}))
        .collect();
    let page: Vec<Value> = all.iter().skip(after).take(limit).cloned().collect();
    let mut body = json!({"results": page});
    let next = after + page.len();
    if next < all.len() {
        let link = format!(
            "{base_url}/crm/v4/objects/{object}/{id}/associations/{to}?limit={limit}&after={next}"
        );
        body["paging"] = json!({"next": {"after": next.to_string(), "link": link}});
    }
    Ok(body)
}
