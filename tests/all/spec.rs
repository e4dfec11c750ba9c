//! The spec model as a user meets it: TOML and JSON mean the same, unknown keys are reported at
//! their line wherever they are, the committed schemas are current, and the CLI's formats and
//! exit codes.

use crate::cli::{repo_root, switchyard};
use serde_json::Value;
use std::path::PathBuf;
use switchyard::spec::{self, SourceFile, SpecKind, SyntaxFormat, schema};

fn repo_specs() -> Vec<PathBuf> {
    let root = repo_root();
    spec::collect_files(&[root.join("connector-specs"), root.join("mapping-specs")])
        .expect("spec folders")
}

fn load_typed(path: &std::path::Path, text: String, format: SyntaxFormat) -> spec::Spec {
    let src = SourceFile::parse(path, text, format)
        .unwrap_or_else(|d| panic!("{}: {d:?}", path.display()));
    let (loaded, diags) = spec::load_source(src);
    assert!(!diags.has_errors(), "{}: {diags}", path.display());
    loaded.spec.expect("typed")
}

#[test]
fn toml_and_json_forms_of_every_repo_spec_load_to_equal_values() {
    let specs = repo_specs();
    assert!(specs.len() >= 5);
    for path in specs {
        let src = SourceFile::read(&path).unwrap_or_else(|_| panic!("{}", path.display()));
        let original = load_typed(&path, src.text.clone(), src.format);
        let (other_text, other_format) = match src.format {
            SyntaxFormat::Json => (
                toml::to_string(&src.value).expect("to toml"),
                SyntaxFormat::Toml,
            ),
            SyntaxFormat::Toml => (
                serde_json::to_string_pretty(&src.value).expect("to json"),
                SyntaxFormat::Json,
            ),
        };
        let converted = load_typed(&path, other_text, other_format);
        assert_eq!(
            original,
            converted,
            "{} differs between TOML and JSON",
            path.display()
        );
    }
}

#[test]
fn the_committed_toml_mapping_example_equals_its_json_twin() {
    let root = repo_root();
    let j = root.join("mapping-specs/examples/hubspot-contact.json");
    let t = root.join("tests/ui/mapping/valid/hubspot-contact.toml");
    let js = load_typed(
        &j,
        std::fs::read_to_string(&j).expect("json"),
        SyntaxFormat::Json,
    );
    let ts = load_typed(
        &t,
        std::fs::read_to_string(&t).expect("toml"),
        SyntaxFormat::Toml,
    );
    assert_eq!(js, ts);
}

/// Every object pointer of a JSON value.
fn object_pointers(v: &Value, at: String, out: &mut Vec<String>) {
    match v {
        Value::Object(m) => {
            out.push(at.clone());
            for (k, x) in m {
                object_pointers(
                    x,
                    format!("{at}/{}", switchyard::diag::escape_pointer_token(k)),
                    out,
                );
            }
        }
        Value::Array(a) => {
            for (i, x) in a.iter().enumerate() {
                object_pointers(x, format!("{at}/{i}"), out);
            }
        }
        _ => {}
    }
}

