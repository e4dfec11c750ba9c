//! Tests written inside mapping specs (`tests = [...]`): an input record, the clock, and what
//! the mapping must make of it. [`check`] is what `validate` says about them without running
//! anything (E250–E252); [`run_case`] maps each input with the compiled plan and compares.
//!
//! Comparison: objects exactly (every object the mapping makes is listed, with exactly the
//! listed fields) unless `partial`; numbers by value (`1` equals `1.0`); triggers by name in
//! order; notes by field as a set; a rejection by field and reason text.

use crate::diag::{Diagnostic, Diagnostics, did_you_mean, pointer_join};
use crate::mapping::{CompiledMapping, MapContext, RecordError};
use crate::record::Mapped;
use crate::spec::mapping::{MappingSpec, SpecTest};
use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::{Map, Value};
use std::collections::HashSet;

/// The clock of a test that names none.
pub const DEFAULT_NOW: &str = "2024-01-01T00:00:00Z";

/// The clock of a test (its `now`, else [`DEFAULT_NOW`]).
pub fn test_now(t: &SpecTest) -> Result<DateTime<Utc>, String> {
    let text = t.now.as_deref().unwrap_or(DEFAULT_NOW);
    DateTime::parse_from_rfc3339(text)
        .map(|d| d.with_timezone(&Utc))
        .map_err(|e| format!("`{text}` is not an RFC 3339 timestamp: {e}"))
}

/// Static checks of a mapping spec's tests. `plan`: the compiled mapping, when it compiles
/// (object names are then checked against what it makes).
pub fn check(m: &MappingSpec, plan: Option<&CompiledMapping>) -> Diagnostics {
    let mut out = Diagnostics::default();
    let triggers: Vec<&str> = m
        .crm_config
        .workflow_triggers
        .keys()
        .chain(m.crm_config.workflow_rules.keys())
        .map(String::as_str)
        .collect();
    let objects: Option<Vec<&str>> = plan.map(|p| p.object_names().collect());
    let mut names = HashSet::new();
    for (i, t) in m.tests.iter().enumerate() {
        let at = format!("/tests/{i}");
        if !names.insert(t.name.as_str()) {
            out.push(Diagnostic::error(
                "E252",
                format!("{at}/name"),
                format!("another test is also named `{}`", t.name),
            ));
        }
        if let Err(e) = test_now(t) {
            out.push(
                Diagnostic::error("E250", format!("{at}/now"), e)
                    .with_hint("write e.g. `2024-03-01T09:30:00Z`"),
            );
        }
        let x = &t.expect;
        if x.rejected.is_some()
            && (x.objects.is_some() || x.triggers.is_some() || x.notes.is_some())
        {
            out.push(Diagnostic::error(
                "E252",
                format!("{at}/expect/rejected"),
                "a test expects a rejection and also mapped output (`objects`, `triggers` or `notes`)",
            ));
        }
        if x.rejected.is_none() && x.objects.is_none() && x.triggers.is_none() && x.notes.is_none()
        {
            out.push(
                Diagnostic::error("E252", format!("{at}/expect"), "the test expects nothing")
                    .with_hint("give `objects`, `triggers`, `notes` or `rejected`"),
            );
        }
        if x.partial && x.objects.is_none() {
            out.push(Diagnostic::warning(
                "W250",
                format!("{at}/expect/partial"),
                "`partial` has no effect without `objects`",
            ));
        }
        if let (Some(objs), Some(known)) = (&x.objects, &objects) {
            for name in objs.keys() {
                if !known.contains(&name.as_str()) {
                    out.push(
                        Diagnostic::error(
                            "E251",
                            pointer_join(&format!("{at}/expect/objects"), name),
                            format!("the mapping makes no object `{name}`"),
                        )
                        .with_hint_opt(did_you_mean(name, known.iter().copied())),
                    );
                }
            }
        }
        for (j, name) in x.triggers.iter().flatten().enumerate() {
            if !triggers.contains(&name.as_str()) {
                out.push(
                    Diagnostic::error(
                        "E251",
                        format!("{at}/expect/triggers/{j}"),
                        format!("the mapping has no workflow trigger `{name}`"),
                    )
                    .with_hint_opt(did_you_mean(name, triggers.iter().copied())),
                );
            }
        }
    }
    out
}

