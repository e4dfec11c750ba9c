//! Template text → compile (the engine's limits) → render with the mapping registry's
//! helpers against a record; and the simple-template splitter. Nothing may panic, overflow
//! or hang.
#![no_main]

use libfuzzer_sys::fuzz_target;
use serde_json::{Value, json};
use std::sync::LazyLock;
use switchyard::template;

static CONTEXT: LazyLock<Value> = LazyLock::new(|| {
    json!({
        "customer_name": "Ada", "score": 81, "d": "2026-01-05", "tags": ["x", "y"],
        "nested": {"a": {"b": [1, 2, {"c": "deep"}]}}, "empty": "", "nothing": null
    })
});

fuzz_target!(|data: &[u8]| {
    let Ok(src) = std::str::from_utf8(data) else {
        return;
    };
    let mut names = Vec::new();
    let _ = template::simple_parts(src, &mut |p| {
        names.push(p.len());
        names.len() - 1
    });
    if let Ok(t) = template::compile(src) {
        let mut h = template::new_registry();
        h.register_template("t", t);
        let _ = h.render("t", &*CONTEXT);
    }
});
