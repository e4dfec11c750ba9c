//! `switchyard init CONNECTOR`: scaffold a route for a connector — a mapping spec (envelope,
//! `field_mappings` for the object's most useful catalog fields, duplicate detection where the
//! connector can search, secrets as `env:` references), sample records, and a test inside the
//! spec whose expectation is what the spec makes of the first sample — ready for
//! `switchyard test`, `validate` and `run --sandbox`.

use super::{EXIT_INVALID, EXIT_OK, EXIT_USAGE};
use serde_json::{Map, Value, json};
use std::path::{Path, PathBuf};
use switchyard::spec::common::FieldType;
use switchyard::spec::connector::{ConnectorKind, ConnectorSpec, FieldSpec, OperationKind};

/// Arguments of `switchyard init`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The connector to scaffold a route for (a name in the connectors folder, e.g. `hubspot`).
    #[arg(value_name = "CONNECTOR")]
    pub connector: String,
    /// Folder to write into. Default: `routes/<connector>`.
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
    /// The tenant the route belongs to.
    #[arg(long, default_value = "acme")]
    pub tenant: String,
    /// The object records become. Default: the connector's default object.
    #[arg(long, value_name = "OBJECT")]
    pub object: Option<String>,
    /// Folder (or file) of connector specs.
    #[arg(long, value_name = "DIR", default_value = "connector-specs")]
    pub connectors: PathBuf,
    /// Replace files that exist.
    #[arg(long)]
    pub force: bool,
}

/// At most this many fields are mapped (the author adds the rest).
const MAX_FIELDS: usize = 8;

/// Field names tried first, in this order (the catalog's own order follows).
const PREFERRED: &[&str] = &[
    "email",
    "Email",
    "firstname",
    "first_name",
    "FirstName",
    "lastname",
    "last_name",
    "LastName",
    "name",
    "Name",
    "phone",
    "Phone",
    "company",
    "Company",
    "title",
    "Title",
    "subject",
    "Subject",
    "description",
    "Description",
    "city",
    "City",
];