/// One difference between what a test expects and what the mapping made.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Mismatch {
    /// Where, in the outcome: `/objects/contact/priority`, `/triggers`, `/rejected`, …
    pub at: String,
    /// What the test expects (absent: the test expects nothing there).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expected: Option<Value>,
    /// What the mapping made (absent: nothing there).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub actual: Option<Value>,
}

/// The outcome of one test.
#[derive(Debug, Clone, Serialize)]
pub struct CaseOutcome {
    /// The test's name.
    pub name: String,
    /// JSON pointer of the test in the spec (`/tests/0`).
    pub pointer: String,
    /// 1-based line and column of the test in the spec file.
    pub line: usize,
    /// Column.
    pub column: usize,
    /// Every difference; empty when the test passed.
    pub mismatches: Vec<Mismatch>,
    /// Why the test could not run (a bad `now`), if it could not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl CaseOutcome {
    /// Whether the test passed.
    pub fn passed(&self) -> bool {
        self.mismatches.is_empty() && self.error.is_none()
    }
}

/// Run one test with a compiled plan.
pub fn run_case(
    plan: &CompiledMapping,
    t: &SpecTest,
    secrets: &dyn crate::secrets::SecretProvider,
    ext: Option<&dyn crate::expr::ExtCalls>,
) -> Result<Vec<Mismatch>, String> {
    let now = test_now(t)?;
    let ctx = MapContext { now, secrets, ext };
    let outcome = plan.apply(&Value::Object(t.input.clone()), &ctx);
    Ok(compare(t, &outcome))
}

/// The differences between a test's expectation and a mapping outcome.
pub fn compare(t: &SpecTest, outcome: &Result<Mapped, RecordError>) -> Vec<Mismatch> {
    let x = &t.expect;
    let mut out = Vec::new();
    match (outcome, &x.rejected) {
        (Err(e), Some(r)) => {
            if let Some(f) = &r.field
                && e.field.as_deref() != Some(f.as_str())
            {
                out.push(Mismatch {
                    at: "/rejected/field".into(),
                    expected: Some(Value::String(f.clone())),
                    actual: e.field.clone().map(Value::String),
                });
            }
            if let Some(s) = &r.reason_contains
                && !e.reason.contains(s.as_str())
            {
                out.push(Mismatch {
                    at: "/rejected/reason".into(),
                    expected: Some(Value::String(format!("… {s} …"))),
                    actual: Some(Value::String(e.reason.clone())),
                });
            }
        }
        (Err(e), None) => out.push(Mismatch {
            at: "/rejected".into(),
            expected: None,
            actual: Some(serde_json::to_value(e).unwrap_or(Value::Null)),
        }),
        (Ok(m), Some(_)) => out.push(Mismatch {
            at: "/rejected".into(),
            expected: Some(Value::String("a rejection".into())),
            actual: Some(serde_json::to_value(&m.objects).unwrap_or(Value::Null)),
        }),
        (Ok(m), None) => {
            if let Some(objs) = &x.objects {
                compare_objects(objs, &m.objects, x.partial, &mut out);
            }
            if let Some(trig) = &x.triggers {
                let fired: Vec<&str> = m.triggers.iter().map(|t| t.name.as_str()).collect();
                if fired != trig.iter().map(String::as_str).collect::<Vec<_>>() {
                    out.push(Mismatch {
                        at: "/triggers".into(),
                        expected: Some(serde_json::json!(trig)),
                        actual: Some(serde_json::json!(fired)),
                    });
                }
            }
            if let Some(notes) = &x.notes {
                let mut want: Vec<&str> = notes.iter().map(String::as_str).collect();
                let mut got: Vec<&str> = m.notes.iter().map(|n| n.field.as_str()).collect();
                want.sort_unstable();
                got.sort_unstable();
                if want != got {
                    out.push(Mismatch {
                        at: "/notes".into(),
                        expected: Some(serde_json::json!(want)),
                        actual: Some(serde_json::json!(got)),
                    });
                }
            }
        }
    }
    out
}

