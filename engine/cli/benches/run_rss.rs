//! Benchmark: `switchyard run` streams. One million generated call records are piped into
//! `switchyard run --input -` (a real process, its real SQLite store), delivered through
//! HubSpot's batch-create operation to a sink on 127.0.0.1 that answers as HubSpot does and keeps
//! only counts. Prints records/s and the run process's peak RSS next to the target
//! (64 MB, issue 11) with a MET / NOT MET verdict; exits non-zero when a target is missed or a
//! record went missing.
//!
//! `RSS_BENCH_RECORDS=N` changes the count (default 1,000,000).
//!
//! ```text
//! cargo bench -p switchyard-cli --bench run_rss
//! ```

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use serde_json::{Value, json};
use std::io::{BufWriter, Write};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

const TARGET_RSS_MB: f64 = 64.0;

#[derive(Default)]
struct Sink {
    requests: AtomicU64,
    created: AtomicU64,
    next_id: AtomicU64,
}

/// HubSpot's batch create: `{"inputs": [{"properties": {...}}]}` → 201 with one result per
/// input (id and properties).
async fn batch_create(
    State(sink): State<Arc<Sink>>,
    Json(body): Json<Value>,
) -> (StatusCode, Json<Value>) {
    sink.requests.fetch_add(1, Ordering::Relaxed);
    let inputs = body["inputs"].as_array().cloned().unwrap_or_default();
    let now = "2026-01-01T00:00:00.000Z";
    let results: Vec<Value> = inputs
        .into_iter()
        .map(|i| {
            let id = sink.next_id.fetch_add(1, Ordering::Relaxed) + 1;
            json!({"id": id.to_string(), "properties": i["properties"], "createdAt": now,
                   "updatedAt": now, "archived": false})
        })
        .collect();
    sink.created
        .fetch_add(results.len() as u64, Ordering::Relaxed);
    (
        StatusCode::CREATED,
        Json(
            json!({"status": "COMPLETE", "results": results, "startedAt": now, "completedAt": now}),
        ),
    )
}

fn main() {
    let records: u64 = std::env::var("RSS_BENCH_RECORDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1_000_000);
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let tmp = tempfile::tempdir().expect("tmp");

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let sink = Arc::new(Sink::default());
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let app = axum::Router::new()
        .route("/crm/v3/objects/contacts/batch/create", post(batch_create))
        .with_state(sink.clone());
    rt.spawn(async move { axum::serve(listener, app).await });

    // HubSpot's connector spec, pointed at the sink, with a budget the sink can take.
    let specs = tmp.path().join("connectors");
    std::fs::create_dir(&specs).expect("mkdir");
    let spec = std::fs::read_to_string(root.join("connector-specs/hubspot.toml"))
        .expect("hubspot spec")
        .replace(
            "base_url = \"https://api.hubapi.com\"",
            &format!("base_url = \"http://{addr}\""),
        )
        .replace(
            "requests = 100\nper_seconds = 10",
            "requests = 1000000\nper_seconds = 1",
        );
    std::fs::write(specs.join("hubspot.toml"), spec).expect("write spec");
    let mapping = tmp.path().join("route.json");
    std::fs::write(
        &mapping,
        json!({"spec_version": 1, "tenant": "bench", "connector": "hubspot",
               "crm_config": {"type": "hubspot", "api_token": "env:RSS_BENCH_TOKEN",
                              "field_mappings": {"email": "email", "phone": "phone",
                                                 "firstname": "first_name",
                                                 "lastname": "last_name"}}})
        .to_string(),
    )
    .expect("write mapping");

    let started = Instant::now();
    let mut child = Command::new(env!("CARGO_BIN_EXE_switchyard"))
        .args(["run", "--input", "-", "--concurrency", "8", "--mapping"])
        .arg(&mapping)
        .arg("--connectors")
        .arg(&specs)
        .arg("--store")
        .arg(tmp.path().join("store.sqlite"))
        .arg("--report")
        .arg(tmp.path().join("report.json"))
        .env("RSS_BENCH_TOKEN", "bench-token-not-a-secret")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("starts switchyard run");
    let stdin = child.stdin.take().expect("stdin");
    let writer = std::thread::spawn(move || {
        let mut w = BufWriter::with_capacity(1 << 16, stdin);
        for i in 0..records {
            // A call record as CallRail sends it, with a transcript so lines are realistic.
            writeln!(
                w,
                r#"{{"id":"call-{i}","email":"caller{i}@example.com","phone":"+1415555{:04}","first_name":"Caller","last_name":"Number {i}","duration":{},"transcript":"Hello, I am calling about the quote you sent last week; could someone call me back this afternoon?"}}"#,
                i % 10_000,
                i % 600
            )?;
        }
        w.flush()
    });
    let status = child.wait().expect("waits");
    let elapsed = started.elapsed();
    writer.join().expect("writer").expect("wrote the input");
    let peak_mb = peak_child_rss_mb();

    let mut report: Value = serde_json::from_slice(
        &std::fs::read(tmp.path().join("report.json")).expect("run wrote its report"),
    )
    .expect("report is JSON");
    // The per-object outcomes (streamed to the file by the run) are not printed.
    let outcomes = report
        .as_object_mut()
        .and_then(|o| o.remove("objects"))
        .and_then(|v| v.as_array().map(Vec::len))
        .unwrap_or(0);
    let created = sink.created.load(Ordering::Relaxed);
    let rate = records as f64 / elapsed.as_secs_f64();
    let rss_met = peak_mb < TARGET_RSS_MB;
    let all_there = created == records && outcomes as u64 == records && status.success();
    println!(
        "run_rss: {records} records in {:.1} s = {rate:.0} records/s; {} batch requests; {created} contacts created; {outcomes} outcomes in the report; summary: {}",
        elapsed.as_secs_f64(),
        sink.requests.load(Ordering::Relaxed),
        report
    );
    println!(
        "run_rss: peak RSS of `switchyard run` {peak_mb:.1} MB (target < {TARGET_RSS_MB} MB): {}",
        if rss_met { "MET" } else { "NOT MET" }
    );
    println!(
        "run_rss: every record delivered exactly once, exit 0: {}",
        if all_there { "MET" } else { "NOT MET" }
    );
    if !(rss_met && all_there) {
        std::process::exit(1);
    }
}

/// The peak resident set of the largest child waited for, in MB (Linux reports KiB).
fn peak_child_rss_mb() -> f64 {
    // SAFETY: getrusage only writes the struct it is given.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let rc = unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, &mut usage) };
    assert_eq!(rc, 0, "getrusage");
    usage.ru_maxrss as f64 / 1024.0
}
