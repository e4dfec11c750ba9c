//! Calling a plugin: a fresh `Store` per call (or one per bounded batch), per-call limits
//! (memory, CPU ticks, wall time, bytes across the boundary, output size) and the mapping of
//! traps to [`PluginError`]s.

use super::bindings::host::types::{
    Header as WitHeader, HttpRequest as WitRequest, PluginError as GuestError,
};
use super::imports::{CallReport, PluginState, escape_controls};
use super::load::{Loaded, PluginHandle};
use super::{Header, HttpRequest, LogLine, PluginError};
use serde_json::Value;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use wasmtime::component::Instance;
use wasmtime::{Store, Trap, UpdateDeadline};

/// One page read by a connector plugin.
#[derive(Debug, Clone, PartialEq)]
pub struct Page {
    /// The records (JSON objects).
    pub records: Vec<Value>,
    /// Cursor of the next page; none on the last page.
    pub next_cursor: Option<String>,
}

/// The verdict of a webhook verifier.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    /// Whether the webhook is authentic.
    pub valid: bool,
    /// Why not.
    pub reason: Option<String>,
}

/// Result and logs of one call (for `switchyard plugin test`).
#[derive(Debug, Clone)]
pub struct CallOutput {
    /// The value (or error) the call produced.
    pub result: Result<Value, String>,
    /// Log lines the plugin emitted.
    pub logs: Vec<LogLine>,
    /// Capabilities the host denied during the call.
    pub denials: Vec<String>,
}

pub(crate) enum Op<'a> {
    Call {
        name: &'a str,
        args: &'a [String],
    },
    Functions,
    Sign(WitRequest),
    Decode {
        content_type: String,
        body: Vec<u8>,
    },
    Read {
        stream: String,
        params: String,
        cursor: Option<String>,
    },
    Write {
        stream: String,
        records: Vec<String>,
    },
    Verify {
        headers: Vec<WitHeader>,
        body: Vec<u8>,
    },
    Enrich(String),
}

pub(crate) enum Out {
    Json(String),
    Names(Vec<String>),
    Request(WitRequest),
    Page(Vec<String>, Option<String>),
    List(Vec<String>),
    Verdict(bool, Option<String>),
}

impl Out {
    fn size(&self) -> u64 {
        let strs = |v: &[String]| v.iter().map(|s| s.len() as u64 + 8).sum::<u64>();
        match self {
            Out::Json(s) => s.len() as u64,
            Out::Names(v) | Out::List(v) => strs(v),
            Out::Request(r) => {
                (r.method.len() + r.url.len() + r.body.len()) as u64
                    + r.headers
                        .iter()
                        .map(|h| (h.name.len() + h.value.len()) as u64)
                        .sum::<u64>()
            }
            Out::Page(v, c) => strs(v) + c.as_ref().map_or(0, |c| c.len() as u64),
            Out::Verdict(_, r) => r.as_ref().map_or(0, |r| r.len() as u64),
        }
    }
}

fn not_provided(loaded: &Loaded, what: &str) -> PluginError {
    PluginError::NotProvided {
        plugin: loaded.eff.name.clone(),
        what: format!("{what} (world `{}`)", loaded.info.world),
    }
}

