//! The `switchyard` command line: one file per subcommand.

mod plugin;
mod schema;
mod validate;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

/// Exit code: everything valid / delivered.
pub const EXIT_OK: u8 = 0;
/// Exit code: a spec is invalid.
pub const EXIT_INVALID: u8 = 1;
/// Exit code: usage or I/O error.
pub const EXIT_USAGE: u8 = 2;
/// Exit code: some records were rejected.
pub const EXIT_REJECTED: u8 = 3;

/// Switchyard: a declarative integration engine for CRM and payment data.
///
/// Connector specs describe external systems, mapping specs describe how a tenant's records
/// become CRM payloads, attribution specs declare how conversions are credited to channels.
#[derive(Debug, Parser)]
#[command(name = "switchyard", version, about, long_about = None, propagate_version = true)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Validate spec files and folders (JSON Schema, then semantic checks), for editors and CI.
    Validate(validate::Args),
    /// Print the JSON Schema (draft 2020-12) of a spec kind.
    Schema(schema::Args),
    /// WebAssembly plugins: scaffold (`new`), `inspect`, run once (`test`).
    Plugin(plugin::Args),
}

/// Run the command line; returns the process exit code.
pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { EXIT_USAGE } else { EXIT_OK });
        }
    };
    ExitCode::from(run(cli))
}

/// Run a parsed command line; returns the exit code.
pub fn run(cli: Cli) -> u8 {
    match cli.command {
        Command::Validate(a) => validate::run(a),
        Command::Schema(a) => schema::run(a),
        Command::Plugin(a) => plugin::run(a),
    }
}
