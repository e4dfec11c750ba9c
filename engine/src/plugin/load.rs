//! Loading a plugin: manifest, digest, compile (cached), version/world/import checks, linking of
//! the granted capabilities only, pre-instantiation; and hot reload.

use super::allow::AllowedHost;
use super::bindings::{guest, host};
use super::imports::{Effective, PluginState, http_client};
use super::inspect::{self, parse_name, version_compatible};
use super::{GrantSource, Grants, Limits, PluginError, PluginHost, WIT_PACKAGE, WIT_VERSION};
use crate::spec::plugin::{PluginInfo, PluginWorld};
use crate::spec::{self, Spec};
use arc_swap::ArcSwap;
use indexmap::IndexMap;
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};
use wasmtime::component::{HasSelf, InstancePre, Linker};

/// Compiled components kept in memory per host (cleared when full).
const MAX_SHARED_COMPONENTS: usize = 256;

/// Lowercase hex sha256.
pub(crate) fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// One loaded version of a plugin: compiled, checked, linked and pre-instantiated.
pub(crate) struct Loaded {
    pub(crate) eff: Arc<Effective>,
    pub(crate) info: PluginInfo,
    pub(crate) sha256: String,
    pub(crate) pre: InstancePre<PluginState>,
    pub(crate) mapping: Option<guest::mapping::GuestIndices>,
    pub(crate) signer: Option<guest::signer::GuestIndices>,
    pub(crate) decoder: Option<guest::decoder::GuestIndices>,
    pub(crate) connector: Option<guest::connector::GuestIndices>,
    pub(crate) webhook: Option<guest::webhook::GuestIndices>,
    pub(crate) enrichment: Option<guest::enrichment::GuestIndices>,
}

/// Load state of a plugin, for operators.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PluginStatus {
    /// Name from the manifest.
    pub name: String,
    /// Version serving now.
    pub version: String,
    /// sha256 of the wasm serving now.
    pub sha256: String,
    /// Successful loads (1 + reloads).
    pub loads: u64,
    /// The last failed (re)load, if the latest attempt failed; the previous version keeps serving.
    pub last_error: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Stamp(Vec<(Option<SystemTime>, u64)>);

pub(crate) struct HandleInner {
    pub(crate) host: PluginHost,
    manifest_path: PathBuf,
    grants: GrantSource,
    pub(crate) current: ArcSwap<Loaded>,
    status: Mutex<PluginStatus>,
    stamp: Mutex<Stamp>,
}

/// A loaded plugin; cheap to clone. Calls always use the version serving at call time.
#[derive(Clone)]
pub struct PluginHandle {
    pub(crate) inner: Arc<HandleInner>,
}

impl std::fmt::Debug for PluginHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PluginHandle")
            .field("manifest", &self.inner.manifest_path)
            .field("status", &self.status())
            .finish()
    }
}

fn stamp_of(paths: &[&Path]) -> Stamp {
    Stamp(
        paths
            .iter()
            .map(|p| match std::fs::metadata(p) {
                Ok(m) => (m.modified().ok(), m.len()),
                Err(_) => (None, 0),
            })
            .collect(),
    )
}

/// Reads and validates a manifest (a regular file of at most `limit` bytes, see
/// [`super::HostConfig::max_manifest_bytes`]).
pub fn read_manifest(path: &Path, limit: u64) -> Result<PluginInfo, PluginError> {
    let err = |message: String| PluginError::Manifest {
        path: path.to_path_buf(),
        message,
    };
    let bytes =
        super::fsread::read_regular_file(path, limit).map_err(|source| PluginError::Io {
            path: path.to_path_buf(),
            source,
        })?;
    let text = String::from_utf8(bytes).map_err(|e| {
        err(format!(
            "not UTF-8 text (invalid byte at offset {})",
            e.utf8_error().valid_up_to()
        ))
    })?;
    let format = spec::source::SyntaxFormat::from_path(path)
        .ok_or_else(|| err("a manifest is a .toml or .json file".into()))?;
    let source = spec::source::SourceFile::parse(path, text, format).map_err(|d| {
        let mut diags = crate::diag::Diagnostics::default();
        diags.push(*d);
        err(crate::diag::render_human(&diags, None)
            .trim_end()
            .to_string())
    })?;
    let (loaded, diags) = spec::load_source(source);
    if diags.has_errors() {
        return Err(err(crate::diag::render_human(&diags, None)
            .trim_end()
            .to_string()));
    }
    match loaded.spec {
        Some(Spec::Plugin(m)) => {
            let info = m.plugin;
            if info.name.is_empty()
                || !info
                    .name
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
            {
                return Err(err(format!(
                    "/plugin/name: `{}` must be lowercase letters, digits, `-` or `_`",
                    info.name
                )));
            }
            Ok(info)
        }
        Some(other) => Err(err(format!(
            "expected a plugin manifest ([plugin] table), found a {} spec",
            other.kind().as_str()
        ))),
        None => Err(err("not a plugin manifest".into())),
    }
}

