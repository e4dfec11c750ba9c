//! Salesforce's SOQL subset: the tokenizer, the parser, record matching, and the query
//! endpoints with `nextRecordsUrl` paging (`Sforce-Query-Options: batchSize`).

use super::super::state::Shared;
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

#[derive(Debug, Clone)]
pub(super) struct Soql {
    fields: Vec<String>,
    object: &'static ObjectDef,
    conds: Vec<Cond>,
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
    let malformed = |m: String| ("MALFORMED_QUERY", m);
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
        match object.field(f) {
            Some((n, _)) => canon.push(n),
            None => {
                return Err((
                    "INVALID_FIELD",
                    format!(
                        "No such column '{f}' on entity '{}'. If you are attempting to use a custom field, be sure to append the '__c' after the custom field name.",
                        object.name
                    ),
                ));
            }
        }
    }
    let mut conds = Vec::new();
    if p.keyword("WHERE") {
        loop {
            let f = p.word("a field name").map_err(malformed)?;
            let (field, _) = object.field(&f).ok_or((
                "INVALID_FIELD",
                format!("No such column '{f}' on entity '{}'", object.name),
            ))?;
            let (op, values) = if p.keyword("NOT") {
                if !p.keyword("IN") {
                    return Err(malformed("expecting IN after NOT".into()));
                }
                ("NOT IN".to_string(), list(&mut p).map_err(malformed)?)
            } else if p.keyword("IN") {
                ("IN".to_string(), list(&mut p).map_err(malformed)?)
            } else if p.keyword("LIKE") {
                ("LIKE".to_string(), vec![p.literal().map_err(malformed)?])
            } else {
                match p.next() {
                    Some(Tok::Sym(s))
                        if ["=", "!=", "<", "<=", ">", ">="].contains(&s.as_str()) =>
                    {
                        (s, vec![p.literal().map_err(malformed)?])
                    }
                    other => return Err(malformed(format!("unexpected token: {other:?}"))),
                }
            };
            conds.push(Cond { field, op, values });
            if p.keyword("AND") {
                continue;
            }
            if matches!(p.peek(), Some(Tok::Word(w)) if w.eq_ignore_ascii_case("OR")) {
                return Err(malformed(
                    "OR is not supported by the sandbox's SOQL subset".into(),
                ));
            }
            break;
        }
    }
    let mut order = None;
    if p.keyword("ORDER") {
        if !p.keyword("BY") {
            return Err(malformed("expecting BY after ORDER".into()));
        }
        let f = p.word("a field name").map_err(malformed)?;
        let (field, _) = object.field(&f).ok_or((
            "INVALID_FIELD",
            format!("No such column '{f}' on entity '{}'", object.name),
        ))?;
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
        conds,
        order,
        limit,
        offset,
    })
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

pub(super) fn cond_matches(rec: &Value, c: &Cond) -> bool {
    let actual = rec.get(&c.field).cloned().unwrap_or(Value::Null);
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
                .filter(|r| soql.conds.iter().all(|c| cond_matches(r, c)))
                .cloned()
                .collect()
        })
        .unwrap_or_default();
    if let Some((f, desc)) = &soql.order {
        hits.sort_by(|a, b| {
            let x = scalar_text(a.get(f).unwrap_or(&Value::Null));
            let y = scalar_text(b.get(f).unwrap_or(&Value::Null));
            let o = cmp_loose(&x, &y);
            if *desc { o.reverse() } else { o }
        });
    }
    let rows: Vec<Value> = hits
        .iter()
        .skip(soql.offset)
        .take(soql.limit.unwrap_or(usize::MAX))
        .map(|r| render(def, r, Some(&soql.fields)))
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
        assert_eq!(q.conds.len(), 2);
        assert_eq!(q.limit, Some(5));
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
