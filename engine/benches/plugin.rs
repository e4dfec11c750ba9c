//! Plugin host benchmarks against the targets of issue 5: a mapping function called with a 1 KB
//! JSON record in a fresh store (pooling allocator) and in batch mode, loading 10 cached plugins,
//! and the cost of epoch interruption on a compute-bound plugin. Each target line ends with
//! `met` / `NOT met`; the lines are repeated under `-- targets` at the end. The "realistic" function
//! is `contact_key` (reads three members of the record lazily, returns a short string); `echo`
//! (the whole record back, parsed and re-serialised on both sides) is reported beside it. Batch
//! `contact_key` is checked both through `call_function` (record serialised per call) and through
//! `call_function_prepared` (serialised once, as the mapping engine can pass NDJSON records).
//! Needs `.ci/build-plugins` first.
//!
//! Run: `cargo bench -p switchyard --bench plugin`; `PLUGIN_BENCH=fresh,batch,phone,load,epoch`
//! (any subset) runs only those sections, e.g. under a profiler; `PLUGIN_BENCH_PREINIT=FILE`
//! also measures a pre-initialised build of mapping-basics (`tools/plugin-preinit`).

use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use switchyard::plugin::{
    EngineConfig, Grants, HostConfig, PluginHandle, PluginHost, PreparedArgs,
};
use wasmtime::component::{Component, Linker, Val};
use wasmtime::{Config, Engine, Store};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default()
}

fn wasm(name: &str) -> PathBuf {
    let p = root().join("target/plugins").join(format!("{name}.wasm"));
    if !p.exists() {
        eprintln!("{} is missing: run .ci/build-plugins first", p.display());
        std::process::exit(2);
    }
    p
}

/// The sha256 a manifest pins (the host loads only pinned plugins).
fn sha256_of(wasm: &Path) -> String {
    match std::fs::read(wasm) {
        Ok(b) => hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&b)),
        Err(e) => {
            eprintln!("cannot read {}: {e}", wasm.display());
            std::process::exit(2);
        }
    }
}

