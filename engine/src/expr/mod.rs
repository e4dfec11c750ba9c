//! The expression dialect of mapping specs: conditions, computed fields and workflow rules.
//!
//! Expressions are compiled once, at load, into a small tree that is evaluated per record
//! without allocating in the common cases. The grammar is the seed's JavaScript-style syntax
//! (single- or double-quoted strings, `a ? b : c`, `table[key]` over the spec's lookups, `||`
//! returning its first truthy operand, `&&`, `== != === !== < <= > >=`, `+ - * / %`) together
//! with evalexpr's operator set (`^` power, `!`, `true`/`false`, function calls `f(a, b)`).
//!
//! Design choice: evalexpr's own tree cannot express JS truthiness (`x || 20000` yields a
//! number, not a bool), single-quoted strings, "absent" values or `table[key]`, and walking it
//! per record means its `HashMapContext` clones every variable. So the dialect has its own
//! parser (`expr/parse.rs`) producing a typed tree whose variables are resolved to slots at compile
//! time; evalexpr-only expressions (`a ^ 2`, `!b`, `"x" == y`) parse to the same tree.
//! Missing fields are [`Val::Absent`]: falsy, and any comparison with them is false.
//!
//! Functions of WebAssembly plugins a spec declares are called as `alias.function(args)`; they
//! are resolved at compile time through [`ExtFunctions`] and run through an [`ExtCalls`].

pub mod functions;
mod parse;

use chrono::{DateTime, Utc};
use indexmap::IndexMap;
use serde_json::Value;
use std::borrow::Cow;
use std::sync::Arc;

pub use parse::{BinOp, ChainOp, Node, UnOp};

