//! Per-call store state and the host imports plugins may call: log, config, secrets, clock and
//! outbound HTTP (allowlist checked on every hop and after DNS resolution).

use super::allow::{AllowedHost, is_private};
use super::bindings::host;
use super::bindings::host::types::{
    Header as WitHeader, HttpRequest as WitRequest, HttpResponse as WitResponse,
    PluginError as GuestError,
};
use super::{Limits, LogLine, Secret};
use indexmap::IndexMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use url::Url;
use wasmtime::component::ResourceTable;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

/// Most redirects the host follows for one `http.send`.
const MAX_REDIRECTS: usize = 5;
/// Log budget per call.
const LOG_BYTES_PER_CALL: usize = 64 << 10;
/// Longest log line.
const LOG_LINE_BYTES: usize = 1 << 10;
/// Log lines kept in the call report.
const LOG_LINES_KEPT: usize = 200;

/// What a loaded plugin may do: the intersection of its manifest and the operator's grants.
pub(crate) struct Effective {
    pub(crate) name: String,
    pub(crate) limits: Limits,
    pub(crate) manifest_hosts: Vec<AllowedHost>,
    pub(crate) granted_hosts: Vec<AllowedHost>,
    pub(crate) declared_secrets: Vec<String>,
    pub(crate) secrets: IndexMap<String, Secret>,
    pub(crate) config: IndexMap<String, String>,
    pub(crate) http: Option<reqwest::Client>,
    pub(crate) allow_private: bool,
    /// Removes the granted secrets' values (raw and encoded) from log lines and errors.
    pub(crate) redactor: crate::secrets::Redactor,
}

/// Facts about one call the host needs after the store is gone (limit breaches, logs).
#[derive(Default)]
pub(crate) struct CallReport {
    pub(crate) memory_requested: AtomicU64,
    pub(crate) cpu_exceeded: AtomicBool,
    pub(crate) logs: Mutex<Vec<LogLine>>,
    pub(crate) denials: Mutex<Vec<String>>,
}

impl CallReport {
    fn deny(&self, message: String) -> GuestError {
        // Denial messages quote names the plugin chose; they are logged and reported, so they
        // carry no control characters.
        let message = escape_controls(&message);
        tracing::warn!(denial = %message, "plugin capability denied");
        if let Ok(mut d) = self.denials.lock() {
            d.push(message.clone());
        }
        GuestError::Denied(message)
    }
}

/// Bytes counted per table element (a function reference is one pointer).
const TABLE_ELEMENT_BYTES: u64 = 8;
/// Most elements of one table.
const TABLE_MAX_ELEMENTS: usize = 100_000;

/// Memory/table limiter of one store that remembers a breach. A component may hold several core
/// instances, each with its own linear memories and tables: the limit is on their *sum* (the size
/// of every memory and table of the store, including their initial sizes), not on each alone.
pub(crate) struct Limiter {
    memory_limit: u64,
    /// Bytes of every memory and table of the store so far (they never shrink).
    total: u64,
    /// The last growth allowed, taken back if wasmtime then fails to perform it.
    pending: u64,
    report: Arc<CallReport>,
}

impl Limiter {
    fn grow(&mut self, delta: u64) -> wasmtime::Result<bool> {
        let total = self.total.saturating_add(delta);
        if total > self.memory_limit {
            self.report.memory_requested.store(total, Ordering::Relaxed);
            return Err(wasmtime::format_err!(
                "memory limit of {} bytes exceeded (all memories and tables together)",
                self.memory_limit
            ));
        }
        self.total = total;
        self.pending = delta;
        Ok(true)
    }

    fn undo(&mut self) {
        self.total = self.total.saturating_sub(self.pending);
        self.pending = 0;
    }
}

impl wasmtime::ResourceLimiter for Limiter {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        self.grow((desired as u64).saturating_sub(current as u64))
    }

    fn memory_grow_failed(&mut self, _error: wasmtime::Error) -> wasmtime::Result<()> {
        self.undo();
        Ok(())
    }

    fn table_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > TABLE_MAX_ELEMENTS {
            return Ok(false);
        }
        let delta = (desired as u64).saturating_sub(current as u64);
        self.grow(delta.saturating_mul(TABLE_ELEMENT_BYTES))
    }

    fn table_grow_failed(&mut self, _error: wasmtime::Error) -> wasmtime::Result<()> {
        self.undo();
        Ok(())
    }

    fn instances(&self) -> usize {
        64
    }

    fn tables(&self) -> usize {
        64
    }

    fn memories(&self) -> usize {
        8
    }
}