/// The wasm file a manifest names (relative to the manifest's folder).
pub(crate) fn wasm_path_of(manifest: &Path, info: &PluginInfo) -> PathBuf {
    manifest
        .parent()
        .unwrap_or(Path::new("."))
        .join(info.wasm_path())
}

fn effective(
    info: &PluginInfo,
    grants: &Grants,
    host: &PluginHost,
    manifest: &Path,
) -> Result<Effective, PluginError> {
    let err = |message: String| PluginError::Manifest {
        path: manifest.to_path_buf(),
        message,
    };
    let mut manifest_hosts = Vec::new();
    for (i, h) in info.capabilities.allowed_hosts.iter().enumerate() {
        manifest_hosts.push(
            AllowedHost::parse(h)
                .map_err(|m| err(format!("/plugin/capabilities/allowed_hosts/{i}: {m}")))?,
        );
    }
    let mut granted_hosts = Vec::new();
    for h in &grants.allowed_hosts {
        granted_hosts
            .push(AllowedHost::parse(h).map_err(|m| {
                PluginError::Host(format!("grant for plugin `{}`: {m}", info.name))
            })?);
    }
    let declared_secrets = info.capabilities.secrets.clone();
    let secrets: IndexMap<String, super::Secret> = grants
        .secrets
        .iter()
        .filter(|(k, _)| declared_secrets.contains(k))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let config = grants
        .config
        .iter()
        .filter(|(k, _)| info.capabilities.config.contains(k))
        .map(|(k, v)| (k.clone(), v.to_string()))
        .collect();
    let http = if !manifest_hosts.is_empty() && !granted_hosts.is_empty() {
        Some(http_client(grants.allow_private_networks).map_err(PluginError::Host)?)
    } else {
        None
    };
    let redactor = crate::secrets::Redactor::new(secrets.values().map(|s| s.expose()));
    Ok(Effective {
        redactor,
        name: info.name.clone(),
        limits: Limits::effective(&info.limits, &host.config.caps),
        manifest_hosts,
        granted_hosts,
        declared_secrets,
        secrets,
        config,
        http,
        allow_private: grants.allow_private_networks,
    })
}

