//! Mapping files end to end: load and compile a mapping spec against the connector specs in a
//! folder, and map an NDJSON stream with bounded memory (what `switchyard map` runs).

use super::{CompileEnv, CompiledMapping, MapContext, Scratch};
use crate::diag::{Diagnostics, Format, render};
use crate::spec::{self, Spec};
use std::io::{BufRead, BufReader, BufWriter, Read, Write};
use std::path::Path;

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

/// Longest input line (one record, without its newline) `map` reads; a longer one is rejected
/// with its line number and skipped without being held in memory, so one endless line cannot
/// exhaust memory. `run` applies the same bound.
pub const MAX_RECORD_BYTES: usize = 16 << 20;

/// Read the next line into `line` (cleared first): `None` at the end of input, `Some(false)`
/// when the line was longer than [`MAX_RECORD_BYTES`] (then it was skipped up to and including
/// its newline, and `line` holds only its start).
pub fn read_record(input: &mut impl BufRead, line: &mut Vec<u8>) -> std::io::Result<Option<bool>> {
    line.clear();
    let limit = MAX_RECORD_BYTES as u64 + 1;
    if input.by_ref().take(limit).read_until(b'\n', line)? == 0 {
        return Ok(None);
    }
    if line.last() == Some(&b'\n') || line.len() <= MAX_RECORD_BYTES {
        return Ok(Some(true));
    }
    loop {
        let buf = input.fill_buf()?;
        if buf.is_empty() {
            break;
        }
        match buf.iter().position(|&b| b == b'\n') {
            Some(i) => {
                input.consume(i + 1);
                break;
            }
            None => {
                let n = buf.len();
                input.consume(n);
            }
        }
    }
    Ok(Some(false))
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
    while let Some(fits) = read_record(&mut input, &mut line)? {
        n += 1;
        let res = match std::str::from_utf8(&line) {
            _ if !fits => Err(crate::mapping::RecordError {
                line: None,
                field: None,
                pointer: String::new(),
                reason: format!("the line is longer than {} MiB", MAX_RECORD_BYTES >> 20),
            }),
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
