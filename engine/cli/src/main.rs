//! The `switchyard` command line: one file per subcommand.

// Proving that `serve`'s delivery futures are `Send` walks deep into wasmtime's types.
#![recursion_limit = "256"]

/// `println!` to stdout, except that a closed stdout (`switchyard … | head`) ends the command
/// quietly instead of panicking.
macro_rules! outln {
    ($($t:tt)*) => {
        $crate::stdout_write(format_args!("{}\n", format_args!($($t)*)))
    };
}

/// `print!` to stdout, quiet on a closed stdout (see `outln!`).
macro_rules! out {
    ($($t:tt)*) => {
        $crate::stdout_write(format_args!($($t)*))
    };
}

mod apikey;
mod attribute;
mod common;
mod connectors;
mod deadletter;
mod init;
mod map;
mod plugin;
mod run;
mod sandbox;
mod schema;
mod serve;
mod spectest;
mod sync;
mod validate;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

/// Write to stdout; when the reader has gone away (a closed pipe), end the process quietly.
pub(crate) fn stdout_write(args: std::fmt::Arguments<'_>) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    if let Err(e) = out.write_fmt(args) {
        quit_if_closed(&e);
    }
}

/// A closed stdout (the reader is gone): nothing more can be shown, so the command ends
/// quietly with success.
pub(crate) fn quit_if_closed(e: &std::io::Error) {
    if e.kind() == std::io::ErrorKind::BrokenPipe {
        std::process::exit(i32::from(EXIT_OK));
    }
}

/// Exit code: everything valid / delivered.
pub const EXIT_OK: u8 = 0;
/// Exit code: a spec is invalid.
pub const EXIT_INVALID: u8 = 1;
/// Exit code: usage or I/O error.
pub const EXIT_USAGE: u8 = 2;
/// Exit code: some records were rejected.
pub const EXIT_REJECTED: u8 = 3;

/// Runs an async subcommand on a fresh multi-threaded runtime; its exit code.
fn block_on(f: impl std::future::Future<Output = u8>) -> u8 {
    match tokio::runtime::Runtime::new() {
        Ok(rt) => rt.block_on(f),
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            EXIT_USAGE
        }
    }
}

const EXAMPLES: &str = "\
Examples:
  switchyard init hubspot                                scaffold a route (spec, samples, test)
  switchyard validate connector-specs mapping-specs      check every spec (CI)
  switchyard validate --format github specs/             GitHub Actions annotations
  switchyard test mapping-specs                          run the tests inside mapping specs
  switchyard schema mapping > mapping.schema.json        JSON Schema for editors

Docs: README.md, ARCHITECTURE.md, docs/diagnostics.md";

/// Switchyard: a declarative integration engine for CRM and payment data.
///
/// Connector specs describe external systems, mapping specs describe how a tenant's records
/// become CRM payloads, attribution specs declare how conversions are credited to channels.
#[derive(Debug, Parser)]
#[command(
    name = "switchyard",
    version,
    about = "Switchyard: a declarative integration engine for CRM and payment data",
    long_about = None,
    after_help = EXAMPLES,
    propagate_version = true
)]
pub struct Cli {
    /// How log lines are written to stderr: `pretty` (for people) or `json` (one object per
    /// line, for log collectors). Which lines: `RUST_LOG` (default `warn`, `info` for `serve`).
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Pretty, env = "SWITCHYARD_LOG_FORMAT")]
    pub log_format: LogFormat,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Log line formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Pretty,
    /// One JSON object per line.
    Json,
}

/// Install the log subscriber: every `tracing` event of the engine reaches stderr, filtered by
/// `RUST_LOG` (default: `default_level`).
fn init_logs(format: LogFormat, default_level: &str) {
    use tracing_subscriber::EnvFilter;
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_level));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(true);
    let _ = match format {
        LogFormat::Pretty => builder
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .try_init(),
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .try_init(),
    };
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Validate spec files and folders (JSON Schema, then semantic checks), for editors and CI.
    Validate(validate::Args),
    /// Print the JSON Schema (draft 2020-12) of a spec kind.
    Schema(schema::Args),
    /// Map NDJSON records through a mapping spec (one output line per record, rejects apart).
    Map(map::Args),
    /// Scaffold a route for a connector: mapping spec, sample records, a test inside the spec.
    Init(init::Args),
    /// Run the tests written inside mapping specs (`tests`: input record → expected output).
    Test(spectest::Args),
    /// Run an attribution spec over NDJSON records: CausalMarketingData and channel tables.
    Attribute(attribute::Args),
    /// Serve local emulators of vendor APIs (HubSpot, Salesforce, Pipedrive, Zendesk, Stripe).
    Sandbox(sandbox::Args),
    /// Map records and deliver them through the route's connector.
    Run(run::Args),
    /// Pull an object's records from a connector as NDJSON (incrementally).
    Sync(sync::Args),
    /// Check connectors' credentials and reachability.
    Connectors(connectors::Args),
    /// List or replay records that could not be delivered.
    Deadletter(deadletter::Args),
    /// WebAssembly plugins: scaffold (`new`), `inspect`, run once (`test`).
    Plugin(plugin::Args),
    /// Receive webhooks: verify, map and deliver (`POST /v1/webhooks/{tenant}/{source}`).
    Serve(serve::Args),
    /// Per-tenant API keys for `serve`'s tenant endpoints: create, list, revoke.
    Apikey(apikey::Args),
}

/// Run the command line; returns the process exit code.
fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { EXIT_USAGE } else { EXIT_OK });
        }
    };
    let level = if matches!(cli.command, Command::Serve(_)) {
        "info"
    } else {
        "warn"
    };
    init_logs(cli.log_format, level);
    ExitCode::from(run(cli))
}

/// Run a parsed command line; returns the exit code.
pub fn run(cli: Cli) -> u8 {
    match cli.command {
        Command::Validate(a) => validate::run(a),
        Command::Schema(a) => schema::run(a),
        Command::Map(a) => map::run(a),
        Command::Test(a) => spectest::run(a),
        Command::Init(a) => init::run(a),
        Command::Attribute(a) => attribute::run(a),
        Command::Sandbox(a) => sandbox::run(a),
        Command::Run(a) => run::run(a),
        Command::Sync(a) => sync::run(a),
        Command::Connectors(a) => connectors::run(a),
        Command::Deadletter(a) => deadletter::run(a),
        Command::Plugin(a) => plugin::run(a),
        Command::Serve(a) => serve::run(a),
        Command::Apikey(a) => apikey::run(a),
    }
}
