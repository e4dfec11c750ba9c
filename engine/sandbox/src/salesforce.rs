//! Salesforce REST emulator: the OAuth token endpoint (password, refresh_token and JWT bearer
//! grants, RS256 checked against a test key pair), sObjects create/read/update/delete/upsert for
//! Lead, Contact, Account, Opportunity, Task and Case, a SOQL subset with `nextRecordsUrl`
//! paging, sObject collections (≤ 200, per-record results in input order), the daily API
//! quota with `Sforce-Limit-Info` and the 403 `REQUEST_LIMIT_EXCEEDED` answer.

use super::Credentials;
use super::ratelimit::Decision;
use super::state::{Db, Shared};
use super::util::{cmp_loose, empty, json, looks_like_email, parse_json, set_header, to_millis};
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::Response;
use axum::routing::{get, post};
use base64::Engine as _;
use serde_json::{Map, Value, json};
use std::cmp::Ordering;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

/// Developer Edition: 15,000 API requests per rolling 24 hours.
pub(super) const DEFAULT_LIMIT: (u32, Duration) = (15_000, Duration::from_secs(24 * 3600));
const COLLECTION_MAX: usize = 200;
const DEFAULT_BATCH: usize = 2000;
const ORG_ID: &str = "00D000000000001AAA";
const USER_ID: &str = "005000000000001AAA";

/// The private half of the JWT bearer test key pair (PKCS#8 PEM); a test key, not a secret.
pub const JWT_TEST_PRIVATE_KEY_PEM: &str = include_str!("keys/salesforce-jwt-test-key.pem");
const JWT_TEST_PUBLIC_KEY_PEM: &str = include_str!("keys/salesforce-jwt-test-key.pub.pem");

pub(super) fn credentials(base_url: &str) -> Credentials {
    Credentials::from_pairs(&[
        ("client_id", "3MVG9sandbox.switchyard.consumer.key"),
        ("client_secret", "sandbox-salesforce-consumer-secret"),
        ("username", "integration@switchyard.sandbox"),
        ("password", "sandbox-password"),
        ("security_token", "SANDBOXSECURITYTOKEN"),
        ("refresh_token", "5Aep861sandbox.salesforce.refresh.token"),
        (
            "access_token",
            "00D000000000001!sandbox.static.access.token",
        ),
        ("private_key_pem", JWT_TEST_PRIVATE_KEY_PEM),
        ("login_url", base_url),
    ])
}

/// The token endpoint and the version list do not count against the API quota.
pub(super) fn exempt(path: &str) -> bool {
    path.starts_with("/services/oauth2/") || path.trim_end_matches('/') == "/services/data"
}

pub(super) fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/services/oauth2/token", post(token))
        .route("/services/data", get(versions))
        .route("/services/data/", get(versions))
        .route("/services/data/{version}/limits", get(limits))
        .route("/services/data/{version}/sobjects/{sobject}", post(create))
        .route(
            "/services/data/{version}/sobjects/{sobject}/describe",
            get(describe),
        )
        .route(
            "/services/data/{version}/sobjects/{sobject}/{id}",
            get(read).patch(update).delete(remove),
        )
        .route(
            "/services/data/{version}/sobjects/{sobject}/{field}/{value}",
            get(read_by_external).patch(upsert),
        )
        .route("/services/data/{version}/query", get(query))
        .route("/services/data/{version}/queryAll", get(query))
        .route("/services/data/{version}/query/{locator}", get(query_more))
        .route(
            "/services/data/{version}/queryAll/{locator}",
            get(query_more),
        )
        .route(
            "/services/data/{version}/composite/sobjects",
            post(collection_create)
                .patch(collection_update)
                .delete(collection_delete),
        )
        .route(
            "/services/data/{version}/composite/sobjects/{sobject}",
            get(collection_retrieve).post(collection_retrieve_post),
        )
        .route(
            "/services/data/{version}/composite/sobjects/{sobject}/{field}",
            axum::routing::patch(collection_upsert),
        )
        .fallback(not_found_route)
        .with_state(shared)
}

pub(super) fn server_error(shared: &Shared, status: u16) -> Response {
    let body = if status == 503 {
        json!([{"message": "Server unavailable", "errorCode": "SERVER_UNAVAILABLE"}])
    } else {
        json!([{"message": format!("An unexpected error occurred. Please include this ErrorId if you contact support: {} (-1)", shared.uuid()),
                "errorCode": "UNKNOWN_EXCEPTION"}])
    };
    json(status, body)
}

pub(super) fn throttled(_shared: &Shared, _d: &Decision) -> Response {
    json(
        403,
        json!([{"message": "TotalRequests Limit exceeded.", "errorCode": "REQUEST_LIMIT_EXCEEDED"}]),
    )
}

pub(super) fn limit_headers(d: &Decision, h: &mut HeaderMap) {
    let used = d.max.saturating_sub(d.remaining);
    set_header(
        h,
        "sforce-limit-info",
        &format!("api-usage={used}/{}", d.max),
    );
}

// ---------------------------------------------------------------------------------------
// Errors and auth.

fn err(status: u16, code: &str, message: &str) -> Response {
    json(status, json!([{"message": message, "errorCode": code}]))
}

fn err_fields(status: u16, e: &SfError) -> Response {
    json(
        status,
        json!([{"message": e.message, "errorCode": e.code, "fields": e.fields}]),
    )
}

fn not_found() -> Response {
    err(404, "NOT_FOUND", "The requested resource does not exist")
}

async fn not_found_route() -> Response {
    not_found()
}