#[test]
fn an_unknown_key_anywhere_is_reported_at_its_line() {
    const KEY: &str = "zz_unknown_key";
    let mut closed_objects = 0;
    for path in repo_specs() {
        let src = SourceFile::read(&path).expect("read");
        let mut ptrs = Vec::new();
        object_pointers(&src.value, String::new(), &mut ptrs);
        for ptr in ptrs {
            let mut doc = src.value.clone();
            let Some(Value::Object(m)) = doc.pointer_mut(&ptr) else {
                continue;
            };
            m.insert(KEY.into(), Value::String("x".into()));
            for format in [SyntaxFormat::Json, SyntaxFormat::Toml] {
                let text = match format {
                    SyntaxFormat::Json => serde_json::to_string_pretty(&doc).expect("json"),
                    SyntaxFormat::Toml => toml::to_string(&doc).expect("toml"),
                };
                let expected_line = text
                    .lines()
                    .position(|l| l.contains(KEY))
                    .expect("key is in the text")
                    + 1;
                let parsed = SourceFile::parse(&path, text, format).expect("parses");
                let (_, diags) = spec::load_source(parsed);
                let unknown: Vec<_> = diags.0.iter().filter(|d| d.code == "E100").collect();
                if unknown.is_empty() {
                    // A free-form map (field mappings, catalogs, lookups): the key is a new entry.
                    continue;
                }
                closed_objects += 1;
                assert_eq!(
                    unknown.len(),
                    1,
                    "{} {ptr} {format:?}: {diags}",
                    path.display()
                );
                assert_eq!(
                    unknown[0].pointer,
                    format!("{ptr}/{KEY}"),
                    "{} {format:?}",
                    path.display()
                );
                assert_eq!(
                    unknown[0].line,
                    expected_line,
                    "{} {ptr} {format:?}: {diags}",
                    path.display()
                );
            }
        }
    }
    assert!(
        closed_objects > 50,
        "only {closed_objects} closed objects exercised"
    );
}

#[test]
fn committed_schemas_are_current() {
    for kind in SpecKind::ALL {
        let path = repo_root().join(format!("schemas/{kind}.schema.json"));
        let committed = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            committed == schema::schema_text(kind),
            "{} is stale: run `cargo run -q -- schema {kind} > schemas/{kind}.schema.json`",
            path.display()
        );
    }
}

#[test]
fn every_schema_property_has_a_description() {
    fn walk(v: &Value, at: &str, missing: &mut Vec<String>) {
        if let Some(props) = v.get("properties").and_then(|p| p.as_object()) {
            for (k, p) in props {
                let described = p.get("description").is_some()
                    || p.get("$ref").is_some() && p.get("description").is_some()
                    || p.get("const").is_some();
                if !described {
                    missing.push(format!("{at}/properties/{k}"));
                }
            }
        }
        match v {
            Value::Object(m) => m
                .iter()
                .for_each(|(k, x)| walk(x, &format!("{at}/{k}"), missing)),
            Value::Array(a) => a
                .iter()
                .enumerate()
                .for_each(|(i, x)| walk(x, &format!("{at}/{i}"), missing)),
            _ => {}
        }
    }
    for kind in SpecKind::ALL {
        let mut missing = Vec::new();
        walk(&schema::schema_for(kind), "", &mut missing);
        assert!(
            missing.is_empty(),
            "{kind}: properties without a description: {missing:?}"
        );
    }
}

#[test]
fn schema_command_prints_draft_2020_12() {
    let out = switchyard()
        .args(["schema", "mapping"])
        .output()
        .expect("runs");
    assert!(out.status.success());
    let v: Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(v["$schema"], "https://json-schema.org/draft/2020-12/schema");
    assert!(v["properties"]["crm_config"].is_object());
}

#[test]
fn validate_exit_codes_and_formats() {
    let bad = "tests/ui/mapping/invalid/crm-config-typo.json";
    // Human: exit 1, file:line:col, pointer, code and hint.
    let out = switchyard()
        .args(["validate", "connector-specs", bad])
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("error[E100]: unknown key `feild_mappings`"),
        "{text}"
    );
    assert!(
        text.contains(&format!("--> {bad}:5:5 (at /crm_config/feild_mappings)")),
        "{text}"
    );
    assert!(text.contains("did you mean `field_mappings`?"), "{text}");

    // JSON.
    let out = switchyard()
        .args(["validate", "--format", "json", "connector-specs", bad])
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(1));
    let v: Value = serde_json::from_slice(&out.stdout).expect("json output");
    let d = &v["diagnostics"][0];
    assert_eq!(d["code"], "E100");
    assert_eq!(d["file"], bad);
    assert_eq!(
        (d["line"].as_u64(), d["column"].as_u64()),
        (Some(5), Some(5))
    );
    assert_eq!(d["pointer"], "/crm_config/feild_mappings");
    assert_eq!(v["summary"]["errors"], 1);

    // GitHub annotations.
    let out = switchyard()
        .args(["validate", "--format", "github", "connector-specs", bad])
        .output()
        .expect("runs");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.starts_with(&format!(
            "::error file={bad},line=5,col=5,title=E100::unknown key `feild_mappings`"
        )),
        "{text}"
    );

    // Usage / I/O errors: exit 2.
    let out = switchyard()
        .args(["validate", "does/not/exist"])
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("does/not/exist"));
    let out = switchyard()
        .args(["validate", "--format", "yaml", "connector-specs"])
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(2));

    // Valid: exit 0.
    let out = switchyard()
        .args(["validate", "connector-specs", "mapping-specs"])
        .output()
        .expect("runs");
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

