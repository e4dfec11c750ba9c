//! Salesforce's SOQL subset: the tokenizer, the parser, record matching, and the query
//! endpoints with `nextRecordsUrl` paging (`Sforce-Query-Options: batchSize`).

use super::super::state::{Db, Shared};
use super::super::util::{cmp_loose, json, scalar_text};
use super::DEFAULT_BATCH;
use super::errors::err;
use super::schema::{ObjectDef, object_def};
use super::store::render;
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::Response;
use serde_json::{Value, json};
use std::cmp::Ordering;
use std::collections::HashMap;
use std::sync::Arc;

#[derive(Debug, Clone, PartialEq)]
pub(super) enum Tok {
    Word(String),
    Str(String),
    Sym(String),
}

pub(super) fn tokenize(q: &str) -> Result<Vec<Tok>, String> {
    let cs: Vec<char> = q.chars().collect();
    let mut i = 0;
    let mut out = Vec::new();
    while i < cs.len() {
        let c = cs[i];
        if c.is_whitespace() {
            i += 1;
        } else if c == '\'' {
            let mut s = String::new();
            i += 1;
            loop {
                match cs.get(i) {
                    None => return Err("unterminated string literal".into()),
                    Some('\\') => {
                        if let Some(n) = cs.get(i + 1) {
                            s.push(*n);
                        }
                        i += 2;
                    }
                    Some('\'') => {
                        i += 1;
                        break;
                    }
                    Some(ch) => {
                        s.push(*ch);
                        i += 1;
                    }
                }
            }
            out.push(Tok::Str(s));
        } else if c.is_alphanumeric() || c == '_' || c == '-' || c == '.' {
            let start = i;
            while i < cs.len() && (cs[i].is_alphanumeric() || "_.-:+".contains(cs[i])) {
                i += 1;
            }
            out.push(Tok::Word(cs[start..i].iter().collect()));
        } else if "<>!".contains(c) && cs.get(i + 1) == Some(&'=') {
            out.push(Tok::Sym(format!("{c}=")));
            i += 2;
        } else if c == '<' && cs.get(i + 1) == Some(&'>') {
            out.push(Tok::Sym("!=".into()));
            i += 2;
        } else if "=<>(),".contains(c) {
            out.push(Tok::Sym(c.to_string()));
            i += 1;
        } else {
            return Err(format!("unexpected character '{c}'"));
        }
    }
    Ok(out)
}

#[derive(Debug, Clone)]
pub(super) struct Cond {
    field: String,
    op: String,
    values: Vec<Value>,
}

/// A WHERE clause: conditions joined by AND, OR, NOT and parentheses.
#[derive(Debug, Clone)]
pub(super) enum Expr {
    Cond(Cond),
    And(Vec<Expr>),
    Or(Vec<Expr>),
    Not(Box<Expr>),
}

/// How deep parentheses and NOT may nest (a hostile query cannot exhaust the stack).
const NESTING_MAX: usize = 32;

#[derive(Debug, Clone)]
pub(super) struct Soql {
    fields: Vec<String>,
    object: &'static ObjectDef,
    filter: Option<Expr>,
    order: Option<(String, bool)>,
    limit: Option<usize>,
    offset: usize,
}

pub(super) struct Parser {
    toks: Vec<Tok>,
    pos: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.pos)
    }
    fn next(&mut self) -> Option<Tok> {
        let t = self.toks.get(self.pos).cloned();
        self.pos += 1;
        t
    }
    fn keyword(&mut self, kw: &str) -> bool {
        if matches!(self.peek(), Some(Tok::Word(w)) if w.eq_ignore_ascii_case(kw)) {
            self.pos += 1;
            true
        } else {
            false
        }
    }
    fn word(&mut self, what: &str) -> Result<String, String> {
        match self.next() {
            Some(Tok::Word(w)) => Ok(w),
            other => Err(format!("expected {what}, found {other:?}")),
        }
    }
    fn literal(&mut self) -> Result<Value, String> {
        match self.next() {
            Some(Tok::Str(s)) => Ok(Value::String(s)),
            Some(Tok::Word(w)) if w.eq_ignore_ascii_case("null") => Ok(Value::Null),
            Some(Tok::Word(w)) if w.eq_ignore_ascii_case("true") => Ok(Value::Bool(true)),
            Some(Tok::Word(w)) if w.eq_ignore_ascii_case("false") => Ok(Value::Bool(false)),
            Some(Tok::Word(w)) if w.starts_with(|c: char| c.is_ascii_digit() || c == '-') => {
                Ok(Value::String(w))
            }
            other => Err(format!("expected a literal value, found {other:?}")),
        }
    }
}

