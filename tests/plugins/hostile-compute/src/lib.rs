//! Hostile mapping functions: `spin` (infinite loop), `grow` (memory growth without end),
//! `recurse` (unbounded recursion), `big` (an output of N bytes), `panic`, `exit` (calls
//! `std::process::exit(N)`, WASI's `exit`); and honest ones:
//! `echo` (returns its first argument, fully parsed and re-serialised), `work` (compute-bound loop
//! of N rounds) and `contact_key` (reads three members of a record argument lazily; the same
//! function as in `plugins/mapping-basics`, here in a small plugin for the benchmark).

use serde_json::Value;
use std::hint::black_box;
use switchyard_sdk::{Args, MappingFunctions, PluginError};

struct Hostile;

/// Recursion that uses the wasm stack (no address-taken locals, so no shadow-stack frames) and
/// cannot be turned into a loop (the result is combined non-associatively after the call).
#[inline(never)]
fn recurse(n: u64, a: u64, b: u64, c: u64) -> u64 {
    if n == u64::MAX {
        return a;
    }
    recurse(n + 1, b ^ n, c.wrapping_add(a), a.rotate_left(3)).rotate_left(1) ^ c
}

impl MappingFunctions for Hostile {
    fn functions() -> Vec<String> {
        [
            "spin",
            "grow",
            "recurse",
            "big",
            "panic",
            "exit",
            "echo",
            "work",
            "contact_key",
        ]
        .map(String::from)
        .to_vec()
    }

    fn call_args(name: &str, args: &Args) -> Result<Value, PluginError> {
        if name == "contact_key" {
            let [email, first, last] = args.fields(0, ["email", "first_name", "last_name"])?;
            return Ok(contact_key(email, first, last));
        }
        Self::call(name, args.values()?)
    }

    fn call(name: &str, args: Vec<Value>) -> Result<Value, PluginError> {
        let n = args.first().and_then(Value::as_u64).unwrap_or(0);
        match name {
            "spin" => {
                let mut x = 0u64;
                loop {
                    x = black_box(x.wrapping_add(1));
                }
            }
            "grow" => {
                let mut chunks: Vec<Vec<u8>> = Vec::new();
                loop {
                    chunks.push(black_box(vec![1u8; 1 << 20]));
                }
            }
            "recurse" => Ok(Value::from(recurse(n, n, n + 1, n + 2))),
            "big" => Ok(Value::String("x".repeat(n as usize))),
            "panic" => panic!("hostile plugin panics on purpose"),
            "exit" => std::process::exit(n as i32),
            "echo" => Ok(args.into_iter().next().unwrap_or(Value::Null)),
            "work" => {
                let mut h = 0xcbf2_9ce4_8422_2325u64;
                for i in 0..n {
                    h = (h ^ black_box(i)).wrapping_mul(0x0100_0000_01b3);
                }
                Ok(Value::from(h))
            }
            other => Err(PluginError::InvalidInput(format!(
                "unknown function `{other}`"
            ))),
        }
    }
}

switchyard_sdk::export_mapping_functions!(Hostile);

/// E-mail trimmed and lower-cased, else `first.last` lower-cased, else null.
fn contact_key(email: Option<Value>, first: Option<Value>, last: Option<Value>) -> Value {
    let clean = |v: &Option<Value>| {
        v.as_ref()
            .and_then(Value::as_str)
            .map(|s| s.trim().to_lowercase())
            .filter(|s| !s.is_empty())
    };
    if let Some(e) = clean(&email) {
        return Value::String(e);
    }
    match (clean(&first), clean(&last)) {
        (Some(f), Some(l)) => Value::String(format!("{f}.{l}")),
        (Some(one), None) | (None, Some(one)) => Value::String(one),
        (None, None) => Value::Null,
    }
}
