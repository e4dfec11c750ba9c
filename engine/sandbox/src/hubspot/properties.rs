//! HubSpot's property registry, per portal (one per emulator): a write may only set
//! properties the portal has, as on HubSpot, where a misspelled or never-created property
//! fails the whole record with 400 `PROPERTY_DOESNT_EXIST`. The registry starts with HubSpot's
//! default properties of each object plus the custom properties this repository's connector
//! and mapping specs use (so `switchyard run --sandbox` works out of the box); tenants add
//! theirs through the properties API (`/crm/v3/properties/{objectType}`: list, create, read,
//! archive), as they would on HubSpot.

use super::super::state::{Db, Shared};
use super::super::util::{json, now_iso};
use super::errors::{JsonBody, WriteError, error};
use super::store::object_name;
use axum::extract::{Path, State};
use axum::response::Response;
use serde_json::{Map, Value, json};
use std::sync::Arc;

/// The most properties one object type may have (HubSpot caps custom properties per object;
/// the emulator bounds the registry so a client loop cannot grow it without end).
const PROPERTIES_MAX: usize = 2_000;

/// (name, type) of HubSpot's default properties, by object.
const DEFAULTS: &[(&str, &[(&str, &str)])] = &[
    (
        "contacts",
        &[
            ("address", "string"),
            ("annualrevenue", "string"),
            ("associatedcompanyid", "number"),
            ("city", "string"),
            ("closedate", "datetime"),
            ("company", "string"),
            ("country", "string"),
            ("createdate", "datetime"),
            ("date_of_birth", "string"),
            ("email", "string"),
            ("fax", "string"),
            ("firstname", "string"),
            ("hs_analytics_first_timestamp", "datetime"),
            ("hs_analytics_source", "enumeration"),
            ("hs_analytics_source_data_1", "string"),
            ("hs_analytics_source_data_2", "string"),
            ("hs_email_domain", "string"),
            ("hs_language", "enumeration"),
            ("hs_latest_source", "enumeration"),
            ("hs_latest_source_data_1", "string"),
            ("hs_latest_source_data_2", "string"),
            ("hs_latest_source_timestamp", "datetime"),
            ("hs_lead_status", "enumeration"),
            ("hs_lifecyclestage_customer_date", "datetime"),
            ("hs_lifecyclestage_lead_date", "datetime"),
            ("hs_lifecyclestage_marketingqualifiedlead_date", "datetime"),
            ("hs_lifecyclestage_opportunity_date", "datetime"),
            ("hs_lifecyclestage_salesqualifiedlead_date", "datetime"),
            ("hs_lifecyclestage_subscriber_date", "datetime"),
            ("hs_object_id", "number"),
            ("hs_timezone", "enumeration"),
            ("hubspot_owner_id", "enumeration"),
            ("hubspotscore", "number"),
            ("industry", "string"),
            ("jobtitle", "string"),
            ("lastmodifieddate", "datetime"),
            ("lastname", "string"),
            ("lifecyclestage", "enumeration"),
            ("message", "string"),
            ("mobilephone", "string"),
            ("notes_last_updated", "datetime"),
            ("num_associated_deals", "number"),
            ("numemployees", "enumeration"),
            ("phone", "string"),
            ("salutation", "string"),
            ("state", "string"),
            ("total_revenue", "number"),
            ("twitterhandle", "string"),
            ("website", "string"),
            ("zip", "string"),
        ],
    ),
    (
        "companies",
        &[
            ("address", "string"),
            ("annualrevenue", "number"),
            ("city", "string"),
            ("country", "string"),
            ("createdate", "datetime"),
            ("description", "string"),
            ("domain", "string"),
            ("founded_year", "string"),
            ("hs_lastmodifieddate", "datetime"),
            ("hs_object_id", "number"),
            ("hubspot_owner_id", "enumeration"),
            ("industry", "enumeration"),
            ("is_public", "bool"),
            ("lifecyclestage", "enumeration"),
            ("linkedin_company_page", "string"),
            ("name", "string"),
            ("numberofemployees", "number"),
            ("phone", "string"),
            ("state", "string"),
            ("timezone", "string"),
            ("type", "enumeration"),
            ("website", "string"),
            ("zip", "string"),
        ],
    ),
    (
        "deals",
        &[
            ("amount", "number"),
            ("amount_in_home_currency", "number"),
            ("closed_lost_reason", "string"),
            ("closed_won_reason", "string"),
            ("closedate", "datetime"),
            ("createdate", "datetime"),
            ("days_to_close", "number"),
            ("deal_currency_code", "enumeration"),
            ("dealname", "string"),
            ("dealstage", "enumeration"),
            ("dealtype", "enumeration"),
            ("description", "string"),
            ("hs_deal_stage_probability", "number"),
            ("hs_forecast_amount", "number"),
            ("hs_forecast_probability", "number"),
            ("hs_is_closed", "bool"),
            ("hs_lastmodifieddate", "datetime"),
            ("hs_next_step", "string"),
            ("hs_object_id", "number"),
            ("hs_priority", "enumeration"),
            ("hubspot_owner_id", "enumeration"),
            ("num_associated_contacts", "number"),
            ("pipeline", "enumeration"),
        ],
    ),
    (
        "tickets",
        &[
            ("closed_date", "datetime"),
            ("content", "string"),
            ("createdate", "datetime"),
            ("hs_lastmodifieddate", "datetime"),
            ("hs_object_id", "number"),
            ("hs_pipeline", "enumeration"),
            ("hs_pipeline_stage", "enumeration"),
            ("hs_resolution", "enumeration"),
            ("hs_ticket_category", "enumeration"),
            ("hs_ticket_priority", "enumeration"),
            ("hubspot_owner_id", "enumeration"),
            ("source_type", "enumeration"),
            ("subject", "string"),
            ("time_to_close", "number"),
        ],
    ),
    (
        "tasks",
        &[
            ("hs_createdate", "datetime"),
            ("hs_lastmodifieddate", "datetime"),
            ("hs_object_id", "number"),
            ("hs_task_body", "string"),
            ("hs_task_completion_date", "datetime"),
            ("hs_task_priority", "enumeration"),
            ("hs_task_reminders", "string"),
            ("hs_task_status", "enumeration"),
            ("hs_task_subject", "string"),
            ("hs_task_type", "enumeration"),
            ("hs_timestamp", "datetime"),
            ("hubspot_owner_id", "enumeration"),
        ],
    ),
];