fn compare_objects(
    want: &indexmap::IndexMap<String, Map<String, Value>>,
    got: &indexmap::IndexMap<String, Map<String, Value>>,
    partial: bool,
    out: &mut Vec<Mismatch>,
) {
    for (name, fields) in want {
        let at = pointer_join("/objects", name);
        let Some(actual) = got.get(name) else {
            out.push(Mismatch {
                at,
                expected: Some(Value::Object(fields.clone())),
                actual: None,
            });
            continue;
        };
        for (f, v) in fields {
            match actual.get(f) {
                Some(a) if same(v, a) => {}
                a => out.push(Mismatch {
                    at: pointer_join(&at, f),
                    expected: Some(v.clone()),
                    actual: a.cloned(),
                }),
            }
        }
        if !partial {
            for (f, a) in actual {
                if !fields.contains_key(f) {
                    out.push(Mismatch {
                        at: pointer_join(&at, f),
                        expected: None,
                        actual: Some(a.clone()),
                    });
                }
            }
        }
    }
    if !partial {
        for (name, a) in got {
            if !want.contains_key(name) {
                out.push(Mismatch {
                    at: pointer_join("/objects", name),
                    expected: None,
                    actual: Some(Value::Object(a.clone())),
                });
            }
        }
    }
}

/// JSON equality with numbers compared by value.
fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => {
            x == y || matches!((x.as_f64(), y.as_f64()), (Some(p), Some(q)) if p == q)
        }
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(p, q)| same(p, q))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| same(v, w)))
        }
        _ => a == b,
    }
}

/// A value shown in one line, shortened past `max` characters.
pub fn short(v: &Value, max: usize) -> String {
    let s = v.to_string();
    if s.chars().count() <= max {
        return s;
    }
    let cut: String = s.chars().take(max).collect();
    format!("{cut}…")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::{FieldNote, FiredTrigger};
    use serde_json::json;

    fn case(expect: Value) -> SpecTest {
        serde_json::from_value(json!({"name": "t", "input": {}, "expect": expect})).expect("test")
    }

    fn mapped(objects: Value) -> Mapped {
        Mapped {
            objects: serde_json::from_value(objects).expect("objects"),
            triggers: vec![FiredTrigger {
                name: "hot".into(),
                actions: vec![],
            }],
            notes: vec![FieldNote {
                field: "contact.city".into(),
                pointer: "/x".into(),
                note: "absent".into(),
            }],
        }
    }

    #[test]
    fn exact_comparison_reports_wrong_missing_and_extra_fields_and_objects() {
        let t = case(json!({"objects": {"contact": {"email": "a@x", "n": 1, "gone": true}}}));
        let got = Ok(mapped(
            json!({"contact": {"email": "b@x", "n": 1.0, "extra": 2}, "deal": {"amount": 3}}),
        ));
        let m = compare(&t, &got);
        let at: Vec<&str> = m.iter().map(|m| m.at.as_str()).collect();
        assert_eq!(
            at,
            [
                "/objects/contact/email",
                "/objects/contact/gone",
                "/objects/contact/extra",
                "/objects/deal"
            ]
        );
        assert_eq!(m[1].actual, None);
        assert_eq!(m[2].expected, None);
    }

    #[test]
    fn partial_comparison_ignores_what_is_not_listed() {
        let mut t = case(json!({"objects": {"contact": {"n": 1}}, "partial": true}));
        let got = Ok(mapped(json!({"contact": {"n": 1, "x": 2}, "deal": {}})));
        assert!(compare(&t, &got).is_empty());
        t.expect.partial = false;
        assert_eq!(compare(&t, &got).len(), 2);
    }

    #[test]
    fn triggers_notes_and_rejections_are_compared() {
        let got = Ok(mapped(json!({})));
        assert!(
            compare(
                &case(json!({"triggers": ["hot"], "notes": ["contact.city"]})),
                &got
            )
            .is_empty()
        );
        let m = compare(&case(json!({"triggers": [], "notes": []})), &got);
        assert_eq!(m.len(), 2);
        let m = compare(&case(json!({"rejected": {}})), &got);
        assert_eq!(m[0].at, "/rejected");
        let err: Result<Mapped, RecordError> = Err(RecordError {
            line: None,
            field: Some("contact.email".into()),
            pointer: "/p".into(),
            reason: "not an email".into(),
        });
        let ok = case(json!({"rejected": {"field": "contact.email", "reason_contains": "email"}}));
        assert!(compare(&ok, &err).is_empty());
        let bad = case(json!({"rejected": {"field": "contact.phone", "reason_contains": "phone"}}));
        assert_eq!(compare(&bad, &err).len(), 2);
        assert_eq!(
            compare(&case(json!({"objects": {}})), &err)[0].at,
            "/rejected"
        );
    }
}
