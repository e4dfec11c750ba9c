//! Delivery benchmark: 10,000 contacts to the HubSpot emulator enforcing HubSpot's 100
//! requests per 10 s, through the batch endpoint (100 per request) and the spec's own rate
//! limit. Prints records/s, requests/s against the allowed rate, and the 429s received.

use serde_json::{Map, json};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;
use switchyard::connector::{
    Binding, Connector, Deliverer, DeliveryItem, DeliveryOptions, Runtime, Secret,
};
use switchyard::record::Mapped;
use switchyard_sandbox::{self as sandbox, SandboxOptions, Vendor};

fn main() -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(run())
}

async fn run() -> anyhow::Result<()> {
    let n: usize = std::env::var("DELIVER_BENCH_RECORDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(10_000);
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let spec = switchyard::connector::load_spec(&root.join("connector-specs/hubspot.toml"))?;
    let rl = spec
        .rate_limit
        .clone()
        .ok_or_else(|| anyhow::anyhow!("hubspot spec has no rate limit"))?;
    let emu = sandbox::start(Vendor::Hubspot, SandboxOptions::default()).await?;
    let token = emu
        .credentials()
        .get("access_token")
        .unwrap_or_default()
        .to_string();
    let connector = Arc::new(Connector::compile(spec)?);
    let session = Runtime::new().session(
        connector,
        Binding {
            tenant: "bench".into(),
            config: Map::new(),
            secrets: HashMap::from([("api_token".to_string(), Secret::new(token))]),
            base_url: Some(emu.base_url().to_string()),
        },
    );
    let items: Vec<DeliveryItem> = (0..n)
        .map(|i| {
            let mut o = Map::new();
            o.insert("email".into(), json!(format!("bench{i}@example.com")));
            o.insert("firstname".into(), json!("Bench"));
            o.insert("lastname".into(), json!(format!("No{i}")));
            o.insert("phone".into(), json!(format!("+1555{i:07}")));
            let mut objects = indexmap::IndexMap::new();
            objects.insert("contact".to_string(), o);
            DeliveryItem {
                key: format!("bench_{i}"),
                mapped: Mapped {
                    objects,
                    triggers: vec![],
                    notes: vec![],
                },
            }
        })
        .collect();
    let d = Deliverer::new(
        session,
        None,
        DeliveryOptions {
            concurrency: 4,
            ..Default::default()
        },
    );
    let start = Instant::now();
    let report = d.deliver(items).await;
    let secs = start.elapsed().as_secs_f64();
    let stats = emu.stats();
    let allowed = f64::from(rl.requests) / f64::from(rl.per_seconds);
    let rate = stats.requests as f64 / secs;
    println!(
        "deliver: {n} contacts to the HubSpot emulator ({}/{} s limit)",
        rl.requests, rl.per_seconds
    );
    println!(
        "  created {} failed {} in {secs:.2} s",
        report.created, report.failed
    );
    println!("  {:.0} records/s", report.created as f64 / secs);
    println!(
        "  {} requests ({:.1} records/request), {rate:.2} requests/s = {:.1}% of the allowed {allowed:.1}/s",
        stats.requests,
        report.created as f64 / stats.requests.max(1) as f64,
        100.0 * rate / allowed
    );
    println!(
        "  429 responses: {}",
        stats.by_status.get(&429).copied().unwrap_or(0)
    );
    emu.shutdown().await;
    Ok(())
}
