//! `switchyard run`: map records (NDJSON file or stdin) with a route's mapping spec and deliver
//! them through its connector; a summary of created / updated / skipped / failed with reasons.

use serde_json::{Map, Value};
use std::collections::HashMap;
use std::io::{BufRead, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use switchyard::connector::route::{self, bind, credentials_for};
use switchyard::connector::{
    Connector, Deliverer, DeliveryItem, DeliveryOptions, DeliveryReport, Runtime, Secret,
    SecretResolver, Session,
};
use switchyard::record::{FiredTrigger, Mapped};
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

/// A mapped record from JSON `{"objects": {...}, "triggers": [{"name", "actions"}]}`.
pub(super) fn mapped_from_json(v: &Value) -> Option<Mapped> {
    let objects = v.get("objects")?.as_object()?;
    let mut m = Mapped::default();
    for (k, o) in objects {
        m.objects.insert(k.clone(), o.as_object()?.clone());
    }
    if let Some(Value::Array(ts)) = v.get("triggers") {
        for t in ts {
            m.triggers.push(FiredTrigger {
                name: t.get("name")?.as_str()?.to_string(),
                actions: t
                    .get("actions")?
                    .as_array()?
                    .iter()
                    .filter_map(|a| a.as_str().map(str::to_string))
                    .collect(),
            });
        }
    }
    Some(m)
}

/// The idempotency key of an input record: its `idempotency_key`, `call_id` or `id`, else a
/// hash of the line.
fn record_key(v: &Value, line: &str) -> String {
    for k in ["idempotency_key", "call_id", "id"] {
        if let Some(s) = v
            .get(k)
            .map(switchyard::connector::scalar)
            .filter(|s| !s.is_empty())
        {
            return s;
        }
    }
    content_key(line)
}

/// The idempotency key of a record that carries none: a hash of its text.
pub(super) fn content_key(text: &str) -> String {
    use sha2::Digest;
    hex::encode(&sha2::Sha256::digest(text.as_bytes())[..16])
}

/// Map one input record with the route's compiled mapping, or read it as already mapped.
fn map_record(
    plan: Option<&switchyard::mapping::CompiledMapping>,
    ctx: &switchyard::mapping::MapContext<'_>,
    v: &Value,
) -> Result<Mapped, String> {
    match plan {
        Some(p) => p.apply(v, ctx).map_err(|e| e.to_string()),
        None => mapped_from_json(v).ok_or_else(|| {
            "not a mapped record ({\"objects\": {...}, \"triggers\": [...]})".to_string()
        }),
    }
}

/// Non-blank input lines with their 1-based line numbers.
fn read_input(input: &str) -> Result<Vec<(usize, String)>, String> {
    let lines: Vec<String> = if input == "-" {
        std::io::stdin()
            .lock()
            .lines()
            .collect::<Result<_, _>>()
            .map_err(|e| format!("cannot read stdin: {e}"))?
    } else {
        std::fs::read_to_string(input)
            .map_err(|e| format!("cannot read `{input}`: {e}"))?
            .lines()
            .map(str::to_string)
            .collect()
    };
    Ok(lines
        .into_iter()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| (i + 1, l))
        .collect())
}

/// Print the summary to stderr.
pub(super) fn print_summary(r: &DeliveryReport) {
    eprintln!(
        "created {}, updated {}, skipped {}, failed {} (dead-lettered {})",
        r.created, r.updated, r.skipped, r.failed, r.dead_lettered
    );
    for o in r.objects.iter().filter(|o| o.reason.is_some()).take(20) {
        eprintln!(
            "  {} {} {:?}: {}",
            o.key,
            o.object,
            o.outcome,
            o.reason.as_deref().unwrap_or_default()
        );
    }
    let ran = r.actions.iter().filter(|a| a.status == "ran").count();
    if !r.actions.is_empty() {
        let skipped = r.actions.iter().filter(|a| a.status == "skipped").count();
        eprintln!(
            "actions: {ran} ran, {skipped} skipped, {} failed",
            r.actions.len() - ran - skipped
        );
        for a in r.actions.iter().filter(|a| a.status != "ran").take(20) {
            eprintln!(
                "  {} {}/{} {}: {}",
                a.key,
                a.trigger,
                a.action,
                a.status,
                a.reason.as_deref().unwrap_or_default()
            );
        }
    }
}

