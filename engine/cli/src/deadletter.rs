//! `switchyard deadletter list|replay`: show the records that could not be delivered, with
//! their reasons, and send them again through their route.

use super::common::{Tally, engine};
use std::io::Write;
use std::path::PathBuf;
use switchyard::connector::{DeliveryItem, Input, RejectedInput};
use switchyard::engine::RouteOptions;

fn open_store(p: &std::path::Path) -> Result<std::sync::Arc<switchyard::store::Store>, String> {
    switchyard::store::Store::open(p)
        .map(std::sync::Arc::new)
        .map_err(|e| e.to_string())
}

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
    /// Re-send pending dead letters through their route (each route compiled once). A record
    /// delivered now leaves the pending list (status `delivered`); one that fails again keeps
    /// its dead letter with the new reason. Lines that never became records (`(input)`,
    /// `(mapping)`) are mapped again with the route's current mapping.
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
        /// Records whose earlier outcome is unknown and that have no field to look them up by
        /// are not sent again (a retry could duplicate them). After checking the CRM, say they
        /// were not created, and they are.
        #[arg(long)]
        assume_not_created: bool,
        /// Use this mapping spec instead of the route each dead letter recorded.
        #[arg(long, value_name = "FILE")]
        mapping: Option<PathBuf>,
        /// Folder of connector specs.
        #[arg(long, value_name = "DIR", default_value = "connector-specs")]
        connectors: PathBuf,
    },
    /// Load dead letters that the store refused during a run (the NDJSON fallback file beside
    /// the store, `<store>.dead-letters.ndjson`) into the store, then remove the file.
    Import {
        /// The engine's store.
        #[arg(
            long,
            value_name = "FILE",
            default_value = ".switchyard/switchyard.sqlite"
        )]
        store: PathBuf,
        /// The fallback file (default: the store's).
        #[arg(long, value_name = "FILE")]
        file: Option<PathBuf>,
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
        Sub::Import { store, file } => import(&store, file),
        Sub::Replay {
            store,
            ids,
            assume_not_created,
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
            rt.block_on(replay(store, ids, assume_not_created, mapping, connectors))
        }
    }
}

fn import(store: &std::path::Path, file: Option<PathBuf>) -> u8 {
    let s = match open_store(store) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            return super::EXIT_USAGE;
        }
    };
    let file = file.unwrap_or_else(|| s.fallback_path());
    let text = match std::fs::read_to_string(&file) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("error: cannot read `{}`: {e}", file.display());
            return super::EXIT_USAGE;
        }
    };
    let mut n = 0;
    for (i, line) in text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
    {
        let v: serde_json::Value = match serde_json::from_str(line) {
            Ok(v) => v,
            Err(e) => {
                eprintln!("error: `{}` line {}: {e}", file.display(), i + 1);
                return super::EXIT_USAGE;
            }
        };
        let f = |k: &str| v.get(k).and_then(|x| x.as_str()).unwrap_or_default();
        let d = switchyard::store::NewDeadLetter {
            tenant: f("tenant"),
            connector: f("connector"),
            route: f("route"),
            object: f("object"),
            record_key: f("record_key"),
            payload: v.get("payload").unwrap_or(&serde_json::Value::Null),
            reason: f("reason"),
            attempts: v.get("attempts").and_then(|x| x.as_u64()).unwrap_or(1) as u32,
            settle: None,
            correlation_id: v.get("correlation_id").and_then(|x| x.as_str()),
        };
        if let Err(e) = s.dead_letter(&d) {
            eprintln!("error: {e} (nothing after line {} was imported)", i + 1);
            return super::EXIT_USAGE;
        }
        n += 1;
    }
    if let Err(e) = std::fs::remove_file(&file) {
        eprintln!(
            "warning: imported, but cannot remove `{}`: {e}",
            file.display()
        );
    }
    eprintln!("imported {n} dead letters");
    super::EXIT_OK
}

