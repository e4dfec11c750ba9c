//! `switchyard run`: map records (NDJSON file or stdin) with a route's mapping spec and deliver
//! them through its connector; a summary of created / updated / skipped / failed with reasons.

use serde_json::Value;
use std::collections::HashMap;
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use switchyard::connector::deliver::input::read_ndjson;
use switchyard::connector::route::{self, bind, credentials_for};
use switchyard::connector::{
    Connector, Deliverer, DeliveryCounts, DeliveryOptions, Input, RecordResult, Runtime, Secret,
    SecretResolver, Session,
};
use switchyard::spec::mapping::MappingSpec;
use switchyard::store::Store;

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

/// A route ready to deliver: its mapping, connector session and (with `--sandbox`) emulator.
pub(super) struct Prepared {
    pub mapping: MappingSpec,
    pub plan: Option<switchyard::mapping::CompiledMapping>,
    pub session: Session,
    pub emulator: Option<switchyard_sandbox::Emulator>,
    /// Hot reload of the route's plugins (stops when dropped).
    pub _watch: Vec<switchyard::plugin::WatchGuard>,
}

/// Load a route and bind its connector (to an emulator with `sandbox`).
pub(super) async fn prepare(
    mapping_path: &Path,
    connectors: &Path,
    sandbox: bool,
    dry_run: bool,
    plugins: &switchyard::plugin::PluginEnv,
) -> Result<Prepared, String> {
    let mapping = route::load_mapping(mapping_path).map_err(|e| e.to_string())?;
    prepare_route(mapping, mapping_path, connectors, sandbox, dry_run, plugins).await
}

/// A route with no tenant settings for `connector` (enough for `--sandbox`, or to report
/// which settings are missing).
pub(super) fn default_route(connector: &str) -> Result<MappingSpec, String> {
    let crm_type = if connector == "custom-rest" {
        "custom"
    } else {
        connector
    };
    serde_json::from_value(serde_json::json!({
        "spec_version": 1,
        "tenant": "default",
        "connector": connector,
        "crm_config": {"type": crm_type},
    }))
    .map_err(|e| format!("cannot build a default route for `{connector}`: {e}"))
}

/// Bind a loaded route (see [`prepare`]).
pub(super) async fn prepare_route(
    mapping: MappingSpec,
    mapping_path: &Path,
    connectors: &Path,
    sandbox: bool,
    dry_run: bool,
    plugins: &switchyard::plugin::PluginEnv,
) -> Result<Prepared, String> {
    let (spec, spec_path) = switchyard::connector::find_spec_file(connectors, &mapping.connector)
        .map_err(|e| e.to_string())?;
    let (emulator, secrets, base) = if sandbox {
        let vendor: switchyard_sandbox::Vendor = mapping
            .connector
            .parse()
            .map_err(|_| format!("there is no emulator for connector `{}`", mapping.connector))?;
        let emu = switchyard_sandbox::start(vendor, switchyard_sandbox::SandboxOptions::default())
            .await
            .map_err(|e| e.to_string())?;
        let creds: Vec<(String, String)> = emu
            .credentials()
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let s = credentials_for(&spec, &creds);
        let base = emu.base_url().to_string();
        // The connector's plugins may reach the emulator, with its credentials (bound to the
        // manifests this connector spec declares, not to the names they claim).
        for rel in spec.plugins.values() {
            let manifest = spec_path.parent().unwrap_or(Path::new(".")).join(rel);
            plugins.grant_extra(
                &manifest,
                switchyard::plugin::Grants {
                    allowed_hosts: vec![base.clone()],
                    secrets: creds
                        .iter()
                        .map(|(k, v)| (k.clone(), switchyard::plugin::Secret::new(v.clone())))
                        .collect(),
                    config: [("base_url".to_string(), Value::String(base.clone()))]
                        .into_iter()
                        .chain(
                            creds
                                .iter()
                                .filter(|(k, _)| k.ends_with("_id"))
                                .map(|(k, v)| (k.clone(), Value::String(v.clone()))),
                        )
                        .collect(),
                    allow_private_networks: true,
                },
            );
        }
        (Some(emu), s, Some(base))
    } else {
        (None, HashMap::<String, Secret>::new(), None)
    };
    let resolver = SecretResolver::from_env().map_err(|e| e.to_string())?;
    let binding = if sandbox {
        // Secret references of the real tenant cannot be resolved for an emulator; only the
        // emulator's credentials are used.
        let mut m = mapping.clone();
        m.crm_config.api_token = None;
        m.crm_config.consumer_key = None;
        m.crm_config.private_key = None;
        m.crm_config.username = None;
        m.crm_config.authentication = None;
        bind(&m, &spec, &resolver, &secrets, base, dry_run).map_err(|e| e.to_string())?
    } else {
        bind(&mapping, &spec, &resolver, &secrets, base, dry_run).map_err(|e| e.to_string())?
    };
    let source = match &mapping.source {
        Some(s) => {
            Some(switchyard::connector::find_spec(connectors, s).map_err(|e| e.to_string())?)
        }
        None => None,
    };
    let mapping_plugins = plugins
        .load_set(mapping_path, &mapping.plugins, &mapping.tenant)
        .map_err(|e| e.to_string())?;
    let connector_plugins = plugins
        .load_set(&spec_path, &spec.plugins, &mapping.tenant)
        .map_err(|e| e.to_string())?;
    let watch: Vec<switchyard::plugin::WatchGuard> = [&mapping_plugins, &connector_plugins]
        .into_iter()
        .filter_map(|s| plugins.watch(s))
        .collect();
    let env = switchyard::mapping::CompileEnv {
        target: &spec,
        source: source.as_ref(),
        plugins: Some(&mapping_plugins),
    };
    let (plan, diags) = switchyard::mapping::compile(&mapping, &env);
    let plan = match plan {
        Some(p) if !diags.has_errors() => Some(p),
        _ => {
            return Err(format!(
                "`{}` does not compile:\n{diags}",
                mapping_path.display()
            ));
        }
    };
    let connector = Arc::new(Connector::compile(spec).map_err(|e| e.to_string())?);
    let session = Runtime::new()
        .session(connector, binding)
        .with_plugins(connector_plugins);
    Ok(Prepared {
        mapping,
        plan,
        session,
        emulator,
        _watch: watch,
    })
}