pub(super) fn parse_soql(q: &str) -> Result<Soql, (&'static str, String)> {
    let mut p = Parser {
        toks: tokenize(q).map_err(malformed)?,
        pos: 0,
    };
    if !p.keyword("SELECT") {
        return Err(malformed(
            "unexpected token: query must start with SELECT".into(),
        ));
    }
    let mut fields = vec![p.word("a field name").map_err(malformed)?];
    while matches!(p.peek(), Some(Tok::Sym(s)) if s == ",") {
        p.next();
        fields.push(p.word("a field name").map_err(malformed)?);
    }
    if !p.keyword("FROM") {
        return Err(malformed("expecting FROM".into()));
    }
    let obj = p.word("an sObject name").map_err(malformed)?;
    let object = object_def(&obj).ok_or((
        "INVALID_TYPE",
        format!("sObject type '{obj}' is not supported. If you are attempting to use a custom object, be sure to append the '__c' after the entity name."),
    ))?;
    let mut canon = Vec::new();
    for f in &fields {
        canon.push(resolve_field(object, f)?);
    }
    let filter = if p.keyword("WHERE") {
        Some(parse_or(&mut p, object, 0)?)
    } else {
        None
    };
    let mut order = None;
    if p.keyword("ORDER") {
        if !p.keyword("BY") {
            return Err(malformed("expecting BY after ORDER".into()));
        }
        let f = p.word("a field name").map_err(malformed)?;
        let field = resolve_field(object, &f)?;
        let desc = if p.keyword("DESC") {
            true
        } else {
            p.keyword("ASC");
            false
        };
        if p.keyword("NULLS") {
            let _ = p.next();
        }
        order = Some((field, desc));
    }
    let mut limit = None;
    if p.keyword("LIMIT") {
        let n = p.word("a number").map_err(malformed)?;
        limit = Some(
            n.parse()
                .map_err(|_| malformed(format!("invalid LIMIT {n}")))?,
        );
    }
    let mut offset = 0;
    if p.keyword("OFFSET") {
        let n = p.word("a number").map_err(malformed)?;
        offset = n
            .parse()
            .map_err(|_| malformed(format!("invalid OFFSET {n}")))?;
    }
    if let Some(t) = p.peek() {
        return Err(malformed(format!("unexpected token: {t:?}")));
    }
    Ok(Soql {
        fields: canon,
        object,
        filter,
        order,
        limit,
        offset,
    })
}

