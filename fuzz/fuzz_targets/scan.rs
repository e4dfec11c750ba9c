//! NDJSON lines → a compiled mapping's `apply_line` (the selective scanner for a plan that
//! reads paths, the serde_json path for a plan with helper templates), checked against
//! `parse_record` + `apply`: the two must accept the same lines and give the same output.
#![no_main]

use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use std::sync::LazyLock;
use switchyard::mapping::{CompileEnv, CompiledMapping, MapContext, Scratch, parse_record};
use switchyard::secrets::MemoryProvider;
use switchyard::spec::{ConnectorSpec, MappingSpec};

fn connector(text: &str) -> ConnectorSpec {
    toml::from_str(text).expect("connector spec")
}

static PLANS: LazyLock<Vec<CompiledMapping>> = LazyLock::new(|| {
    let hubspot = connector(include_str!("../../connector-specs/hubspot.toml"));
    let callrail = connector(include_str!("../../connector-specs/callrail.toml"));
    [
        include_str!("../../mapping-specs/examples/hubspot-contact.json"),
        include_str!("../../mapping-specs/examples/hubspot-advanced.json"),
    ]
    .into_iter()
    .map(|text| {
        let m: MappingSpec = serde_json::from_str(text).expect("mapping spec");
        CompiledMapping::compile(
            &m,
            &CompileEnv {
                target: &hubspot,
                source: Some(&callrail),
                plugins: None,
            },
        )
        .expect("compiles")
    })
    .collect()
});

fuzz_target!(|data: &[u8]| {
    let Ok(line) = std::str::from_utf8(data) else {
        return;
    };
    if line.contains('\n') || line.trim().is_empty() {
        return;
    }
    let secrets = MemoryProvider::new();
    let ctx = MapContext {
        now: "2026-01-15T10:30:00Z".parse().expect("time"),
        secrets: &secrets,
        ext: None,
    };
    let parsed = parse_record(line);
    for plan in PLANS.iter() {
        let mut out = Vec::new();
        let by_line = plan.apply_line(line, &ctx, &mut Scratch::default(), &mut out);
        match (&parsed, &by_line) {
            (Err(_), Ok(_)) => panic!("apply_line accepted a line serde_json refuses: {line:?}"),
            (Ok(_), Err(e)) if e.field.is_none() => {
                panic!("apply_line refused a record serde_json accepts: {line:?}: {e}")
            }
            _ => {}
        }
        if let (Ok(v), Ok(_)) = (&parsed, &by_line) {
            let m = plan.apply(v, &ctx).expect("apply agrees with apply_line");
            let triggers: Vec<&str> = m.triggers.iter().map(|t| t.name.as_str()).collect();
            let mut want = serde_json::json!({"objects": m.objects, "triggers": triggers});
            // Per-record notes (configured fields that gave nothing) appear when there are any.
            if !m.notes.is_empty() {
                want["notes"] = serde_json::to_value(&m.notes).expect("notes serialise");
            }
            let got: Value = serde_json::from_slice(&out).expect("output is JSON");
            assert_eq!(got, want, "{line:?}");
        }
    }
});
