//! Attribution end to end through the real binary: the HubSpot + Stripe example pulled through
//! the emulators over HTTP (same results as the NDJSON path), and the enrichment plugin hook
//! (the example `kse-enricher` plugin, built by `.ci/build-plugins`).

use crate::cli::{repo_root, switchyard};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Output;

const HS_SPEC: &str = "mapping-specs/examples/attribution-hubspot-stripe.toml";
const HS_DATA: &str = "mapping-specs/examples/data/attribution-hubspot-stripe.ndjson";
const KSE_SPEC: &str = "mapping-specs/examples/attribution-stripe-kse.toml";

/// Runs `switchyard attribute` with `args` plus `--output`/`--report` into a temp folder.
fn attribute(args: &[&str]) -> (Output, Vec<Value>, Value) {
    attribute_env(args, &[])
}

/// [`attribute`] with environment variables.
fn attribute_env(args: &[&str], env: &[(&str, &str)]) -> (Output, Vec<Value>, Value) {
    let dir = tempfile::tempdir().expect("tempdir");
    let out_path = dir.path().join("out.ndjson");
    let report_path = dir.path().join("report.json");
    let out = switchyard()
        .arg("attribute")
        .args(args)
        .envs(env.iter().copied())
        .arg("--output")
        .arg(&out_path)
        .arg("--report")
        .arg(&report_path)
        .output()
        .expect("runs");
    let records = std::fs::read_to_string(&out_path)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).expect("record json"))
        .collect();
    let report = std::fs::read_to_string(&report_path)
        .ok()
        .map_or(Value::Null, |t| {
            serde_json::from_str(&t).expect("report json")
        });
    (out, records, report)
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Equal, numbers within 1e-9 (sums over records in another order differ in the last bit).
fn assert_close(a: &Value, b: &Value, at: &str) {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => {
            let (x, y) = (
                x.as_f64().unwrap_or(f64::NAN),
                y.as_f64().unwrap_or(f64::NAN),
            );
            assert!((x - y).abs() <= 1e-9 * x.abs().max(1.0), "{at}: {x} != {y}");
        }
        (Value::Object(x), Value::Object(y)) => {
            assert_eq!(
                x.keys().collect::<Vec<_>>(),
                y.keys().collect::<Vec<_>>(),
                "{at}"
            );
            for (k, v) in x {
                assert_close(v, &y[k], &format!("{at}/{k}"));
            }
        }
        (Value::Array(x), Value::Array(y)) => {
            assert_eq!(x.len(), y.len(), "{at}");
            for (i, (p, q)) in x.iter().zip(y).enumerate() {
                assert_close(p, q, &format!("{at}/{i}"));
            }
        }
        _ => assert_eq!(a, b, "{at}"),
    }
}

fn by_record_id(records: &[Value]) -> BTreeMap<String, Value> {
    records
        .iter()
        .map(|r| (r["record_id"].as_str().expect("id").to_string(), r.clone()))
        .collect()
}

#[test]
fn hubspot_and_stripe_through_the_emulators_match_the_ndjson_path() {
    let (sb_out, sb_records, sb_report) =
        attribute(&["--spec", HS_SPEC, "--input", HS_DATA, "--sandbox"]);
    let err = stderr(&sb_out);
    assert!(sb_out.status.success(), "{err}");
    // Every HubSpot and Stripe record went into an emulator and came back over HTTP through the
    // connector; only the web page views were read from the file.
    for line in [
        "pulled 7 contact records through connector `hubspot`",
        "pulled 5 deal records through connector `hubspot`",
        "pulled 9 payment records through connector `stripe`",
        "pulled 3 subscription records through connector `stripe`",
    ] {
        assert!(err.contains(line), "{line}\n{err}");
    }
    assert!(
        err.contains("sandbox: hubspot emulator at http://127.0.0.1:"),
        "{err}"
    );
    assert!(
        err.contains("sandbox: stripe emulator at http://127.0.0.1:"),
        "{err}"
    );
    assert_same_results(&sb_records, &sb_report);
    // Not trivially equal: every model credits, with conversions from all four rules.
    assert_eq!(sb_report["models"].as_object().map(|m| m.len()), Some(7));
    for t in [
        "deal_closed_won",
        "mql",
        "payment_succeeded",
        "subscription_created",
    ] {
        assert!(sb_records.iter().any(|r| r["conversion_type"] == t), "{t}");
    }
}

