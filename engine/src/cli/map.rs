//! `switchyard map`: run NDJSON records through a mapping spec, one output line per mapped
//! record (in input order) and one reject line per rejected record.

use super::{EXIT_INVALID, EXIT_OK, EXIT_REJECTED, EXIT_USAGE};
use crate::diag::{Diagnostics, Format, render};
use crate::mapping::{CompileEnv, CompiledMapping, MapContext, Scratch};
use crate::spec::{self, Spec};
use chrono::{DateTime, Utc};
use std::io::{BufRead, BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

/// Map NDJSON records with a mapping spec.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The mapping spec (JSON or TOML).
    #[arg(long, value_name = "FILE")]
    pub mapping: PathBuf,
    /// NDJSON input, one record per line (`-` for stdin).
    #[arg(long, value_name = "FILE|-", default_value = "-")]
    pub input: String,
    /// Output: one `{"objects": …, "triggers": […]}` line per mapped record (`-` for stdout).
    #[arg(long, value_name = "FILE|-", default_value = "-")]
    pub output: String,
    /// Where rejected records go, one JSON line each with the input line number, the target
    /// field, the JSON pointer into the spec and the reason. Default: stderr.
    #[arg(long, value_name = "FILE")]
    pub rejects: Option<PathBuf>,
    /// The clock of `today()` and `now()` (RFC 3339). Default: the current time.
    #[arg(long, value_name = "RFC3339")]
    pub now: Option<String>,
    /// Folder (or file) of connector specs holding the mapping's connector and source.
    #[arg(long, value_name = "DIR", default_value = "connector-specs")]
    pub connectors: PathBuf,
    /// The operator's plugin grants (TOML). Default: `$SWITCHYARD_PLUGIN_GRANTS`, else none.
    #[arg(long, value_name = "FILE")]
    pub plugin_grants: Option<PathBuf>,
}

/// Load and compile a mapping spec with the connectors found under `connectors`. `Err` holds
/// the rendered diagnostics.
pub fn load_mapping(
    mapping: &Path,
    connectors: &Path,
    plugins: Option<&crate::plugin::PluginEnv>,
) -> Result<(CompiledMapping, Diagnostics), String> {
    let (loaded, mut diags) = spec::load_file(mapping)
        .map_err(|e| format!("error: cannot read {}: {e}", mapping.display()))?;
    let fail = |d: &Diagnostics| render(d, Format::Human, None);
    let Some(loaded) = loaded else {
        return Err(fail(&diags));
    };
    let Some(Spec::Mapping(m)) = &loaded.spec else {
        if diags.has_errors() {
            return Err(fail(&diags));
        }
        return Err(format!(
            "error: {} is not a mapping spec",
            mapping.display()
        ));
    };
    let files = spec::collect_files(&[connectors.to_path_buf()])
        .map_err(|e| format!("error: cannot read {}: {e}", connectors.display()))?;
    let mut specs = Vec::new();
    for f in files {
        if let Ok((Some(l), _)) = spec::load_file(&f) {
            specs.push(l);
        }
    }
    let by_name = spec::validate::connectors_by_name(&specs);
    let Some(target) = by_name.get(m.connector.as_str()) else {
        return Err(format!(
            "error: connector `{}` not found under {}",
            m.connector,
            connectors.display()
        ));
    };
    let source = match &m.source {
        Some(s) => match by_name.get(s.as_str()) {
            Some(c) => Some(*c),
            None => {
                return Err(format!(
                    "error: source `{s}` not found under {}",
                    connectors.display()
                ));
            }
        },
        None => None,
    };
    let set = match plugins {
        Some(p) => Some(
            p.load_set(mapping, &m.plugins, &m.tenant)
                .map_err(|e| format!("error: {e}"))?,
        ),
        None => None,
    };
    let env = CompileEnv {
        target,
        source,
        plugins: set.as_ref(),
    };
    let (plan, d) = crate::mapping::compile(m, &env);
    for x in d.0 {
        diags.push(loaded.source.place(x));
    }
    diags.sort();
    match plan {
        Some(p) if !diags.has_errors() => Ok((p, diags)),
        _ => Err(fail(&diags)),
    }
}