type ParseError = (&'static str, String);

fn malformed(m: String) -> ParseError {
    ("MALFORMED_QUERY", m)
}

/// The canonical name of a field of `object`, or of a parent's field through a relationship
/// (`Account.Name` on Contact, Opportunity and Case; `Contact.Email` on Opportunity and Case).
pub(super) fn resolve_field(object: &ObjectDef, f: &str) -> Result<String, ParseError> {
    if let Some((rel, field)) = f.split_once('.') {
        let parent = relationship(object, rel).ok_or_else(|| {
            (
                "INVALID_FIELD",
                format!(
                    "Didn't understand relationship '{rel}' in field path. If you are attempting to use a custom relationship, be sure to append the '__r' after the custom relationship name."
                ),
            )
        })?;
        let (name, _) = parent.1.field(field).ok_or_else(|| {
            (
                "INVALID_FIELD",
                format!("No such column '{field}' on entity '{}'", parent.1.name),
            )
        })?;
        return Ok(format!("{}.{name}", parent.0));
    }
    object.field(f).map(|(n, _)| n).ok_or_else(|| {
        (
            "INVALID_FIELD",
            format!(
                "No such column '{f}' on entity '{}'. If you are attempting to use a custom field, be sure to append the '__c' after the custom field name.",
                object.name
            ),
        )
    })
}

/// The parent relationships the subset knows: (child, relationship, lookup field, parent).
const RELATIONSHIPS: &[(&str, &str, &str, &str)] = &[
    ("Contact", "Account", "AccountId", "Account"),
    ("Opportunity", "Account", "AccountId", "Account"),
    ("Opportunity", "Contact", "ContactId", "Contact"),
    ("Case", "Account", "AccountId", "Account"),
    ("Case", "Contact", "ContactId", "Contact"),
];

/// (canonical relationship name, parent object, lookup field) of `rel` on `object`.
fn relationship(
    object: &ObjectDef,
    rel: &str,
) -> Option<(&'static str, &'static ObjectDef, &'static str)> {
    RELATIONSHIPS
        .iter()
        .find(|(child, r, _, _)| *child == object.name && r.eq_ignore_ascii_case(rel))
        .and_then(|(_, r, fk, parent)| object_def(parent).map(|d| (*r, d, *fk)))
}

fn parse_or(p: &mut Parser, object: &ObjectDef, depth: usize) -> Result<Expr, ParseError> {
    let mut terms = vec![parse_and(p, object, depth)?];
    while p.keyword("OR") {
        terms.push(parse_and(p, object, depth)?);
    }
    Ok(if terms.len() == 1 {
        terms.remove(0)
    } else {
        Expr::Or(terms)
    })
}

fn parse_and(p: &mut Parser, object: &ObjectDef, depth: usize) -> Result<Expr, ParseError> {
    let mut terms = vec![parse_unary(p, object, depth)?];
    while p.keyword("AND") {
        terms.push(parse_unary(p, object, depth)?);
    }
    Ok(if terms.len() == 1 {
        terms.remove(0)
    } else {
        Expr::And(terms)
    })
}

fn parse_unary(p: &mut Parser, object: &ObjectDef, depth: usize) -> Result<Expr, ParseError> {
    if depth >= NESTING_MAX {
        return Err(malformed(format!(
            "conditions nest deeper than {NESTING_MAX} levels"
        )));
    }
    if p.keyword("NOT") {
        return Ok(Expr::Not(Box::new(parse_unary(p, object, depth + 1)?)));
    }
    if matches!(p.peek(), Some(Tok::Sym(s)) if s == "(") {
        p.next();
        let inner = parse_or(p, object, depth + 1)?;
        if !matches!(p.next(), Some(Tok::Sym(s)) if s == ")") {
            return Err(malformed("expecting ')'".into()));
        }
        return Ok(inner);
    }
    let f = p.word("a field name").map_err(malformed)?;
    let field = resolve_field(object, &f)?;
    let (op, values) = if p.keyword("NOT") {
        if !p.keyword("IN") {
            return Err(malformed("expecting IN after NOT".into()));
        }
        ("NOT IN".to_string(), list(p).map_err(malformed)?)
    } else if p.keyword("IN") {
        ("IN".to_string(), list(p).map_err(malformed)?)
    } else if p.keyword("LIKE") {
        ("LIKE".to_string(), vec![p.literal().map_err(malformed)?])
    } else {
        match p.next() {
            Some(Tok::Sym(s)) if ["=", "!=", "<", "<=", ">", ">="].contains(&s.as_str()) => {
                (s, vec![p.literal().map_err(malformed)?])
            }
            other => return Err(malformed(format!("unexpected token: {other:?}"))),
        }
    };
    Ok(Expr::Cond(Cond { field, op, values }))
}

/// A field of a record, following a relationship (`Account.Name`) through the store.
pub(super) fn field_value(db: &Db, object: &ObjectDef, rec: &Value, field: &str) -> Value {
    match field.split_once('.') {
        None => rec.get(field).cloned().unwrap_or(Value::Null),
        Some((rel, f)) => relationship(object, rel)
            .and_then(|(_, parent, fk)| {
                let id = rec.get(fk)?.as_str()?;
                db.get(parent.name, id)?.get(f).cloned()
            })
            .unwrap_or(Value::Null),
    }
}

fn expr_matches(db: &Db, object: &ObjectDef, rec: &Value, e: &Expr) -> bool {
    match e {
        Expr::Cond(c) => cond_matches(&field_value(db, object, rec, &c.field), c),
        Expr::And(es) => es.iter().all(|e| expr_matches(db, object, rec, e)),
        Expr::Or(es) => es.iter().any(|e| expr_matches(db, object, rec, e)),
        Expr::Not(e) => !expr_matches(db, object, rec, e),
    }
}

/// A result row: `attributes`, the plain fields, and each relationship's fields nested under
/// its name (`"Account": {"attributes": …, "Name": "Acme"}`, null without a parent).
fn row(db: &Db, object: &'static ObjectDef, rec: &Value, fields: &[String]) -> Value {
    let plain: Vec<String> = fields
        .iter()
        .filter(|f| !f.contains('.'))
        .cloned()
        .collect();
    let mut out = render(object, rec, Some(&plain));
    for f in fields.iter().filter(|f| f.contains('.')) {
        let Some((rel, name)) = f.split_once('.') else {
            continue;
        };
        let Some((rel, parent, fk)) = relationship(object, rel) else {
            continue;
        };
        let parent_rec = rec
            .get(fk)
            .and_then(Value::as_str)
            .and_then(|id| db.get(parent.name, id));
        match parent_rec {
            None => {
                out[rel] = Value::Null;
            }
            Some(pr) => {
                if !out[rel].is_object() {
                    let id = pr["Id"].as_str().unwrap_or_default();
                    out[rel] = json!({"attributes": {"type": parent.name, "url": parent.url(id)}});
                }
                out[rel][name] = pr.get(name).cloned().unwrap_or(Value::Null);
            }
        }
    }
    out
}

pub(super) fn list(p: &mut Parser) -> Result<Vec<Value>, String> {
    if !matches!(p.next(), Some(Tok::Sym(s)) if s == "(") {
        return Err("expecting '('".into());
    }
    let mut out = vec![p.literal()?];
    loop {
        match p.next() {
            Some(Tok::Sym(s)) if s == "," => out.push(p.literal()?),
            Some(Tok::Sym(s)) if s == ")" => return Ok(out),
            other => return Err(format!("expecting ',' or ')', found {other:?}")),
        }
    }
}

pub(super) fn cond_matches(actual: &Value, c: &Cond) -> bool {
    let actual = actual.clone();
    let eq = |want: &Value| -> bool {
        match (&actual, want) {
            (Value::Null, Value::Null) => true,
            (Value::Null, _) | (_, Value::Null) => false,
            (Value::Bool(a), Value::Bool(b)) => a == b,
            (a, b) => cmp_loose(&scalar_text(a), &scalar_text(b)) == Ordering::Equal,
        }
    };
    let ord = |want: &Value| -> Option<Ordering> {
        if actual.is_null() || want.is_null() {
            return None;
        }
        Some(cmp_loose(&scalar_text(&actual), &scalar_text(want)))
    };
    let v = c.values.first().cloned().unwrap_or(Value::Null);
    match c.op.as_str() {
        "=" => eq(&v),
        "!=" => !eq(&v),
        "<" => ord(&v) == Some(Ordering::Less),
        "<=" => matches!(ord(&v), Some(Ordering::Less | Ordering::Equal)),
        ">" => ord(&v) == Some(Ordering::Greater),
        ">=" => matches!(ord(&v), Some(Ordering::Greater | Ordering::Equal)),
        "IN" => c.values.iter().any(eq),
        "NOT IN" => !c.values.iter().any(eq),
        "LIKE" => {
            let pat = scalar_text(&v).to_lowercase();
            let text = scalar_text(&actual).to_lowercase();
            like(&text, &pat)
        }
        _ => false,
    }
}

/// SOQL LIKE with `%` and `_` wildcards, case-insensitive.
pub(super) fn like(text: &str, pat: &str) -> bool {
    let t: Vec<char> = text.chars().collect();
    let p: Vec<char> = pat.chars().collect();
    let (mut ti, mut pi) = (0, 0);
    let (mut star, mut mark) = (None, 0);
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '_' || p[pi] == t[ti]) {
            ti += 1;
            pi += 1;
        } else if pi < p.len() && p[pi] == '%' {
            star = Some(pi);
            mark = ti;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ti = mark;
        } else {
            return false;
        }
    }
    while pi < p.len() && p[pi] == '%' {
        pi += 1;
    }
    pi == p.len()
}

