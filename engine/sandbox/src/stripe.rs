//! Stripe emulator: customers, payment intents and subscriptions with form-encoded (bracketed)
//! bodies, `starting_after`/`ending_before`/`has_more` lists, the search query language,
//! `Idempotency-Key` replay, `sk_test_…` auth, and the 429 `rate_limit` error.

use super::Credentials;
use super::ratelimit::Decision;
use super::state::{Db, Shared};
use super::util::{basic, bearer, json, set_header};
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, Method};
use axum::response::Response;
use axum::routing::get;
use serde_json::{Map, Value, json};
use std::sync::Arc;
use std::time::Duration;

/// Test mode: 25 requests per second.
pub(super) const DEFAULT_LIMIT: (u32, Duration) = (25, Duration::from_secs(1));

pub(super) fn credentials(_base_url: &str) -> Credentials {
    Credentials::from_pairs(&[("secret_key", "sk_test_sandbox51SwitchyardEmulatorKey")])
}

pub(super) fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/v1/{resource}", get(list).post(create))
        .route("/v1/{resource}/search", get(search))
        .route(
            "/v1/{resource}/{id}",
            get(retrieve).post(update).delete(remove),
        )
        .fallback(unknown_route)
        .with_state(shared)
}

pub(super) fn server_error(_shared: &Shared, status: u16) -> Response {
    let mut r = json(
        status,
        json!({"error": {"message": "An unknown error occurred", "type": "api_error"}}),
    );
    set_header(r.headers_mut(), "stripe-should-retry", "true");
    r
}

pub(super) fn throttled(_shared: &Shared, _d: &Decision) -> Response {
    json(
        429,
        json!({"error": {"code": "rate_limit",
            "doc_url": "https://stripe.com/docs/error-codes/rate-limit",
            "message": "Too many requests hit the API too quickly. We recommend an exponential backoff of your requests.",
            "type": "invalid_request_error"}}),
    )
}

/// Stripe sends no rate-limit headers; every response carries a `Request-Id`.
pub(super) fn limit_headers(shared: &Shared, h: &mut HeaderMap) {
    if !h.contains_key("request-id") {
        let id = format!("req_{}", &shared.uuid().replace('-', "")[..14]);
        set_header(h, "request-id", &id);
    }
}

// ---------------------------------------------------------------------------------------
// Errors and auth.

fn invalid(status: u16, code: Option<&str>, message: &str, param: Option<&str>) -> Response {
    let mut e = json!({"message": message, "type": "invalid_request_error"});
    if let Some(c) = code {
        e["code"] = json!(c);
        e["doc_url"] = json!(format!(
            "https://stripe.com/docs/error-codes/{}",
            c.replace('_', "-")
        ));
    }
    if let Some(p) = param {
        e["param"] = json!(p);
    }
    json(status, json!({"error": e}))
}

fn missing(kind: &str, id: &str, param: &str) -> Response {
    invalid(
        404,
        Some("resource_missing"),
        &format!("No such {kind}: '{id}'"),
        Some(param),
    )
}

async fn unknown_route(method: Method, uri: axum::http::Uri) -> Response {
    invalid(
        404,
        None,
        &format!(
            "Unrecognized request URL ({method}: {}). Please see https://stripe.com/docs or we can help at https://support.stripe.com/.",
            uri.path()
        ),
        None,
    )
}

fn authorize(shared: &Shared, headers: &HeaderMap) -> Result<(), Response> {
    let key = bearer(headers)
        .map(String::from)
        .or_else(|| basic(headers).map(|(u, _)| u));
    match key {
        Some(k) if k == shared.cred("secret_key") => Ok(()),
        Some(k) => {
            let tail: String = k
                .chars()
                .rev()
                .take(4)
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
                .collect();
            Err(invalid(
                401,
                None,
                &format!("Invalid API Key provided: sk_test_********************{tail}"),
                None,
            ))
        }
        None => Err(invalid(
            401,
            None,
            "You did not provide an API key. You need to provide your API key in the Authorization header, using Bearer auth (e.g. 'Authorization: Bearer YOUR_SECRET_KEY'). See https://stripe.com/docs/api#authentication for details, or we can help at https://support.stripe.com/.",
            None,
        )),
    }
}

// ---------------------------------------------------------------------------------------
// Form decoding with brackets: `metadata[k]=v`, `items[0][price]=p`, `expand[]=customer`.

