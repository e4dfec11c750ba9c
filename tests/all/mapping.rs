//! The mapping engine end to end: every seed example in mapping-specs/examples/ over the
//! sample records of tests/mapping/records.ndjson through `switchyard map` (golden files,
//! `BLESS=1` rewrites them), the library API against the CLI's fast path, compile
//! diagnostics, and property tests over arbitrary records.

use crate::cli::{repo_root, switchyard};
use proptest::prelude::*;
use serde_json::{Value, json};
use std::path::PathBuf;
use switchyard::diag::Severity;
use switchyard::mapping::{CompileEnv, CompiledMapping, MapContext, Scratch};
use switchyard::secrets::MemoryProvider;
use switchyard::spec::{ConnectorSpec, MappingSpec};

const NOW: &str = "2026-01-15T10:30:00Z";

fn examples() -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(repo_root().join("mapping-specs/examples"))
        .expect("examples folder")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "json" || e == "toml"))
        // Only mapping specs: the folder also holds attribution specs.
        .filter(|p| {
            switchyard::spec::SourceFile::read(p).is_ok_and(|s| {
                switchyard::spec::SpecKind::detect(&s.value)
                    == Some(switchyard::spec::SpecKind::Mapping)
            })
        })
        .collect();
    v.sort();
    v
}

fn golden(path: &PathBuf, actual: &str) {
    if std::env::var_os("BLESS").is_some() {
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        std::fs::write(path, actual).expect("bless");
        return;
    }
    let expected = std::fs::read_to_string(path)
        .unwrap_or_else(|_| panic!("missing {} (run with BLESS=1)", path.display()));
    if expected != actual {
        let (e, a): (Vec<&str>, Vec<&str>) = (expected.lines().collect(), actual.lines().collect());
        for (i, (x, y)) in e.iter().zip(a.iter()).enumerate() {
            assert_eq!(
                x,
                y,
                "{} line {} differs (BLESS=1 to update)",
                path.display(),
                i + 1
            );
        }
        assert_eq!(e.len(), a.len(), "{} line count differs", path.display());
    }
}

#[test]
fn seed_examples_map_sample_records_exactly() {
    let ex = examples();
    assert!(ex.len() >= 5, "{ex:?}");
    let records = repo_root().join("tests/mapping/records.ndjson");
    let n = std::fs::read_to_string(&records)
        .expect("records")
        .lines()
        .count();
    assert!(n >= 20, "{n} sample records");
    let tmp = tempfile::tempdir().expect("tmp");
    for spec in ex {
        let name = spec
            .file_stem()
            .expect("stem")
            .to_string_lossy()
            .to_string();
        let rejects = tmp.path().join(format!("{name}.rejects"));
        let out = switchyard()
            .args(["map", "--mapping"])
            .arg(&spec)
            .arg("--input")
            .arg(&records)
            .arg("--rejects")
            .arg(&rejects)
            .args(["--now", NOW])
            .output()
            .expect("runs");
        let stdout = String::from_utf8(out.stdout).expect("utf8 output");
        // Some sample records are meant to be rejected: exit 3.
        assert_eq!(
            out.status.code(),
            Some(3),
            "{name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        for line in stdout.lines() {
            let v: Value = serde_json::from_str(line).expect("every output line is JSON");
            assert!(
                v["objects"].is_object() && v["triggers"].is_array(),
                "{line}"
            );
        }
        let rej = std::fs::read_to_string(&rejects).expect("rejects");
        for line in rej.lines() {
            let v: Value = serde_json::from_str(line).expect("every reject line is JSON");
            assert!(v["line"].is_u64() && v["reason"].is_string(), "{line}");
        }
        let dir = repo_root().join("tests/mapping/expected");
        golden(&dir.join(format!("{name}.ndjson")), &stdout);
        golden(&dir.join(format!("{name}.rejects.ndjson")), &rej);
    }
}