/// The NDJSON path's records and report must equal another path's (numbers within 1e-9).
fn assert_same_results(records: &[Value], report: &Value) {
    let (file_out, file_records, file_report) = attribute(&["--spec", HS_SPEC, "--input", HS_DATA]);
    assert!(file_out.status.success(), "{}", stderr(&file_out));
    assert!(!file_records.is_empty());
    let (a, b) = (by_record_id(records), by_record_id(&file_records));
    assert_eq!(
        a.keys().collect::<Vec<_>>(),
        b.keys().collect::<Vec<_>>(),
        "same conversions"
    );
    for (id, r) in &a {
        assert_close(r, &b[id], id);
    }
    assert_close(report, &file_report, "report");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pull_with_tenant_configs_reads_the_vendors_over_http() {
    use switchyard_sandbox::{self as sandbox, SandboxOptions, Vendor};
    // Two "vendors" (emulators in this process) holding the example's HubSpot and Stripe
    // records; the web page views stay in a file.
    let hs = sandbox::start(Vendor::Hubspot, SandboxOptions::default())
        .await
        .expect("hubspot");
    let st = sandbox::start(Vendor::Stripe, SandboxOptions::default())
        .await
        .expect("stripe");
    let dir = tempfile::tempdir().expect("tempdir");
    let mut groups: BTreeMap<(String, String), Vec<Value>> = BTreeMap::new();
    let mut web = String::new();
    for line in std::fs::read_to_string(repo_root().join(HS_DATA))
        .expect("data")
        .lines()
    {
        let mut v: Value = serde_json::from_str(line).expect("json");
        let source = v["source"].as_str().unwrap_or("").to_string();
        if source == "web" {
            web.push_str(line);
            web.push('\n');
            continue;
        }
        let object = v["object"].as_str().unwrap_or("").to_string();
        if let Some(m) = v.as_object_mut() {
            m.remove("source");
            m.remove("object");
        }
        groups.entry((source, object)).or_default().push(v);
    }
    for ((source, object), records) in &groups {
        let emu = if source == "hubspot" { &hs } else { &st };
        emu.seed(object, records).expect("seed");
    }
    let web_path = dir.path().join("web.ndjson");
    std::fs::write(&web_path, web).expect("write");
    let config = |connector: &str, token_setting: &str, env: &str, base: &str| {
        let (token_key, settings) = if token_setting == "api_token" {
            (Some(json!(format!("env:{env}"))), json!({"base_url": base}))
        } else {
            (
                None,
                json!({"base_url": base, token_setting: format!("env:{env}")}),
            )
        };
        let mut crm = json!({"type": connector, "settings": settings});
        if let Some(t) = token_key {
            crm["api_token"] = t;
        }
        let path = dir.path().join(format!("{connector}.json"));
        let m = json!({"spec_version": 1, "tenant": "acme", "connector": connector,
                       "crm_config": crm});
        std::fs::write(&path, m.to_string()).expect("write");
        path
    };
    let hs_cfg = config("hubspot", "api_token", "SY_TEST_HS_TOKEN", hs.base_url());
    let st_cfg = config("stripe", "secret_key", "SY_TEST_STRIPE_KEY", st.base_url());
    let hs_token = hs
        .credentials()
        .get("access_token")
        .expect("token")
        .to_string();
    let st_key = st.credentials().get("secret_key").expect("key").to_string();
    let args: Vec<String> = vec![
        "--spec".into(),
        HS_SPEC.into(),
        "--pull".into(),
        "--tenant-config".into(),
        hs_cfg.display().to_string(),
        "--tenant-config".into(),
        st_cfg.display().to_string(),
        "--input".into(),
        web_path.display().to_string(),
    ];
    let (out, records, report) = tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        attribute_env(
            &args,
            &[
                ("SY_TEST_HS_TOKEN", hs_token.as_str()),
                ("SY_TEST_STRIPE_KEY", st_key.as_str()),
            ],
        )
    })
    .await
    .expect("joins");
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    assert!(
        !err.contains("sandbox:"),
        "no emulator started by the CLI: {err}"
    );
    assert!(
        err.contains("pulled 7 contact records through connector `hubspot`"),
        "{err}"
    );
    // The vendors really answered the list requests (every page, authenticated).
    let (hs_stats, st_stats) = (hs.stats(), st.stats());
    assert!(
        hs_stats.by_status.get(&200).copied().unwrap_or(0) >= 2,
        "{hs_stats:?}"
    );
    assert!(
        st_stats.by_status.get(&200).copied().unwrap_or(0) >= 2,
        "{st_stats:?}"
    );
    assert_eq!(hs_stats.by_status.get(&401), None, "{hs_stats:?}");
    let results = (records, report);
    tokio::task::spawn_blocking(move || assert_same_results(&results.0, &results.1))
        .await
        .expect("same results");
    hs.shutdown().await;
    st.shutdown().await;
}

