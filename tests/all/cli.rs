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