#[test]
fn exit_codes_and_stdin() {
    let spec = repo_root().join("mapping-specs/examples/hubspot-contact.json");
    let mut child = switchyard()
        .args(["map", "--now", NOW, "--mapping"])
        .arg(&spec)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn");
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().expect("stdin");
        stdin
            .write_all(b"{\"email\": \"a@b.c\", \"ai_analysis\": {\"lead_score\": 90}}\n")
            .expect("write");
    }
    let out = child.wait_with_output().expect("waits");
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "{\"objects\":{\"contact\":{\"email\":\"a@b.c\",\"ai_lead_score\":90}},\"triggers\":[\"high_value_lead\"]}\n"
    );
    let tmp = tempfile::tempdir().expect("tmp");
    let bad = tmp.path().join("bad.json");
    std::fs::write(
        &bad,
        r#"{"spec_version": 1, "tenant": "t", "connector": "hubspot", "source": "callrail",
            "crm_config": {"type": "hubspot", "field_mappings": {"priority": {"type": "computed", "formula": "ai_analysis.lead_score >"}}}}"#,
    )
    .expect("write");
    let out = switchyard()
        .args(["map", "--mapping"])
        .arg(&bad)
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("E210") && err.contains("bad.json:2:"), "{err}");
}

fn connector(name: &str) -> ConnectorSpec {
    let text = std::fs::read_to_string(repo_root().join(format!("connector-specs/{name}.toml")))
        .expect("connector spec");
    toml::from_str(&text).expect("parses")
}

fn mapping(v: Value) -> MappingSpec {
    serde_json::from_value(v).expect("mapping spec")
}

fn compile_codes(spec: Value) -> Vec<(Severity, &'static str, String)> {
    let target_name = spec["connector"].as_str().expect("connector").to_string();
    let target = connector(&target_name);
    let source = connector("callrail");
    let m = mapping(spec);
    let env = CompileEnv {
        target: &target,
        source: Some(&source),
        plugins: None,
    };
    let (_, d) = switchyard::mapping::compile(&m, &env);
    d.0.into_iter()
        .map(|d| (d.severity, d.code, d.pointer))
        .collect()
}

fn hubspot(cfg: Value) -> Value {
    let mut c = json!({"type": "hubspot"});
    for (k, v) in cfg.as_object().expect("object") {
        c[k] = v.clone();
    }
    json!({"spec_version": 1, "tenant": "t", "connector": "hubspot", "source": "callrail",
           "lookups": {"project_value_map": {"kitchen": 1}}, "crm_config": c})
}

