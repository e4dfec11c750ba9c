//! [`Redactor`]: removes every secret value the runtime holds from text that leaves it (errors,
//! reports, stored dead-letter reasons, logs), in the forms a vendor or a plugin is likely to
//! echo it: raw, percent-encoded, base64 (standard and URL-safe, at any byte alignment inside a
//! longer encoded string, as in `Basic` credentials), hex and reversed.

use aho_corasick::{AhoCorasick, MatchKind};
use base64::Engine as _;
use std::borrow::Cow;
use std::sync::Arc;

/// What a redacted secret is replaced with.
pub const REDACTED: &str = "[redacted]";

/// Values shorter than this are only redacted raw: their encodings are a few characters that
/// occur in ordinary text by chance.
const MIN_ENCODED_LEN: usize = 6;
/// Values shorter than this are not redacted at all (one or two characters would shred text).
const MIN_LEN: usize = 3;

/// Finds and replaces secret values and their encodings in text. Built once from the secrets a
/// runtime holds; cheap to clone and to share.
#[derive(Clone, Default)]
pub struct Redactor {
    matcher: Option<Matcher>,
    needles: usize,
}

/// How the needles are found: one automaton, or — should it not build (a limit of the
/// automaton crate) — each needle in turn, longest first, so that a redactor never fails open.
#[derive(Clone)]
enum Matcher {
    Automaton(Arc<AhoCorasick>),
    Plain(Arc<Vec<String>>),
}

impl std::fmt::Debug for Redactor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Redactor")
            .field("needles", &self.needles)
            .finish()
    }
}

impl Redactor {
    /// A redactor for these secret values.
    pub fn new<'a>(secrets: impl IntoIterator<Item = &'a str>) -> Self {
        let mut needles: Vec<String> = Vec::new();
        for s in secrets {
            needles.extend(forms(s));
        }
        needles.sort();
        needles.dedup();
        if needles.is_empty() {
            return Self::default();
        }
        let n = needles.len();
        // Leftmost-longest: an encoding that contains another secret's raw value is replaced
        // whole.
        let matcher = match AhoCorasick::builder()
            .match_kind(MatchKind::LeftmostLongest)
            .build(&needles)
        {
            Ok(a) => Matcher::Automaton(Arc::new(a)),
            Err(_) => {
                needles.sort_by_key(|n| std::cmp::Reverse(n.len()));
                Matcher::Plain(Arc::new(needles))
            }
        };
        Self {
            matcher: Some(matcher),
            needles: n,
        }
    }

    /// Whether it redacts nothing.
    pub fn is_empty(&self) -> bool {
        self.matcher.is_none()
    }

    /// `text` with every secret form replaced by `[redacted]`.
    pub fn redact<'t>(&self, text: &'t str) -> Cow<'t, str> {
        match &self.matcher {
            None => Cow::Borrowed(text),
            Some(Matcher::Automaton(m)) => {
                if !m.is_match(text) {
                    return Cow::Borrowed(text);
                }
                let mut out = String::with_capacity(text.len());
                m.replace_all_with(text, &mut out, |_, _, dst| {
                    dst.push_str(REDACTED);
                    true
                });
                Cow::Owned(out)
            }
            Some(Matcher::Plain(needles)) => {
                let mut out = Cow::Borrowed(text);
                for n in needles.iter() {
                    if out.contains(n.as_str()) {
                        out = Cow::Owned(out.replace(n.as_str(), REDACTED));
                    }
                }
                out
            }
        }
    }

    /// Redact a `String` in place (no copy when nothing matches).
    pub fn redact_in_place(&self, text: &mut String) {
        if let Cow::Owned(s) = self.redact(text) {
            *text = s;
        }
    }

    /// Redact every string inside a JSON value (keys too).
    pub fn redact_json(&self, v: &mut serde_json::Value) {
        if self.is_empty() {
            return;
        }
        match v {
            serde_json::Value::String(s) => self.redact_in_place(s),
            serde_json::Value::Array(a) => a.iter_mut().for_each(|x| self.redact_json(x)),
            serde_json::Value::Object(o) => {
                let taken = std::mem::take(o);
                for (k, mut x) in taken {
                    self.redact_json(&mut x);
                    o.insert(self.redact(&k).into_owned(), x);
                }
            }
            _ => {}
        }
    }
}