/// The custom properties this repository's specs use (the HubSpot connector spec's catalog,
/// the example mappings' `custom_properties`, the attribution example's fields), created in
/// every emulated portal as a tenant would have created them.
const REPO_CUSTOM: &[(&str, &[(&str, &str)])] = &[
    (
        "contacts",
        &[
            ("ai_lead_score", "number"),
            ("ai_project_type", "enumeration"),
            ("ai_timeline", "enumeration"),
            ("call_duration", "number"),
            ("call_recording_url", "string"),
            ("call_transcript", "string"),
            ("company_size", "string"),
            ("deal_name", "string"),
            ("estimated_value", "number"),
            ("follow_up_date", "date"),
            ("hs_lead_score", "number"),
            ("hs_lead_source", "string"),
            ("lead_source", "string"),
            ("lead_source_detail", "string"),
            ("priority", "string"),
            ("stripe_customer_id", "string"),
        ],
    ),
    (
        "deals",
        &[("company_size", "string"), ("lead_score", "number")],
    ),
];

/// HubSpot's object type id (`0-1` for contacts), as its messages name objects.
pub(super) fn type_id(object: &str) -> &'static str {
    match object {
        "contacts" => "0-1",
        "companies" => "0-2",
        "deals" => "0-3",
        "tickets" => "0-5",
        _ => "0-27",
    }
}