#[test]
fn compile_reports_each_problem_with_its_code_and_pointer() {
    let d = compile_codes(hubspot(json!({
        "api_token": "env:1BAD",
        "field_mappings": {
            "phone": "phone",
            "emial": "email",
            "estimated_value": "customer_name",
            "priority": {"type": "conditional", "conditions": [
                {"if": "ai_analysis.lead_score >", "then": "High"},
                {"if": "lowr(x) == 'a'", "then": "High"},
                {"if": "project_value_mapp[x]", "then": "High"},
                {"default": "Normal"}]},
            "deal_name": {"type": "template", "template": "{{#if x}}"},
            "website": {"type": "path", "path": "$.a[?("},
            "lifecyclestage": {"type": "literal", "value": "lead!"}
        },
        "custom_properties": [
            {"name": "phone", "value": "phone", "type": "string"},
            {"name": "ai_lead_score", "value": "ai_analysis.lead_score", "type": "bool"},
            {"name": "hs_lead_status", "value": "ai_analysis.urgency", "type": "enumeration"}
        ]
    })));
    let has = |code: &str, ptr: &str| d.iter().any(|(_, c, p)| *c == code && p == ptr);
    assert!(has("E206", "/crm_config/api_token"), "{d:#?}");
    assert!(has("W202", "/crm_config/field_mappings/emial"), "{d:#?}");
    assert!(
        has("E203", "/crm_config/field_mappings/estimated_value"),
        "{d:#?}"
    );
    assert!(
        has(
            "E210",
            "/crm_config/field_mappings/priority/conditions/0/if"
        ),
        "{d:#?}"
    );
    assert!(
        has(
            "E213",
            "/crm_config/field_mappings/priority/conditions/1/if"
        ),
        "{d:#?}"
    );
    assert!(
        has(
            "E205",
            "/crm_config/field_mappings/priority/conditions/2/if"
        ),
        "{d:#?}"
    );
    assert!(
        has(
            "N001",
            "/crm_config/field_mappings/priority/conditions/3/default"
        ),
        "{d:#?}"
    );
    assert!(
        has("E211", "/crm_config/field_mappings/deal_name/template"),
        "{d:#?}"
    );
    assert!(
        has("E212", "/crm_config/field_mappings/website/path"),
        "{d:#?}"
    );
    assert!(
        has("E204", "/crm_config/field_mappings/lifecyclestage"),
        "{d:#?}"
    );
    assert!(
        has("E222", "/crm_config/custom_properties/0/name"),
        "{d:#?}"
    );
    assert!(
        has("E203", "/crm_config/custom_properties/1/name"),
        "{d:#?}"
    );
    assert!(
        has("N002", "/crm_config/custom_properties/2/name"),
        "{d:#?}"
    );

    let d = compile_codes(
        json!({"spec_version": 1, "tenant": "t", "connector": "salesforce", "source": "callrail",
        "crm_config": {"type": "salesforce", "default_object": "leed",
            "duplicate_detection": {"match_fields": ["Email"]},
            "object_mappings": {"taks": {"Subject": "x"}, "task": {"Priority": "Urgent", "Custom": "source"}},
            "workflow_rules": {"r": {"condition": "true", "actions": ["fax_the_ceo"]}}}}),
    );
    let has = |code: &str, ptr: &str| d.iter().any(|(_, c, p)| *c == code && p == ptr);
    assert!(has("E223", "/crm_config/default_object"), "{d:#?}");
    assert!(has("E223", "/crm_config/object_mappings/taks"), "{d:#?}");
    assert!(
        has("E204", "/crm_config/object_mappings/task/Priority"),
        "{d:#?}"
    );
    assert!(
        has("W202", "/crm_config/object_mappings/task/Custom"),
        "{d:#?}"
    );
    assert!(
        has("W224", "/crm_config/duplicate_detection/match_fields/0"),
        "{d:#?}"
    );
    // The salesforce spec declares its actions (branch `connectors`): an unknown one is an
    // error there.
    assert!(
        has("E207", "/crm_config/workflow_rules/r/actions/0"),
        "{d:#?}"
    );
}

#[test]
fn unknown_actions_are_errors_when_the_connector_declares_actions() {
    let mut target = connector("hubspot");
    let action: switchyard::spec::connector::ActionSpec =
        serde_json::from_value(json!({"webhook": "https://example.invalid/hook"})).expect("action");
    target.actions.insert("send_notification".into(), action);
    let source = connector("callrail");
    let m = mapping(hubspot(
        json!({"workflow_triggers": {"t": {"condition": "true", "actions": ["send_notificaton"]}}}),
    ));
    let (_, d) = switchyard::mapping::compile(
        &m,
        &CompileEnv {
            target: &target,
            source: Some(&source),
            plugins: None,
        },
    );
    let e = d.0.iter().find(|d| d.code == "E207").expect("E207");
    assert_eq!(e.pointer, "/crm_config/workflow_triggers/t/actions/0");
    assert_eq!(e.hint.as_deref(), Some("did you mean `send_notification`?"));
}

fn compiled(example: &str) -> CompiledMapping {
    let text =
        std::fs::read_to_string(repo_root().join(format!("mapping-specs/examples/{example}.json")))
            .expect("example");
    let m: MappingSpec = serde_json::from_str(&text).expect("mapping");
    let target = connector(&m.connector);
    let source = connector("callrail");
    CompiledMapping::compile(
        &m,
        &CompileEnv {
            target: &target,
            source: Some(&source),
            plugins: None,
        },
    )
    .expect("compiles")
}

