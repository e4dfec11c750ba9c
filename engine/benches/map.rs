//! Mapping throughput: `switchyard map`'s pipeline (selective scan → compiled plan → output
//! line) over mapping-specs/examples/hubspot-advanced.json, against a `serde_json::Value`
//! parse-and-write round trip of the same 200,000 generated NDJSON records, on one thread.
//! Prints both rates, the time ratio (target ≤ 1.0) and the peak RSS of mapping 1,000,000
//! records streamed (target < 64 MB, measured in a child process).
//!
//! Run: `cargo bench -p switchyard --bench map` (`MAP_BENCH_RECORDS=n` to change the count).

use std::io::{Read, Write};
use std::path::Path;
use std::time::Instant;
use switchyard::mapping::MapContext;
use switchyard::mapping::{load_mapping, map_stream};
use switchyard::secrets::MemoryProvider;

const PROJECTS: [&str; 5] = ["kitchen", "bathroom", "whole_home", "addition", "unknown"];
const TIMELINES: [&str; 5] = [
    "immediate",
    "1-3_months",
    "3-6_months",
    "6+_months",
    "unknown",
];
const URGENCY: [&str; 3] = ["high", "medium", "low"];
const FIRST: [&str; 6] = ["Ada", "Grace", "Zoë", "Linus", "Margaret", "José"];
const LAST: [&str; 6] = [
    "Lovelace", "Hopper", "O'Brien", "Torvalds", "Hamilton", "Núñez",
];
const CITIES: [&str; 4] = ["London", "São Paulo", "New York", "Zürich"];

struct Gen(u64);

impl Gen {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.0 >> 33
    }
    fn pick<'a>(&mut self, xs: &[&'a str]) -> &'a str {
        xs[(self.next() % xs.len() as u64) as usize]
    }
}

/// One CallRail-shaped record (about 900 bytes), appended to `out` with a newline.
fn record(g: &mut Gen, i: u64, out: &mut Vec<u8>) {
    let first = g.pick(&FIRST);
    let last = g.pick(&LAST);
    let v = serde_json::json!({
        "call_id": format!("CAL{i:09}"),
        "tenant_id": "tenant_42",
        "callrail_company_id": "COM8154748ae6bd4e278a7cddd38a662f4f",
        "caller_id": format!("+1555{:07}", g.next() % 10_000_000),
        "customer_name": format!("{first} {last}"),
        "customer_name_first": first,
        "customer_name_last": last,
        "customer_phone": format!("+1 (555) {:03}-{:04}", g.next() % 1000, g.next() % 10000),
        "customer_email": format!("{}.{}@example.com", first.to_lowercase(), i),
        "customer_city": g.pick(&CITIES),
        "customer_state": "NY",
        "phone": format!("+1555{:07}", g.next() % 10_000_000),
        "email": format!("lead{i}@example.com"),
        "source": "google_ads",
        "duration": g.next() % 900,
        "answered": g.next().is_multiple_of(2),
        "start_time": "2026-01-15T10:30:00-05:00",
        "recording_url": format!("https://api.callrail.com/v3/a/1/calls/CAL{i:09}/recording.json"),
        "transcription": if g.next().is_multiple_of(4) {
            "Agent: \"Thanks for calling!\"\nCaller: I'd like a quote for a kitchen remodel, maybe \\ soon. 🚀".to_string()
        } else {
            "Agent: Thanks for calling, how can I help you today? Caller: I would like a quote for a kitchen remodel in the next month or so, budget is flexible.".to_string()
        },
        "call_details": {"duration": g.next() % 900, "direction": "inbound", "tracking_number": "+15550001111"},
        "ai_analysis": {
            "intent": "quote_request",
            "project_type": g.pick(&PROJECTS),
            "timeline": g.pick(&TIMELINES),
            "budget_indicator": "medium",
            "sentiment": "positive",
            "lead_score": g.next() % 101,
            "urgency": g.pick(&URGENCY)
        }
    });
    serde_json::to_writer(&mut *out, &v).expect("writes");
    out.push(b'\n');
}

/// Streams generated records without holding them all.
struct RecordReader {
    gen_: Gen,
    i: u64,
    n: u64,
    buf: Vec<u8>,
    pos: usize,
}