/// Decodes a form body or query string into nested JSON (all leaves are strings).
pub(super) fn decode_form(raw: &[u8]) -> Result<Map<String, Value>, String> {
    let pairs: Vec<(String, String)> =
        serde_urlencoded::from_bytes(raw).map_err(|e| format!("invalid form body: {e}"))?;
    let mut root = Value::Object(Map::new());
    for (key, value) in pairs {
        let (base, rest) = match key.find('[') {
            Some(i) => (&key[..i], &key[i..]),
            None => (key.as_str(), ""),
        };
        let mut path = vec![base.to_string()];
        let mut r = rest;
        while let Some(stripped) = r.strip_prefix('[') {
            let Some(end) = stripped.find(']') else {
                return Err(format!("invalid array or hash parameter `{key}`"));
            };
            path.push(stripped[..end].to_string());
            r = &stripped[end + 1..];
        }
        insert_path(&mut root, &path, value);
    }
    let root = arrays(root);
    Ok(match root {
        Value::Object(m) => m,
        _ => Map::new(),
    })
}

fn insert_path(node: &mut Value, path: &[String], value: String) {
    let Some((head, tail)) = path.split_first() else {
        return;
    };
    if !node.is_object() {
        *node = Value::Object(Map::new());
    }
    let Some(map) = node.as_object_mut() else {
        return;
    };
    let key = if head.is_empty() {
        // `expand[]=a&expand[]=b`: append under the next free index.
        map.len().to_string()
    } else {
        head.clone()
    };
    if tail.is_empty() {
        map.insert(key, Value::String(value));
    } else {
        let child = map.entry(key).or_insert_with(|| Value::Object(Map::new()));
        insert_path(child, tail, value);
    }
}

/// Turns objects keyed 0..n into arrays, recursively.
fn arrays(v: Value) -> Value {
    match v {
        Value::Object(m) => {
            let is_array = !m.is_empty() && (0..m.len()).all(|i| m.contains_key(&i.to_string()));
            if is_array {
                let mut m = m;
                Value::Array(
                    (0..m.len())
                        .map(|i| arrays(m.remove(&i.to_string()).unwrap_or(Value::Null)))
                        .collect(),
                )
            } else {
                Value::Object(m.into_iter().map(|(k, v)| (k, arrays(v))).collect())
            }
        }
        other => other,
    }
}

// ---------------------------------------------------------------------------------------
// Resources.

#[derive(Clone, Copy, PartialEq)]
enum Res {
    Customer,
    PaymentIntent,
    Subscription,
}

impl Res {
    fn from_path(s: &str) -> Option<Res> {
        match s {
            "customers" => Some(Res::Customer),
            "payment_intents" => Some(Res::PaymentIntent),
            "subscriptions" => Some(Res::Subscription),
            _ => None,
        }
    }
    fn table(self) -> &'static str {
        match self {
            Res::Customer => "customers",
            Res::PaymentIntent => "payment_intents",
            Res::Subscription => "subscriptions",
        }
    }
    fn object(self) -> &'static str {
        match self {
            Res::Customer => "customer",
            Res::PaymentIntent => "payment_intent",
            Res::Subscription => "subscription",
        }
    }
    fn params(self) -> &'static [&'static str] {
        match self {
            Res::Customer => &[
                "address",
                "description",
                "email",
                "metadata",
                "name",
                "phone",
                "shipping",
                "payment_method",
                "invoice_settings",
                "preferred_locales",
                "tax_exempt",
                "balance",
                "expand",
                "source",
                "tax_id_data",
                "test_clock",
            ],
            Res::PaymentIntent => &[
                "amount",
                "currency",
                "customer",
                "description",
                "metadata",
                "payment_method",
                "payment_method_types",
                "confirm",
                "capture_method",
                "confirmation_method",
                "receipt_email",
                "statement_descriptor",
                "statement_descriptor_suffix",
                "setup_future_usage",
                "automatic_payment_methods",
                "expand",
                "off_session",
                "return_url",
                "shipping",
                "on_behalf_of",
                "transfer_data",
            ],
            Res::Subscription => &[
                "customer",
                "items",
                "metadata",
                "default_payment_method",
                "trial_period_days",
                "trial_end",
                "cancel_at_period_end",
                "collection_method",
                "days_until_due",
                "payment_behavior",
                "expand",
                "description",
                "coupon",
                "proration_behavior",
                "currency",
                "billing_cycle_anchor",
                "off_session",
            ],
        }
    }
}

