//! `switchyard run`: map records (NDJSON file or stdin) with a route's mapping spec and deliver
//! them through its connector; a summary of created / updated / skipped / failed with reasons.

use super::common::{ReportWriter, Tally, engine, route_file};
use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::sync::Arc;
use switchyard::engine::{EngineError, NdjsonOptions, RouteOptions};

/// Arguments of `switchyard run`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The route's mapping spec.
    #[arg(long, value_name = "FILE")]
    pub mapping: PathBuf,
    /// Records as NDJSON, or `-` for stdin.
    #[arg(long, value_name = "FILE|-")]
    pub input: String,
    /// Folder of connector specs.
    #[arg(long, value_name = "DIR", default_value = "connector-specs")]
    pub connectors: PathBuf,
    /// The engine's store (sync cursors, dedupe index, dead letters, tokens).
    #[arg(
        long,
        value_name = "FILE",
        default_value = ".switchyard/switchyard.sqlite"
    )]
    pub store: PathBuf,
    /// Send nothing: print each request as one JSON line (secrets redacted).
    #[arg(long)]
    pub dry_run: bool,
    /// Write the summary as JSON to this file.
    #[arg(long, value_name = "FILE")]
    pub report: Option<PathBuf>,
    /// Start the in-process emulator of the route's connector and deliver to it.
    #[arg(long)]
    pub sandbox: bool,
    /// Records in flight at once.
    #[arg(long, default_value_t = 8)]
    pub concurrency: usize,
    /// The input is already mapped: one `{"objects": {...}, "triggers": [...]}` per line
    /// (what `switchyard map` prints); the mapping spec only gives the route.
    #[arg(long)]
    pub mapped: bool,
    /// The operator's plugin grants (TOML). Default: `$SWITCHYARD_PLUGIN_GRANTS`, else none.
    #[arg(long, value_name = "FILE")]
    pub plugin_grants: Option<PathBuf>,
}

pub(super) fn run(a: Args) -> u8 {
    super::block_on(run_async(a))
}

/// A progress line on a terminal (records, rate, share of the input read, ETA), plain lines
/// every 10 s otherwise.
struct Progress {
    tty: bool,
    start: std::time::Instant,
    last: std::time::Instant,
    total_bytes: Option<u64>,
    read: Arc<std::sync::atomic::AtomicU64>,
}

impl Progress {
    fn tick(&mut self, done: usize) {
        let now = std::time::Instant::now();
        let every = if self.tty {
            std::time::Duration::from_millis(200)
        } else {
            std::time::Duration::from_secs(10)
        };
        if now.duration_since(self.last) < every {
            return;
        }
        self.last = now;
        let secs = now.duration_since(self.start).as_secs_f64().max(1e-3);
        let rate = done as f64 / secs;
        let read = self.read.load(std::sync::atomic::Ordering::Relaxed);
        let share = self
            .total_bytes
            .filter(|t| *t > 0)
            .map(|t| (read as f64 / t as f64).min(1.0));
        let tail = match share {
            Some(f) if f > 0.0 => {
                let eta = secs * (1.0 - f) / f;
                format!(" {:>3.0}% ETA {:.0}s", f * 100.0, eta)
            }
            _ => String::new(),
        };
        if self.tty {
            eprint!("\r{done} records, {rate:.0}/s{tail}   ");
        } else {
            eprintln!("progress: {done} records, {rate:.0}/s{tail}");
        }
    }

    fn end(&self) {
        if self.tty && self.last != self.start {
            eprintln!();
        }
    }
}

/// Counts bytes as they are read (for the progress line's share of the input).
struct Counted<R> {
    inner: R,
    read: Arc<std::sync::atomic::AtomicU64>,
}

impl<R: std::io::Read> std::io::Read for Counted<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.read
            .fetch_add(n as u64, std::sync::atomic::Ordering::Relaxed);
        Ok(n)
    }
}

async fn run_async(a: Args) -> u8 {
    let store = (!a.dry_run).then_some(a.store.as_path());
    let engine = match engine(&a.connectors, store, a.plugin_grants.as_deref()) {
        Ok(e) => e,
        Err(e) => {
            eprintln!("error: {e}");
            return super::EXIT_USAGE;
        }
    };
    let opts = RouteOptions {
        dry_run: a.dry_run,
        concurrency: Some(a.concurrency),
        ..RouteOptions::default()
    };
    let (route, emulator) = match route_file(&engine, &a.mapping, a.sandbox, opts).await {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {e}");
            return super::EXIT_USAGE;
        }
    };
    if let Some(emu) = &emulator {
        eprintln!("sandbox: {} emulator at {}", emu.vendor(), emu.base_url());
    }
    let (input, total_bytes, input_id): (
        Box<dyn std::io::Read + Send>,
        Option<u64>,
        Option<String>,
    ) = if a.input == "-" {
        (Box::new(std::io::stdin()), None, None)
    } else {
        match std::fs::File::open(&a.input) {
            Ok(f) => {
                let len = f.metadata().ok().filter(|m| m.is_file()).map(|m| m.len());
                let id = std::fs::canonicalize(&a.input)
                    .map(|p| p.display().to_string())
                    .unwrap_or_else(|_| a.input.clone());
                (Box::new(f), len, Some(id))
            }
            Err(e) => {
                eprintln!("error: cannot read `{}`: {e}", a.input);
                return super::EXIT_USAGE;
            }
        }
    };
    let report = match &a.report {
        Some(p) => match ReportWriter::create(p) {
            Ok(w) => Some(w),
            Err(e) => {
                eprintln!("error: cannot write `{}`: {e}", p.display());
                return super::EXIT_USAGE;
            }
        },
        None => None,
    };
    let read = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let input = Counted {
        inner: input,
        read: read.clone(),
    };
    let mut tally = Tally::new(report);
    let mut progress = Progress {
        tty: std::io::stderr().is_terminal(),
        start: std::time::Instant::now(),
        last: std::time::Instant::now(),
        total_bytes,
        read,
    };
    let mut done = 0usize;
    let result = route
        .deliver_ndjson(
            input,
            NdjsonOptions {
                input_id,
                premapped: a.mapped,
                correlation_id: None,
            },
            |r| {
                tally.add(r);
                done += 1;
                progress.tick(done);
            },
        )
        .await;
    progress.end();
    if let Err(e) = engine.retire() {
        eprintln!("warning: {e}");
    }
    if a.dry_run {
        let mut out = std::io::stdout().lock();
        for line in route.dry_run_requests() {
            if writeln!(out, "{line}").is_err() {
                // A closed stdout (`| head`) ends the listing quietly.
                break;
            }
        }
        let _ = out.flush();
    }
    if let Err(e @ EngineError::Busy { .. }) = &result {
        eprintln!("error: {e}");
        return super::EXIT_USAGE;
    }
    tally.print();
    if let Some(w) = tally.report.take() {
        let run = serde_json::json!({
            "route": a.mapping.display().to_string(),
            "connector": route.mapping().connector,
            "dry_run": a.dry_run,
        });
        if let Err(e) = w.finish(&tally.counts, run) {
            eprintln!("error: cannot write the report: {e}");
            return super::EXIT_USAGE;
        }
    }
    if let Some(emu) = emulator {
        emu.shutdown().await;
    }
    if let Err(e) = result {
        eprintln!("error: {e}");
        return super::EXIT_USAGE;
    }
    if tally.counts.failed > 0 || tally.counts.dead_letter_failures > 0 {
        super::EXIT_REJECTED
    } else {
        super::EXIT_OK
    }
}
