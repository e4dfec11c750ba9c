//! `switchyard attribute`: run an attribution spec over NDJSON records (and records pulled
//! through connectors) and write CausalMarketingData records and per-model channel tables.
//!
//! Input: one JSON object per line, naming its system and object in the fields the spec's
//! `source_field`/`object_field` declare (default `source` and `object`), e.g.
//! `{"source": "hubspot", "object": "deal", "id": "1", "properties": {...}}`. Blank lines are
//! skipped; a line that is not a JSON object is an error naming the file and line. A record
//! without a text `source_field` refuses the run (exit 2) with one `E602` diagnostic at its
//! line, counting the others and suggesting the record's key that names its system (by value:
//! a source the rules select; else by spelling) as `source_field`.
//!
//! Pulled records (the spec's `[[attribution.pull]]`): with `--pull`, each rule's object is
//! listed through its connector from the vendor (settings and secrets from `--tenant-config`
//! files, as for `switchyard sync`); with `--sandbox`, the connector's emulator is started on
//! 127.0.0.1 instead, the `--input` records a rule covers are loaded into it
//! ([`switchyard_sandbox::Emulator::seed`]) and taken out of the input, and everything is read back
//! through the connector runtime over HTTP, as `switchyard run --sandbox` delivers to one. Pulled
//! records get the rule's `source` (and `record_object` when they carry no object) and are
//! attributed together with the remaining input records.
//!
//! Enrichment: when the spec names an enrichment plugin, it is loaded before any record is
//! read, with the operator's grants for its name and the spec's tenant (`--plugin-grants`, as
//! for `switchyard run`); a load failure is an `E601` diagnostic at
//! `/attribution/enrichment/plugin`. A failure for one record is a warning naming the record,
//! which is output without `kse_enhancement`.
//!
//! Output: `--output` gets one CausalMarketingData record per conversion (NDJSON; `-` for
//! stdout); `--report` gets the report JSON
//! `{"models": {"<model>": {"<channel>": {"conversions", "value"}}}, "unattributed": {...}}`,
//! with the Markov model also `"markov": {"order", "conversion_probability", "expected_value",
//! "removal_effects": {"<channel>": {"conversions", "value"}}}` (the chain's baseline and each
//! channel's removal effects on conversions and on value). On a terminal, stdout shows the channel tables as text; otherwise, when neither `--report`
//! nor `--output -` claims stdout, the report JSON goes there.

use serde_json::Value;
use std::io::{BufRead, BufReader, IsTerminal, Read, Write};
use std::path::{Path, PathBuf};
use switchyard::attribution::{AttributionError, ErrorKind, Outcome, Report};
use switchyard::diag::{self, Format};
use switchyard::engine::EngineError;
use switchyard::spec;
use switchyard::spec::attribution::PullRule;

/// Arguments of `switchyard attribute`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The attribution spec (TOML or JSON).
    #[arg(long, value_name = "FILE")]
    pub spec: PathBuf,
    /// NDJSON records, or `-` for stdin. Required unless `--pull` brings the records.
    #[arg(long, value_name = "FILE|-")]
    pub input: Option<PathBuf>,
    /// Where to write the CausalMarketingData records (NDJSON), or `-` for stdout.
    #[arg(long, value_name = "FILE|-")]
    pub output: Option<PathBuf>,
    /// Where to write the report JSON (channel tables per model and unattributed conversions).
    #[arg(long, value_name = "FILE")]
    pub report: Option<PathBuf>,
    /// Also pull the spec's `[[attribution.pull]]` objects through their connectors.
    #[arg(long, conflicts_with = "sandbox")]
    pub pull: bool,
    /// Start the emulators of the spec's `[[attribution.pull]]` connectors, load the input
    /// records each pull covers into them, and read those records back through the connectors.
    #[arg(long)]
    pub sandbox: bool,
    /// A tenant's mapping spec giving a connector's settings and secrets for `--pull`
    /// (repeatable, one per connector).
    #[arg(long, value_name = "FILE")]
    pub tenant_config: Vec<PathBuf>,
    /// Folder of connector specs.
    #[arg(long, value_name = "DIR", default_value = "connector-specs")]
    pub connectors: PathBuf,
    /// The operator's plugin grants (TOML), for the enrichment plugin and connector plugins.
    /// Default: `$SWITCHYARD_PLUGIN_GRANTS`, else none.
    #[arg(long, value_name = "FILE")]
    pub plugin_grants: Option<PathBuf>,
}

pub(super) fn run(a: Args) -> u8 {
    super::block_on(run_async(a))
}