/// Delivery options of a route.
pub(super) fn options(
    m: &MappingSpec,
    session: &Session,
    route: &Path,
    concurrency: usize,
) -> DeliveryOptions {
    DeliveryOptions {
        route: route.display().to_string(),
        duplicate_detection: m.crm_config.duplicate_detection.clone(),
        dedupe_object: m
            .crm_config
            .default_object
            .clone()
            .or_else(|| session.connector.spec.connector.default_object.clone())
            .unwrap_or_else(|| "contact".into()),
        concurrency,
        batch: true,
    }
}

/// Open the store (creating its folder).
pub(super) fn open_store(p: &Path) -> Result<Arc<Store>, String> {
    Store::open(p).map(Arc::new).map_err(|e| e.to_string())
}

pub(super) use switchyard::connector::deliver::input::mapped_from_json;

/// The idempotency key of a record that carries none: a hash of its text.
pub(super) fn content_key(text: &str) -> String {
    switchyard::connector::deliver::input::content_key(text.as_bytes())
}

/// What a run keeps of its results: counts, the first reasons for the summary, and the
/// `--report` file written as results arrive (memory stays bounded whatever the input size).
pub(super) struct Tally {
    pub counts: DeliveryCounts,
    notes: Vec<String>,
    action_notes: Vec<String>,
    actions: [usize; 3],
    report: Option<ReportWriter>,
}

impl Tally {
    pub fn new(report: Option<ReportWriter>) -> Self {
        Self {
            counts: DeliveryCounts::default(),
            notes: Vec::new(),
            action_notes: Vec::new(),
            actions: [0; 3],
            report,
        }
    }

    pub fn add(&mut self, r: RecordResult) {
        self.counts.add(&r);
        for o in r.objects.iter().filter(|o| o.reason.is_some()) {
            if self.notes.len() < 20 {
                self.notes.push(format!(
                    "  {} {} {:?}: {}",
                    o.key,
                    o.object,
                    o.outcome,
                    o.reason.as_deref().unwrap_or_default()
                ));
            }
        }
        for a in &r.actions {
            let i = match a.status {
                "ran" => 0,
                "skipped" => 1,
                _ => 2,
            };
            self.actions[i] += 1;
            if i > 0 && self.action_notes.len() < 20 {
                self.action_notes.push(format!(
                    "  {} {}/{} {}: {}",
                    a.key,
                    a.trigger,
                    a.action,
                    a.status,
                    a.reason.as_deref().unwrap_or_default()
                ));
            }
        }
        if let Some(w) = &mut self.report {
            w.add(&r);
        }
    }