fn ctx(secrets: &MemoryProvider) -> MapContext<'_> {
    MapContext {
        now: NOW.parse().expect("now"),
        secrets,
        ext: None,
    }
}

fn line_output(plan: &CompiledMapping, line: &str, c: &MapContext) -> Option<Value> {
    let mut out = Vec::new();
    plan.apply_line(line, c, &mut Scratch::default(), &mut out)
        .ok()?;
    Some(serde_json::from_slice(&out).expect("output is JSON"))
}

fn value_output(plan: &CompiledMapping, v: &Value, c: &MapContext) -> Option<Value> {
    let m = plan.apply(v, c).ok()?;
    let triggers: Vec<&str> = m.triggers.iter().map(|t| t.name.as_str()).collect();
    Some(json!({"objects": m.objects, "triggers": triggers}))
}

#[test]
fn library_apply_agrees_with_the_line_fast_path() {
    let secrets = MemoryProvider::new();
    let c = ctx(&secrets);
    let records =
        std::fs::read_to_string(repo_root().join("tests/mapping/records.ndjson")).expect("records");
    for ex in [
        "hubspot-advanced",
        "hubspot-contact",
        "salesforce-lead",
        "pipedrive-person-deal",
        "custom-rest-contact",
    ] {
        let plan = compiled(ex);
        for line in records.lines().filter(|l| !l.trim().is_empty()) {
            let Ok(v) = serde_json::from_str::<Value>(line) else {
                assert!(
                    line_output(&plan, line, &c).is_none(),
                    "{ex}: invalid JSON must be rejected: {line}"
                );
                continue;
            };
            assert_eq!(
                line_output(&plan, line, &c),
                value_output(&plan, &v, &c),
                "{ex}: {line}"
            );
        }
    }
    let plan = compiled("hubspot-advanced");
    let m = plan
        .apply(
            &json!({"ai_analysis": {"lead_score": 81, "timeline": "immediate"}}),
            &c,
        )
        .expect("maps");
    assert_eq!(m.triggers[0].name, "high_value_lead");
    assert_eq!(
        m.triggers[0].actions,
        vec!["send_notification", "assign_owner"]
    );
    assert_eq!(m.objects["contact"]["follow_up_date"], json!("2026-01-16"));
    let e = plan
        .apply(&json!({"ai_analysis": {"project_type": "garage"}}), &c)
        .expect_err("rejects");
    assert_eq!(e.field.as_deref(), Some("contact.ai_project_type"));
    assert_eq!(e.pointer, "/crm_config/custom_properties/2/value");
    assert!(e.reason.contains("garage"), "{}", e.reason);
}

#[test]
fn compiled_mapping_is_shared_across_threads() {
    let plan = std::sync::Arc::new(compiled("hubspot-advanced"));
    let handles: Vec<_> = (0..4)
        .map(|i| {
            let plan = plan.clone();
            std::thread::spawn(move || {
                let secrets = MemoryProvider::new();
                let c = ctx(&secrets);
                let line =
                    format!("{{\"call_id\": \"T{i}\", \"ai_analysis\": {{\"lead_score\": 90}}}}");
                line_output(&plan, &line, &c).expect("maps")
            })
        })
        .collect();
    for (i, h) in handles.into_iter().enumerate() {
        let v = h.join().expect("thread");
        assert_eq!(
            v["objects"]["contact"]["lead_source_detail"],
            json!(format!("T{i}"))
        );
    }
}

fn plans() -> &'static [CompiledMapping] {
    static PLANS: std::sync::OnceLock<Vec<CompiledMapping>> = std::sync::OnceLock::new();
    PLANS.get_or_init(|| {
        [
            "hubspot-advanced",
            "pipedrive-person-deal",
            "custom-rest-contact",
            "salesforce-lead",
        ]
        .into_iter()
        .map(compiled)
        .collect()
    })
}

