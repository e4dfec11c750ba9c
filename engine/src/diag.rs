//! Diagnostics: every problem found in a spec, with its file, position, JSON pointer, stable
//! code, cause and hint, rendered for humans, machines (JSON) or GitHub Actions annotations.

use serde::Serialize;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// How serious a diagnostic is. Only errors fail a run (warnings do with `--deny-warnings`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Fails validation.
    Error,
    /// Probably a mistake; fails only with `--deny-warnings`.
    Warning,
    /// Information about how the engine reads the spec.
    Note,
}

impl Severity {
    /// The lowercase name used in every output format.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Error => "error",
            Severity::Warning => "warning",
            Severity::Note => "note",
        }
    }
}

/// One problem in one spec file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Diagnostic {
    /// Error, warning or note.
    pub severity: Severity,
    /// Stable code, e.g. `E100`; documented in `docs/diagnostics.md`.
    pub code: &'static str,
    /// The cause, lowercase, without a trailing period.
    pub message: String,
    /// File the problem is in.
    pub file: PathBuf,
    /// 1-based line.
    pub line: usize,
    /// 1-based column (in characters).
    pub column: usize,
    /// JSON pointer (RFC 6901) into the document.
    pub pointer: String,
    /// How to fix it, e.g. "did you mean `field_mappings`?".
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hint: Option<String>,
}

impl Diagnostic {
    /// A diagnostic not yet placed in a file (see [`crate::spec::SourceFile::place`]).
    pub fn new(
        severity: Severity,
        code: &'static str,
        pointer: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        Diagnostic {
            severity,
            code,
            message: message.into(),
            file: PathBuf::new(),
            line: 1,
            column: 1,
            pointer: pointer.into(),
            hint: None,
        }
    }

    /// An error at `pointer`.
    pub fn error(
        code: &'static str,
        pointer: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        Self::new(Severity::Error, code, pointer, message)
    }

    /// A warning at `pointer`.
    pub fn warning(
        code: &'static str,
        pointer: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        Self::new(Severity::Warning, code, pointer, message)
    }

    /// A note at `pointer`.
    pub fn note(
        code: &'static str,
        pointer: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        Self::new(Severity::Note, code, pointer, message)
    }

    /// Attach a hint.
    pub fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    /// Attach a hint when there is one.
    pub fn with_hint_opt(mut self, hint: Option<String>) -> Self {
        self.hint = hint;
        self
    }
}

/// A list of diagnostics, sorted by file, position and code when rendered.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct Diagnostics(pub Vec<Diagnostic>);

impl Diagnostics {
    /// Add one.
    pub fn push(&mut self, d: Diagnostic) {
        self.0.push(d);
    }
    /// Whether any error is present.
    pub fn has_errors(&self) -> bool {
        self.0.iter().any(|d| d.severity == Severity::Error)
    }
    /// Whether any warning is present.
    pub fn has_warnings(&self) -> bool {
        self.0.iter().any(|d| d.severity == Severity::Warning)
    }
    /// Number of diagnostics of a severity.
    pub fn count(&self, s: Severity) -> usize {
        self.0.iter().filter(|d| d.severity == s).count()
    }
    /// Whether empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
    /// Sort deterministically: file, line, column, severity, code, message.
    pub fn sort(&mut self) {
        self.0.sort_by(|a, b| {
            (&a.file, a.line, a.column, a.severity, a.code, &a.message)
                .cmp(&(&b.file, b.line, b.column, b.severity, b.code, &b.message))
        });
        self.0.dedup();
    }
    /// Extend with another list.
    pub fn extend(&mut self, other: Diagnostics) {
        self.0.extend(other.0);
    }
}

impl std::fmt::Display for Diagnostics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&render_human(self, None))
    }
}

/// Output formats of `switchyard validate`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// rustc-like text.
    Human,
    /// One JSON document: `{"diagnostics": [...], "summary": {...}}`.
    Json,
    /// GitHub Actions workflow commands (`::error file=…,line=…::…`).
    Github,
}

fn display_path(p: &Path, base: Option<&Path>) -> String {
    let p = match base {
        Some(b) => p.strip_prefix(b).unwrap_or(p),
        None => p,
    };
    p.display().to_string()
}

/// Render as rustc-like text. `base` makes file paths relative.
pub fn render_human(diags: &Diagnostics, base: Option<&Path>) -> String {
    let mut out = String::new();
    for d in &diags.0 {
        let _ = writeln!(out, "{}[{}]: {}", d.severity.as_str(), d.code, d.message);
        let ptr = if d.pointer.is_empty() {
            "/".to_string()
        } else {
            d.pointer.clone()
        };
        let _ = writeln!(
            out,
            "  --> {}:{}:{} (at {})",
            display_path(&d.file, base),
            d.line,
            d.column,
            ptr
        );
        if let Some(h) = &d.hint {
            let _ = writeln!(out, "   = help: {h}");
        }
    }
    out
}

