//! `switchyard plugin new|inspect|pin|test`: scaffold a plugin crate, show what a component
//! imports and exports (and check its manifest), pin a manifest to its wasm's sha256, run a
//! plugin once. Whatever a plugin produced is printed with control characters escaped: plugin
//! output never drives the terminal.

use serde_json::Value;
use std::path::{Path, PathBuf};
use switchyard::plugin::{
    Grants, HostConfig, PluginHost, Secret, WIT_VERSION, inspect_component, read_regular_file,
};
use switchyard::spec::plugin::PluginWorld;

/// Arguments of `switchyard plugin`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// What to do.
    #[command(subcommand)]
    pub command: PluginCommand,
}

/// Plugin subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum PluginCommand {
    /// Create a plugin crate (Cargo.toml, src/lib.rs, plugin.toml) from a template.
    New {
        /// Plugin name (lowercase letters, digits, `-`, `_`).
        name: String,
        /// WIT world: mapping-functions, request-codec, full-connector, webhook-verifier, enricher.
        #[arg(long, default_value = "mapping-functions")]
        world: String,
        /// Parent folder of the new crate. Default: the current folder.
        #[arg(long, default_value = ".")]
        dir: PathBuf,
        /// Path of the switchyard-sdk crate. Default: the sdk/ folder this binary was built from.
        #[arg(long)]
        sdk: Option<PathBuf>,
    },
    /// Show a plugin's world, WIT version, imports and exports, and check its manifest.
    Inspect {
        /// A plugin.toml manifest or a .wasm component.
        file: PathBuf,
    },
    /// Write the sha256 of each manifest's wasm into it (`sha256 = "…"` under [plugin]); the
    /// host loads only pinned plugins, and operators grant capabilities to that digest.
    Pin {
        /// plugin.toml manifests.
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Only print each wasm's sha256 and whether the manifest pins it (exit 1 if one does
        /// not); change nothing.
        #[arg(long)]
        check: bool,
    },
    /// Run a plugin once with a JSON input (prints the JSON result; logs go to stderr).
    Test {
        /// A plugin.toml manifest.
        file: PathBuf,
        /// JSON input (or @FILE). Mapping functions: {"function": "...", "args": [...]}.
        #[arg(long)]
        input: String,
        /// Operation: call, functions, sign, decode, read, write, verify, enrich.
        /// Default: the main operation of the plugin's world.
        #[arg(long)]
        op: Option<String>,
        /// Grant an allowed host (repeatable). Default: the hosts the manifest requests.
        #[arg(long = "grant-host", value_name = "SCHEME://HOST[:PORT]")]
        grant_hosts: Vec<String>,
        /// Grant a secret (repeatable).
        #[arg(long = "secret", value_name = "NAME=VALUE")]
        secrets: Vec<String>,
        /// Set a config value, parsed as JSON or else taken as a string (repeatable).
        #[arg(long = "config", value_name = "KEY=VALUE")]
        config: Vec<String>,
        /// Let HTTP reach private and loopback addresses.
        #[arg(long)]
        allow_private_networks: bool,
    },
}

pub(super) fn run(a: Args) -> u8 {
    let result = match a.command {
        PluginCommand::New {
            name,
            world,
            dir,
            sdk,
        } => new(&name, &world, &dir, sdk),
        PluginCommand::Inspect { file } => inspect(&file),
        PluginCommand::Pin { files, check } => pin(&files, check),
        PluginCommand::Test {
            file,
            input,
            op,
            grant_hosts,
            secrets,
            config,
            allow_private_networks,
        } => test(
            &file,
            &input,
            op.as_deref(),
            grant_hosts,
            &secrets,
            &config,
            allow_private_networks,
        ),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {}", terminal_safe(&e));
            super::EXIT_USAGE
        }
    }
}