/// Run `switchyard init`.
pub fn run(a: Args) -> u8 {
    let engine = match super::common::engine(&a.connectors, None, None) {
        Ok(e) => e,
        Err(e) => {
            eprintln!("error: {e}");
            return EXIT_USAGE;
        }
    };
    let entry = match engine.registry().get(&a.connector) {
        Ok(e) => e,
        Err(e) => {
            eprintln!("error: {e}");
            return EXIT_USAGE;
        }
    };
    let spec = &entry.spec;
    if spec.connector.kind == ConnectorKind::Source || spec.objects.is_empty() {
        eprintln!(
            "error: `{}` is an inbound source or has no objects; scaffold a route for the CRM records go to",
            a.connector
        );
        return EXIT_USAGE;
    }
    let object = match a
        .object
        .clone()
        .or_else(|| spec.connector.default_object.clone())
        .or_else(|| spec.objects.keys().next().cloned())
    {
        Some(o) if spec.objects.contains_key(&o) => o,
        Some(o) => {
            let known: Vec<&str> = spec.objects.keys().map(String::as_str).collect();
            eprintln!(
                "error: connector `{}` has no object `{o}` (it has: {})",
                a.connector,
                known.join(", ")
            );
            return EXIT_USAGE;
        }
        None => return EXIT_USAGE,
    };
    let dir = a
        .dir
        .clone()
        .unwrap_or_else(|| Path::new("routes").join(&a.connector));
    let spec_path = dir.join("route.json");
    let data_path = dir.join("data/sample.ndjson");
    for p in [&spec_path, &data_path] {
        if p.exists() && !a.force {
            eprintln!(
                "error: `{}` exists; pass --force to replace it",
                p.display()
            );
            return EXIT_USAGE;
        }
    }
    let (route, samples) = scaffold(spec, &a.tenant, &object);
    if let Err(e) = write(&dir, &spec_path, &data_path, &route, &samples) {
        eprintln!("error: {e}");
        return EXIT_USAGE;
    }
    // The test records what the spec makes of the first sample now, mapped by the engine.
    let mapper = match engine.mapper_file(&spec_path) {
        Ok(m) => m,
        Err(e) => {
            eprintln!("error: the scaffold does not compile (please report this): {e}");
            return EXIT_INVALID;
        }
    };
    let now = chrono::DateTime::parse_from_rfc3339(switchyard::spectest::DEFAULT_NOW)
        .map(|d| d.with_timezone(&chrono::Utc))
        .unwrap_or_else(|_| chrono::Utc::now());
    let secrets = switchyard::secrets::SecretResolver::default();
    let ctx = switchyard::mapping::MapContext {
        now,
        secrets: &secrets,
        ext: None,
    };
    let mapped = match mapper.plan().apply(&samples[0], &ctx) {
        Ok(m) => m,
        Err(e) => {
            eprintln!("error: the scaffold rejects its own sample (please report this): {e}");
            return EXIT_INVALID;
        }
    };
    let mut route = route;
    route["tests"] = json!([{
        "name": format!("a sample record becomes a {object}"),
        "input": samples[0],
        "expect": {"objects": mapped.objects},
    }]);
    if let Err(e) = write(&dir, &spec_path, &data_path, &route, &samples) {
        eprintln!("error: {e}");
        return EXIT_USAGE;
    }
    let shown_spec = spec_path.display();
    let has_emulator = a.connector.parse::<switchyard_sandbox::Vendor>().is_ok();
    outln!("wrote {shown_spec} and {}", data_path.display());
    outln!("next:");
    outln!("  switchyard test {shown_spec}            # the spec's own test passes");
    outln!("  switchyard validate {shown_spec} connector-specs");
    if has_emulator {
        outln!(
            "  switchyard run --mapping {shown_spec} --input {} --sandbox   # delivered to the local {} emulator",
            data_path.display(),
            a.connector
        );
    } else {
        outln!(
            "  switchyard run --mapping {shown_spec} --input {} --dry-run   # the requests it would send",
            data_path.display()
        );
    }
    let secrets: Vec<String> = spec
        .secrets
        .iter()
        .filter(|(_, s)| s.required)
        .map(|(n, _)| env_name(&a.connector, n))
        .collect();
    if !secrets.is_empty() {
        outln!(
            "against the real {} set {} (see `settings` in the spec)",
            spec.connector.title.as_deref().unwrap_or(&a.connector),
            secrets.join(", ")
        );
    }
    EXIT_OK
}

fn write(
    dir: &Path,
    spec_path: &Path,
    data_path: &Path,
    route: &Value,
    samples: &[Value],
) -> Result<(), String> {
    let data_dir = data_path.parent().unwrap_or(dir);
    std::fs::create_dir_all(data_dir)
        .map_err(|e| format!("cannot create `{}`: {e}", data_dir.display()))?;
    let text = serde_json::to_string_pretty(route).map_err(|e| e.to_string())? + "\n";
    std::fs::write(spec_path, text)
        .map_err(|e| format!("cannot write `{}`: {e}", spec_path.display()))?;
    let mut lines = String::new();
    for s in samples {
        lines.push_str(&s.to_string());
        lines.push('\n');
    }
    std::fs::write(data_path, lines)
        .map_err(|e| format!("cannot write `{}`: {e}", data_path.display()))
}

/// `HUBSPOT_API_TOKEN` for secret `api_token` of `hubspot`.
fn env_name(connector: &str, secret: &str) -> String {
    format!("{connector}_{secret}")
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_uppercase()
            } else {
                '_'
            }
        })
        .collect()
}

