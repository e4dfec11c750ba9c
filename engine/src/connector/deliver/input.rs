//! NDJSON input for delivery: each line read with a bounded buffer and judged exactly as
//! `switchyard map` judges it (the mapping's own line path: UTF-8, JSON, the plan), so a line
//! `map` rejects is the line `run` dead-letters, and no line is lost or read whole into memory.

use super::{DeliveryItem, Input, RejectedInput};
use crate::mapping::{CompiledMapping, LineOutcome, MapContext, Scratch};
use crate::mapping::{MAX_RECORD_BYTES, read_record};
use crate::record::{FiredTrigger, Mapped};
use serde_json::Value;
use std::io::{BufReader, Read};

/// How much of an over-long line is kept in its dead letter.
const KEPT_OF_LONG_LINE: usize = 4096;

/// The idempotency key of an input record: its `idempotency_key`, `call_id` or `id`, else a
/// hash of the line.
pub fn record_key(line: &[u8]) -> String {
    #[derive(serde::Deserialize)]
    struct Keys {
        idempotency_key: Option<Value>,
        call_id: Option<Value>,
        id: Option<Value>,
    }
    if let Ok(k) = serde_json::from_slice::<Keys>(line) {
        for v in [k.idempotency_key, k.call_id, k.id].into_iter().flatten() {
            let s = crate::connector::scalar(&v);
            if !s.is_empty() && !v.is_object() && !v.is_array() {
                return s;
            }
        }
    }
    content_key(line)
}

/// The idempotency key of a record that carries none: a hash of its text.
pub fn content_key(text: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(&sha2::Sha256::digest(text)[..16])
}

/// A mapped record from JSON `{"objects": {...}, "triggers": [...]}`: what dead letters keep
/// (triggers as `{"name", "actions"}`) and what `switchyard map` prints (trigger names, whose
/// actions come from `plan`, the route's mapping).
pub fn mapped_from_json(v: &Value, plan: Option<&CompiledMapping>) -> Option<Mapped> {
    let objects = v.get("objects")?.as_object()?;
    let mut m = Mapped::default();
    for (k, o) in objects {
        m.objects.insert(k.clone(), o.as_object()?.clone());
    }
    if let Some(Value::Array(ts)) = v.get("triggers") {
        for t in ts {
            let fired = match t {
                Value::String(name) => FiredTrigger {
                    name: name.clone(),
                    actions: plan?
                        .triggers
                        .iter()
                        .find(|p| &p.name == name)?
                        .actions
                        .clone(),
                },
                _ => FiredTrigger {
                    name: t.get("name")?.as_str()?.to_string(),
                    actions: t
                        .get("actions")?
                        .as_array()?
                        .iter()
                        .filter_map(|a| a.as_str().map(str::to_string))
                        .collect(),
                },
            };
            m.triggers.push(fired);
        }
    }
    Some(m)
}

/// Judge one input line: a mapped record, a rejected line, or nothing (blank). With
/// `premapped`, the line is already `{"objects", "triggers"}` (what `switchyard map` prints)
/// and `plan` only names the triggers' actions.
pub fn judge_line(
    line: &[u8],
    n: usize,
    plan: Option<&CompiledMapping>,
    premapped: bool,
    ctx: &MapContext<'_>,
    scratch: &mut Scratch,
    out: &mut Vec<u8>,
) -> Option<Input> {
    let reject = |stage, reason| rejected(line, n, stage, reason);
    let text = match std::str::from_utf8(line) {
        Ok(t) => t.trim_end_matches(['\n', '\r']),
        Err(e) => return reject("(input)", format!("line is not valid UTF-8: {e}")),
    };
    if text.trim().is_empty() {
        return None;
    }
    let plan = match plan {
        Some(p) if !premapped => p,
        _ => {
            // Already mapped: `{"objects": …, "triggers": […]}` per line.
            return premapped_line(text, n, plan, line);
        }
    };
    out.clear();
    match plan.apply_line(text, ctx, scratch, out) {
        Ok(LineOutcome::Blank) => None,
        Ok(LineOutcome::Mapped) => match serde_json::from_slice::<Value>(out)
            .ok()
            .as_ref()
            .and_then(|v| mapped_from_json(v, Some(plan)))
        {
            Some(mapped) => Some(Input::Record(DeliveryItem {
                key: record_key(text.as_bytes()),
                mapped,
            })),
            None => reject(
                "(mapping)",
                "the mapping's output could not be read back (an engine bug: please report it)"
                    .into(),
            ),
        },
        Err(e) => {
            let stage = if e.field.is_none() && e.pointer.is_empty() {
                "(input)"
            } else {
                "(mapping)"
            };
            reject(stage, e.to_string())
        }
    }
}

/// Line `n` rejected at `stage`, kept whole for its dead letter.
fn rejected(line: &[u8], n: usize, stage: &'static str, reason: String) -> Option<Input> {
    Some(Input::Rejected(RejectedInput {
        key: record_key(line),
        line: Some(n),
        stage,
        input: line.to_vec(),
        reason: format!("line {n}: {reason}"),
    }))
}

fn premapped_line(
    text: &str,
    n: usize,
    plan: Option<&CompiledMapping>,
    line: &[u8],
) -> Option<Input> {
    let reject = |reason| rejected(line, n, "(input)", reason);
    match crate::mapping::parse_record(text) {
        Ok(v) => match mapped_from_json(&v, plan) {
            Some(mapped) => Some(Input::Record(DeliveryItem {
                key: record_key(text.as_bytes()),
                mapped,
            })),
            None => reject(
                "not a mapped record ({\"objects\": {...}, \"triggers\": [...]}, triggers named by the route)".into(),
            ),
        },
        Err(e) => reject(e.to_string()),
    }
}

/// Read NDJSON from `input` line by line (at most [`MAX_RECORD_BYTES`] held per line), judge
/// each with [`judge_line`] and hand it to `send`; stops early when `send` returns false.
/// Returns the number of lines read. Blocking: run it on a blocking thread.
pub fn read_ndjson(
    input: impl Read,
    plan: Option<&CompiledMapping>,
    premapped: bool,
    ctx: &MapContext<'_>,
    mut send: impl FnMut(Input) -> bool,
) -> std::io::Result<usize> {
    let mut input = BufReader::with_capacity(1 << 16, input);
    let mut line = Vec::with_capacity(4096);
    let mut out = Vec::with_capacity(4096);
    let mut scratch = Scratch::default();
    let mut n = 0usize;
    while let Some(whole) = read_record(&mut input, &mut line)? {
        n += 1;
        let item = if !whole {
            Some(Input::Rejected(RejectedInput {
                key: content_key(&line),
                line: Some(n),
                stage: "(input)",
                input: line[..line.len().min(KEPT_OF_LONG_LINE)].to_vec(),
                reason: format!(
                    "line {n}: longer than {} MiB (only its first {KEPT_OF_LONG_LINE} bytes are kept)",
                    MAX_RECORD_BYTES >> 20
                ),
            }))
        } else {
            judge_line(&line, n, plan, premapped, ctx, &mut scratch, &mut out)
        };
        if let Some(item) = item
            && !send(item)
        {
            break;
        }
    }
    Ok(n)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn keys_come_from_the_record_or_its_text() {
        assert_eq!(record_key(br#"{"call_id": "C1", "x": 1e400}"#), "C1");
        assert_eq!(record_key(br#"{"id": 7}"#), "7");
        let k = record_key(b"not json");
        assert_eq!(k.len(), 32);
        assert_eq!(k, record_key(b"not json"));
    }
}