/// Loads one fixture object (see [`super::Emulator::seed`]) as given, with its own id.
pub(super) fn seed(db: &mut Db, resource: &str, input: &Value) -> Result<(), String> {
    let res = Res::from_path(resource)
        .or_else(|| {
            [Res::Customer, Res::PaymentIntent, Res::Subscription]
                .into_iter()
                .find(|r| r.object() == resource)
        })
        .ok_or_else(|| format!("unknown resource `{resource}`"))?;
    let Some(obj) = input.as_object() else {
        return Err("a Stripe object must be a JSON object".into());
    };
    let id = obj
        .get("id")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .ok_or("`id` must be a non-empty string")?
        .to_string();
    if db.get(res.table(), &id).is_some() {
        return Err(format!("id {id} is already loaded"));
    }
    let mut obj = obj.clone();
    obj.insert("object".into(), Value::String(res.object().into()));
    obj.entry("created")
        .or_insert_with(|| Value::from(super::util::now_unix()));
    db.insert(res.table(), &id, Value::Object(obj));
    Ok(())
}

fn resolve(seg: &str, method: &Method, path: &str) -> Result<Res, Response> {
    Res::from_path(seg).ok_or_else(|| {
        invalid(
            404,
            None,
            &format!("Unrecognized request URL ({method}: {path})."),
            None,
        )
    })
}

fn new_id(db: &mut Db, shared: &Shared, prefix: &str, len: usize) -> String {
    const ALPHA: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    let tok = db.token(shared.seed);
    let mut n = u128::from_str_radix(&tok, 16).unwrap_or_default();
    let mut s = String::new();
    for _ in 0..len {
        s.push(ALPHA[(n % 62) as usize] as char);
        n /= 62;
    }
    format!("{prefix}{s}")
}

fn int_param(p: &Map<String, Value>, name: &str) -> Result<Option<i64>, Response> {
    match p.get(name) {
        None => Ok(None),
        Some(v) => match v.as_str().and_then(|s| s.parse::<i64>().ok()) {
            Some(n) => Ok(Some(n)),
            None => Err(invalid(
                400,
                Some("parameter_invalid_integer"),
                &format!("Invalid integer: {}", super::util::scalar_text(v)),
                Some(name),
            )),
        },
    }
}

fn metadata(p: &Map<String, Value>) -> Result<Option<Value>, Response> {
    match p.get("metadata") {
        None => Ok(None),
        Some(Value::Object(m)) => Ok(Some(Value::Object(m.clone()))),
        // `metadata=` (empty) clears it.
        Some(Value::String(s)) if s.is_empty() => Ok(Some(json!({}))),
        Some(_) => Err(invalid(
            400,
            Some("parameter_invalid_string"),
            "Invalid hash",
            Some("metadata"),
        )),
    }
}

fn check_params(res: Res, p: &Map<String, Value>) -> Result<(), Response> {
    if let Some(k) = p.keys().find(|k| !res.params().contains(&k.as_str())) {
        return Err(invalid(
            400,
            Some("parameter_unknown"),
            &format!("Received unknown parameter: {k}"),
            Some(k),
        ));
    }
    Ok(())
}