/// A value during evaluation: borrowed from the record where possible.
#[derive(Debug, Clone, PartialEq, Default)]
pub enum Val<'a> {
    /// The field does not exist in the record.
    #[default]
    Absent,
    /// JSON null.
    Null,
    /// A boolean.
    Bool(bool),
    /// An integer (JSON integers stay integers).
    Int(i64),
    /// A floating point number.
    Float(f64),
    /// Text.
    Str(Cow<'a, str>),
    /// The raw JSON text of an object or array, as captured from an input line.
    Raw(&'a str),
    /// An object or array.
    Json(Cow<'a, Value>),
}

impl<'a> Val<'a> {
    /// A value borrowed from a JSON value.
    pub fn from_json(v: &'a Value) -> Val<'a> {
        match v {
            Value::Null => Val::Null,
            Value::Bool(b) => Val::Bool(*b),
            Value::Number(n) => num_val(n),
            Value::String(s) => Val::Str(Cow::Borrowed(s)),
            _ => Val::Json(Cow::Borrowed(v)),
        }
    }

    /// An owned value from a JSON value.
    pub fn from_json_owned(v: Value) -> Val<'static> {
        match v {
            Value::Null => Val::Null,
            Value::Bool(b) => Val::Bool(b),
            Value::Number(n) => num_val(&n),
            Value::String(s) => Val::Str(Cow::Owned(s)),
            other => Val::Json(Cow::Owned(other)),
        }
    }

    /// JS truthiness: absent, null, false, 0, NaN and "" are falsy.
    pub fn truthy(&self) -> bool {
        match self {
            Val::Absent | Val::Null => false,
            Val::Bool(b) => *b,
            Val::Int(i) => *i != 0,
            Val::Float(f) => *f != 0.0 && !f.is_nan(),
            Val::Str(s) => !s.is_empty(),
            Val::Raw(_) | Val::Json(_) => true,
        }
    }

    /// Whether the value is absent or null.
    pub fn is_nothing(&self) -> bool {
        matches!(self, Val::Absent | Val::Null)
    }

    /// The number this value is, or holds as text.
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Val::Int(i) => Some(*i as f64),
            Val::Float(f) => Some(*f),
            Val::Str(s) => parse_number(s).map(|v| match v {
                Val::Int(i) => i as f64,
                Val::Float(f) => f,
                _ => f64::NAN,
            }),
            _ => None,
        }
    }

    /// An integer, from an integer, an integral float or integer text.
    pub fn as_i64(&self) -> Option<i64> {
        match self {
            Val::Int(i) => Some(*i),
            Val::Float(f) if f.fract() == 0.0 && f.abs() < 9.0e15 => Some(*f as i64),
            Val::Str(s) => match parse_number(s)? {
                Val::Int(i) => Some(i),
                Val::Float(f) if f.fract() == 0.0 && f.abs() < 9.0e15 => Some(f as i64),
                _ => None,
            },
            _ => None,
        }
    }

    /// The text form of a scalar (numbers as JSON writes them); `None` for absent, null and
    /// compound values.
    pub fn text(&self) -> Option<Cow<'_, str>> {
        match self {
            Val::Str(s) => Some(Cow::Borrowed(s)),
            Val::Int(i) => Some(Cow::Owned(itoa::Buffer::new().format(*i).to_string())),
            Val::Float(f) => Some(Cow::Owned(float_text(*f))),
            Val::Bool(b) => Some(Cow::Borrowed(if *b { "true" } else { "false" })),
            _ => None,
        }
    }

    /// The value as JSON; `None` when absent.
    pub fn to_json(&self) -> Option<Value> {
        Some(match self {
            Val::Absent => return None,
            Val::Null => Value::Null,
            Val::Bool(b) => Value::Bool(*b),
            Val::Int(i) => Value::from(*i),
            Val::Float(f) => serde_json::Number::from_f64(*f).map_or(Value::Null, Value::Number),
            Val::Str(s) => Value::String(s.to_string()),
            Val::Raw(r) => serde_json::from_str(r).unwrap_or(Value::Null),
            Val::Json(v) => v.clone().into_owned(),
        })
    }

    /// Detach from any borrow.
    pub fn into_owned(self) -> Val<'static> {
        match self {
            Val::Absent => Val::Absent,
            Val::Null => Val::Null,
            Val::Bool(b) => Val::Bool(b),
            Val::Int(i) => Val::Int(i),
            Val::Float(f) => Val::Float(f),
            Val::Str(s) => Val::Str(Cow::Owned(s.into_owned())),
            Val::Raw(r) => Val::from_json_owned(serde_json::from_str(r).unwrap_or(Value::Null)),
            Val::Json(v) => Val::Json(Cow::Owned(v.into_owned())),
        }
    }

    /// Name of the value's kind, for error messages.
    pub fn kind_name(&self) -> &'static str {
        match self {
            Val::Absent => "absent",
            Val::Null => "null",
            Val::Bool(_) => "bool",
            Val::Int(_) | Val::Float(_) => "number",
            Val::Str(_) => "string",
            Val::Raw(r) if r.starts_with('[') => "array",
            Val::Json(v) if v.is_array() => "array",
            Val::Raw(_) | Val::Json(_) => "object",
        }
    }

    /// A short, quoted rendering for error messages (truncated).
    pub fn describe(&self) -> String {
        let s = match self {
            Val::Str(s) => serde_json::to_string(s.as_ref()).unwrap_or_default(),
            Val::Absent => "absent".into(),
            other => other
                .to_json()
                .map(|v| v.to_string())
                .unwrap_or_else(|| "absent".into()),
        };
        if s.chars().count() > 60 {
            let t: String = s.chars().take(57).collect();
            format!("{t}...")
        } else {
            s
        }
    }
}

fn num_val(n: &serde_json::Number) -> Val<'static> {
    if let Some(i) = n.as_i64() {
        Val::Int(i)
    } else {
        Val::Float(n.as_f64().unwrap_or(f64::NAN))
    }
}

/// Parse JSON-style numeric text (surrounding whitespace allowed): integers stay integers.
pub fn parse_number(s: &str) -> Option<Val<'static>> {
    let t = s.trim();
    if t.is_empty() {
        return None;
    }
    if let Ok(i) = t.parse::<i64>() {
        return Some(Val::Int(i));
    }
    let ok = t
        .bytes()
        .all(|b| b.is_ascii_digit() || matches!(b, b'.' | b'-' | b'+' | b'e' | b'E'));
    if !ok {
        return None;
    }
    t.parse::<f64>()
        .ok()
        .filter(|f| f.is_finite())
        .map(Val::Float)
}