/// Whether `pin` looks like a sha256 digest (64 hex digits).
fn is_sha256(pin: &str) -> bool {
    pin.len() == 64 && pin.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Loads and links one plugin version. The grants are looked up only once the wasm's bytes are
/// read and found to hash to the manifest's pin.
pub(crate) fn load_version(
    host: &PluginHost,
    manifest_path: &Path,
    grant_source: &GrantSource,
) -> Result<Loaded, PluginError> {
    let info = read_manifest(manifest_path, host.config.max_manifest_bytes)?;
    let world = info.world;
    if !version_compatible(&info.wit_version) {
        return Err(PluginError::UnsupportedWitVersion {
            plugin: info.name.clone(),
            found: info.wit_version.clone(),
            supported: WIT_VERSION.into(),
        });
    }
    let wasm_path = wasm_path_of(manifest_path, &info);
    let Some(pin) = info.sha256.as_deref() else {
        return Err(PluginError::Manifest {
            path: manifest_path.to_path_buf(),
            message: format!(
                "/plugin/sha256: missing: the host loads only a wasm its manifest pins (operators grant capabilities to that digest); add `sha256 = \"<hex>\"` under [plugin]: `switchyard plugin pin {}` writes it, `sha256sum {}` prints it",
                manifest_path.display(),
                wasm_path.display()
            ),
        });
    };
    if !is_sha256(pin) {
        return Err(PluginError::Manifest {
            path: manifest_path.to_path_buf(),
            message: format!(
                "/plugin/sha256: `{}` is not a sha256 digest (64 hex digits); `switchyard plugin pin {}` writes the right one",
                pin.chars().take(80).collect::<String>().escape_default(),
                manifest_path.display()
            ),
        });
    }
    let bytes = super::fsread::read_regular_file(&wasm_path, host.config.max_wasm_bytes).map_err(
        |source| PluginError::Io {
            path: wasm_path.clone(),
            source,
        },
    )?;
    let sha = sha256_hex(&bytes);
    if !pin.eq_ignore_ascii_case(&sha) {
        return Err(PluginError::Integrity {
            path: wasm_path.clone(),
            message: format!(
                "sha256 is {sha}, but the manifest {} pins {pin}",
                manifest_path.display()
            ),
        });
    }
    let grants = grant_source
        .for_sha256(&sha)
        .map_err(|e| PluginError::Host(format!("grants for plugin `{}`: {e}", info.name)))?;
    let grants = &grants;
    let engine = &host.rt.engine;
    let known = host
        .components
        .lock()
        .ok()
        .and_then(|m| m.get(&sha).cloned());
    let component = match known {
        Some(c) => c,
        None => {
            let c =
                super::cache::component(engine, host.cache.as_deref(), &bytes, &sha, &wasm_path)?;
            if let Ok(mut m) = host.components.lock() {
                if m.len() >= MAX_SHARED_COMPONENTS {
                    m.clear();
                }
                m.insert(sha.clone(), c.clone());
            }
            c
        }
    };
    let inspection = inspect::of(engine, &component);
    if let Some(v) = inspection
        .wit_versions
        .iter()
        .find(|v| !version_compatible(v))
    {
        return Err(PluginError::UnsupportedWitVersion {
            plugin: info.name.clone(),
            found: v.clone(),
            supported: WIT_VERSION.into(),
        });
    }
    for iface in world.exports() {
        let present = inspection.exports.iter().any(|(n, _)| {
            parse_name(n).is_some_and(|p| p.package == WIT_PACKAGE && p.interface == *iface)
        });
        if !present {
            return Err(PluginError::WorldMismatch {
                plugin: info.name.clone(),
                world: world.as_str().into(),
                missing: format!("{WIT_PACKAGE}/{iface}@{WIT_VERSION}"),
            });
        }
    }
    let eff = effective(&info, grants, host, manifest_path)?;
    let linked = check_imports(&info, world, &eff, &inspection)?;

    let mut linker: Linker<PluginState> = Linker::new(engine);
    // WASI p2 with an empty context (no env, args, preopens, network): wasm32-wasip2 std imports
    // some of it. `check_imports` refused wasi:sockets before we get here.
    wasmtime_wasi::p2::add_to_linker_async(&mut linker)
        .map_err(|e| PluginError::Host(e.to_string()))?;
    let link_err = |e: wasmtime::Error| PluginError::Host(format!("linking: {e:#}"));
    host::types::add_to_linker::<_, HasSelf<PluginState>>(&mut linker, |s| s).map_err(link_err)?;
    for cap in &linked {
        match *cap {
            "log" => host::log::add_to_linker::<_, HasSelf<PluginState>>(&mut linker, |s| s),
            "clock" => host::clock::add_to_linker::<_, HasSelf<PluginState>>(&mut linker, |s| s),
            "config" => host::config::add_to_linker::<_, HasSelf<PluginState>>(&mut linker, |s| s),
            "secrets" => {
                host::secrets::add_to_linker::<_, HasSelf<PluginState>>(&mut linker, |s| s)
            }
            "http" => host::http::add_to_linker::<_, HasSelf<PluginState>>(&mut linker, |s| s),
            _ => Ok(()),
        }
        .map_err(link_err)?;
    }
    let pre = linker
        .instantiate_pre(&component)
        .map_err(|e| PluginError::ImportNotProvided {
            plugin: info.name.clone(),
            import: format!("{e:#}"),
        })?;
    let has = |iface: &str| world.exports().contains(&iface);
    let idx_err = |e: wasmtime::Error| PluginError::WorldMismatch {
        plugin: info.name.clone(),
        world: world.as_str().into(),
        missing: format!("{e:#}"),
    };
    let mapping = has("mapping")
        .then(|| guest::mapping::GuestIndices::new(&pre))
        .transpose()
        .map_err(idx_err)?;
    let signer = has("signer")
        .then(|| guest::signer::GuestIndices::new(&pre))
        .transpose()
        .map_err(idx_err)?;
    let decoder = has("decoder")
        .then(|| guest::decoder::GuestIndices::new(&pre))
        .transpose()
        .map_err(idx_err)?;
    let connector = has("connector")
        .then(|| guest::connector::GuestIndices::new(&pre))
        .transpose()
        .map_err(idx_err)?;
    let webhook = has("webhook")
        .then(|| guest::webhook::GuestIndices::new(&pre))
        .transpose()
        .map_err(idx_err)?;
    let enrichment = has("enrichment")
        .then(|| guest::enrichment::GuestIndices::new(&pre))
        .transpose()
        .map_err(idx_err)?;
    Ok(Loaded {
        eff: Arc::new(eff),
        info,
        sha256: sha,
        pre,
        mapping,
        signer,
        decoder,
        connector,
        webhook,
        enrichment,
    })
}

/// Checks every import against what the host provides and what is granted; returns the
/// `switchyard:plugin` host interfaces to link.
fn check_imports(
    info: &PluginInfo,
    world: PluginWorld,
    eff: &Effective,
    inspection: &inspect::Inspection,
) -> Result<Vec<&'static str>, PluginError> {
    let plugin = info.name.clone();
    let mut linked: Vec<&'static str> = vec!["log", "clock"];
    if !info.capabilities.config.is_empty() {
        linked.push("config");
    }
    if !eff.declared_secrets.is_empty() {
        linked.push("secrets");
    }
    if eff.http.is_some() {
        linked.push("http");
    }
    for (name, _) in &inspection.imports {
        let Some(parsed) = parse_name(name) else {
            return Err(PluginError::ImportNotProvided {
                plugin,
                import: name.clone(),
            });
        };
        if parsed.package == WIT_PACKAGE {
            let iface = parsed.interface;
            if iface == "types" {
                continue;
            }
            if !world.imports().contains(&iface) {
                return Err(PluginError::CapabilityNotGranted {
                    plugin,
                    import: name.clone(),
                    capability: iface.into(),
                    reason: format!("interface `{iface}` is not part of world `{world}`"),
                });
            }
            if !linked.contains(&iface) {
                let reason = match iface {
                    "http" if eff.manifest_hosts.is_empty() => {
                        "the manifest requests no allowed_hosts".to_string()
                    }
                    "http" => "the operator grants no allowed hosts".to_string(),
                    "secrets" => "the manifest declares no secrets".to_string(),
                    "config" => "the manifest declares no config keys".to_string(),
                    _ => "not granted".to_string(),
                };
                return Err(PluginError::CapabilityNotGranted {
                    plugin,
                    import: name.clone(),
                    capability: iface.into(),
                    reason,
                });
            }
            continue;
        }
        let wasi_ok = parsed.package == "wasi:cli"
            || parsed.package == "wasi:io"
            || parsed.package == "wasi:clocks"
            || parsed.package == "wasi:random"
            || parsed.package == "wasi:filesystem";
        if !wasi_ok {
            return Err(PluginError::ImportNotProvided {
                plugin,
                import: name.clone(),
            });
        }
    }
    Ok(linked)
}

