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
