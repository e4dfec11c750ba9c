//! Every key a mapping spec accepts, what it does, and the test that shows it (issue 12's
//! invariant): a key either has an effect or `validate` warns that it has none (W232). The
//! effect of a scalar `crm_config` key is not written down but read from the connector spec
//! (the templates that read `config.<key>` / `secrets.<key>`), so the table in `docs/keys.md`
//! ([`markdown`]) cannot drift from what runs; `tests/all/fidelity.rs` checks both.

use super::connector::{ConnectorKind, ConnectorSpec, OperationKind};
use super::mapping::MappingSpec;
use crate::diag::{Diagnostic, Diagnostics, pointer_join};
use indexmap::IndexMap;
use serde_json::Value;

/// A key of a mapping spec whose effect the engine gives (not a connector spec).
#[derive(Debug, Clone, Copy)]
pub struct KeyDoc {
    /// `crm_config.<key>`, or an envelope key (`tenant`, `lookups`, …).
    pub key: &'static str,
    /// What it does.
    pub effect: &'static str,
    /// The test (`module::function` of `tests/all`) that shows the effect.
    pub test: &'static str,
}

/// Keys of the envelope: the same effect for every connector.
pub const ENVELOPE_KEYS: &[KeyDoc] = &[
    KeyDoc {
        key: "spec_version",
        effect: "must be 1; another version is refused",
        test: "ui::invalid_specs_give_exactly_their_golden_diagnostics",
    },
    KeyDoc {
        key: "tenant",
        effect: "namespaces rate limits, tokens, the dedupe index and delivery state",
        test: "delivery::a_crm_that_reissued_ids_is_not_overwritten_on_the_batch_or_the_dedupe_path",
    },
    KeyDoc {
        key: "connector",
        effect: "the connector spec records are delivered through",
        test: "mapping::seed_examples_map_sample_records_exactly",
    },
    KeyDoc {
        key: "source",
        effect: "the inbound source: its catalog decides bare field-mapping strings, its webhook scheme guards `serve`",
        test: "serve::callrail_webhooks_are_verified_mapped_and_delivered",
    },
    KeyDoc {
        key: "source_secrets",
        effect: "the source's secrets (webhook signing key)",
        test: "serve::callrail_webhooks_are_verified_mapped_and_delivered",
    },
    KeyDoc {
        key: "description",
        effect: "documentation only (shown by tools, never sent)",
        test: "cli::every_spec_in_the_repo_validates",
    },
    KeyDoc {
        key: "lookups",
        effect: "tables expressions read as `name[key]`",
        test: "mapping::seed_examples_map_sample_records_exactly",
    },
    KeyDoc {
        key: "plugins",
        effect: "mapping-function plugins expressions call as `alias.function(…)`",
        test: "wiring::map_calls_plugin_functions_from_expressions",
    },
    KeyDoc {
        key: "crm_config",
        effect: "the tenant's CRM configuration (the keys below)",
        test: "mapping::seed_examples_map_sample_records_exactly",
    },
    KeyDoc {
        key: "tests",
        effect: "examples run by `switchyard test` (input → expected objects, triggers, notes or rejection); checked by `validate` (E250–E252); never used when routing",
        test: "cli::spec_tests_run_and_a_failure_shows_the_difference_at_its_line",
    },
];