/// The data of one store (one call or one bounded batch).
pub(crate) struct PluginState {
    pub(crate) eff: Arc<Effective>,
    pub(crate) report: Arc<CallReport>,
    pub(crate) limiter: Limiter,
    pub(crate) ticks_left: u64,
    /// Built on first use: most calls never touch WASI.
    wasi: Option<WasiCtx>,
    table: ResourceTable,
    http_used: u32,
    log_bytes: usize,
}

impl PluginState {
    pub(crate) fn new(eff: Arc<Effective>, report: Arc<CallReport>) -> PluginState {
        let limiter = Limiter {
            memory_limit: eff.limits.memory_bytes,
            total: 0,
            pending: 0,
            report: report.clone(),
        };
        let mut table = ResourceTable::new();
        table.set_max_capacity(1_000);
        PluginState {
            eff,
            report,
            limiter,
            ticks_left: 0,
            wasi: None,
            table,
            http_used: 0,
            log_bytes: 0,
        }
    }

    /// Records a denied capability; the message (which may quote what the plugin asked for)
    /// is escaped and has the granted secrets removed.
    fn deny(&self, message: String) -> GuestError {
        self.report
            .deny(self.eff.redactor.redact(&message).into_owned())
    }

    /// Resets the per-call counters (batch mode).
    pub(crate) fn reset_call(&mut self, report: Arc<CallReport>) {
        self.report = report.clone();
        self.limiter.report = report;
        self.http_used = 0;
        self.log_bytes = 0;
    }

    fn check_url(&self, url: &Url, context: &str) -> Result<(), GuestError> {
        let eff = &self.eff;
        if !eff.manifest_hosts.iter().any(|h| h.matches(url)) {
            return Err(self.deny(format!(
                "{context}`{}` is not in the plugin's allowed hosts ({})",
                origin(url),
                list(&eff.manifest_hosts)
            )));
        }
        if !eff.granted_hosts.iter().any(|h| h.matches(url)) {
            return Err(self.deny(format!(
                "{context}`{}` is not granted by the operator ({})",
                origin(url),
                list(&eff.granted_hosts)
            )));
        }
        if let Some(url::Host::Ipv4(ip)) = url.host()
            && !eff.allow_private
            && is_private(ip.into())
        {
            return Err(self.deny(format!("{context}`{}` is a private address", origin(url))));
        }
        if let Some(url::Host::Ipv6(ip)) = url.host()
            && !eff.allow_private
            && is_private(ip.into())
        {
            return Err(self.deny(format!("{context}`{}` is a private address", origin(url))));
        }
        Ok(())
    }

