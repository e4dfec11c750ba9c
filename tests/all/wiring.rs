//! Plugins used from specs, with no change to the host: mapping functions in expressions,
//! request signing and CSV/XML decoding for a declarative connector, whole operations delegated
//! to a full-connector plugin, operator grants — against the AcmeCRM emulator over real HTTP.

use crate::cli::{repo_root, switchyard};
use serde_json::{Map, Value, json};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use switchyard::connector::{
    Binding, Connector, Deliverer, DeliveryItem, DeliveryOptions, Runtime, Secret,
};
use switchyard::plugin::PluginEnv;
use switchyard::record::Mapped;
use switchyard::spec::mapping::{DuplicateAction, DuplicateDetection, MatchStrategy};
use switchyard_sandbox::{self as sandbox, SandboxOptions, Vendor};

fn needs_plugins() {
    assert!(
        repo_root().join("target/plugins/acme_codec.wasm").exists(),
        "run .ci/build-plugins first"
    );
}

fn run(args: &[&str]) -> (i32, String, String) {
    let out = switchyard()
        .args(args)
        .env_remove("SWITCHYARD_PLUGIN_GRANTS")
        .output()
        .expect("runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn map_calls_plugin_functions_from_expressions() {
    needs_plugins();
    let (code, out, err) = run(&[
        "map",
        "--mapping",
        "mapping-specs/examples/acmecrm-contact.json",
        "--input",
        "mapping-specs/examples/data/web-leads.ndjson",
    ]);
    assert_eq!(code, 0, "{err}");
    let lines: Vec<Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).expect("json"))
        .collect();
    let phones: Vec<&Value> = lines
        .iter()
        .map(|l| &l["objects"]["contact"]["phone"])
        .collect();
    // libphonenumber's answers (compiled into the plugin), per the record's country or US.
    assert_eq!(phones[0], "+14155552671");
    assert_eq!(phones[1], "+12125550143");
    assert_eq!(phones[2], "+442079460958");
    assert_eq!(phones[3], "+17575550199");
    // Not a phone: the plugin answers null, so the field is left out.
    assert_eq!(phones[5], &Value::Null);
    assert_eq!(lines[5]["objects"]["contact"]["name"], "Edsger Dijkstra");
}

#[test]
fn unknown_plugin_functions_are_compile_errors_with_the_known_names() {
    needs_plugins();
    let dir = tempfile::tempdir().expect("dir");
    let text =
        std::fs::read_to_string(repo_root().join("mapping-specs/examples/acmecrm-contact.json"))
            .expect("example")
            .replace("basics.phone_e164(", "basics.phone_e146(")
            .replace(
                "../../plugins/",
                &format!("{}/plugins/", repo_root().display()),
            );
    let spec = dir.path().join("m.json");
    std::fs::write(&spec, text).expect("write");
    let (code, _, err) = run(&[
        "map",
        "--mapping",
        spec.to_str().expect("utf-8"),
        "--input",
        "mapping-specs/examples/data/web-leads.ndjson",
    ]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("E213"), "{err}");
    assert!(err.contains("/crm_config/field_mappings/phone"), "{err}");
    assert!(
        err.contains("unknown function `basics.phone_e146`: plugin `basics` does not provide it"),
        "{err}"
    );
    assert!(err.contains("did you mean `basics.phone_e164`?"), "{err}");

    // An alias nobody declared.
    let text = std::fs::read_to_string(&spec)
        .expect("read")
        .replace("basics.phone_e146(", "phones.e164(");
    std::fs::write(&spec, text).expect("write");
    let (code, out, err) = run(&["validate", spec.to_str().expect("utf-8"), "connector-specs"]);
    let all = format!("{out}{err}");
    assert_eq!(code, 1, "{all}");
    assert!(
        all.contains("unknown function `phones.e164`: no plugin `phones` is declared"),
        "{all}"
    );
    assert!(all.contains("/crm_config/field_mappings/phone"), "{all}");
}

