//! `matches(text, regex)`: regular-expression test (Rust `regex` syntax).
//!
//! A constant pattern is compiled once, at load (`expr/parse.rs`), with `regex`'s own limits;
//! a bad one is a load error. A pattern that comes from the record (`matches(x, field)`) is
//! hostile data: it is compiled with a small size budget ([`DYNAMIC_SIZE_LIMIT`]) and kept in
//! a small per-thread cache ([`DYNAMIC_CACHE`] patterns), so a stream of records pays for each
//! distinct pattern once and never more than the budget; a pattern that does not compile or
//! exceeds the budget rejects that record with the reason. Matching itself is linear in the
//! text (the `regex` crate has no backtracking).

use super::{Example, FunctionDef, text_arg};
use crate::expr::Val;
use std::cell::RefCell;
use std::sync::Arc;

/// Most bytes a pattern from record data may compile to (its NFA), and most bytes of lazy DFA
/// cache it may use. `regex`'s defaults are 10 MiB and 2 MiB, which cost ~0.1 s per pattern.
pub const DYNAMIC_SIZE_LIMIT: usize = 256 * 1024;

/// How many compiled patterns from record data each thread keeps (least recently used go).
pub const DYNAMIC_CACHE: usize = 16;

/// Longest pattern from record data that is cached (longer ones are compiled per record, still
/// within [`DYNAMIC_SIZE_LIMIT`]), so the cache holds at most a few hundred KiB of keys.
const CACHED_PATTERN_BYTES: usize = 4096;

type Compiled = Result<Arc<regex::Regex>, String>;

thread_local! {
    static CACHE: RefCell<Vec<(String, Compiled)>> = const { RefCell::new(Vec::new()) };
}

/// Compile a pattern from record data within the budget, through the per-thread cache.
pub fn dynamic_regex(pattern: &str) -> Compiled {
    let hit = CACHE.with_borrow_mut(|c| {
        let i = c.iter().position(|(p, _)| p == pattern)?;
        let entry = c.remove(i);
        let r = entry.1.clone();
        c.insert(0, entry);
        Some(r)
    });
    if let Some(r) = hit {
        return r;
    }
    let compiled = regex::RegexBuilder::new(pattern)
        .size_limit(DYNAMIC_SIZE_LIMIT)
        .dfa_size_limit(DYNAMIC_SIZE_LIMIT)
        .build()
        .map(Arc::new)
        .map_err(|e| {
            let why = match &e {
                regex::Error::CompiledTooBig(_) => format!(
                    "it compiles to more than {} KiB (a pattern from record data gets a small budget; a constant pattern in the spec does not)",
                    DYNAMIC_SIZE_LIMIT / 1024
                ),
                other => other.to_string().lines().last().unwrap_or_default().trim().to_string(),
            };
            format!("invalid regex {}: {why}", Val::Str(pattern.into()).describe())
        });
    if pattern.len() <= CACHED_PATTERN_BYTES {
        CACHE.with_borrow_mut(|c| {
            c.insert(0, (pattern.to_string(), compiled.clone()));
            c.truncate(DYNAMIC_CACHE);
        });
    }
    compiled
}

/// `matches(text, regex)`.
pub static DEF: FunctionDef = FunctionDef {
    name: "matches",
    min_args: 2,
    max_args: 2,
    absent_propagates: true,
    summary: "Whether text matches a regular expression (unanchored; use `^…$` to anchor). A \
              constant pattern is compiled at load and reported there when invalid. A pattern \
              taken from the record is compiled once per distinct pattern (a small cache) \
              within a 256 KiB budget; one that is invalid or too big rejects the record.",
    examples: &[
        Example {
            expr: "matches('ada@example.com', '^[^@]+@[^@]+$')",
            result: "true",
        },
        Example {
            expr: "matches('555-0100', '^\\d{3}$')",
            result: "false",
        },
        Example {
            expr: "matches(missing, 'x')",
            result: "absent",
        },
    ],
    call: |args, _| {
        let t = text_arg(&args[0], "the text")?;
        let p = text_arg(&args[1], "the pattern")?;
        let re = dynamic_regex(&p)?;
        Ok(Val::Bool(re.is_match(&t)))
    },
};

#[cfg(test)]
mod tests {
    use super::*;
    use crate::expr::{EvalCtx, Expr, ExprEnv};
    use serde_json::json;

    fn eval(src: &str, record: serde_json::Value) -> Result<Option<serde_json::Value>, String> {
        let lookups = Default::default();
        let e = Expr::compile(src, &ExprEnv::new(&lookups)).map_err(|e| e.to_string())?;
        let ctx = EvalCtx {
            now: "2026-01-15T10:30:00Z".parse().expect("time"),
        };
        e.eval(&record, &ctx).map(|v| v.to_json()).map_err(|e| e.0)
    }

    #[test]
    fn a_pattern_from_the_record_is_compiled_once_per_thread_within_a_budget() {
        // A pattern from record data used to be compiled for every record with regex's
        // default limits: ~0.1 s per record for `\w{50}`.
        let rec = |p: &str| json!({"x": "ab".repeat(100), "p": p});
        assert_eq!(eval("matches(x, p)", rec("^(ab)+$")), Ok(Some(json!(true))));
        let started = std::time::Instant::now();
        for _ in 0..2_000 {
            assert_eq!(eval("matches(x, p)", rec("b{2}")), Ok(Some(json!(false))));
        }
        // Compiling per record would take seconds in a debug build.
        assert!(
            started.elapsed() < std::time::Duration::from_secs(3),
            "{:?}",
            started.elapsed()
        );
        for big in [r"\w{50}", r"[\p{L}\p{N}]{100}", "(a|b|c|d|e){5000}"] {
            let started = std::time::Instant::now();
            let e = eval("matches(x, p)", rec(big)).expect_err(big);
            assert!(e.contains("more than 256 KiB"), "{big}: {e}");
            // Refused by the budget, not after compiling 10 MiB.
            assert!(
                started.elapsed() < std::time::Duration::from_secs(1),
                "{big}: {:?}",
                started.elapsed()
            );
        }
        let e = eval("matches(x, p)", rec("(")).expect_err("invalid");
        assert!(e.starts_with("matches(): invalid regex \"(\""), "{e}");
        // A constant pattern keeps regex's own limits: compiled once, at load.
        assert_eq!(
            eval(r"matches(x, '\w{50}')", rec("")),
            Ok(Some(json!(false)))
        );
        assert!(eval("matches(x, '(')", rec("")).is_err());
    }

    #[test]
    fn the_cache_keeps_only_the_most_recent_patterns() {
        for i in 0..(DYNAMIC_CACHE * 4) {
            dynamic_regex(&format!("^x{i}$")).expect("compiles");
        }
        dynamic_regex("^x0$").expect("compiles");
        CACHE.with_borrow(|c| {
            assert_eq!(c.len(), DYNAMIC_CACHE);
            assert_eq!(c[0].0, "^x0$");
        });
        dynamic_regex(&"a".repeat(CACHED_PATTERN_BYTES + 1)).expect("compiles");
        CACHE.with_borrow(|c| assert!(c.iter().all(|(p, _)| p.len() <= CACHED_PATTERN_BYTES)));
    }
}
