//! On-disk cache of compiled components, keyed by the wasm's sha256 and the engine's
//! compatibility hash. Only files this host wrote are deserialised: the folder is created with
//! mode 0700, files with 0600, and a file is used only if it belongs to the folder's owner and is
//! not writable by group or others.

use super::PluginError;
use sha2::{Digest, Sha256};
use std::hash::{Hash, Hasher};
use std::io::Write;
use std::path::{Path, PathBuf};
use wasmtime::Engine;
use wasmtime::component::Component;

/// Creates the cache folder (mode 0700) if needed.
pub(crate) fn prepare_dir(dir: &Path) -> Result<(), PluginError> {
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
    Ok(())
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

fn trusted(dir: &Path, file: &Path) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        let (Ok(d), Ok(f)) = (std::fs::metadata(dir), std::fs::symlink_metadata(file)) else {
            return false;
        };
        f.is_file() && f.uid() == d.uid() && f.mode() & 0o022 == 0 && d.mode() & 0o022 == 0
    }
    #[cfg(not(unix))]
    {
        let _ = (dir, file);
        true
    }
}

/// Compiles `bytes` (whose sha256 is `sha`), going through the cache in `dir` when given.
pub(crate) fn component(
    engine: &Engine,
    dir: Option<&Path>,
    bytes: &[u8],
    sha: &str,
    wasm_path: &Path,
) -> Result<Component, PluginError> {
    let compile_err = |e: wasmtime::Error| PluginError::Compile {
        path: wasm_path.to_path_buf(),
        message: format!("{e:#}"),
    };
    let Some(dir) = dir else {
        return Component::new(engine, bytes).map_err(compile_err);
    };
    let file: PathBuf = dir.join(format!("{sha}-{}.cwasm", engine_key(engine)));
    if file.exists() && trusted(dir, &file) {
        // SAFETY: the file is in the host-owned cache folder, named by content and engine hash,
        // owned by the folder's owner and not writable by others: this host wrote it.
        match unsafe { Component::deserialize_file(engine, &file) } {
            Ok(c) => return Ok(c),
            Err(e) => {
                tracing::warn!(file = %file.display(), error = %e, "plugin cache: recompiling unusable entry")
            }
        }
    }
    let compiled = engine.precompile_component(bytes).map_err(compile_err)?;
    if let Err(e) = write_atomic(dir, &file, &compiled) {
        tracing::warn!(file = %file.display(), error = %e, "plugin cache: cannot write entry");
    }
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
    f.write_all(bytes)?;
    f.sync_all()?;
    drop(f);
    std::fs::rename(&tmp, file)
}
