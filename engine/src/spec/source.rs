//! A spec file as text: its format, its JSON value (TOML and JSON load to the same value) and
//! an index from JSON pointers to byte spans, so every diagnostic names a line and column.

use crate::diag::{Diagnostic, escape_pointer_token};
use serde_json::Value;
use std::collections::HashMap;
use std::ops::Range;
use std::path::{Path, PathBuf};

/// The two spec syntaxes; both load to the same [`Value`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyntaxFormat {
    /// `.toml`
    Toml,
    /// `.json`
    Json,
}

impl SyntaxFormat {
    /// The format a file's extension names, if any.
    pub fn from_path(path: &Path) -> Option<SyntaxFormat> {
        match path.extension().and_then(|e| e.to_str()) {
            Some("toml") => Some(SyntaxFormat::Toml),
            Some("json") => Some(SyntaxFormat::Json),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Default)]
struct Spans {
    key: Option<Range<usize>>,
    value: Option<Range<usize>>,
}

/// A loaded spec file: text, value and pointer index.
#[derive(Debug, Clone)]
pub struct SourceFile {
    /// Where it was read from.
    pub path: PathBuf,
    /// The text.
    pub text: String,
    /// TOML or JSON.
    pub format: SyntaxFormat,
    /// The document as JSON.
    pub value: Value,
    line_starts: Vec<usize>,
    spans: HashMap<String, Spans>,
    /// Pointers of keys that appear more than once in their object (JSON only; TOML refuses them).
    pub duplicate_keys: Vec<String>,
}

impl SourceFile {
    /// Parse `text`; a syntax error comes back as a placed diagnostic.
    pub fn parse(
        path: impl Into<PathBuf>,
        text: String,
        format: SyntaxFormat,
    ) -> Result<SourceFile, Box<Diagnostic>> {
        let path = path.into();
        let line_starts = line_starts(&text);
        let mut spans = HashMap::new();
        let mut duplicate_keys = Vec::new();
        let value = match format {
            SyntaxFormat::Json => match serde_json::from_str::<Value>(&text) {
                Ok(v) => {
                    duplicate_keys = index_json(&text, &mut spans);
                    v
                }
                Err(e) => {
                    let mut d = Diagnostic::error(
                        "E001",
                        "",
                        format!("invalid JSON: {}", strip_json_position(&e.to_string())),
                    );
                    d.file = path.clone();
                    d.line = e.line().max(1);
                    d.column = e.column().max(1);
                    return Err(Box::new(d));
                }
            },
            SyntaxFormat::Toml => match toml::de::DeTable::parse(&text) {
                Ok(table) => {
                    let mut v = Value::Object(Default::default());
                    toml_to_json(
                        toml::de::DeValue::Table(table.into_inner()),
                        "",
                        &mut v,
                        &mut spans,
                        None,
                    );
                    spans.entry(String::new()).or_default().value = Some(0..text.len());
                    v
                }
                Err(e) => {
                    let mut d = Diagnostic::error(
                        "E001",
                        "",
                        format!("invalid TOML: {}", e.message().trim()),
                    );
                    d.file = path.clone();
                    if let Some(span) = e.span() {
                        let (l, c) = line_col(&line_starts, &text, span.start);
                        d.line = l;
                        d.column = c;
                    }
                    return Err(Box::new(d));
                }
            },
        };
        Ok(SourceFile {
            path,
            text,
            format,
            value,
            line_starts,
            spans,
            duplicate_keys,
        })
    }

    /// Read and parse a file. I/O errors are returned as `Err(Ok(io))`.
    pub fn read(path: &Path) -> Result<SourceFile, ReadError> {
        let format = SyntaxFormat::from_path(path).ok_or_else(|| {
            ReadError::Io(std::io::Error::other(format!(
                "{}: not a .toml or .json file",
                path.display()
            )))
        })?;
        let text = std::fs::read_to_string(path).map_err(|e| {
            ReadError::Io(std::io::Error::new(
                e.kind(),
                format!("{}: {e}", path.display()),
            ))
        })?;
        SourceFile::parse(path, text, format).map_err(ReadError::Syntax)
    }

    /// 1-based (line, column) of the thing `pointer` names: its key when it has one, else its
    /// value; the nearest existing ancestor when the pointer names something absent.
    #[allow(clippy::collapsible_if)]
    pub fn position(&self, pointer: &str) -> (usize, usize) {
        let mut p = pointer.to_string();
        loop {
            if let Some(s) = self.spans.get(&p)
                && let Some(r) = s.key.as_ref().or(s.value.as_ref())
            {
                return line_col(&self.line_starts, &self.text, r.start);
            }
            match p.rfind('/') {
                Some(i) => p.truncate(i),
                None => return (1, 1),
            }
        }
    }