fn manifest(dir: &Path, name: &str, wasm_name: &str, extra: &str) -> PathBuf {
    let path = dir.join(format!("{name}.toml"));
    let w = wasm(wasm_name);
    let text = format!(
        "spec_version = 1\n[plugin]\nname = \"{name}\"\nversion = \"0.1.0\"\nworld = \"mapping-functions\"\nwasm = \"{}\"\nsha256 = \"{}\"\n{extra}",
        w.display(),
        sha256_of(&w)
    );
    if let Err(e) = std::fs::write(&path, text) {
        eprintln!("cannot write {}: {e}", path.display());
        std::process::exit(2);
    }
    path
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

/// A contact record of about 1 KB of JSON: the three members `contact_key` reads among filler.
fn record_1kb() -> Value {
    let mut obj = serde_json::Map::new();
    obj.insert("id".into(), json!("c-000123"));
    let mut i = 0;
    let mut add = |obj: &mut serde_json::Map<String, Value>, n: usize| {
        for _ in 0..n {
            obj.insert(
                format!("field_{i:02}"),
                json!(format!("value number {i} for the record")),
            );
            i += 1;
        }
    };
    add(&mut obj, 10);
    obj.insert("first_name".into(), json!("Ada"));
    obj.insert("last_name".into(), json!("Lovelace"));
    obj.insert("email".into(), json!("  Ada.Lovelace@Example.COM "));
    while Value::Object(obj.clone()).to_string().len() < 1000 {
        add(&mut obj, 1);
    }
    Value::Object(obj)
}

/// Whether section `name` runs (env `PLUGIN_BENCH=a,b`; all when unset), for profiling one part.
fn on(name: &str) -> bool {
    match std::env::var("PLUGIN_BENCH") {
        Ok(v) => v.split(',').any(|s| s.trim() == name),
        Err(_) => true,
    }
}

/// Target verdicts, printed again at the end.
#[derive(Default)]
struct Verdicts(Vec<String>);

impl Verdicts {
    fn check(&mut self, what: &str, value: f64, unit: &str, target: &str, met: bool) -> String {
        let verdict = if met { "met" } else { "NOT met" };
        let line = format!("{what}: {value:.2} {unit} [target {target}: {verdict}]");
        self.0.push(line.clone());
        line
    }
}

fn us(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

async fn fresh_calls(h: &PluginHandle, f: &str, args: &[Value], n: usize) -> Duration {
    let mut times = Vec::with_capacity(n);
    for _ in 0..n {
        let t = Instant::now();
        h.call_function(f, args).await.expect("call");
        times.push(t.elapsed());
    }
    median(times)
}

async fn fresh_prepared(h: &PluginHandle, f: &str, args: &PreparedArgs, n: usize) -> Duration {
    let mut times = Vec::with_capacity(n);
    for _ in 0..n {
        let t = Instant::now();
        h.call_function_prepared(f, args).await.expect("call");
        times.push(t.elapsed());
    }
    median(times)
}

/// Median per call over `n` calls on batches of 1000 calls per instance.
async fn batch_calls(h: &PluginHandle, f: &str, args: &[Value], n: usize) -> Duration {
    let mut batch = h.batch(1000).await.expect("batch");
    batch.call_function(f, args).await.expect("warm");
    let mut times = Vec::with_capacity(n);
    for _ in 0..n {
        let t = Instant::now();
        batch.call_function(f, args).await.expect("call");
        times.push(t.elapsed());
    }
    median(times)
}

async fn batch_prepared(h: &PluginHandle, f: &str, args: &PreparedArgs, n: usize) -> Duration {
    let mut batch = h.batch(1000).await.expect("batch");
    batch.call_function_prepared(f, args).await.expect("warm");
    let mut times = Vec::with_capacity(n);
    for _ in 0..n {
        let t = Instant::now();
        batch.call_function_prepared(f, args).await.expect("call");
        times.push(t.elapsed());
    }
    median(times)
}

/// Runs `work(rounds)` through a plain wasmtime engine (dynamic call), epochs on or off.
fn raw_work(epochs: bool, rounds: u64) -> Duration {
    let mut cfg = Config::new();
    cfg.epoch_interruption(epochs);
    let engine = Engine::new(&cfg).expect("engine");
    let component = Component::from_file(&engine, wasm("hostile_compute")).expect("component");
    let mut linker: Linker<Wasi> = Linker::new(&engine);
    wasmtime_wasi::p2::add_to_linker_sync(&mut linker).expect("wasi");
    linker
        .define_unknown_imports_as_traps(&component)
        .expect("traps");
    let mut store = Store::new(&engine, Wasi::default());
    if epochs {
        store.set_epoch_deadline(u64::MAX / 2);
    }
    let inst = linker
        .instantiate(&mut store, &component)
        .expect("instantiate");
    let iface = component
        .get_export_index(None, "switchyard:plugin/mapping@0.1.0")
        .expect("mapping export");
    let idx = component
        .get_export_index(Some(&iface), "call")
        .expect("call export");
    let func = inst.get_func(&mut store, idx).expect("func");
    let args = [
        Val::String("work".into()),
        Val::List(vec![Val::String(rounds.to_string())]),
    ];
    let mut results = [Val::Bool(false)];
    let t = Instant::now();
    func.call(&mut store, &args, &mut results).expect("call");
    t.elapsed()
}

struct Wasi {
    ctx: wasmtime_wasi::WasiCtx,
    table: wasmtime::component::ResourceTable,
}

impl Default for Wasi {
    fn default() -> Self {
        Wasi {
            ctx: wasmtime_wasi::WasiCtx::builder().build(),
            table: wasmtime::component::ResourceTable::new(),
        }
    }
}

impl wasmtime_wasi::WasiView for Wasi {
    fn ctx(&mut self) -> wasmtime_wasi::WasiCtxView<'_> {
        wasmtime_wasi::WasiCtxView {
            ctx: &mut self.ctx,
            table: &mut self.table,
        }
    }
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(run());
}

async fn run() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cache = dir.path().join("cache");
    // `PLUGIN_BENCH_RESIDENT=0`: pool slots decommit linear memory after each instance (the
    // behaviour before `EngineConfig::keep_resident`), for comparison.
    let engine = EngineConfig {
        keep_resident: std::env::var("PLUGIN_BENCH_RESIDENT").map_or(true, |v| v != "0"),
        ..EngineConfig::default()
    };
    let host = PluginHost::with_engine(
        HostConfig {
            cache_dir: Some(cache.clone()),
            ..HostConfig::default()
        },
        &engine,
    )
    .expect("host");
    let mut v = Verdicts::default();
    println!(
        "pooling allocator: {}; dirtied pages kept resident (PAGEMAP_SCAN): {}",
        host.pooling(),
        host.keeps_resident()
    );
    let record = record_1kb();
    let args = [record.clone()];
    let prepared = PreparedArgs::new(&args);
    println!(
        "record: {} bytes of JSON; contact_key(record) reads email/first_name/last_name and returns {}",
        record.to_string().len(),
        json!("ada.lovelace@example.com")
    );

    let small = host
        .load(
            &manifest(dir.path(), "echo", "hostile_compute", ""),
            Grants::default(),
        )
        .expect("load");
    let basics = host
        .load(
            &manifest(
                dir.path(),
                "basics",
                "mapping_basics",
                "[plugin.limits]\ncpu_ms = 5000\n",
            ),
            Grants::default(),
        )
        .expect("load");
    for h in [&small, &basics] {
        let got = h.call_function("contact_key", &args).await.expect("call");
        assert_eq!(got, json!("ada.lovelace@example.com"));
    }
    let tiny = [json!(1)];

    if on("fresh") {
        println!("-- fresh Store + instantiation + call (pooling allocator)");
        fresh_calls(&small, "contact_key", &args, 500).await;
        let m = fresh_calls(&small, "contact_key", &args, 5000).await;
        println!(
            "{}",
            v.check(
                "fresh, small plugin (250 KB), contact_key(1 KB record), call_function median",
                us(m),
                "us",
                "<= 20 us",
                us(m) <= 20.0
            )
        );
        let m = fresh_prepared(&small, "contact_key", &prepared, 5000).await;
        println!(
            "fresh, small plugin, contact_key(1 KB record), call_function_prepared (record serialised once): median {:.2} us",
            us(m)
        );
        let m = fresh_calls(&small, "echo", &args, 5000).await;
        println!(
            "fresh, small plugin, echo(1 KB record) -> 1 KB back (full parse + serialise on both sides): median {:.2} us",
            us(m)
        );
        let m = fresh_calls(&small, "echo", &tiny, 5000).await;
        println!(
            "fresh, small plugin, echo(1) (call machinery alone): median {:.2} us",
            us(m)
        );
        fresh_calls(&basics, "contact_key", &args, 200).await;
        let m = fresh_calls(&basics, "contact_key", &args, 3000).await;
        println!(
            "{}",
            v.check(
                "fresh, mapping-basics (2 MB, phonenumber inside), contact_key(1 KB record) median",
                us(m),
                "us",
                "<= 20 us",
                us(m) <= 20.0
            )
        );
        let name = [json!("Dr. Ada M. Lovelace Jr.")];
        let m = fresh_calls(&basics, "split_name", &name, 3000).await;
        println!("fresh, mapping-basics, split_name: median {:.2} us", us(m));
    }
    if on("phone") {
        let phone = [json!("(415) 555-2671"), json!("US")];
        let m = fresh_calls(&basics, "phone_e164", &phone, 20).await;
        println!(
            "fresh, mapping-basics, phone_e164 (decodes phonenumber's metadata per instance): median {:.2} ms",
            m.as_secs_f64() * 1e3
        );
        let m = batch_calls(&basics, "phone_e164", &phone, 998).await;
        println!(
            "batch, mapping-basics, phone_e164: median {:.2} us per call",
            us(m)
        );
    }
    // A pre-initialised build of mapping-basics (see tools/plugin-preinit), when given.
    if let Ok(path) = std::env::var("PLUGIN_BENCH_PREINIT") {
        let m = dir.path().join("preinit.toml");
        let text = format!(
            "spec_version = 1\n[plugin]\nname = \"preinit\"\nversion = \"0.1.0\"\nworld = \"mapping-functions\"\nwasm = \"{path}\"\nsha256 = \"{}\"\n",
            sha256_of(Path::new(&path))
        );
        std::fs::write(&m, text).expect("manifest");
        let pre = host
            .load(&m, Grants::default())
            .expect("load pre-initialised");
        let phone = [json!("(415) 555-2671"), json!("US")];
        let got = pre.call_function("phone_e164", &phone).await.expect("call");
        assert_eq!(got, json!("+14155552671"));
        let m = fresh_calls(&pre, "phone_e164", &phone, 500).await;
        println!(
            "fresh, mapping-basics pre-initialised (metadata decoded in the snapshot), phone_e164: median {:.2} us",
            us(m)
        );
        let m = fresh_calls(&pre, "contact_key", &args, 2000).await;
        println!(
            "fresh, mapping-basics pre-initialised, contact_key(1 KB record): median {:.2} us",
            us(m)
        );
    }

    if on("batch") {
        println!("-- batch: one instance serves 1000 calls");
        let m = batch_calls(&small, "contact_key", &args, 20000).await;
        println!(
            "{}",
            v.check(
                "batch, small plugin, contact_key(1 KB record), call_function median per call",
                us(m),
                "us",
                "<= 2 us",
                us(m) <= 2.0
            )
        );
        let m = batch_prepared(&small, "contact_key", &prepared, 20000).await;
        println!(
            "{}",
            v.check(
                "batch, small plugin, contact_key(1 KB record), call_function_prepared (record serialised once) median per call",
                us(m),
                "us",
                "<= 2 us",
                us(m) <= 2.0
            )
        );
        let m = batch_calls(&small, "echo", &args, 20000).await;
        println!(
            "batch, small plugin, echo(1 KB record) -> 1 KB back: median {:.2} us per call",
            us(m)
        );
        let m = batch_calls(&small, "echo", &tiny, 20000).await;
        println!(
            "batch, small plugin, echo(1): median {:.2} us per call",
            us(m)
        );
        let m = batch_calls(&basics, "contact_key", &args, 20000).await;
        println!(
            "{}",
            v.check(
                "batch, mapping-basics, contact_key(1 KB record), call_function median per call",
                us(m),
                "us",
                "<= 2 us",
                us(m) <= 2.0
            )
        );
        let m = batch_prepared(&basics, "contact_key", &prepared, 20000).await;
        println!(
            "{}",
            v.check(
                "batch, mapping-basics, contact_key(1 KB record), call_function_prepared median per call",
                us(m),
                "us",
                "<= 2 us",
                us(m) <= 2.0
            )
        );
    }

    // Not run by default: a long loop of one case for a profiler (`PLUGIN_BENCH=profile-batch`).
    if std::env::var("PLUGIN_BENCH").is_ok_and(|v| v.contains("profile-batch")) {
        let f = std::env::var("PLUGIN_BENCH_FN").unwrap_or_else(|_| "contact_key".into());
        let m = batch_prepared(&small, &f, &prepared, 300_000).await;
        println!("profile: batch {f} prepared {:.2} us", us(m));
    }

    if on("load") {
        // Ten plugins whose compiled code is in the cache (warmed here).
        let wasms = ["hostile_compute", "mapping_basics"];
        let manifests: Vec<PathBuf> = (0..10)
            .map(|i| manifest(dir.path(), &format!("p{i}"), wasms[i % 2], ""))
            .collect();
        for m in &manifests {
            host.load(m, Grants::default()).expect("warm");
        }
        let fresh_host = PluginHost::new(HostConfig {
            cache_dir: Some(cache),
            ..HostConfig::default()
        })
        .expect("host");
        let t = Instant::now();
        let loaded: Vec<PluginHandle> = manifests
            .iter()
            .map(|m| fresh_host.load(m, Grants::default()).expect("load"))
            .collect();
        let took = t.elapsed();
        println!(
            "{}",
            v.check(
                "load 10 cached plugins",
                took.as_secs_f64() * 1e3,
                "ms",
                "< 50 ms",
                took < Duration::from_millis(50)
            )
        );
        drop(loaded);
    }

    if on("epoch") {
        let rounds = 200_000_000u64;
        let compute = host
            .load(
                &manifest(
                    dir.path(),
                    "work",
                    "hostile_compute",
                    "[plugin.limits]\ncpu_ms = 60000\nwall_ms = 60000\n",
                ),
                Grants::default(),
            )
            .expect("load");
        let plain = (0..3)
            .map(|_| raw_work(false, rounds))
            .min()
            .unwrap_or_default();
        let epoch = (0..3)
            .map(|_| raw_work(true, rounds))
            .min()
            .unwrap_or_default();
        let mut host_times = Vec::new();
        for _ in 0..3 {
            let t = Instant::now();
            compute
                .call_function("work", &[json!(rounds)])
                .await
                .expect("work");
            host_times.push(t.elapsed());
        }
        let hosted = host_times.into_iter().min().unwrap_or_default();
        let pct = |d: Duration| (d.as_secs_f64() / plain.as_secs_f64() - 1.0) * 100.0;
        println!(
            "compute-bound plugin ({rounds} rounds): no epochs {:.0} ms, epochs {:.0} ms ({:+.1}%), host (epochs + tick callback + yield) {:.0} ms",
            plain.as_secs_f64() * 1e3,
            epoch.as_secs_f64() * 1e3,
            pct(epoch),
            hosted.as_secs_f64() * 1e3,
        );
        println!(
            "{}",
            v.check(
                "epoch interruption overhead in the host, compute-bound plugin",
                pct(hosted),
                "%",
                "< 10%",
                pct(hosted) < 10.0
            )
        );
    }

    println!("-- targets");
    for line in &v.0 {
        println!("{line}");
    }
}