async fn replay(
    store: PathBuf,
    ids: Vec<i64>,
    assume_not_created: bool,
    mapping: Option<PathBuf>,
    connectors: PathBuf,
) -> u8 {
    let engine = match engine(&connectors, Some(&store), None) {
        Ok(e) => e,
        Err(e) => {
            eprintln!("error: {e}");
            return super::EXIT_USAGE;
        }
    };
    let Some(s) = engine.store().cloned() else {
        return super::EXIT_USAGE;
    };
    let rows = match s.dead_letters(true) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {e}");
            return super::EXIT_USAGE;
        }
    };
    // Group by route: each route is compiled and bound once.
    let mut by_route: indexmap::IndexMap<PathBuf, Vec<switchyard::store::DeadLetter>> =
        indexmap::IndexMap::new();
    for r in rows
        .into_iter()
        .filter(|r| ids.is_empty() || ids.contains(&r.id))
    {
        let route = mapping.clone().unwrap_or_else(|| PathBuf::from(&r.route));
        by_route.entry(route).or_default().push(r);
    }
    let mut tally = Tally::new(None);
    let mut unusable = 0usize;
    for (path, rows) in by_route {
        let route = match engine.route_file(&path, RouteOptions::default()) {
            Ok(r) => r,
            Err(e) => {
                eprintln!("{}: error: {e}", path.display());
                unusable += rows.len();
                continue;
            }
        };
        let mut inputs = Vec::with_capacity(rows.len());
        for r in &rows {
            if let Some(mapped) = route.mapped_from_json(&r.payload) {
                inputs.push(Input::Record(DeliveryItem {
                    key: r.record_key.clone(),
                    mapped,
                }));
                continue;
            }
            // A line that never became a record: map it again with the route as it is now.
            let raw = match (r.payload.get("input"), r.payload.get("input_base64")) {
                (Some(serde_json::Value::String(t)), _) => t.clone().into_bytes(),
                (_, Some(serde_json::Value::String(b))) => {
                    use base64::Engine as _;
                    base64::engine::general_purpose::STANDARD
                        .decode(b)
                        .unwrap_or_default()
                }
                _ => {
                    eprintln!(
                        "{}: error: the stored payload is neither a mapped record nor an input line",
                        r.id
                    );
                    unusable += 1;
                    continue;
                }
            };
            let line = r
                .payload
                .get("line")
                .and_then(serde_json::Value::as_u64)
                .unwrap_or(0) as usize;
            match route.judge_line(&raw, line) {
                Some(Input::Record(mut it)) => {
                    it.key = r.record_key.clone();
                    inputs.push(Input::Record(it));
                }
                Some(Input::Rejected(rej)) => inputs.push(Input::Rejected(RejectedInput {
                    key: r.record_key.clone(),
                    ..rej
                })),
                None => {}
            }
        }
        let d = route.deliverer();
        if assume_not_created {
            let ns = d.namespace();
            for r in &rows {
                if let Ok(Some((state, _))) =
                    s.delivery_state(&r.tenant, &ns, &r.object, &r.record_key)
                    && state == "pending"
                    && let Err(e) = s.settle_refused(&r.tenant, &ns, &r.object, &r.record_key)
                {
                    eprintln!("{}: error: {e}", r.id);
                }
            }
        }
        d.deliver_stream(futures::stream::iter(inputs), |r| {
            for o in &r.objects {
                eprintln!(
                    "{} {}: {:?}{}",
                    o.key,
                    o.object,
                    o.outcome,
                    o.reason
                        .as_deref()
                        .map(|x| format!(": {x}"))
                        .unwrap_or_default()
                );
            }
            tally.add(r);
        })
        .await;
    }
    if let Err(e) = engine.retire() {
        eprintln!("warning: {e}");
    }
    tally.print();
    if tally.counts.failed > 0 || unusable > 0 || tally.counts.dead_letter_failures > 0 {
        super::EXIT_REJECTED
    } else {
        super::EXIT_OK
    }
}