fn authorize(shared: &Shared, headers: &HeaderMap) -> Result<(), Response> {
    let ok = super::util::bearer(headers)
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

/// Common prelude of every data handler: version, auth, object.
fn prelude(
    shared: &Shared,
    headers: &HeaderMap,
    version: &str,
    sobject: Option<&str>,
) -> Result<Option<&'static ObjectDef>, Response> {
    check_version(version)?;
    authorize(shared, headers)?;
    match sobject {
        None => Ok(None),
        Some(s) => object_def(s).map(Some).ok_or_else(|| {
            err(
                404,
                "NOT_FOUND",
                &format!(
                    "The requested resource does not exist: sObject type '{s}' is not supported"
                ),
            )
        }),
    }
}

// ---------------------------------------------------------------------------------------
// Objects and fields.

#[derive(Debug, Clone, Copy, PartialEq)]
enum Kind {
    Text,
    Email,
    Number,
    Date,
    DateTime,
    Bool,
}

#[derive(Debug)]
struct ObjectDef {
    name: &'static str,
    prefix: &'static str,
    required: &'static [&'static str],
    fields: &'static [(&'static str, Kind)],
    defaults: &'static [(&'static str, &'static str)],
}

use Kind::{Bool, Date, DateTime, Email, Number, Text};

const SYSTEM_FIELDS: &[(&str, Kind)] = &[
    ("Id", Text),
    ("IsDeleted", Bool),
    ("CreatedDate", DateTime),
    ("CreatedById", Text),
    ("LastModifiedDate", DateTime),
    ("LastModifiedById", Text),
    ("SystemModstamp", DateTime),
];

static OBJECTS: &[ObjectDef] = &[
    ObjectDef {
        name: "Lead",
        prefix: "00Q",
        required: &["LastName", "Company"],
        fields: &[
            ("Name", Text),
            ("FirstName", Text),
            ("LastName", Text),
            ("Salutation", Text),
            ("Company", Text),
            ("Title", Text),
            ("Email", Email),
            ("Phone", Text),
            ("MobilePhone", Text),
            ("Fax", Text),
            ("Website", Text),
            ("Status", Text),
            ("LeadSource", Text),
            ("Industry", Text),
            ("Rating", Text),
            ("AnnualRevenue", Number),
            ("NumberOfEmployees", Number),
            ("Description", Text),
            ("Street", Text),
            ("City", Text),
            ("State", Text),
            ("PostalCode", Text),
            ("Country", Text),
            ("OwnerId", Text),
            ("IsConverted", Bool),
            ("HasOptedOutOfEmail", Bool),
            ("DoNotCall", Bool),
        ],
        defaults: &[("Status", "Open - Not Contacted")],
    },
    ObjectDef {
        name: "Contact",
        prefix: "003",
        required: &["LastName"],
        fields: &[
            ("Name", Text),
            ("FirstName", Text),
            ("LastName", Text),
            ("Salutation", Text),
            ("Email", Email),
            ("Phone", Text),
            ("MobilePhone", Text),
            ("HomePhone", Text),
            ("Title", Text),
            ("Department", Text),
            ("AccountId", Text),
            ("LeadSource", Text),
            ("Description", Text),
            ("MailingStreet", Text),
            ("MailingCity", Text),
            ("MailingState", Text),
            ("MailingPostalCode", Text),
            ("MailingCountry", Text),
            ("Birthdate", Date),
            ("OwnerId", Text),
            ("HasOptedOutOfEmail", Bool),
            ("DoNotCall", Bool),
        ],
        defaults: &[],
    },
    ObjectDef {
        name: "Account",
        prefix: "001",
        required: &["Name"],
        fields: &[
            ("Name", Text),
            ("Type", Text),
            ("Industry", Text),
            ("Phone", Text),
            ("Website", Text),
            ("Description", Text),
            ("AnnualRevenue", Number),
            ("NumberOfEmployees", Number),
            ("BillingStreet", Text),
            ("BillingCity", Text),
            ("BillingState", Text),
            ("BillingPostalCode", Text),
            ("BillingCountry", Text),
            ("AccountNumber", Text),
            ("OwnerId", Text),
        ],
        defaults: &[],
    },
    ObjectDef {
        name: "Opportunity",
        prefix: "006",
        required: &["Name", "StageName", "CloseDate"],
        fields: &[
            ("Name", Text),
            ("StageName", Text),
            ("CloseDate", Date),
            ("Amount", Number),
            ("AccountId", Text),
            ("ContactId", Text),
            ("Probability", Number),
            ("Type", Text),
            ("LeadSource", Text),
            ("Description", Text),
            ("NextStep", Text),
            ("ForecastCategoryName", Text),
            ("CampaignId", Text),
            ("OwnerId", Text),
        ],
        defaults: &[],
    },
    ObjectDef {
        name: "Task",
        prefix: "00T",
        required: &[],
        fields: &[
            ("Subject", Text),
            ("Status", Text),
            ("Priority", Text),
            ("ActivityDate", Date),
            ("Description", Text),
            ("WhoId", Text),
            ("WhatId", Text),
            ("OwnerId", Text),
            ("Type", Text),
            ("TaskSubtype", Text),
            ("ReminderDateTime", DateTime),
            ("IsReminderSet", Bool),
            ("CallType", Text),
            ("CallDurationInSeconds", Number),
        ],
        defaults: &[("Status", "Not Started"), ("Priority", "Normal")],
    },
    ObjectDef {
        name: "Case",
        prefix: "500",
        required: &[],
        fields: &[
            ("Subject", Text),
            ("Status", Text),
            ("Priority", Text),
            ("Origin", Text),
            ("Type", Text),
            ("Reason", Text),
            ("Description", Text),
            ("ContactId", Text),
            ("AccountId", Text),
            ("SuppliedEmail", Email),
            ("SuppliedName", Text),
            ("SuppliedPhone", Text),
            ("OwnerId", Text),
        ],
        defaults: &[("Status", "New"), ("Priority", "Medium")],
    },
];

fn object_def(name: &str) -> Option<&'static ObjectDef> {
    OBJECTS.iter().find(|o| o.name.eq_ignore_ascii_case(name))
}