#[test]
fn run_sandbox_signs_decodes_and_dedupes_through_plugins() {
    needs_plugins();
    let dir = tempfile::tempdir().expect("dir");
    let report = dir.path().join("r.json");
    let (code, _, err) = run(&[
        "run",
        "--mapping",
        "mapping-specs/examples/acmecrm-contact.json",
        "--input",
        "mapping-specs/examples/data/web-leads.ndjson",
        "--sandbox",
        "--concurrency",
        "1",
        "--store",
        dir.path().join("s.sqlite").to_str().expect("utf-8"),
        "--report",
        report.to_str().expect("utf-8"),
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(
        err.contains("created 5, updated 1, skipped 0, failed 0"),
        "{err}"
    );
    let r: Value =
        serde_json::from_str(&std::fs::read_to_string(&report).expect("report")).expect("json");
    let ids: Vec<&str> = r["objects"]
        .as_array()
        .expect("objects")
        .iter()
        .map(|o| o["id"].as_str().unwrap_or_default())
        .collect();
    // One at a time: ids in input order, and the fifth lead (Ada again) updates c-1.
    assert_eq!(ids, ["c-1", "c-2", "c-3", "c-4", "c-1", "c-5"]);
}

fn contact(key: &str, email: &str, name: &str) -> DeliveryItem {
    let mut o = Map::new();
    o.insert("email".into(), json!(email));
    o.insert("name".into(), json!(name));
    let mut objects = indexmap::IndexMap::new();
    objects.insert("contact".to_string(), o);
    DeliveryItem {
        key: key.into(),
        mapped: Mapped {
            objects,
            triggers: vec![],
            notes: vec![],
        },
    }
}

fn opts() -> DeliveryOptions {
    DeliveryOptions {
        route: "wiring-test.json".into(),
        duplicate_detection: Some(DuplicateDetection {
            enabled: true,
            match_fields: vec!["email".into()],
            match_strategy: MatchStrategy::Exact,
            action: DuplicateAction::UpdateExisting,
        }),
        dedupe_object: "contact".into(),
        concurrency: 1,
        batch: false,
    }
}

/// A full-connector plugin: the connector spec delegates its operations; the plugin does the
/// signed HTTP itself, through the host's allowlisted `http` import.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operations_delegated_to_a_full_connector_plugin() {
    needs_plugins();
    let emu = sandbox::start(Vendor::Acmecrm, SandboxOptions::default())
        .await
        .expect("emulator");
    let dir = tempfile::tempdir().expect("dir");
    // The shipped manifest allows only the real AcmeCRM hosts: this one allows the emulator.
    let manifest = dir.path().join("crm.toml");
    std::fs::write(
        &manifest,
        format!(
            "spec_version = 1\n[plugin]\nname = \"crm-connector\"\nversion = \"0.1.0\"\nworld = \"full-connector\"\nwit_version = \"0.1.0\"\nwasm = \"{}\"\nsha256 = \"{}\"\n[plugin.capabilities]\nallowed_hosts = [\"{}\"]\nsecrets = [\"api_secret\"]\nconfig = [\"base_url\", \"key_id\"]\n",
            repo_root().join("target/plugins/crm_connector.wasm").display(),
            sha256_of(&repo_root().join("target/plugins/crm_connector.wasm")),
            emu.base_url()
        ),
    )
    .expect("manifest");
    let spec_path = dir.path().join("acme-full.toml");
    std::fs::write(
        &spec_path,
        r#"spec_version = 1
[connector]
name = "acme-full"
kind = "crm"
base_url = "https://api.acmecrm.example"
default_object = "contact"
[plugins]
crm = "crm.toml"
[objects.contact]
api_name = "contacts"
[objects.contact.fields]
email = "string"
name = "string"
[operations.list_contacts]
object = "contact"
kind = "list"
path = "/contacts"
plugin = "crm"
records = "$.records[*]"
id = "$.id"
[operations.search_contact]
object = "contact"
kind = "search"
path = "/contacts"
plugin = "crm"
records = "$.records[*]"
id = "$.id"
[operations.create_contact]
object = "contact"
kind = "create"
path = "/contacts"
plugin = "crm"
id = "$.id"
"#,
    )
    .expect("spec");
    let (spec, _) = switchyard::connector::find_spec_file(dir.path(), "acme-full").expect("spec");
    let env = PluginEnv::discover(Some(&write_grants(dir.path(), &emu))).expect("grants");
    let set = env
        .load_set(&spec_path, &spec.plugins, "tenant_a")
        .expect("plugins load");
    let session = Runtime::new()
        .session(
            Arc::new(Connector::compile(spec).expect("compiles")),
            Binding {
                tenant: "tenant_a".into(),
                config: Map::new(),
                secrets: HashMap::new(),
                base_url: None,
            },
        )
        .with_plugins(set);
    let d = Deliverer::new(session.clone(), None, opts());
    let items: Vec<DeliveryItem> = (0..55)
        .map(|i| {
            contact(
                &format!("k{i}"),
                &format!("p{i}@example.com"),
                &format!("Person, {i}"),
            )
        })
        .collect();
    let report = d.deliver(items).await;
    assert_eq!(report.created, 55, "{report:?}");
    // Listing goes through the plugin's paging (50 per CSV page, then the next page).
    let mut seen = Vec::new();
    let n = session
        .list("list_contacts", Map::new(), None, |r| seen.push(r))
        .await
        .expect("lists");
    assert_eq!(n, 55);
    assert_eq!(seen[3]["name"], "Person, 3");
    assert_eq!(emu.records("contacts").len(), 55);
    // A duplicate is found through the plugin's read and updated, not created again.
    let report = d
        .deliver(vec![contact("again", "p7@example.com", "Seven")])
        .await;
    assert_eq!(report.failed, 0, "{report:?}");
    assert_eq!(emu.records("contacts").len(), 55 + report.created);
    emu.shutdown().await;
}

/// Lowercase hex sha256 of a file (grants and manifests name a plugin's wasm by it).
fn sha256_of(path: &Path) -> String {
    hex::encode(<sha2::Sha256 as sha2::Digest>::digest(
        std::fs::read(path).expect("readable"),
    ))
}

fn write_grants(dir: &Path, emu: &sandbox::Emulator) -> PathBuf {
    let c = emu.credentials();
    let p = dir.join("grants.toml");
    std::fs::write(
        &p,
        format!(
            "[host]\ncache_dir = \"{}\"\nwatch_ms = 0\n\n{}",
            dir.join("cache").display(),
            // One grant per AcmeCRM plugin, named by the sha256 of its wasm.
            ["acme_codec", "crm_connector"]
                .map(|w| format!(
                    "[[grant]]\nsha256 = \"{}\"\ntenants = [\"tenant_a\"]\nallowed_hosts = [\"{}\"]\nsecrets = {{ api_secret = \"{}\" }}\nconfig = {{ key_id = \"{}\", base_url = \"{}\" }}\nallow_private_networks = true\n",
                    sha256_of(&repo_root().join(format!("target/plugins/{w}.wasm"))),
                    emu.base_url(),
                    c.get("api_secret").unwrap_or_default(),
                    c.get("key_id").unwrap_or_default(),
                    emu.base_url()
                ))
                .join("\n")
        ),
    )
    .expect("grants");
    p
}

/// The declarative AcmeCRM spec with its codec plugin: the operator's grants decide the
/// signing secret; a tenant without the right grant is refused by the CRM and the record is
/// dead-lettered with the reason, never lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn codec_plugin_signs_with_the_operators_grant_only() {
    needs_plugins();
    let emu = sandbox::start(Vendor::Acmecrm, SandboxOptions::default())
        .await
        .expect("emulator");
    let dir = tempfile::tempdir().expect("dir");
    let grants = write_grants(dir.path(), &emu);
    let env = PluginEnv::discover(Some(&grants)).expect("grants");
    let specs = repo_root().join("connector-specs");
    let (spec, spec_path) = switchyard::connector::find_spec_file(&specs, "acmecrm").expect("spec");
    let session_for = |tenant: &str| {
        let set = env
            .load_set(&spec_path, &spec.plugins, tenant)
            .expect("plugins load");
        Runtime::new()
            .session(
                Arc::new(Connector::compile(spec.clone()).expect("compiles")),
                Binding {
                    tenant: tenant.into(),
                    config: Map::new(),
                    secrets: HashMap::<String, Secret>::new(),
                    base_url: Some(emu.base_url().to_string()),
                },
            )
            .with_plugins(set)
    };
    let granted = Deliverer::new(session_for("tenant_a"), None, opts());
    let r = granted
        .deliver(vec![
            contact("1", "ada@example.com", "Ada"),
            contact("2", "ADA@example.com ", "Ada L."),
        ])
        .await;
    assert_eq!((r.created, r.updated, r.failed), (1, 1, 0), "{r:?}");
    let stored = emu.records("contacts");
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0]["name"], "Ada L.");

    // tenant_b has no grant: the plugin gets no secret and the request is not signed.
    let store =
        Arc::new(switchyard::store::Store::open(&dir.path().join("s.sqlite")).expect("store"));
    let refused = Deliverer::new(session_for("tenant_b"), Some(store.clone()), opts());
    let r = refused
        .deliver(vec![contact("3", "grace@example.com", "Grace")])
        .await;
    assert_eq!(r.failed, 1, "{r:?}");
    let reason = r.objects[0].reason.clone().unwrap_or_default();
    assert!(reason.contains("api_secret"), "{reason}");
    assert!(!reason.contains(emu.credentials().get("api_secret").unwrap_or("?")));
    assert_eq!(emu.records("contacts").len(), 1);
    emu.shutdown().await;
}

