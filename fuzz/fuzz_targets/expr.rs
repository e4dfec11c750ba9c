//! Expression text → compile (with a lookup table and one declared plugin alias) → evaluate
//! against a record. Nothing may panic, overflow or hang; errors are values.
#![no_main]

use indexmap::IndexMap;
use libfuzzer_sys::fuzz_target;
use serde_json::{Value, json};
use std::sync::{Arc, LazyLock};
use switchyard::expr::{EvalCtx, Expr, ExprEnv, ExtFunctions, Lookups, excerpt};

static LOOKUPS: LazyLock<Lookups> = LazyLock::new(|| {
    let mut t = IndexMap::new();
    t.insert("kitchen".to_string(), json!(25000));
    t.insert("bath".to_string(), json!("x"));
    let mut l = IndexMap::new();
    l.insert("project_value_map".to_string(), Arc::new(t));
    l
});

static RECORD: LazyLock<Value> = LazyLock::new(|| {
    json!({
        "customer_name": "Ada King Lovelace", "phone": "(555) 010-4477",
        "email": " Ada@Example.COM ", "score": 87.456, "n": 9007199254740993i64,
        "big": 1.7e308, "neg": -3, "zero": 0, "date": "2026-02-28", "ts": "2026-01-15T10:30:00Z",
        "tags": ["a", "b"], "obj": {"k": [1, {"x": null}]}, "pat": "^(a|b)+$", "t": "",
        "ai_analysis": {"lead_score": 85, "project_type": "kitchen", "timeline": "immediate"}
    })
});

fuzz_target!(|data: &[u8]| {
    let Ok(src) = std::str::from_utf8(data) else {
        return;
    };
    let ext = ExtFunctions::open(&["p".to_string()]);
    let env = ExprEnv {
        lookups: &LOOKUPS,
        is_field: None,
        ext: Some(&ext),
    };
    match Expr::compile(src, &env) {
        Ok(e) => {
            let ctx = EvalCtx {
                now: "2026-01-15T10:30:00Z".parse().expect("time"),
            };
            if let Ok(v) = e.eval(&*RECORD, &ctx) {
                let _ = v.to_json();
                let _ = v.describe();
            }
            let _ = e.calls_ext();
        }
        Err(err) => {
            let _ = excerpt(src, err.offset);
            let _ = err.to_string();
        }
    }
});