#[test]
fn sandbox_and_pull_need_pull_rules() {
    let (out, _, _) = attribute(&[
        "--spec",
        "mapping-specs/examples/attribution-salesforce-paypal.toml",
        "--input",
        "mapping-specs/examples/data/attribution-salesforce-paypal.ndjson",
        "--sandbox",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("--sandbox needs [[attribution.pull]] rules"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn pull_from_the_vendor_without_credentials_names_what_is_missing() {
    // No tenant config: the real HubSpot cannot be used without a token; nothing is sent.
    let (out, _, _) = attribute(&["--spec", HS_SPEC, "--pull"]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(3), "{err}");
    assert!(
        err.contains("connector `hubspot` needs secrets.api_token (give them with --tenant-config"),
        "{err}"
    );
    assert!(!err.contains("pulled"), "{err}");
}

fn kse_wasm() -> PathBuf {
    let p = repo_root().join("target/plugins/kse_enricher.wasm");
    assert!(
        p.exists(),
        "{} is missing: run .ci/build-plugins first (builds plugins/ for wasm32-wasip2)",
        p.display()
    );
    p
}

/// The score the plugin documents: quality × (½ + ½ × confounder coverage) × confidence.
fn expected_kse_score(r: &Value) -> f64 {
    let conf = r["confounders"].as_object().expect("confounders");
    let known = conf.values().filter(|v| !v.is_null()).count() as f64;
    let coverage = if conf.is_empty() {
        1.0
    } else {
        known / conf.len() as f64
    };
    let s = r["data_quality_score"].as_f64().expect("quality")
        * (0.5 + 0.5 * coverage)
        * r["treatment_assignment"]["confidence_score"]
            .as_f64()
            .expect("confidence");
    (s * 10_000.0).round() / 10_000.0
}

#[test]
fn enrichment_plugin_adds_kse_enhancement_to_every_record() {
    kse_wasm();
    let (out, records, report) = attribute(&["--spec", KSE_SPEC, "--input", HS_DATA]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(!stderr(&out).contains("warning"), "{}", stderr(&out));
    assert_eq!(records.len(), 10, "8 payments + 2 subscriptions");
    // The report keeps its exact shape.
    let keys: Vec<&String> = report.as_object().expect("object").keys().collect();
    assert_eq!(keys, ["models", "unattributed", "markov"]);
    let mut scores = Vec::new();
    for r in &records {
        let k = &r["kse_enhancement"];
        assert_eq!(k["model"], "kse-enricher/0.1.0", "{r}");
        assert_eq!(k["kse_score"].as_f64(), Some(expected_kse_score(r)), "{r}");
        scores.push(k["kse_score"].as_f64().unwrap_or_default());
        // The knowledge graph is built from this record: its conversion node, one node per
        // distinct channel of its journey, and its treatment group.
        let nodes = k["knowledge_graph"]["nodes"].as_array().expect("nodes");
        assert_eq!(nodes[0]["id"], r["record_id"]);
        let channels: std::collections::BTreeSet<String> = r["touchpoints"]
            .as_array()
            .expect("touches")
            .iter()
            .map(|t| format!("channel:{}", t["channel"].as_str().unwrap_or("")))
            .collect();
        let graph_channels: std::collections::BTreeSet<String> = nodes
            .iter()
            .filter(|n| n["type"] == "channel")
            .map(|n| n["id"].as_str().unwrap_or("").to_string())
            .collect();
        assert_eq!(graph_channels, channels, "{r}");
        assert!(
            nodes.contains(&json!({"id": format!("treatment:{}", r["treatment_assignment"]["treatment_group"].as_str().unwrap_or("")), "type": "treatment"})),
            "{r}"
        );
        assert_eq!(
            k["conceptual_space"]["journey_length"],
            json!(r["touchpoints"].as_array().map(Vec::len))
        );
    }
    // Scores differ between records (they are computed, not constant).
    scores.sort_by(f64::total_cmp);
    scores.dedup();
    assert!(scores.len() >= 3, "{scores:?}");
    // The seed's field order: kse_enhancement comes after the confounders.
    let text = serde_json::to_string(&records[0]).expect("json");
    let (c, k, q) = (
        text.find("\"confounders\"").expect("c"),
        text.find("\"kse_enhancement\"").expect("k"),
        text.find("\"data_quality_score\"").expect("q"),
    );
    assert!(c < k && k < q, "{text}");
}

/// A spec in `dir` whose value expression gives refunds a negative value, enriched by the
/// example plugin (absolute path, so the spec can live anywhere).
fn refund_spec(dir: &Path, plugin: &str) -> PathBuf {
    let spec = format!(
        r#"spec_version = 1
[attribution]
name = "refunds"
tenant = "t"
models = ["last_touch"]
[attribution.enrichment]
plugin = "{plugin}"
[attribution.default_treatment]
treatment_group = "control"
confidence_score = 0.5
[[attribution.identity]]
source = "shop"
email = "email"
[[attribution.identity]]
source = "web"
email = "email"
[[attribution.conversions]]
name = "order"
source = "shop"
value = "kind == 'refund' ? -total : total"
time = "at"
[[attribution.touchpoints]]
name = "visit"
source = "web"
channel = "channel"
time = "at"
"#
    );
    let path = dir.join("refunds.toml");
    std::fs::write(&path, spec).expect("write spec");
    let data = [
        json!({"source": "web", "email": "a@x.com", "channel": "email", "at": "2024-01-01T00:00:00Z"}),
        json!({"source": "shop", "id": "o1", "email": "a@x.com", "kind": "sale", "total": 120, "at": "2024-01-02T00:00:00Z"}),
        json!({"source": "shop", "id": "o2", "email": "a@x.com", "kind": "refund", "total": 40, "at": "2024-01-03T00:00:00Z"}),
        json!({"source": "shop", "id": "o3", "email": "b@x.com", "kind": "sale", "total": 80, "at": "2024-01-04T00:00:00Z"}),
    ];
    let text: String = data.iter().map(|v| format!("{v}\n")).collect();
    std::fs::write(dir.join("data.ndjson"), text).expect("write data");
    path
}

#[test]
fn enrichment_failure_keeps_the_record_and_reports_it() {
    kse_wasm();
    let dir = tempfile::tempdir().expect("tempdir");
    let manifest = repo_root().join("plugins/kse-enricher/plugin.toml");
    let spec = refund_spec(dir.path(), &manifest.display().to_string());
    let data = dir.path().join("data.ndjson");
    let (out, records, report) = attribute(&[
        "--spec",
        spec.to_str().expect("utf-8"),
        "--input",
        data.to_str().expect("utf-8"),
    ]);
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    // Every conversion is output, the refund too, without the enhancement.
    let ids: Vec<&str> = records
        .iter()
        .map(|r| r["record_id"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(ids, ["shop_order_o1", "shop_order_o2", "shop_order_o3"]);
    let refund = &records[1];
    assert_eq!(refund["conversion_value"], json!(-40.0));
    assert!(refund.get("kse_enhancement").is_none(), "{refund}");
    assert!(records[0]["kse_enhancement"]["kse_score"].is_number());
    assert!(records[2]["kse_enhancement"]["kse_score"].is_number());
    // The failure names the record and the plugin's cause, once.
    let warnings: Vec<&str> = err.lines().filter(|l| l.starts_with("warning:")).collect();
    assert_eq!(warnings.len(), 1, "{err}");
    assert!(
        warnings[0].contains("record shop_order_o2 kept without kse_enhancement"),
        "{err}"
    );
    assert!(
        warnings[0].contains("conversion value -40 is negative"),
        "{err}"
    );
    assert!(warnings[0].contains("kse-enricher"), "{err}");
    // The refund still counts in the report: 120 − 40 credited to email, 80 unattributed.
    assert_eq!(
        report["models"]["last_touch"]["email"]["value"],
        json!(80.0)
    );
    assert_eq!(report["unattributed"]["value"], json!(80.0));
}

#[test]
fn enrichment_plugin_that_cannot_be_loaded_is_a_diagnostic_at_its_setting() {
    let dir = tempfile::tempdir().expect("tempdir");
    let spec = refund_spec(dir.path(), "plugins/missing/plugin.toml");
    let data = dir.path().join("data.ndjson");
    let (out, records, _) = attribute(&[
        "--spec",
        spec.to_str().expect("utf-8"),
        "--input",
        data.to_str().expect("utf-8"),
    ]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("error[E601]"), "{err}");
    assert!(err.contains("refunds.toml:7:"), "{err}");
    assert!(err.contains("/attribution/enrichment/plugin"), "{err}");
    assert!(err.contains("plugins/missing/plugin.toml"), "{err}");
    assert!(records.is_empty());

    // A plugin of another world is refused at load too.
    kse_wasm();
    let other = repo_root().join("plugins/mapping-basics/plugin.toml");
    let spec = refund_spec(dir.path(), &other.display().to_string());
    let (out, _, _) = attribute(&[
        "--spec",
        spec.to_str().expect("utf-8"),
        "--input",
        data.to_str().expect("utf-8"),
    ]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains(
            "implements world `mapping-functions`; an enrichment plugin must implement `enricher`"
        ),
        "{err}"
    );
}

#[tokio::test]
async fn seeding_an_emulator_refuses_what_the_vendor_could_not_hold() {
    use switchyard_sandbox::{self as sandbox, SandboxOptions, Vendor};
    let hs = sandbox::start(Vendor::Hubspot, SandboxOptions::default())
        .await
        .expect("hubspot");
    let ok = json!({"id": "7", "properties": {"email": "a@x.com", "score": 5}});
    hs.seed("contact", std::slice::from_ref(&ok))
        .expect("seeds");
    // Stored as HubSpot stores it: string values, bookkeeping properties filled in.
    let stored = &hs.records("contacts")[0];
    assert_eq!(stored["properties"]["score"], "5");
    assert_eq!(stored["properties"]["hs_object_id"], "7");
    let err = hs
        .seed(
            "contact",
            &[json!({"id": "8", "properties": {"email": "A@x.com"}})],
        )
        .expect_err("duplicate e-mail");
    assert!(
        err.to_string()
            .contains("hubspot seed record 1 of `contact`: Contact already exists. Existing ID: 7"),
        "{err}"
    );
    let err = hs
        .seed("deal", &[json!({"id": "d-1", "properties": {}})])
        .expect_err("non-numeric id");
    assert!(err.to_string().contains("numeric string"), "{err}");
    hs.shutdown().await;

    let zd = sandbox::start(Vendor::Zendesk, SandboxOptions::default())
        .await
        .expect("zendesk");
    let err = zd
        .seed("tickets", &[json!({"id": 1})])
        .expect_err("unsupported");
    assert!(err.to_string().contains("not supported"), "{err}");
    zd.shutdown().await;
}

#[test]
fn operator_grants_reach_the_enrichment_plugin_for_the_spec_tenant() {
    kse_wasm();
    let dir = tempfile::tempdir().expect("tempdir");
    let grants = |tenant: &str| {
        let path = dir.path().join(format!("grants-{tenant}.toml"));
        // The grant names the enricher's wasm by its sha256.
        let sha = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(
            std::fs::read(kse_wasm()).expect("built"),
        ));
        let text = format!(
            "[host]\ncache_dir = \"{}\"\nwatch_ms = 0\n\n[[grant]]\nsha256 = \"{sha}\"\ntenants = [\"{tenant}\"]\nconfig = {{ high_value_threshold = 150 }}\n",
            dir.path().join("cache").display()
        );
        std::fs::write(&path, text).expect("write grants");
        path.display().to_string()
    };
    let tier = |records: &[Value], id: &str| {
        records
            .iter()
            .find(|r| r["record_id"] == id)
            .map(|r| r["kse_enhancement"]["conceptual_space"]["value_tier"].clone())
            .unwrap_or(Value::Null)
    };
    // A 199.00 payment: "medium" by default (high from 1000).
    let (out, records, _) = attribute(&["--spec", KSE_SPEC, "--input", HS_DATA]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(tier(&records, "stripe_payment_intent_pi_2"), "medium");
    // The operator grants the example's tenant (`acme`) a threshold of 150: "high".
    let acme = grants("acme");
    let (out, records, _) = attribute(&[
        "--spec",
        KSE_SPEC,
        "--input",
        HS_DATA,
        "--plugin-grants",
        &acme,
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(tier(&records, "stripe_payment_intent_pi_2"), "high");
    // A grant for another tenant does not apply.
    let other = grants("other");
    let (out, records, _) = attribute(&[
        "--spec",
        KSE_SPEC,
        "--input",
        HS_DATA,
        "--plugin-grants",
        &other,
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(tier(&records, "stripe_payment_intent_pi_2"), "medium");
}