/// Whether `c` must not reach a terminal raw: control characters (C0 but newline, DEL, C1: ANSI
/// escape sequences, carriage returns, backspaces) and the invisible bidirectional-text controls
/// that reorder what is shown.
fn unsafe_for_terminal(c: char) -> bool {
    (c.is_control() && c != '\n')
        || matches!(c, '\u{061c}' | '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// `text` with every character [`unsafe_for_terminal`] escaped as `\u{..}`.
fn terminal_safe(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if unsafe_for_terminal(c) {
            out.extend(c.escape_unicode());
        } else {
            out.push(c);
        }
    }
    out
}

/// Pretty JSON for the terminal: JSON escapes C0 controls in strings but leaves DEL, C1 and
/// bidi controls raw; they are written as `\uXXXX` escapes too (still valid JSON: outside
/// strings pretty JSON has only spaces and newlines).
fn terminal_json(v: &Value) -> String {
    let text = serde_json::to_string_pretty(v).unwrap_or_default();
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if unsafe_for_terminal(c) {
            out.push_str(&format!("\\u{:04x}", c as u32));
        } else {
            out.push(c);
        }
    }
    out
}

fn default_sdk() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../sdk")
}

fn new(name: &str, world: &str, dir: &Path, sdk: Option<PathBuf>) -> Result<u8, String> {
    let w = PluginWorld::parse(world).ok_or_else(|| {
        format!(
            "unknown world `{world}`; one of: {}",
            PluginWorld::ALL.map(|w| w.as_str()).join(", ")
        )
    })?;
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
    {
        return Err(format!(
            "plugin name `{name}` must be lowercase letters, digits, `-` or `_`"
        ));
    }
    let root = dir.join(name);
    if root.exists() {
        return Err(format!("{} already exists", root.display()));
    }
    let sdk = sdk.unwrap_or_else(default_sdk);
    let sdk = std::fs::canonicalize(&sdk).unwrap_or(sdk);
    let lib = name.replace('-', "_");
    let cargo = format!(
        r#"[package]
name = "{name}"
version = "0.1.0"
edition = "2024"

[lib]
crate-type = ["cdylib"]

[dependencies]
switchyard-sdk = {{ path = "{sdk}", features = ["{world}"] }}
serde_json = "1"

[profile.release]
opt-level = "s"
lto = true
codegen-units = 1
panic = "abort"
strip = true

# A plugin is its own workspace.
[workspace]
"#,
        sdk = sdk.display().to_string().replace('\\', "/"),
        world = w.as_str(),
    );
    let capabilities = match w {
        PluginWorld::MappingFunctions => "",
        PluginWorld::RequestCodec | PluginWorld::WebhookVerifier => {
            "\n[plugin.capabilities]\nsecrets = [\"api_secret\"]\nconfig = []\n"
        }
        PluginWorld::FullConnector | PluginWorld::Enricher => {
            "\n[plugin.capabilities]\nallowed_hosts = [\"https://api.example.com\"]\nsecrets = [\"api_secret\"]\nconfig = [\"base_url\"]\n"
        }
    };
    let manifest = format!(
        "# Manifest of the `{name}` plugin (see the SDK README).\nspec_version = 1\n\n[plugin]\nname = \"{name}\"\nversion = \"0.1.0\"\nworld = \"{world}\"\nwit_version = \"{WIT_VERSION}\"\nwasm = \"target/wasm32-wasip2/release/{lib}.wasm\"\n# sha256 = pin of the wasm, written by `switchyard plugin pin plugin.toml` after each build\n{capabilities}\n[plugin.limits]\ncpu_ms = 200\nmemory_mib = 64\n",
        world = w.as_str()
    );
    let io = |p: &Path, e: std::io::Error| format!("{}: {e}", p.display());
    std::fs::create_dir_all(root.join("src")).map_err(|e| io(&root, e))?;
    for (file, text) in [
        ("Cargo.toml", cargo),
        ("plugin.toml", manifest),
        ("src/lib.rs", template(w, name)),
    ] {
        let p = root.join(file);
        std::fs::write(&p, text).map_err(|e| io(&p, e))?;
    }
    outln!(
        "created {} (world {})\nbuild:  cd {} && cargo build --release --target wasm32-wasip2\npin:    switchyard plugin pin {}/plugin.toml\ntry:    switchyard plugin test {}/plugin.toml --input '{}'",
        root.display(),
        w.as_str(),
        root.display(),
        root.display(),
        root.display(),
        match w {
            PluginWorld::MappingFunctions => r#"{"function": "shout", "args": ["hi"]}"#,
            PluginWorld::WebhookVerifier => r#"{"headers": {"x-token": "t"}, "body": "{}"}"#,
            _ => "{}",
        }
    );
    Ok(super::EXIT_OK)
}

