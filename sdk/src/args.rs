//! Arguments of one mapping-function call, kept as the JSON text the host sent and parsed on
//! demand: a function that reads three fields of a 1 KB record skips the rest without building a
//! `Value` for it (no allocation for skipped keys and values).

use crate::PluginError;
use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, Visitor};
use serde_json::Value;
use std::borrow::Cow;
use std::fmt;

/// The arguments of one call, as JSON text (one text per argument).
#[derive(Debug, Clone, Default)]
pub struct Args {
    raw: Vec<String>,
}

fn bad(i: usize, e: serde_json::Error) -> PluginError {
    PluginError::InvalidInput(format!("argument {i}: {e}"))
}

impl Args {
    /// Wraps the JSON texts of the arguments.
    pub fn new(raw: Vec<String>) -> Args {
        Args { raw }
    }

    /// Number of arguments.
    pub fn len(&self) -> usize {
        self.raw.len()
    }

    /// Whether there are no arguments.
    pub fn is_empty(&self) -> bool {
        self.raw.is_empty()
    }

    /// The JSON text of argument `i`.
    pub fn raw(&self, i: usize) -> Option<&str> {
        self.raw.get(i).map(String::as_str)
    }

    fn text(&self, i: usize) -> &str {
        self.raw(i).unwrap_or("null")
    }

    /// Argument `i` parsed into a `Value` (null when missing).
    pub fn value(&self, i: usize) -> Result<Value, PluginError> {
        serde_json::from_str(self.text(i))
            .map_err(|e| PluginError::InvalidInput(format!("argument {i} is not valid json: {e}")))
    }

    /// Every argument parsed into a `Value`.
    pub fn values(&self) -> Result<Vec<Value>, PluginError> {
        (0..self.raw.len()).map(|i| self.value(i)).collect()
    }

    /// Argument `i` deserialised into `T` (a missing argument reads as null). `T` may borrow from
    /// the argument (`&'a str`, or `Cow<'a, str>` with `#[serde(borrow)]`); fields `T` does not
    /// name are skipped without being built.
    pub fn parse<'a, T: serde::Deserialize<'a>>(&'a self, i: usize) -> Result<T, PluginError> {
        serde_json::from_str(self.text(i)).map_err(|e| bad(i, e))
    }

    /// Argument `i` if it is a string (borrowed unless it has escapes); none for null, a missing
    /// argument or any other type.
    pub fn str(&self, i: usize) -> Result<Option<Cow<'_, str>>, PluginError> {
        let text = self.text(i);
        if !text.trim_start().starts_with('"') {
            return Ok(None);
        }
        let mut de = serde_json::Deserializer::from_str(text);
        let s = de.deserialize_str(CowStr).map_err(|e| bad(i, e))?;
        de.end().map_err(|e| bad(i, e))?;
        Ok(Some(s))
    }

    /// The members `names` of object argument `i`, in the order asked (none when absent; all
    /// none when the argument is null or missing). Other members are skimmed (their extent found,
    /// nothing built or validated: the host only sends JSON it serialised itself); the members
    /// returned are parsed and validated. When a key repeats, the last one wins (as when the
    /// argument is parsed into a `Value`).
    pub fn fields<const N: usize>(
        &self,
        i: usize,
        names: [&str; N],
    ) -> Result<[Option<Value>; N], PluginError> {
        let text = self.text(i);
        // Fast path: skim the object for the members' byte ranges, parse only those. Anything
        // unusual (an escaped key, malformed text) takes the serde path below, which also
        // produces the error messages.
        let mut ranges = [None; N];
        if crate::skim::member_ranges(text, &names, &mut ranges).is_some() {
            let mut found: [Option<Value>; N] = std::array::from_fn(|_| None);
            let mut all = true;
            for (slot, range) in found.iter_mut().zip(ranges) {
                if let Some((start, end)) = range {
                    // A string without escapes or control characters is taken as it is;
                    // anything else goes through serde_json (which validates it).
                    if let Some(s) = plain_string(text, start, end) {
                        *slot = Some(Value::String(s.to_owned()));
                        continue;
                    }
                    match text.get(start..end).map(serde_json::from_str) {
                        Some(Ok(v)) => *slot = Some(v),
                        _ => all = false,
                    }
                }
            }
            if all {
                return Ok(found);
            }
        }
        let mut de = serde_json::Deserializer::from_str(text);
        let found = de.deserialize_any(Pick { names }).map_err(|e| bad(i, e))?;
        de.end().map_err(|e| bad(i, e))?;
        Ok(found)
    }
}

/// The contents of `text[start..end]` when that is a JSON string with no escapes and no control
/// characters (so its text is its value).
fn plain_string(text: &str, start: usize, end: usize) -> Option<&str> {
    let inner = text.get(start..end)?.strip_prefix('"')?.strip_suffix('"')?;
    inner
        .bytes()
        .all(|c| c != b'\\' && c != b'"' && c >= 0x20)
        .then_some(inner)
}

struct CowStr;

impl<'de> Visitor<'de> for CowStr {
    type Value = Cow<'de, str>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string")
    }

    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(Cow::Borrowed(v))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Cow::Owned(v.to_owned()))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
        Ok(Cow::Owned(v))
    }
}

/// Visits an object, keeping the values of the named members only.
struct Pick<'n, const N: usize> {
    names: [&'n str; N],
}