pub(super) fn run(a: Args) -> u8 {
    super::block_on(run_async(a))
}

async fn run_async(a: Args) -> u8 {
    let plugins = match switchyard::plugin::PluginEnv::discover(a.plugin_grants.as_deref()) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("error: {e}");
            return super::EXIT_USAGE;
        }
    };
    let prepared = match prepare(&a.mapping, &a.connectors, a.sandbox, a.dry_run, &plugins).await {
        Ok(p) => p,
        Err(e) => {
            eprintln!("error: {e}");
            return super::EXIT_USAGE;
        }
    };
    if let Some(emu) = &prepared.emulator {
        eprintln!("sandbox: {} emulator at {}", emu.vendor(), emu.base_url());
    }
    let lines = match read_input(&a.input) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("error: {e}");
            return super::EXIT_USAGE;
        }
    };
    let secrets = switchyard::secrets::default_provider();
    let plugin_session = prepared.plan.as_ref().and_then(|p| p.plugin_session());
    let map_ctx = switchyard::mapping::MapContext {
        now: chrono::Utc::now(),
        secrets: &secrets,
        ext: plugin_session
            .as_ref()
            .map(|s| s as &dyn switchyard::expr::ExtCalls),
    };
    let plan = if a.mapped {
        None
    } else {
        prepared.plan.as_ref()
    };
    let mut rejected = Vec::new();
    let mut items = Vec::with_capacity(lines.len());
    for (n, line) in &lines {
        let v: Value = match serde_json::from_str(line) {
            Ok(v) => v,
            Err(e) => {
                rejected.push(switchyard::connector::ObjectOutcome {
                    key: record_key(&Value::Null, line),
                    object: "(input)".into(),
                    outcome: switchyard::connector::Outcome::Failed,
                    id: None,
                    raw_id: None,
                    reason: Some(format!("line {n}: not JSON: {e}")),
                });
                continue;
            }
        };
        match map_record(plan, &map_ctx, &v) {
            Ok(mapped) => items.push(DeliveryItem {
                key: record_key(&v, line),
                mapped,
            }),
            Err(e) => rejected.push(switchyard::connector::ObjectOutcome {
                key: record_key(&v, line),
                object: "(mapping)".into(),
                outcome: switchyard::connector::Outcome::Failed,
                id: None,
                raw_id: None,
                reason: Some(format!("line {n}: {e}")),
            }),
        }
    }
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
    let total = items.len();
    let d = Deliverer::new(session, store, opts);
    let tty = std::io::stderr().is_terminal();
    let mut done = 0usize;
    let mut report = d
        .deliver_with_progress(items, |n| {
            done += n;
            if tty {
                let width = 30;
                let filled = (done * width)
                    .checked_div(total)
                    .unwrap_or(width)
                    .min(width);
                eprint!(
                    "\r[{}{}] {done}/{total}",
                    "#".repeat(filled),
                    "-".repeat(width - filled)
                );
            }
        })
        .await;
    if tty {
        eprintln!();
    }
    report.failed += rejected.len();
    report.objects.extend(rejected);
    if a.dry_run {
        let mut out = std::io::stdout().lock();
        for line in sink.lock().unwrap_or_else(|p| p.into_inner()).iter() {
            let _ = writeln!(out, "{line}");
        }
    }
    print_summary(&report);
    if let Some(p) = &a.report {
        let mut v = serde_json::to_value(&report).unwrap_or(Value::Null);
        if let Value::Object(m) = &mut v {
            let mut meta = Map::new();
            meta.insert(
                "route".into(),
                Value::String(a.mapping.display().to_string()),
            );
            meta.insert(
                "connector".into(),
                Value::String(d.session().connector.name().into()),
            );
            meta.insert("dry_run".into(), Value::Bool(a.dry_run));
            m.insert("run".into(), Value::Object(meta));
        }
        let text = serde_json::to_string_pretty(&v).unwrap_or_default();
        if let Err(e) = std::fs::write(p, text) {
            eprintln!("error: cannot write `{}`: {e}", p.display());
            return super::EXIT_USAGE;
        }
    }
    if let Some(emu) = prepared.emulator {
        emu.shutdown().await;
    }
    if report.failed > 0 {
        super::EXIT_REJECTED
    } else {
        super::EXIT_OK
    }
}
