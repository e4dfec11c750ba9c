//! Lexer, Pratt parser and tree-walking evaluator of the expression dialect.

use super::functions::{self, FunctionDef};
use super::{
    EvalCtx, EvalError, Expr, ExprEnv, ExprError, ExprErrorKind, ExtCalls, ExtFn, Val, parse_number,
};
use crate::diag::did_you_mean;
use std::borrow::Cow;
use std::sync::Arc;

/// Unary operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnOp {
    /// `!x`
    Not,
    /// `-x`
    Neg,
}

/// Binary operators (short-circuit `&&`/`||` are separate nodes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BinOp {
    /// `+` (numbers add, text concatenates, a date plus a number adds days)
    Add,
    /// `-`
    Sub,
    /// `*`
    Mul,
    /// `/`
    Div,
    /// `%`
    Rem,
    /// `^` (power, evalexpr)
    Pow,
    /// `==` / `===`
    Eq,
    /// `!=` / `!==`
    Ne,
    /// `<`
    Lt,
    /// `<=`
    Le,
    /// `>`
    Gt,
    /// `>=`
    Ge,
}

impl BinOp {
    fn symbol(self) -> &'static str {
        match self {
            BinOp::Add => "+",
            BinOp::Sub => "-",
            BinOp::Mul => "*",
            BinOp::Div => "/",
            BinOp::Rem => "%",
            BinOp::Pow => "^",
            BinOp::Eq => "==",
            BinOp::Ne => "!=",
            BinOp::Lt => "<",
            BinOp::Le => "<=",
            BinOp::Gt => ">",
            BinOp::Ge => ">=",
        }
    }
}

/// One link of a [`Node::Chain`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChainOp {
    /// A binary operator (never [`BinOp::Pow`], which is right-associative).
    Bin(BinOp),
    /// `acc && b`: `acc` when falsy, else `b`.
    And,
    /// `acc || b`: `acc` when truthy, else `b`.
    Or,
}