/// Which of the wanted names a key is (none: skip its value). Never allocates.
struct KeyIndex<'a, 'n, const N: usize>(&'a [&'n str; N]);

impl<'de, const N: usize> DeserializeSeed<'de> for KeyIndex<'_, '_, N> {
    type Value = Option<usize>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de, const N: usize> Visitor<'de> for KeyIndex<'_, '_, N> {
    type Value = Option<usize>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object key")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(self.0.iter().position(|n| *n == v))
    }
}

impl<'de, const N: usize> Visitor<'de> for Pick<'_, N> {
    type Value = [Option<Value>; N];

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object or null")
    }

    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(std::array::from_fn(|_| None))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut found: [Option<Value>; N] = std::array::from_fn(|_| None);
        while let Some(key) = map.next_key_seed(KeyIndex(&self.names))? {
            match key {
                Some(k) => found[k] = Some(map.next_value()?),
                None => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(found)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn args(values: &[Value]) -> Args {
        Args::new(values.iter().map(Value::to_string).collect())
    }

    #[test]
    fn fields_picks_named_members_and_skips_the_rest() {
        let a = args(&[json!({
            "skip": {"deep": [1, 2, {"x": "y"}]},
            "email": "ada@example.com",
            "n": 3,
            "email2": "no",
            "tags": ["a"],
            "n": 4
        })]);
        let [email, n, missing] = a.fields(0, ["email", "n", "missing"]).expect("fields");
        assert_eq!(email, Some(json!("ada@example.com")));
        assert_eq!(n, Some(json!(4)), "last duplicate wins, like Value");
        assert_eq!(missing, None);
        assert_eq!(a.fields(1, ["x"]).expect("missing arg"), [None]);
        let err = args(&[json!([1])])
            .fields(0, ["x"])
            .expect_err("not an object");
        assert!(matches!(err, PluginError::InvalidInput(m) if m.starts_with("argument 0:")));
    }

    #[test]
    fn fields_skims_every_json_shape() {
        let text = r#" { "a" : [1, {"b": "}]\"{["}, "x\\"], "e\u0073c": 1,
            "s": "q\"uo\\te\u00e9 \\", "n": -1.5e3, "t": true, "z": null, "o": {},
            "l": [], "want": {"k": ["v", 2]}, "last": "end" } "#;
        let a = Args::new(vec![text.into()]);
        let [want, s, n, last, a0] = a
            .fields(0, ["want", "s", "n", "last", "a"])
            .expect("fields");
        assert_eq!(want, Some(json!({"k": ["v", 2]})));
        assert_eq!(s, Some(json!("q\"uo\\te\u{e9} \\")));
        assert_eq!(n, Some(json!(-1500.0)));
        assert_eq!(last, Some(json!("end")));
        assert_eq!(a0, Some(json!([1, {"b": "}]\"{["}, "x\\"])));
        // An escaped key takes the serde path and still matches.
        let [esc] = a.fields(0, ["esc"]).expect("escaped key");
        assert_eq!(esc, Some(json!(1)));
        let empty = Args::new(vec![" {} ".into(), " null ".into()]);
        assert_eq!(empty.fields(0, ["a"]).expect("empty"), [None]);
        assert_eq!(empty.fields(1, ["a"]).expect("null"), [None]);
        // The fast path and the serde path agree on every prefix of a record.
        let full = json!({"p": "x", "q": [1, 2], "r": {"s": "t"}, "u": "v"}).to_string();
        for cut in 0..full.len() {
            let a = Args::new(vec![full[..cut].to_string()]);
            assert!(a.fields(0, ["p", "u"]).is_err(), "prefix {cut} accepted");
        }
    }

    #[test]
    fn fields_reports_broken_json() {
        let a = Args::new(vec![r#"{"a": 1, "b": }"#.into()]);
        assert!(matches!(
            a.fields(0, ["a"]),
            Err(PluginError::InvalidInput(_))
        ));
    }

    #[test]
    fn parse_borrows_and_ignores_unknown_fields() {
        #[derive(serde::Deserialize)]
        struct Contact<'a> {
            email: &'a str,
            #[serde(borrow)]
            name: Cow<'a, str>,
        }
        let a = args(&[json!({"email": "a@b.c", "name": "Ada \"L\"", "other": [1, 2]})]);
        let c: Contact = a.parse(0).expect("parse");
        assert_eq!(c.email, "a@b.c");
        assert_eq!(c.name, "Ada \"L\"");
        assert!(
            matches!(c.name, Cow::Owned(_)),
            "escaped text is unescaped into an owned string"
        );
        let none: Option<Contact> = a.parse(3).expect("missing arg is null");
        assert!(none.is_none());
    }

    #[test]
    fn str_and_values() {
        let a = args(&[json!("plain"), json!("tab\t"), json!(5), Value::Null]);
        assert!(matches!(a.str(0), Ok(Some(Cow::Borrowed("plain")))));
        assert_eq!(a.str(1).expect("str").as_deref(), Some("tab\t"));
        assert!(a.str(2).expect("number").is_none());
        assert!(a.str(3).expect("null").is_none());
        assert!(a.str(9).expect("missing").is_none());
        assert_eq!(
            a.values().expect("values"),
            vec![json!("plain"), json!("tab\t"), json!(5), Value::Null]
        );
        let bad = Args::new(vec!["{".into()]);
        assert!(
            matches!(bad.value(0), Err(PluginError::InvalidInput(m)) if m.contains("not valid json"))
        );
    }
}