    /// 1-based (line, column) of the *value* at `pointer` (falls back like [`Self::position`]).
    pub fn value_position(&self, pointer: &str) -> (usize, usize) {
        match self.spans.get(pointer).and_then(|s| s.value.clone()) {
            Some(r) => line_col(&self.line_starts, &self.text, r.start),
            None => self.position(pointer),
        }
    }

    /// Fill in file, line and column of a diagnostic from its pointer.
    pub fn place(&self, mut d: Diagnostic) -> Diagnostic {
        d.file = self.path.clone();
        let (l, c) = self.position(&d.pointer);
        d.line = l;
        d.column = c;
        d
    }

    /// Place a diagnostic at the value (not the key) its pointer names.
    pub fn place_value(&self, mut d: Diagnostic) -> Diagnostic {
        d.file = self.path.clone();
        let (l, c) = self.value_position(&d.pointer);
        d.line = l;
        d.column = c;
        d
    }
}

/// Why a spec file could not be read.
#[derive(Debug)]
pub enum ReadError {
    /// Could not be read at all (exit 2).
    Io(std::io::Error),
    /// Read, but not valid TOML/JSON (a diagnostic).
    Syntax(Box<Diagnostic>),
}

fn strip_json_position(s: &str) -> String {
    match s.rfind(" at line ") {
        Some(i) => s[..i].to_string(),
        None => s.to_string(),
    }
}

fn line_starts(text: &str) -> Vec<usize> {
    let mut v = vec![0];
    for (i, b) in text.bytes().enumerate() {
        if b == b'\n' {
            v.push(i + 1);
        }
    }
    v
}

fn line_col(starts: &[usize], text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let line = match starts.binary_search(&offset) {
        Ok(i) => i,
        Err(i) => i.saturating_sub(1),
    };
    let start = starts.get(line).copied().unwrap_or(0);
    let col = text
        .get(start..offset)
        .map(|s| s.chars().count())
        .unwrap_or(0)
        + 1;
    (line + 1, col)
}

fn toml_to_json(
    v: toml::de::DeValue<'_>,
    ptr: &str,
    out: &mut Value,
    spans: &mut HashMap<String, Spans>,
    _k: Option<()>,
) {
    use toml::de::DeValue;
    *out = match v {
        DeValue::String(s) => Value::String(s.into_owned()),
        DeValue::Integer(i) => match i64::from_str_radix(&i.as_str().replace('_', ""), i.radix()) {
            Ok(n) => Value::from(n),
            Err(_) => Value::String(i.to_string()),
        },
        DeValue::Float(f) => {
            let s = f.as_str();
            let n = match s {
                "inf" | "+inf" => f64::INFINITY,
                "-inf" => f64::NEG_INFINITY,
                _ => s.replace('_', "").parse::<f64>().unwrap_or(f64::NAN),
            };
            serde_json::Number::from_f64(n)
                .map(Value::Number)
                .unwrap_or(Value::Null)
        }
        DeValue::Boolean(b) => Value::Bool(b),
        DeValue::Datetime(d) => Value::String(d.to_string()),
        DeValue::Array(items) => {
            let mut arr = Vec::with_capacity(items.len());
            for (i, item) in items.into_iter().enumerate() {
                let p = format!("{ptr}/{i}");
                let span = item.span();
                spans.entry(p.clone()).or_default().value = Some(span);
                let mut slot = Value::Null;
                toml_to_json(item.into_inner(), &p, &mut slot, spans, None);
                arr.push(slot);
            }
            Value::Array(arr)
        }
        DeValue::Table(t) => {
            let mut map = serde_json::Map::new();
            for (k, item) in t.into_iter() {
                let kspan = k.span();
                let key = k.into_inner().into_owned();
                let p = format!("{ptr}/{}", escape_pointer_token(&key));
                let s = spans.entry(p.clone()).or_default();
                s.key = Some(kspan);
                s.value = Some(item.span());
                let mut slot = Value::Null;
                toml_to_json(item.into_inner(), &p, &mut slot, spans, None);
                map.insert(key, slot);
            }
            Value::Object(map)
        }
    };
}

/// Index a JSON text that is known to be valid.
fn index_json(text: &str, spans: &mut HashMap<String, Spans>) -> Vec<String> {
    let mut ix = JsonIndexer {
        b: text.as_bytes(),
        text,
        i: 0,
        spans,
        duplicates: Vec::new(),
    };
    ix.ws();
    ix.value(String::new(), None);
    ix.duplicates
}

struct JsonIndexer<'a, 'm> {
    b: &'a [u8],
    text: &'a str,
    i: usize,
    spans: &'m mut HashMap<String, Spans>,
    duplicates: Vec<String>,
}

impl JsonIndexer<'_, '_> {
    fn ws(&mut self) {
        while self.i < self.b.len() && matches!(self.b[self.i], b' ' | b'\t' | b'\n' | b'\r') {
            self.i += 1;
        }
    }
    fn string_end(&self, start: usize) -> usize {
        let mut j = start + 1;
        while j < self.b.len() {
            match self.b[j] {
                b'\\' => j += 2,
                b'"' => return j + 1,
                _ => j += 1,
            }
        }
        self.b.len()
    }
    fn value(&mut self, ptr: String, key: Option<Range<usize>>) {
        let start = self.i;
        match self.b.get(self.i) {
            Some(b'{') => {
                self.i += 1;
                self.ws();
                if self.b.get(self.i) == Some(&b'}') {
                    self.i += 1;
                } else {
                    loop {
                        self.ws();
                        let ks = self.i;
                        let ke = self.string_end(ks);
                        let k: String =
                            serde_json::from_str(&self.text[ks..ke]).unwrap_or_default();
                        self.i = ke;
                        self.ws();
                        self.i += 1; // ':'
                        self.ws();
                        let child = format!("{ptr}/{}", escape_pointer_token(&k));
                        if self.spans.contains_key(&child) {
                            self.duplicates.push(child.clone());
                        }
                        self.value(child, Some(ks..ke));
                        self.ws();
                        match self.b.get(self.i) {
                            Some(b',') => self.i += 1,
                            _ => {
                                self.i += 1;
                                break;
                            }
                        }
                    }
                }
            }
            Some(b'[') => {
                self.i += 1;
                self.ws();
                if self.b.get(self.i) == Some(&b']') {
                    self.i += 1;
                } else {
                    let mut n = 0;
                    loop {
                        self.ws();
                        self.value(format!("{ptr}/{n}"), None);
                        n += 1;
                        self.ws();
                        match self.b.get(self.i) {
                            Some(b',') => self.i += 1,
                            _ => {
                                self.i += 1;
                                break;
                            }
                        }
                    }
                }
            }
            Some(b'"') => self.i = self.string_end(self.i),
            Some(_) => {
                while self.i < self.b.len()
                    && !matches!(
                        self.b[self.i],
                        b',' | b'}' | b']' | b' ' | b'\t' | b'\n' | b'\r'
                    )
                {
                    self.i += 1;
                }
            }
            None => {}
        }
        let s = self.spans.entry(ptr).or_default();
        s.key = key;
        s.value = Some(start..self.i);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_positions_follow_keys() {
        let text = "{\n  \"a\": {\n    \"b\": [1, {\"c\": true}]\n  }\n}\n".to_string();
        let f = SourceFile::parse("x.json", text, SyntaxFormat::Json).expect("valid");
        assert_eq!(f.position("/a"), (2, 3));
        assert_eq!(f.position("/a/b"), (3, 5));
        assert_eq!(f.position("/a/b/1/c"), (3, 15));
        assert_eq!(f.position("/a/b/1/missing"), (3, 14));
    }

    #[test]
    fn toml_positions_follow_keys() {
        let text = "spec_version = 1\n[connector]\nname = \"x\"\n[objects.contact.fields]\nemail = \"string\"\n".to_string();
        let f = SourceFile::parse("x.toml", text, SyntaxFormat::Toml).expect("valid");
        assert_eq!(f.position("/connector/name"), (3, 1));
        assert_eq!(f.position("/objects/contact/fields/email"), (5, 1));
        assert_eq!(f.value["objects"]["contact"]["fields"]["email"], "string");
    }

    #[test]
    fn syntax_errors_have_positions() {
        let e = SourceFile::parse("x.json", "{\n  \"a\": ,\n}".into(), SyntaxFormat::Json)
            .expect_err("invalid");
        assert_eq!((e.line, e.column), (2, 8));
        let e = SourceFile::parse("x.toml", "a = 1\nb = \n".into(), SyntaxFormat::Toml)
            .expect_err("invalid");
        assert_eq!(e.line, 2);
    }
}