/// Every form of `s` that is redacted.
fn forms(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    if s.len() < MIN_LEN {
        return out;
    }
    out.push(s.to_string());
    if s.len() < MIN_ENCODED_LEN {
        return out;
    }
    // Percent-encoded: the path/query form (%20) and the form form (+ for space).
    let pct = url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
    out.push(pct.clone());
    out.push(pct.replace('+', "%20"));
    out.push(percent_all(s, false));
    out.push(percent_all(s, true));
    // Hex, both cases, and the value reversed.
    out.push(hex::encode(s));
    out.push(hex::encode_upper(s));
    out.push(s.chars().rev().collect());
    // Base64 at each of the three byte alignments it can have inside a longer encoded string
    // (`Basic base64(user:secret)`): only the characters made of the secret's bits alone.
    for engine in [
        &base64::engine::general_purpose::STANDARD_NO_PAD,
        &base64::engine::general_purpose::URL_SAFE_NO_PAD,
    ] {
        for k in 0..3usize {
            let mut bytes = vec![0u8; k];
            bytes.extend_from_slice(s.as_bytes());
            let enc = engine.encode(&bytes);
            let first = (8 * k).div_ceil(6);
            let last = (8 * (k + s.len())) / 6; // exclusive: chars fully inside the secret
            if last > first && last - first >= MIN_ENCODED_LEN {
                out.push(enc[first..last].to_string());
            }
        }
    }
    out.retain(|n| n.len() >= MIN_LEN);
    out
}

/// Every byte percent-encoded (`%41%42…`), as some clients encode whole values.
fn percent_all(s: &str, lower: bool) -> String {
    s.bytes()
        .map(|b| {
            if lower {
                format!("%{b:02x}")
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use base64::engine::general_purpose::{STANDARD, URL_SAFE};

    const S: &str = "tok-SECRET/1+2 x";

    fn check(text: &str) {
        let r = Redactor::new([S]);
        let out = r.redact(text);
        assert!(out.contains(REDACTED), "{text} -> {out}");
        for leak in [
            S.to_string(),
            STANDARD.encode(S),
            hex::encode(S),
            url::form_urlencoded::byte_serialize(S.as_bytes()).collect::<String>(),
        ] {
            assert!(!out.contains(&leak), "{text} -> {out} still holds {leak}");
        }
    }

    #[test]
    fn raw_urlencoded_base64_hex_and_reversed_forms_are_redacted() {
        check(&format!("vendor said: invalid token {S} (see docs)"));
        check(&format!(
            "GET /x?token={}",
            url::form_urlencoded::byte_serialize(S.as_bytes()).collect::<String>()
        ));
        check(&format!("token%3D{}", percent_all(S, false)));
        check(&format!("hex {}", hex::encode_upper(S)));
        check(&format!("reversed {}", S.chars().rev().collect::<String>()));
        // Inside a longer base64 string at every alignment, standard and URL-safe.
        for prefix in ["", "u:", "us:", "use:"] {
            let whole = format!("{prefix}{S}");
            let b = STANDARD.encode(&whole);
            let text = format!("Authorization: Basic {b}");
            let out = Redactor::new([S]).redact(&text).into_owned();
            assert!(out.contains(REDACTED), "{prefix}: {out}");
            assert!(!out.contains(&b), "{prefix}: {out}");
            let u = URL_SAFE.encode(&whole);
            assert!(Redactor::new([S]).redact(&u).contains(REDACTED), "{u}");
        }
    }

    #[test]
    fn text_without_secrets_is_borrowed_and_short_values_do_not_shred_text() {
        let r = Redactor::new([S, "ab", "xyz"]);
        assert!(matches!(r.redact("nothing here"), Cow::Borrowed(_)));
        // "ab" is too short to redact; "xyz" only raw.
        assert_eq!(r.redact("about xyz"), "about [redacted]");
        assert!(Redactor::default().is_empty());
    }

    #[test]
    fn json_strings_and_keys_are_redacted() {
        let r = Redactor::new([S]);
        let mut v = serde_json::json!({"message": format!("bad {S}"), S: [S, 1]});
        r.redact_json(&mut v);
        assert!(!v.to_string().contains(S), "{v}");
    }
}
