//! `plugin-preinit IN.wasm OUT.wasm FUNCTION [JSON-ARG...]`: pre-initialises a Switchyard
//! mapping-functions plugin. Calls `FUNCTION(JSON-ARG...)` once (through the plugin's
//! `switchyard:plugin/mapping@0.1.0#call` export, with WASI p2 and a no-op `log`), snapshots the
//! instance with wasmtime-wizer and writes the snapshot as a new component, then compares a fresh
//! instance + the same call for both components. Example (phonenumber's metadata decoded once, at
//! build time, instead of in every fresh instance):
//!
//! ```sh
//! cargo run --release -- ../../target/plugins/mapping_basics.wasm /tmp/preinit.wasm \
//!     phone_e164 '"+14155552671"'
//! ```

use std::time::{Duration, Instant};
use wasmtime::component::{
    Component, ComponentNamedList, Instance, Lift, Linker, ResourceTable, TypedFunc, Val,
};
use wasmtime::{Config, Engine, Result, Store, bail, format_err};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wizer::{ComponentInstanceState, Wizer};

struct State {
    ctx: WasiCtx,
    table: ResourceTable,
}

impl WasiView for State {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.ctx,
            table: &mut self.table,
        }
    }
}

fn store(engine: &Engine) -> Store<State> {
    Store::new(
        engine,
        State {
            ctx: WasiCtx::builder().build(),
            table: ResourceTable::new(),
        },
    )
}

fn linker(engine: &Engine) -> Result<Linker<State>> {
    let mut l = Linker::new(engine);
    wasmtime_wasi::p2::add_to_linker_sync(&mut l)?;
    l.instance("switchyard:plugin/log@0.1.0")?
        .func_new("emit", |_, _, _, _| Ok(()))?;
    Ok(l)
}

fn call(store: &mut Store<State>, inst: &Instance, f: &str, args: &[String]) -> Result<Val> {
    let iface = inst
        .get_export_index(&mut *store, None, "switchyard:plugin/mapping@0.1.0")
        .ok_or_else(|| format_err!("not a mapping-functions plugin"))?;
    let idx = inst
        .get_export_index(&mut *store, Some(&iface), "call")
        .ok_or_else(|| format_err!("no `call` export"))?;
    let func = inst
        .get_func(&mut *store, idx)
        .ok_or_else(|| format_err!("`call` is not a function"))?;
    let params = [
        Val::String(f.into()),
        Val::List(args.iter().map(|s| Val::String(s.clone())).collect()),
    ];
    let mut results = [Val::Bool(false)];
    func.call(&mut *store, &params, &mut results)?;
    let [result] = results;
    Ok(result)
}

/// Answers wizer's questions about the initialised instance through its accessor exports.
struct Snapshotting<'a> {
    store: &'a mut Store<State>,
    inst: Instance,
}

impl Snapshotting<'_> {
    fn call0<R>(&mut self, instance: &str, func: &str) -> R
    where
        R: Lift + Send + Sync + 'static,
        (R,): ComponentNamedList + Lift,
    {
        // The accessors were added by wizer's own instrumentation: a failure here is a bug in
        // the instrumentation, not bad input, and the trait offers no error channel.
        let found = (|| {
            let i = self
                .inst
                .get_export_index(&mut *self.store, None, instance)?;
            let f = self
                .inst
                .get_export_index(&mut *self.store, Some(&i), func)?;
            let typed: TypedFunc<(), (R,)> = self.inst.get_typed_func(&mut *self.store, f).ok()?;
            typed.call(&mut *self.store, ()).ok()
        })();
        match found {
            Some((v,)) => v,
            None => panic!("wizer accessor {instance}#{func} failed"),
        }
    }
}

impl ComponentInstanceState for Snapshotting<'_> {
    fn call_func_ret_list_u8(
        &mut self,
        instance: &str,
        func: &str,
        contents: impl FnOnce(&[u8]) + Send,
    ) -> impl Future<Output = ()> + Send {
        let bytes: Vec<u8> = self.call0(instance, func);
        contents(&bytes);
        async {}
    }

    fn call_func_ret_s32(
        &mut self,
        instance: &str,
        func: &str,
    ) -> impl Future<Output = i32> + Send {
        let v: i32 = self.call0(instance, func);
        async move { v }
    }

    fn call_func_ret_s64(
        &mut self,
        instance: &str,
        func: &str,
    ) -> impl Future<Output = i64> + Send {
        let v: i64 = self.call0(instance, func);
        async move { v }
    }

    fn call_func_ret_f32(
        &mut self,
        instance: &str,
        func: &str,
    ) -> impl Future<Output = u32> + Send {
        let v: f32 = self.call0(instance, func);
        async move { v.to_bits() }
    }

    fn call_func_ret_f64(
        &mut self,
        instance: &str,
        func: &str,
    ) -> impl Future<Output = u64> + Send {
        let v: f64 = self.call0(instance, func);
        async move { v.to_bits() }
    }
}

/// Polls a future that never waits (every accessor above answers synchronously).
fn block_on<F: Future>(f: F) -> F::Output {
    let mut f = std::pin::pin!(f);
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    loop {
        if let std::task::Poll::Ready(v) = f.as_mut().poll(&mut cx) {
            return v;
        }
    }
}

fn fresh(
    engine: &Engine,
    c: &Component,
    f: &str,
    args: &[String],
    n: usize,
) -> Result<(Duration, Val)> {
    let pre = linker(engine)?.instantiate_pre(c)?;
    let mut times = Vec::with_capacity(n);
    let mut last = Val::Bool(false);
    for _ in 0..n {
        let t = Instant::now();
        let mut s = store(engine);
        let inst = pre.instantiate(&mut s)?;
        last = call(&mut s, &inst, f, args)?;
        times.push(t.elapsed());
    }
    times.sort();
    Ok((times[n / 2], last))
}

fn main() -> Result<()> {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let [input, output, function, rest @ ..] = argv.as_slice() else {
        bail!("usage: plugin-preinit IN.wasm OUT.wasm FUNCTION [JSON-ARG...]");
    };
    let bytes = std::fs::read(input).map_err(|e| format_err!("{input}: {e}"))?;
    let engine = Engine::new(&Config::new())?;
    let t = Instant::now();
    let wizer = Wizer::new();
    let (cx, instrumented) = wizer.instrument_component(&bytes)?;
    let component = Component::new(&engine, &instrumented)?;
    let mut s = store(&engine);
    let inst = linker(&engine)?.instantiate(&mut s, &component)?;
    let v = call(&mut s, &inst, function, rest)?;
    println!("initialising call {function} -> {v:?}");
    let snapshot = block_on(wizer.snapshot_component(
        &cx,
        &mut Snapshotting {
            store: &mut s,
            inst,
        },
    ))?;
    println!(
        "pre-initialised in {:.2?}: {} -> {} bytes",
        t.elapsed(),
        bytes.len(),
        snapshot.len()
    );
    std::fs::write(output, &snapshot).map_err(|e| format_err!("{output}: {e}"))?;
    let original = Component::new(&engine, &bytes)?;
    let snapped = Component::new(&engine, &snapshot)?;
    let (m, v) = fresh(&engine, &original, function, rest, 10)?;
    println!("original: fresh instance + {function} median {m:.2?} -> {v:?}");
    let (m, v) = fresh(&engine, &snapped, function, rest, 100)?;
    println!("pre-initialised: fresh instance + {function} median {m:.2?} -> {v:?}");
    Ok(())
}
