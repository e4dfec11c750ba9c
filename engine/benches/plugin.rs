//! Plugin host benchmarks: a mapping-function call with a 1 KB JSON record in a fresh store
//! (pooling allocator), the same in batch mode, loading 10 cached plugins, and the cost of epoch
//! interruption on a compute-bound plugin. Needs `.ci/build-plugins` first.
//!
//! Run: `cargo bench -p switchyard --bench plugin`.

use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use switchyard::plugin::{Grants, HostConfig, PluginHandle, PluginHost};
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

fn manifest(dir: &Path, name: &str, wasm_name: &str, extra: &str) -> PathBuf {
    let path = dir.join(format!("{name}.toml"));
    let text = format!(
        "spec_version = 1\n[plugin]\nname = \"{name}\"\nversion = \"0.1.0\"\nworld = \"mapping-functions\"\nwasm = \"{}\"\n{extra}",
        wasm(wasm_name).display()
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

fn record_1kb() -> Value {
    let mut obj = serde_json::Map::new();
    let mut i = 0;
    while Value::Object(obj.clone()).to_string().len() < 1000 {
        obj.insert(
            format!("field_{i:02}"),
            json!(format!("value number {i} for the record")),
        );
        i += 1;
    }
    Value::Object(obj)
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
    let host = PluginHost::new(HostConfig {
        cache_dir: Some(cache.clone()),
        ..HostConfig::default()
    })
    .expect("host");
    println!("pooling allocator: {}", host.pooling());
    let record = record_1kb();
    let args = [record.clone()];
    println!("record: {} bytes of JSON", record.to_string().len());

    let small = host
        .load(
            &manifest(dir.path(), "echo", "hostile_compute", ""),
            Grants::default(),
        )
        .expect("load");
    fresh_calls(&small, "echo", &args, 200).await;
    let m = fresh_calls(&small, "echo", &args, 5000).await;
    println!(
        "fresh store + instantiate + call (small plugin, echo 1 KB): median {:.1} us ({:.0} calls/s) [target <= 20 us]",
        m.as_secs_f64() * 1e6,
        1.0 / m.as_secs_f64()
    );
    let tiny = [json!(1)];
    let m = fresh_calls(&small, "echo", &tiny, 5000).await;
    println!(
        "fresh store + instantiate + call (small plugin, echo 1): median {:.1} us",
        m.as_secs_f64() * 1e6
    );
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
    let name = [json!("Dr. Ada M. Lovelace Jr.")];
    fresh_calls(&basics, "split_name", &name, 100).await;
    let m = fresh_calls(&basics, "split_name", &name, 2000).await;
    println!(
        "fresh store + instantiate + call (mapping-basics 2 MB, split_name): median {:.1} us",
        m.as_secs_f64() * 1e6
    );
    let phone = [json!("(415) 555-2671"), json!("US")];
    let m = fresh_calls(&basics, "phone_e164", &phone, 20).await;
    println!(
        "fresh store + instantiate + call (mapping-basics, phone_e164, decodes metadata): median {:.2} ms",
        m.as_secs_f64() * 1e3
    );

    let mut batch = small.batch(1000).await.expect("batch");
    let mut times = Vec::with_capacity(20000);
    for _ in 0..20000 {
        let t = Instant::now();
        batch.call_function("echo", &args).await.expect("call");
        times.push(t.elapsed());
    }
    let m = median(times);
    println!(
        "batch mode (1000 calls per instance, echo 1 KB): median {:.2} us per call ({:.0} calls/s) [target <= 2 us]",
        m.as_secs_f64() * 1e6,
        1.0 / m.as_secs_f64()
    );
    let mut batch = small.batch(1000).await.expect("batch");
    let mut times = Vec::with_capacity(20000);
    for _ in 0..20000 {
        let t = Instant::now();
        batch.call_function("echo", &tiny).await.expect("call");
        times.push(t.elapsed());
    }
    println!(
        "batch mode (echo 1): median {:.2} us per call",
        median(times).as_secs_f64() * 1e6
    );
    let mut batch = basics.batch(1000).await.expect("batch");
    let t = Instant::now();
    for _ in 0..1000 {
        batch
            .call_function("phone_e164", &phone)
            .await
            .expect("call");
    }
    println!(
        "batch mode phone_e164: {:.1} us per call",
        t.elapsed().as_secs_f64() * 1e6 / 1000.0
    );

    // Ten plugins whose compiled code is in the cache (warmed above and here).
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
        "load 10 cached plugins: {:.1} ms [target < 50 ms]",
        took.as_secs_f64() * 1e3
    );
    drop(loaded);

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
        "compute-bound plugin ({rounds} rounds): no epochs {:.0} ms, epochs {:.0} ms ({:+.1}%), host (epochs + 10 ms tick callback + yield) {:.0} ms ({:+.1}%) [target < 10%]",
        plain.as_secs_f64() * 1e3,
        epoch.as_secs_f64() * 1e3,
        pct(epoch),
        hosted.as_secs_f64() * 1e3,
        pct(hosted)
    );
}