async fn run_async(a: Args) -> u8 {
    let cwd = std::env::current_dir().ok();
    let engine = match super::common::engine(&a.connectors, None, a.plugin_grants.as_deref()) {
        Ok(e) => e,
        Err(e) => {
            eprintln!("error: {e}");
            return super::EXIT_USAGE;
        }
    };
    let attribution = match engine.attribution_file(&a.spec) {
        Ok(x) => x,
        Err(EngineError::Spec { diagnostics, .. }) => {
            eprint!(
                "{}",
                diag::render(&diagnostics, Format::Human, cwd.as_deref())
            );
            return super::EXIT_INVALID;
        }
        Err(EngineError::Load(spec::LoadError::Invalid { diagnostics, .. })) => {
            eprint!(
                "{}",
                diag::render(&diagnostics, Format::Human, cwd.as_deref())
            );
            return super::EXIT_INVALID;
        }
        Err(EngineError::Load(spec::LoadError::Io { source, .. })) => {
            eprintln!("error: {}: {source}", a.spec.display());
            return super::EXIT_USAGE;
        }
        Err(EngineError::Load(spec::LoadError::WrongKind { .. })) => {
            eprintln!(
                "error: {}: not an attribution spec (it has no [attribution] table)",
                a.spec.display()
            );
            return super::EXIT_INVALID;
        }
        Err(e) => {
            eprintln!("error: {}: {e}", a.spec.display());
            return super::EXIT_INVALID;
        }
    };
    let spec = attribution.spec();
    if (a.pull || a.sandbox) && spec.attribution.pull.is_empty() {
        eprintln!(
            "error: {}: --{} needs [[attribution.pull]] rules naming what to pull",
            a.spec.display(),
            if a.sandbox { "sandbox" } else { "pull" }
        );
        return super::EXIT_USAGE;
    }
    if a.input.is_none() && !a.pull {
        eprintln!("error: --input is required (unless --pull brings the records)");
        return super::EXIT_USAGE;
    }
    let (mut records, mut lines) = match &a.input {
        Some(input) => match read_ndjson(input) {
            Ok(r) => r,
            Err(e) => {
                eprintln!("error: {e}");
                return super::EXIT_USAGE;
            }
        },
        None => (Vec::new(), Vec::new()),
    };
    let mut pulled_count = 0;
    if a.pull || a.sandbox {
        match pull_records(&engine, &attribution, &a, &mut records, &mut lines).await {
            Ok(mut pulled) => {
                pulled_count = pulled.len();
                pulled.append(&mut records);
                records = pulled;
            }
            Err(e) => {
                eprintln!("error: {e}");
                return super::EXIT_REJECTED;
            }
        }
    }
    let (outcome, failures) = match attribution.run(&records).await {
        Ok(o) => o,
        Err(AttributionError::MissingSource {
            record,
            field,
            message,
            hint,
        }) if a.input.is_some() && record > pulled_count => {
            // Placed at the input line of the record (pulled records always carry a source).
            let input = a.input.as_deref().unwrap_or(Path::new("-"));
            let line = lines.get(record - 1 - pulled_count).copied().unwrap_or(1);
            let mut d = diag::Diagnostic::error(
                "E602",
                diag::pointer_join("", &field),
                format!("record {message}"),
            )
            .with_hint(hint);
            d.file = if input == Path::new("-") {
                PathBuf::from("<stdin>")
            } else {
                input.to_path_buf()
            };
            d.line = line;
            eprint!(
                "{}",
                diag::render(&diag::Diagnostics(vec![d]), Format::Human, cwd.as_deref())
            );
            return super::EXIT_USAGE;
        }
        Err(e) => {
            eprintln!("error: {}: {e}", a.spec.display());
            if let AttributionError::MissingSource { hint, .. } = &e {
                eprintln!("   = help: {hint}");
            }
            return match e.kind() {
                ErrorKind::InvalidSpec | ErrorKind::Model => super::EXIT_INVALID,
                _ => super::EXIT_USAGE,
            };
        }
    };
    // Warnings number records by position in what the plan ran over.
    let input_name = match &a.input {
        Some(p) if !(a.pull || a.sandbox) => p.display().to_string(),
        _ => "records (pulled ones first, then the input's)".to_string(),
    };
    for w in &outcome.warnings {
        eprintln!("warning: {input_name}: {w}");
    }
    for f in failures {
        eprintln!(
            "warning: {}: record {} kept without kse_enhancement: {}",
            a.spec.display(),
            f.record_id,
            f.cause
        );
    }
    match write_outputs(&a, &outcome) {
        Ok(()) => super::EXIT_OK,
        Err(e) => {
            eprintln!("error: {e}");
            super::EXIT_USAGE
        }
    }
}

