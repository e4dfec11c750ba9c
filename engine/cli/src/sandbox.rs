//! `switchyard sandbox <vendor>…`: serve vendor emulators on 127.0.0.1 until interrupted.

use std::io::Write;
use std::path::PathBuf;
use switchyard_sandbox::{self as sandbox, FaultConfig, RateLimitOverride, SandboxOptions, Vendor};

/// Arguments of `switchyard sandbox`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Vendors to emulate: hubspot, salesforce, pipedrive, zendesk, stripe. Each gets its own
    /// port; with `--port N` they take N, N+1, … in the order given.
    #[arg(required = true, value_name = "VENDOR", value_parser = parse_vendor)]
    pub vendors: Vec<Vendor>,
    /// First port (default: a free port per vendor).
    #[arg(long)]
    pub port: Option<u16>,
    /// Share of requests answered with a vendor-shaped 5xx (0–1).
    #[arg(long, default_value_t = 0.0)]
    pub fault_rate_5xx: f64,
    /// Share of requests held past the client timeout, then closed unanswered (0–1).
    #[arg(long, default_value_t = 0.0)]
    pub fault_rate_timeout: f64,
    /// Share of requests whose connection is closed without a response (0–1).
    #[arg(long, default_value_t = 0.0)]
    pub fault_rate_drop: f64,
    /// Share of requests answered 200 with a truncated body (0–1).
    #[arg(long, default_value_t = 0.0)]
    pub fault_rate_malformed: f64,
    /// Delay added to every response, in milliseconds.
    #[arg(long, default_value_t = 0)]
    pub slow_ms: u64,
    /// Scripted faults: JSON array or JSON lines of {"request": N, "fault": "5xx"|"timeout"|
    /// "drop"|"malformed"|"slow"|"rate_limit"}.
    #[arg(long, value_name = "FILE")]
    pub fault_script: Option<PathBuf>,
    /// Replace the vendors' rate limits: REQUESTS/SECONDS, e.g. 100/10.
    #[arg(long, value_name = "REQUESTS/SECONDS", value_parser = parse_limit)]
    pub rate_limit: Option<RateLimitOverride>,
    /// Seed for fault draws and generated ids.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// How long a write takes to become visible to search (HubSpot CRM search, Stripe search),
    /// in milliseconds; the vendors' indexes lag by seconds. Default 50 (the library's
    /// `DEFAULT_SEARCH_LAG`); 0: searches see every write at once.
    #[arg(long, value_name = "MS", default_value_t = sandbox::DEFAULT_SEARCH_LAG.as_millis() as u64)]
    pub search_lag_ms: u64,
    /// The separate limit on search requests: REQUESTS/SECONDS, or `off`. Default: the
    /// vendor's documented one (HubSpot 5/1, Stripe 20/1; none for the others).
    #[arg(long, value_name = "REQUESTS/SECONDS|off", value_parser = parse_search_limit)]
    pub search_rate_limit: Option<SearchLimit>,
    /// Print one JSON object per vendor ({vendor, base_url, credentials}) instead of text.
    #[arg(long)]
    pub json: bool,
}

fn parse_vendor(s: &str) -> Result<Vendor, String> {
    s.parse().map_err(|e: sandbox::SandboxError| e.to_string())
}

fn parse_limit(s: &str) -> Result<RateLimitOverride, String> {
    s.parse().map_err(|e: sandbox::SandboxError| e.to_string())
}

/// `--search-rate-limit`: a limit, or `off`.
#[derive(Debug, Clone, Copy)]
pub enum SearchLimit {
    /// No separate search limit.
    Off,
    /// This limit for every vendor that has search.
    Limit(RateLimitOverride),
}

fn parse_search_limit(s: &str) -> Result<SearchLimit, String> {
    if s.trim().eq_ignore_ascii_case("off") {
        return Ok(SearchLimit::Off);
    }
    parse_limit(s).map(SearchLimit::Limit)
}

/// Ctrl-C, or SIGTERM on Unix (what `kill` and process supervisors send). The SIGTERM handler
/// is installed when this is called (inside the runtime), before the future is awaited, so a
/// signal sent right after the server announces itself is not lost.
pub(super) fn stop_signal() -> impl std::future::Future<Output = ()> {
    #[cfg(unix)]
    let term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    async move {
        #[cfg(unix)]
        if let Some(mut term) = term {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            return;
        }
        let _ = tokio::signal::ctrl_c().await;
    }
}

pub(super) fn run(a: Args) -> u8 {
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return super::EXIT_USAGE;
        }
    };
    rt.block_on(serve(a))
}

async fn serve(a: Args) -> u8 {
    let script = match &a.fault_script {
        Some(p) => match sandbox::load_fault_script(p) {
            Ok(s) => s,
            Err(e) => {
                eprintln!("error: {e}");
                return super::EXIT_USAGE;
            }
        },
        None => Vec::new(),
    };
    let faults = FaultConfig {
        error_5xx_rate: a.fault_rate_5xx,
        timeout_rate: a.fault_rate_timeout,
        drop_rate: a.fault_rate_drop,
        malformed_rate: a.fault_rate_malformed,
        slow_ms: a.slow_ms,
        script,
    };
    let stop = stop_signal();
    let mut running = Vec::new();
    for (i, vendor) in a.vendors.iter().enumerate() {
        let port = match a.port {
            Some(p) => match p.checked_add(i as u16) {
                Some(p) => Some(p),
                None => {
                    eprintln!("error: port {p} + {i} is out of range");
                    return super::EXIT_USAGE;
                }
            },
            None => None,
        };
        let search_rate_limit = match a.search_rate_limit {
            None => vendor.search_rate_limit(),
            Some(SearchLimit::Off) => None,
            Some(SearchLimit::Limit(l)) => Some(l),
        };
        let opts = SandboxOptions {
            port,
            rate_limit: a.rate_limit,
            faults: faults.clone(),
            seed: a.seed,
            search_lag: std::time::Duration::from_millis(a.search_lag_ms),
            search_rate_limit,
        };
        match sandbox::start(*vendor, opts).await {
            Ok(e) => running.push(e),
            Err(e) => {
                eprintln!("error: {vendor}: {e}");
                return super::EXIT_USAGE;
            }
        }
    }
    {
        let mut out = std::io::stdout().lock();
        for e in &running {
            let creds: serde_json::Map<String, serde_json::Value> = e
                .credentials()
                .iter()
                .map(|(k, v)| (k.to_string(), serde_json::Value::String(v.to_string())))
                .collect();
            if a.json {
                let line = serde_json::json!({"vendor": e.vendor().name(),
                    "base_url": e.base_url(), "credentials": creds});
                let _ = writeln!(out, "{line}");
            } else {
                let _ = writeln!(out, "{:<11} {}", e.vendor().name(), e.base_url());
                for (k, v) in e.credentials().iter() {
                    // Sandbox credentials are fixed test values, printed so they can be pasted
                    // into connector secrets; they open nothing outside this process.
                    let _ = writeln!(out, "  {k} = {v}");
                }
            }
        }
        let _ = out.flush();
    }
    stop.await;
    for e in running {
        let s = e.stats();
        eprintln!(
            "{}: {} requests, {} throttled, {} faults, created {:?}",
            e.vendor(),
            s.requests,
            s.throttled,
            s.faults_total(),
            s.created
        );
        e.shutdown().await;
    }
    super::EXIT_OK
}