/// `crm_config` keys the engine itself gives an effect (structures, not settings).
pub const STRUCTURAL_KEYS: &[KeyDoc] = &[
    KeyDoc {
        key: "type",
        effect: "must agree with the connector (E215)",
        test: "ui::invalid_specs_give_exactly_their_golden_diagnostics",
    },
    KeyDoc {
        key: "settings",
        effect: "each entry fills the connector's `config`/`secrets` of that name (checked like the scalar keys); `base_url` replaces the base URL, `auth_flow` picks one of the spec's `[auth_flows]`",
        test: "fidelity::salesforce_api_version_and_both_auth_flows_are_the_tenants",
    },
    KeyDoc {
        key: "default_object",
        effect: "the object `field_mappings`, `custom_properties` and `custom_fields` fill",
        test: "mapping::seed_examples_map_sample_records_exactly",
    },
    KeyDoc {
        key: "field_mappings",
        effect: "fields of the default object (a field the connector's create operations do not send: W232)",
        test: "mapping::seed_examples_map_sample_records_exactly",
    },
    KeyDoc {
        key: "custom_properties",
        effect: "typed fields of the default object (a field the connector's create operations do not send: W232)",
        test: "mapping::seed_examples_map_sample_records_exactly",
    },
    KeyDoc {
        key: "custom_fields",
        effect: "fields of the default object (a field the connector's create operations do not send: W232); on an object with `field_keys`, resolved to the CRM's own keys at delivery (a name it does not know fails the record)",
        test: "fidelity::pipedrive_custom_fields_reach_the_crm_under_their_hash_keys",
    },
    KeyDoc {
        key: "object_mappings",
        effect: "fields of the named objects (a field the connector's create operations do not send: W232)",
        test: "mapping::seed_examples_map_sample_records_exactly",
    },
    KeyDoc {
        key: "payload_templates",
        effect: "the named objects' payloads (JSON templates)",
        test: "fidelity::custom_rest_bearer_follows_the_tenants_endpoint_and_payload_template",
    },
    KeyDoc {
        key: "duplicate_detection",
        effect: "search by the match fields before create (needs a `search` operation of the default object)",
        test: "connector::hubspot_creates_then_updates_duplicates_by_normalised_email_and_phone",
    },
    KeyDoc {
        key: "workflow_triggers",
        effect: "conditions whose actions run after delivery",
        test: "connector::workflow_actions_run_as_operations_and_webhooks",
    },
    KeyDoc {
        key: "workflow_rules",
        effect: "conditions whose actions run after delivery (Salesforce's name)",
        test: "connector::workflow_actions_run_as_operations_and_webhooks",
    },
    KeyDoc {
        key: "deal_settings",
        effect: "the `deal` object: title, value estimate, currency",
        test: "mapping::seed_examples_map_sample_records_exactly",
    },
    KeyDoc {
        key: "authentication",
        effect: "custom REST: the auth plan (bearer, api_key, basic, oauth2_client_credentials); no effect on other connectors",
        test: "fidelity::custom_rest_oauth2_client_credentials",
    },
    KeyDoc {
        key: "endpoints",
        effect: "custom REST: method, path and headers of the operation of that name, or a new `<kind>_<object>` operation; no effect on other connectors",
        test: "fidelity::custom_rest_api_key_put_people_and_errors_never_show_the_key",
    },
];

/// Tests that show a scalar key reaching the requests that read it, by key, or by
/// `<connector>.<key>` where connectors read one key differently (looked up first).
pub const SCALAR_KEY_TESTS: &[(&str, &str)] = &[
    (
        "hubspot.pipeline_id",
        "fidelity::hubspot_seed_003_brings_its_deal_company_owner_and_associations",
    ),
    (
        "hubspot.deal_stage",
        "fidelity::hubspot_seed_003_brings_its_deal_company_owner_and_associations",
    ),
    (
        "hubspot.contact_owner",
        "fidelity::hubspot_seed_003_brings_its_deal_company_owner_and_associations",
    ),
    (
        "hubspot.company_domain_mapping",
        "fidelity::hubspot_seed_003_brings_its_deal_company_owner_and_associations",
    ),
    (
        "api_base_url",
        "fidelity::custom_rest_bearer_follows_the_tenants_endpoint_and_payload_template",
    ),
    (
        "api_version",
        "fidelity::salesforce_api_version_and_both_auth_flows_are_the_tenants",
    ),
    (
        "instance_url",
        "fidelity::salesforce_api_version_and_both_auth_flows_are_the_tenants",
    ),
    (
        "consumer_key",
        "fidelity::salesforce_api_version_and_both_auth_flows_are_the_tenants",
    ),
    (
        "username",
        "fidelity::salesforce_api_version_and_both_auth_flows_are_the_tenants",
    ),
    (
        "private_key",
        "fidelity::salesforce_api_version_and_both_auth_flows_are_the_tenants",
    ),
    (
        "api_token",
        "connector::hubspot_creates_then_updates_duplicates_by_normalised_email_and_phone",
    ),
    (
        "pipeline_id",
        "fidelity::pipedrive_deal_settings_reach_the_deal_request",
    ),
    (
        "stage_id",
        "fidelity::pipedrive_deal_settings_reach_the_deal_request",
    ),
    (
        "default_owner",
        "fidelity::pipedrive_deal_settings_reach_the_deal_request",
    ),
];