/// Run `switchyard map`.
pub fn run(a: Args) -> u8 {
    let now: DateTime<Utc> = match &a.now {
        Some(t) => match DateTime::parse_from_rfc3339(t) {
            Ok(t) => t.with_timezone(&Utc),
            Err(e) => {
                eprintln!("error: --now `{t}` is not an RFC 3339 timestamp: {e}");
                return EXIT_USAGE;
            }
        },
        None => Utc::now(),
    };
    let plugins = match crate::plugin::PluginEnv::discover(a.plugin_grants.as_deref()) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("error: {e}");
            return EXIT_USAGE;
        }
    };
    let plan = match load_mapping(&a.mapping, &a.connectors, Some(&plugins)) {
        Ok((p, _)) => p,
        Err(msg) => {
            eprint!("{msg}");
            if !msg.ends_with('\n') {
                eprintln!();
            }
            return EXIT_INVALID;
        }
    };
    let input: Box<dyn Read> = if a.input == "-" {
        Box::new(std::io::stdin().lock())
    } else {
        match std::fs::File::open(&a.input) {
            Ok(f) => Box::new(f),
            Err(e) => {
                eprintln!("error: cannot read {}: {e}", a.input);
                return EXIT_USAGE;
            }
        }
    };
    let output: Box<dyn Write> = if a.output == "-" {
        Box::new(std::io::stdout().lock())
    } else {
        match std::fs::File::create(&a.output) {
            Ok(f) => Box::new(f),
            Err(e) => {
                eprintln!("error: cannot write {}: {e}", a.output);
                return EXIT_USAGE;
            }
        }
    };
    let rejects: Box<dyn Write> = match &a.rejects {
        Some(p) => match std::fs::File::create(p) {
            Ok(f) => Box::new(f),
            Err(e) => {
                eprintln!("error: cannot write {}: {e}", p.display());
                return EXIT_USAGE;
            }
        },
        None => Box::new(std::io::stderr()),
    };
    let secrets = crate::secrets::default_provider();
    let session = plan.plugin_session();
    let ctx = MapContext {
        now,
        secrets: &secrets,
        ext: session.as_ref().map(|s| s as &dyn crate::expr::ExtCalls),
    };
    match map_stream(&plan, &ctx, input, output, rejects) {
        Ok(0) => EXIT_OK,
        Ok(_) => EXIT_REJECTED,
        Err(e) => {
            eprintln!("error: {e}");
            EXIT_USAGE
        }
    }
}

/// Map an NDJSON stream on one thread; returns the number of rejected records.
pub fn map_stream(
    plan: &CompiledMapping,
    ctx: &MapContext,
    input: impl Read,
    output: impl Write,
    rejects: impl Write,
) -> std::io::Result<usize> {
    let mut input = BufReader::with_capacity(1 << 16, input);
    let mut output = BufWriter::with_capacity(1 << 16, output);
    let mut rejects = BufWriter::new(rejects);
    let mut line = Vec::with_capacity(4096);
    let mut out = Vec::with_capacity(1 << 16);
    let mut scratch = Scratch::default();
    let mut n = 0usize;
    let mut rejected = 0usize;
    loop {
        line.clear();
        if input.read_until(b'\n', &mut line)? == 0 {
            break;
        }
        n += 1;
        let res = match std::str::from_utf8(&line) {
            Ok(text) => plan
                .apply_line(
                    text.trim_end_matches(['\n', '\r']),
                    ctx,
                    &mut scratch,
                    &mut out,
                )
                .map(|_| ()),
            Err(e) => Err(crate::mapping::RecordError {
                line: None,
                field: None,
                pointer: String::new(),
                reason: format!("line is not valid UTF-8: {e}"),
            }),
        };
        if let Err(mut e) = res {
            e.line = Some(n);
            rejected += 1;
            serde_json::to_writer(&mut rejects, &e)?;
            rejects.write_all(b"\n")?;
        }
        if out.len() >= 1 << 16 {
            output.write_all(&out)?;
            out.clear();
        }
    }
    output.write_all(&out)?;
    output.flush()?;
    rejects.flush()?;
    Ok(rejected)
}