/// `src` for an error message: whole when short, else a window around byte `offset` with
/// `...` marking what was cut (a hostile expression can be megabytes long).
pub fn excerpt(src: &str, offset: usize) -> Cow<'_, str> {
    const WIDTH: usize = 40;
    if src.len() <= 2 * WIDTH + 20 {
        return Cow::Borrowed(src);
    }
    let floor = |mut i: usize| {
        i = i.min(src.len());
        while !src.is_char_boundary(i) {
            i -= 1;
        }
        i
    };
    let offset = offset.min(src.len());
    let start = floor(offset.saturating_sub(WIDTH));
    let end = floor(offset.saturating_add(WIDTH));
    let mut out = String::with_capacity(end - start + 6);
    if start > 0 {
        out.push_str("...");
    }
    out.push_str(&src[start..end]);
    if end < src.len() {
        out.push_str("...");
    }
    Cow::Owned(out)
}

/// Text of a float as serde_json writes it.
pub fn float_text(f: f64) -> String {
    if f.is_finite() {
        ryu::Buffer::new().format_finite(f).to_string()
    } else {
        "null".into()
    }
}

/// A source of variables for [`Expr::eval`]: a record.
pub trait Vars {
    /// The value at a dotted path, or [`Val::Absent`].
    fn get(&self, path: &str) -> Val<'_>;
}

impl Vars for Value {
    fn get(&self, path: &str) -> Val<'_> {
        let mut cur = self;
        for seg in path.split('.') {
            cur = match cur {
                Value::Object(m) => match m.get(seg) {
                    Some(v) => v,
                    None => return Val::Absent,
                },
                Value::Array(a) => match seg.parse::<usize>().ok().and_then(|i| a.get(i)) {
                    Some(v) => v,
                    None => return Val::Absent,
                },
                _ => return Val::Absent,
            };
        }
        Val::from_json(cur)
    }
}

/// Lookup tables by name, shared: every expression that reads a table holds the same `Arc`
/// (a spec with one big table and thousands of expressions must not copy it thousands of
/// times).
pub type Lookups = IndexMap<String, Arc<IndexMap<String, Value>>>;

/// What an expression may refer to besides the record: lookup tables and the source catalog.
#[derive(Clone, Copy)]
pub struct ExprEnv<'a> {
    /// Lookup tables by name (`table[key]`).
    pub lookups: &'a Lookups,
    /// Whether a dotted name is a field of the source record, when the source declares a
    /// catalog (`None`: any name may be a field).
    pub is_field: Option<&'a dyn Fn(&str) -> bool>,
    /// Functions from outside the dialect (plugin mapping functions), called as
    /// `alias.function(…)`. `None`: none.
    pub ext: Option<&'a ExtFunctions>,
}

/// Functions provided from outside the dialect, by qualified name `alias.function` (the alias
/// is the name a spec gives a plugin under `plugins`). Resolved at compile time; called at
/// evaluation through an [`ExtCalls`].
#[derive(Debug, Clone, Default)]
pub struct ExtFunctions {
    by_name: IndexMap<String, Arc<ExtFn>>,
    providers: Vec<String>,
    open: bool,
}

/// One external function.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExtFn {
    /// Index of the provider (the plugin) in declaration order.
    pub provider: usize,
    /// The function's own name (what the provider is asked to run).
    pub name: String,
    /// `alias.function`, as written in expressions.
    pub qualified: String,
}

impl ExtFunctions {
    /// Adds a provider (`alias`) with its function names; returns its index.
    pub fn add_provider(&mut self, alias: &str, functions: &[String]) -> usize {
        let provider = self.providers.len();
        self.providers.push(alias.to_string());
        for f in functions {
            let qualified = format!("{alias}.{f}");
            self.by_name.insert(
                qualified.clone(),
                Arc::new(ExtFn {
                    provider,
                    name: f.clone(),
                    qualified,
                }),
            );
        }
        provider
    }

