//! On-disk cache of compiled components (`.cwasm`: native code, deserialised without checks).
//!
//! Only what this host compiled from the exact wasm bytes being loaded is ever deserialised. An
//! entry is `MAGIC || HMAC-SHA256(key, domain || wasm sha256 || engine hash || code) || code`,
//! named `<wasm sha256>-<engine hash>.cwasm`, under a host-local 32-byte key (`cache.key`,
//! created with mode 0600 on first use in a 0700 folder). The MAC binds an entry to the wasm it
//! was compiled from, so an entry copied under another plugin's name, edited, or written by
//! someone without the key is refused (whatever its mode or owner) and the wasm is recompiled and
//! the entry overwritten. The entry is read into memory, verified, and deserialised from that
//! buffer, so it cannot change between the check and its use.
//!
//! The default folder is per user: `$SWITCHYARD_PLUGIN_CACHE`, else
//! `$XDG_CACHE_HOME/switchyard/plugins`, else `~/.cache/switchyard/plugins`.

use super::PluginError;
use super::fsread;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use std::hash::{Hash, Hasher};
use std::io::Write;
use std::path::{Path, PathBuf};
use wasmtime::Engine;
use wasmtime::component::Component;

/// The environment variable naming the compiled-component cache folder.
pub const CACHE_ENV: &str = "SWITCHYARD_PLUGIN_CACHE";

/// First bytes of an entry (format version 1).
const MAGIC: &[u8; 8] = b"SYCWASM1";
/// What the MAC covers first: entries of another format or purpose never verify.
const DOMAIN: &[u8] = b"switchyard plugin cache v1\0";
/// The key file in the cache folder.
const KEY_FILE: &str = "cache.key";
const KEY_LEN: usize = 32;
const MAC_LEN: usize = 32;
/// Largest entry read back (a 32 MiB wasm compiles to far less native code than this).
const MAX_ENTRY_BYTES: u64 = 1 << 30;

/// The per-user default folder (see the module documentation); none without a home.
pub fn default_dir() -> Option<PathBuf> {
    let env = |k: &str| std::env::var_os(k).filter(|v| !v.is_empty());
    if let Some(d) = env(CACHE_ENV) {
        return Some(PathBuf::from(d));
    }
    if let Some(x) = env("XDG_CACHE_HOME").map(PathBuf::from)
        && x.is_absolute()
    {
        return Some(x.join("switchyard/plugins"));
    }
    env("HOME").map(|h| PathBuf::from(h).join(".cache/switchyard/plugins"))
}

/// A prepared cache folder and its key.
pub(crate) struct Cache {
    dir: PathBuf,
    key: [u8; KEY_LEN],
}

impl std::fmt::Debug for Cache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cache").field("dir", &self.dir).finish()
    }
}

impl Cache {
    /// Creates the folder (mode 0700) and the key (mode 0600) if needed. A key file that is not
    /// a private regular file of this user, or not 32 bytes, is replaced by a new key (which
    /// invalidates every entry).
    pub(crate) fn open(dir: &Path) -> Result<Cache, PluginError> {
        let io = |source| PluginError::Io {
            path: dir.to_path_buf(),
            source,
        };
        std::fs::create_dir_all(dir).map_err(io)?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).map_err(io)?;
        }
        let key_path = dir.join(KEY_FILE);
        let key = match read_key(&key_path) {
            Some(k) => k,
            None => {
                let k: [u8; KEY_LEN] = rand::random();
                write_atomic(dir, &key_path, &k).map_err(|source| PluginError::Io {
                    path: key_path.clone(),
                    source,
                })?;
                k
            }
        };
        Ok(Cache {
            dir: dir.to_path_buf(),
            key,
        })
    }

    fn mac(&self, sha: &str, engine_key: &str, code: &[u8]) -> Hmac<Sha256> {
        // A 32-byte key is always a valid HMAC key.
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.key)
            .unwrap_or_else(|_| unreachable!("HMAC accepts keys of any length"));
        mac.update(DOMAIN);
        mac.update(sha.as_bytes());
        mac.update(b"\0");
        mac.update(engine_key.as_bytes());
        mac.update(b"\0");
        mac.update(code);
        mac
    }

    /// The verified code of the entry for `sha`, or why there is none.
    fn read_entry(&self, file: &Path, sha: &str, engine_key: &str) -> Result<Vec<u8>, String> {
        let f = fsread::open_regular(file, true).map_err(|e| e.to_string())?;
        let mut bytes = fsread::read_capped(f, MAX_ENTRY_BYTES).map_err(|e| e.to_string())?;
        if bytes.len() < MAGIC.len() + MAC_LEN || &bytes[..MAGIC.len()] != MAGIC {
            return Err("not an entry of this format".into());
        }
        let (head, code) = bytes.split_at(MAGIC.len() + MAC_LEN);
        self.mac(sha, engine_key, code)
            .verify_slice(&head[MAGIC.len()..])
            .map_err(|_| {
                "its MAC does not match these wasm bytes and this host's key".to_string()
            })?;
        bytes.drain(..MAGIC.len() + MAC_LEN);
        Ok(bytes)
    }

    fn write_entry(&self, file: &Path, sha: &str, engine_key: &str, code: &[u8]) {
        let tag = self.mac(sha, engine_key, code).finalize().into_bytes();
        let mut entry = Vec::with_capacity(MAGIC.len() + MAC_LEN + code.len());
        entry.extend_from_slice(MAGIC);
        entry.extend_from_slice(&tag);
        entry.extend_from_slice(code);
        if let Err(e) = write_atomic(&self.dir, file, &entry) {
            tracing::warn!(file = %file.display(), error = %e, "plugin cache: cannot write entry");
        }
    }
}