/// A compiled expression tree.
#[derive(Debug, Clone)]
pub enum Node {
    /// A constant.
    Lit(Val<'static>),
    /// A source path, by index into [`Expr::vars`].
    Var(usize),
    /// `table[key]` over a lookup table (index into the expression's tables).
    Lookup(usize, Box<Node>),
    /// A unary operator.
    Unary(UnOp, Box<Node>),
    /// A left-associative chain of operators of one precedence, `a + b - c` or `a || b || c`,
    /// evaluated left to right in a loop: a chain of any length is one level deep, so only
    /// real nesting counts against [`super::MAX_DEPTH`].
    Chain(Box<Node>, Vec<(ChainOp, Node)>),
    /// A right-associative power `a ^ b`.
    Pow(Box<Node>, Box<Node>),
    /// `c ? a : b`.
    Cond(Box<Node>, Box<Node>, Box<Node>),
    /// A function call.
    Call(&'static FunctionDef, Vec<Node>),
    /// A call of an external (plugin) function.
    Ext(Arc<ExtFn>, Vec<Node>),
    /// `matches(x, '<constant regex>')`, with the regex compiled at load.
    Matches(Box<Node>, Box<regex::Regex>),
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Num(Val<'static>),
    Str(String),
    Ident(String),
    Punct(&'static str),
    End,
}

struct Lexer<'s> {
    src: &'s str,
    pos: usize,
}

const PUNCTS: [&str; 25] = [
    "===", "!==", "==", "!=", "<=", ">=", "&&", "||", "(", ")", "[", "]", ",", "?", ":", "+", "-",
    "*", "/", "%", "^", "!", "<", ">", "=",
];

impl<'s> Lexer<'s> {
    fn err(&self, offset: usize, msg: impl Into<String>) -> ExprError {
        ExprError {
            offset,
            message: msg.into(),
            kind: ExprErrorKind::Syntax,
            hint: None,
        }
    }

    fn next(&mut self) -> Result<(usize, Tok), ExprError> {
        let b = self.src.as_bytes();
        while self.pos < b.len() && b[self.pos].is_ascii_whitespace() {
            self.pos += 1;
        }
        let start = self.pos;
        if start >= b.len() {
            return Ok((start, Tok::End));
        }
        let c = b[start];
        if c.is_ascii_digit() || (c == b'.' && b.get(start + 1).is_some_and(u8::is_ascii_digit)) {
            let mut i = start;
            while i < b.len() && (b[i].is_ascii_digit() || b[i] == b'.') {
                i += 1;
            }
            if i < b.len() && (b[i] == b'e' || b[i] == b'E') {
                let mut j = i + 1;
                if j < b.len() && (b[j] == b'+' || b[j] == b'-') {
                    j += 1;
                }
                if j < b.len() && b[j].is_ascii_digit() {
                    i = j;
                    while i < b.len() && b[i].is_ascii_digit() {
                        i += 1;
                    }
                }
            }
            let text = &self.src[start..i];
            self.pos = i;
            return parse_number(text)
                .map(|v| (start, Tok::Num(v)))
                .ok_or_else(|| self.err(start, format!("invalid number `{text}`")));
        }
        if c == b'\'' || c == b'"' {
            let mut out = String::new();
            let mut i = start + 1;
            loop {
                let Some(ch) = self.src[i..].chars().next() else {
                    return Err(self.err(start, "unterminated string"));
                };
                if ch as u32 == c as u32 {
                    // `'it''s'`: a doubled quote is one quote.
                    if self.src[i + 1..].starts_with(ch) {
                        out.push(ch);
                        i += 2;
                        continue;
                    }
                    i += 1;
                    break;
                }
                if ch == '\\' {
                    let Some(e) = self.src[i + 1..].chars().next() else {
                        return Err(self.err(start, "unterminated string"));
                    };
                    out.push(match e {
                        'n' => '\n',
                        't' => '\t',
                        'r' => '\r',
                        '0' => '\0',
                        other => other,
                    });
                    i += 1 + e.len_utf8();
                    continue;
                }
                out.push(ch);
                i += ch.len_utf8();
            }
            self.pos = i;
            return Ok((start, Tok::Str(out)));
        }
        if c.is_ascii_alphabetic() || c == b'_' || c == b'$' {
            let mut i = start;
            while i < b.len() {
                let x = b[i];
                let word = x.is_ascii_alphanumeric() || x == b'_' || x == b'$';
                let dot = x == b'.'
                    && b.get(i + 1)
                        .is_some_and(|n| n.is_ascii_alphanumeric() || *n == b'_');
                if !(word || dot) {
                    break;
                }
                i += 1;
            }
            self.pos = i;
            return Ok((start, Tok::Ident(self.src[start..i].to_string())));
        }
        for p in PUNCTS {
            if self.src[start..].starts_with(p) {
                self.pos = start + p.len();
                if p == "=" {
                    return Err(self.err(start, "`=` is not an operator; use `==` to compare"));
                }
                return Ok((start, Tok::Punct(p)));
            }
        }
        let ch = self.src[start..].chars().next().unwrap_or('?');
        Err(self.err(start, format!("unexpected character `{ch}`")))
    }
}

struct Parser<'s, 'e> {
    lex: Lexer<'s>,
    tok: Tok,
    at: usize,
    /// How many sub-expressions enclose the current position (one per `expr` call: operands
    /// of unary operators, parentheses, arguments, lookup keys, branches, `^` right operands);
    /// it bounds the finished tree's height (see [`super::MAX_DEPTH`]).
    depth: usize,
    env: &'e ExprEnv<'e>,
    vars: Vec<String>,
    /// Name → index into `vars` (a flat chain may name thousands of fields).
    var_slots: std::collections::HashMap<String, usize>,
    tables: Vec<(String, Arc<indexmap::IndexMap<String, serde_json::Value>>)>,
}

pub(super) fn compile(src: &str, env: &ExprEnv) -> Result<Expr, ExprError> {
    let mut lex = Lexer { src, pos: 0 };
    let (at, tok) = lex.next()?;
    let mut p = Parser {
        lex,
        tok,
        at,
        depth: 0,
        env,
        vars: Vec::new(),
        var_slots: Default::default(),
        tables: Vec::new(),
    };
    if p.tok == Tok::End {
        return Err(p.lex.err(0, "empty expression"));
    }
    let root = p.expr(0)?;
    if p.tok != Tok::End {
        return Err(p.lex.err(p.at, format!("unexpected {}", describe(&p.tok))));
    }
    Ok(Expr {
        root,
        vars: p.vars,
        tables: p.tables.into_iter().map(|(_, t)| t).collect(),
        source: src.to_string(),
    })
}

fn describe(t: &Tok) -> String {
    match t {
        Tok::Num(_) => "number".into(),
        Tok::Str(_) => "string".into(),
        Tok::Ident(i) => format!("`{i}`"),
        Tok::Punct(p) => format!("`{p}`"),
        Tok::End => "end of expression".into(),
    }
}

/// The chain link of a left-associative infix operator.
fn chain_op(op: &str) -> ChainOp {
    match op {
        "||" => ChainOp::Or,
        "&&" => ChainOp::And,
        "+" => ChainOp::Bin(BinOp::Add),
        "-" => ChainOp::Bin(BinOp::Sub),
        "*" => ChainOp::Bin(BinOp::Mul),
        "/" => ChainOp::Bin(BinOp::Div),
        "%" => ChainOp::Bin(BinOp::Rem),
        "==" | "===" => ChainOp::Bin(BinOp::Eq),
        "!=" | "!==" => ChainOp::Bin(BinOp::Ne),
        "<" => ChainOp::Bin(BinOp::Lt),
        "<=" => ChainOp::Bin(BinOp::Le),
        ">" => ChainOp::Bin(BinOp::Gt),
        _ => ChainOp::Bin(BinOp::Ge),
    }
}

/// `first` followed by the links of a chain, if any.
fn close_chain(first: Node, chain: Option<(u8, Vec<(ChainOp, Node)>)>) -> Node {
    match chain {
        Some((_, links)) => Node::Chain(Box::new(first), links),
        None => first,
    }
}

fn infix(t: &Tok) -> Option<(u8, bool)> {
    // (binding power, right associative)
    let Tok::Punct(p) = t else { return None };
    Some(match *p {
        "?" => (1, true),
        "||" => (2, false),
        "&&" => (3, false),
        "==" | "!=" | "===" | "!==" => (4, false),
        "<" | "<=" | ">" | ">=" => (5, false),
        "+" | "-" => (6, false),
        "*" | "/" | "%" => (7, false),
        "^" => (8, true),
        _ => return None,
    })
}

impl Parser<'_, '_> {
    fn bump(&mut self) -> Result<(), ExprError> {
        let (at, tok) = self.lex.next()?;
        self.at = at;
        self.tok = tok;
        Ok(())
    }

    fn expect(&mut self, p: &'static str) -> Result<(), ExprError> {
        if self.tok == Tok::Punct(p) {
            self.bump()
        } else {
            Err(self.lex.err(
                self.at,
                format!("expected `{p}`, found {}", describe(&self.tok)),
            ))
        }
    }

    /// One level deeper; an error past [`super::MAX_DEPTH`]. Every recursive walk over the
    /// compiled tree (evaluation, drop, `calls_ext`) recurses once per level, so hostile
    /// nesting is refused here instead of overflowing the stack there.
    fn descend(&mut self) -> Result<(), ExprError> {
        self.depth += 1;
        if self.depth <= super::MAX_DEPTH {
            return Ok(());
        }
        Err(ExprError {
            offset: self.at,
            message: format!(
                "expression nests too deep (more than {} levels of parentheses, unary operators, \
                 calls, `?:` or `^`)",
                super::MAX_DEPTH
            ),
            kind: ExprErrorKind::TooDeep,
            hint: Some("split it into several computed fields".into()),
        })
    }

    fn expr(&mut self, min_bp: u8) -> Result<Node, ExprError> {
        // An error ends the whole parse, so the depth needs restoring only on success.
        self.descend()?;
        let node = self.expr_chain(min_bp)?;
        self.depth -= 1;
        Ok(node)
    }

    fn expr_chain(&mut self, min_bp: u8) -> Result<Node, ExprError> {
        let mut lhs = self.prefix()?;
        // The chain `lhs` is, and its binding power, while operators of one precedence follow.
        let mut chain: Option<(u8, Vec<(ChainOp, Node)>)> = None;
        while let Some((bp, right)) = infix(&self.tok) {
            if bp < min_bp {
                break;
            }
            let Tok::Punct(op) = self.tok.clone() else {
                break;
            };
            self.bump()?;
            if right {
                lhs = close_chain(lhs, chain.take());
                if op == "?" {
                    let a = self.expr(0)?;
                    self.expect(":")?;
                    let b = self.expr(bp)?;
                    lhs = Node::Cond(Box::new(lhs), Box::new(a), Box::new(b));
                } else {
                    let rhs = self.expr(bp)?;
                    lhs = Node::Pow(Box::new(lhs), Box::new(rhs));
                }
                continue;
            }
            let rhs = self.expr(bp + 1)?;
            let link = chain_op(op);
            match &mut chain {
                Some((cbp, links)) if *cbp == bp => links.push((link, rhs)),
                _ => {
                    lhs = close_chain(lhs, chain.take());
                    chain = Some((bp, vec![(link, rhs)]));
                }
            }
        }
        Ok(close_chain(lhs, chain))
    }

    fn var(&mut self, name: &str) -> Node {
        if let Some(&i) = self.var_slots.get(name) {
            return Node::Var(i);
        }
        self.vars.push(name.to_string());
        self.var_slots.insert(name.to_string(), self.vars.len() - 1);
        Node::Var(self.vars.len() - 1)
    }

    fn prefix(&mut self) -> Result<Node, ExprError> {
        let at = self.at;
        match self.tok.clone() {
            Tok::Num(v) => {
                self.bump()?;
                Ok(Node::Lit(v))
            }
            Tok::Str(s) => {
                self.bump()?;
                Ok(Node::Lit(Val::Str(Cow::Owned(s))))
            }
            Tok::Punct("(") => {
                self.bump()?;
                let e = self.expr(0)?;
                self.expect(")")?;
                Ok(e)
            }
            Tok::Punct("!") => {
                self.bump()?;
                Ok(Node::Unary(UnOp::Not, Box::new(self.expr(9)?)))
            }
            Tok::Punct("-") => {
                self.bump()?;
                Ok(Node::Unary(UnOp::Neg, Box::new(self.expr(9)?)))
            }
            Tok::Ident(name) => {
                self.bump()?;
                match name.as_str() {
                    "true" => return Ok(Node::Lit(Val::Bool(true))),
                    "false" => return Ok(Node::Lit(Val::Bool(false))),
                    "null" => return Ok(Node::Lit(Val::Null)),
                    _ => {}
                }
                if self.tok == Tok::Punct("(") {
                    return self.call(&name, at);
                }
                if self.tok == Tok::Punct("[") {
                    return self.lookup(&name, at);
                }
                // `today` / `now` without parentheses (the seed's `computed:today+1`), unless
                // the source catalog declares a field of that name.
                let declared = self.env.is_field.is_some_and(|f| f(&name));
                if !declared && (name == "today" || name == "now") {
                    return self.call_args(&name, at, Vec::new());
                }
                Ok(self.var(&name))
            }
            other => Err(self
                .lex
                .err(at, format!("expected a value, found {}", describe(&other)))),
        }
    }

    fn lookup(&mut self, name: &str, at: usize) -> Result<Node, ExprError> {
        let Some(table) = self.env.lookups.get(name) else {
            let hint =
                did_you_mean(name, self.env.lookups.keys().map(String::as_str)).or_else(|| {
                    Some(if self.env.lookups.is_empty() {
                        "declare it under `lookups`".to_string()
                    } else {
                        format!(
                            "known lookup tables: {}",
                            self.env
                                .lookups
                                .keys()
                                .map(String::as_str)
                                .collect::<Vec<_>>()
                                .join(", ")
                        )
                    })
                });
            return Err(ExprError {
                offset: at,
                message: format!("unknown lookup table `{name}`"),
                kind: ExprErrorKind::UnknownLookup,
                hint,
            });
        };
        self.bump()?;
        let key = self.expr(0)?;
        self.expect("]")?;
        let idx = match self.tables.iter().position(|(n, _)| n == name) {
            Some(i) => i,
            None => {
                self.tables.push((name.to_string(), Arc::clone(table)));
                self.tables.len() - 1
            }
        };
        Ok(Node::Lookup(idx, Box::new(key)))
    }

    fn call(&mut self, name: &str, at: usize) -> Result<Node, ExprError> {
        self.bump()?;
        let mut args = Vec::new();
        if self.tok != Tok::Punct(")") {
            loop {
                args.push(self.expr(0)?);
                if self.tok == Tok::Punct(",") {
                    self.bump()?;
                    continue;
                }
                break;
            }
        }
        self.expect(")")?;
        self.call_args(name, at, args)
    }

    fn call_args(&mut self, name: &str, at: usize, mut args: Vec<Node>) -> Result<Node, ExprError> {
        if let Some((alias, _)) = name.split_once('.') {
            let ext = self.env.ext;
            if let Some(f) = ext.and_then(|e| e.resolve(name)) {
                return Ok(Node::Ext(f, args));
            }
            let known = ext.is_some_and(|e| e.providers().iter().any(|p| p == alias));
            let hint = ext.and_then(|e| did_you_mean(name, e.names())).or_else(|| {
                Some(if known {
                    let names: Vec<&str> = ext
                        .map(|e| {
                            e.names()
                                .filter(|n| n.starts_with(&format!("{alias}.")))
                                .collect()
                        })
                        .unwrap_or_default();
                    format!("plugin `{alias}` provides: {}", names.join(", "))
                } else {
                    format!("declare a mapping-functions plugin `{alias}` under `plugins`")
                })
            });
            return Err(ExprError {
                offset: at,
                message: if known {
                    format!("unknown function `{name}`: plugin `{alias}` does not provide it")
                } else {
                    format!("unknown function `{name}`: no plugin `{alias}` is declared")
                },
                kind: ExprErrorKind::UnknownFunction,
                hint,
            });
        }
        let Some(def) = functions::lookup(name) else {
            return Err(ExprError {
                offset: at,
                message: format!("unknown function `{name}`"),
                kind: ExprErrorKind::UnknownFunction,
                hint: did_you_mean(name, functions::ALL.iter().map(|f| f.name)),
            });
        };
        if args.len() < def.min_args || args.len() > def.max_args {
            let want = if def.min_args == def.max_args {
                format!("{}", def.min_args)
            } else if def.max_args == usize::MAX {
                format!("at least {}", def.min_args)
            } else {
                format!("{} to {}", def.min_args, def.max_args)
            };
            return Err(self.lex.err(
                at,
                format!(
                    "`{name}` takes {want} argument{}, found {}",
                    if want == "1" { "" } else { "s" },
                    args.len()
                ),
            ));
        }
        if def.name == "matches"
            && let Node::Lit(Val::Str(pat)) = &args[1]
        {
            let re = regex::Regex::new(pat).map_err(|e| {
                self.lex.err(
                    at,
                    format!(
                        "invalid regex: {}",
                        e.to_string().lines().last().unwrap_or_default()
                    ),
                )
            })?;
            let subject = args.swap_remove(0);
            return Ok(Node::Matches(Box::new(subject), Box::new(re)));
        }
        Ok(Node::Call(def, args))
    }
}

/// What evaluation reads besides variables.
pub(super) struct Ctx<'c> {
    pub base: &'c EvalCtx,
    pub ext: Option<&'c dyn ExtCalls>,
}

/// Whether a tree calls an external function.
pub(super) fn calls_ext(node: &Node) -> bool {
    match node {
        Node::Ext(..) => true,
        Node::Lit(_) | Node::Var(_) => false,
        Node::Lookup(_, a) | Node::Unary(_, a) | Node::Matches(a, _) => calls_ext(a),
        Node::Pow(a, b) => calls_ext(a) || calls_ext(b),
        Node::Chain(a, links) => calls_ext(a) || links.iter().any(|(_, x)| calls_ext(x)),
        Node::Cond(a, b, c) => calls_ext(a) || calls_ext(b) || calls_ext(c),
        Node::Call(_, args) => args.iter().any(calls_ext),
    }
}

pub(super) fn eval<'a>(
    node: &'a Node,
    expr: &'a Expr,
    get: &dyn Fn(usize) -> Val<'a>,
    ctx: &Ctx<'_>,
) -> Result<Val<'a>, EvalError> {
    Ok(match node {
        Node::Lit(v) => match v {
            Val::Str(s) => Val::Str(Cow::Borrowed(s)),
            other => other.clone(),
        },
        Node::Var(i) => get(*i),
        Node::Lookup(t, key) => {
            let k = eval(key, expr, get, ctx)?;
            match k.text() {
                Some(k) => match expr.tables[*t].get(k.as_ref()) {
                    Some(v) => Val::from_json(v),
                    None => Val::Absent,
                },
                None => Val::Absent,
            }
        }
        Node::Unary(op, x) => {
            let v = eval(x, expr, get, ctx)?;
            match op {
                UnOp::Not => Val::Bool(!v.truthy()),
                UnOp::Neg => match v {
                    Val::Absent => Val::Absent,
                    Val::Int(i) => i.checked_neg().map_or(Val::Float(-(i as f64)), Val::Int),
                    other => match other.as_f64() {
                        Some(f) => Val::Float(-f),
                        None => {
                            return Err(EvalError(format!(
                                "cannot negate {} {}",
                                other.kind_name(),
                                other.describe()
                            )));
                        }
                    },
                },
            }
        }
        Node::Cond(c, a, b) => {
            if eval(c, expr, get, ctx)?.truthy() {
                eval(a, expr, get, ctx)?
            } else {
                eval(b, expr, get, ctx)?
            }
        }
        Node::Chain(first, links) => {
            let mut acc = eval(first, expr, get, ctx)?;
            for (op, x) in links {
                acc = match op {
                    ChainOp::And if !acc.truthy() => acc,
                    ChainOp::Or if acc.truthy() => acc,
                    ChainOp::And | ChainOp::Or => eval(x, expr, get, ctx)?,
                    ChainOp::Bin(op) => binary(*op, acc, eval(x, expr, get, ctx)?)?,
                };
            }
            acc
        }
        Node::Pow(a, b) => {
            let x = eval(a, expr, get, ctx)?;
            let y = eval(b, expr, get, ctx)?;
            binary(BinOp::Pow, x, y)?
        }
        Node::Call(def, args) => {
            let mut vals = Vec::with_capacity(args.len());
            for a in args {
                vals.push(eval(a, expr, get, ctx)?);
            }
            if def.absent_propagates && vals.iter().any(|v| matches!(v, Val::Absent)) {
                return Ok(Val::Absent);
            }
            (def.call)(vals, ctx.base).map_err(|e| EvalError(format!("{}(): {e}", def.name)))?
        }
        Node::Ext(f, args) => {
            let mut vals = Vec::with_capacity(args.len());
            for a in args {
                vals.push(
                    eval(a, expr, get, ctx)?
                        .to_json()
                        .unwrap_or(serde_json::Value::Null),
                );
            }
            let Some(ext) = ctx.ext else {
                return Err(EvalError(format!(
                    "{}(): plugin functions are not available here",
                    f.qualified
                )));
            };
            let v = ext
                .call(f, vals)
                .map_err(|e| EvalError(format!("{}(): {e}", f.qualified)))?;
            Val::from_json_owned(v)
        }
        Node::Matches(x, re) => {
            let v = eval(x, expr, get, ctx)?;
            match v.text() {
                Some(t) => Val::Bool(re.is_match(&t)),
                None => Val::Absent,
            }
        }
    })
}