    async fn send(&mut self, req: WitRequest) -> Result<WitResponse, GuestError> {
        let Some(client) = self.eff.http.clone() else {
            return Err(self.deny("http is not granted to this plugin".into()));
        };
        let limits = self.eff.limits;
        let method = reqwest::Method::from_bytes(req.method.to_ascii_uppercase().as_bytes())
            .map_err(|_| GuestError::InvalidInput(format!("invalid method `{}`", req.method)))?;
        let mut method = method;
        let mut url = Url::parse(&req.url)
            .map_err(|e| GuestError::InvalidInput(format!("invalid url `{}`: {e}", req.url)))?;
        let mut body = req.body;
        let mut context = String::new();
        for _hop in 0..=MAX_REDIRECTS {
            self.check_url(&url, &context)?;
            if self.http_used >= limits.http_requests {
                return Err(self.deny(format!(
                    "http request limit of {} per call reached",
                    limits.http_requests
                )));
            }
            self.http_used += 1;
            let mut rb = client.request(method.clone(), url.clone());
            for h in &req.headers {
                let lower = h.name.to_ascii_lowercase();
                if matches!(
                    lower.as_str(),
                    "host" | "content-length" | "transfer-encoding" | "connection"
                ) {
                    continue;
                }
                rb = rb.header(h.name.as_str(), h.value.as_str());
            }
            if !body.is_empty() {
                rb = rb.body(body.clone());
            }
            let resp = rb.send().await.map_err(|e| {
                let msg = chain(&e);
                if msg.contains("private or loopback") {
                    self.deny(format!("{context}{msg}"))
                } else {
                    GuestError::Upstream(msg)
                }
            })?;
            let status = resp.status();
            if status.is_redirection()
                && let Some(loc) = resp
                    .headers()
                    .get(reqwest::header::LOCATION)
                    .and_then(|v| v.to_str().ok())
            {
                let next = url.join(loc).map_err(|e| {
                    GuestError::Upstream(format!("invalid redirect location `{loc}`: {e}"))
                })?;
                if status == reqwest::StatusCode::SEE_OTHER
                    || (method == reqwest::Method::POST && matches!(status.as_u16(), 301 | 302))
                {
                    method = reqwest::Method::GET;
                    body = Vec::new();
                }
                context = format!("redirect from `{}` to ", origin(&url));
                url = next;
                continue;
            }
            let headers = resp
                .headers()
                .iter()
                .map(|(k, v)| WitHeader {
                    name: k.as_str().to_string(),
                    value: String::from_utf8_lossy(v.as_bytes()).into_owned(),
                })
                .collect();
            let mut resp = resp;
            let mut out = Vec::new();
            while let Some(chunk) = resp
                .chunk()
                .await
                .map_err(|e| GuestError::Upstream(chain(&e)))?
            {
                if (out.len() + chunk.len()) as u64 > limits.http_response_bytes {
                    return Err(GuestError::Upstream(format!(
                        "response body larger than {} bytes",
                        limits.http_response_bytes
                    )));
                }
                out.extend_from_slice(&chunk);
            }
            return Ok(WitResponse {
                status: status.as_u16(),
                headers,
                body: out,
            });
        }
        Err(GuestError::Upstream(format!(
            "more than {MAX_REDIRECTS} redirects"
        )))
    }
}

fn origin(url: &Url) -> String {
    match (url.host_str(), url.port_or_known_default()) {
        (Some(h), Some(p)) => format!("{}://{h}:{p}", url.scheme()),
        _ => url.as_str().to_string(),
    }
}

fn list(hosts: &[AllowedHost]) -> String {
    if hosts.is_empty() {
        "none".into()
    } else {
        hosts
            .iter()
            .map(AllowedHost::as_str)
            .collect::<Vec<_>>()
            .join(", ")
    }
}

fn chain(e: &dyn std::error::Error) -> String {
    let mut msg = e.to_string();
    let mut src = e.source();
    while let Some(s) = src {
        msg.push_str(": ");
        msg.push_str(&s.to_string());
        src = s.source();
    }
    msg
}

/// DNS resolution that drops private, loopback and link-local addresses (unless allowed), so a
/// name cannot be rebound to an internal service; connections go to the vetted addresses.
struct GuardedResolver {
    allow_private: bool,
}

impl reqwest::dns::Resolve for GuardedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let allow = self.allow_private;
        Box::pin(async move {
            let host = name.as_str().to_string();
            let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0))
                .await?
                .filter(|a| allow || !is_private(a.ip()))
                .collect();
            if addrs.is_empty() {
                return Err(format!(
                    "`{host}` resolves only to private or loopback addresses (or not at all)"
                )
                .into());
            }
            Ok(Box::new(addrs.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

/// The HTTP client of one plugin: no automatic redirects, no proxies, guarded DNS.
pub(crate) fn http_client(allow_private: bool) -> Result<reqwest::Client, String> {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .dns_resolver(Arc::new(GuardedResolver { allow_private }))
        .connect_timeout(Duration::from_secs(5))
        .timeout(Duration::from_secs(30))
        .user_agent("switchyard-plugin-host")
        .build()
        .map_err(|e| e.to_string())
}

impl WasiView for PluginState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            // No env, args, preopens or sockets; stdin closed, stdout/stderr discarded.
            ctx: self.wasi.get_or_insert_with(|| WasiCtx::builder().build()),
            table: &mut self.table,
        }
    }
}

/// `text` with control characters (C0, DEL, C1) escaped as `\u{..}`: plugin-chosen text never
/// reaches a terminal or a log line raw.
pub(crate) fn escape_controls(text: &str) -> String {
    if !text.chars().any(char::is_control) {
        return text.to_string();
    }
    text.chars()
        .flat_map(|c| {
            if c.is_control() {
                c.escape_default().collect::<Vec<_>>()
            } else {
                vec![c]
            }
        })
        .collect()
}