fn template(world: PluginWorld, name: &str) -> String {
    let body = match world {
        PluginWorld::MappingFunctions => {
            r#"use serde_json::Value;
use switchyard_sdk::{MappingFunctions, PluginError};

struct Plugin;

impl MappingFunctions for Plugin {
    fn functions() -> Vec<String> {
        vec!["shout".into()]
    }

    fn call(name: &str, args: Vec<Value>) -> Result<Value, PluginError> {
        match name {
            "shout" => {
                let text = args.first().and_then(Value::as_str).unwrap_or_default();
                Ok(Value::String(text.to_uppercase()))
            }
            other => Err(PluginError::InvalidInput(format!("unknown function `{other}`"))),
        }
    }
}

switchyard_sdk::export_mapping_functions!(Plugin);
"#
        }
        PluginWorld::RequestCodec => {
            r#"use switchyard_sdk::exports::{decoder, signer};
use switchyard_sdk::{Header, HttpRequest, PluginError, host};

struct Plugin;

impl signer::Guest for Plugin {
    fn sign(mut request: HttpRequest) -> Result<HttpRequest, PluginError> {
        let key = host::secret("api_secret")?;
        request.headers.push(Header { name: "Authorization".into(), value: format!("Token {key}") });
        Ok(request)
    }
}

impl decoder::Guest for Plugin {
    fn decode(content_type: String, body: Vec<u8>) -> Result<String, PluginError> {
        let text = String::from_utf8(body).map_err(|_| PluginError::InvalidInput("not utf-8".into()))?;
        let lines: Vec<&str> = text.lines().collect();
        host::debug(&format!("decoding {} lines of {content_type}", lines.len()));
        Ok(serde_json::json!({ "lines": lines }).to_string())
    }
}

switchyard_sdk::export!(Plugin);
"#
        }
        PluginWorld::FullConnector => {
            r#"use switchyard_sdk::exports::connector::{Guest, Page};
use switchyard_sdk::{PluginError, host};

struct Plugin;

impl Guest for Plugin {
    fn read(stream: String, _params: String, cursor: Option<String>) -> Result<Page, PluginError> {
        let base = host::config_str("base_url").unwrap_or_default();
        let url = format!("{base}/{stream}?cursor={}", cursor.unwrap_or_default());
        let resp = host::get(&url)?;
        let records: Vec<serde_json::Value> = serde_json::from_slice(&resp.body)
            .map_err(|e| PluginError::Upstream(e.to_string()))?;
        Ok(Page { records: records.iter().map(|r| r.to_string()).collect(), next_cursor: None })
    }

    fn write(_stream: String, records: Vec<String>) -> Result<Vec<String>, PluginError> {
        Ok(records.iter().map(|_| "null".to_string()).collect())
    }
}

switchyard_sdk::export!(Plugin);
"#
        }
        PluginWorld::WebhookVerifier => {
            r#"use switchyard_sdk::exports::webhook::{Guest, Verdict};
use switchyard_sdk::{Header, PluginError, header, host};

struct Plugin;

impl Guest for Plugin {
    fn verify(headers: Vec<Header>, _body: Vec<u8>) -> Result<Verdict, PluginError> {
        let expected = host::secret("api_secret")?;
        let valid = header(&headers, "x-token") == Some(expected.as_str());
        Ok(Verdict { valid, reason: (!valid).then(|| "bad token".to_string()) })
    }
}

switchyard_sdk::export!(Plugin);
"#
        }
        PluginWorld::Enricher => {
            r#"use switchyard_sdk::exports::enrichment::Guest;
use switchyard_sdk::{PluginError, host};

struct Plugin;

impl Guest for Plugin {
    fn enrich(record: String) -> Result<String, PluginError> {
        let mut record: serde_json::Value =
            serde_json::from_str(&record).map_err(|e| PluginError::InvalidInput(e.to_string()))?;
        record["enriched_at_ms"] = host::now_unix_ms().into();
        Ok(record.to_string())
    }
}

switchyard_sdk::export!(Plugin);
"#
        }
    };
    format!(
        "//! The `{name}` Switchyard plugin (world `{}`).\n\n{body}",
        world.as_str()
    )
}