/// Pull the spec's `[[attribution.pull]]` objects, connector by connector (see the module
/// docs). With `--sandbox`, the input records a rule covers are moved into its emulator first.
async fn pull_records(
    engine: &switchyard::engine::Engine,
    attribution: &switchyard::engine::Attribution,
    a: &Args,
    input: &mut Vec<Value>,
    lines: &mut Vec<usize>,
) -> Result<Vec<Value>, String> {
    let cfg = &attribution.spec().attribution;
    let mut connectors: Vec<&str> = Vec::new();
    for r in &cfg.pull {
        if !connectors.contains(&r.connector.as_str()) {
            connectors.push(&r.connector);
        }
    }
    let mut pulled = Vec::new();
    for name in connectors {
        let rules: Vec<&PullRule> = cfg.pull.iter().filter(|r| r.connector == name).collect();
        let (route, route_path) = tenant_route(a, name)?;
        let (route, emulator) =
            super::common::route_spec(engine, route, &route_path, a.sandbox).await?;
        let missing = route.missing_settings();
        if !missing.is_empty() {
            if let Some(emu) = emulator {
                emu.shutdown().await;
            }
            return Err(format!(
                "connector `{name}` needs {} (give them with --tenant-config, as for `switchyard sync`)",
                missing.join(", ")
            ));
        }
        let result = async {
            if let Some(emu) = &emulator {
                eprintln!("sandbox: {} emulator at {}", emu.vendor(), emu.base_url());
                for r in &rules {
                    let seed = take_covered(input, lines, r, &cfg.source_field, &cfg.object_field);
                    emu.seed(r.record_object(), &seed)
                        .map_err(|e| format!("{}: {e}", a.spec.display()))?;
                }
            }
            let mut out = Vec::new();
            for r in &rules {
                let got = attribution
                    .pull(&route, r)
                    .await
                    .map_err(|e| format!("pulling `{}` through `{name}`: {e}", r.object))?;
                eprintln!(
                    "pulled {} {} records through connector `{name}`",
                    got.len(),
                    r.object
                );
                out.extend(got);
            }
            Ok::<_, String>(out)
        }
        .await;
        if let Some(emu) = emulator {
            emu.shutdown().await;
        }
        pulled.extend(result?);
    }
    Ok(pulled)
}

/// The route (tenant settings) of a connector: the `--tenant-config` file for it, else none
/// (enough for `--sandbox`; `--pull` then reports the missing settings).
fn tenant_route(
    a: &Args,
    connector: &str,
) -> Result<(switchyard::spec::mapping::MappingSpec, PathBuf), String> {
    for p in &a.tenant_config {
        let (m, _) =
            spec::load_as::<switchyard::spec::MappingSpec>(p).map_err(|e| e.to_string())?;
        if m.connector == connector {
            return Ok((m, p.clone()));
        }
    }
    Ok((
        switchyard::engine::Engine::default_route(connector).map_err(|e| e.to_string())?,
        PathBuf::from(format!("(no tenant config for `{connector}`)")),
    ))
}

/// Take the input records a pull rule covers out of `input` (and their line numbers out of
/// `lines`), without the source and object fields (the vendor's own shape).
fn take_covered(
    input: &mut Vec<Value>,
    lines: &mut Vec<usize>,
    rule: &PullRule,
    source_field: &str,
    object_field: &str,
) -> Vec<Value> {
    let covers = |v: &Value| {
        v.get(source_field).and_then(Value::as_str) == Some(rule.source())
            && v.get(object_field).and_then(Value::as_str) == Some(rule.record_object())
    };
    let mut taken = Vec::new();
    let mut kept = Vec::new();
    let mut kept_lines = Vec::new();
    for (v, line) in std::mem::take(input).into_iter().zip(std::mem::take(lines)) {
        if covers(&v) {
            taken.push(v);
        } else {
            kept.push(v);
            kept_lines.push(line);
        }
    }
    *input = kept;
    *lines = kept_lines;
    for v in &mut taken {
        if let Value::Object(m) = v {
            m.remove(source_field);
            m.remove(object_field);
        }
    }
    taken
}

fn write_outputs(a: &Args, outcome: &Outcome) -> Result<(), String> {
    let report_json =
        serde_json::to_string_pretty(&outcome.report).map_err(|e| e.to_string())? + "\n";
    let stdout_is_output = a.output.as_deref() == Some(Path::new("-"));
    if let Some(path) = &a.output {
        let mut text = String::new();
        for r in &outcome.records {
            text.push_str(&serde_json::to_string(r).map_err(|e| e.to_string())?);
            text.push('\n');
        }
        write_to(path, &text)?;
    }
    if let Some(path) = &a.report {
        write_to(path, &report_json)?;
    }
    let stdout = std::io::stdout();
    if stdout.is_terminal() {
        let mut out = stdout.lock();
        let _ = out.write_all(table(&outcome.report, outcome.records.len()).as_bytes());
    } else if a.report.is_none() && !stdout_is_output {
        let mut out = stdout.lock();
        if let Err(e) = out.write_all(report_json.as_bytes()) {
            super::quit_if_closed(&e);
            return Err(format!("stdout: {e}"));
        }
    }
    Ok(())
}

