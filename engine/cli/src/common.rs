//! What the subcommands share: building the [`Engine`] from flags, starting the emulator of a
//! route's connector for `--sandbox`, and the summary and report of a delivery.

use std::io::Write;
use std::path::{Path, PathBuf};
use switchyard::connector::{DeliveryCounts, RecordResult};
use switchyard::engine::{Engine, EngineError, RouteOptions, SandboxBinding, StoreUrl};
use switchyard_sandbox::Emulator;

/// The engine of one command: connectors folder, store (none for dry runs), plugin grants.
pub(super) fn engine(
    connectors: &Path,
    store: Option<&Path>,
    grants: Option<&Path>,
) -> Result<Engine, EngineError> {
    Engine::builder()
        .connectors_dir(connectors)
        .store(match store {
            Some(p) => StoreUrl::Sqlite(p.to_path_buf()),
            None => StoreUrl::None,
        })
        .plugin_grants(grants.map(Path::to_path_buf))
        .build()
}

/// The emulator of `connector`, started on a free port, and the binding that sends a route
/// to it.
pub(super) async fn start_sandbox(connector: &str) -> Result<(Emulator, SandboxBinding), String> {
    let vendor: switchyard_sandbox::Vendor = connector
        .parse()
        .map_err(|_| format!("there is no emulator for connector `{connector}`"))?;
    let emu = switchyard_sandbox::start(vendor, switchyard_sandbox::SandboxOptions::default())
        .await
        .map_err(|e| e.to_string())?;
    let binding = SandboxBinding {
        base_url: emu.base_url().to_string(),
        credentials: emu
            .credentials()
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    };
    Ok((emu, binding))
}

/// A route from a mapping spec file, delivering to its connector's emulator with `sandbox`.
pub(super) async fn route_file(
    engine: &Engine,
    path: &Path,
    sandbox: bool,
    opts: RouteOptions,
) -> Result<(switchyard::engine::Route, Option<Emulator>), String> {
    if !sandbox {
        return engine
            .route_file(path, opts)
            .map(|r| (r, None))
            .map_err(|e| e.to_string());
    }
    let (mapping, _) = switchyard::spec::load_as::<switchyard::spec::MappingSpec>(path)
        .map_err(|e| e.to_string())?;
    let (emu, binding) = start_sandbox(&mapping.connector).await?;
    let opts = RouteOptions {
        sandbox: Some(binding),
        ..opts
    };
    match engine.route_file(path, opts) {
        Ok(r) => Ok((r, Some(emu))),
        Err(e) => {
            emu.shutdown().await;
            Err(e.to_string())
        }
    }
}

/// A route from an in-memory mapping spec (a tenant config, or a connector's default route).
pub(super) async fn route_spec(
    engine: &Engine,
    mapping: switchyard::spec::MappingSpec,
    origin: &Path,
    sandbox: bool,
) -> Result<(switchyard::engine::Route, Option<Emulator>), String> {
    let (emu, opts) = if sandbox {
        let (emu, binding) = start_sandbox(&mapping.connector).await?;
        (
            Some(emu),
            RouteOptions {
                sandbox: Some(binding),
                ..RouteOptions::default()
            },
        )
    } else {
        (None, RouteOptions::default())
    };
    match engine.route(mapping, origin, opts) {
        Ok(r) => Ok((r, emu)),
        Err(e) => {
            if let Some(emu) = emu {
                emu.shutdown().await;
            }
            Err(e.to_string())
        }
    }
}

/// What a run keeps of its results: counts, the first reasons for the summary, and the
/// `--report` file written as results arrive (memory stays bounded whatever the input size).
pub(super) struct Tally {
    pub counts: DeliveryCounts,
    notes: Vec<String>,
    action_notes: Vec<String>,
    actions: [usize; 3],
    pub report: Option<ReportWriter>,
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
    pub fn finish(
        mut self,
        counts: &DeliveryCounts,
        run: serde_json::Value,
    ) -> std::io::Result<()> {
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
        if let serde_json::Value::Object(c) =
            serde_json::to_value(counts).unwrap_or(serde_json::Value::Null)
        {
            for (k, v) in c {
                write!(self.out, ",{}:{v}", serde_json::Value::String(k))?;
            }
        }
        write!(self.out, ",\"run\":{run}}}")?;
        self.out.flush()
    }
}