    /// Providers whose function lists are not known (static validation without loading the
    /// plugins): any `alias.function` of a listed alias resolves.
    pub fn open<'s>(aliases: impl IntoIterator<Item = &'s String>) -> ExtFunctions {
        ExtFunctions {
            by_name: IndexMap::new(),
            providers: aliases.into_iter().cloned().collect(),
            open: true,
        }
    }

    /// A function by qualified name.
    pub fn resolve(&self, qualified: &str) -> Option<Arc<ExtFn>> {
        if let Some(f) = self.by_name.get(qualified) {
            return Some(f.clone());
        }
        let (alias, name) = qualified.split_once('.')?;
        let provider = self.providers.iter().position(|p| p == alias)?;
        self.open.then(|| {
            Arc::new(ExtFn {
                provider,
                name: name.to_string(),
                qualified: qualified.to_string(),
            })
        })
    }

    /// Every qualified name.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.by_name.keys().map(String::as_str)
    }

    /// Provider aliases in order.
    pub fn providers(&self) -> &[String] {
        &self.providers
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.by_name.is_empty()
    }
}

/// Runs external functions during evaluation (the plugin host implements it).
pub trait ExtCalls: Sync {
    /// Calls `f` with JSON arguments (absent arguments are passed as `null`).
    fn call(&self, f: &ExtFn, args: Vec<Value>) -> Result<Value, String>;
}

static NO_LOOKUPS: std::sync::LazyLock<Lookups> = std::sync::LazyLock::new(IndexMap::new);

impl ExprEnv<'static> {
    /// An environment without lookup tables or source catalog (attribution, workflow rules).
    pub fn empty() -> Self {
        ExprEnv {
            lookups: &NO_LOOKUPS,
            is_field: None,
            ext: None,
        }
    }
}

impl<'a> ExprEnv<'a> {
    /// An environment with lookups and no source catalog.
    pub fn new(lookups: &'a Lookups) -> Self {
        ExprEnv {
            lookups,
            is_field: None,
            ext: None,
        }
    }
}

/// How deep an expression may nest: each parenthesis, unary operator, function call or lookup
/// argument, branch of `?:` and right operand of `^` is one level; a chain of operators of
/// one precedence (`a + b - c`, `a || b || c`) is one level whatever its length. Evaluation
/// and every other walk over a compiled expression recurse once per level, so this bound is
/// what keeps hostile specs (thousands of `(` or `!`) from overflowing the stack, also on a
/// 2 MiB worker thread in a debug build.
pub const MAX_DEPTH: usize = 64;

/// Why an expression does not compile.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message} (at offset {offset})")]
pub struct ExprError {
    /// Byte offset in the expression text.
    pub offset: usize,
    /// What is wrong.
    pub message: String,
    /// What kind of problem it is.
    pub kind: ExprErrorKind,
    /// A "did you mean" hint, when a near name exists.
    pub hint: Option<String>,
}

/// Kinds of compile errors (each has its own diagnostic code).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExprErrorKind {
    /// Syntax (E210).
    Syntax,
    /// Unknown function (E213).
    UnknownFunction,
    /// Unknown lookup table (E205).
    UnknownLookup,
    /// Nested deeper than [`MAX_DEPTH`] (E230).
    TooDeep,
}

impl ExprErrorKind {
    /// The diagnostic code.
    pub fn code(self) -> &'static str {
        match self {
            ExprErrorKind::Syntax => "E210",
            ExprErrorKind::UnknownFunction => "E213",
            ExprErrorKind::UnknownLookup => "E205",
            ExprErrorKind::TooDeep => "E230",
        }
    }
}

/// A run-time failure (bad operand types, division by zero…): rejects the record.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct EvalError(pub String);

/// What evaluation may read besides variables: the injected clock.
#[derive(Debug, Clone, Copy)]
pub struct EvalCtx {
    /// "Now" for `today()` and `now()`.
    pub now: DateTime<Utc>,
}

/// A compiled expression.
#[derive(Debug, Clone)]
pub struct Expr {
    pub(crate) root: Node,
    /// Dotted source paths the expression reads, by variable index.
    pub vars: Vec<String>,
    pub(crate) tables: Vec<Arc<IndexMap<String, Value>>>,
    /// The source text.
    pub source: String,
}

impl Expr {
    /// Compile an expression against an environment.
    pub fn compile(src: &str, env: &ExprEnv) -> Result<Expr, ExprError> {
        parse::compile(src, env)
    }