fn build(
    shared: &Shared,
    db: &mut Db,
    res: Res,
    p: &Map<String, Value>,
) -> Result<Value, Response> {
    check_params(res, p)?;
    let now = super::util::now_unix();
    let meta = metadata(p)?.unwrap_or_else(|| json!({}));
    let text = |k: &str| p.get(k).and_then(Value::as_str).map(String::from);
    let obj = match res {
        Res::Customer => {
            let id = new_id(db, shared, "cus_", 14);
            json!({"id": id, "object": "customer", "address": p.get("address").cloned(),
                   "balance": 0, "created": now, "currency": null, "default_source": null,
                   "delinquent": false, "description": text("description"),
                   "email": text("email"), "invoice_prefix": id[4..12].to_uppercase(),
                   "invoice_settings": {"custom_fields": null, "default_payment_method": null,
                                        "footer": null, "rendering_options": null},
                   "livemode": false, "metadata": meta, "name": text("name"),
                   "phone": text("phone"), "preferred_locales": [], "shipping": null,
                   "tax_exempt": "none", "test_clock": null})
        }
        Res::PaymentIntent => {
            let amount = int_param(p, "amount")?.ok_or_else(|| {
                invalid(
                    400,
                    Some("parameter_missing"),
                    "Missing required param: amount.",
                    Some("amount"),
                )
            })?;
            if amount < 1 {
                return Err(invalid(
                    400,
                    Some("parameter_invalid_integer"),
                    "This value must be greater than or equal to 1.",
                    Some("amount"),
                ));
            }
            let currency = text("currency").ok_or_else(|| {
                invalid(
                    400,
                    Some("parameter_missing"),
                    "Missing required param: currency.",
                    Some("currency"),
                )
            })?;
            if currency.len() != 3 || !currency.chars().all(|c| c.is_ascii_alphabetic()) {
                return Err(invalid(
                    400,
                    Some("parameter_invalid_string"),
                    &format!("Invalid currency: {currency}."),
                    Some("currency"),
                ));
            }
            let customer = text("customer");
            if let Some(c) = &customer
                && db.get("customers", c).is_none()
            {
                return Err(missing("customer", c, "customer"));
            }
            let confirm = text("confirm").as_deref() == Some("true");
            let pm = text("payment_method");
            let status = match (confirm, &pm) {
                (true, Some(_)) => "succeeded",
                (true, None) => {
                    return Err(invalid(
                        400,
                        Some("payment_intent_unexpected_state"),
                        "You cannot confirm this PaymentIntent because it's missing a payment method.",
                        None,
                    ));
                }
                (false, Some(_)) => "requires_confirmation",
                (false, None) => "requires_payment_method",
            };
            let id = new_id(db, shared, "pi_", 24);
            let secret = new_id(db, shared, "", 25);
            json!({"id": id, "object": "payment_intent", "amount": amount,
                   "amount_capturable": 0,
                   "amount_received": if status == "succeeded" { amount } else { 0 },
                   "capture_method": text("capture_method").unwrap_or("automatic".into()),
                   "client_secret": format!("{id}_secret_{secret}"),
                   "confirmation_method": "automatic", "created": now,
                   "currency": currency.to_lowercase(), "customer": customer,
                   "description": text("description"), "last_payment_error": null,
                   "latest_charge": null, "livemode": false, "metadata": meta,
                   "next_action": null, "payment_method": pm,
                   "payment_method_types": p.get("payment_method_types").cloned().unwrap_or(json!(["card"])),
                   "receipt_email": text("receipt_email"), "status": status})
        }
        Res::Subscription => {
            let customer = text("customer").ok_or_else(|| {
                invalid(
                    400,
                    Some("parameter_missing"),
                    "Missing required param: customer.",
                    Some("customer"),
                )
            })?;
            if db.get("customers", &customer).is_none() {
                return Err(missing("customer", &customer, "customer"));
            }
            let Some(Value::Array(items)) = p.get("items") else {
                return Err(invalid(
                    400,
                    Some("parameter_missing"),
                    "Missing required param: items.",
                    Some("items"),
                ));
            };
            let id = new_id(db, shared, "sub_", 24);
            let mut data = Vec::new();
            for (i, it) in items.iter().enumerate() {
                let Some(price) = it.get("price").and_then(Value::as_str) else {
                    return Err(invalid(
                        400,
                        Some("parameter_missing"),
                        &format!("Missing required param: items[{i}][price]."),
                        Some(&format!("items[{i}][price]")),
                    ));
                };
                let qty = it
                    .get("quantity")
                    .and_then(Value::as_str)
                    .and_then(|q| q.parse::<i64>().ok())
                    .unwrap_or(1);
                let si = new_id(db, shared, "si_", 14);
                data.push(
                    json!({"id": si, "object": "subscription_item", "created": now,
                                 "metadata": {}, "price": {"id": price, "object": "price"},
                                 "quantity": qty, "subscription": id}),
                );
            }
            let trial = int_param(p, "trial_period_days")?;
            let period_end = now + 30 * 86_400;
            json!({"id": id, "object": "subscription", "billing_cycle_anchor": now,
                   "cancel_at": null,
                   "cancel_at_period_end": text("cancel_at_period_end").as_deref() == Some("true"),
                   "canceled_at": null,
                   "collection_method": text("collection_method").unwrap_or("charge_automatically".into()),
                   "created": now, "currency": text("currency").unwrap_or("usd".into()),
                   "current_period_end": period_end, "current_period_start": now,
                   "customer": customer,
                   "default_payment_method": text("default_payment_method"),
                   "description": text("description"), "ended_at": null,
                   "items": {"object": "list", "data": data, "has_more": false,
                             "total_count": items.len(),
                             "url": format!("/v1/subscription_items?subscription={id}")},
                   "latest_invoice": null, "livemode": false, "metadata": meta,
                   "start_date": now,
                   "status": if trial.is_some_and(|d| d > 0) { "trialing" } else { "active" },
                   "trial_end": trial.map(|d| now + d * 86_400),
                   "trial_start": trial.map(|_| now)})
        }
    };
    Ok(obj)
}

