//! Stripe's resources (customers, payment intents, subscriptions, products, prices): their
//! parameters, how an object is built from a create and changed by an update, the objects a
//! create references (which must exist, as on Stripe), `expand[]`, and fixture loading.

use super::super::state::{Db, Shared};
use super::super::util::{now_unix, scalar_text};
use super::errors::{invalid, no_such};
use axum::response::Response;
use serde_json::{Map, Value, json};

#[derive(Clone, Copy, PartialEq)]
pub(super) enum Res {
    Customer,
    PaymentIntent,
    Subscription,
    Product,
    Price,
}

impl Res {
    pub(super) fn from_path(s: &str) -> Option<Res> {
        match s {
            "customers" => Some(Res::Customer),
            "payment_intents" => Some(Res::PaymentIntent),
            "subscriptions" => Some(Res::Subscription),
            "products" => Some(Res::Product),
            "prices" => Some(Res::Price),
            _ => None,
        }
    }
    pub(super) fn table(self) -> &'static str {
        match self {
            Res::Customer => "customers",
            Res::PaymentIntent => "payment_intents",
            Res::Subscription => "subscriptions",
            Res::Product => "products",
            Res::Price => "prices",
        }
    }
    pub(super) fn object(self) -> &'static str {
        match self {
            Res::Customer => "customer",
            Res::PaymentIntent => "payment_intent",
            Res::Subscription => "subscription",
            Res::Product => "product",
            Res::Price => "price",
        }
    }
    pub(super) fn params(self) -> &'static [&'static str] {
        match self {
            Res::Product => &[
                "active",
                "default_price_data",
                "description",
                "expand",
                "id",
                "images",
                "marketing_features",
                "metadata",
                "name",
                "package_dimensions",
                "shippable",
                "statement_descriptor",
                "tax_code",
                "unit_label",
                "url",
            ],
            Res::Price => &[
                "active",
                "billing_scheme",
                "currency",
                "currency_options",
                "custom_unit_amount",
                "expand",
                "lookup_key",
                "metadata",
                "nickname",
                "product",
                "product_data",
                "recurring",
                "tax_behavior",
                "tiers",
                "tiers_mode",
                "transfer_lookup_key",
                "transform_quantity",
                "unit_amount",
                "unit_amount_decimal",
            ],
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

/// Loads one fixture object (see [`crate::Emulator::seed`]) as given, with its own id.
pub(crate) fn seed(db: &mut Db, resource: &str, input: &Value) -> Result<(), String> {
    let res = Res::from_path(resource)
        .or_else(|| {
            [
                Res::Customer,
                Res::PaymentIntent,
                Res::Subscription,
                Res::Product,
                Res::Price,
            ]
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
        .or_insert_with(|| Value::from(now_unix()));
    db.insert(res.table(), &id, Value::Object(obj));
    db.indexed_now(res.table(), &id);
    Ok(())
}
pub(super) fn new_id(db: &mut Db, shared: &Shared, prefix: &str, len: usize) -> String {
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

pub(super) fn int_param(p: &Map<String, Value>, name: &str) -> Result<Option<i64>, Response> {
    match p.get(name) {
        None => Ok(None),
        Some(v) => match v.as_str().and_then(|s| s.parse::<i64>().ok()) {
            Some(n) => Ok(Some(n)),
            None => Err(invalid(
                400,
                Some("parameter_invalid_integer"),
                &format!("Invalid integer: {}", scalar_text(v)),
                Some(name),
            )),
        },
    }
}

pub(super) fn metadata(p: &Map<String, Value>) -> Result<Option<Value>, Response> {
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

pub(super) fn check_params(res: Res, p: &Map<String, Value>) -> Result<(), Response> {
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

pub(super) fn build(
    shared: &Shared,
    db: &mut Db,
    res: Res,
    p: &Map<String, Value>,
) -> Result<Value, Response> {
    check_params(res, p)?;
    let now = now_unix();
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
            let currency = required_currency(text("currency"))?;
            let customer = text("customer");
            if let Some(c) = &customer
                && db.get("customers", c).is_none()
            {
                return Err(no_such("customer", c, "customer"));
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
                return Err(no_such("customer", &customer, "customer"));
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
            let mut currency = text("currency");
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
                let param = format!("items[{i}][price]");
                let Some(price_obj) = db.get("prices", price).cloned() else {
                    return Err(no_such("price", price, &param));
                };
                if price_obj["type"] != "recurring" {
                    return Err(invalid(
                        400,
                        Some("parameter_invalid_string"),
                        "The price specified is set to `type=one_time` but this field only accepts prices with `type=recurring`.",
                        Some(&param),
                    ));
                }
                if currency.is_none() {
                    currency = price_obj["currency"].as_str().map(String::from);
                }
                let si = new_id(db, shared, "si_", 14);
                data.push(
                    json!({"id": si, "object": "subscription_item", "created": now,
                                 "metadata": {}, "price": price_obj,
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
                   "created": now, "currency": currency.unwrap_or("usd".into()),
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
        Res::Product => new_product(shared, db, p)?,
        Res::Price => {
            let currency = required_currency(text("currency"))?;
            let amount = int_param(p, "unit_amount")?.ok_or_else(|| {
                invalid(
                    400,
                    Some("parameter_missing"),
                    "Missing required param: unit_amount.",
                    Some("unit_amount"),
                )
            })?;
            if amount < 0 {
                return Err(invalid(
                    400,
                    Some("parameter_invalid_integer"),
                    "This value must be greater than or equal to 0.",
                    Some("unit_amount"),
                ));
            }
            let product = match (text("product"), p.get("product_data")) {
                (Some(id), _) => {
                    if db.get("products", &id).is_none() {
                        return Err(no_such("product", &id, "product"));
                    }
                    id
                }
                (None, Some(Value::Object(data))) => {
                    let made = new_product(shared, db, data)?;
                    let id = made["id"].as_str().unwrap_or_default().to_string();
                    db.insert("products", &id, made);
                    db.indexed("products", &id);
                    id
                }
                _ => {
                    return Err(invalid(
                        400,
                        Some("parameter_missing"),
                        "Missing required param: product.",
                        Some("product"),
                    ));
                }
            };
            let recurring = match p.get("recurring") {
                None => Value::Null,
                Some(Value::Object(r)) => {
                    let interval = r
                        .get("interval")
                        .and_then(Value::as_str)
                        .unwrap_or_default();
                    if !["day", "week", "month", "year"].contains(&interval) {
                        return Err(invalid(
                            400,
                            Some("parameter_invalid_string"),
                            "Invalid recurring[interval]: must be one of day, week, month, or year",
                            Some("recurring[interval]"),
                        ));
                    }
                    let count = r
                        .get("interval_count")
                        .and_then(Value::as_str)
                        .and_then(|c| c.parse::<i64>().ok())
                        .unwrap_or(1);
                    json!({"aggregate_usage": null, "interval": interval, "interval_count": count,
                           "meter": null, "trial_period_days": null, "usage_type": "licensed"})
                }
                Some(_) => {
                    return Err(invalid(
                        400,
                        Some("parameter_invalid_string"),
                        "Invalid hash",
                        Some("recurring"),
                    ));
                }
            };
            let id = new_id(db, shared, "price_", 24);
            json!({"id": id, "object": "price", "active": true, "billing_scheme": "per_unit",
                   "created": now, "currency": currency.to_lowercase(),
                   "custom_unit_amount": null, "livemode": false,
                   "lookup_key": text("lookup_key"), "metadata": meta,
                   "nickname": text("nickname"), "product": product,
                   "type": if recurring.is_null() { "one_time" } else { "recurring" },
                   "recurring": recurring, "tax_behavior": "unspecified", "tiers_mode": null,
                   "transform_quantity": null, "unit_amount": amount,
                   "unit_amount_decimal": amount.to_string()})
        }
    };
    Ok(obj)
}

/// A product from `name` and friends (a create's parameters or a price's `product_data`).
fn new_product(shared: &Shared, db: &mut Db, p: &Map<String, Value>) -> Result<Value, Response> {
    let name = p
        .get("name")
        .and_then(Value::as_str)
        .filter(|n| !n.trim().is_empty())
        .ok_or_else(|| {
            invalid(
                400,
                Some("parameter_missing"),
                "Missing required param: name.",
                Some("name"),
            )
        })?;
    let now = now_unix();
    let id = new_id(db, shared, "prod_", 14);
    Ok(
        json!({"id": id, "object": "product", "active": true, "created": now,
              "default_price": null,
              "description": p.get("description").cloned().unwrap_or(Value::Null),
              "images": [], "livemode": false, "marketing_features": [],
              "metadata": p.get("metadata").cloned().unwrap_or(json!({})), "name": name,
              "package_dimensions": null, "shippable": null, "statement_descriptor": null,
              "tax_code": null, "unit_label": null, "updated": now, "url": null}),
    )
}

pub(super) fn apply_update(
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
                let c = scalar_text(v);
                if db.get("customers", &c).is_none() {
                    return Err(no_such("customer", &c, "customer"));
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
pub(super) fn expand(db: &Db, mut obj: Value, p: &Map<String, Value>) -> Value {
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
pub(super) fn newest_first(db: &Db, res: Res) -> Vec<Value> {
    db.tables
        .get(res.table())
        .map(|t| t.values().rev().cloned().collect())
        .unwrap_or_default()
}

/// A required three-letter `currency` parameter, refused as Stripe refuses it.
fn required_currency(value: Option<String>) -> Result<String, Response> {
    let currency = value.ok_or_else(|| {
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
    Ok(currency)
}