impl ObjectDef {
    /// The canonical spelling and kind of a field (custom `__c` fields are text).
    fn field(&self, name: &str) -> Option<(String, Kind)> {
        if let Some((n, k)) = SYSTEM_FIELDS
            .iter()
            .chain(self.fields.iter())
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
        {
            return Some((n.to_string(), *k));
        }
        let custom = name.len() > 3
            && name
                .get(name.len() - 3..)
                .is_some_and(|s| s.eq_ignore_ascii_case("__c"))
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        custom.then(|| (name.to_string(), Text))
    }

    fn url(&self, id: &str) -> String {
        format!("/services/data/v62.0/sobjects/{}/{id}", self.name)
    }
}

/// A record-level error: Salesforce `errorCode`/`statusCode`, message, fields.
#[derive(Debug, Clone)]
struct SfError {
    code: &'static str,
    message: String,
    fields: Vec<String>,
}

fn sf_error(code: &'static str, message: impl Into<String>, fields: &[&str]) -> SfError {
    SfError {
        code,
        message: message.into(),
        fields: fields.iter().map(|s| s.to_string()).collect(),
    }
}

/// An 18-character Salesforce id with its case-folding checksum.
fn make_id(prefix: &str, n: u64) -> String {
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

fn sf_now() -> String {
    chrono::Utc::now()
        .format("%Y-%m-%dT%H:%M:%S%.3f+0000")
        .to_string()
}

/// Checks and canonicalises the fields of a write.
fn clean_fields(
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

fn missing_required(def: &ObjectDef, rec: &Map<String, Value>) -> Option<SfError> {
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

fn compute_name(def: &ObjectDef, rec: &mut Map<String, Value>) {
    if def.name == "Lead" || def.name == "Contact" {
        let first = rec.get("FirstName").and_then(Value::as_str).unwrap_or("");
        let last = rec.get("LastName").and_then(Value::as_str).unwrap_or("");
        let name = format!("{first} {last}").trim().to_string();
        rec.insert("Name".into(), Value::String(name));
    }
}

fn insert(db: &mut Db, def: &ObjectDef, input: &Map<String, Value>) -> Result<String, SfError> {
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
fn resolve_id(db: &Db, def: &ObjectDef, id: &str) -> Option<String> {
    let table = db.tables.get(def.name)?;
    if table.contains_key(id) {
        return Some(id.to_string());
    }
    (id.len() == 15)
        .then(|| table.keys().find(|k| k.starts_with(id)).cloned())
        .flatten()
}

fn patch(
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
fn render(def: &ObjectDef, rec: &Value, only: Option<&[String]>) -> Value {
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

fn body_object(body: &[u8]) -> Result<Map<String, Value>, Response> {
    match parse_json(body) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(_) => Err(err(
            400,
            "JSON_PARSER_ERROR",
            "Cannot deserialize instance of sObject from a non-object value",
        )),
        Err(e) => Err(err(
            400,
            "JSON_PARSER_ERROR",
            &format!("Unexpected character: {e}"),
        )),
    }
}

// ---------------------------------------------------------------------------------------
// Single-record handlers.

async fn versions() -> Response {
    json(
        200,
        json!([{"label": "Winter '25", "url": "/services/data/v62.0", "version": "62.0"}]),
    )
}

async fn limits(
    State(shared): State<Arc<Shared>>,
    Path(version): Path<String>,
    headers: HeaderMap,
) -> Response {
    if let Err(r) = prelude(&shared, &headers, &version, None) {
        return r;
    }
    let d = super::state::lock(&shared.limiter).check(std::time::Instant::now());
    json(
        200,
        json!({"DailyApiRequests": {"Max": d.max, "Remaining": d.remaining}}),
    )
}

async fn describe(
    State(shared): State<Arc<Shared>>,
    Path((version, sobject)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    let def = match prelude(&shared, &headers, &version, Some(&sobject)) {
        Ok(Some(d)) => d,
        Ok(None) => return not_found(),
        Err(r) => return r,
    };
    let fields: Vec<Value> = SYSTEM_FIELDS
        .iter()
        .chain(def.fields.iter())
        .map(|(n, k)| {
            let t = match k {
                Text => "string",
                Email => "email",
                Number => "double",
                Date => "date",
                DateTime => "datetime",
                Bool => "boolean",
            };
            json!({"name": n, "type": t, "nillable": !def.required.contains(n),
                   "createable": !SYSTEM_FIELDS.iter().any(|(s, _)| s == n)})
        })
        .collect();
    json(
        200,
        json!({"name": def.name, "keyPrefix": def.prefix, "fields": fields}),
    )
}

async fn create(
    State(shared): State<Arc<Shared>>,
    Path((version, sobject)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let def = match prelude(&shared, &headers, &version, Some(&sobject)) {
        Ok(Some(d)) => d,
        Ok(None) => return not_found(),
        Err(r) => return r,
    };
    let input = match body_object(&body) {
        Ok(m) => m,
        Err(r) => return r,
    };
    let result = insert(&mut shared.db(), def, &input);
    match result {
        Ok(id) => json(201, json!({"id": id, "success": true, "errors": []})),
        Err(e) => err_fields(400, &e),
    }
}

async fn read(
    State(shared): State<Arc<Shared>>,
    Path((version, sobject, id)): Path<(String, String, String)>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    let def = match prelude(&shared, &headers, &version, Some(&sobject)) {
        Ok(Some(d)) => d,
        Ok(None) => return not_found(),
        Err(r) => return r,
    };
    let only: Option<Vec<String>> = q
        .get("fields")
        .map(|f| f.split(',').map(|s| s.trim().to_string()).collect());
    if let Some(fields) = &only
        && let Some(bad) = fields.iter().find(|f| def.field(f).is_none())
    {
        return err(
            400,
            "INVALID_FIELD",
            &format!("No such column '{bad}' on entity '{}'", def.name),
        );
    }
    let db = shared.db();
    let rec = resolve_id(&db, def, &id).and_then(|k| db.get(def.name, &k).cloned());
    drop(db);
    match rec {
        Some(r) => json(200, render(def, &r, only.as_deref())),
        None => not_found(),
    }
}

async fn update(
    State(shared): State<Arc<Shared>>,
    Path((version, sobject, id)): Path<(String, String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let def = match prelude(&shared, &headers, &version, Some(&sobject)) {
        Ok(Some(d)) => d,
        Ok(None) => return not_found(),
        Err(r) => return r,
    };
    let input = match body_object(&body) {
        Ok(m) => m,
        Err(r) => return r,
    };
    let mut db = shared.db();
    if resolve_id(&db, def, &id).is_none() {
        return not_found();
    }
    match patch(&mut db, def, &id, &input) {
        Ok(()) => empty(204),
        Err(e) => err_fields(400, &e),
    }
}

async fn remove(
    State(shared): State<Arc<Shared>>,
    Path((version, sobject, id)): Path<(String, String, String)>,
    headers: HeaderMap,
) -> Response {
    let def = match prelude(&shared, &headers, &version, Some(&sobject)) {
        Ok(Some(d)) => d,
        Ok(None) => return not_found(),
        Err(r) => return r,
    };
    let mut db = shared.db();
    match resolve_id(&db, def, &id) {
        Some(k) => {
            db.table(def.name).shift_remove(&k);
            empty(204)
        }
        None => {
            drop(db);
            err(404, "ENTITY_IS_DELETED", "entity is deleted")
        }
    }
}

/// Ids of records whose `field` equals `value` (case-insensitive text).
fn find_by(db: &Db, def: &ObjectDef, field: &str, value: &str) -> Vec<String> {
    db.tables
        .get(def.name)
        .map(|t| {
            t.iter()
                .filter(|(_, r)| {
                    r.get(field)
                        .map(super::util::scalar_text)
                        .is_some_and(|v| v.eq_ignore_ascii_case(value))
                })
                .map(|(k, _)| k.clone())
                .collect()
        })
        .unwrap_or_default()
}

fn external_field(def: &ObjectDef, field: &str) -> Result<String, Response> {
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

async fn read_by_external(
    State(shared): State<Arc<Shared>>,
    Path((version, sobject, field, value)): Path<(String, String, String, String)>,
    headers: HeaderMap,
) -> Response {
    let def = match prelude(&shared, &headers, &version, Some(&sobject)) {
        Ok(Some(d)) => d,
        Ok(None) => return not_found(),
        Err(r) => return r,
    };
    let field = match external_field(def, &field) {
        Ok(f) => f,
        Err(r) => return r,
    };
    let db = shared.db();
    let ids = find_by(&db, def, &field, &value);
    match ids.as_slice() {
        [one] => {
            let rec = db.get(def.name, one).cloned().unwrap_or(Value::Null);
            json(200, render(def, &rec, None))
        }
        [] => not_found(),
        many => json(
            300,
            Value::Array(many.iter().map(|id| json!(def.url(id))).collect()),
        ),
    }
}

/// Upsert one record by external id: (status, created id, created?) or an error.
fn upsert_one(
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

async fn upsert(
    State(shared): State<Arc<Shared>>,
    Path((version, sobject, field, value)): Path<(String, String, String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let def = match prelude(&shared, &headers, &version, Some(&sobject)) {
        Ok(Some(d)) => d,
        Ok(None) => return not_found(),
        Err(r) => return r,
    };
    let field = match external_field(def, &field) {
        Ok(f) => f,
        Err(r) => return r,
    };
    let input = match body_object(&body) {
        Ok(m) => m,
        Err(r) => return r,
    };
    let result = upsert_one(&mut shared.db(), def, &field, &value, &input);
    match result {
        Ok((id, created)) => json(
            if created { 201 } else { 200 },
            json!({"id": id, "success": true, "errors": [], "created": created}),
        ),
        Err((status, e)) => err_fields(status, &e),
    }
}

// ---------------------------------------------------------------------------------------
// SOQL.

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Word(String),
    Str(String),
    Sym(String),
}

fn tokenize(q: &str) -> Result<Vec<Tok>, String> {
    let cs: Vec<char> = q.chars().collect();
    let mut i = 0;
    let mut out = Vec::new();
    while i < cs.len() {
        let c = cs[i];
        if c.is_whitespace() {
            i += 1;
        } else if c == '\'' {
            let mut s = String::new();
            i += 1;
            loop {
                match cs.get(i) {
                    None => return Err("unterminated string literal".into()),
                    Some('\\') => {
                        if let Some(n) = cs.get(i + 1) {
                            s.push(*n);
                        }
                        i += 2;
                    }
                    Some('\'') => {
                        i += 1;
                        break;
                    }
                    Some(ch) => {
                        s.push(*ch);
                        i += 1;
                    }
                }
            }
            out.push(Tok::Str(s));
        } else if c.is_alphanumeric() || c == '_' || c == '-' || c == '.' {
            let start = i;
            while i < cs.len() && (cs[i].is_alphanumeric() || "_.-:+".contains(cs[i])) {
                i += 1;
            }
            out.push(Tok::Word(cs[start..i].iter().collect()));
        } else if "<>!".contains(c) && cs.get(i + 1) == Some(&'=') {
            out.push(Tok::Sym(format!("{c}=")));
            i += 2;
        } else if c == '<' && cs.get(i + 1) == Some(&'>') {
            out.push(Tok::Sym("!=".into()));
            i += 2;
        } else if "=<>(),".contains(c) {
            out.push(Tok::Sym(c.to_string()));
            i += 1;
        } else {
            return Err(format!("unexpected character '{c}'"));
        }
    }
    Ok(out)
}

#[derive(Debug, Clone)]
struct Cond {
    field: String,
    op: String,
    values: Vec<Value>,
}

#[derive(Debug, Clone)]
struct Soql {
    fields: Vec<String>,
    object: &'static ObjectDef,
    conds: Vec<Cond>,
    order: Option<(String, bool)>,
    limit: Option<usize>,
    offset: usize,
}

struct Parser {
    toks: Vec<Tok>,
    pos: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.pos)
    }
    fn next(&mut self) -> Option<Tok> {
        let t = self.toks.get(self.pos).cloned();
        self.pos += 1;
        t
    }
    fn keyword(&mut self, kw: &str) -> bool {
        if matches!(self.peek(), Some(Tok::Word(w)) if w.eq_ignore_ascii_case(kw)) {
            self.pos += 1;
            true
        } else {
            false
        }
    }
    fn word(&mut self, what: &str) -> Result<String, String> {
        match self.next() {
            Some(Tok::Word(w)) => Ok(w),
            other => Err(format!("expected {what}, found {other:?}")),
        }
    }
    fn literal(&mut self) -> Result<Value, String> {
        match self.next() {
            Some(Tok::Str(s)) => Ok(Value::String(s)),
            Some(Tok::Word(w)) if w.eq_ignore_ascii_case("null") => Ok(Value::Null),
            Some(Tok::Word(w)) if w.eq_ignore_ascii_case("true") => Ok(Value::Bool(true)),
            Some(Tok::Word(w)) if w.eq_ignore_ascii_case("false") => Ok(Value::Bool(false)),
            Some(Tok::Word(w)) if w.starts_with(|c: char| c.is_ascii_digit() || c == '-') => {
                Ok(Value::String(w))
            }
            other => Err(format!("expected a literal value, found {other:?}")),
        }
    }
}

fn parse_soql(q: &str) -> Result<Soql, (&'static str, String)> {
    let malformed = |m: String| ("MALFORMED_QUERY", m);
    let mut p = Parser {
        toks: tokenize(q).map_err(malformed)?,
        pos: 0,
    };
    if !p.keyword("SELECT") {
        return Err(malformed(
            "unexpected token: query must start with SELECT".into(),
        ));
    }
    let mut fields = vec![p.word("a field name").map_err(malformed)?];
    while matches!(p.peek(), Some(Tok::Sym(s)) if s == ",") {
        p.next();
        fields.push(p.word("a field name").map_err(malformed)?);
    }
    if !p.keyword("FROM") {
        return Err(malformed("expecting FROM".into()));
    }
    let obj = p.word("an sObject name").map_err(malformed)?;
    let object = object_def(&obj).ok_or((
        "INVALID_TYPE",
        format!("sObject type '{obj}' is not supported. If you are attempting to use a custom object, be sure to append the '__c' after the entity name."),
    ))?;
    let mut canon = Vec::new();
    for f in &fields {
        match object.field(f) {
            Some((n, _)) => canon.push(n),
            None => {
                return Err((
                    "INVALID_FIELD",
                    format!(
                        "No such column '{f}' on entity '{}'. If you are attempting to use a custom field, be sure to append the '__c' after the custom field name.",
                        object.name
                    ),
                ));
            }
        }
    }
    let mut conds = Vec::new();
    if p.keyword("WHERE") {
        loop {
            let f = p.word("a field name").map_err(malformed)?;
            let (field, _) = object.field(&f).ok_or((
                "INVALID_FIELD",
                format!("No such column '{f}' on entity '{}'", object.name),
            ))?;
            let (op, values) = if p.keyword("NOT") {
                if !p.keyword("IN") {
                    return Err(malformed("expecting IN after NOT".into()));
                }
                ("NOT IN".to_string(), list(&mut p).map_err(malformed)?)
            } else if p.keyword("IN") {
                ("IN".to_string(), list(&mut p).map_err(malformed)?)
            } else if p.keyword("LIKE") {
                ("LIKE".to_string(), vec![p.literal().map_err(malformed)?])
            } else {
                match p.next() {
                    Some(Tok::Sym(s))
                        if ["=", "!=", "<", "<=", ">", ">="].contains(&s.as_str()) =>
                    {
                        (s, vec![p.literal().map_err(malformed)?])
                    }
                    other => return Err(malformed(format!("unexpected token: {other:?}"))),
                }
            };
            conds.push(Cond { field, op, values });
            if p.keyword("AND") {
                continue;
            }
            if matches!(p.peek(), Some(Tok::Word(w)) if w.eq_ignore_ascii_case("OR")) {
                return Err(malformed(
                    "OR is not supported by the sandbox's SOQL subset".into(),
                ));
            }
            break;
        }
    }
    let mut order = None;
    if p.keyword("ORDER") {
        if !p.keyword("BY") {
            return Err(malformed("expecting BY after ORDER".into()));
        }
        let f = p.word("a field name").map_err(malformed)?;
        let (field, _) = object.field(&f).ok_or((
            "INVALID_FIELD",
            format!("No such column '{f}' on entity '{}'", object.name),
        ))?;
        let desc = if p.keyword("DESC") {
            true
        } else {
            p.keyword("ASC");
            false
        };
        if p.keyword("NULLS") {
            let _ = p.next();
        }
        order = Some((field, desc));
    }
    let mut limit = None;
    if p.keyword("LIMIT") {
        let n = p.word("a number").map_err(malformed)?;
        limit = Some(
            n.parse()
                .map_err(|_| malformed(format!("invalid LIMIT {n}")))?,
        );
    }
    let mut offset = 0;
    if p.keyword("OFFSET") {
        let n = p.word("a number").map_err(malformed)?;
        offset = n
            .parse()
            .map_err(|_| malformed(format!("invalid OFFSET {n}")))?;
    }
    if let Some(t) = p.peek() {
        return Err(malformed(format!("unexpected token: {t:?}")));
    }
    Ok(Soql {
        fields: canon,
        object,
        conds,
        order,
        limit,
        offset,
    })
}

fn list(p: &mut Parser) -> Result<Vec<Value>, String> {
    if !matches!(p.next(), Some(Tok::Sym(s)) if s == "(") {
        return Err("expecting '('".into());
    }
    let mut out = vec![p.literal()?];
    loop {
        match p.next() {
            Some(Tok::Sym(s)) if s == "," => out.push(p.literal()?),
            Some(Tok::Sym(s)) if s == ")" => return Ok(out),
            other => return Err(format!("expecting ',' or ')', found {other:?}")),
        }
    }
}

fn cond_matches(rec: &Value, c: &Cond) -> bool {
    let actual = rec.get(&c.field).cloned().unwrap_or(Value::Null);
    let eq = |want: &Value| -> bool {
        match (&actual, want) {
            (Value::Null, Value::Null) => true,
            (Value::Null, _) | (_, Value::Null) => false,
            (Value::Bool(a), Value::Bool(b)) => a == b,
            (a, b) => {
                cmp_loose(&super::util::scalar_text(a), &super::util::scalar_text(b))
                    == Ordering::Equal
            }
        }
    };
    let ord = |want: &Value| -> Option<Ordering> {
        if actual.is_null() || want.is_null() {
            return None;
        }
        Some(cmp_loose(
            &super::util::scalar_text(&actual),
            &super::util::scalar_text(want),
        ))
    };
    let v = c.values.first().cloned().unwrap_or(Value::Null);
    match c.op.as_str() {
        "=" => eq(&v),
        "!=" => !eq(&v),
        "<" => ord(&v) == Some(Ordering::Less),
        "<=" => matches!(ord(&v), Some(Ordering::Less | Ordering::Equal)),
        ">" => ord(&v) == Some(Ordering::Greater),
        ">=" => matches!(ord(&v), Some(Ordering::Greater | Ordering::Equal)),
        "IN" => c.values.iter().any(eq),
        "NOT IN" => !c.values.iter().any(eq),
        "LIKE" => {
            let pat = super::util::scalar_text(&v).to_lowercase();
            let text = super::util::scalar_text(&actual).to_lowercase();
            like(&text, &pat)
        }
        _ => false,
    }
}

/// SOQL LIKE with `%` and `_` wildcards, case-insensitive.
fn like(text: &str, pat: &str) -> bool {
    let t: Vec<char> = text.chars().collect();
    let p: Vec<char> = pat.chars().collect();
    let (mut ti, mut pi) = (0, 0);
    let (mut star, mut mark) = (None, 0);
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '_' || p[pi] == t[ti]) {
            ti += 1;
            pi += 1;
        } else if pi < p.len() && p[pi] == '%' {
            star = Some(pi);
            mark = ti;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ti = mark;
        } else {
            return false;
        }
    }
    while pi < p.len() && p[pi] == '%' {
        pi += 1;
    }
    pi == p.len()
}

fn batch_size(headers: &HeaderMap) -> usize {
    headers
        .get("sforce-query-options")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.split(',').find_map(|kv| {
                let (k, v) = kv.split_once('=')?;
                (k.trim().eq_ignore_ascii_case("batchSize"))
                    .then(|| v.trim().parse::<usize>().ok())
                    .flatten()
            })
        })
        .filter(|n| *n >= 1)
        .map_or(DEFAULT_BATCH, |n| n.min(DEFAULT_BATCH))
}

async fn query(
    State(shared): State<Arc<Shared>>,
    Path(version): Path<String>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    if let Err(r) = prelude(&shared, &headers, &version, None) {
        return r;
    }
    let Some(text) = q.get("q") else {
        return err(400, "MALFORMED_QUERY", "A query string has to be specified");
    };
    let soql = match parse_soql(text) {
        Ok(s) => s,
        Err((code, msg)) => return err(400, code, &msg),
    };
    let def = soql.object;
    let mut db = shared.db();
    let mut hits: Vec<Value> = db
        .tables
        .get(def.name)
        .map(|t| {
            t.values()
                .filter(|r| soql.conds.iter().all(|c| cond_matches(r, c)))
                .cloned()
                .collect()
        })
        .unwrap_or_default();
    if let Some((f, desc)) = &soql.order {
        hits.sort_by(|a, b| {
            let x = super::util::scalar_text(a.get(f).unwrap_or(&Value::Null));
            let y = super::util::scalar_text(b.get(f).unwrap_or(&Value::Null));
            let o = cmp_loose(&x, &y);
            if *desc { o.reverse() } else { o }
        });
    }
    let rows: Vec<Value> = hits
        .iter()
        .skip(soql.offset)
        .take(soql.limit.unwrap_or(usize::MAX))
        .map(|r| render(def, r, Some(&soql.fields)))
        .collect();
    let locator = format!("01g{}", &db.token(shared.seed)[..15]);
    let size = batch_size(&headers);
    db.cursors
        .insert(locator.clone(), Value::Array(rows.clone()));
    drop(db);
    page(&version, &locator, &rows, 0, size)
}

fn page(version: &str, locator: &str, rows: &[Value], start: usize, size: usize) -> Response {
    let end = start.saturating_add(size).min(rows.len());
    let records: Vec<Value> = rows.get(start..end).unwrap_or_default().to_vec();
    let mut body = json!({"totalSize": rows.len(), "done": end >= rows.len(), "records": records});
    if end < rows.len() {
        body["nextRecordsUrl"] = json!(format!("/services/data/{version}/query/{locator}-{end}"));
        if let Some(o) = body.as_object_mut() {
            // Keep the documented key order: totalSize, done, nextRecordsUrl, records.
            let records = o.remove("records").unwrap_or(Value::Null);
            o.insert("records".into(), records);
        }
    }
    json(200, body)
}

async fn query_more(
    State(shared): State<Arc<Shared>>,
    Path((version, locator)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    if let Err(r) = prelude(&shared, &headers, &version, None) {
        return r;
    }
    let Some((loc, start)) = locator.rsplit_once('-') else {
        return err(400, "INVALID_QUERY_LOCATOR", "invalid query locator");
    };
    let Ok(start) = start.parse::<usize>() else {
        return err(400, "INVALID_QUERY_LOCATOR", "invalid query locator");
    };
    let rows = shared.db().cursors.get(loc).cloned();
    let Some(Value::Array(rows)) = rows else {
        return err(400, "INVALID_QUERY_LOCATOR", "invalid query locator");
    };
    page(&version, loc, &rows, start, batch_size(&headers))
}

// ---------------------------------------------------------------------------------------
// sObject collections.

fn item_ok(id: &str, created: Option<bool>) -> Value {
    let mut v = json!({"id": id, "success": true, "errors": []});
    if let Some(c) = created {
        v["created"] = Value::Bool(c);
    }
    v
}

fn item_err(e: &SfError) -> Value {
    json!({"success": false, "errors": [{"statusCode": e.code, "message": e.message, "fields": e.fields}]})
}

fn rolled_back() -> Value {
    item_err(&sf_error(
        "ALL_OR_NONE_OPERATION_ROLLED_BACK",
        "Record rolled back because not all records were valid and the request was using AllOrNone header",
        &[],
    ))
}

struct CollectionReq {
    all_or_none: bool,
    records: Vec<Map<String, Value>>,
}

fn collection_body(body: &[u8]) -> Result<CollectionReq, Response> {
    let v = parse_json(body).map_err(|e| {
        err(
            400,
            "JSON_PARSER_ERROR",
            &format!("Unexpected character: {e}"),
        )
    })?;
    let records: Vec<Map<String, Value>> = v
        .get("records")
        .and_then(Value::as_array)
        .ok_or_else(|| err(400, "INVALID_FIELD", "records is required"))?
        .iter()
        .map(|r| r.as_object().cloned().unwrap_or_default())
        .collect();
    if records.len() > COLLECTION_MAX {
        return Err(err(
            400,
            "EXCEEDED_ID_LIMIT",
            &format!(
                "record limit reached. cannot submit more than {COLLECTION_MAX} records into this call"
            ),
        ));
    }
    Ok(CollectionReq {
        all_or_none: v.get("allOrNone").and_then(Value::as_bool).unwrap_or(false),
        records,
    })
}

fn record_type(r: &Map<String, Value>) -> Result<&'static ObjectDef, SfError> {
    let t = r
        .get("attributes")
        .and_then(|a| a.get("type"))
        .and_then(Value::as_str)
        .ok_or_else(|| sf_error("INVALID_TYPE", "Must specify a type in attributes", &[]))?;
    object_def(t).ok_or_else(|| {
        sf_error(
            "INVALID_TYPE",
            format!("sObject type '{t}' is not supported"),
            &[],
        )
    })
}

/// Runs `op` per record on a copy of the tables; with allOrNone and a failure, keeps none.
fn run_collection(
    shared: &Shared,
    all_or_none: bool,
    n: usize,
    mut op: impl FnMut(&mut Db, usize) -> Result<(String, Option<bool>), SfError>,
) -> Response {
    let mut db = shared.db();
    let snapshot = all_or_none.then(|| db.tables.clone());
    let results: Vec<Result<(String, Option<bool>), SfError>> =
        (0..n).map(|i| op(&mut db, i)).collect();
    let failed = results.iter().any(Result::is_err);
    let body: Vec<Value> = if failed && let Some(tables) = snapshot {
        db.tables = tables;
        results
            .iter()
            .map(|r| match r {
                Ok(_) => rolled_back(),
                Err(e) => item_err(e),
            })
            .collect()
    } else {
        results
            .iter()
            .map(|r| match r {
                Ok((id, created)) => item_ok(id, *created),
                Err(e) => item_err(e),
            })
            .collect()
    };
    drop(db);
    json(200, Value::Array(body))
}

async fn collection_create(
    State(shared): State<Arc<Shared>>,
    Path(version): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Err(r) = prelude(&shared, &headers, &version, None) {
        return r;
    }
    let req = match collection_body(&body) {
        Ok(r) => r,
        Err(r) => return r,
    };
    run_collection(&shared, req.all_or_none, req.records.len(), |db, i| {
        let r = &req.records[i];
        if r.contains_key("id") || r.contains_key("Id") {
            return Err(sf_error(
                "INVALID_FIELD",
                "cannot specify Id in an insert call",
                &["Id"],
            ));
        }
        let def = record_type(r)?;
        insert(db, def, r).map(|id| (id, None))
    })
}

async fn collection_update(
    State(shared): State<Arc<Shared>>,
    Path(version): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Err(r) = prelude(&shared, &headers, &version, None) {
        return r;
    }
    let req = match collection_body(&body) {
        Ok(r) => r,
        Err(r) => return r,
    };
    run_collection(&shared, req.all_or_none, req.records.len(), |db, i| {
        let mut r = req.records[i].clone();
        let def = record_type(&r)?;
        let id = r
            .remove("id")
            .or_else(|| r.remove("Id"))
            .and_then(|v| v.as_str().map(String::from))
            .ok_or_else(|| {
                sf_error(
                    "MISSING_ARGUMENT",
                    "Id not specified in an update call",
                    &[],
                )
            })?;
        let key = resolve_id(db, def, &id)
            .ok_or_else(|| sf_error("ENTITY_IS_DELETED", "entity is deleted", &[]))?;
        patch(db, def, &key, &r).map(|()| (key, None))
    })
}

async fn collection_upsert(
    State(shared): State<Arc<Shared>>,
    Path((version, sobject, field)): Path<(String, String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let def = match prelude(&shared, &headers, &version, Some(&sobject)) {
        Ok(Some(d)) => d,
        Ok(None) => return not_found(),
        Err(r) => return r,
    };
    let field = match external_field(def, &field) {
        Ok(f) => f,
        Err(r) => return r,
    };
    let req = match collection_body(&body) {
        Ok(r) => r,
        Err(r) => return r,
    };
    run_collection(&shared, req.all_or_none, req.records.len(), |db, i| {
        let r = &req.records[i];
        let value = r
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(&field))
            .map(|(_, v)| super::util::scalar_text(v))
            .filter(|v| !v.is_empty())
            .ok_or_else(|| {
                sf_error(
                    "MISSING_ARGUMENT",
                    format!("{field} not specified"),
                    &[&field],
                )
            })?;
        upsert_one(db, def, &field, &value, r)
            .map(|(id, created)| (id, Some(created)))
            .map_err(|(_, e)| e)
    })
}

async fn collection_delete(
    State(shared): State<Arc<Shared>>,
    Path(version): Path<String>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    if let Err(r) = prelude(&shared, &headers, &version, None) {
        return r;
    }
    let ids: Vec<String> = q
        .get("ids")
        .map(|s| s.split(',').map(|x| x.trim().to_string()).collect())
        .unwrap_or_default();
    if ids.len() > COLLECTION_MAX {
        return err(400, "EXCEEDED_ID_LIMIT", "too many ids");
    }
    let all_or_none = q.get("allOrNone").is_some_and(|v| v == "true");
    run_collection(&shared, all_or_none, ids.len(), |db, i| {
        let id = &ids[i];
        let def = OBJECTS
            .iter()
            .find(|d| id.starts_with(d.prefix) && resolve_id(db, d, id).is_some());
        match def.and_then(|d| resolve_id(db, d, id).map(|k| (d, k))) {
            Some((d, k)) => {
                db.table(d.name).shift_remove(&k);
                Ok((k, None))
            }
            None => Err(sf_error("ENTITY_IS_DELETED", "entity is deleted", &[])),
        }
    })
}

fn retrieve(shared: &Shared, def: &ObjectDef, ids: &[String], fields: &[String]) -> Response {
    if let Some(bad) = fields.iter().find(|f| def.field(f).is_none()) {
        return err(
            400,
            "INVALID_FIELD",
            &format!("No such column '{bad}' on entity '{}'", def.name),
        );
    }
    let db = shared.db();
    let out: Vec<Value> = ids
        .iter()
        .map(|id| {
            resolve_id(&db, def, id)
                .and_then(|k| db.get(def.name, &k))
                .map(|r| render(def, r, (!fields.is_empty()).then_some(fields)))
                .unwrap_or(Value::Null)
        })
        .collect();
    json(200, Value::Array(out))
}

async fn collection_retrieve(
    State(shared): State<Arc<Shared>>,
    Path((version, sobject)): Path<(String, String)>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    let def = match prelude(&shared, &headers, &version, Some(&sobject)) {
        Ok(Some(d)) => d,
        Ok(None) => return not_found(),
        Err(r) => return r,
    };
    let split = |k: &str| -> Vec<String> {
        q.get(k)
            .map(|s| {
                s.split(',')
                    .map(|x| x.trim().to_string())
                    .filter(|x| !x.is_empty())
                    .collect()
            })
            .unwrap_or_default()
    };
    retrieve(&shared, def, &split("ids"), &split("fields"))
}

async fn collection_retrieve_post(
    State(shared): State<Arc<Shared>>,
    Path((version, sobject)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let def = match prelude(&shared, &headers, &version, Some(&sobject)) {
        Ok(Some(d)) => d,
        Ok(None) => return not_found(),
        Err(r) => return r,
    };
    let v = parse_json(&body).unwrap_or(Value::Null);
    let strings = |k: &str| -> Vec<String> {
        v.get(k)
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .map(String::from)
                    .collect()
            })
            .unwrap_or_default()
    };
    retrieve(&shared, def, &strings("ids"), &strings("fields"))
}

// ---------------------------------------------------------------------------------------
// OAuth.

fn oauth_error(error: &str, description: &str) -> Response {
    json(
        400,
        json!({"error": error, "error_description": description}),
    )
}

async fn token(State(shared): State<Arc<Shared>>, body: Bytes) -> Response {
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
        .encode(super::state::mix(shared.seed, issued_at.len() as u64).to_be_bytes());
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
    let exp = claims.get("exp").and_then(Value::as_i64).unwrap_or(0);
    if exp <= super::util::now_unix() {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_have_a_case_checksum() {
        let id = make_id("00Q", 1);
        assert_eq!(id.len(), 18);
        assert_eq!(&id[15..], "EAA");
    }

    #[test]
    fn soql_subset_parses() {
        let q = parse_soql("SELECT Id, email FROM lead WHERE Email = 'a@b.co' AND LastName IN ('x','y') ORDER BY CreatedDate DESC LIMIT 5")
            .expect("parses");
        assert_eq!(q.fields, vec!["Id", "Email"]);
        assert_eq!(q.object.name, "Lead");
        assert_eq!(q.conds.len(), 2);
        assert_eq!(q.limit, Some(5));
        assert_eq!(
            parse_soql("SELECT Foo FROM Lead").map_err(|e| e.0).err(),
            Some("INVALID_FIELD")
        );
        assert_eq!(
            parse_soql("SELECT Id FROM Nope").map_err(|e| e.0).err(),
            Some("INVALID_TYPE")
        );
        assert_eq!(
            parse_soql("SELECT Id Lead").map_err(|e| e.0).err(),
            Some("MALFORMED_QUERY")
        );
        assert!(like("hello world", "hel%w_rld"));
        assert!(!like("hello", "h_"));
    }
}