#[test]
fn warnings_fail_only_with_deny_warnings() {
    let dir = tempfile::tempdir().expect("tmp");
    let f = dir.path().join("w.toml");
    std::fs::write(
        &f,
        "spec_version = 1\n[connector]\nname = \"warned\"\nkind = \"crm\"\nbase_url = \"https://x.example\"\n[objects.contact.fields]\ntier = { type = \"string\", options = [\"a\"] }\n",
    )
    .expect("write");
    let out = switchyard()
        .args(["validate"])
        .arg(&f)
        .output()
        .expect("runs");
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("warning[W220]"));
    let out = switchyard()
        .args(["validate", "--deny-warnings"])
        .arg(&f)
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(1));
}

#[test]
fn a_connector_template_of_200k_placeholders_is_refused_by_validate_and_run() {
    // Connector request templates go through the same compiler and limits as mapping ones;
    // `run` compiles connector templates without `validate`, so it must refuse them too.
    let tmp = tempfile::tempdir().expect("tmp");
    let specs = tmp.path().join("connectors");
    std::fs::create_dir(&specs).expect("mkdir");
    let hubspot =
        std::fs::read_to_string(repo_root().join("connector-specs/hubspot.toml")).expect("read");
    let big = hubspot.replacen(
        "path = \"/crm/v3/objects/contacts/{{id}}\"",
        &format!(
            "path = \"/crm/v3/objects/contacts/{}\"",
            "{{id}}".repeat(200_000)
        ),
        1,
    );
    assert_ne!(big, hubspot, "the hubspot spec changed: adjust the test");
    std::fs::write(specs.join("hubspot.toml"), &big).expect("write");
    std::fs::copy(
        repo_root().join("connector-specs/callrail.toml"),
        specs.join("callrail.toml"),
    )
    .expect("copy");
    let started = std::time::Instant::now();
    let out = switchyard()
        .arg("validate")
        .arg(&specs)
        .output()
        .expect("runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    // The diagnostic points at the line of the over-long template.
    let line = big
        .lines()
        .position(|l| l.starts_with("path = \"/crm/v3/objects/contacts/{{id}}{{id}}"))
        .expect("the big template is in the spec")
        + 1;
    assert!(
        stdout.contains("error[E231]") && stdout.contains(&format!("hubspot.toml:{line}:")),
        "{stdout}"
    );
    assert!(stdout.len() < 4_000, "{} bytes", stdout.len());
    let input = tmp.path().join("in.ndjson");
    std::fs::write(&input, "{\"email\": \"a@b.c\"}\n").expect("write");
    let out = switchyard()
        .args(["run", "--dry-run", "--mapping"])
        .arg(repo_root().join("mapping-specs/examples/hubspot-contact.json"))
        .arg("--connectors")
        .arg(&specs)
        .arg("--input")
        .arg(&input)
        .arg("--store")
        .arg(tmp.path().join("store.sqlite"))
        .output()
        .expect("runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.code().is_some_and(|c| c != 0)
            && stderr.contains("at most 65536")
            && stderr.len() < 2_000,
        "{:?}\n{}",
        out.status,
        &stderr[..stderr.len().min(2_000)]
    );
    assert!(
        started.elapsed() < std::time::Duration::from_secs(20),
        "{:?}",
        started.elapsed()
    );
}