fn arb_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|i| json!(i)),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(|f| json!(f)),
        ".{0,12}".prop_map(Value::String),
        prop_oneof![
            Just("kitchen"),
            Just("immediate"),
            Just("high"),
            Just("85"),
            Just("2026-01-01")
        ]
        .prop_map(|s| Value::String(s.into())),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::vec((arb_key(), inner), 0..6)
                .prop_map(|kv| Value::Object(kv.into_iter().collect())),
        ]
    })
}

fn arb_key() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("ai_analysis".to_string()),
        Just("lead_score".to_string()),
        Just("project_type".to_string()),
        Just("timeline".to_string()),
        Just("urgency".to_string()),
        Just("customer_name".to_string()),
        Just("call_details".to_string()),
        Just("duration".to_string()),
        Just("email".to_string()),
        "[a-z\"\\\\é]{0,6}",
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, .. ProptestConfig::default() })]

    #[test]
    fn arbitrary_records_never_panic_and_always_give_json(record in prop::collection::vec((arb_key(), arb_json()), 0..8)) {
        let secrets = MemoryProvider::new();
        let c = ctx(&secrets);
        let v = Value::Object(record.into_iter().collect());
        let line = serde_json::to_string(&v).expect("json");
        for plan in plans() {
            let mut out = Vec::new();
            if plan.apply_line(&line, &c, &mut Scratch::default(), &mut out).is_ok() {
                prop_assert!(out.ends_with(b"\n"));
                prop_assert_eq!(out.iter().filter(|b| **b == b'\n').count(), 1);
                let parsed: Result<Value, _> = serde_json::from_slice(&out);
                prop_assert!(parsed.is_ok(), "invalid JSON: {}", String::from_utf8_lossy(&out));
            }
            prop_assert_eq!(line_output(plan, &line, &c), value_output(plan, &v, &c));
        }
    }

    #[test]
    fn arbitrary_text_lines_never_panic(line in ".{0,80}") {
        let secrets = MemoryProvider::new();
        let c = ctx(&secrets);
        let plan = &plans()[0];
        let mut out = Vec::new();
        let ok = plan.apply_line(&line, &c, &mut Scratch::default(), &mut out).is_ok();
        if ok && !out.is_empty() {
            prop_assert!(serde_json::from_slice::<Value>(&out).is_ok());
        }
        let is_obj = serde_json::from_str::<Value>(&line).is_ok_and(|v| v.is_object());
        if !line.trim().is_empty() && !is_obj {
            prop_assert!(!ok, "accepted a line serde_json rejects: {:?}", line);
        }
    }
}

#[test]
fn helper_templates_jsonpaths_defaults_and_runtime_errors() {
    let target = connector("hubspot");
    let source = connector("callrail");
    let m = mapping(hubspot(json!({
        "field_mappings": {
            "company": {"type": "template", "template": "{{upper customer_name}}{{#if (gt ai_analysis.lead_score 80)}} (hot){{/if}}"},
            "website": "$.ai_analysis.tags[1]",
            "zip": {"type": "path", "path": "customer_zip", "default": "00000"},
            "jobtitle": "computed:concat(firstName(customer_name), ' / ', lastName(customer_name))",
            "hs_lead_score": {"type": "computed", "formula": "ai_analysis.lead_score / call_details.duration"},
            "mobilephone": {"type": "computed", "formula": "normalizePhone(customer_phone)"}
        }
    })));
    let plan = CompiledMapping::compile(
        &m,
        &CompileEnv {
            target: &target,
            source: Some(&source),
            plugins: None,
        },
    )
    .expect("compiles");
    let secrets = MemoryProvider::new();
    let c = ctx(&secrets);
    let rec = json!({"customer_name": "Zoë \"Z\" Núñez", "customer_phone": "(202) 555-0143",
                     "ai_analysis": {"lead_score": 90, "tags": ["a", "b\nc"]}, "call_details": {"duration": 4}});
    let line = serde_json::to_string(&rec).expect("json");
    let out = line_output(&plan, &line, &c).expect("maps");
    assert_eq!(out, value_output(&plan, &rec, &c).expect("maps"));
    assert_eq!(
        out["objects"]["contact"],
        json!({"company": "ZOË \"Z\" NÚÑEZ (hot)", "website": "b\nc", "zip": "00000",
               "jobtitle": "Zoë / \"Z\" Núñez", "hs_lead_score": 22.5, "mobilephone": "+12025550143"})
    );
    let zero = json!({"ai_analysis": {"lead_score": 90}, "call_details": {"duration": 0}});
    let e = plan.apply(&zero, &c).expect_err("division by zero rejects");
    assert_eq!(e.field.as_deref(), Some("contact.hs_lead_score"));
    assert_eq!(
        e.pointer,
        "/crm_config/field_mappings/hs_lead_score/formula"
    );
    assert!(e.reason.contains("division by zero"), "{}", e.reason);
}