impl PluginHost {
    /// Loads the plugin described by `manifest` (which must pin its wasm's sha256) with
    /// `grants`: fixed [`Grants`], or a [`GrantSource`] that chooses them by the loaded wasm's
    /// digest at every (re)load.
    pub fn load(
        &self,
        manifest: &Path,
        grants: impl Into<GrantSource>,
    ) -> Result<PluginHandle, PluginError> {
        let grants = grants.into();
        let loaded = load_version(self, manifest, &grants)?;
        let wasm = wasm_path_of(manifest, &loaded.info);
        let status = PluginStatus {
            name: loaded.info.name.clone(),
            version: loaded.info.version.clone(),
            sha256: loaded.sha256.clone(),
            loads: 1,
            last_error: None,
        };
        Ok(PluginHandle {
            inner: Arc::new(HandleInner {
                host: self.clone(),
                manifest_path: manifest.to_path_buf(),
                grants,
                current: ArcSwap::from_pointee(loaded),
                status: Mutex::new(status),
                stamp: Mutex::new(stamp_of(&[manifest, &wasm])),
            }),
        })
    }

    /// Polls the manifests and wasm files of `handles` every `interval` and reloads the ones that
    /// changed (a failed load keeps the previous version serving and is reported in
    /// [`PluginHandle::status`] and the log). Stops when the returned guard is dropped.
    pub fn watch(&self, handles: Vec<PluginHandle>, interval: Duration) -> WatchGuard {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let spawned = std::thread::Builder::new()
            .name("plugin-watch".into())
            .spawn(move || {
                while !flag.load(Ordering::Relaxed) {
                    std::thread::sleep(interval);
                    for h in &handles {
                        let _ = h.reload_if_changed();
                    }
                }
            });
        if let Err(e) = spawned {
            tracing::error!(error = %e, "plugin host: cannot start the reload watcher");
        }
        WatchGuard { stop }
    }
}