fn apply_update(
    db: &Db,
    res: Res,
    obj: &mut Value,
    p: &Map<String, Value>,
) -> Result<(), Response> {
    check_params(res, p)?;
    if let Some(m) = metadata(p)? {
        // Stripe merges metadata keys; an empty value removes a key.
        let cur = obj["metadata"].as_object().cloned().unwrap_or_default();
        let mut merged = cur;
        if let Value::Object(new) = m {
            if new.is_empty() {
                merged.clear();
            }
            for (k, v) in new {
                if v.as_str() == Some("") {
                    merged.remove(&k);
                } else {
                    merged.insert(k, v);
                }
            }
        }
        obj["metadata"] = Value::Object(merged);
    }
    for (k, v) in p {
        match k.as_str() {
            "metadata" | "expand" | "items" | "confirm" => {}
            "amount" | "trial_period_days" => {
                let n = int_param(p, k)?.unwrap_or_default();
                obj[k] = json!(n);
            }
            "customer" => {
                let c = super::util::scalar_text(v);
                if db.get("customers", &c).is_none() {
                    return Err(missing("customer", &c, "customer"));
                }
                obj[k] = Value::String(c);
            }
            "cancel_at_period_end" => obj[k] = Value::Bool(v.as_str() == Some("true")),
            _ => obj[k] = v.clone(),
        }
    }
    Ok(())
}

/// Embeds `expand[]=customer`.
fn expand(db: &Db, mut obj: Value, p: &Map<String, Value>) -> Value {
    let wants = |f: &str| {
        p.get("expand").and_then(Value::as_array).is_some_and(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .any(|x| x == f || x.strip_prefix("data.") == Some(f))
        })
    };
    if wants("customer")
        && let Some(c) = obj.get("customer").and_then(Value::as_str)
        && let Some(full) = db.get("customers", c)
    {
        obj["customer"] = full.clone();
    }
    obj
}

// ---------------------------------------------------------------------------------------
// Idempotency.

/// Replays or rejects a repeated `Idempotency-Key`; `Ok(None)` means run the request.
fn idempotent_replay(
    shared: &Shared,
    headers: &HeaderMap,
    fingerprint: &str,
) -> Result<Option<String>, Response> {
    let Some(key) = headers
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok())
        .map(String::from)
    else {
        return Ok(None);
    };
    if key.len() > 255 {
        return Err(invalid(
            400,
            None,
            "Idempotency-Key must be at most 255 characters long",
            None,
        ));
    }
    let stored = shared.db().idempotency.get(&key).cloned();
    match stored {
        Some((fp, status, body)) if fp == fingerprint => {
            let mut r = json(status, body);
            set_header(r.headers_mut(), "idempotent-replayed", "true");
            set_header(r.headers_mut(), "idempotency-key", &key);
            Err(r)
        }
        Some(_) => Err(json(
            400,
            json!({"error": {"message": format!("Keys for idempotent requests can only be used with the same parameters they were first used with. Try using a key other than '{key}' if you meant to execute a different request."),
                             "type": "idempotency_error"}}),
        )),
        None => Ok(Some(key)),
    }
}

fn remember(shared: &Shared, key: Option<String>, fingerprint: &str, status: u16, body: &Value) {
    // Requests that failed validation are not saved (the endpoint never started executing).
    if let Some(k) = key
        && status < 400
    {
        shared
            .db()
            .idempotency
            .insert(k, (fingerprint.to_string(), status, body.clone()));
    }
}

fn fingerprint(method: &str, path: &str, p: &Map<String, Value>) -> String {
    format!("{method} {path} {}", Value::Object(p.clone()))
}

// ---------------------------------------------------------------------------------------
// Handlers.