/// Render as one JSON document.
pub fn render_json(diags: &Diagnostics, base: Option<&Path>) -> String {
    let items: Vec<serde_json::Value> = diags
        .0
        .iter()
        .map(|d| {
            let mut v = serde_json::json!({
                "severity": d.severity.as_str(),
                "code": d.code,
                "message": d.message,
                "file": display_path(&d.file, base),
                "line": d.line,
                "column": d.column,
                "pointer": d.pointer,
            });
            if let (Some(h), Some(obj)) = (&d.hint, v.as_object_mut()) {
                obj.insert("hint".into(), serde_json::Value::String(h.clone()));
            }
            v
        })
        .collect();
    let doc = serde_json::json!({
        "diagnostics": items,
        "summary": {
            "errors": diags.count(Severity::Error),
            "warnings": diags.count(Severity::Warning),
            "notes": diags.count(Severity::Note),
        }
    });
    let mut s = serde_json::to_string_pretty(&doc).unwrap_or_default();
    s.push('\n');
    s
}

fn gh_escape_data(s: &str) -> String {
    s.replace('%', "%25")
        .replace('\r', "%0D")
        .replace('\n', "%0A")
}

fn gh_escape_prop(s: &str) -> String {
    gh_escape_data(s).replace(':', "%3A").replace(',', "%2C")
}

/// Render as GitHub Actions annotations.
pub fn render_github(diags: &Diagnostics, base: Option<&Path>) -> String {
    let mut out = String::new();
    for d in &diags.0 {
        let level = match d.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
            Severity::Note => "notice",
        };
        let mut msg = format!(
            "{} (at {})",
            d.message,
            if d.pointer.is_empty() {
                "/"
            } else {
                &d.pointer
            }
        );
        if let Some(h) = &d.hint {
            msg.push_str(&format!("\nhelp: {h}"));
        }
        let _ = writeln!(
            out,
            "::{level} file={},line={},col={},title={}::{}",
            gh_escape_prop(&display_path(&d.file, base)),
            d.line,
            d.column,
            gh_escape_prop(d.code),
            gh_escape_data(&msg)
        );
    }
    out
}

/// Render in the chosen format.
pub fn render(diags: &Diagnostics, format: Format, base: Option<&Path>) -> String {
    match format {
        Format::Human => render_human(diags, base),
        Format::Json => render_json(diags, base),
        Format::Github => render_github(diags, base),
    }
}

/// The nearest of `candidates` to `word`, for "did you mean" hints.
pub fn did_you_mean<'a, I>(word: &str, candidates: I) -> Option<String>
where
    I: IntoIterator<Item = &'a str>,
{
    closest(word, candidates).map(|c| format!("did you mean `{c}`?"))
}

/// The candidate closest to `word` (case-insensitive Jaro–Winkler and Levenshtein), if any is
/// close enough to be a likely misspelling; `word` itself is never returned.
pub fn closest<'a, I>(word: &str, candidates: I) -> Option<&'a str>
where
    I: IntoIterator<Item = &'a str>,
{
    let mut best: Option<(f64, &str)> = None;
    for c in candidates {
        if c == word {
            continue;
        }
        let score = strsim::jaro_winkler(&word.to_lowercase(), &c.to_lowercase());
        let lev = strsim::levenshtein(&word.to_lowercase(), &c.to_lowercase());
        let close =
            score >= 0.85 || (lev <= 2 && c.len() > 2) || (lev <= word.len() / 3 && lev <= 4);
        if close && best.is_none_or(|(s, _)| score > s) {
            best = Some((score, c));
        }
    }
    best.map(|(_, c)| c)
}

/// Escape one JSON pointer token (RFC 6901).
pub fn escape_pointer_token(t: &str) -> String {
    t.replace('~', "~0").replace('/', "~1")
}

/// Append a token to a pointer.
pub fn pointer_join(base: &str, token: &str) -> String {
    format!("{base}/{}", escape_pointer_token(token))
}

/// A short reason for a JSONPath parse error, with its column.
pub fn jsonpath_error_text(text: &str) -> String {
    let col = text
        .split("-->")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .and_then(|lc| lc.split(':').nth(1));
    match col {
        Some(c) => format!("syntax error at column {c}"),
        None => text.lines().next().unwrap_or_default().to_string(),
    }
}