/// The manifest at `file` and the path of its wasm.
fn manifest_and_wasm(
    file: &Path,
) -> Result<(switchyard::spec::plugin::PluginInfo, PathBuf), String> {
    let m = switchyard::plugin::read_manifest(file, HostConfig::MAX_MANIFEST_BYTES)
        .map_err(|e| e.to_string())?;
    let dir = file.parent().unwrap_or(Path::new("."));
    let wasm = dir.join(m.wasm_path());
    Ok((m, wasm))
}

/// The bytes of a wasm file (regular file, within the host's size limit).
fn wasm_bytes(wasm: &Path) -> Result<Vec<u8>, String> {
    read_regular_file(wasm, HostConfig::MAX_WASM_BYTES)
        .map_err(|e| format!("{}: {e}", wasm.display()))
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(<sha2::Sha256 as sha2::Digest>::digest(bytes))
}

fn inspect(file: &Path) -> Result<u8, String> {
    let host = PluginHost::new(HostConfig::default()).map_err(|e| e.to_string())?;
    let is_wasm = file.extension().is_some_and(|e| e == "wasm");
    let (wasm, manifest) = if is_wasm {
        (file.to_path_buf(), None)
    } else {
        match manifest_and_wasm(file) {
            Ok((m, wasm)) => (wasm, Some(m)),
            Err(e) => {
                outln!("{}", terminal_safe(&e));
                return Ok(super::EXIT_INVALID);
            }
        }
    };
    let bytes = wasm_bytes(&wasm)?;
    let ins = inspect_component(&host, &wasm).map_err(|e| e.to_string())?;
    if let Some(m) = &manifest {
        outln!("plugin: {} {}", m.name, m.version);
        outln!("world: {} (declared)", m.world);
    }
    outln!(
        "wasm: {} ({} bytes, sha256 {})",
        wasm.display(),
        bytes.len(),
        sha256_hex(&bytes)
    );
    outln!(
        "worlds implemented: {}",
        if ins.worlds.is_empty() {
            "none".to_string()
        } else {
            ins.worlds
                .iter()
                .map(|w| w.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        }
    );
    outln!(
        "wit: switchyard:plugin@{} (this host: {WIT_VERSION})",
        if ins.wit_versions.is_empty() {
            "?".to_string()
        } else {
            ins.wit_versions.join(", ")
        }
    );
    for (title, items) in [("imports", &ins.imports), ("exports", &ins.exports)] {
        outln!("{title}:");
        for (name, funcs) in items {
            if funcs.is_empty() {
                outln!("  {name}");
            } else {
                outln!("  {name}: {}", funcs.join(", "));
            }
        }
    }
    let Some(m) = manifest else {
        return Ok(super::EXIT_OK);
    };
    // Check that the plugin loads when everything its manifest requests is granted.
    let grants = Grants {
        allowed_hosts: m.capabilities.allowed_hosts.clone(),
        secrets: m
            .capabilities
            .secrets
            .iter()
            .map(|s| (s.clone(), Secret::new("")))
            .collect(),
        config: m
            .capabilities
            .config
            .iter()
            .map(|k| (k.clone(), Value::Null))
            .collect(),
        allow_private_networks: false,
    };
    match host.load(file, grants) {
        Ok(h) => {
            let l = h.limits();
            outln!(
                "manifest check: ok (limits: memory {} MiB, cpu {} ms, wall {} ms)",
                l.memory_bytes >> 20,
                l.cpu.as_millis(),
                l.wall.as_millis()
            );
            Ok(super::EXIT_OK)
        }
        Err(e) => {
            outln!("manifest check: error: {}", terminal_safe(&e.to_string()));
            Ok(super::EXIT_INVALID)
        }
    }
}

/// `sha256 = "<hex>"` written into the `[plugin]` table of TOML manifest text: an existing
/// `sha256` line replaced, else a line added after `wasm = …` (or after the table header).
/// `None` when the text has no `[plugin]` table header to edit.
fn with_pin(text: &str, sha: &str) -> Option<String> {
    let line = format!("sha256 = \"{sha}\"");
    let lines: Vec<&str> = text.lines().collect();
    let header = |l: &str| l.trim_start().starts_with('[');
    let start = lines.iter().position(|l| {
        let t = l.trim();
        t == "[plugin]"
            || t.starts_with("[plugin]") && t["[plugin]".len()..].trim_start().starts_with('#')
    })?;
    let end = lines[start + 1..]
        .iter()
        .position(|l| header(l))
        .map_or(lines.len(), |i| start + 1 + i);
    let key_is = |l: &str, k: &str| {
        l.trim_start()
            .strip_prefix(k)
            .is_some_and(|r| r.trim_start().starts_with('='))
    };
    let mut out: Vec<String> = lines.iter().map(|l| l.to_string()).collect();
    if let Some(i) = (start + 1..end).find(|&i| key_is(lines[i], "sha256")) {
        out[i] = line;
    } else {
        let after = (start + 1..end)
            .find(|&i| key_is(lines[i], "wasm"))
            .unwrap_or(start);
        out.insert(after + 1, line);
    }
    let mut joined = out.join("\n");
    if text.ends_with('\n') {
        joined.push('\n');
    }
    Some(joined)
}

fn pin(files: &[PathBuf], check: bool) -> Result<u8, String> {
    let mut code = super::EXIT_OK;
    for file in files {
        let shown = file.display();
        // The manifest may not load yet (no pin is what this fixes), so only its syntax and
        // wasm path are needed here; the check after writing loads it for real.
        let text = read_regular_file(file, HostConfig::MAX_MANIFEST_BYTES)
            .map_err(|e| format!("{shown}: {e}"))
            .and_then(|b| String::from_utf8(b).map_err(|_| format!("{shown}: not UTF-8 text")))?;
        let format = switchyard::spec::SyntaxFormat::from_path(file)
            .ok_or_else(|| format!("{shown}: a manifest is a .toml or .json file"))?;
        let source = switchyard::spec::SourceFile::parse(file, text.clone(), format)
            .map_err(|d| format!("{shown}: {}", d.message))?;
        let plugin = source
            .value
            .get("plugin")
            .and_then(Value::as_object)
            .ok_or_else(|| format!("{shown}: no [plugin] table"))?;
        let name = plugin
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let rel = match plugin.get("wasm").and_then(Value::as_str) {
            Some(w) => w.to_string(),
            None => format!("{}.wasm", name.replace('-', "_")),
        };
        let wasm = file.parent().unwrap_or(Path::new(".")).join(rel);
        let sha = sha256_hex(&wasm_bytes(&wasm)?);
        let current = plugin.get("sha256").and_then(Value::as_str);
        let pinned = current.is_some_and(|c| c.eq_ignore_ascii_case(&sha));
        if check {
            outln!(
                "{sha}  {shown}: {}",
                match current {
                    _ if pinned => "pinned".to_string(),
                    Some(c) => format!("pins {}, not the wasm's sha256", terminal_safe(c)),
                    None => "not pinned".to_string(),
                }
            );
            if !pinned {
                code = super::EXIT_INVALID;
            }
            continue;
        }
        if pinned {
            outln!("{shown}: already pins sha256 {sha}");
            continue;
        }
        let manual = || {
            format!(
                "{shown}: cannot edit this manifest's [plugin] table; write `sha256 = \"{sha}\"` under [plugin] yourself"
            )
        };
        let updated = match format {
            switchyard::spec::SyntaxFormat::Toml => with_pin(&text, &sha).ok_or_else(manual)?,
            switchyard::spec::SyntaxFormat::Json => return Err(manual()),
        };
        // Written next to the manifest and renamed over it: a failed write never leaves a
        // truncated manifest.
        let tmp = file.with_extension("toml.pin-tmp");
        std::fs::write(&tmp, &updated).map_err(|e| format!("{}: {e}", tmp.display()))?;
        std::fs::rename(&tmp, file).map_err(|e| format!("{shown}: {e}"))?;
        let (m, _) = manifest_and_wasm(file)?;
        if m.sha256.as_deref() != Some(sha.as_str()) {
            std::fs::write(file, &text).map_err(|e| format!("{shown}: {e}"))?;
            return Err(manual());
        }
        outln!("{shown}: sha256 = \"{sha}\"");
    }
    Ok(code)
}

fn parse_pairs(items: &[String], what: &str) -> Result<Vec<(String, String)>, String> {
    items
        .iter()
        .map(|s| {
            s.split_once('=')
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .ok_or_else(|| format!("--{what} `{s}` must look like NAME=VALUE"))
        })
        .collect()
}

fn test(
    file: &Path,
    input: &str,
    op: Option<&str>,
    grant_hosts: Vec<String>,
    secrets: &[String],
    config: &[String],
    allow_private_networks: bool,
) -> Result<u8, String> {
    let text = match input.strip_prefix('@') {
        Some(path) => read_regular_file(Path::new(path), HostConfig::MAX_WASM_BYTES)
            .map_err(|e| format!("{path}: {e}"))
            .and_then(|b| String::from_utf8(b).map_err(|_| format!("{path}: not UTF-8 text")))?,
        None => input.to_string(),
    };
    let input: Value =
        serde_json::from_str(&text).map_err(|e| format!("--input is not valid json: {e}"))?;
    let host = PluginHost::new(HostConfig::default()).map_err(|e| e.to_string())?;
    let mut grants = Grants {
        allowed_hosts: grant_hosts,
        allow_private_networks,
        ..Grants::default()
    };
    for (k, v) in parse_pairs(secrets, "secret")? {
        grants.secrets.insert(k, Secret::new(v));
    }
    for (k, v) in parse_pairs(config, "config")? {
        let value = serde_json::from_str(&v).unwrap_or(Value::String(v));
        grants.config.insert(k, value);
    }
    if grants.allowed_hosts.is_empty()
        && let Ok((m, _)) = manifest_and_wasm(file)
    {
        grants.allowed_hosts = m.capabilities.allowed_hosts;
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    rt.block_on(async {
        let handle = host.load(file, grants).map_err(|e| e.to_string())?;
        let op = op.unwrap_or(match handle.world() {
            PluginWorld::MappingFunctions => "call",
            PluginWorld::RequestCodec => "decode",
            PluginWorld::FullConnector => "read",
            PluginWorld::WebhookVerifier => "verify",
            PluginWorld::Enricher => "enrich",
        });
        let out = handle
            .run_once(op, &input)
            .await
            .map_err(|e| e.to_string())?;
        for l in &out.logs {
            eprintln!("log {}: {}", l.level, terminal_safe(&l.message));
        }
        for d in &out.denials {
            eprintln!("denied: {}", terminal_safe(d));
        }
        match out.result {
            Ok(v) => {
                outln!("{}", terminal_json(&v));
                Ok(super::EXIT_OK)
            }
            Err(e) => {
                eprintln!("error: {}", terminal_safe(&e));
                Ok(super::EXIT_INVALID)
            }
        }
    })
}
