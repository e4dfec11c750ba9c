//! Pipedrive's field registries (v1 `personFields`, `dealFields`, `organizationFields`): the
//! standard fields under their own keys, and the company's custom fields under 40-character
//! hexadecimal keys Pipedrive generates when one is added. v2 persons and deals store custom
//! field values under these keys in `custom_fields`; a key that names no custom field of the
//! object is ignored, as Pipedrive does (UNCONFIRMED in ../shared/apis/FACTS.md: the vendor's
//! docs only say custom fields are addressed by key).

use super::super::state::{Db, Shared};
use super::envelope::{PdBody, failure, offset_page, ok};
use axum::extract::{Path, Query, State};
use axum::response::Response;
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::Arc;

/// The registries, by the path segment that lists them.
const KINDS: [&str; 3] = ["personFields", "dealFields", "organizationFields"];

/// Field types Pipedrive accepts for a new custom field.
const FIELD_TYPES: [&str; 16] = [
    "address",
    "date",
    "daterange",
    "double",
    "enum",
    "monetary",
    "org",
    "people",
    "phone",
    "set",
    "text",
    "time",
    "timerange",
    "user",
    "varchar",
    "varchar_auto",
];

/// Standard fields of each registry: key, name, type.
fn standard(kind: &str) -> &'static [(&'static str, &'static str, &'static str)] {
    match kind {
        "personFields" => &[
            ("name", "Name", "varchar"),
            ("first_name", "First name", "varchar"),
            ("last_name", "Last name", "varchar"),
            ("email", "Email", "varchar"),
            ("phone", "Phone", "phone"),
            ("org_id", "Organization", "org"),
            ("owner_id", "Owner", "user"),
            ("label_ids", "Labels", "set"),
            ("visible_to", "Visible to", "visible_to"),
            ("add_time", "Person created", "date"),
            ("update_time", "Update time", "date"),
        ],
        "dealFields" => &[
            ("title", "Title", "varchar"),
            ("value", "Value", "monetary"),
            ("currency", "Currency", "varchar"),
            ("person_id", "Contact person", "people"),
            ("org_id", "Organization", "org"),
            ("pipeline", "Pipeline", "double"),
            ("stage_id", "Stage", "stage"),
            ("status", "Status", "status"),
            ("user_id", "Owner", "user"),
            ("expected_close_date", "Expected close date", "date"),
            ("add_time", "Deal created", "date"),
            ("update_time", "Update time", "date"),
        ],
        _ => &[
            ("name", "Name", "varchar"),
            ("owner_id", "Owner", "user"),
            ("address", "Address", "address"),
            ("add_time", "Organization created", "date"),
        ],
    }
}

/// The registry of a path segment, its standard fields filled in on first use.
fn registry<'a>(db: &'a mut Db, kind: &str) -> &'a mut indexmap::IndexMap<String, Value> {
    let fresh = !db.schema.contains_key(kind);
    if fresh {
        let now = now_v1();
        let defs: Vec<(String, Value)> = standard(kind)
            .iter()
            .enumerate()
            .map(|(i, (key, name, ty))| {
                (
                    (*key).to_string(),
                    definition(i as u64 + 1, key, name, ty, false, &now),
                )
            })
            .collect();
        db.schema.entry(kind.to_string()).or_default().extend(defs);
    }
    db.schema.entry(kind.to_string()).or_default()
}

fn now_v1() -> String {
    chrono::Utc::now().format("%Y-%m-%d %H:%M:%S").to_string()
}

fn definition(id: u64, key: &str, name: &str, ty: &str, custom: bool, now: &str) -> Value {
    json!({
        "id": id, "key": key, "name": name, "order_nr": id, "field_type": ty,
        "add_time": now, "update_time": now, "last_updated_by_user_id": 1,
        "active_flag": true, "edit_flag": custom, "index_visible_flag": true,
        "details_visible_flag": true, "add_visible_flag": true, "important_flag": false,
        "bulk_edit_allowed": custom, "searchable_flag": false, "filtering_allowed": true,
        "sortable_flag": true, "mandatory_flag": false,
    })
}

fn known(kind: &str) -> Result<(), Response> {
    if KINDS.contains(&kind) {
        Ok(())
    } else {
        Err(failure(404, "Unknown method ."))
    }
}

