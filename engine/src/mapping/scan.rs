//! A selective, validating JSON scanner: reads one NDJSON line, checks that it is valid JSON,
//! and captures (as borrowed slices) only the values at the paths a compiled mapping
//! references. Everything else is skipped without allocating.

use crate::expr::{Val, parse_number};
use std::borrow::Cow;

/// A captured value: borrowed text of the input line.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Raw<'a> {
    /// A string: its quoted token, and whether it holds escapes.
    Str {
        /// The token including its quotes.
        quoted: &'a str,
        /// Whether it contains a backslash escape (must be decoded).
        escaped: bool,
    },
    /// A number token.
    Num(&'a str),
    /// `true` / `false`.
    Bool(bool),
    /// `null`.
    Null,
    /// An object or array, as written.
    Compound(&'a str),
}

impl<'a> Raw<'a> {
    /// The value for evaluation (decoding escapes only when present).
    pub fn val(self) -> Val<'a> {
        match self {
            Raw::Str { quoted, escaped } => {
                if escaped {
                    match serde_json::from_str::<String>(quoted) {
                        Ok(s) => Val::Str(Cow::Owned(s)),
                        Err(_) => Val::Absent,
                    }
                } else {
                    Val::Str(Cow::Borrowed(&quoted[1..quoted.len() - 1]))
                }
            }
            Raw::Num(n) => match n.parse::<i64>() {
                // serde_json reads `-0` as the float -0.0 (and writes it back as `-0.0`).
                Ok(0) if n.starts_with('-') => Val::Float(-0.0),
                Ok(i) => Val::Int(i),
                Err(_) => match parse_number(n) {
                    Some(Val::Int(i)) => Val::Int(i),
                    Some(Val::Float(f)) => Val::Float(f),
                    _ => Val::Float(n.parse::<f64>().unwrap_or(f64::MAX)),
                },
            },
            Raw::Bool(b) => Val::Bool(b),
            Raw::Null => Val::Null,
            Raw::Compound(c) => Val::Raw(c),
        }
    }
}

/// A captured value as offsets into its line (no lifetime, so slot buffers are reused).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span {
    kind: SpanKind,
    start: u32,
    end: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SpanKind {
    Str { escaped: bool },
    Num,
    True,
    False,
    Null,
    Compound,
}

impl Span {
    /// The captured value, borrowed from `line` (the line it was scanned from).
    pub fn raw(self, line: &str) -> Raw<'_> {
        let text = line
            .get(self.start as usize..self.end as usize)
            .unwrap_or("null");
        match self.kind {
            SpanKind::Str { escaped } => Raw::Str {
                quoted: text,
                escaped,
            },
            SpanKind::Num => Raw::Num(text),
            SpanKind::True => Raw::Bool(true),
            SpanKind::False => Raw::Bool(false),
            SpanKind::Null => Raw::Null,
            SpanKind::Compound => Raw::Compound(text),
        }
    }
}

/// A trie of the referenced paths: node 0 is the record itself.
#[derive(Debug, Clone, Default)]
pub struct PathTrie {
    nodes: Vec<TrieNode>,
    /// Number of slots (one per distinct path).
    pub slots: usize,
}

#[derive(Debug, Clone, Default)]
struct TrieNode {
    children: Vec<(Box<str>, usize)>,
    slot: Option<usize>,
    /// Every slot at or under this node (cleared when the key appears again).
    subtree: Vec<usize>,
}

impl PathTrie {
    /// Build from dotted paths; slot `i` is `paths[i]`.
    pub fn new(paths: &[String]) -> PathTrie {
        let mut t = PathTrie {
            nodes: vec![TrieNode::default()],
            slots: paths.len(),
        };
        for (slot, p) in paths.iter().enumerate() {
            let mut n = 0;
            t.nodes[0].subtree.push(slot);
            for seg in p.split('.') {
                let next = t.nodes[n]
                    .children
                    .iter()
                    .find(|(k, _)| &**k == seg)
                    .map(|(_, c)| *c);
                n = match next {
                    Some(c) => c,
                    None => {
                        t.nodes.push(TrieNode::default());
                        let c = t.nodes.len() - 1;
                        t.nodes[n].children.push((seg.into(), c));
                        c
                    }
                };
                t.nodes[n].subtree.push(slot);
            }
            t.nodes[n].slot = Some(slot);
        }
        t
    }
}