/// A source field name for a target field: `FirstName` → `first_name`, `Call_URL__c` →
/// `call_url`.
fn source_name(field: &str) -> String {
    let base = field.strip_suffix("__c").unwrap_or(field);
    let mut out = String::new();
    let mut prev_lower = false;
    for c in base.chars() {
        if c.is_ascii_uppercase() {
            if prev_lower {
                out.push('_');
            }
            out.push(c.to_ascii_lowercase());
            prev_lower = false;
        } else if c.is_ascii_alphanumeric() {
            out.push(c);
            prev_lower = c.is_ascii_lowercase() || c.is_ascii_digit();
        } else {
            if !out.ends_with('_') && !out.is_empty() {
                out.push('_');
            }
            prev_lower = false;
        }
    }
    out.trim_matches('_').to_string()
}

/// A plausible sample value of field `name` of type `t` for sample `i`.
fn sample_value(name: &str, f: &FieldSpec, i: usize) -> Value {
    const FIRST: [&str; 3] = ["Ada", "Grace", "Alan"];
    const LAST: [&str; 3] = ["Lovelace", "Hopper", "Turing"];
    let n = name.to_ascii_lowercase();
    match f.field_type() {
        FieldType::Number => json!(100 * (i + 1)),
        FieldType::Bool => json!(i.is_multiple_of(2)),
        FieldType::Date => json!(format!("2026-0{}-15", i + 1)),
        FieldType::Datetime => json!(format!("2026-0{}-15T09:30:00Z", i + 1)),
        FieldType::Enumeration => f
            .options()
            .get(i % f.options().len().max(1))
            .map_or(json!("other"), |o| json!(o)),
        // A help desk's first comment is an object with a body (Zendesk, Freshdesk).
        FieldType::Object if n.contains("comment") => {
            json!({"body": format!("Sample request {}", i + 1)})
        }
        FieldType::Object => json!({}),
        FieldType::Array => json!([]),
        FieldType::String | FieldType::Any => {
            let s = if n.contains("email") {
                format!(
                    "{}.{}@example.com",
                    FIRST[i % 3].to_lowercase(),
                    LAST[i % 3].to_lowercase()
                )
            } else if n.contains("phone") {
                format!("+1415555{:04}", 2671 + i)
            } else if n.contains("first") {
                FIRST[i % 3].to_string()
            } else if n.contains("last") {
                LAST[i % 3].to_string()
            } else if n == "name" || n.ends_with("_name") || n.ends_with("name") {
                format!("{} {}", FIRST[i % 3], LAST[i % 3])
            } else if n.contains("company") || n.contains("org") {
                "Analytical Engines".to_string()
            } else if n.contains("url") || n.contains("website") {
                "https://example.com".to_string()
            } else if n.contains("city") {
                ["London", "Arlington", "Manchester"][i % 3].to_string()
            } else {
                format!("{name} {}", i + 1)
            };
            json!(s)
        }
    }
}