#[test]
fn templates_call_plugin_functions_through_the_plugin_helper() {
    needs_plugins();
    let dir = tempfile::tempdir().expect("dir");
    let manifest = repo_root().join("plugins/mapping-basics/plugin.toml");
    let spec = |template: &str| {
        json!({"spec_version": 1, "tenant": "t", "connector": "hubspot",
               "plugins": {"basics": manifest.display().to_string()},
               "crm_config": {"type": "hubspot", "field_mappings": {
                   "email": "email",
                   "notes": {"type": "template", "template": template}}}})
        .to_string()
    };
    let input = dir.path().join("in.ndjson");
    std::fs::write(
        &input,
        "{\"email\": \"a@example.com\", \"phone\": \"(415) 555-2671\", \"first\": \"Ada\"}\n",
    )
    .expect("input");
    let good = dir.path().join("good.json");
    std::fs::write(
        &good,
        spec("Call {{first}} at {{plugin \"basics.phone_e164\" phone \"US\"}}"),
    )
    .expect("spec");
    let (code, out, err) = run(&[
        "map",
        "--mapping",
        good.to_str().expect("utf-8"),
        "--input",
        input.to_str().expect("utf-8"),
    ]);
    assert_eq!(code, 0, "{err}");
    let v: Value = serde_json::from_str(out.trim()).expect("json");
    assert_eq!(v["objects"]["contact"]["notes"], "Call Ada at +14155552671");

    let bad = dir.path().join("bad.json");
    std::fs::write(&bad, spec("{{plugin \"basics.phone\" phone}}")).expect("spec");
    let (code, _, err) = run(&[
        "map",
        "--mapping",
        bad.to_str().expect("utf-8"),
        "--input",
        input.to_str().expect("utf-8"),
    ]);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("unknown plugin function `basics.phone` in template"),
        "{err}"
    );
    assert!(err.contains("/crm_config/field_mappings/notes"), "{err}");
}