/// Runs `op` on an instance; the outer error is a trap, the inner one the plugin's own.
async fn dispatch(
    loaded: &Loaded,
    store: &mut Store<PluginState>,
    inst: &Instance,
    op: Op<'_>,
) -> Result<wasmtime::Result<Result<Out, GuestError>>, PluginError> {
    // Every operation: the world's exports (or "not provided"), loaded from this instance,
    // called, its result turned into an `Out`. A trap is the outer error.
    macro_rules! guest {
        ($field:ident, $what:literal, |$g:ident| $call:expr, $map:expr) => {{
            let exports = loaded
                .$field
                .as_ref()
                .ok_or_else(|| not_provided(loaded, $what))?;
            match exports.load(&mut *store, inst) {
                Ok($g) => $call.await.map($map),
                Err(e) => Err(e),
            }
        }};
    }
    Ok(match op {
        Op::Call { name, args } => {
            guest!(
                mapping,
                "mapping functions",
                |g| g.call_call(&mut *store, name, args),
                |r| r.map(Out::Json)
            )
        }
        Op::Functions => {
            guest!(
                mapping,
                "mapping functions",
                |g| g.call_functions(&mut *store),
                |v| Ok(Out::Names(v))
            )
        }
        Op::Sign(req) => {
            guest!(
                signer,
                "a request signer",
                |g| g.call_sign(&mut *store, &req),
                |r| r.map(Out::Request)
            )
        }
        Op::Decode { content_type, body } => {
            guest!(
                decoder,
                "a response decoder",
                |g| g.call_decode(&mut *store, &content_type, &body),
                |r| r.map(Out::Json)
            )
        }
        Op::Read {
            stream,
            params,
            cursor,
        } => {
            guest!(
                connector,
                "connector read",
                |g| g.call_read(&mut *store, &stream, &params, cursor.as_deref()),
                |r| r.map(|p| Out::Page(p.records, p.next_cursor))
            )
        }
        Op::Write { stream, records } => {
            guest!(
                connector,
                "connector write",
                |g| g.call_write(&mut *store, &stream, &records),
                |r| r.map(Out::List)
            )
        }
        Op::Verify { headers, body } => {
            guest!(
                webhook,
                "a webhook verifier",
                |g| g.call_verify(&mut *store, &headers, &body),
                |r| r.map(|v| Out::Verdict(v.valid, v.reason))
            )
        }
        Op::Enrich(record) => {
            guest!(
                enrichment,
                "enrichment",
                |g| g.call_enrich(&mut *store, &record),
                |r| r.map(Out::Json)
            )
        }
    })
}

fn new_store(
    handle: &PluginHandle,
    loaded: &Loaded,
    report: Arc<CallReport>,
) -> Store<PluginState> {
    let rt = &handle.inner.host.rt;
    let eff = loaded.eff.clone();
    let limits = eff.limits;
    let mut store = Store::new(&rt.engine, PluginState::new(eff, report));
    store.limiter(|s| &mut s.limiter);
    let fuel = limits.hostcall_bytes.max(limits.output_bytes) + (64 << 10);
    store.set_hostcall_fuel(usize::try_from(fuel).unwrap_or(usize::MAX));
    store.set_max_component_handles(1_000);
    store.epoch_deadline_callback(|mut ctx| {
        let s = ctx.data_mut();
        if s.ticks_left <= 1 {
            s.report.cpu_exceeded.store(true, Ordering::Relaxed);
            Ok(UpdateDeadline::Interrupt)
        } else {
            s.ticks_left -= 1;
            Ok(UpdateDeadline::Yield(1))
        }
    });
    arm(&mut store, handle);
    store
}

/// Re-arms the CPU budget right before a call: `ticks + 1` deadline callbacks, so the guest runs
/// at least its budget and at most one tick more.
fn arm(store: &mut Store<PluginState>, handle: &PluginHandle) {
    let ticks = handle.inner.host.rt.ticks(store.data().eff.limits.cpu);
    arm_ticks(store, ticks);
}

/// [`arm`] with the budget already converted to ticks (a batch converts it once per instance).
fn arm_ticks(store: &mut Store<PluginState>, ticks: u64) {
    store.data_mut().ticks_left = ticks + 1;
    store.set_epoch_deadline(1);
}

fn map_trap(loaded: &Loaded, report: &CallReport, e: wasmtime::Error) -> PluginError {
    let plugin = loaded.eff.name.clone();
    let limits = loaded.eff.limits;
    if report.cpu_exceeded.load(Ordering::Relaxed) {
        return PluginError::CpuLimit {
            plugin,
            budget_ms: limits.cpu.as_millis() as u64,
        };
    }
    let requested = report.memory_requested.load(Ordering::Relaxed);
    if requested > 0 {
        return PluginError::MemoryLimit {
            plugin,
            limit: limits.memory_bytes,
            requested,
        };
    }
    if let Some(exit) = e.downcast_ref::<wasmtime_wasi::I32Exit>() {
        return PluginError::Exit {
            plugin,
            code: exit.0,
        };
    }
    match e.downcast_ref::<Trap>() {
        Some(Trap::StackOverflow) => return PluginError::StackOverflow { plugin },
        Some(Trap::Interrupt) => {
            return PluginError::CpuLimit {
                plugin,
                budget_ms: limits.cpu.as_millis() as u64,
            };
        }
        Some(t) => {
            return PluginError::Trap {
                plugin,
                message: t.to_string(),
            };
        }
        None => {}
    }
    let msg = format!("{e:#}");
    if msg.contains("fuel allocated for hostcalls") {
        return PluginError::DataLimit {
            plugin,
            limit: limits.hostcall_bytes.max(limits.output_bytes),
        };
    }
    let first = msg.lines().next().unwrap_or_default();
    PluginError::Trap {
        plugin,
        message: loaded.eff.redactor.redact(first).into_owned(),
    }
}