/// The object's name in HubSpot's batch messages (`CONTACT`).
pub(super) fn type_name(object: &str) -> &'static str {
    match object {
        "contacts" => "CONTACT",
        "companies" => "COMPANY",
        "deals" => "DEAL",
        "tickets" => "TICKET",
        _ => "TASK",
    }
}

/// Whether objects can be read (`read`) or written by `prop` as `idProperty`: a contact's
/// e-mail, a property created with `hasUniqueValue`, and for reads the record id
/// (`hs_object_id`), which HubSpot refuses as an `idProperty` of updates and upserts.
pub(super) fn is_unique(db: &Db, object: &str, prop: &str, read: bool) -> bool {
    match prop {
        "hs_object_id" => read,
        "email" if object == "contacts" => true,
        _ => db
            .schema
            .get(object)
            .and_then(|r| r.get(prop))
            .is_some_and(|d| d["hasUniqueValue"] == Value::Bool(true)),
    }
}

/// The group new properties of an object land in when none is given.
fn default_group(object: &str) -> &'static str {
    match object {
        "contacts" => "contactinformation",
        "companies" => "companyinformation",
        "deals" => "dealinformation",
        "tickets" => "ticketinformation",
        _ => "taskinformation",
    }
}

/// The form field HubSpot pairs with a property type.
fn field_type(kind: &str) -> &'static str {
    match kind {
        "number" => "number",
        "enumeration" => "select",
        "date" | "datetime" => "date",
        "bool" => "booleancheckbox",
        _ => "text",
    }
}

/// A property definition in the API's shape.
fn definition(object: &str, name: &str, kind: &str, hubspot_defined: bool, now: &str) -> Value {
    let label: String = name
        .split('_')
        .filter(|w| !w.is_empty())
        .map(|w| {
            let mut c = w.chars();
            c.next()
                .map(|f| f.to_uppercase().collect::<String>() + c.as_str())
                .unwrap_or_default()
        })
        .collect::<Vec<_>>()
        .join(" ");
    json!({"name": name, "label": label, "type": kind, "fieldType": field_type(kind),
           "description": "", "groupName": default_group(object), "options": [],
           "displayOrder": -1, "calculated": false, "externalOptions": false,
           "hasUniqueValue": false, "hidden": false, "hubspotDefined": hubspot_defined,
           "modificationMetadata": {"archivable": !hubspot_defined,
                                    "readOnlyDefinition": hubspot_defined,
                                    "readOnlyValue": false},
           "formField": true, "createdAt": now, "updatedAt": now, "archived": false})
}

/// Fills a new portal's registry: HubSpot's defaults and the repository's custom properties.
pub(super) fn init(db: &mut Db) {
    let now = now_iso();
    for (table, defined) in [(DEFAULTS, true), (REPO_CUSTOM, false)] {
        for (object, props) in table {
            let registry = db.schema.entry(object.to_string()).or_default();
            for (name, kind) in *props {
                registry
                    .entry(name.to_string())
                    .or_insert_with(|| definition(object, name, kind, defined, &now));
            }
        }
    }
}

/// Registers the properties a fixture record carries that the portal does not have yet (a
/// fixture describes a portal that had them), as custom string properties.
pub(super) fn register_seeded(db: &mut Db, object: &str, props: &Map<String, Value>) {
    let now = now_iso();
    let registry = db.schema.entry(object.to_string()).or_default();
    for name in props.keys() {
        if !registry.contains_key(name) && registry.len() < PROPERTIES_MAX {
            registry.insert(
                name.clone(),
                definition(object, name, "string", false, &now),
            );
        }
    }
}