/// Plugins a spec references are hot-reloaded when their files change (operator `watch_ms`).
#[test]
fn spec_referenced_plugins_are_hot_reloaded() {
    needs_plugins();
    let dir = tempfile::tempdir().expect("dir");
    let wasm = dir.path().join("basics.wasm");
    std::fs::copy(
        repo_root().join("target/plugins/mapping_basics.wasm"),
        &wasm,
    )
    .expect("copy");
    std::fs::write(
        dir.path().join("plugin.toml"),
        format!(
            "spec_version = 1\n[plugin]\nname = \"basics\"\nversion = \"0.1.0\"\nworld = \"mapping-functions\"\nwit_version = \"0.1.0\"\nwasm = \"basics.wasm\"\nsha256 = \"{}\"\n",
            sha256_of(&wasm)
        ),
    )
    .expect("manifest");
    let spec = dir.path().join("route.json");
    let grants = dir.path().join("grants.toml");
    std::fs::write(
        &grants,
        format!(
            "[host]\ncache_dir = \"{}\"\nwatch_ms = 20\n",
            dir.path().join("cache").display()
        ),
    )
    .expect("grants");
    let env = PluginEnv::discover(Some(&grants)).expect("env");
    let decl: indexmap::IndexMap<String, String> = [("b".to_string(), "plugin.toml".to_string())]
        .into_iter()
        .collect();
    let set = env.load_set(&spec, &decl, "t").expect("loads");
    let handle = set.get("b").expect("handle").clone();
    assert_eq!(handle.status().loads, 1);
    let _watch = env.watch(&set).expect("watching");
    // A broken new version: reported, the old one keeps serving.
    std::fs::write(&wasm, b"\0asm broken").expect("write");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while handle.status().last_error.is_none() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert!(
        handle.status().last_error.is_some(),
        "{:?}",
        handle.status()
    );
    assert_eq!(handle.status().loads, 1);
    // A good one again: reloaded.
    std::fs::copy(
        repo_root().join("target/plugins/mapping_basics.wasm"),
        &wasm,
    )
    .expect("copy");
    while handle.status().loads < 2 && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert_eq!(handle.status().loads, 2, "{:?}", handle.status());
    assert!(handle.status().last_error.is_none());
    let f = set.functions().resolve("b.split_name").expect("function");
    use switchyard::expr::ExtCalls as _;
    let v = set
        .session()
        .call(&f, vec![json!("Ada Lovelace")])
        .expect("calls");
    assert_eq!(v["last"], "Lovelace", "{v}");
}