async fn create(
    State(shared): State<Arc<Shared>>,
    Path(resource): Path<String>,
    method: Method,
    uri: axum::http::Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Err(r) = authorize(&shared, &headers) {
        return r;
    }
    let res = match resolve(&resource, &method, uri.path()) {
        Ok(r) => r,
        Err(r) => return r,
    };
    let p = match decode_form(&body) {
        Ok(p) => p,
        Err(m) => return invalid(400, None, &m, None),
    };
    let fp = fingerprint("POST", uri.path(), &p);
    let key = match idempotent_replay(&shared, &headers, &fp) {
        Ok(k) => k,
        Err(r) => return r,
    };
    let mut db = shared.db();
    let obj = match build(&shared, &mut db, res, &p) {
        Ok(o) => o,
        Err(r) => return r,
    };
    let id = obj["id"].as_str().unwrap_or_default().to_string();
    db.insert(res.table(), &id, obj.clone());
    let out = expand(&db, obj, &p);
    drop(db);
    remember(&shared, key, &fp, 200, &out);
    json(200, out)
}

async fn retrieve(
    State(shared): State<Arc<Shared>>,
    Path((resource, id)): Path<(String, String)>,
    method: Method,
    uri: axum::http::Uri,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
) -> Response {
    if let Err(r) = authorize(&shared, &headers) {
        return r;
    }
    let res = match resolve(&resource, &method, uri.path()) {
        Ok(r) => r,
        Err(r) => return r,
    };
    let p = decode_form(q.unwrap_or_default().as_bytes()).unwrap_or_default();
    let db = shared.db();
    match db.get(res.table(), &id).cloned() {
        Some(o) => {
            let out = expand(&db, o, &p);
            drop(db);
            json(200, out)
        }
        None => {
            drop(db);
            missing(res.object(), &id, "id")
        }
    }
}

async fn update(
    State(shared): State<Arc<Shared>>,
    Path((resource, id)): Path<(String, String)>,
    method: Method,
    uri: axum::http::Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Err(r) = authorize(&shared, &headers) {
        return r;
    }
    let res = match resolve(&resource, &method, uri.path()) {
        Ok(r) => r,
        Err(r) => return r,
    };
    let p = match decode_form(&body) {
        Ok(p) => p,
        Err(m) => return invalid(400, None, &m, None),
    };
    let fp = fingerprint("POST", uri.path(), &p);
    let key = match idempotent_replay(&shared, &headers, &fp) {
        Ok(k) => k,
        Err(r) => return r,
    };
    let mut db = shared.db();
    let Some(mut obj) = db.get(res.table(), &id).cloned() else {
        drop(db);
        return missing(res.object(), &id, "id");
    };
    if let Err(r) = apply_update(&db, res, &mut obj, &p) {
        return r;
    }
    db.table(res.table()).insert(id, obj.clone());
    let out = expand(&db, obj, &p);
    drop(db);
    remember(&shared, key, &fp, 200, &out);
    json(200, out)
}

async fn remove(
    State(shared): State<Arc<Shared>>,
    Path((resource, id)): Path<(String, String)>,
    method: Method,
    uri: axum::http::Uri,
    headers: HeaderMap,
) -> Response {
    if let Err(r) = authorize(&shared, &headers) {
        return r;
    }
    let res = match resolve(&resource, &method, uri.path()) {
        Ok(r) => r,
        Err(r) => return r,
    };
    let mut db = shared.db();
    match res {
        Res::Customer => match db.table("customers").shift_remove(&id) {
            Some(_) => json(
                200,
                json!({"id": id, "object": "customer", "deleted": true}),
            ),
            None => missing("customer", &id, "id"),
        },
        Res::Subscription => match db.table("subscriptions").get_mut(&id) {
            Some(sub) => {
                let now = super::util::now_unix();
                sub["status"] = json!("canceled");
                sub["canceled_at"] = json!(now);
                sub["ended_at"] = json!(now);
                json(200, sub.clone())
            }
            None => missing("subscription", &id, "id"),
        },
        Res::PaymentIntent => {
            drop(db);
            invalid(
                404,
                None,
                &format!("Unrecognized request URL (DELETE: {}).", uri.path()),
                None,
            )
        }
    }
}

/// Newest first, like Stripe lists.
fn newest_first(db: &Db, res: Res) -> Vec<Value> {
    db.tables
        .get(res.table())
        .map(|t| t.values().rev().cloned().collect())
        .unwrap_or_default()
}