fn guest_error(loaded: &Loaded, e: GuestError) -> PluginError {
    let (kind, message) = match e {
        GuestError::InvalidInput(m) => ("invalid-input", m),
        GuestError::Denied(m) => ("denied", m),
        GuestError::Upstream(m) => ("upstream", m),
        GuestError::Internal(m) => ("internal", m),
    };
    // The plugin's own words may carry a granted secret (raw or encoded) or control characters
    // (terminal escapes, forged log lines): they never leave the host with either.
    let mut message = escape_controls(&message);
    loaded.eff.redactor.redact_in_place(&mut message);
    PluginError::Guest {
        plugin: loaded.eff.name.clone(),
        kind,
        message,
    }
}

/// Finishes a call: limit checks and error mapping.
fn finish(
    loaded: &Loaded,
    report: &CallReport,
    res: Result<
        Result<wasmtime::Result<Result<Out, GuestError>>, PluginError>,
        tokio::time::error::Elapsed,
    >,
) -> Result<Out, PluginError> {
    let plugin = || loaded.eff.name.clone();
    let limits = loaded.eff.limits;
    match res {
        Err(_) => Err(PluginError::WallTimeout {
            plugin: plugin(),
            limit_ms: limits.wall.as_millis() as u64,
        }),
        Ok(Err(e)) => Err(e),
        Ok(Ok(Err(trap))) => Err(map_trap(loaded, report, trap)),
        Ok(Ok(Ok(Err(g)))) => Err(guest_error(loaded, g)),
        Ok(Ok(Ok(Ok(out)))) => {
            let size = out.size();
            if size > limits.output_bytes {
                return Err(PluginError::OutputTooLarge {
                    plugin: plugin(),
                    size,
                    limit: limits.output_bytes,
                });
            }
            Ok(out)
        }
    }
}

fn parse_json(loaded: &Loaded, text: &str) -> Result<Value, PluginError> {
    serde_json::from_str(text).map_err(|e| PluginError::InvalidOutput {
        plugin: loaded.eff.name.clone(),
        message: format!("not json: {e}"),
    })
}

fn unexpected(loaded: &Loaded) -> PluginError {
    PluginError::Host(format!(
        "plugin `{}`: unexpected result shape",
        loaded.eff.name
    ))
}

/// JSON text of a value. `serde_json::to_string` writes straight into a buffer; `Value`'s
/// `Display` goes through `fmt` and costs about twice as much on a 1 KB record.
fn json_text(v: &Value) -> String {
    serde_json::to_string(v).unwrap_or_else(|_| v.to_string())
}

fn to_json_args(args: &[Value]) -> Vec<String> {
    args.iter().map(json_text).collect()
}

/// Mapping-function arguments serialised to JSON text once, for passing the same values (a record,
/// say) to several calls without re-serialising them each time.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PreparedArgs {
    texts: Vec<String>,
}

impl PreparedArgs {
    /// Serialises `args`.
    pub fn new(args: &[Value]) -> PreparedArgs {
        PreparedArgs {
            texts: to_json_args(args),
        }
    }

    /// Number of arguments.
    pub fn len(&self) -> usize {
        self.texts.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.texts.is_empty()
    }

    /// The JSON text of each argument.
    pub fn texts(&self) -> &[String] {
        &self.texts
    }
}

impl From<&[Value]> for PreparedArgs {
    fn from(args: &[Value]) -> PreparedArgs {
        PreparedArgs::new(args)
    }
}

impl PluginHandle {
    /// One call in a fresh store.
    pub(crate) async fn invoke(
        &self,
        op: Op<'_>,
    ) -> (Arc<Loaded>, Arc<CallReport>, Result<Out, PluginError>) {
        let loaded = self.inner.current.load_full();
        let report = Arc::new(CallReport::default());
        let permit = match self.inner.host.rt.permits.clone().acquire_owned().await {
            Ok(p) => p,
            Err(_) => {
                return (
                    loaded,
                    report,
                    Err(PluginError::Host("plugin host is shutting down".into())),
                );
            }
        };
        let mut store = new_store(self, &loaded, report.clone());
        let wall = loaded.eff.limits.wall;
        let res = tokio::time::timeout(wall, async {
            let inst = match loaded.pre.instantiate_async(&mut store).await {
                Ok(i) => i,
                Err(e) => return Ok(Err(e)),
            };
            dispatch(&loaded, &mut store, &inst, op).await
        })
        .await;
        drop(store);
        drop(permit);
        let out = finish(&loaded, &report, res);
        (loaded, report, out)
    }