/// Why a line is not valid JSON (or not an object).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid JSON at column {column}: {message}")]
pub struct ScanError {
    /// 1-based column (byte).
    pub column: usize,
    /// What is wrong.
    pub message: &'static str,
}

const MAX_DEPTH: usize = 128;

/// [`ScanError::message`] of a number too large for a 64-bit float.
pub const NUMBER_OUT_OF_RANGE: &str = "number out of range";

struct Scanner<'a, 't> {
    s: &'a str,
    b: &'a [u8],
    i: usize,
    trie: &'t PathTrie,
    out: &'t mut [Option<Span>],
    depth: usize,
}

/// Scan `line` (one JSON object), filling `out` (one entry per slot; cleared first).
pub fn scan(line: &str, trie: &PathTrie, out: &mut [Option<Span>]) -> Result<(), ScanError> {
    if line.len() >= u32::MAX as usize {
        return Err(ScanError {
            column: 1,
            message: "line too long",
        });
    }
    for o in out.iter_mut() {
        *o = None;
    }
    let mut sc = Scanner {
        s: line,
        b: line.as_bytes(),
        i: 0,
        trie,
        out,
        depth: 0,
    };
    sc.ws();
    if sc.peek() != Some(b'{') {
        return Err(sc.err(if sc.peek().is_none() {
            "empty line"
        } else {
            "a record must be a JSON object"
        }));
    }
    sc.value(Some(0))?;
    sc.ws();
    if sc.i != sc.b.len() {
        return Err(sc.err("trailing characters after the record"));
    }
    Ok(())
}

impl Scanner<'_, '_> {
    fn err(&self, message: &'static str) -> ScanError {
        ScanError {
            column: self.i + 1,
            message,
        }
    }