fn limit_param(p: &Map<String, Value>) -> Result<usize, Response> {
    match p.get("limit") {
        None => Ok(10),
        Some(v) => match v.as_str().and_then(|s| s.parse::<usize>().ok()) {
            Some(n) if (1..=100).contains(&n) => Ok(n),
            _ => Err(invalid(
                400,
                Some("parameter_invalid_integer"),
                "This value must be between 1 and 100.",
                Some("limit"),
            )),
        },
    }
}

fn created_filter(p: &Map<String, Value>, o: &Value) -> bool {
    let created = o["created"].as_i64().unwrap_or_default();
    match p.get("created") {
        Some(Value::Object(m)) => m.iter().all(|(op, v)| {
            let n = v.as_str().and_then(|s| s.parse::<i64>().ok()).unwrap_or(0);
            match op.as_str() {
                "gt" => created > n,
                "gte" => created >= n,
                "lt" => created < n,
                "lte" => created <= n,
                _ => true,
            }
        }),
        Some(Value::String(s)) => s.parse::<i64>().is_ok_and(|n| created == n),
        _ => true,
    }
}

async fn list(
    State(shared): State<Arc<Shared>>,
    Path(resource): Path<String>,
    method: Method,
    uri: axum::http::Uri,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
) -> Response {
    if let Err(r) = authorize(&shared, &headers) {
        return r;
    }
    let res = match resolve(&resource, &method, uri.path()) {
        Ok(r) => r,
        Err(r) => return r,
    };
    let p = match decode_form(q.unwrap_or_default().as_bytes()) {
        Ok(p) => p,
        Err(m) => return invalid(400, None, &m, None),
    };
    let limit = match limit_param(&p) {
        Ok(l) => l,
        Err(r) => return r,
    };
    let text = |k: &str| p.get(k).and_then(Value::as_str);
    let db = shared.db();
    let all: Vec<Value> = newest_first(&db, res)
        .into_iter()
        .filter(|o| created_filter(&p, o))
        .filter(|o| text("email").is_none_or(|e| o["email"].as_str() == Some(e)))
        .filter(|o| text("customer").is_none_or(|c| o["customer"].as_str() == Some(c)))
        .filter(|o| match (res, text("status")) {
            (Res::Subscription, None) => o["status"] != "canceled",
            (Res::Subscription, Some("all")) => true,
            (Res::Subscription, Some(s)) => o["status"].as_str() == Some(s),
            _ => true,
        })
        .collect();
    let position = |id: &str| all.iter().position(|o| o["id"].as_str() == Some(id));
    let (start, end) = if let Some(after) = text("starting_after") {
        let Some(i) = position(after) else {
            drop(db);
            return missing(res.object(), after, "starting_after");
        };
        (i + 1, (i + 1 + limit).min(all.len()))
    } else if let Some(before) = text("ending_before") {
        let Some(i) = position(before) else {
            drop(db);
            return missing(res.object(), before, "ending_before");
        };
        (i.saturating_sub(limit), i)
    } else {
        (0, limit.min(all.len()))
    };
    let data: Vec<Value> = all[start..end]
        .iter()
        .map(|o| expand(&db, o.clone(), &p))
        .collect();
    drop(db);
    let has_more = if text("ending_before").is_some() {
        start > 0
    } else {
        end < all.len()
    };
    json(
        200,
        json!({"object": "list", "data": data, "has_more": has_more,
               "url": format!("/v1/{}", res.table())}),
    )
}

