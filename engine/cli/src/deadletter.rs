//! `switchyard deadletter list|replay`: show the records that could not be delivered, with
//! their reasons, and send them again through their route.

use super::run::{mapped_from_json, open_store, options, prepare, print_summary};
use std::io::Write;
use std::path::PathBuf;
use switchyard::connector::{Deliverer, DeliveryItem};

/// Arguments of `switchyard deadletter`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// What to do.
    #[command(subcommand)]
    pub command: Sub,
}

/// Subcommands of `switchyard deadletter`.
#[derive(Debug, clap::Subcommand)]
pub enum Sub {
    /// List dead letters (pending ones unless `--all`).
    List {
        /// The engine's store.
        #[arg(
            long,
            value_name = "FILE",
            default_value = ".switchyard/switchyard.sqlite"
        )]
        store: PathBuf,
        /// Include replayed ones.
        #[arg(long)]
        all: bool,
        /// One JSON object per line instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Re-send pending dead letters through their route; successes are marked replayed, and a
    /// record that fails again gets a new dead letter with the new reason.
    Replay {
        /// The engine's store.
        #[arg(
            long,
            value_name = "FILE",
            default_value = ".switchyard/switchyard.sqlite"
        )]
        store: PathBuf,
        /// Only these ids (default: every pending one).
        #[arg(long = "id")]
        ids: Vec<i64>,
        /// Use this mapping spec instead of the route each dead letter recorded.
        #[arg(long, value_name = "FILE")]
        mapping: Option<PathBuf>,
        /// Folder of connector specs.
        #[arg(long, value_name = "DIR", default_value = "connector-specs")]
        connectors: PathBuf,
    },
}

pub(super) fn run(a: Args) -> u8 {
    match a.command {
        Sub::List { store, all, json } => {
            let s = match open_store(&store) {
                Ok(s) => s,
                Err(e) => {
                    eprintln!("error: {e}");
                    return super::EXIT_USAGE;
                }
            };
            let rows = match s.dead_letters(!all) {
                Ok(r) => r,
                Err(e) => {
                    eprintln!("error: {e}");
                    return super::EXIT_USAGE;
                }
            };
            let mut out = std::io::stdout().lock();
            for r in &rows {
                let _ = if json {
                    writeln!(out, "{}", serde_json::to_string(r).unwrap_or_default())
                } else {
                    writeln!(
                        out,
                        "{}\t{}\t{}\t{}\t{}\t{}\t{}",
                        r.id, r.created_at, r.status, r.connector, r.object, r.record_key, r.reason
                    )
                };
            }
            if !json {
                eprintln!("{} dead letters", rows.len());
            }
            super::EXIT_OK
        }
        Sub::Replay {
            store,
            ids,
            mapping,
            connectors,
        } => {
            let rt = match tokio::runtime::Runtime::new() {
                Ok(rt) => rt,
                Err(e) => {
                    eprintln!("error: {e}");
                    return super::EXIT_USAGE;
                }
            };
            rt.block_on(replay(store, ids, mapping, connectors))
        }
    }
}

async fn replay(
    store: PathBuf,
    ids: Vec<i64>,
    mapping: Option<PathBuf>,
    connectors: PathBuf,
) -> u8 {
    let s = match open_store(&store) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            return super::EXIT_USAGE;
        }
    };
    let rows = match s.dead_letters(true) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {e}");
            return super::EXIT_USAGE;
        }
    };
    let plugins = match switchyard::plugin::PluginEnv::discover(None) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("error: {e}");
            return super::EXIT_USAGE;
        }
    };
    let mut failed = 0;
    for r in rows
        .into_iter()
        .filter(|r| ids.is_empty() || ids.contains(&r.id))
    {
        let route = mapping.clone().unwrap_or_else(|| PathBuf::from(&r.route));
        let p = match prepare(&route, &connectors, false, false, &plugins).await {
            Ok(p) => p,
            Err(e) => {
                eprintln!("{}: error: {e}", r.id);
                failed += 1;
                continue;
            }
        };
        let Some(mapped) = mapped_from_json(&r.payload) else {
            eprintln!("{}: error: the stored payload is not a mapped record", r.id);
            failed += 1;
            continue;
        };
        let opts = options(&p.mapping, &p.session, &route, 1);
        let d = Deliverer::new(p.session.with_token_store(s.clone()), Some(s.clone()), opts);
        let report = d
            .deliver(vec![DeliveryItem {
                key: r.record_key.clone(),
                mapped,
            }])
            .await;
        eprint!("{} ({}): ", r.id, r.record_key);
        print_summary(&report);
        if let Err(e) = s.mark_replayed(r.id) {
            eprintln!("error: {e}");
        }
        if report.failed > 0 {
            failed += 1;
        }
    }
    if failed > 0 {
        super::EXIT_REJECTED
    } else {
        super::EXIT_OK
    }
}