    /// Calls mapping function `name` with JSON arguments.
    pub async fn call_function(&self, name: &str, args: &[Value]) -> Result<Value, PluginError> {
        self.call_function_prepared(name, &PreparedArgs::new(args))
            .await
    }

    /// Calls mapping function `name` with arguments already serialised (see [`PreparedArgs`]).
    pub async fn call_function_prepared(
        &self,
        name: &str,
        args: &PreparedArgs,
    ) -> Result<Value, PluginError> {
        let (loaded, _, out) = self
            .invoke(Op::Call {
                name,
                args: &args.texts,
            })
            .await;
        match out? {
            Out::Json(s) => parse_json(&loaded, &s),
            _ => Err(unexpected(&loaded)),
        }
    }

    /// Names of the mapping functions the plugin provides.
    pub async fn functions(&self) -> Result<Vec<String>, PluginError> {
        let (loaded, _, out) = self.invoke(Op::Functions).await;
        match out? {
            Out::Names(v) => Ok(v),
            _ => Err(unexpected(&loaded)),
        }
    }

    /// Signs an outgoing request (request-codec world).
    pub async fn sign(&self, request: HttpRequest) -> Result<HttpRequest, PluginError> {
        let req = WitRequest {
            method: request.method,
            url: request.url,
            headers: request
                .headers
                .into_iter()
                .map(|(name, value)| WitHeader { name, value })
                .collect(),
            body: request.body,
        };
        let (loaded, _, out) = self.invoke(Op::Sign(req)).await;
        match out? {
            Out::Request(r) => Ok(HttpRequest {
                method: r.method,
                url: r.url,
                headers: r.headers.into_iter().map(|h| (h.name, h.value)).collect(),
                body: r.body,
            }),
            _ => Err(unexpected(&loaded)),
        }
    }

    /// Decodes a response body into JSON (request-codec world).
    pub async fn decode(&self, content_type: &str, body: &[u8]) -> Result<Value, PluginError> {
        let (loaded, _, out) = self
            .invoke(Op::Decode {
                content_type: content_type.to_string(),
                body: body.to_vec(),
            })
            .await;
        match out? {
            Out::Json(s) => parse_json(&loaded, &s),
            _ => Err(unexpected(&loaded)),
        }
    }

    /// Reads one page of `stream` (full-connector world).
    pub async fn read(
        &self,
        stream: &str,
        params: &Value,
        cursor: Option<&str>,
    ) -> Result<Page, PluginError> {
        let (loaded, _, out) = self
            .invoke(Op::Read {
                stream: stream.to_string(),
                params: json_text(params),
                cursor: cursor.map(str::to_string),
            })
            .await;
        match out? {
            Out::Page(records, next_cursor) => Ok(Page {
                records: records
                    .iter()
                    .map(|r| parse_json(&loaded, r))
                    .collect::<Result<_, _>>()?,
                next_cursor,
            }),
            _ => Err(unexpected(&loaded)),
        }
    }

    /// Writes records to `stream`; one JSON result per record (full-connector world).
    pub async fn write(&self, stream: &str, records: &[Value]) -> Result<Vec<Value>, PluginError> {
        let (loaded, _, out) = self
            .invoke(Op::Write {
                stream: stream.to_string(),
                records: to_json_args(records),
            })
            .await;
        match out? {
            Out::List(v) => v.iter().map(|r| parse_json(&loaded, r)).collect(),
            _ => Err(unexpected(&loaded)),
        }
    }

    /// Verifies an inbound webhook (webhook-verifier world).
    pub async fn verify_webhook(
        &self,
        headers: &[Header],
        body: &[u8],
    ) -> Result<Verdict, PluginError> {
        let (loaded, _, out) = self
            .invoke(Op::Verify {
                headers: headers
                    .iter()
                    .map(|(n, v)| WitHeader {
                        name: n.clone(),
                        value: v.clone(),
                    })
                    .collect(),
                body: body.to_vec(),
            })
            .await;
        match out? {
            Out::Verdict(valid, reason) => Ok(Verdict {
                valid,
                reason: reason.map(|r| {
                    loaded
                        .eff
                        .redactor
                        .redact(&escape_controls(&r))
                        .into_owned()
                }),
            }),
            _ => Err(unexpected(&loaded)),
        }
    }