/// One clause of Stripe's search language: `field:'v'`, `field~'v'`, `-field:'v'`,
/// `metadata['k']:'v'`, `amount>100`, `created>=1700000000`.
fn clause_matches(o: &Value, clause: &str) -> Result<bool, String> {
    let clause = clause.trim();
    let (negate, clause) = match clause.strip_prefix('-') {
        Some(c) => (true, c),
        None => (false, clause),
    };
    let op_at = clause
        .find([':', '~', '>', '<'])
        .ok_or_else(|| format!("invalid search clause `{clause}`"))?;
    let field = &clause[..op_at];
    let rest = &clause[op_at..];
    let (op, value) = if let Some(v) = rest.strip_prefix(">=") {
        (">=", v)
    } else if let Some(v) = rest.strip_prefix("<=") {
        ("<=", v)
    } else {
        rest.split_at(1)
    };
    let value = value.trim().trim_matches('\'').trim_matches('"');
    let actual = if let Some(key) = field
        .strip_prefix("metadata[")
        .and_then(|k| k.strip_suffix(']'))
    {
        o["metadata"][key.trim_matches('\'').trim_matches('"')].clone()
    } else {
        o[field].clone()
    };
    let actual_text = super::util::scalar_text(&actual);
    let hit = match op {
        ":" => !actual.is_null() && actual_text.eq_ignore_ascii_case(value),
        "~" => actual_text.to_lowercase().contains(&value.to_lowercase()),
        ">" | "<" | ">=" | "<=" => {
            let (Ok(a), Ok(b)) = (actual_text.parse::<f64>(), value.parse::<f64>()) else {
                return Ok(false);
            };
            match op {
                ">" => a > b,
                "<" => a < b,
                ">=" => a >= b,
                _ => a <= b,
            }
        }
        _ => return Err(format!("invalid search operator in `{clause}`")),
    };
    Ok(hit != negate)
}

async fn search(
    State(shared): State<Arc<Shared>>,
    Path(resource): Path<String>,
    method: Method,
    uri: axum::http::Uri,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
) -> Response {
    if let Err(r) = authorize(&shared, &headers) {
        return r;
    }
    let res = match resolve(&resource, &method, uri.path()) {
        Ok(r) => r,
        Err(r) => return r,
    };
    let p = match decode_form(q.unwrap_or_default().as_bytes()) {
        Ok(p) => p,
        Err(m) => return invalid(400, None, &m, None),
    };
    let Some(query) = p.get("query").and_then(Value::as_str) else {
        return invalid(
            400,
            Some("parameter_missing"),
            "Missing required param: query.",
            Some("query"),
        );
    };
    let limit = match limit_param(&p) {
        Ok(l) => l,
        Err(r) => return r,
    };
    let offset: usize = match p.get("page").and_then(Value::as_str) {
        None => 0,
        Some(tok) => match tok.strip_prefix("page_").and_then(|n| n.parse().ok()) {
            Some(n) => n,
            None => {
                return invalid(400, None, "Invalid page token", Some("page"));
            }
        },
    };
    let (any, clauses): (bool, Vec<&str>) = if query.contains(" OR ") {
        (true, query.split(" OR ").collect())
    } else {
        (false, query.split(" AND ").collect())
    };
    let all = newest_first(&shared.db(), res);
    let mut hits = Vec::new();
    for o in all {
        let mut results = Vec::new();
        for c in &clauses {
            match clause_matches(&o, c) {
                Ok(b) => results.push(b),
                Err(m) => return invalid(400, None, &m, Some("query")),
            }
        }
        let ok = if any {
            results.iter().any(|b| *b)
        } else {
            results.iter().all(|b| *b)
        };
        if ok {
            hits.push(o);
        }
    }
    let end = offset.saturating_add(limit).min(hits.len());
    let data: Vec<Value> = hits.get(offset..end).unwrap_or_default().to_vec();
    let has_more = end < hits.len();
    json(
        200,
        json!({"object": "search_result", "data": data, "has_more": has_more,
               "next_page": if has_more { json!(format!("page_{end}")) } else { Value::Null },
               "url": format!("/v1/{}/search", res.table())}),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bracketed_forms_nest() {
        let m = decode_form(b"amount=100&metadata[order]=6735&items[0][price]=p1&items[1][price]=p2&expand[]=customer&expand[]=latest_charge")
            .expect("decodes");
        assert_eq!(m["amount"], "100");
        assert_eq!(m["metadata"]["order"], "6735");
        assert_eq!(m["items"][1]["price"], "p2");
        assert_eq!(m["expand"], json!(["customer", "latest_charge"]));
    }

    #[test]
    fn search_clauses() {
        let o = json!({"email": "A@b.co", "amount": 500, "metadata": {"k": "v"}});
        assert!(clause_matches(&o, "email:'a@b.co'").expect("ok"));
        assert!(clause_matches(&o, "amount>=500").expect("ok"));
        assert!(clause_matches(&o, "metadata['k']:'v'").expect("ok"));
        assert!(clause_matches(&o, "-email:'x@y.z'").expect("ok"));
        assert!(!clause_matches(&o, "email~'zz'").expect("ok"));
    }
}