impl host::types::Host for PluginState {}

impl host::log::Host for PluginState {
    async fn emit(&mut self, level: host::log::Level, message: String) -> wasmtime::Result<()> {
        use host::log::Level;
        if self.log_bytes >= LOG_BYTES_PER_CALL {
            return Ok(());
        }
        let mut clean = escape_controls(&message);
        // Granted secret values never reach the log, even if the plugin prints them (raw,
        // percent-encoded, base64, hex or reversed).
        self.eff.redactor.redact_in_place(&mut clean);
        if clean.len() > LOG_LINE_BYTES {
            let mut cut = LOG_LINE_BYTES;
            while !clean.is_char_boundary(cut) {
                cut -= 1;
            }
            clean.truncate(cut);
            clean.push('…');
        }
        self.log_bytes += clean.len();
        let plugin = self.eff.name.as_str();
        let level = match level {
            Level::Trace => {
                tracing::trace!(plugin, "{clean}");
                "trace"
            }
            Level::Debug => {
                tracing::debug!(plugin, "{clean}");
                "debug"
            }
            Level::Info => {
                tracing::info!(plugin, "{clean}");
                "info"
            }
            Level::Warn => {
                tracing::warn!(plugin, "{clean}");
                "warn"
            }
            Level::Error => {
                tracing::error!(plugin, "{clean}");
                "error"
            }
        };
        if let Ok(mut logs) = self.report.logs.lock()
            && logs.len() < LOG_LINES_KEPT
        {
            logs.push(LogLine {
                level,
                message: clean,
            });
        }
        Ok(())
    }
}

impl host::config::Host for PluginState {
    async fn get(&mut self, key: String) -> wasmtime::Result<Option<String>> {
        Ok(self.eff.config.get(&key).cloned())
    }
}

impl host::secrets::Host for PluginState {
    async fn get(&mut self, name: String) -> wasmtime::Result<Result<String, GuestError>> {
        if !self.eff.declared_secrets.contains(&name) {
            return Ok(Err(self.deny(format!(
                "secret `{name}` is not declared in the plugin manifest"
            ))));
        }
        Ok(match self.eff.secrets.get(&name) {
            Some(s) => Ok(s.expose().to_string()),
            None => Err(self.deny(format!("secret `{name}` is not granted by the operator"))),
        })
    }
}

impl host::clock::Host for PluginState {
    async fn now_unix_ms(&mut self) -> wasmtime::Result<u64> {
        Ok(std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0))
    }
}

impl host::http::Host for PluginState {
    async fn send(
        &mut self,
        request: WitRequest,
    ) -> wasmtime::Result<Result<WitResponse, GuestError>> {
        Ok(PluginState::send(self, request).await)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wasmtime::ResourceLimiter;

    fn limiter(limit: u64) -> Limiter {
        Limiter {
            memory_limit: limit,
            total: 0,
            pending: 0,
            report: Arc::default(),
        }
    }

    #[test]
    fn memories_and_tables_share_one_total() {
        let mut l = limiter(10 << 20);
        // Two memories of 4 MiB each: fine; a third of 4 MiB passes the 10 MiB total.
        assert!(l.memory_growing(0, 4 << 20, None).expect("ok"));
        assert!(l.memory_growing(0, 4 << 20, None).expect("ok"));
        assert!(l.memory_growing(0, 4 << 20, None).is_err());
        assert_eq!(l.report.memory_requested.load(Ordering::Relaxed), 12 << 20);
        // A table of 1000 elements counts 8 KB against the same total.
        assert!(l.table_growing(0, 1000, None).expect("ok"));
        assert_eq!(l.total, (8 << 20) + 8000);
        // A growth wasmtime could not perform is taken back.
        assert!(l.memory_growing(4 << 20, 5 << 20, None).expect("ok"));
        l.memory_grow_failed(wasmtime::format_err!("no room"))
            .expect("ok");
        assert_eq!(l.total, (8 << 20) + 8000);
        assert!(
            !l.table_growing(0, TABLE_MAX_ELEMENTS + 1, None)
                .expect("ok")
        );
    }

    #[test]
    fn control_characters_are_escaped() {
        assert_eq!(
            escape_controls("a\u{1b}[2J\r\u{9b}b"),
            "a\\u{1b}[2J\\r\\u{9b}b"
        );
        assert_eq!(escape_controls("plain"), "plain");
    }
}