    /// Enriches a record (enricher world).
    pub async fn enrich(&self, record: &Value) -> Result<Value, PluginError> {
        let (loaded, _, out) = self.invoke(Op::Enrich(json_text(record))).await;
        match out? {
            Out::Json(s) => parse_json(&loaded, &s),
            _ => Err(unexpected(&loaded)),
        }
    }

    /// Runs one operation named like the CLI's `plugin test --op` with a JSON input, keeping logs
    /// and denials: `call` (`{"function": .., "args": [..]}`), `functions`, `decode`
    /// (`{"content_type": .., "body": ".."}`), `read` (`{"stream": .., "params": {..}, "cursor": ..}`),
    /// `write` (`{"stream": .., "records": [..]}`), `verify` (`{"headers": {..}, "body": ".."}`),
    /// `enrich` (the record), `sign` (`{"method", "url", "headers": {..}, "body"}`).
    pub async fn run_once(&self, op: &str, input: &Value) -> Result<CallOutput, PluginError> {
        let s = |k: &str| {
            input
                .get(k)
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string()
        };
        let headers = || -> Vec<WitHeader> {
            input
                .get("headers")
                .and_then(Value::as_object)
                .map(|m| {
                    m.iter()
                        .map(|(k, v)| WitHeader {
                            name: k.clone(),
                            value: v.as_str().map_or_else(|| v.to_string(), str::to_string),
                        })
                        .collect()
                })
                .unwrap_or_default()
        };
        let function = s("function");
        let call_args = to_json_args(
            input
                .get("args")
                .and_then(Value::as_array)
                .map(Vec::as_slice)
                .unwrap_or_default(),
        );
        let op = match op {
            "call" => Op::Call {
                name: &function,
                args: &call_args,
            },
            "functions" => Op::Functions,
            "decode" => Op::Decode {
                content_type: s("content_type"),
                body: s("body").into_bytes(),
            },
            "read" => Op::Read {
                stream: s("stream"),
                params: input
                    .get("params")
                    .cloned()
                    .unwrap_or(Value::Null)
                    .to_string(),
                cursor: input
                    .get("cursor")
                    .and_then(Value::as_str)
                    .map(str::to_string),
            },
            "write" => Op::Write {
                stream: s("stream"),
                records: to_json_args(
                    input
                        .get("records")
                        .and_then(Value::as_array)
                        .map(Vec::as_slice)
                        .unwrap_or_default(),
                ),
            },
            "verify" => Op::Verify {
                headers: headers(),
                body: s("body").into_bytes(),
            },
            "enrich" => Op::Enrich(input.to_string()),
            "sign" => Op::Sign(WitRequest {
                method: s("method"),
                url: s("url"),
                headers: headers(),
                body: s("body").into_bytes(),
            }),
            other => {
                return Err(PluginError::NotProvided {
                    plugin: self.status().name,
                    what: format!(
                        "operation `{other}` (use call, functions, sign, decode, read, write, verify or enrich)"
                    ),
                });
            }
        };
        let (loaded, report, out) = self.invoke(op).await;
        let result = out
            .and_then(|o| out_to_json(&loaded, o))
            .map_err(|e| e.to_string());
        Ok(CallOutput {
            result,
            logs: report.logs.lock().map(|l| l.clone()).unwrap_or_default(),
            denials: report.denials.lock().map(|l| l.clone()).unwrap_or_default(),
        })
    }

    /// A batch: one instance serves up to `max_calls` mapping-function calls (same tenant only),
    /// then it is replaced. Each call gets its own CPU, wall and output limits; memory is shared
    /// by the calls of one instance.
    pub async fn batch(&self, max_calls: u32) -> Result<PluginBatch, PluginError> {
        let permit = self
            .inner
            .host
            .rt
            .permits
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| PluginError::Host("plugin host is shutting down".into()))?;
        Ok(PluginBatch {
            handle: self.clone(),
            max_calls: max_calls.max(1),
            live: None,
            _permit: permit,
        })
    }
}