impl Read for RecordReader {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        if self.pos == self.buf.len() {
            if self.i == self.n {
                return Ok(0);
            }
            self.buf.clear();
            self.pos = 0;
            while self.buf.len() < 1 << 16 && self.i < self.n {
                record(&mut self.gen_, self.i, &mut self.buf);
                self.i += 1;
            }
        }
        let k = out.len().min(self.buf.len() - self.pos);
        out[..k].copy_from_slice(&self.buf[self.pos..self.pos + k]);
        self.pos += k;
        Ok(k)
    }
}

fn repo() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
}

fn peak_rss_kb() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = s.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

fn main() {
    let spec = repo().join("mapping-specs/examples/hubspot-advanced.json");
    let (plan, _) = load_mapping(&spec, &repo().join("connector-specs"), None)
        .unwrap_or_else(|e| panic!("{e}"));
    let secrets = MemoryProvider::new();
    let ctx = MapContext {
        ext: None,
        now: "2026-01-15T10:30:00Z".parse().expect("time"),
        secrets: &secrets,
    };

    if std::env::var_os("MAP_BENCH_RSS_CHILD").is_some() {
        let n = 1_000_000;
        let reader = RecordReader {
            gen_: Gen(7),
            i: 0,
            n,
            buf: Vec::new(),
            pos: 0,
        };
        let rejected =
            map_stream(&plan, &ctx, reader, std::io::sink(), std::io::sink()).expect("maps");
        println!("{} {}", peak_rss_kb().unwrap_or(0), rejected);
        return;
    }

    let n: u64 = std::env::var("MAP_BENCH_RECORDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(200_000);
    let mut input = Vec::with_capacity(n as usize * 1000);
    let mut g = Gen(42);
    for i in 0..n {
        record(&mut g, i, &mut input);
    }
    let text = std::str::from_utf8(&input).expect("utf8");
    println!(
        "records: {n} ({:.1} MB, {:.0} bytes/record)",
        input.len() as f64 / 1e6,
        input.len() as f64 / n as f64
    );

    let mut best_base = f64::MAX;
    let mut best_map = f64::MAX;
    for _round in 0..3 {
        // serde_json round trip: parse into Value, write back, one thread.
        let t = Instant::now();
        let mut out = std::io::BufWriter::with_capacity(1 << 16, std::io::sink());
        let mut bytes = 0usize;
        let mut buf = Vec::with_capacity(4096);
        for line in text.lines() {
            let v: serde_json::Value = serde_json::from_str(line).expect("valid");
            buf.clear();
            serde_json::to_writer(&mut buf, &v).expect("writes");
            buf.push(b'\n');
            bytes += buf.len();
            out.write_all(&buf).expect("writes");
        }
        out.flush().expect("flush");
        best_base = best_base.min(t.elapsed().as_secs_f64());
        std::hint::black_box(bytes);

        // switchyard map's pipeline: the same function the CLI runs.
        let t = Instant::now();
        let rejected = map_stream(
            &plan,
            &ctx,
            input.as_slice(),
            std::io::sink(),
            std::io::sink(),
        )
        .expect("maps");
        best_map = best_map.min(t.elapsed().as_secs_f64());
        std::hint::black_box(rejected);
    }
    let base_rate = n as f64 / best_base;
    let map_rate = n as f64 / best_map;
    println!("serde_json Value round trip: {base_rate:>10.0} records/s ({best_base:.3} s)");
    println!("switchyard map pipeline:     {map_rate:>10.0} records/s ({best_map:.3} s)");
    println!(
        "time ratio map / round trip: {:.3} (target <= 1.0)",
        best_map / best_base
    );

    let exe = std::env::current_exe().expect("exe");
    match std::process::Command::new(exe)
        .env("MAP_BENCH_RSS_CHILD", "1")
        .output()
    {
        Ok(o) if o.status.success() => {
            let s = String::from_utf8_lossy(&o.stdout);
            let mut it = s.split_whitespace();
            let kb: u64 = it.next().and_then(|x| x.parse().ok()).unwrap_or(0);
            let rejected = it.next().unwrap_or("?");
            println!(
                "peak RSS mapping 1,000,000 streamed records: {:.1} MB (target < 64 MB), rejected {rejected}",
                kb as f64 / 1024.0
            );
        }
        Ok(o) => println!("rss child failed: {}", String::from_utf8_lossy(&o.stderr)),
        Err(e) => println!("rss child failed: {e}"),
    }
}