/// `GET /v1/{kind}`: every field, `start`/`limit` paged.
pub(super) async fn list(
    State(shared): State<Arc<Shared>>,
    Path(kind): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    if let Err(r) = known(&kind) {
        return r;
    }
    let all: Vec<Value> = registry(&mut shared.db(), &kind)
        .values()
        .cloned()
        .collect();
    match offset_page(&q, all) {
        Ok((data, additional)) => ok(200, Value::Array(data), additional),
        Err(r) => r,
    }
}

/// `POST /v1/{kind}`: a custom field, `{name, field_type, options?}`; its key is 40
/// hexadecimal characters.
pub(super) async fn create(
    State(shared): State<Arc<Shared>>,
    Path(kind): Path<String>,
    PdBody(input): PdBody,
) -> Response {
    if let Err(r) = known(&kind) {
        return r;
    }
    let Some(name) = input
        .get("name")
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|n| !n.is_empty())
    else {
        return failure(400, "Validation failed: name: required");
    };
    let ty = input
        .get("field_type")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if !FIELD_TYPES.contains(&ty) {
        return failure(
            400,
            &format!(
                "Validation failed: field_type: must be one of {}",
                FIELD_TYPES.join(", ")
            ),
        );
    }
    let options = match (ty, input.get("options")) {
        ("enum" | "set", Some(Value::Array(o))) if !o.is_empty() => Some(o.clone()),
        ("enum" | "set", _) => {
            return failure(400, "Validation failed: options: required for enum and set");
        }
        _ => None,
    };
    let mut db = shared.db();
    let n = db.next_id();
    let reg = registry(&mut db, &kind);
    let id = reg.len() as u64 + 1;
    let key = hash_key(shared.seed, &kind, n, name);
    let mut def = definition(id, &key, name, ty, true, &now_v1());
    if let Some(options) = options {
        let labelled: Vec<Value> = options
            .iter()
            .enumerate()
            .map(|(i, o)| {
                let label = o
                    .get("label")
                    .and_then(Value::as_str)
                    .map_or_else(|| o.to_string(), str::to_string);
                json!({"id": i + 1, "label": label})
            })
            .collect();
        def["options"] = Value::Array(labelled);
    }
    reg.insert(key, def.clone());
    drop(db);
    ok(200, def, Value::Null)
}

/// 40 hexadecimal characters, as Pipedrive's keys look (a digest of the emulator's seed and
/// the field).
fn hash_key(seed: u64, kind: &str, n: u64, name: &str) -> String {
    let mut h = Sha256::new();
    h.update(format!("{seed}/{kind}/{n}/{name}").as_bytes());
    hex::encode(h.finalize())[..40].to_string()
}

/// The registry of a v2 object's custom fields (`persons` → `personFields`).
pub(super) fn kind_of_table(table: &str) -> &'static str {
    match table {
        "deals" => "dealFields",
        "organizations" => "organizationFields",
        _ => "personFields",
    }
}

/// The custom field values of a v2 write that the object's registry knows; other keys are
/// ignored (not stored, no error).
pub(super) fn known_custom_fields(
    db: &mut Db,
    table: &str,
    values: &Map<String, Value>,
) -> Map<String, Value> {
    let reg = registry(db, kind_of_table(table));
    values
        .iter()
        .filter(|(k, _)| {
            reg.get(*k)
                .is_some_and(|d| d["edit_flag"].as_bool().unwrap_or(false))
        })
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_look_like_pipedrives() {
        let k = hash_key(7, "personFields", 3, "Call recording URL");
        assert_eq!(k.len(), 40);
        assert!(k.chars().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(k, hash_key(7, "personFields", 4, "Call recording URL"));
    }

    #[test]
    fn only_custom_field_keys_are_kept() {
        let mut db = Db::default();
        let key = "0123456789abcdef0123456789abcdef01234567".to_string();
        registry(&mut db, "personFields").insert(
            key.clone(),
            definition(99, &key, "Score", "double", true, "now"),
        );
        let input: Map<String, Value> = serde_json::from_value(json!({
            key.clone(): 5, "name": "x", "ffffffffffffffffffffffffffffffffffffffff": 1
        }))
        .unwrap_or_default();
        let kept = known_custom_fields(&mut db, "persons", &input);
        assert_eq!(Value::Object(kept), json!({key: 5}));
    }
}