fn out_to_json(loaded: &Loaded, out: Out) -> Result<Value, PluginError> {
    Ok(match out {
        Out::Json(s) => parse_json(loaded, &s)?,
        Out::Names(v) => Value::from(v),
        Out::List(v) => Value::Array(
            v.iter()
                .map(|r| parse_json(loaded, r))
                .collect::<Result<_, _>>()?,
        ),
        Out::Page(records, next) => serde_json::json!({
            "records": records.iter().map(|r| parse_json(loaded, r)).collect::<Result<Vec<_>, _>>()?,
            "next_cursor": next,
        }),
        Out::Verdict(valid, reason) => serde_json::json!({"valid": valid, "reason": reason}),
        Out::Request(r) => serde_json::json!({
            "method": r.method,
            "url": r.url,
            "headers": r.headers.iter().map(|h| serde_json::json!([h.name, h.value])).collect::<Vec<_>>(),
            "body": String::from_utf8_lossy(&r.body),
        }),
    })
}

struct Live {
    loaded: Arc<Loaded>,
    store: Store<PluginState>,
    inst: Instance,
    guest: super::bindings::guest::mapping::Guest,
    calls: u32,
    /// The CPU budget of one call in epoch ticks (fixed for the instance's `Loaded`).
    ticks: u64,
}

/// One instance serving a bounded batch of mapping-function calls.
pub struct PluginBatch {
    handle: PluginHandle,
    max_calls: u32,
    live: Option<Live>,
    _permit: tokio::sync::OwnedSemaphorePermit,
}

impl std::fmt::Debug for PluginBatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PluginBatch")
            .field("max_calls", &self.max_calls)
            .field("live", &self.live.is_some())
            .finish()
    }
}

impl PluginBatch {
    async fn ensure(&mut self) -> Result<&mut Live, PluginError> {
        let stale = match &self.live {
            Some(l) => {
                l.calls >= self.max_calls
                    || !Arc::ptr_eq(&l.loaded, &self.handle.inner.current.load())
            }
            None => true,
        };
        if stale {
            self.live = None;
            let loaded = self.handle.inner.current.load_full();
            let report = Arc::new(CallReport::default());
            let mut store = new_store(&self.handle, &loaded, report.clone());
            let idx = loaded
                .mapping
                .as_ref()
                .ok_or_else(|| not_provided(&loaded, "mapping functions"))?;
            let wall = loaded.eff.limits.wall;
            let made = tokio::time::timeout(wall, loaded.pre.instantiate_async(&mut store)).await;
            let inst = match made {
                Err(_) => {
                    return Err(PluginError::WallTimeout {
                        plugin: loaded.eff.name.clone(),
                        limit_ms: wall.as_millis() as u64,
                    });
                }
                Ok(Err(e)) => return Err(map_trap(&loaded, &report, e)),
                Ok(Ok(i)) => i,
            };
            let guest = idx
                .load(&mut store, &inst)
                .map_err(|e| map_trap(&loaded, &report, e))?;
            let ticks = self.handle.inner.host.rt.ticks(loaded.eff.limits.cpu);
            self.live = Some(Live {
                loaded,
                store,
                inst,
                guest,
                calls: 0,
                ticks,
            });
        }
        self.live
            .as_mut()
            .ok_or_else(|| PluginError::Host("batch instance missing".into()))
    }

    /// Calls mapping function `name` on the batch's instance.
    pub async fn call_function(
        &mut self,
        name: &str,
        args: &[Value],
    ) -> Result<Value, PluginError> {
        self.call_function_prepared(name, &PreparedArgs::new(args))
            .await
    }

    /// Calls mapping function `name` on the batch's instance with arguments already serialised.
    pub async fn call_function_prepared(
        &mut self,
        name: &str,
        args: &PreparedArgs,
    ) -> Result<Value, PluginError> {
        let live = self.ensure().await?;
        live.calls += 1;
        let report = Arc::new(CallReport::default());
        live.store.data_mut().reset_call(report.clone());
        arm_ticks(&mut live.store, live.ticks);
        let _ = &live.inst;
        let args = &args.texts;
        let wall = live.loaded.eff.limits.wall;
        let res = tokio::time::timeout(wall, async {
            Ok(live
                .guest
                .call_call(&mut live.store, name, args)
                .await
                .map(|r| r.map(Out::Json)))
        })
        .await;
        let out = finish(&live.loaded, &report, res);
        let failed = out.is_err();
        let value = out.and_then(|out| match out {
            Out::Json(s) => parse_json(&live.loaded, &s),
            _ => Err(unexpected(&live.loaded)),
        });
        if failed {
            // A trapped, timed-out or over-limit instance is not reused.
            self.live = None;
        }
        value
    }
}