pub(super) fn batch_size(headers: &HeaderMap) -> usize {
    headers
        .get("sforce-query-options")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.split(',').find_map(|kv| {
                let (k, v) = kv.split_once('=')?;
                (k.trim().eq_ignore_ascii_case("batchSize"))
                    .then(|| v.trim().parse::<usize>().ok())
                    .flatten()
            })
        })
        .filter(|n| *n >= 1)
        .map_or(DEFAULT_BATCH, |n| n.min(DEFAULT_BATCH))
}

pub(super) async fn query(
    State(shared): State<Arc<Shared>>,
    Path(version): Path<String>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    let Some(text) = q.get("q") else {
        return err(400, "MALFORMED_QUERY", "A query string has to be specified");
    };
    let soql = match parse_soql(text) {
        Ok(s) => s,
        Err((code, msg)) => return err(400, code, &msg),
    };
    let def = soql.object;
    let mut db = shared.db();
    let mut hits: Vec<Value> = db
        .tables
        .get(def.name)
        .map(|t| {
            t.values()
                .filter(|r| {
                    soql.filter
                        .as_ref()
                        .is_none_or(|e| expr_matches(&db, def, r, e))
                })
                .cloned()
                .collect()
        })
        .unwrap_or_default();
    if let Some((f, desc)) = &soql.order {
        hits.sort_by(|a, b| {
            let x = scalar_text(&field_value(&db, def, a, f));
            let y = scalar_text(&field_value(&db, def, b, f));
            let o = cmp_loose(&x, &y);
            if *desc { o.reverse() } else { o }
        });
    }
    let rows: Vec<Value> = hits
        .iter()
        .skip(soql.offset)
        .take(soql.limit.unwrap_or(usize::MAX))
        .map(|r| row(&db, def, r, &soql.fields))
        .collect();
    let locator = format!("01g{}", &db.token(shared.seed)[..15]);
    let size = batch_size(&headers);
    db.cursors
        .insert(locator.clone(), Value::Array(rows.clone()));
    drop(db);
    page(&version, &locator, &rows, 0, size)
}