/// Hostile expressions of each shape that used to abort the process with a stack overflow
/// (exit 134, no file, no line).
fn hostile_expressions() -> Vec<(&'static str, String)> {
    vec![
        (
            "7,000 parentheses",
            format!("{}x{}", "(".repeat(7_000), ")".repeat(7_000)),
        ),
        ("100k `!`", format!("{}x", "!".repeat(100_000))),
        ("100k `- `", format!("{}1", "- ".repeat(100_000))),
        (
            "7,000 nested calls",
            format!("{}x{}", "lower(".repeat(7_000), ")".repeat(7_000)),
        ),
    ]
}

#[test]
fn deep_expressions_are_a_located_diagnostic_not_a_stack_overflow() {
    let tmp = tempfile::tempdir().expect("tmp");
    let input = tmp.path().join("in.ndjson");
    std::fs::write(
        &input,
        "{\"x\": 1, \"ai_analysis\": {\"lead_score\": 90}}\n",
    )
    .expect("write");
    for (what, src) in hostile_expressions() {
        // A trigger condition and a computed field, on their own lines so the position is
        // checkable.
        for (ptr, spec) in [
            (
                "/crm_config/workflow_triggers/t/condition",
                json!({"type": "hubspot", "workflow_triggers": {"t": {"condition": src, "actions": ["send_notification"]}}}),
            ),
            (
                "/crm_config/field_mappings/priority/formula",
                json!({"type": "hubspot", "field_mappings": {"priority": {"type": "computed", "formula": src}}}),
            ),
        ] {
            let cfg = serde_json::to_string(&spec).expect("json");
            let file = tmp.path().join("deep.json");
            std::fs::write(
                &file,
                format!(
                    "{{\n\"spec_version\": 1, \"tenant\": \"t\", \"connector\": \"hubspot\",\n\"source\": \"callrail\",\n\"crm_config\": {cfg}}}\n"
                ),
            )
            .expect("write");
            let out = switchyard()
                .args(["validate", "connector-specs"])
                .arg(&file)
                .output()
                .expect("runs");
            let stdout = String::from_utf8_lossy(&out.stdout);
            assert_eq!(out.status.code(), Some(1), "{what}: validate\n{stdout}");
            assert!(
                stdout.contains("error[E230]")
                    && stdout.contains("deep.json:4:")
                    && stdout.contains(ptr),
                "{what}: {stdout}"
            );
            // The message quotes an excerpt, not the whole expression.
            assert!(stdout.len() < 2_000, "{what}: {} bytes", stdout.len());
            let out = switchyard()
                .args(["map", "--mapping"])
                .arg(&file)
                .arg("--input")
                .arg(&input)
                .output()
                .expect("runs");
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(1), "{what}: map\n{stderr}");
            assert!(
                stderr.contains("error[E230]") && stderr.contains("deep.json:4:"),
                "{what}: {stderr}"
            );
            let out = switchyard()
                .args(["run", "--dry-run", "--mapping"])
                .arg(&file)
                .arg("--input")
                .arg(&input)
                .arg("--store")
                .arg(tmp.path().join("store.sqlite"))
                .output()
                .expect("runs");
            let stderr = String::from_utf8_lossy(&out.stderr);
            // `run` refuses a spec that does not compile with its own exit code; what matters
            // here is that it exits rather than dies from a signal.
            assert!(
                out.status.code().is_some_and(|c| c != 0) && stderr.contains("E230"),
                "{what}: run {:?}\n{stderr}",
                out.status
            );
        }
        // Attribution expressions are the same dialect.
        let file = tmp.path().join("deep-attribution.toml");
        std::fs::write(
            &file,
            format!(
                "spec_version = 1\n[attribution]\nname = \"deep\"\ntenant = \"acme\"\n\n[[attribution.conversions]]\nname = \"won\"\nsource = \"hubspot\"\nobject = \"deal\"\ncondition = {}\nvalue = \"amount\"\ntime = \"closedate\"\n",
                serde_json::to_string(&src).expect("json")
            ),
        )
        .expect("write");
        let out = switchyard()
            .args(["validate"])
            .arg(&file)
            .output()
            .expect("runs");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert_eq!(out.status.code(), Some(1), "{what}: attribution\n{stdout}");
        assert!(
            stdout.contains("E600")
                && stdout.contains("nests too deep")
                && stdout.contains("/attribution/conversions/0/condition")
                && stdout.len() < 2_000,
            "{what}: {stdout}"
        );
    }
}

