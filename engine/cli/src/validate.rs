//! `switchyard validate <file or dir>...`: the CI gate for specs.

use switchyard::diag::{self, Format};

/// `--format` of `switchyard validate` (the library's [`Format`], for clap).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OutputFormat {
    /// rustc-like text.
    Human,
    /// One JSON document: `{"diagnostics": [...], "summary": {...}}`.
    Json,
    /// GitHub Actions workflow commands (`::error file=…,line=…::…`).
    Github,
}

impl From<OutputFormat> for Format {
    fn from(f: OutputFormat) -> Self {
        match f {
            OutputFormat::Human => Format::Human,
            OutputFormat::Json => Format::Json,
            OutputFormat::Github => Format::Github,
        }
    }
}
use std::io::Write;
use std::path::PathBuf;
use switchyard::validate::validate_paths;

/// Arguments of `switchyard validate`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Spec files or folders (searched recursively for .toml and .json).
    #[arg(required = true, value_name = "PATH")]
    pub paths: Vec<PathBuf>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = OutputFormat::Human)]
    pub format: OutputFormat,
    /// Fail (exit 1) on warnings too.
    #[arg(long)]
    pub deny_warnings: bool,
    /// Hide notes (how bare strings were read, unchecked enumerations, …).
    #[arg(long)]
    pub quiet: bool,
}

pub(super) fn run(a: Args) -> u8 {
    let report = match validate_paths(&a.paths) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {e}");
            return super::EXIT_USAGE;
        }
    };
    let mut diags = report.diagnostics;
    if a.quiet {
        diags.0.retain(|d| d.severity != diag::Severity::Note);
    }
    let cwd = std::env::current_dir().ok();
    let text = diag::render(&diags, a.format.into(), cwd.as_deref());
    let failed = diags.has_errors() || (a.deny_warnings && diags.has_warnings());
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(text.as_bytes());
    if a.format == OutputFormat::Human {
        let _ = writeln!(
            out,
            "{}: {} files, {} errors, {} warnings, {} notes",
            if failed { "invalid" } else { "valid" },
            report.files,
            diags.count(diag::Severity::Error),
            diags.count(diag::Severity::Warning),
            diags.count(diag::Severity::Note)
        );
    }
    if failed {
        super::EXIT_INVALID
    } else {
        super::EXIT_OK
    }
}