pub(super) fn page(
    version: &str,
    locator: &str,
    rows: &[Value],
    start: usize,
    size: usize,
) -> Response {
    let end = start.saturating_add(size).min(rows.len());
    let records: Vec<Value> = rows.get(start..end).unwrap_or_default().to_vec();
    let mut body = json!({"totalSize": rows.len(), "done": end >= rows.len(), "records": records});
    if end < rows.len() {
        body["nextRecordsUrl"] = json!(format!("/services/data/{version}/query/{locator}-{end}"));
        if let Some(o) = body.as_object_mut() {
            // Keep the documented key order: totalSize, done, nextRecordsUrl, records.
            let records = o.remove("records").unwrap_or(Value::Null);
            o.insert("records".into(), records);
        }
    }
    json(200, body)
}

pub(super) async fn query_more(
    State(shared): State<Arc<Shared>>,
    Path((version, locator)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    let Some((loc, start)) = locator.rsplit_once('-') else {
        return err(400, "INVALID_QUERY_LOCATOR", "invalid query locator");
    };
    let Ok(start) = start.parse::<usize>() else {
        return err(400, "INVALID_QUERY_LOCATOR", "invalid query locator");
    };
    let rows = shared.db().cursors.get(loc).cloned();
    let Some(Value::Array(rows)) = rows else {
        return err(400, "INVALID_QUERY_LOCATOR", "invalid query locator");
    };
    page(&version, loc, &rows, start, batch_size(&headers))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn soql_subset_parses() {
        let q = parse_soql("SELECT Id, email FROM lead WHERE Email = 'a@b.co' AND LastName IN ('x','y') ORDER BY CreatedDate DESC LIMIT 5")
            .expect("parses");
        assert_eq!(q.fields, vec!["Id", "Email"]);
        assert_eq!(q.object.name, "Lead");
        assert!(matches!(&q.filter, Some(Expr::And(c)) if c.len() == 2));

        assert_eq!(q.limit, Some(5));
        let q = parse_soql(
            "SELECT Id, Account.Name FROM Contact WHERE (LastName = 'a' OR NOT LastName LIKE 'b%') AND Account.Name != null",
        )
        .expect("parses");
        assert_eq!(q.fields, vec!["Id", "Account.Name"]);
        assert!(matches!(&q.filter, Some(Expr::And(c)) if matches!(c[0], Expr::Or(_))));
        let deep = format!(
            "SELECT Id FROM Lead WHERE {}Email = 'x'{}",
            "(".repeat(40),
            ")".repeat(40)
        );
        assert_eq!(
            parse_soql(&deep).map_err(|e| e.0).err(),
            Some("MALFORMED_QUERY")
        );
        assert_eq!(
            parse_soql("SELECT Nope.Name FROM Contact")
                .map_err(|e| e.0)
                .err(),
            Some("INVALID_FIELD")
        );
        assert_eq!(
            parse_soql("SELECT Foo FROM Lead").map_err(|e| e.0).err(),
            Some("INVALID_FIELD")
        );
        assert_eq!(
            parse_soql("SELECT Id FROM Nope").map_err(|e| e.0).err(),
            Some("INVALID_TYPE")
        );
        assert_eq!(
            parse_soql("SELECT Id Lead").map_err(|e| e.0).err(),
            Some("MALFORMED_QUERY")
        );
        assert!(like("hello world", "hel%w_rld"));
        assert!(!like("hello", "h_"));
    }
}
