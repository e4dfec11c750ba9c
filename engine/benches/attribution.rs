//! Attribution benchmark: 1,000,000 generated journeys over 10 channels through every model
//! (targets: heuristics together < 2 s, Markov order 1 < 5 s, exact Shapley < 10 s, peak memory
//! < 1 GB), then 200,000 NDJSON-shaped records through a compiled spec (records/s).
//!
//! Run: `cargo bench -p switchyard --bench attribution`.

use serde_json::json;
use std::time::Instant;
use switchyard::attribution::Plan;
use switchyard::attribution::markov::markov;
use switchyard::attribution::models::{HeuristicParams, Journey, Journeys, heuristic_table};
use switchyard::attribution::shapley::shapley;
use switchyard::spec::AttributionSpec;
use switchyard::spec::attribution::ModelKind;

/// xorshift64*: deterministic and dependency-free.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn journeys(n: usize, channels: u32) -> Journeys {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let mut js = Journeys {
        channels: (0..channels).map(|c| format!("channel_{c}")).collect(),
        paths: Vec::with_capacity(n),
    };
    for _ in 0..n {
        let len = 1 + rng.below(8) as usize;
        let mut j = Journey::default();
        let mut age = rng.below(30) as f64;
        for _ in 0..len {
            // Skewed channel popularity so that some channel sets repeat.
            let c = (rng.below(u64::from(channels)) * rng.below(u64::from(channels)))
                / u64::from(channels);
            j.channels.push(c as u32);
            j.ages_days.push(age);
            age = (age - rng.below(5) as f64).max(0.0);
        }
        if rng.below(10) < 3 {
            j.conversions = 1.0;
            j.value = 10.0 + rng.below(990) as f64;
        } else {
            j.nulls = 1.0;
        }
        js.paths.push(j);
    }
    js
}

fn peak_rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

fn main() {
    let n = 1_000_000;
    let t = Instant::now();
    let js = journeys(n, 10);
    let touches: usize = js.paths.iter().map(|j| j.channels.len()).sum();
    println!(
        "generated {n} journeys ({touches} touches) over 10 channels in {:.2} s",
        t.elapsed().as_secs_f64()
    );

    let params = HeuristicParams::default();
    let t = Instant::now();
    let mut check = 0.0;
    for kind in [
        ModelKind::FirstTouch,
        ModelKind::LastTouch,
        ModelKind::Linear,
        ModelKind::TimeDecay,
        ModelKind::PositionBased,
    ] {
        check += heuristic_table(kind, &js, &params)
            .iter()
            .map(|c| c.conversions)
            .sum::<f64>();
    }
    let heuristics = t.elapsed().as_secs_f64();
    println!(
        "heuristic models (5 together): {heuristics:.3} s  ({:.0} journeys/s per model; credited {check:.0})",
        5.0 * n as f64 / heuristics
    );

    let t = Instant::now();
    let m = markov(&js, 1);
    let markov_s = t.elapsed().as_secs_f64();
    println!(
        "markov order 1: {markov_s:.3} s  (P(conversion) {:.4}, expected value {:.2})",
        m.conversion_probability, m.expected_value
    );

    let t = Instant::now();
    let m2 = markov(&js, 2);
    println!(
        "markov order 2: {:.3} s  (P(conversion) {:.4})",
        t.elapsed().as_secs_f64(),
        m2.conversion_probability
    );

    let t = Instant::now();
    let s = shapley(&js, 15).unwrap_or_default();
    let shapley_s = t.elapsed().as_secs_f64();
    println!(
        "shapley exact over 10 channels: {shapley_s:.3} s  (credited {:.0})",
        s.iter().map(|c| c.conversions).sum::<f64>()
    );
    drop(js);

    // The whole pipeline: records → identity → journeys → all models → CausalMarketingData.
    let spec: AttributionSpec = match toml::from_str(PIPELINE_SPEC) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("bench spec: {e}");
            return;
        }
    };
    let plan = match Plan::compile(&spec) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("bench spec: {e}");
            return;
        }
    };
    let mut rng = Rng(7);
    let people = 40_000;
    let mut records = Vec::new();
    for i in 0..200_000u64 {
        let p = rng.below(people);
        let at = 1_700_000_000 + rng.below(90 * 86_400) as i64;
        records.push(if i % 5 == 0 {
            json!({"source": "shop", "email": format!("p{p}@x.io"), "total": rng.below(500), "at": at, "id": i})
        } else {
            json!({"source": "web", "email": format!("P{p}@x.io "), "utm_source": format!("c{}", rng.below(10)), "at": at})
        });
    }
    let t = Instant::now();
    match plan.run(&records) {
        Ok(out) => {
            let secs = t.elapsed().as_secs_f64();
            println!(
                "pipeline: {} records → {} conversions, all 7 models, in {secs:.3} s ({:.0} records/s)",
                records.len(),
                out.records.len(),
                records.len() as f64 / secs
            );
        }
        Err(e) => eprintln!("pipeline: {e}"),
    }
    if let Some(mib) = peak_rss_mib() {
        println!("peak memory (VmHWM): {mib:.0} MiB");
    }
    let ok = heuristics < 2.0 && markov_s < 5.0 && shapley_s < 10.0;
    println!(
        "targets (heuristics < 2 s, markov < 5 s, shapley < 10 s): {}",
        if ok { "met" } else { "MISSED" }
    );
}

const PIPELINE_SPEC: &str = r#"
spec_version = 1
[attribution]
name = "bench"
tenant = "bench"
[[attribution.identity]]
source = "web"
email = "email"
[[attribution.identity]]
source = "shop"
email = "email"
[[attribution.conversions]]
name = "order"
source = "shop"
value = "total"
time = "at"
[attribution.conversions.confounders]
basket = "total"
[[attribution.touchpoints]]
name = "visit"
source = "web"
channel = "utm_source"
time = "at"
[[attribution.treatment_rules]]
condition = "journey.first_channel == 'c1'"
treatment_group = "c1"
assignment_method = "utm_based"
"#;