/// The route (envelope and `crm_config`) and three sample records.
fn scaffold(spec: &ConnectorSpec, tenant: &str, object: &str) -> (Value, Vec<Value>) {
    let catalog = &spec.objects[object];
    let writable = |(_, f): &(&String, &FieldSpec)| match f {
        FieldSpec::Detailed(d) => !d.read_only,
        FieldSpec::Type(_) => true,
    };
    let mut chosen: Vec<(&String, &FieldSpec)> = Vec::new();
    // Required fields first, then the preferred names, then the catalog's order.
    let required = catalog
        .fields
        .iter()
        .filter(|(_, f)| matches!(f, FieldSpec::Detailed(d) if d.required && !d.read_only));
    let preferred = PREFERRED
        .iter()
        .filter_map(|p| catalog.fields.get_key_value(*p))
        .filter(|kv| writable(kv));
    // Not ids of other records (a sample cannot know them), nested or structured fields.
    let rest = catalog.fields.iter().filter(writable).filter(|(n, f)| {
        !n.contains('.')
            && !n.ends_with("_id")
            && !n.ends_with("Id")
            && !matches!(f.field_type(), FieldType::Object | FieldType::Array)
    });
    for kv in required.chain(preferred).chain(rest) {
        if chosen.len() >= MAX_FIELDS {
            break;
        }
        if !chosen.iter().any(|(n, _)| *n == kv.0) {
            chosen.push(kv);
        }
    }
    let mut mappings = Map::new();
    for (name, _) in &chosen {
        mappings.insert((*name).clone(), json!(source_name(name)));
    }
    if catalog.fields.is_empty() {
        // An open catalog with no fields (custom REST): the usual contact fields.
        for name in ["first_name", "last_name", "email", "phone"] {
            mappings.insert(name.into(), json!(name));
        }
    }
    let plain = FieldSpec::Type(FieldType::String);
    let mut fields: Vec<(String, &FieldSpec)> =
        chosen.iter().map(|(n, f)| ((*n).clone(), *f)).collect();
    if catalog.fields.is_empty() {
        fields = ["first_name", "last_name", "email", "phone"]
            .into_iter()
            .map(|n| (n.to_string(), &plain))
            .collect();
    }
    let samples: Vec<Value> = (0..3)
        .map(|i| {
            let mut r = Map::new();
            r.insert("id".into(), json!(format!("rec-{}", i + 1)));
            for (name, f) in &fields {
                r.insert(source_name(name), sample_value(name, f, i));
            }
            Value::Object(r)
        })
        .collect();
    let mut settings = Map::new();
    for (name, s) in &spec.secrets {
        if s.required {
            settings.insert(
                name.clone(),
                json!(format!("env:{}", env_name(&spec.connector.name, name))),
            );
        }
    }
    for (name, c) in &spec.config {
        if c.required && c.default.is_none() {
            settings.insert(name.clone(), json!(format!("CHANGE-ME ({})", name)));
        }
    }
    let crm_type = match spec.connector.name.as_str() {
        "custom-rest" => "custom",
        other => other,
    };
    let mut crm = Map::new();
    crm.insert("type".into(), json!(crm_type));
    if !settings.is_empty() {
        crm.insert("settings".into(), Value::Object(settings));
    }
    if spec.connector.default_object.as_deref() != Some(object) {
        crm.insert("default_object".into(), json!(object));
    }
    let can_search = spec
        .operations
        .values()
        .any(|o| o.object.as_deref() == Some(object) && o.kind == OperationKind::Search);
    let match_field = chosen
        .iter()
        .map(|(n, _)| n.as_str())
        .find(|n| n.to_ascii_lowercase().contains("email"));
    if can_search && let Some(m) = match_field {
        crm.insert(
            "duplicate_detection".into(),
            json!({"enabled": true, "match_fields": [m], "match_strategy": "exact", "action": "update_existing"}),
        );
    }
    if spec.connector.name == "custom-rest" {
        // The tenant's own API: where it is, how it authenticates, and the body it takes.
        crm.remove("settings");
        crm.insert("api_base_url".into(), json!("https://api.example.com/v1"));
        crm.insert(
            "authentication".into(),
            json!({"type": "bearer", "token": format!("env:{}", env_name(&spec.connector.name, "token"))}),
        );
        crm.insert(
            "payload_templates".into(),
            json!({object: {"first_name": "{{first_name}}", "last_name": "{{last_name}}", "email": "{{email}}", "phone": "{{phone}}"}}),
        );
    } else {
        crm.insert("field_mappings".into(), Value::Object(mappings));
    }
    let route = json!({
        "spec_version": 1,
        "tenant": tenant,
        "connector": spec.connector.name,
        "description": format!("{} records as {} {object}s (scaffolded by `switchyard init`: map your source's fields, then extend the test)",
            tenant, spec.connector.title.as_deref().unwrap_or(&spec.connector.name)),
        "crm_config": Value::Object(crm),
    });
    (route, samples)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn source_names_are_snake_case() {
        assert_eq!(source_name("FirstName"), "first_name");
        assert_eq!(source_name("Call_Recording_URL__c"), "call_recording_url");
        assert_eq!(source_name("hs_lead_status"), "hs_lead_status");
        assert_eq!(env_name("custom-rest", "api_key"), "CUSTOM_REST_API_KEY");
    }
}
