//! `switchyard attribute`: run an attribution spec over NDJSON records and write
//! CausalMarketingData records and per-model channel tables.
//!
//! Input: one JSON object per line, naming its system and object in the fields the spec's
//! `source_field`/`object_field` declare (default `source` and `object`), e.g.
//! `{"source": "hubspot", "object": "deal", "id": "1", "properties": {...}}`. Blank lines are
//! skipped; a line that is not a JSON object is an error naming the file and line.
//!
//! Output: `--output` gets one CausalMarketingData record per conversion (NDJSON; `-` for
//! stdout); `--report` gets the report JSON
//! `{"models": {"<model>": {"<channel>": {"conversions", "value"}}}, "unattributed": {...}}`.
//! On a terminal, stdout shows the channel tables as text; otherwise, when neither `--report`
//! nor `--output -` claims stdout, the report JSON goes there.

use crate::attribution::{ErrorKind, Outcome, Plan, Report};
use crate::diag::{self, Diagnostic, Diagnostics, Format};
use crate::spec::{self, Spec};
use std::io::{BufRead, BufReader, IsTerminal, Read, Write};
use std::path::{Path, PathBuf};

/// Arguments of `switchyard attribute`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The attribution spec (TOML or JSON).
    #[arg(long, value_name = "FILE")]
    pub spec: PathBuf,
    /// NDJSON records, or `-` for stdin.
    #[arg(long, value_name = "FILE|-")]
    pub input: PathBuf,
    /// Where to write the CausalMarketingData records (NDJSON), or `-` for stdout.
    #[arg(long, value_name = "FILE|-")]
    pub output: Option<PathBuf>,
    /// Where to write the report JSON (channel tables per model and unattributed conversions).
    #[arg(long, value_name = "FILE")]
    pub report: Option<PathBuf>,
}

pub(super) fn run(a: Args) -> u8 {
    let cwd = std::env::current_dir().ok();
    let (loaded, diags) = match spec::load_file(&a.spec) {
        Ok(x) => x,
        Err(e) => {
            eprintln!("error: {}: {e}", a.spec.display());
            return super::EXIT_USAGE;
        }
    };
    if diags.has_errors() {
        eprint!("{}", diag::render(&diags, Format::Human, cwd.as_deref()));
        return super::EXIT_INVALID;
    }
    let Some(loaded) = loaded else {
        return super::EXIT_INVALID;
    };
    let Some(Spec::Attribution(spec)) = &loaded.spec else {
        eprintln!(
            "error: {}: not an attribution spec (it has no [attribution] table)",
            a.spec.display()
        );
        return super::EXIT_INVALID;
    };
    let plan = match Plan::compile(spec) {
        Ok(p) => p,
        Err(crate::attribution::AttributionError::InvalidSpec { pointer, message }) => {
            let mut d = Diagnostics::default();
            d.push(
                loaded
                    .source
                    .place(Diagnostic::error("E600", pointer, message)),
            );
            eprint!("{}", diag::render(&d, Format::Human, cwd.as_deref()));
            return super::EXIT_INVALID;
        }
        Err(e) => {
            eprintln!("error: {}: {e}", a.spec.display());
            return super::EXIT_INVALID;
        }
    };
    let records = match read_ndjson(&a.input) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {e}");
            return super::EXIT_USAGE;
        }
    };
    let outcome = match plan.run(&records) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("error: {}: {e}", a.spec.display());
            return match e.kind() {
                ErrorKind::InvalidSpec | ErrorKind::Model => super::EXIT_INVALID,
            };
        }
    };
    let input_name = a.input.display().to_string();
    for w in &outcome.warnings {
        eprintln!("warning: {input_name}: {w}");
    }
    match write_outputs(&a, &outcome) {
        Ok(()) => super::EXIT_OK,
        Err(e) => {
            eprintln!("error: {e}");
            super::EXIT_USAGE
        }
    }
}

fn write_outputs(a: &Args, outcome: &Outcome) -> Result<(), String> {
    let report_json =
        serde_json::to_string_pretty(&outcome.report).map_err(|e| e.to_string())? + "\n";
    let stdout_is_output = a.output.as_deref() == Some(Path::new("-"));
    if let Some(path) = &a.output {
        let mut text = String::new();
        for r in &outcome.records {
            text.push_str(&serde_json::to_string(r).map_err(|e| e.to_string())?);
            text.push('\n');
        }
        write_to(path, &text)?;
    }
    if let Some(path) = &a.report {
        write_to(path, &report_json)?;
    }
    let stdout = std::io::stdout();
    if stdout.is_terminal() {
        let mut out = stdout.lock();
        let _ = out.write_all(table(&outcome.report, outcome.records.len()).as_bytes());
    } else if a.report.is_none() && !stdout_is_output {
        let mut out = stdout.lock();
        out.write_all(report_json.as_bytes())
            .map_err(|e| format!("stdout: {e}"))?;
    }
    Ok(())
}

fn write_to(path: &Path, text: &str) -> Result<(), String> {
    if path == Path::new("-") {
        std::io::stdout()
            .lock()
            .write_all(text.as_bytes())
            .map_err(|e| format!("stdout: {e}"))
    } else {
        std::fs::write(path, text).map_err(|e| format!("{}: {e}", path.display()))
    }
}

/// Read NDJSON objects from a file or `-` (stdin); errors name the file and line.
fn read_ndjson(path: &Path) -> Result<Vec<serde_json::Value>, String> {
    let name = path.display().to_string();
    let reader: Box<dyn Read> = if path == Path::new("-") {
        Box::new(std::io::stdin())
    } else {
        Box::new(std::fs::File::open(path).map_err(|e| format!("{name}: {e}"))?)
    };
    let mut out = Vec::new();
    for (i, line) in BufReader::new(reader).lines().enumerate() {
        let line = line.map_err(|e| format!("{name}:{}: {e}", i + 1))?;
        if line.trim().is_empty() {
            continue;
        }
        let v: serde_json::Value = serde_json::from_str(&line)
            .map_err(|e| format!("{name}:{}: invalid JSON: {e}", i + 1))?;
        if !v.is_object() {
            return Err(format!("{name}:{}: a record must be a JSON object", i + 1));
        }
        out.push(v);
    }
    Ok(out)
}

/// The channel tables as aligned text.
fn table(report: &Report, conversions: usize) -> String {
    let mut s = format!(
        "{conversions} conversions, {} unattributed (value {:.2})\n",
        report.unattributed.conversions, report.unattributed.value
    );
    let channels: std::collections::BTreeSet<&String> =
        report.models.values().flat_map(|t| t.keys()).collect();
    let width = channels.iter().map(|c| c.len()).max().unwrap_or(7).max(7);
    s.push_str(&format!("\n{:width$}", "channel"));
    for m in report.models.keys() {
        s.push_str(&format!("  {m:>22}"));
    }
    s.push('\n');
    for c in channels {
        s.push_str(&format!("{c:width$}"));
        for t in report.models.values() {
            let cell = t.get(c).copied().unwrap_or_default();
            s.push_str(&format!(
                "  {:>22}",
                format!("{:.2} / {:.2}", cell.conversions, cell.value)
            ));
        }
        s.push('\n');
    }
    s.push_str("\n(cells: credited conversions / value)\n");
    s
}