    /// Print the summary to stderr.
    pub fn print(&self) {
        let c = &self.counts;
        eprintln!(
            "created {}, updated {}, skipped {}, failed {} (dead-lettered {})",
            c.created, c.updated, c.skipped, c.failed, c.dead_lettered
        );
        for n in &self.notes {
            eprintln!("{n}");
        }
        if self.actions.iter().sum::<usize>() > 0 {
            eprintln!(
                "actions: {} ran, {} skipped, {} failed",
                self.actions[0], self.actions[1], self.actions[2]
            );
            for n in &self.action_notes {
                eprintln!("{n}");
            }
        }
        if c.dead_letter_failures > 0 {
            eprintln!(
                "error: {} dead letters could not be written to the store; see the reasons above (they were appended to the fallback file next to the store; `switchyard deadletter import` loads them once the store works)",
                c.dead_letter_failures
            );
        }
    }
}

/// The `--report` file, written as results arrive: per-object results stream into the file,
/// action results into a spill file beside it, and the counts close the document.
pub(super) struct ReportWriter {
    path: PathBuf,
    out: std::io::BufWriter<std::fs::File>,
    spill_path: PathBuf,
    spill: std::io::BufWriter<std::fs::File>,
    objects: usize,
    actions: usize,
    error: Option<std::io::Error>,
}

impl ReportWriter {
    pub fn create(path: &Path) -> std::io::Result<Self> {
        let mut out = std::io::BufWriter::new(std::fs::File::create(path)?);
        out.write_all(b"{\"objects\":[")?;
        let spill_path = PathBuf::from(format!("{}.actions.tmp", path.display()));
        let spill = std::io::BufWriter::new(std::fs::File::create(&spill_path)?);
        Ok(Self {
            path: path.to_path_buf(),
            out,
            spill_path,
            spill,
            objects: 0,
            actions: 0,
            error: None,
        })
    }

    fn add(&mut self, r: &RecordResult) {
        let res = (|| -> std::io::Result<()> {
            for o in &r.objects {
                if self.objects > 0 {
                    self.out.write_all(b",")?;
                }
                serde_json::to_writer(&mut self.out, o)?;
                self.objects += 1;
            }
            for a in &r.actions {
                if self.actions > 0 {
                    self.spill.write_all(b",")?;
                }
                serde_json::to_writer(&mut self.spill, a)?;
                self.actions += 1;
            }
            Ok(())
        })();
        if let Err(e) = res {
            self.error.get_or_insert(e);
        }
    }