fn write_to(path: &Path, text: &str) -> Result<(), String> {
    if path == Path::new("-") {
        std::io::stdout()
            .lock()
            .write_all(text.as_bytes())
            .map_err(|e| {
                super::quit_if_closed(&e);
                format!("stdout: {e}")
            })
    } else {
        std::fs::write(path, text).map_err(|e| format!("{}: {e}", path.display()))
    }
}

/// Read NDJSON objects from a file or `-` (stdin), with the 1-based line of each; errors name
/// the file and line.
fn read_ndjson(path: &Path) -> Result<(Vec<Value>, Vec<usize>), String> {
    let name = path.display().to_string();
    let reader: Box<dyn Read> = if path == Path::new("-") {
        Box::new(std::io::stdin())
    } else {
        Box::new(std::fs::File::open(path).map_err(|e| format!("{name}: {e}"))?)
    };
    let mut out = Vec::new();
    let mut lines = Vec::new();
    for (i, line) in BufReader::new(reader).lines().enumerate() {
        let line = line.map_err(|e| format!("{name}:{}: {e}", i + 1))?;
        if line.trim().is_empty() {
            continue;
        }
        let v: serde_json::Value = serde_json::from_str(&line)
            .map_err(|e| format!("{name}:{}: invalid JSON: {e}", i + 1))?;
        if !v.is_object() {
            return Err(format!("{name}:{}: a record must be a JSON object", i + 1));
        }
        out.push(v);
        lines.push(i + 1);
    }
    Ok((out, lines))
}

/// The channel tables as aligned text.
fn table(report: &Report, conversions: usize) -> String {
    let mut s = format!(
        "{conversions} conversions, {} unattributed (value {:.2})\n",
        report.unattributed.conversions, report.unattributed.value
    );
    let channels: std::collections::BTreeSet<&String> =
        report.models.values().flat_map(|t| t.keys()).collect();
    let width = channels.iter().map(|c| c.len()).max().unwrap_or(7).max(7);
    s.push_str(&format!("\n{:width$}", "channel"));
    for m in report.models.keys() {
        s.push_str(&format!("  {m:>22}"));
    }
    s.push('\n');
    for c in channels {
        s.push_str(&format!("{c:width$}"));
        for t in report.models.values() {
            let cell = t.get(c).copied().unwrap_or_default();
            s.push_str(&format!(
                "  {:>22}",
                format!("{:.2} / {:.2}", cell.conversions, cell.value)
            ));
        }
        s.push('\n');
    }
    s.push_str("\n(cells: credited conversions / value)\n");
    if let Some(m) = &report.markov {
        s.push_str(&format!(
            "\nmarkov chain (order {}): baseline P(conversion) {:.4}, expected value per journey {:.2}\n",
            m.order, m.conversion_probability, m.expected_value
        ));
        s.push_str(&format!("{:width$}  {:>22}\n", "channel", "removal effect"));
        for (c, re) in &m.removal_effects {
            s.push_str(&format!(
                "{c:width$}  {:>22}\n",
                format!("{:.4} / {:.4}", re.conversions, re.value)
            ));
        }
        s.push_str("(removal effects: on conversions / on value; value credit follows the value effects)\n");
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use switchyard::attribution::{ChannelCredit, MarkovReport, RemovalEffect};

    #[test]
    fn table_shows_the_markov_baseline_and_removal_effects() {
        let mut report = Report::default();
        report.models.insert(
            "markov".into(),
            [(
                "search".to_string(),
                ChannelCredit {
                    conversions: 1.5,
                    value: 105.0,
                },
            )]
            .into(),
        );
        report.markov = Some(MarkovReport {
            order: 2,
            conversion_probability: 0.75,
            expected_value: 37.5,
            removal_effects: [(
                "search".to_string(),
                RemovalEffect {
                    conversions: 5.0 / 9.0,
                    value: 7.0 / 9.0,
                },
            )]
            .into(),
        });
        let t = table(&report, 3);
        assert!(t.contains("1.50 / 105.00"), "{t}");
        assert!(
            t.contains(
                "markov chain (order 2): baseline P(conversion) 0.7500, expected value per journey 37.50"
            ),
            "{t}"
        );
        assert!(t.contains("search          0.5556 / 0.7778"), "{t}");
        report.markov = None;
        assert!(!table(&report, 3).contains("removal effect"));
    }
}