#[test]
fn a_template_of_200k_placeholders_is_refused_within_seconds() {
    // 40k `{{x}}` took 27 s to compile inside `handlebars` (quadratic); 200k never finished.
    let tmp = tempfile::tempdir().expect("tmp");
    let file = tmp.path().join("big.json");
    let template = "{{customer_name}}".repeat(200_000);
    let spec = json!({"spec_version": 1, "tenant": "t", "connector": "hubspot", "source": "callrail",
        "crm_config": {"type": "hubspot", "field_mappings": {"dealname": {"type": "template", "template": template}}}});
    std::fs::write(&file, serde_json::to_string_pretty(&spec).expect("json")).expect("write");
    let input = tmp.path().join("in.ndjson");
    std::fs::write(&input, "{\"customer_name\": \"Ada\"}\n").expect("write");
    let started = std::time::Instant::now();
    let out = switchyard()
        .args(["validate", "connector-specs"])
        .arg(&file)
        .output()
        .expect("runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains("error[E231]")
            && stdout.contains("big.json:11:")
            && stdout.contains("/crm_config/field_mappings/dealname/template"),
        "{stdout}"
    );
    let out = switchyard()
        .args(["map", "--mapping"])
        .arg(&file)
        .arg("--input")
        .arg(&input)
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("E231"));
    // Generous: both commands take well under a second each in a debug build.
    assert!(
        started.elapsed() < std::time::Duration::from_secs(20),
        "{:?}",
        started.elapsed()
    );
}