/// HubSpot's refusal of a record that sets properties the portal does not have: 400
/// `VALIDATION_ERROR` for the whole record, `PROPERTY_DOESNT_EXIST` per property.
pub(super) fn check_known(
    db: &Db,
    object: &str,
    props: &Map<String, Value>,
) -> Result<(), WriteError> {
    let registry = db.schema.get(object);
    let unknown: Vec<&String> = props
        .keys()
        .filter(|k| registry.is_none_or(|r| !r.contains_key(k.as_str())))
        .collect();
    if unknown.is_empty() {
        return Ok(());
    }
    let details: Vec<Value> = unknown
        .iter()
        .map(|name| {
            let message = format!("Property \"{name}\" does not exist");
            json!({"isValid": false, "message": message, "error": "PROPERTY_DOESNT_EXIST",
                   "name": name, "localizedErrorMessage": message})
        })
        .collect();
    let mut e = WriteError::new(
        400,
        "VALIDATION_ERROR",
        format!("Property values were not valid: {}", Value::Array(details)),
        json!({"propertyName": unknown}),
    );
    e.errors = unknown
        .iter()
        .map(|name| {
            json!({"message": format!("Property \"{name}\" does not exist"),
                   "code": "PROPERTY_DOESNT_EXIST", "context": {"propertyName": [name]}})
        })
        .collect();
    Err(e)
}

/// Checks a tenant's enumeration property values against its options (HubSpot's own
/// enumerations take their options from pipelines and owners, which are not emulated, so
/// properties without options accept any value).
pub(super) fn check_options(
    db: &Db,
    object: &str,
    props: &Map<String, Value>,
) -> Result<(), WriteError> {
    let Some(registry) = db.schema.get(object) else {
        return Ok(());
    };
    for (name, value) in props {
        let Some(def) = registry.get(name) else {
            continue;
        };
        let options: Vec<&str> = def["options"]
            .as_array()
            .map(|o| o.iter().filter_map(|o| o["value"].as_str()).collect())
            .unwrap_or_default();
        let text = value.as_str().unwrap_or_default();
        if def["type"] == "enumeration" && !options.is_empty() && !text.is_empty() {
            // Multi-select values are `;`-separated.
            if let Some(bad) = text.split(';').find(|v| !options.contains(v)) {
                let message = format!(
                    "{bad} was not one of the allowed options: [{}]",
                    options.join(", ")
                );
                return Err(WriteError::new(
                    400,
                    "VALIDATION_ERROR",
                    format!(
                        "Property values were not valid: {}",
                        json!([{"isValid": false, "message": message,
                                "error": "INVALID_OPTION", "name": name}])
                    ),
                    Value::Null,
                ));
            }
        }
    }
    Ok(())
}

/// The object type of a properties path (`contacts`, `0-1`, …) or HubSpot's 400.
fn object_of(shared: &Shared, seg: &str) -> Result<&'static str, Response> {
    object_name(seg).ok_or_else(|| {
        error(
            shared,
            400,
            "VALIDATION_ERROR",
            &format!("Unable to infer object type from: {seg}"),
            Value::Null,
        )
    })
}

/// `GET /crm/v3/properties/{objectType}`: every live property (no paging, as HubSpot).
pub(super) async fn list(State(shared): State<Arc<Shared>>, Path(seg): Path<String>) -> Response {
    let object = match object_of(&shared, &seg) {
        Ok(o) => o,
        Err(r) => return r,
    };
    let results: Vec<Value> = shared
        .db()
        .schema
        .get(object)
        .map(|r| r.values().cloned().collect())
        .unwrap_or_default();
    json(200, json!({"results": results}))
}

/// `GET /crm/v3/properties/{objectType}/{propertyName}`.
pub(super) async fn read(
    State(shared): State<Arc<Shared>>,
    Path((seg, name)): Path<(String, String)>,
) -> Response {
    let object = match object_of(&shared, &seg) {
        Ok(o) => o,
        Err(r) => return r,
    };
    let found = shared
        .db()
        .schema
        .get(object)
        .and_then(|r| r.get(&name).cloned());
    match found {
        Some(p) => json(200, p),
        None => not_found(&shared, &name),
    }
}

fn not_found(shared: &Shared, name: &str) -> Response {
    error(
        shared,
        404,
        "OBJECT_NOT_FOUND",
        &format!("Unable to find property {name}"),
        Value::Null,
    )
}

