//! `switchyard connectors test [NAME…]`: check each connector's credentials and reachability
//! with its `test_operation` (seed 001's "test all connections").

use super::common::{engine, route_spec};
use std::path::PathBuf;
use std::time::Instant;
use switchyard::engine::Engine;

/// Arguments of `switchyard connectors`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// What to do.
    #[command(subcommand)]
    pub command: Sub,
}

/// Subcommands of `switchyard connectors`.
#[derive(Debug, clap::Subcommand)]
pub enum Sub {
    /// Check credentials and reachability of the tenant's connectors.
    Test(TestArgs),
}

/// Arguments of `switchyard connectors test`.
#[derive(Debug, clap::Args)]
pub struct TestArgs {
    /// Connectors to test (default: every connector a tenant config names).
    pub names: Vec<String>,
    /// Tenant configs (mapping specs) giving settings and secrets, one per connector.
    /// Without any, each named connector (default: every spec in `--connectors`) is tested
    /// with no tenant settings: with `--sandbox` against its emulator, else reporting what
    /// is missing.
    #[arg(long = "tenant-config", value_name = "FILE")]
    pub tenant_configs: Vec<PathBuf>,
    /// Folder of connector specs.
    #[arg(long, value_name = "DIR", default_value = "connector-specs")]
    pub connectors: PathBuf,
    /// Test against the in-process emulators.
    #[arg(long)]
    pub sandbox: bool,
}

pub(super) fn run(a: Args) -> u8 {
    let Sub::Test(a) = a.command;
    let rt = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: {e}");
            return super::EXIT_USAGE;
        }
    };
    rt.block_on(async move {
        let mut failed = 0;
        let mut tested = 0;
        let mut routes: Vec<(
            PathBuf,
            Result<switchyard::spec::mapping::MappingSpec, String>,
        )> = a
            .tenant_configs
            .iter()
            .map(|c| {
                (
                    c.clone(),
                    switchyard::spec::load_as::<switchyard::spec::MappingSpec>(c)
                        .map(|(m, _)| m)
                        .map_err(|e| e.to_string()),
                )
            })
            .collect();
        if a.tenant_configs.is_empty() {
            let names: Vec<String> = if a.names.is_empty() {
                spec_names(&a.connectors)
            } else {
                a.names.clone()
            };
            for n in names {
                routes.push((
                    PathBuf::from(format!("(default route of {n})")),
                    Engine::default_route(&n).map_err(|e| e.to_string()),
                ));
            }
        }
        let engine = match engine(&a.connectors, None, None) {
            Ok(e) => e,
            Err(e) => {
                eprintln!("error: {e}");
                return super::EXIT_USAGE;
            }
        };
        for (cfg, route) in routes {
            let cfg = &cfg;
            let (route, emulator) =
                match async { route_spec(&engine, route?, cfg, a.sandbox).await }.await {
                    Ok(p) => p,
                    Err(e) => {
                        outln!("{}\tfailed\t{e}", cfg.display());
                        failed += 1;
                        continue;
                    }
                };
            let name = route.mapping().connector.clone();
            if !a.names.is_empty() && !a.names.contains(&name) {
                continue;
            }
            tested += 1;
            let missing = route.missing_settings();
            let line = if !missing.is_empty() {
                failed += 1;
                format!("failed\tmissing {}", missing.join(", "))
            } else {
                let t = Instant::now();
                match route.test_connection().await {
                    Ok(Some(status)) => format!("ok\t{status} in {} ms", t.elapsed().as_millis()),
                    Ok(None) => "skipped\tthe spec declares no test_operation".to_string(),
                    Err(e) => {
                        failed += 1;
                        format!("failed\t{e}")
                    }
                }
            };
            outln!("{name}\t{}\t{line}", route.tenant());
            if let Some(emu) = emulator {
                emu.shutdown().await;
            }
        }
        for n in a.names.iter().filter(|_| !a.tenant_configs.is_empty()) {
            let known = a
                .tenant_configs
                .iter()
                .filter_map(|c| {
                    switchyard::spec::load_as::<switchyard::spec::MappingSpec>(c)
                        .ok()
                        .map(|(m, _)| m)
                })
                .any(|m| &m.connector == n);
            if !known {
                outln!("{n}\t-\tfailed\tno tenant config names this connector");
                failed += 1;
            }
        }
        if tested == 0 && failed == 0 {
            eprintln!("error: nothing to test");
            return super::EXIT_USAGE;
        }
        if failed > 0 {
            super::EXIT_REJECTED
        } else {
            super::EXIT_OK
        }
    })
}

/// Names of the connector specs in `dir` that are not inbound-only sources.
fn spec_names(dir: &std::path::Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| switchyard::connector::load_spec(&e.path()).ok())
        .filter(|c| c.connector.kind != switchyard::spec::connector::ConnectorKind::Source)
        .map(|c| c.connector.name)
        .collect();
    names.sort();
    names
}