/// The key in `path`, if it is a private regular file of this user holding exactly 32 bytes.
fn read_key(path: &Path) -> Option<[u8; KEY_LEN]> {
    let f = fsread::open_regular(path, true).ok()?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        let m = f.metadata().ok()?;
        // SAFETY: geteuid has no preconditions and cannot fail.
        let me = unsafe { libc::geteuid() };
        if m.uid() != me || m.mode() & 0o077 != 0 {
            tracing::warn!(file = %path.display(), "plugin cache: key file is not private to this user; replacing it");
            return None;
        }
    }
    let bytes = fsread::read_capped(f, KEY_LEN as u64).ok()?;
    bytes.try_into().ok()
}

/// Feeds `Hash` output into sha256 (deterministic, unlike `DefaultHasher` across releases).
struct ShaHasher(Sha256);

impl Hasher for ShaHasher {
    fn finish(&self) -> u64 {
        0
    }
    fn write(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }
}

/// Short hex digest of the engine's compatibility hash.
pub(crate) fn engine_key(engine: &Engine) -> String {
    let mut h = ShaHasher(Sha256::new());
    engine.precompile_compatibility_hash().hash(&mut h);
    hex::encode(&h.0.finalize()[..8])
}

/// A compile error without any of the file's content: wasmtime's and wasmparser's messages can
/// quote names, strings and bytes of the module (which may be anything, secrets included), so
/// only what the host can say on its own is kept: what kind of file it is and the byte offset.
pub(crate) fn compile_error(wasm_path: &Path, bytes: &[u8], e: &wasmtime::Error) -> PluginError {
    let what = if !bytes.starts_with(b"\0asm") {
        "the file does not start with the webassembly magic bytes".to_string()
    } else if bytes.get(4..8) == Some(&[1, 0, 0, 0]) {
        "a core webassembly module, not a component (build for wasm32-wasip2, or wrap it with `wasm-tools component new`)".to_string()
    } else {
        let text = format!("{e:#}");
        match error_offset(&text) {
            Some(at) => format!("invalid component (at byte offset {at:#x})"),
            None => "the component does not compile with this host's settings".to_string(),
        }
    };
    PluginError::Compile {
        path: wasm_path.to_path_buf(),
        message: what,
    }
}

/// The `offset 0x…` wasmparser puts in its messages, parsed to a number (so nothing but digits
/// comes from the message).
fn error_offset(text: &str) -> Option<u64> {
    let i = text.find("offset 0x")?;
    let hex: String = text[i + "offset 0x".len()..]
        .chars()
        .take_while(char::is_ascii_hexdigit)
        .take(16)
        .collect();
    u64::from_str_radix(&hex, 16).ok()
}

/// Compiles `bytes` (whose sha256 is `sha`), going through `cache` when given.
pub(crate) fn component(
    engine: &Engine,
    cache: Option<&Cache>,
    bytes: &[u8],
    sha: &str,
    wasm_path: &Path,
) -> Result<Component, PluginError> {
    let compile_err = |e: wasmtime::Error| compile_error(wasm_path, bytes, &e);
    let Some(cache) = cache else {
        return Component::new(engine, bytes).map_err(compile_err);
    };
    let ekey = engine_key(engine);
    let file: PathBuf = cache.dir.join(format!("{sha}-{ekey}.cwasm"));
    match cache.read_entry(&file, sha, &ekey) {
        Ok(code) => {
            // SAFETY: `code` is in memory (it cannot change any more) and carries a MAC under this
            // host's private key over the sha256 of the wasm being loaded and this engine's
            // compatibility hash: this host compiled it from these exact bytes.
            match unsafe { Component::deserialize(engine, &code) } {
                Ok(c) => return Ok(c),
                Err(e) => {
                    tracing::warn!(file = %file.display(), error = %e, "plugin cache: recompiling unusable entry")
                }
            }
        }
        Err(why) if std::fs::symlink_metadata(&file).is_ok() => {
            tracing::warn!(file = %file.display(), reason = %why, "plugin cache: entry refused; recompiling");
        }
        Err(_) => {}
    }
    let compiled = engine.precompile_component(bytes).map_err(compile_err)?;
    cache.write_entry(&file, sha, &ekey, &compiled);
    // SAFETY: `compiled` was produced by this engine a moment ago.
    unsafe { Component::deserialize(engine, &compiled) }.map_err(compile_err)
}

fn write_atomic(dir: &Path, file: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = dir.join(format!(
        ".tmp-{}-{}",
        std::process::id(),
        rand::random::<u64>()
    ));
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts.open(&tmp)?;
    let written = f.write_all(bytes).and_then(|()| f.sync_all());
    drop(f);
    if let Err(e) = written.and_then(|()| std::fs::rename(&tmp, file)) {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_are_parsed_from_messages_and_nothing_else_is_kept() {
        assert_eq!(
            error_offset("`SECRET` is not a valid name (at offset 0x1f)"),
            Some(0x1f)
        );
        assert_eq!(error_offset("no offset here"), None);
    }

    #[test]
    fn a_key_file_others_can_read_is_replaced() {
        let dir = tempfile::tempdir().expect("tempdir");
        let c = Cache::open(dir.path()).expect("opens");
        let key_path = dir.path().join(KEY_FILE);
        assert_eq!(Cache::open(dir.path()).expect("opens").key, c.key);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&key_path)
                .expect("key")
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
            std::fs::set_permissions(&key_path, std::fs::Permissions::from_mode(0o644))
                .expect("chmod");
            let c2 = Cache::open(dir.path()).expect("opens");
            assert_ne!(c2.key, c.key, "a readable key is not trusted");
        }
    }
}