#[test]
fn a_number_too_large_for_a_float_rejects_the_record_the_same_way_on_both_paths() {
    // `1e400` in a record was a null field on the scanner path and "invalid JSON" on the
    // parsing path (helper templates, JSONPath) and in `run`. Now: one rule, one reason.
    let secrets = MemoryProvider::new();
    let c = ctx(&secrets);
    let plain = json!({"type": "hubspot", "field_mappings": {"email": "email", "amount": "call_details.duration"}});
    let helper = json!({"type": "hubspot", "field_mappings": {"email": "email", "amount": "call_details.duration",
        "firstname": {"type": "template", "template": "{{upper customer_name}}"}}});
    let big = "9".repeat(400);
    let lines = [
        (
            r#"{"email": "a@b.c", "call_details": {"duration": 1e400}}"#.to_string(),
            "number at `call_details.duration` (column 49)",
        ),
        // A field the mapping does not read is judged the same way.
        (
            format!(r#"{{"email": "a@b.c", "other": [1, {big}]}}"#),
            "number at `other.1` (column 33)",
        ),
    ];
    for cfg in [plain, helper] {
        let m = mapping(hubspot(cfg));
        let target = connector("hubspot");
        let source = connector("callrail");
        let plan = CompiledMapping::compile(
            &m,
            &CompileEnv {
                target: &target,
                source: Some(&source),
                plugins: None,
            },
        )
        .expect("compiles");
        for (line, want) in &lines {
            let mut out = Vec::new();
            let e = plan
                .apply_line(line, &c, &mut Scratch::default(), &mut out)
                .expect_err("rejected");
            assert!(
                e.reason.starts_with(want) && e.reason.contains("does not fit a 64-bit float"),
                "{}",
                e.reason
            );
            assert!(out.is_empty());
            let parsed = switchyard::mapping::parse_record(line).expect_err("rejected");
            assert_eq!(parsed.reason, e.reason, "run's parse and map agree");
        }
        let mut out = Vec::new();
        plan.apply_line(
            r#"{"email": "a@b.c", "call_details": {"duration": 1e-400}}"#,
            &c,
            &mut Scratch::default(),
            &mut out,
        )
        .expect("a tiny number is 0");
    }
    // End to end: the line number and the field are in the rejects file; other lines map.
    let tmp = tempfile::tempdir().expect("tmp");
    let input = tmp.path().join("in.ndjson");
    std::fs::write(
        &input,
        format!(
            "{{\"email\": \"a@b.c\"}}\n{}\n{{\"email\": \"d@e.f\"}}\n",
            lines[0].0
        ),
    )
    .expect("write");
    let rejects = tmp.path().join("rejects.ndjson");
    let out = switchyard()
        .args(["map", "--now", NOW, "--mapping"])
        .arg(repo_root().join("mapping-specs/examples/hubspot-contact.json"))
        .arg("--input")
        .arg(&input)
        .arg("--rejects")
        .arg(&rejects)
        .output()
        .expect("runs");
    assert_eq!(String::from_utf8_lossy(&out.stdout).lines().count(), 2);
    let rej: Value =
        serde_json::from_str(std::fs::read_to_string(&rejects).expect("rejects").trim())
            .expect("one reject");
    assert_eq!(rej["line"], 2);
    assert!(
        rej["reason"]
            .as_str()
            .is_some_and(|r| r.contains("`call_details.duration`")),
        "{rej}"
    );
}

#[test]
fn an_endless_line_is_rejected_without_being_held_in_memory() {
    // `map` read a whole line into memory whatever its length: one line without a newline
    // could exhaust memory. Now a line longer than MAX_RECORD_BYTES is a rejected record.
    let plan = compiled("hubspot-contact");
    let secrets = MemoryProvider::new();
    let mut input = Vec::new();
    input.extend_from_slice(b"{\"email\": \"a@b.c\"}\n{\"email\": \"");
    input.resize(input.len() + switchyard::mapping::MAX_RECORD_BYTES, b'x');
    input.extend_from_slice(b"\"}\n{\"email\": \"d@e.f\"}");
    let (mut out, mut rej) = (Vec::new(), Vec::new());
    let rejected =
        switchyard::mapping::map_stream(&plan, &ctx(&secrets), &input[..], &mut out, &mut rej)
            .expect("io");
    assert_eq!(rejected, 1);
    assert_eq!(String::from_utf8_lossy(&out).lines().count(), 2);
    let r: Value = serde_json::from_slice(&rej).expect("one reject");
    assert_eq!(r["line"], 2);
    assert_eq!(r["reason"], "the line is longer than 16 MiB");
}
