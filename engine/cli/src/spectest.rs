//! `switchyard test [PATH]...`: run the tests written inside mapping specs (`tests = [...]`).
//! Each test maps its input with the compiled spec (nothing is sent) and compares the result
//! with its expectation; a failure shows each difference at its place in the output, and the
//! test's line in the spec.

use super::{EXIT_INVALID, EXIT_OK, EXIT_USAGE};
use std::path::{Path, PathBuf};
use switchyard::engine::{EngineError, SpecTestRun};
use switchyard::spec::SpecKind;
use switchyard::spectest::short;

/// Arguments of `switchyard test`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Mapping spec files or folders (searched recursively). Specs of other kinds are skipped.
    #[arg(value_name = "PATH", default_value = "mapping-specs")]
    pub paths: Vec<PathBuf>,
    /// Run only tests whose name contains this text.
    #[arg(long, value_name = "TEXT")]
    pub filter: Option<String>,
    /// Output: `human`, or `json` (one document with every spec's outcomes).
    #[arg(long, value_enum, default_value_t = Format::Human)]
    pub format: Format,
    /// Folder (or file) of connector specs holding the mappings' connectors and sources.
    #[arg(long, value_name = "DIR", default_value = "connector-specs")]
    pub connectors: PathBuf,
    /// The operator's plugin grants (TOML). Default: `$SWITCHYARD_PLUGIN_GRANTS`, else none.
    #[arg(long, value_name = "FILE")]
    pub plugin_grants: Option<PathBuf>,
}

/// Output formats of `switchyard test`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// One line per test, differences under a failed one.
    Human,
    /// `{"specs": [...], "summary": {...}}`.
    Json,
}

/// Run `switchyard test`.
pub fn run(a: Args) -> u8 {
    let files = match switchyard::spec::collect_files(&a.paths) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("error: {e}");
            return EXIT_USAGE;
        }
    };
    let engine = match super::common::engine(&a.connectors, None, a.plugin_grants.as_deref()) {
        Ok(e) => e,
        Err(e) => {
            eprintln!("error: {e}");
            return EXIT_USAGE;
        }
    };
    let cwd = std::env::current_dir().ok();
    let shown = |p: &Path| -> String {
        cwd.as_deref()
            .and_then(|c| p.strip_prefix(c).ok())
            .unwrap_or(p)
            .display()
            .to_string()
    };
    let (mut runs, mut invalid) = (Vec::<SpecTestRun>::new(), 0usize);
    for f in files {
        // Only mapping specs carry tests; anything else (connectors, data) is skipped.
        let is_mapping = switchyard::spec::SourceFile::read(&f)
            .ok()
            .and_then(|s| SpecKind::detect(&s.value))
            == Some(SpecKind::Mapping);
        if !is_mapping {
            continue;
        }
        match engine.test_file(&f) {
            Ok(mut run) => {
                if let Some(filter) = &a.filter {
                    run.cases.retain(|c| c.name.contains(filter.as_str()));
                }
                if !run.cases.is_empty() {
                    runs.push(run);
                }
            }
            Err(e) => {
                invalid += 1;
                match e {
                    EngineError::Spec { diagnostics, .. }
                    | EngineError::Load(switchyard::spec::LoadError::Invalid {
                        diagnostics, ..
                    }) => eprint!(
                        "{}",
                        switchyard::diag::render(
                            &diagnostics,
                            switchyard::diag::Format::Human,
                            cwd.as_deref()
                        )
                    ),
                    other => eprintln!("error: {}: {other}", shown(&f)),
                }
            }
        }
    }
    let total: usize = runs.iter().map(|r| r.cases.len()).sum();
    let failed: usize = runs.iter().map(SpecTestRun::failed).sum();
    match a.format {
        Format::Json => {
            let doc = serde_json::json!({
                "specs": runs.iter().map(|r| serde_json::json!({
                    "path": shown(&r.path),
                    "cases": r.cases,
                })).collect::<Vec<_>>(),
                "summary": {"tests": total, "passed": total - failed, "failed": failed, "invalid_specs": invalid},
            });
            outln!(
                "{}",
                serde_json::to_string_pretty(&doc).unwrap_or_else(|_| "{}".into())
            );
        }
        Format::Human => {
            for r in &runs {
                let file = shown(&r.path);
                for c in &r.cases {
                    let verdict = if c.passed() { "PASS" } else { "FAIL" };
                    outln!("{verdict} {file}:{}:{}  {}", c.line, c.column, c.name);
                    if let Some(e) = &c.error {
                        outln!("     cannot run: {e}");
                    }
                    for m in &c.mismatches {
                        outln!("     {}", m.at);
                        outln!(
                            "       expected: {}",
                            m.expected
                                .as_ref()
                                .map_or("(nothing)".into(), |v| short(v, 200))
                        );
                        outln!(
                            "       actual:   {}",
                            m.actual
                                .as_ref()
                                .map_or("(nothing)".into(), |v| short(v, 200))
                        );
                    }
                }
            }
            if total == 0 && invalid == 0 {
                outln!("no tests found (a mapping spec carries them under `tests`)");
            } else {
                outln!(
                    "\n{total} tests: {} passed, {failed} failed ({} specs{})",
                    total - failed,
                    runs.len(),
                    if invalid > 0 {
                        format!(", {invalid} could not be compiled")
                    } else {
                        String::new()
                    }
                );
            }
        }
    }
    if failed > 0 || invalid > 0 {
        EXIT_INVALID
    } else {
        EXIT_OK
    }
}