/// The test of a key that has no effect: `validate` says so.
pub const NO_EFFECT_TEST: &str = "fidelity::validate_warns_for_every_key_without_effect";

/// Where `spec` reads `config.<name>` or `secrets.<name>`: JSON pointers of the templates.
pub fn readers(spec: &ConnectorSpec, name: &str) -> Vec<String> {
    reads(spec).swap_remove(name).unwrap_or_default()
}

/// Every name `spec` reads under `config.` or `secrets.`, with the JSON pointers of the
/// templates that read it (the spec is walked once).
fn reads(spec: &ConnectorSpec) -> IndexMap<String, Vec<String>> {
    fn walk(v: &Value, at: &str, out: &mut IndexMap<String, Vec<String>>) {
        match v {
            Value::String(s) => {
                for (_, name) in crate::template::template_refs(s) {
                    let at_list = out.entry(name).or_default();
                    if at_list.last().is_none_or(|l| l != at) {
                        at_list.push(at.to_string());
                    }
                }
            }
            Value::Object(m) => {
                for (k, x) in m {
                    walk(x, &pointer_join(at, k), out);
                }
            }
            Value::Array(a) => {
                for (i, x) in a.iter().enumerate() {
                    walk(x, &format!("{at}/{i}"), out);
                }
            }
            _ => {}
        }
    }
    let mut out = IndexMap::new();
    if let Ok(v) = serde_json::to_value(spec) {
        walk(&v, "", &mut out);
    }
    out
}

/// Settings the engine reads itself (not through the connector spec's templates).
const ENGINE_SETTINGS: [&str; 2] = ["base_url", "auth_flow"];

/// W232 for every key of `m` that has no effect on `spec` (the spec the tenant's crm_config
/// makes, [`crate::connector::tenant::tenant_spec`]).
pub fn without_effect(spec: &ConnectorSpec, m: &MappingSpec) -> Diagnostics {
    let mut out = Diagnostics::default();
    let conn = &spec.connector.name;
    let warn = |out: &mut Diagnostics, ptr: String, key: &str, why: String| {
        out.push(
            Diagnostic::warning(
                "W232",
                ptr,
                format!("`{key}` is accepted but has no effect with connector `{conn}`: {why}"),
            )
            .with_hint("remove it, or see docs/keys.md for what each key does per connector"),
        );
    };
    let Ok(Value::Object(cfg)) = serde_json::to_value(&m.crm_config) else {
        return out;
    };
    let read = reads(spec);
    for (k, v) in &cfg {
        if matches!(v, Value::String(_) | Value::Number(_) | Value::Bool(_))
            && k != "type"
            && !read.contains_key(k)
        {
            warn(
                &mut out,
                pointer_join("/crm_config", k),
                k,
                "nothing in its spec reads it".into(),
            );
        }
    }
    for k in m.crm_config.settings.keys() {
        if !ENGINE_SETTINGS.contains(&k.as_str()) && !read.contains_key(k) {
            warn(
                &mut out,
                pointer_join("/crm_config/settings", k),
                k,
                "nothing in its spec reads it".into(),
            );
        }
    }
    if spec.connector.kind != ConnectorKind::Custom {
        for (key, set) in [
            ("authentication", m.crm_config.authentication.is_some()),
            ("endpoints", !m.crm_config.endpoints.is_empty()),
        ] {
            if set {
                warn(
                    &mut out,
                    format!("/crm_config/{key}"),
                    key,
                    "only custom REST connectors read it".into(),
                );
            }
        }
    }
    for (obj, field, ptr) in mapped_fields(spec, m) {
        // A field the catalog does not declare, on an object with `field_keys`, is sent under
        // its CRM key: inside `into` when set (sent when the bodies send `payload.<into>`),
        // else at the top level (sent only with the whole payload).
        let o = spec.objects.get(&obj);
        let sent_as = match o.and_then(|o| o.field_keys.as_ref()) {
            Some(fk) if o.is_some_and(|o| !o.fields.contains_key(&field)) => fk.into.clone(),
            _ => Some(field.clone()),
        };
        if let Some(sent) = sent_fields(spec, &obj)
            && !sent_as.is_some_and(|n| sent.contains(&n))
        {
            let mut names: Vec<&str> = sent.iter().map(String::as_str).collect();
            names.sort_unstable();
            warn(
                &mut out,
                ptr,
                &field,
                format!(
                    "the `{obj}` create operations send only {}",
                    names.join(", ")
                ),
            );
        }
    }
    if let Some(dd) = &m.crm_config.duplicate_detection {
        let object = m
            .crm_config
            .object_or_default(spec.connector.default_object.as_ref());
        let searchable = spec.operations.values().any(|o| {
            o.kind == OperationKind::Search && o.object.as_deref() == Some(object.as_str())
        });
        if dd.enabled && !searchable {
            warn(
                &mut out,
                "/crm_config/duplicate_detection".into(),
                "duplicate_detection",
                format!("it has no `search` operation for `{object}`"),
            );
        }
    }
    out
}

