//! `switchyard map`: run NDJSON records through a mapping spec, one output line per mapped
//! record (in input order) and one reject line per rejected record.

use super::{EXIT_INVALID, EXIT_OK, EXIT_REJECTED, EXIT_USAGE};
use chrono::{DateTime, Utc};
use std::io::{Read, Write};
use std::path::PathBuf;
use switchyard::engine::EngineError;

/// Map NDJSON records with a mapping spec.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The mapping spec (JSON or TOML).
    #[arg(long, value_name = "FILE")]
    pub mapping: PathBuf,
    /// NDJSON input, one record per line (`-` for stdin).
    #[arg(long, value_name = "FILE|-", default_value = "-")]
    pub input: String,
    /// Output: one `{"objects": …, "triggers": […]}` line per mapped record (`-` for stdout).
    #[arg(long, value_name = "FILE|-", default_value = "-")]
    pub output: String,
    /// Where rejected records go, one JSON line each with the input line number, the target
    /// field, the JSON pointer into the spec and the reason. Default: stderr.
    #[arg(long, value_name = "FILE")]
    pub rejects: Option<PathBuf>,
    /// The clock of `today()` and `now()` (RFC 3339). Default: the current time.
    #[arg(long, value_name = "RFC3339")]
    pub now: Option<String>,
    /// Folder (or file) of connector specs holding the mapping's connector and source.
    #[arg(long, value_name = "DIR", default_value = "connector-specs")]
    pub connectors: PathBuf,
    /// The operator's plugin grants (TOML). Default: `$SWITCHYARD_PLUGIN_GRANTS`, else none.
    #[arg(long, value_name = "FILE")]
    pub plugin_grants: Option<PathBuf>,
}

/// Run `switchyard map`.
pub fn run(a: Args) -> u8 {
    let now: DateTime<Utc> = match &a.now {
        Some(t) => match DateTime::parse_from_rfc3339(t) {
            Ok(t) => t.with_timezone(&Utc),
            Err(e) => {
                eprintln!("error: --now `{t}` is not an RFC 3339 timestamp: {e}");
                return EXIT_USAGE;
            }
        },
        None => Utc::now(),
    };
    let engine = match super::common::engine(&a.connectors, None, a.plugin_grants.as_deref()) {
        Ok(e) => e,
        Err(e) => {
            eprintln!("error: {e}");
            return EXIT_USAGE;
        }
    };
    let mapper = match engine.mapper_file(&a.mapping) {
        Ok(m) => m,
        Err(e) => {
            let cwd = std::env::current_dir().ok();
            match e {
                EngineError::Spec { diagnostics, .. }
                | EngineError::Load(switchyard::spec::LoadError::Invalid { diagnostics, .. }) => {
                    eprint!(
                        "{}",
                        switchyard::diag::render(
                            &diagnostics,
                            switchyard::diag::Format::Human,
                            cwd.as_deref()
                        )
                    );
                }
                other => eprintln!("error: {other}"),
            }
            return EXIT_INVALID;
        }
    };
    let input: Box<dyn Read> = if a.input == "-" {
        Box::new(std::io::stdin().lock())
    } else {
        match std::fs::File::open(&a.input) {
            Ok(f) => Box::new(f),
            Err(e) => {
                eprintln!("error: cannot read {}: {e}", a.input);
                return EXIT_USAGE;
            }
        }
    };
    let output: Box<dyn Write> = if a.output == "-" {
        Box::new(std::io::stdout().lock())
    } else {
        match std::fs::File::create(&a.output) {
            Ok(f) => Box::new(f),
            Err(e) => {
                eprintln!("error: cannot write {}: {e}", a.output);
                return EXIT_USAGE;
            }
        }
    };
    let rejects: Box<dyn Write> = match &a.rejects {
        Some(p) => match std::fs::File::create(p) {
            Ok(f) => Box::new(f),
            Err(e) => {
                eprintln!("error: cannot write {}: {e}", p.display());
                return EXIT_USAGE;
            }
        },
        None => Box::new(std::io::stderr()),
    };
    match mapper.map_stream(now, input, output, rejects) {
        Ok(0) => EXIT_OK,
        Ok(_) => EXIT_REJECTED,
        Err(e) => {
            super::quit_if_closed(&e);
            eprintln!("error: {e}");
            EXIT_USAGE
        }
    }
}
