//! The `switchyard` binary as a user runs it.

use std::path::{Path, PathBuf};
use std::process::Command;

pub fn repo_root() -> PathBuf {
    // The test binary belongs to engine/cli; the repository is two folders up.
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .map(Path::to_path_buf)
        .unwrap_or_default()
}

pub fn switchyard() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_switchyard"));
    c.current_dir(repo_root());
    c
}

#[test]
fn every_spec_in_the_repo_validates() {
    let out = switchyard()
        .args(["validate", "connector-specs", "mapping-specs"])
        .output()
        .expect("runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "validate failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("valid:"), "{stdout}");
}

/// Piping output into `head` used to panic (exit 101) on the broken pipe: a closed stdout ends
/// every command quietly.
#[test]
fn a_closed_stdout_ends_commands_quietly() {
    let big_input = std::env::temp_dir().join(format!("sy-closed-{}.ndjson", std::process::id()));
    let line =
        std::fs::read_to_string(repo_root().join("mapping-specs/examples/data/calls.ndjson"))
            .expect("sample")
            .lines()
            .next()
            .expect("a line")
            .to_string();
    std::fs::write(&big_input, format!("{line}\n").repeat(20_000)).expect("write");
    let input = big_input.display().to_string();
    let cases: Vec<Vec<&str>> = vec![
        vec!["schema", "connector"],
        vec!["validate", "connector-specs", "mapping-specs"],
        vec![
            "map",
            "--mapping",
            "mapping-specs/examples/hubspot-advanced.json",
            "--input",
            &input,
        ],
        vec![
            "run",
            "--dry-run",
            "--mapping",
            "mapping-specs/examples/salesforce-lead.json",
            "--input",
            "mapping-specs/examples/data/calls.ndjson",
        ],
    ];
    for args in cases {
        let mut child = switchyard()
            .args(&args)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("spawns");
        // The reader goes away at once, as `head -0` would.
        drop(child.stdout.take());
        let out = child.wait_with_output().expect("waits");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
        assert_ne!(out.status.code(), Some(101), "{args:?}: {stderr}");
        assert!(!stderr.contains("Broken pipe"), "{args:?}: {stderr}");
    }
    let _ = std::fs::remove_file(&big_input);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_streams_and_moves_its_cursor_only_after_every_record_was_taken() {
    use serde_json::{Value, json};
    use std::io::{BufRead, BufReader};
    use switchyard_sandbox::{SandboxOptions, Vendor};
    let emu = switchyard_sandbox::start(Vendor::Hubspot, SandboxOptions::default())
        .await
        .expect("emulator");
    let contacts: Vec<Value> = (0..250)
        .map(|i| json!({"id": format!("{}", 1000 + i), "properties": {"email": format!("p{i}@example.com")}}))
        .collect();
    emu.seed("contacts", &contacts).expect("seed");
    let dir = tempfile::tempdir().expect("dir");
    let config = dir.path().join("tenant.json");
    std::fs::write(
        &config,
        json!({"spec_version": 1, "tenant": "t1", "connector": "hubspot",
               "crm_config": {"type": "hubspot",
                              "api_token": emu.credentials().get("access_token").expect("token"),
                              "settings": {"base_url": emu.base_url()},
                              "field_mappings": {"email": "email"}}})
        .to_string(),
    )
    .expect("write");
    let store = dir.path().join("s.sqlite");
    let sync = || {
        let mut c = switchyard();
        c.args([
            "sync",
            "--connector",
            "hubspot",
            "--object",
            "contact",
            "--tenant-config",
        ])
        .arg(&config)
        .arg("--store")
        .arg(&store);
        c
    };
    // A consumer that stops after one record (`| head -1`): the command ends quietly, and the
    // cursor stays, so nothing is skipped next time.
    let mut child = sync()
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("starts");
    let mut first = String::new();
    BufReader::new(child.stdout.take().expect("stdout"))
        .read_line(&mut first)
        .expect("one record");
    let out = child.wait_with_output().expect("ends");
    assert!(first.contains("@example.com"), "{first}");
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!String::from_utf8_lossy(&out.stderr).contains("panicked"));

    // The whole pull: every record, then the cursor moves.
    let out = sync().output().expect("runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let lines = String::from_utf8_lossy(&out.stdout).lines().count();
    assert_eq!(lines, 250, "{stderr}");
    assert!(
        stderr.contains("250 records") && stderr.contains("cursor now"),
        "{stderr}"
    );

    // Nothing changed since: nothing again.
    let out = sync().output().expect("runs");
    assert_eq!(String::from_utf8_lossy(&out.stdout).lines().count(), 0);
    emu.shutdown().await;
}

/// `switchyard test` runs the tests written in the example specs; a failing test shows each
/// difference under the test's line, and exits 1.
#[test]
fn spec_tests_run_and_a_failure_shows_the_difference_at_its_line() {
    let out = switchyard()
        .args(["test", "mapping-specs"])
        .output()
        .expect("runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("PASS mapping-specs/examples/hubspot-advanced.json:"),
        "{stdout}"
    );
    assert!(!stdout.contains("FAIL"), "{stdout}");

    // The same spec with one expectation changed: the failure names the field, both values,
    // and the line of the test in the file.
    let dir = tempfile::tempdir().expect("dir");
    let text =
        std::fs::read_to_string(repo_root().join("mapping-specs/examples/hubspot-advanced.json"))
            .expect("spec");
    let changed = text.replacen(
        r#""estimated_value": 15000"#,
        r#""estimated_value": 15001"#,
        1,
    );
    assert_ne!(
        changed, text,
        "the example carries the expectation this test changes"
    );
    let spec = dir.path().join("route.json");
    std::fs::write(&spec, &changed).expect("write");
    let line = changed
        .lines()
        .position(|l| l.contains("15001"))
        .expect("line")
        + 1;
    let out = switchyard()
        .args(["test", "--format", "human"])
        .arg(&spec)
        .output()
        .expect("runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains(&format!("FAIL {}:{line}:5", spec.display())),
        "{stdout}"
    );
    assert!(
        stdout.contains("/objects/contact/estimated_value"),
        "{stdout}"
    );
    assert!(
        stdout.contains("expected: 15001") && stdout.contains("actual:   15000"),
        "{stdout}"
    );
    assert!(stdout.contains("4 tests: 3 passed, 1 failed"), "{stdout}");

    // JSON output and --filter.
    let out = switchyard()
        .args(["test", "--format", "json", "--filter", "hot lead"])
        .arg(&spec)
        .output()
        .expect("runs");
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(doc["summary"]["tests"], 1, "{doc}");
    assert_eq!(doc["summary"]["failed"], 1, "{doc}");
    let m = &doc["specs"][0]["cases"][0]["mismatches"][0];
    assert_eq!(m["at"], "/objects/contact/estimated_value");
    assert_eq!(
        (m["expected"].as_f64(), m["actual"].as_f64()),
        (Some(15001.0), Some(15000.0))
    );

    // A spec whose tests cannot run: their diagnostics, exit 1.
    let out = switchyard()
        .args(["test", "tests/ui/mapping-semantic/invalid/spec-tests.json"])
        .output()
        .expect("runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("E250") && stderr.contains("E252"),
        "{stderr}"
    );
}

/// A new user's loop: `switchyard init <connector>` writes a spec, samples and a test; the test
/// passes, the spec validates without a warning, and `run --sandbox` delivers every sample to
/// the connector's emulator.
#[test]
fn init_scaffolds_a_route_that_tests_validates_and_delivers_to_the_emulator() {
    let dir = tempfile::tempdir().expect("dir");
    for connector in ["hubspot", "salesforce", "pipedrive", "zendesk", "stripe"] {
        let route = dir.path().join(connector);
        let out = switchyard()
            .args(["init", connector, "--dir"])
            .arg(&route)
            .output()
            .expect("runs");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{connector}: {stdout}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(stdout.contains("--sandbox"), "{connector}: {stdout}");
        let spec = route.join("route.json");
        let data = route.join("data/sample.ndjson");

        let out = switchyard().arg("test").arg(&spec).output().expect("runs");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{connector}: {stdout}");
        assert!(
            stdout.contains("1 tests: 1 passed"),
            "{connector}: {stdout}"
        );

        let out = switchyard()
            .arg("validate")
            .arg(&spec)
            .arg("connector-specs")
            .output()
            .expect("runs");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            stdout.contains("0 errors, 0 warnings"),
            "{connector}: {stdout}"
        );

        let out = switchyard()
            .args(["run", "--sandbox", "--mapping"])
            .arg(&spec)
            .arg("--input")
            .arg(&data)
            .arg("--store")
            .arg(route.join("store.sqlite"))
            .output()
            .expect("runs");
        // The summary is on stderr (stdout is for --report -).
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success() && stderr.contains("created 3, updated 0, skipped 0, failed 0"),
            "{connector}: {:?} {stderr}",
            out.status,
        );
    }
    // Files that exist are kept unless --force; an inbound source is not a route's target.
    let again = switchyard()
        .args(["init", "hubspot", "--dir"])
        .arg(dir.path().join("hubspot"))
        .output()
        .expect("runs");
    assert_eq!(again.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&again.stderr).contains("--force"));
    let source = switchyard()
        .args(["init", "callrail", "--dir"])
        .arg(dir.path().join("callrail"))
        .output()
        .expect("runs");
    assert_eq!(source.status.code(), Some(2));
    assert!(!dir.path().join("callrail").exists());
}