/// `DELETE /crm/v3/properties/{objectType}/{propertyName}`: archives a tenant's property
/// (HubSpot's own cannot be archived).
pub(super) async fn archive(
    State(shared): State<Arc<Shared>>,
    Path((seg, name)): Path<(String, String)>,
) -> Response {
    let object = match object_of(&shared, &seg) {
        Ok(o) => o,
        Err(r) => return r,
    };
    let mut db = shared.db();
    let Some(registry) = db.schema.get_mut(object) else {
        drop(db);
        return not_found(&shared, &name);
    };
    match registry.get(&name).map(|p| p["hubspotDefined"] == true) {
        None => {
            drop(db);
            not_found(&shared, &name)
        }
        Some(true) => {
            drop(db);
            error(
                &shared,
                400,
                "VALIDATION_ERROR",
                &format!("Can't archive HubSpot-defined property {name}"),
                Value::Null,
            )
        }
        Some(false) => {
            registry.shift_remove(&name);
            super::super::util::empty(204)
        }
    }
}

/// `POST /crm/v3/properties/{objectType}`: creates a property (name, label, type,
/// fieldType, groupName required; enumerations need options) → 201, or 409 when it exists.
pub(super) async fn create(
    State(shared): State<Arc<Shared>>,
    Path(seg): Path<String>,
    JsonBody(input): JsonBody,
) -> Response {
    let object = match object_of(&shared, &seg) {
        Ok(o) => o,
        Err(r) => return r,
    };
    let bad = |m: String| error(&shared, 400, "VALIDATION_ERROR", &m, Value::Null);
    let text = |k: &str| input.get(k).and_then(Value::as_str).map(str::trim);
    let mut missing = Vec::new();
    for k in ["name", "label", "type", "fieldType", "groupName"] {
        if text(k).is_none_or(str::is_empty) {
            missing.push(k);
        }
    }
    if !missing.is_empty() {
        return bad(format!(
            "Invalid input JSON on line 1: missing required fields: {}",
            missing.join(", ")
        ));
    }
    let name = text("name").unwrap_or_default().to_string();
    let valid_name = name.len() <= 100
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if !valid_name {
        return bad(format!(
            "Property name {name} is invalid: use lowercase letters, digits and _ only, starting with a letter"
        ));
    }
    let kind = text("type").unwrap_or_default();
    if ![
        "string",
        "number",
        "date",
        "datetime",
        "enumeration",
        "bool",
        "phone_number",
    ]
    .contains(&kind)
    {
        return bad(format!("{kind} is not a valid property type"));
    }
    let options = input.get("options").cloned().unwrap_or(json!([]));
    let Some(option_list) = options.as_array() else {
        return bad("options must be an array".to_string());
    };
    if option_list
        .iter()
        .any(|o| o.get("value").and_then(Value::as_str).is_none())
    {
        return bad("each option needs a label and a value".to_string());
    }
    if kind == "enumeration" && option_list.is_empty() {
        return bad("enumeration properties need options".to_string());
    }
    let mut db = shared.db();
    let registry = db.schema.entry(object.to_string()).or_default();
    if registry.contains_key(&name) {
        drop(db);
        return error(
            &shared,
            409,
            "OBJECT_ALREADY_EXISTS",
            &format!("Property named '{name}' already exists."),
            Value::Null,
        );
    }
    if registry.len() >= PROPERTIES_MAX {
        drop(db);
        return bad(format!(
            "You have reached the limit of {PROPERTIES_MAX} properties for {object}"
        ));
    }
    let now = now_iso();
    let mut def = definition(object, &name, kind, false, &now);
    for k in [
        "label",
        "fieldType",
        "groupName",
        "description",
        "displayOrder",
        "hasUniqueValue",
        "hidden",
        "formField",
    ] {
        if let Some(v) = input.get(k).filter(|v| !v.is_null()) {
            def[k] = v.clone();
        }
    }
    def["options"] = options;
    registry.insert(name, def.clone());
    drop(db);
    json(201, def)
}
