//! Errors of the plugin host: loading (manifest, digest, compile, linking) and calling (limits,
//! traps, the plugin's own errors).

use std::path::PathBuf;

/// What went wrong, for callers that branch on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PluginErrorKind {
    /// The manifest is missing or invalid.
    Manifest,
    /// A file could not be read or written.
    Io,
    /// The wasm does not match the manifest's sha256, or is too large.
    Integrity,
    /// The wasm is not a valid component.
    Compile,
    /// Built against a WIT version this host does not support.
    UnsupportedWitVersion,
    /// The component does not export what its world requires.
    WorldMismatch,
    /// The component imports something the host does not provide.
    ImportNotProvided,
    /// The component imports a capability the operator did not grant.
    CapabilityNotGranted,
    /// Guest CPU budget exhausted.
    CpuLimit,
    /// Linear memory limit exceeded.
    MemoryLimit,
    /// The wasm stack overflowed (deep recursion).
    StackOverflow,
    /// Wall-time limit exceeded (host calls included).
    WallTimeout,
    /// The output is larger than allowed.
    OutputTooLarge,
    /// Too much data crossed the host boundary in one transfer.
    DataLimit,
    /// The plugin trapped (panic, unreachable, ...).
    Trap,
    /// The plugin called WASI `exit` (e.g. `std::process::exit`) instead of returning.
    Exit,
    /// The plugin returned an error.
    Guest,
    /// The plugin returned something that is not what the contract says.
    InvalidOutput,
    /// The plugin does not provide the requested operation or function.
    NotProvided,
    /// Internal host failure.
    Host,
}

/// An error of the plugin host. Messages never contain secret values.
#[derive(Debug, thiserror::Error)]
pub enum PluginError {
    /// Invalid manifest.
    #[error("{path}: {message}")]
    Manifest {
        /// Manifest path.
        path: PathBuf,
        /// What is wrong (with the JSON pointer when known).
        message: String,
    },
    /// I/O failure.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// Digest mismatch or oversized file.
    #[error("{path}: {message}")]
    Integrity {
        /// The wasm file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// Not a valid component.
    #[error("{path}: not a valid webassembly component: {message}")]
    Compile {
        /// The wasm file.
        path: PathBuf,
        /// What is wrong, in the host's own words: never text or bytes from the file.
        message: String,
    },
    /// Unsupported WIT version.
    #[error(
        "plugin `{plugin}` was built against switchyard:plugin@{found}, but this host supports switchyard:plugin@{supported}"
    )]
    UnsupportedWitVersion {
        /// Plugin name.
        plugin: String,
        /// The version the plugin uses.
        found: String,
        /// The version the host implements.
        supported: String,
    },
    /// Missing exports.
    #[error("plugin `{plugin}` declares world `{world}` but does not export `{missing}`")]
    WorldMismatch {
        /// Plugin name.
        plugin: String,
        /// Declared world.
        world: String,
        /// The missing export.
        missing: String,
    },
    /// Unknown import.
    #[error(
        "plugin `{plugin}` imports `{import}`, which this host does not provide (a plugin may import the switchyard:plugin interfaces of its world and the wasi cli/io/clocks/random/filesystem interfaces of wasm32-wasip2; no sockets)"
    )]
    ImportNotProvided {
        /// Plugin name.
        plugin: String,
        /// The import name.
        import: String,
    },
    /// Capability not granted.
    #[error(
        "plugin `{plugin}` imports `{import}`, but capability `{capability}` is not granted: {reason}"
    )]
    CapabilityNotGranted {
        /// Plugin name.
        plugin: String,
        /// The import name.
        import: String,
        /// The capability (`http`, `secrets`, `config`, or an interface outside the world).
        capability: String,
        /// Why (requested vs granted).
        reason: String,
    },
    /// CPU budget exhausted.
    #[error("plugin `{plugin}` exceeded its cpu budget of {budget_ms} ms and was stopped")]
    CpuLimit {
        /// Plugin name.
        plugin: String,
        /// The budget.
        budget_ms: u64,
    },
    /// Memory limit exceeded.
    #[error(
        "plugin `{plugin}` tried to grow its memories and tables to {requested} bytes in total, over its limit of {limit} bytes"
    )]
    MemoryLimit {
        /// Plugin name.
        plugin: String,
        /// The limit.
        limit: u64,
        /// The total size of the store's memories and tables the growth asked for.
        requested: u64,
    },
    /// Stack overflow.
    #[error("plugin `{plugin}` overflowed its stack (too deep recursion)")]
    StackOverflow {
        /// Plugin name.
        plugin: String,
    },
    /// Wall-time limit exceeded.
    #[error("plugin `{plugin}` did not finish within its wall-time limit of {limit_ms} ms")]
    WallTimeout {
        /// Plugin name.
        plugin: String,
        /// The limit.
        limit_ms: u64,
    },
    /// Output too large.
    #[error("plugin `{plugin}` returned {size} bytes, over its output limit of {limit} bytes")]
    OutputTooLarge {
        /// Plugin name.
        plugin: String,
        /// Output size.
        size: u64,
        /// The limit.
        limit: u64,
    },
    /// Too much data crossed the host boundary.
    #[error(
        "plugin `{plugin}` tried to pass more than {limit} bytes across the host boundary in one transfer"
    )]
    DataLimit {
        /// Plugin name.
        plugin: String,
        /// The per-transfer limit.
        limit: u64,
    },
    /// A trap.
    #[error("plugin `{plugin}` trapped: {message}")]
    Trap {
        /// Plugin name.
        plugin: String,
        /// Trap description.
        message: String,
    },
    /// The plugin called WASI `exit`.
    #[error("plugin `{plugin}` called exit({code}) instead of returning a result")]
    Exit {
        /// Plugin name.
        plugin: String,
        /// The exit status as WASI 0.2 carries it (0 for success, 1 for any failure code).
        code: i32,
    },
    /// The plugin returned an error.
    #[error("plugin `{plugin}` failed: {kind}: {message}")]
    Guest {
        /// Plugin name.
        plugin: String,
        /// `invalid-input`, `denied`, `upstream` or `internal`.
        kind: &'static str,
        /// The plugin's message.
        message: String,
    },
    /// Output not as specified.
    #[error("plugin `{plugin}` returned invalid output: {message}")]
    InvalidOutput {
        /// Plugin name.
        plugin: String,
        /// What is wrong.
        message: String,
    },
    /// Operation not provided.
    #[error("plugin `{plugin}` does not provide {what}")]
    NotProvided {
        /// Plugin name.
        plugin: String,
        /// What was asked for.
        what: String,
    },
    /// Internal failure.
    #[error("plugin host: {0}")]
    Host(String),
}