    #[inline]
    fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }

    #[inline]
    fn ws(&mut self) {
        while let Some(&c) = self.b.get(self.i) {
            if c == b' ' || c == b'\n' || c == b'\t' || c == b'\r' {
                self.i += 1;
            } else {
                break;
            }
        }
    }

    fn span(&self, kind: SpanKind, start: usize) -> Span {
        Span {
            kind,
            start: start as u32,
            end: self.i as u32,
        }
    }

    fn value(&mut self, node: Option<usize>) -> Result<Span, ScanError> {
        self.ws();
        let start = self.i;
        match self.peek() {
            Some(b'{') => {
                self.object(node)?;
                Ok(self.span(SpanKind::Compound, start))
            }
            Some(b'[') => {
                self.array(node)?;
                Ok(self.span(SpanKind::Compound, start))
            }
            Some(b'"') => {
                let escaped = self.string()?;
                Ok(self.span(SpanKind::Str { escaped }, start))
            }
            Some(b't') => self.lit(b"true", SpanKind::True),
            Some(b'f') => self.lit(b"false", SpanKind::False),
            Some(b'n') => self.lit(b"null", SpanKind::Null),
            Some(b'-' | b'0'..=b'9') => {
                self.number()?;
                Ok(self.span(SpanKind::Num, start))
            }
            Some(_) => Err(self.err("expected a value")),
            None => Err(self.err("unexpected end of line")),
        }
    }

    fn lit(&mut self, word: &[u8], kind: SpanKind) -> Result<Span, ScanError> {
        let start = self.i;
        if self.b[self.i..].starts_with(word) {
            self.i += word.len();
            Ok(self.span(kind, start))
        } else {
            Err(self.err("expected a value"))
        }
    }

    fn number(&mut self) -> Result<(), ScanError> {
        let b = self.b;
        let start = self.i;
        if b.get(self.i) == Some(&b'-') {
            self.i += 1;
        }
        let int_start = self.i;
        match b.get(self.i) {
            Some(b'0') => self.i += 1,
            Some(b'1'..=b'9') => {
                while b.get(self.i).is_some_and(u8::is_ascii_digit) {
                    self.i += 1;
                }
            }
            _ => return Err(self.err("invalid number")),
        }
        let int_end = self.i;
        if b.get(self.i) == Some(&b'.') {
            self.i += 1;
            if !b.get(self.i).is_some_and(u8::is_ascii_digit) {
                return Err(self.err("invalid number"));
            }
            while b.get(self.i).is_some_and(u8::is_ascii_digit) {
                self.i += 1;
            }
        }
        let mut exp: i64 = 0;
        if matches!(b.get(self.i), Some(b'e' | b'E')) {
            self.i += 1;
            let negative = b.get(self.i) == Some(&b'-');
            if matches!(b.get(self.i), Some(b'+' | b'-')) {
                self.i += 1;
            }
            if !b.get(self.i).is_some_and(u8::is_ascii_digit) {
                return Err(self.err("invalid number"));
            }
            while let Some(d) = b.get(self.i).filter(|d| d.is_ascii_digit()) {
                exp = (exp * 10 + i64::from(d - b'0')).min(1 << 40);
                self.i += 1;
            }
            if negative {
                exp = -exp;
            }
        }
        // The value is below 10^(integer digits + exponent): only above 10^308 can it be too
        // large for a float, and only then is the token parsed to find out (like serde_json,
        // which refuses the line; `line::out_of_range` names the field).
        let int_digits = if b.get(int_start) == Some(&b'0') {
            0
        } else {
            int_end - int_start
        };
        if int_digits as i64 + exp > 308 {
            let token = &self.s[start..self.i];
            if token.parse::<f64>().map_or(true, f64::is_infinite) {
                self.i = start;
                return Err(self.err(NUMBER_OUT_OF_RANGE));
            }
        }
        Ok(())
    }

    fn hex4(&mut self) -> Result<u16, ScanError> {
        let h = self
            .b
            .get(self.i..self.i + 4)
            .ok_or_else(|| self.err("invalid \\u escape"))?;
        let mut v: u16 = 0;
        for &c in h {
            let d = (c as char)
                .to_digit(16)
                .ok_or_else(|| self.err("invalid \\u escape"))?;
            v = v * 16 + d as u16;
        }
        self.i += 4;
        Ok(v)
    }

    /// Scan a string starting at its opening quote; returns whether it holds escapes.
    fn string(&mut self) -> Result<bool, ScanError> {
        self.i += 1;
        let b = self.b;
        let mut escaped = false;
        loop {
            let Some(&c) = b.get(self.i) else {
                return Err(self.err("unterminated string"));
            };
            match c {
                b'"' => {
                    self.i += 1;
                    return Ok(escaped);
                }
                b'\\' => {
                    escaped = true;
                    self.i += 1;
                    match b.get(self.i) {
                        Some(b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't') => self.i += 1,
                        Some(b'u') => {
                            self.i += 1;
                            let u = self.hex4()?;
                            if (0xD800..0xDC00).contains(&u) {
                                if b.get(self.i..self.i + 2) != Some(b"\\u") {
                                    return Err(self.err("lone surrogate in \\u escape"));
                                }
                                self.i += 2;
                                let l = self.hex4()?;
                                if !(0xDC00..0xE000).contains(&l) {
                                    return Err(self.err("lone surrogate in \\u escape"));
                                }
                            } else if (0xDC00..0xE000).contains(&u) {
                                return Err(self.err("lone surrogate in \\u escape"));
                            }
                        }
                        _ => return Err(self.err("invalid escape")),
                    }
                }
                0..=0x1f => return Err(self.err("control character in string")),
                _ => self.i += 1,
            }
        }
    }

    fn enter(&mut self) -> Result<(), ScanError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(self.err("nesting too deep"));
        }
        self.i += 1;
        Ok(())
    }

    fn child(&self, node: Option<usize>, key: &str) -> Option<usize> {
        let n = &self.trie.nodes[node?];
        n.children
            .iter()
            .find(|(k, _)| &**k == key)
            .map(|(_, c)| *c)
    }

    fn matched(&mut self, child: Option<usize>) -> Result<(), ScanError> {
        let Some(c) = child else {
            self.value(None)?;
            return Ok(());
        };
        let trie = self.trie;
        for &s in &trie.nodes[c].subtree {
            self.out[s] = None;
        }
        let has_children = !trie.nodes[c].children.is_empty();
        let v = self.value(if has_children { Some(c) } else { None })?;
        if let Some(slot) = trie.nodes[c].slot {
            self.out[slot] = Some(v);
        }
        Ok(())
    }

    fn object(&mut self, node: Option<usize>) -> Result<(), ScanError> {
        self.enter()?;
        self.ws();
        if self.peek() == Some(b'}') {
            self.i += 1;
            self.depth -= 1;
            return Ok(());
        }
        loop {
            self.ws();
            if self.peek() != Some(b'"') {
                return Err(self.err("expected a key"));
            }
            let ks = self.i;
            let escaped = self.string()?;
            let child = if node.is_some() {
                let quoted = &self.s[ks..self.i];
                if escaped {
                    match serde_json::from_str::<String>(quoted) {
                        Ok(k) => self.child(node, &k),
                        Err(_) => return Err(self.err("invalid key")),
                    }
                } else {
                    self.child(node, &quoted[1..quoted.len() - 1])
                }
            } else {
                None
            };
            self.ws();
            if self.peek() != Some(b':') {
                return Err(self.err("expected `:`"));
            }
            self.i += 1;
            self.matched(child)?;
            self.ws();
            match self.peek() {
                Some(b',') => self.i += 1,
                Some(b'}') => {
                    self.i += 1;
                    self.depth -= 1;
                    return Ok(());
                }
                _ => return Err(self.err("expected `,` or `}`")),
            }
        }
    }

    fn array(&mut self, node: Option<usize>) -> Result<(), ScanError> {
        self.enter()?;
        self.ws();
        if self.peek() == Some(b']') {
            self.i += 1;
            self.depth -= 1;
            return Ok(());
        }
        let mut idx = 0usize;
        let mut buf = itoa::Buffer::new();
        loop {
            let child = if node.is_some() {
                self.child(node, buf.format(idx))
            } else {
                None
            };
            self.matched(child)?;
            idx += 1;
            self.ws();
            match self.peek() {
                Some(b',') => self.i += 1,
                Some(b']') => {
                    self.i += 1;
                    self.depth -= 1;
                    return Ok(());
                }
                _ => return Err(self.err("expected `,` or `]`")),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(line: &str, paths: &[&str]) -> Result<Vec<Option<Val<'static>>>, ScanError> {
        let paths: Vec<String> = paths.iter().map(|s| s.to_string()).collect();
        let t = PathTrie::new(&paths);
        let mut out = vec![None; t.slots];
        scan(line, &t, &mut out)?;
        Ok(out
            .into_iter()
            .map(|r| r.map(|r| r.raw(line).val().into_owned()))
            .collect())
    }

    #[test]
    fn captures_only_referenced_paths() {
        let got = run(
            r#"{"a": 1, "b": {"c": "x\"y", "d": [1, {"e": true}]}, "f": null, "g": [10, 20]}"#,
            &["a", "b.c", "b.d.1.e", "f", "g.1", "zz", "b"],
        )
        .expect("valid");
        assert_eq!(got[0], Some(Val::Int(1)));
        assert_eq!(got[1], Some(Val::Str("x\"y".into())));
        assert_eq!(got[2], Some(Val::Bool(true)));
        assert_eq!(got[3], Some(Val::Null));
        assert_eq!(got[4], Some(Val::Int(20)));
        assert_eq!(got[5], None);
        assert!(matches!(got[6], Some(Val::Json(_))));
    }

    #[test]
    fn last_duplicate_key_wins_like_serde_json() {
        let got = run(r#"{"a": {"b": 1}, "a": {"c": 2}}"#, &["a.b", "a.c"]).expect("valid");
        assert_eq!(got, vec![None, Some(Val::Int(2))]);
    }

    #[test]
    fn rejects_what_serde_json_rejects() {
        for bad in [
            "",
            "[]",
            "{",
            r#"{"a": 01}"#,
            r#"{"a": "x"} x"#,
            r#"{"a": "\x"}"#,
            r#"{"a": "\ud800"}"#,
            "{\"a\": \"\u{1}\"}",
            r#"{"a": tru}"#,
            r#"{"a": 1,}"#,
            r#"{"a" 1}"#,
            r#"{"a": -}"#,
            r#"{"a": 1.}"#,
        ] {
            assert!(run(bad, &["a"]).is_err(), "{bad:?}");
            assert!(
                serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(bad).is_err(),
                "{bad:?}"
            );
        }
        let deep = format!("{{\"a\": {}{}}}", "[".repeat(200), "]".repeat(200));
        assert!(run(&deep, &["a"]).is_err());
    }

    #[test]
    fn negative_zero_is_the_float_minus_zero_like_serde_json() {
        // Fuzzing found `-0` read as the integer 0 here but as -0.0 by serde_json, so `map`'s
        // two paths wrote `0` and `-0.0` for the same record.
        for (token, want) in [
            ("-0", "-0.0"),
            ("0", "0"),
            ("-0.0", "-0.0"),
            ("-0e5", "-0.0"),
        ] {
            let line = format!("{{\"a\": {token}}}");
            let got = run(&line, &["a"]).expect("valid")[0]
                .clone()
                .and_then(|v| v.to_json())
                .expect("present");
            let serde: serde_json::Value = serde_json::from_str(&line).expect("json");
            assert_eq!(got, serde["a"], "{token}");
            assert_eq!(got.to_string(), want, "{token}");
        }
    }

    #[test]
    fn numbers_too_large_for_a_float_are_refused_like_serde_json_wherever_they_are() {
        // `1e400` used to be read as a null field here while serde_json (and so `run`, and
        // `map` for plans that parse the record) rejected the line.
        let big = "9".repeat(400);
        for (line, refused) in [
            (r#"{"a": 1e400}"#.to_string(), true),
            (r#"{"z": -1E+400}"#.to_string(), true),
            (format!("{{\"z\": [{big}]}}"), true),
            (format!("{{\"z\": {big}.5e-50}}"), true),
            (r#"{"z": 0.0001e99999999999999999999}"#.to_string(), true),
            (r#"{"a": 1.7976931348623157e308}"#.to_string(), false),
            (r#"{"a": 1.8e308}"#.to_string(), true),
            (r#"{"a": 1e-400}"#.to_string(), false),
            (format!("{{\"a\": {big}e-100}}"), false),
            (r#"{"a": 0.000001e310}"#.to_string(), false),
            (r#"{"a": 18446744073709551616}"#.to_string(), false),
        ] {
            let serde = serde_json::from_str::<serde_json::Value>(&line).is_err();
            assert_eq!(serde, refused, "serde_json on {line}");
            let got = run(&line, &["a"]);
            assert_eq!(got.is_err(), refused, "{line}: {got:?}");
            if let Err(e) = got {
                assert_eq!(e.message, NUMBER_OUT_OF_RANGE, "{line}");
            }
        }
        assert_eq!(
            run(r#"{"a": 1e-400}"#, &["a"]).expect("valid")[0],
            Some(Val::Float(0.0))
        );
    }
}