fn is_num(v: &Val) -> bool {
    matches!(v, Val::Int(_) | Val::Float(_))
}

/// Compare two present values: `None` when they are not comparable.
fn compare(x: &Val, y: &Val) -> Option<std::cmp::Ordering> {
    match (x, y) {
        (Val::Int(a), Val::Int(b)) => Some(a.cmp(b)),
        (Val::Str(a), Val::Str(b)) => Some(a.as_ref().cmp(b.as_ref())),
        (Val::Bool(a), Val::Bool(b)) => Some(a.cmp(b)),
        (Val::Null, Val::Null) => Some(std::cmp::Ordering::Equal),
        _ if is_num(x) || is_num(y) => {
            let (a, b) = (x.as_f64()?, y.as_f64()?);
            a.partial_cmp(&b)
        }
        _ => None,
    }
}

fn binary<'a>(op: BinOp, x: Val<'a>, y: Val<'a>) -> Result<Val<'a>, EvalError> {
    use BinOp::*;
    if matches!(op, Eq | Ne | Lt | Le | Gt | Ge) {
        if matches!(x, Val::Absent) || matches!(y, Val::Absent) {
            return Ok(Val::Bool(false));
        }
        let ord = compare(&x, &y);
        let eq_compound = match (&x, &y) {
            (Val::Raw(_) | Val::Json(_), _) | (_, Val::Raw(_) | Val::Json(_)) => {
                Some(x.to_json() == y.to_json())
            }
            _ => None,
        };
        return Ok(Val::Bool(match op {
            Eq => eq_compound.unwrap_or(ord == Some(std::cmp::Ordering::Equal)),
            Ne => !eq_compound.unwrap_or(ord == Some(std::cmp::Ordering::Equal)),
            Lt => ord == Some(std::cmp::Ordering::Less),
            Le => matches!(
                ord,
                Some(std::cmp::Ordering::Less | std::cmp::Ordering::Equal)
            ),
            Gt => ord == Some(std::cmp::Ordering::Greater),
            _ => matches!(
                ord,
                Some(std::cmp::Ordering::Greater | std::cmp::Ordering::Equal)
            ),
        }));
    }
    if matches!(x, Val::Absent) || matches!(y, Val::Absent) {
        return Ok(Val::Absent);
    }
    if (op == Add || op == Sub)
        && let (Val::Str(s), Some(n)) = (&x, y.as_i64().filter(|_| is_num(&y)))
    {
        let n = if op == Sub { -n } else { n };
        if let Some(d) = functions::add_days::shift_days(s, n) {
            return Ok(Val::Str(Cow::Owned(d)));
        }
    }
    if op == Add && (matches!(x, Val::Str(_)) || matches!(y, Val::Str(_))) {
        let a = x.text().map(Cow::into_owned).unwrap_or_default();
        let b = y.text().map(Cow::into_owned).unwrap_or_default();
        return Ok(Val::Str(Cow::Owned(a + &b)));
    }
    if let (Val::Int(a), Val::Int(b)) = (&x, &y) {
        let (a, b) = (*a, *b);
        let r = match op {
            Add => a.checked_add(b),
            Sub => a.checked_sub(b),
            Mul => a.checked_mul(b),
            Div => {
                if b == 0 {
                    return Err(EvalError("division by zero".into()));
                }
                if a % b == 0 { Some(a / b) } else { None }
            }
            Rem => {
                if b == 0 {
                    return Err(EvalError("division by zero".into()));
                }
                Some(a % b)
            }
            Pow => u32::try_from(b).ok().and_then(|e| a.checked_pow(e)),
            _ => None,
        };
        if let Some(r) = r {
            return Ok(Val::Int(r));
        }
    }
    let (Some(a), Some(b)) = (x.as_f64(), y.as_f64()) else {
        let bad = if x.as_f64().is_none() { &x } else { &y };
        return Err(EvalError(format!(
            "cannot apply `{}` to {} {}",
            op.symbol(),
            bad.kind_name(),
            bad.describe()
        )));
    };
    let r = match op {
        Add => a + b,
        Sub => a - b,
        Mul => a * b,
        Div => {
            if b == 0.0 {
                return Err(EvalError("division by zero".into()));
            }
            a / b
        }
        Rem => {
            if b == 0.0 {
                return Err(EvalError("division by zero".into()));
            }
            a % b
        }
        _ => a.powf(b),
    };
    if !r.is_finite() {
        return Err(EvalError(format!(
            "`{}` overflowed the number range",
            op.symbol()
        )));
    }
    Ok(Val::Float(r))
}