impl PluginError {
    /// The kind, for callers that branch on it.
    pub fn kind(&self) -> PluginErrorKind {
        use PluginErrorKind as K;
        match self {
            PluginError::Manifest { .. } => K::Manifest,
            PluginError::Io { .. } => K::Io,
            PluginError::Integrity { .. } => K::Integrity,
            PluginError::Compile { .. } => K::Compile,
            PluginError::UnsupportedWitVersion { .. } => K::UnsupportedWitVersion,
            PluginError::WorldMismatch { .. } => K::WorldMismatch,
            PluginError::ImportNotProvided { .. } => K::ImportNotProvided,
            PluginError::CapabilityNotGranted { .. } => K::CapabilityNotGranted,
            PluginError::CpuLimit { .. } => K::CpuLimit,
            PluginError::MemoryLimit { .. } => K::MemoryLimit,
            PluginError::StackOverflow { .. } => K::StackOverflow,
            PluginError::WallTimeout { .. } => K::WallTimeout,
            PluginError::OutputTooLarge { .. } => K::OutputTooLarge,
            PluginError::DataLimit { .. } => K::DataLimit,
            PluginError::Trap { .. } => K::Trap,
            PluginError::Exit { .. } => K::Exit,
            PluginError::Guest { .. } => K::Guest,
            PluginError::InvalidOutput { .. } => K::InvalidOutput,
            PluginError::NotProvided { .. } => K::NotProvided,
            PluginError::Host(_) => K::Host,
        }
    }

    /// Whether the failure is a load-time refusal (the plugin never ran).
    pub fn is_load_error(&self) -> bool {
        use PluginErrorKind as K;
        matches!(
            self.kind(),
            K::Manifest
                | K::Io
                | K::Integrity
                | K::Compile
                | K::UnsupportedWitVersion
                | K::WorldMismatch
                | K::ImportNotProvided
                | K::CapabilityNotGranted
        )
    }
}