/// The mapped (object, field, pointer) triples of `m`.
fn mapped_fields(spec: &ConnectorSpec, m: &MappingSpec) -> Vec<(String, String, String)> {
    let cfg = &m.crm_config;
    let default = cfg.object_or_default(spec.connector.default_object.as_ref());
    let mut out = Vec::new();
    for k in cfg.field_mappings.keys() {
        out.push((
            default.clone(),
            k.clone(),
            pointer_join("/crm_config/field_mappings", k),
        ));
    }
    for (i, p) in cfg.custom_properties.iter().enumerate() {
        out.push((
            default.clone(),
            p.name.clone(),
            format!("/crm_config/custom_properties/{i}/name"),
        ));
    }
    for k in cfg.custom_fields.keys() {
        out.push((
            default.clone(),
            k.clone(),
            pointer_join("/crm_config/custom_fields", k),
        ));
    }
    for (base, table) in [("/crm_config/object_mappings", &cfg.object_mappings)] {
        for (obj, fields) in table {
            for k in fields.keys() {
                out.push((
                    obj.clone(),
                    k.clone(),
                    pointer_join(&pointer_join(base, obj), k),
                ));
            }
        }
    }
    for (obj, t) in &cfg.payload_templates {
        if let Value::Object(fields) = t {
            for k in fields.keys() {
                out.push((
                    obj.clone(),
                    k.clone(),
                    pointer_join(&pointer_join("/crm_config/payload_templates", obj), k),
                ));
            }
        }
    }
    out
}

/// The payload fields the create operations of `object` send, when their bodies name them
/// one by one (`{{payload.name}}`); `None` when a body sends the whole payload or there is
/// no create operation (nothing is dropped by the spec then).
fn sent_fields(spec: &ConnectorSpec, object: &str) -> Option<Vec<String>> {
    let creates: Vec<&super::connector::Operation> = spec
        .operations
        .values()
        .filter(|o| {
            o.object.as_deref() == Some(object)
                && matches!(
                    o.kind,
                    OperationKind::Create | OperationKind::BatchCreate | OperationKind::Upsert
                )
        })
        .collect();
    if creates.is_empty() {
        return None;
    }
    let mut sent = Vec::new();
    for op in creates {
        if op.plugin.is_some() {
            return None;
        }
        let mut texts = Vec::new();
        if let Some(b) = &op.body {
            texts.push(b.to_string());
        }
        if let Some(b) = op.batch.as_ref().and_then(|b| b.item.as_ref()) {
            texts.push(b.to_string());
        } else if op.batch.is_some() {
            return None;
        }
        for text in texts {
            let mut rest = text.as_str();
            while let Some(i) = rest.find("payload") {
                let after = &rest[i + "payload".len()..];
                match after.strip_prefix('.') {
                    Some(tail) => {
                        let name: String = tail
                            .chars()
                            .take_while(|c| c.is_alphanumeric() || *c == '_' || *c == '-')
                            .collect();
                        sent.push(name);
                    }
                    // `{{payload}}`, `{{strings payload}}`, `{{json payload}}`: all of it.
                    None if after.starts_with('}') || after.starts_with(' ') => return None,
                    None => {}
                }
                rest = after;
            }
        }
    }
    Some(sent)
}

