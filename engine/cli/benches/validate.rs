//! Benchmark: validating every spec in the repository (connector and mapping specs), as
//! `switchyard validate connector-specs mapping-specs` does. Target: under 200 ms.

use std::path::PathBuf;
use std::time::Instant;

fn main() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let paths = [root.join("connector-specs"), root.join("mapping-specs")];
    // The first run includes compiling the JSON Schemas (done once per process).
    let t0 = Instant::now();
    let first = switchyard::validate::validate_paths(&paths).expect("readable");
    let cold = t0.elapsed();
    let runs = 20;
    let t1 = Instant::now();
    for _ in 0..runs {
        let r = switchyard::validate::validate_paths(&paths).expect("readable");
        assert_eq!(r.files, first.files);
    }
    let warm = t1.elapsed() / runs;
    println!(
        "validate: {} files, {} diagnostics; first run (incl. schema compilation) {:.1} ms, later runs {:.1} ms each (target < 200 ms)",
        first.files,
        first.diagnostics.0.len(),
        cold.as_secs_f64() * 1e3,
        warm.as_secs_f64() * 1e3
    );
    let start = Instant::now();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_switchyard"))
        .args(["validate", "connector-specs", "mapping-specs"])
        .current_dir(&root)
        .output()
        .expect("runs the binary");
    println!(
        "switchyard validate (whole process): {:.1} ms, exit {:?}",
        start.elapsed().as_secs_f64() * 1e3,
        out.status.code()
    );
}
