//! `switchyard sync`: pull an object's records from a connector as NDJSON, incrementally (the
//! cursor per tenant, connector and object lives in the store).

use super::common::{engine, route_spec};
use std::io::Write;
use std::path::PathBuf;
use switchyard::engine::Engine;

/// Arguments of `switchyard sync`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Connector name (must match the tenant config's connector).
    #[arg(long)]
    pub connector: String,
    /// Object to pull (e.g. `contact`, `ticket`).
    #[arg(long)]
    pub object: String,
    /// Only records modified after this time (RFC 3339, or unix seconds); default: the stored
    /// cursor, else everything.
    #[arg(long)]
    pub since: Option<String>,
    /// The tenant's mapping spec (its crm_config gives settings and secrets). Default: no
    /// tenant settings (fine with `--sandbox`).
    #[arg(long, value_name = "FILE")]
    pub tenant_config: Option<PathBuf>,
    /// Folder of connector specs.
    #[arg(long, value_name = "DIR", default_value = "connector-specs")]
    pub connectors: PathBuf,
    /// The engine's store.
    #[arg(
        long,
        value_name = "FILE",
        default_value = ".switchyard/switchyard.sqlite"
    )]
    pub store: PathBuf,
    /// Stop after this many records.
    #[arg(long)]
    pub limit: Option<usize>,
    /// Pull from the in-process emulator of the connector.
    #[arg(long)]
    pub sandbox: bool,
}

pub(super) fn run(a: Args) -> u8 {
    let rt = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: {e}");
            return super::EXIT_USAGE;
        }
    };
    rt.block_on(async move {
        let since = match &a.since {
            None => None,
            Some(s) => {
                match switchyard::connector::sync::parse_time(&serde_json::Value::String(s.clone()))
                {
                    Some(t) => Some(t),
                    None => {
                        eprintln!("error: --since `{s}` is not RFC 3339 or unix seconds");
                        return super::EXIT_USAGE;
                    }
                }
            }
        };
        let route = match &a.tenant_config {
            Some(p) => switchyard::spec::load_as::<switchyard::spec::MappingSpec>(p)
                .map(|(m, _)| m)
                .map_err(|e| e.to_string()),
            None => Engine::default_route(&a.connector).map_err(|e| e.to_string()),
        };
        let cfg_path = a
            .tenant_config
            .clone()
            .unwrap_or_else(|| PathBuf::from("(no tenant config)"));
        let engine = match engine(&a.connectors, Some(&a.store), None) {
            Ok(e) => e,
            Err(e) => {
                eprintln!("error: {e}");
                return super::EXIT_USAGE;
            }
        };
        let (route, emulator) =
            match async { route_spec(&engine, route?, &cfg_path, a.sandbox).await }.await {
                Ok(r) => r,
                Err(e) => {
                    eprintln!("error: {e}");
                    return super::EXIT_USAGE;
                }
            };
        if route.mapping().connector != a.connector {
            eprintln!(
                "error: `{}` configures connector `{}`, not `{}`",
                cfg_path.display(),
                route.mapping().connector,
                a.connector
            );
            return super::EXIT_USAGE;
        }
        // Records are written as their pages arrive (Rust's stdout is line-buffered: each
        // record is written, and a failed write seen, at its newline); a failed write stops the pull, and the cursor then
        // stays where it was (the next run sends those records again).
        let mut out = std::io::stdout().lock();
        let mut write_error: Option<std::io::Error> = None;
        let mut progress = super::common::Progress::new("records");
        let limit = a.limit;
        let mut done = 0usize;
        let res = route
            .sync_each(&a.object, since, a.limit, |rec| {
                if let Err(e) = writeln!(out, "{rec}") {
                    write_error = Some(e);
                    return false;
                }
                done += 1;
                progress.tick(done, || limit.map(|l| done as f64 / l.max(1) as f64));
                true
            })
            .await;
        progress.end();
        drop(out);
        if let Some(emu) = emulator {
            emu.shutdown().await;
        }
        match res {
            // A closed stdout (e.g. `| head`) ends the command quietly.
            Ok(_)
                if write_error
                    .as_ref()
                    .is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe) =>
            {
                super::EXIT_OK
            }
            Ok(_) if write_error.is_some() => {
                let e = write_error.map(|e| e.to_string()).unwrap_or_default();
                eprintln!("error: cannot write the records: {e}; the sync cursor was not moved");
                super::EXIT_USAGE
            }
            Ok(r) => {
                eprintln!(
                    "{} records{}{}",
                    r.records,
                    r.since
                        .map(|s| format!(" changed since {s}"))
                        .unwrap_or_default(),
                    r.cursor
                        .map(|c| format!("; cursor now {c}"))
                        .unwrap_or_default()
                );
                super::EXIT_OK
            }
            Err(e) => {
                eprintln!("error: {e}");
                super::EXIT_REJECTED
            }
        }
    })
}