    /// Evaluate against a record.
    pub fn eval<'a, V: Vars>(&'a self, vars: &'a V, ctx: &EvalCtx) -> Result<Val<'a>, EvalError> {
        self.eval_with(&|i| vars.get(&self.vars[i]), ctx)
    }

    /// Evaluate with a variable resolver by index into [`Expr::vars`].
    pub fn eval_with<'a>(
        &'a self,
        get: &dyn Fn(usize) -> Val<'a>,
        ctx: &EvalCtx,
    ) -> Result<Val<'a>, EvalError> {
        parse::eval(
            &self.root,
            self,
            get,
            &parse::Ctx {
                base: ctx,
                ext: None,
            },
        )
    }

    /// [`Expr::eval_with`] with a runner of external functions (plugin calls). Without one,
    /// calling an external function is an evaluation error.
    pub fn eval_ext<'a>(
        &'a self,
        get: &dyn Fn(usize) -> Val<'a>,
        ctx: &EvalCtx,
        ext: Option<&dyn ExtCalls>,
    ) -> Result<Val<'a>, EvalError> {
        parse::eval(&self.root, self, get, &parse::Ctx { base: ctx, ext })
    }

    /// Whether the expression calls an external function.
    pub fn calls_ext(&self) -> bool {
        parse::calls_ext(&self.root)
    }

    /// Whether the expression is a bare variable (a path).
    pub fn as_var(&self) -> Option<usize> {
        match self.root {
            Node::Var(i) => Some(i),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ctx() -> EvalCtx {
        EvalCtx {
            now: "2026-01-15T10:30:00Z".parse().expect("time"),
        }
    }

    fn check(src: &str, record: Value, expected: Option<Value>) {
        let mut lookups = IndexMap::new();
        let mut t = IndexMap::new();
        t.insert("kitchen".to_string(), json!(25000));
        t.insert("bathroom".to_string(), json!(15000));
        lookups.insert("project_value_map".to_string(), Arc::new(t));
        let e = Expr::compile(src, &ExprEnv::new(&lookups)).expect("compiles");
        let v = e.eval(&record, &ctx()).expect("evaluates");
        assert_eq!(v.to_json(), expected, "{src}");
    }

    fn err(src: &str) -> ExprError {
        let lookups = IndexMap::new();
        Expr::compile(src, &ExprEnv::new(&lookups)).expect_err("fails")
    }

    #[test]
    fn seed_expressions() {
        let r = json!({"ai_analysis": {"lead_score": 85, "urgency": "high", "project_type": "kitchen", "timeline": "immediate"}});
        check("ai_analysis.lead_score > 80", r.clone(), Some(json!(true)));
        check(
            "ai_analysis.urgency == 'high'",
            r.clone(),
            Some(json!(true)),
        );
        check(
            "project_value_map[ai_analysis.project_type] || 20000",
            r.clone(),
            Some(json!(25000)),
        );
        check(
            "project_value_map[ai_analysis.project_type] || 20000",
            json!({}),
            Some(json!(20000)),
        );
        check(
            "addDays(today(), ai_analysis.timeline == 'immediate' ? 1 : 7)",
            r,
            Some(json!("2026-01-16")),
        );
        check(
            "addDays(today(), ai_analysis.timeline == 'immediate' ? 1 : 7)",
            json!({}),
            Some(json!("2026-01-22")),
        );
        check("today+1", json!({}), Some(json!("2026-01-16")));
    }

    #[test]
    fn missing_fields_are_absent_and_compare_false() {
        check("a.b > 80", json!({}), Some(json!(false)));
        check("a.b == 'x'", json!({}), Some(json!(false)));
        check("a.b != 'x'", json!({}), Some(json!(false)));
        check("a.b", json!({}), None);
        check("a.b + 1", json!({}), None);
        check("!a.b", json!({}), Some(json!(true)));
    }

    #[test]
    fn operators() {
        check("1 + 2 * 3", json!({}), Some(json!(7)));
        check("(1 + 2) * 3", json!({}), Some(json!(9)));
        check("7 / 2", json!({}), Some(json!(3.5)));
        check("8 / 2", json!({}), Some(json!(4)));
        check("2 ^ 10", json!({}), Some(json!(1024)));
        check("7 % 3", json!({}), Some(json!(1)));
        check("-x", json!({"x": 3}), Some(json!(-3)));
        check("'a' + 1", json!({}), Some(json!("a1")));
        check("\"a\" + 'b'", json!({}), Some(json!("ab")));
        check("x || 'none'", json!({"x": ""}), Some(json!("none")));
        check("x || 'none'", json!({"x": 0}), Some(json!("none")));
        check("x && 'yes'", json!({"x": 1}), Some(json!("yes")));
        check("x && 'yes'", json!({"x": 0}), Some(json!(0)));
        check("x >= 10 && x <= 20", json!({"x": "15"}), Some(json!(true)));
        check("x === 2", json!({"x": 2.0}), Some(json!(true)));
        check(
            "x ? 'a' : y ? 'b' : 'c'",
            json!({"y": true}),
            Some(json!("b")),
        );
        check("true && !false", json!({}), Some(json!(true)));
        check("null == null", json!({}), Some(json!(true)));
        check("'it''s'", json!({}), Some(json!("it's")));
        check(r"'a\'b\n'", json!({}), Some(json!("a'b\n")));
    }

    #[test]
    fn empty_env_compiles_plain_expressions() {
        let e = Expr::compile("lower(channel) == 'paid'", &ExprEnv::empty()).expect("compiles");
        let rec = json!({"channel": "PAID"});
        let v = e.eval(&rec, &ctx()).expect("evaluates");
        assert_eq!(v, Val::Bool(true));
        assert!(Expr::compile("t[x]", &ExprEnv::empty()).is_err());
    }

    #[test]
    fn runtime_errors_reject() {
        let lookups = IndexMap::new();
        let e = Expr::compile("x / 0", &ExprEnv::new(&lookups)).expect("compiles");
        assert!(e.eval(&json!({"x": 1}), &ctx()).is_err());
        let e = Expr::compile("x * 2", &ExprEnv::new(&lookups)).expect("compiles");
        let msg = e.eval(&json!({"x": "abc"}), &ctx()).expect_err("fails").0;
        assert!(msg.contains("\"abc\""), "{msg}");
    }

    /// Hostile nesting: each shape, far past the limit, at the limit's edge.
    fn hostile_shapes(n: usize) -> Vec<(&'static str, String)> {
        vec![
            (
                "parentheses",
                format!("{}x{}", "(".repeat(n), ")".repeat(n)),
            ),
            ("not", format!("{}x", "!".repeat(n))),
            ("negation", format!("{}1", "- ".repeat(n))),
            ("calls", format!("{}x{}", "lower(".repeat(n), ")".repeat(n))),
            ("power chain", vec!["2"; n].join(" ^ ")),
            ("conditional", format!("{}1", "x ? 1 : ".repeat(n))),
            ("lookup", format!("{}x{}", "t[".repeat(n), "]".repeat(n))),
        ]
    }

    fn deep_env() -> Lookups {
        let mut t = IndexMap::new();
        t.insert("x".to_string(), json!("x"));
        let mut lookups = IndexMap::new();
        lookups.insert("t".to_string(), Arc::new(t));
        lookups
    }

    #[test]
    fn deep_nesting_is_a_too_deep_error_not_a_stack_overflow() {
        // 7,000 parentheses and 100k unary operators used to abort the process.
        let lookups = deep_env();
        for n in [7_000, 100_000] {
            for (shape, src) in hostile_shapes(n) {
                let e = Expr::compile(&src, &ExprEnv::new(&lookups)).expect_err(shape);
                assert_eq!(e.kind, ExprErrorKind::TooDeep, "{shape}: {e}");
                assert_eq!(e.kind.code(), "E230");
                assert!(e.offset < src.len(), "{shape}");
            }
        }
    }

    #[test]
    fn long_operator_chains_are_one_level_and_evaluate_in_a_loop() {
        // A left-deep tree of 100k `+` used to overflow the stack when evaluated.
        let lookups = deep_env();
        let sum = vec!["x"; 100_000].join(" + ");
        let e = Expr::compile(&sum, &ExprEnv::new(&lookups)).expect("a flat chain compiles");
        assert_eq!(e.eval(&json!({"x": 2}), &ctx()), Ok(Val::Int(200_000)));
        let any = (0..20_000)
            .map(|i| format!("x == {i}"))
            .collect::<Vec<_>>()
            .join(" || ");
        let e = Expr::compile(&any, &ExprEnv::new(&lookups)).expect("compiles");
        assert_eq!(e.eval(&json!({"x": 19_999}), &ctx()), Ok(Val::Bool(true)));
        assert_eq!(e.eval(&json!({"x": -1}), &ctx()), Ok(Val::Bool(false)));
        // Precedence and evaluation order are those of the binary tree it replaces.
        check("1 - 2 - 3", json!({}), Some(json!(-4)));
        check("2 * 3 + 4 * 5 - 6 / 3", json!({}), Some(json!(24)));
        check("2 ^ 3 ^ 2", json!({}), Some(json!(512)));
        check("1 < 2 == true", json!({}), Some(json!(true)));
        check("0 || '' || 'z' || 'w'", json!({}), Some(json!("z")));
        check("1 && 2 && 0 && x.y", json!({}), Some(json!(0)));
        check("1 && 2 || 3 && 0", json!({}), Some(json!(2)));
        check("'a' + 1 + 2", json!({}), Some(json!("a12")));
        check("1 + 2 + 'a'", json!({}), Some(json!("3a")));
    }

    #[test]
    fn the_deepest_accepted_expressions_evaluate_on_a_small_stack() {
        // What the limit admits must evaluate, clone, print and drop within half of a default
        // thread stack (2 MiB), in debug builds too.
        let lookups = deep_env();
        let mut deepest = Vec::new();
        for (i, (shape, _)) in hostile_shapes(1).into_iter().enumerate() {
            let n = (1..=MAX_DEPTH + 1)
                .rev()
                .find(|n| Expr::compile(&hostile_shapes(*n)[i].1, &ExprEnv::new(&lookups)).is_ok())
                .unwrap_or_else(|| panic!("{shape}: nothing compiles"));
            assert!(n * 2 >= MAX_DEPTH / 2, "{shape}: only {n} levels accepted");
            deepest.push((shape, hostile_shapes(n)[i].1.clone()));
        }
        std::thread::Builder::new()
            .stack_size(1 << 20)
            .spawn(move || {
                let lookups = deep_env();
                for (shape, src) in deepest {
                    let e = Expr::compile(&src, &ExprEnv::new(&lookups)).expect(shape);
                    let copy = e.clone();
                    let _ = e.eval(&json!({"x": 1}), &ctx());
                    assert!(!format!("{copy:?}").is_empty());
                    assert!(!copy.calls_ext());
                }
            })
            .expect("spawn")
            .join()
            .expect("evaluates within 1 MiB of stack");
    }

    #[test]
    fn excerpts_cut_long_expressions_around_the_offset() {
        assert_eq!(excerpt("a > b", 2), "a > b");
        let long = format!("{}é{}", "a".repeat(100), "b".repeat(100));
        let e = excerpt(&long, 100);
        assert!(e.starts_with("...") && e.ends_with("..."), "{e}");
        assert!(e.contains('é') && e.len() < 100, "{e}");
        let end = excerpt(&long, 10_000);
        assert_eq!(end, format!("...{}", "b".repeat(40)));
    }

    #[test]
    fn compile_errors() {
        let e = err("a >");
        assert_eq!(e.kind, ExprErrorKind::Syntax);
        assert_eq!(e.offset, 3);
        let e = err("lowr(x)");
        assert_eq!(e.kind, ExprErrorKind::UnknownFunction);
        assert_eq!(e.hint.as_deref(), Some("did you mean `lower`?"));
        let e = err("project_value_mapp[x]");
        assert_eq!(e.kind, ExprErrorKind::UnknownLookup);
        let e = err("'unterminated");
        assert_eq!(e.kind, ExprErrorKind::Syntax);
        let e = err("matches(x, '(')");
        assert_eq!(e.kind, ExprErrorKind::Syntax);
        let e = err("lower()");
        assert!(e.message.contains("argument"), "{}", e.message);
    }
}