/// Stops the reload watcher when dropped.
#[derive(Debug)]
pub struct WatchGuard {
    stop: Arc<AtomicBool>,
}

impl Drop for WatchGuard {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

impl PluginHandle {
    /// Name, version and digest serving now, and the last reload failure.
    pub fn status(&self) -> PluginStatus {
        match self.inner.status.lock() {
            Ok(s) => s.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }

    /// The world the serving version implements.
    pub fn world(&self) -> PluginWorld {
        self.inner.current.load().info.world
    }

    /// The effective limits of the serving version.
    pub fn limits(&self) -> Limits {
        self.inner.current.load().eff.limits
    }

    /// Reloads now. On failure the previous version keeps serving and the error is recorded.
    pub fn reload(&self) -> Result<(), PluginError> {
        let inner = &self.inner;
        let result = load_version(&inner.host, &inner.manifest_path, &inner.grants);
        let mut status = match inner.status.lock() {
            Ok(s) => s,
            Err(p) => p.into_inner(),
        };
        match result {
            Ok(loaded) => {
                status.version = loaded.info.version.clone();
                status.sha256 = loaded.sha256.clone();
                status.loads += 1;
                status.last_error = None;
                tracing::info!(plugin = %status.name, version = %status.version, "plugin reloaded");
                inner.current.store(Arc::new(loaded));
                Ok(())
            }
            Err(e) => {
                tracing::error!(plugin = %status.name, error = %e, "plugin reload failed; previous version keeps serving");
                status.last_error = Some(e.to_string());
                Err(e)
            }
        }
    }

    /// Reloads if the manifest or the wasm changed since the last attempt; returns whether it
    /// tried.
    pub fn reload_if_changed(&self) -> Result<bool, PluginError> {
        let inner = &self.inner;
        let wasm = wasm_path_of(&inner.manifest_path, &inner.current.load().info);
        let now = stamp_of(&[&inner.manifest_path, &wasm]);
        {
            let mut stamp = match inner.stamp.lock() {
                Ok(s) => s,
                Err(p) => p.into_inner(),
            };
            if *stamp == now {
                return Ok(false);
            }
            *stamp = now;
        }
        self.reload().map(|()| true)
    }
}

/// Compiles (through the host's cache) and inspects a component file.
pub fn inspect_component(
    host: &PluginHost,
    wasm: &Path,
) -> Result<inspect::Inspection, PluginError> {
    let bytes =
        super::fsread::read_regular_file(wasm, host.config.max_wasm_bytes).map_err(|source| {
            PluginError::Io {
                path: wasm.to_path_buf(),
                source,
            }
        })?;
    let sha = sha256_hex(&bytes);
    let component =
        super::cache::component(&host.rt.engine, host.cache.as_deref(), &bytes, &sha, wasm)?;
    Ok(inspect::of(&host.rt.engine, &component))
}