/// Every key of `crm_config` (the schema's order), for the table.
fn crm_config_keys() -> Vec<String> {
    let schema = super::schema::schema_for(super::SpecKind::Mapping);
    schema
        .pointer("/$defs/CrmConfig/properties")
        .and_then(Value::as_object)
        .map(|m| m.keys().cloned().collect())
        .unwrap_or_default()
}

/// `docs/keys.md`: per connector (CRM, custom …; not inbound sources), every `crm_config` key
/// → its effect → the test that shows it.
pub fn markdown(specs: &[ConnectorSpec]) -> String {
    let mut s = String::from(
        "# What each mapping-spec key does, per connector\n\n\
         Generated from the code (`switchyard::spec::keys::markdown`); `tests/all/fidelity.rs` \
         fails when this file is stale (`BLESS=1` rewrites it). A key either has an effect, \
         shown by the named test, or `switchyard validate` warns that it has none (W232).\n\n\
         ## Envelope (every connector)\n\n| key | effect | test |\n|---|---|---|\n",
    );
    for k in ENVELOPE_KEYS {
        s.push_str(&format!("| `{}` | {} | `{}` |\n", k.key, k.effect, k.test));
    }
    let mut specs: Vec<&ConnectorSpec> = specs
        .iter()
        .filter(|c| c.connector.kind != ConnectorKind::Source)
        .collect();
    specs.sort_by(|a, b| a.connector.name.cmp(&b.connector.name));
    let keys = crm_config_keys();
    for c in specs {
        s.push_str(&format!(
            "\n## `{}` ({})\n\n| `crm_config` key | effect | test |\n|---|---|---|\n",
            c.connector.name,
            c.connector.title.as_deref().unwrap_or(&c.connector.name)
        ));
        for k in &keys {
            let (effect, test) = effect_of(c, k);
            s.push_str(&format!("| `{k}` | {effect} | `{test}` |\n"));
        }
    }
    s
}

/// The effect of `crm_config.<key>` on connector `c`, and its test.
pub fn effect_of(c: &ConnectorSpec, key: &str) -> (String, &'static str) {
    if let Some(d) = STRUCTURAL_KEYS.iter().find(|d| d.key == key) {
        let custom_only = matches!(key, "authentication" | "endpoints");
        if custom_only && c.connector.kind != ConnectorKind::Custom {
            return ("none — `validate` warns (W232)".into(), NO_EFFECT_TEST);
        }
        if key == "duplicate_detection" {
            let object = c
                .connector
                .default_object
                .clone()
                .unwrap_or_else(|| "contact".into());
            let searchable = c.operations.values().any(|o| {
                o.kind == OperationKind::Search && o.object.as_deref() == Some(object.as_str())
            });
            if !searchable {
                return (
                    format!("none for `{object}` (no search operation) — `validate` warns (W232)"),
                    NO_EFFECT_TEST,
                );
            }
        }
        return (d.effect.to_string(), d.test);
    }
    let r = readers(c, key);
    if r.is_empty() {
        return ("none — `validate` warns (W232)".into(), NO_EFFECT_TEST);
    }
    let kind = if c.secrets.contains_key(key) {
        "secret"
    } else {
        "config"
    };
    let places: Vec<String> = r.iter().map(|p| format!("`{p}`")).collect();
    let qualified = format!("{}.{key}", c.connector.name);
    let test = SCALAR_KEY_TESTS
        .iter()
        .find(|(k, _)| *k == qualified)
        .or_else(|| SCALAR_KEY_TESTS.iter().find(|(k, _)| *k == key))
        .map_or(NO_EFFECT_TEST, |(_, t)| *t);
    (
        format!("fills {kind} `{key}`, read by {}", places.join(", ")),
        test,
    )
}