    /// Close the document with the actions, the counts and `run` (route, connector, dry run).
    pub fn finish(mut self, counts: &DeliveryCounts, run: Value) -> std::io::Result<()> {
        if let Some(e) = self.error.take() {
            return Err(e);
        }
        self.spill.flush()?;
        drop(self.spill);
        self.out.write_all(b"],\"actions\":[")?;
        let mut spill = std::fs::File::open(&self.spill_path)?;
        std::io::copy(&mut spill, &mut self.out)?;
        let _ = std::fs::remove_file(&self.spill_path);
        self.out.write_all(b"]")?;
        let Value::Object(c) = serde_json::to_value(counts).unwrap_or(Value::Null) else {
            return Ok(());
        };
        for (k, v) in c {
            write!(self.out, ",{}:{v}", Value::String(k))?;
        }
        write!(self.out, ",\"run\":{run}}}")?;
        self.out.flush()?;
        let _ = &self.path;
        Ok(())
    }
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
    let plugins = match switchyard::plugin::PluginEnv::discover(a.plugin_grants.as_deref()) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("error: {e}");
            return super::EXIT_USAGE;
        }
    };
    let mut prepared =
        match prepare(&a.mapping, &a.connectors, a.sandbox, a.dry_run, &plugins).await {
            Ok(p) => p,
            Err(e) => {
                eprintln!("error: {e}");
                return super::EXIT_USAGE;
            }
        };
    if let Some(emu) = &prepared.emulator {
        eprintln!("sandbox: {} emulator at {}", emu.vendor(), emu.base_url());
    }
    let (input, total_bytes): (Box<dyn std::io::Read + Send>, Option<u64>) = if a.input == "-" {
        (Box::new(std::io::stdin()), None)
    } else {
        match std::fs::File::open(&a.input) {
            Ok(f) => {
                let len = f.metadata().ok().filter(|m| m.is_file()).map(|m| m.len());
                (Box::new(f), len)
            }
            Err(e) => {
                eprintln!("error: cannot read `{}`: {e}", a.input);
                return super::EXIT_USAGE;
            }
        }
    };
    let sink: switchyard::connector::DryRunSink = Arc::default();
    let mut session = prepared.session.clone();
    if a.dry_run {
        session = session.with_dry_run(sink.clone());
    }
    let store = if a.dry_run {
        None
    } else {
        match open_store(&a.store) {
            Ok(s) => Some(s),
            Err(e) => {
                eprintln!("error: {e}");
                return super::EXIT_USAGE;
            }
        }
    };
    if let Some(s) = &store {
        session = session.with_token_store(s.clone());
    }
    let opts = options(&prepared.mapping, &session, &a.mapping, a.concurrency);
    let d = Deliverer::new(session, store.clone(), opts);
    // One run per input at a time: a second run of the same file for the same tenant and CRM
    // is refused while the first lives (different inputs cooperate record by record).
    if let (Some(s), Some(owner), false) = (&store, d.owner(), a.input == "-") {
        let input_id = std::fs::canonicalize(&a.input)
            .map(|p| p.display().to_string())
            .unwrap_or_else(|_| a.input.clone());
        let scope = format!(
            "run\u{1f}{}\u{1f}{}\u{1f}{input_id}",
            prepared.mapping.tenant,
            d.namespace()
        );
        match s.acquire_lease(&scope, owner) {
            Ok(Ok(())) => {}
            Ok(Err(holder)) => {
                eprintln!(
                    "error: another run is delivering `{}` for tenant `{}` to {} ({holder}); wait for it to finish or stop it (a stopped run's lease lapses as soon as its process is gone)",
                    a.input,
                    prepared.mapping.tenant,
                    d.namespace()
                );
                return super::EXIT_USAGE;
            }
            Err(e) => {
                eprintln!("error: {e}");
                return super::EXIT_USAGE;
            }
        }
    }
    let mut report = match &a.report {
        Some(p) => match ReportWriter::create(p) {
            Ok(w) => Some(w),
            Err(e) => {
                eprintln!("error: cannot write `{}`: {e}", p.display());
                return super::EXIT_USAGE;
            }
        },
        None => None,
    };
    // Lines are read, judged and mapped on a blocking thread (mapping may call plugins, which
    // block), a bounded channel apart from delivery.
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Input>(256);
    let plan = Arc::new(prepared.plan.take());
    let premapped = a.mapped;
    let read = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let reader = {
        let (plan, read) = (plan.clone(), read.clone());
        tokio::task::spawn_blocking(move || {
            let secrets = switchyard::secrets::default_provider();
            let plugin_session = plan.as_ref().as_ref().and_then(|p| p.plugin_session());
            let ctx = switchyard::mapping::MapContext {
                now: chrono::Utc::now(),
                secrets: &secrets,
                ext: plugin_session
                    .as_ref()
                    .map(|s| s as &dyn switchyard::expr::ExtCalls),
            };
            let input = Counted { inner: input, read };
            read_ndjson(input, plan.as_ref().as_ref(), premapped, &ctx, |item| {
                tx.blocking_send(item).is_ok()
            })
        })
    };
    let stream = futures::stream::poll_fn(move |cx| rx.poll_recv(cx));
    let mut tally = Tally::new(report.take());
    let mut progress = Progress {
        tty: std::io::stderr().is_terminal(),
        start: std::time::Instant::now(),
        last: std::time::Instant::now(),
        total_bytes,
        read,
    };
    let mut done = 0usize;
    d.deliver_stream(stream, |r| {
        tally.add(r);
        done += 1;
        progress.tick(done);
    })
    .await;
    progress.end();
    let read_error = match reader.await {
        Ok(Ok(_)) => None,
        Ok(Err(e)) => Some(format!("reading `{}` failed: {e}", a.input)),
        Err(e) => Some(format!("the input reader stopped: {e}")),
    };
    if let (Some(s), Some(owner)) = (&store, d.owner())
        && let Err(e) = s.retire(owner)
    {
        eprintln!("warning: {e}");
    }
    if a.dry_run {
        let mut out = std::io::stdout().lock();
        for line in sink.lock().unwrap_or_else(|p| p.into_inner()).iter() {
            if writeln!(out, "{line}").is_err() {
                // A closed stdout (`| head`) ends the listing quietly.
                break;
            }
        }
        let _ = out.flush();
    }
    tally.print();
    if let Some(w) = tally.report.take() {
        let run = serde_json::json!({
            "route": a.mapping.display().to_string(),
            "connector": d.session().connector.name(),
            "dry_run": a.dry_run,
        });
        if let Err(e) = w.finish(&tally.counts, run) {
            eprintln!("error: cannot write the report: {e}");
            return super::EXIT_USAGE;
        }
    }
    if let Some(emu) = prepared.emulator {
        emu.shutdown().await;
    }
    if let Some(e) = read_error {
        eprintln!("error: {e}");
        return super::EXIT_USAGE;
    }
    if tally.counts.failed > 0 || tally.counts.dead_letter_failures > 0 {
        super::EXIT_REJECTED
    } else {
        super::EXIT_OK
    }
}
