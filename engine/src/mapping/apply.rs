//! Applying a compiled mapping to one record: evaluation of the plan, type coercion, and the
//! two outputs (an NDJSON line written into a reused buffer, or a [`Mapped`]).

use super::scan::{self, Span};
use super::{CompiledMapping, FieldPlan, MapContext, RecordError, Src, Tree, TriggerPlan};
use crate::expr::{EvalCtx, Val, float_text, parse_number};
use crate::record::{FieldNote, FiredTrigger, Mapped};
use crate::spec::FieldType;
use crate::template::Part;
use serde_json::{Map, Value};
use std::borrow::Cow;

/// Buffers reused from one record to the next.
#[derive(Debug, Default)]
pub struct Scratch {
    slots: Vec<Option<Span>>,
}

/// What happened to one input line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LineOutcome {
    /// The output line was appended.
    Mapped,
    /// The line was blank and skipped.
    Blank,
}

/// A record being mapped: a scanned line, or a parsed value.
enum Rec<'a> {
    Line {
        line: &'a str,
        slots: &'a [Option<Span>],
    },
    Value(&'a Value),
}

struct Fail<'a> {
    ptr: Option<&'a str>,
    reason: String,
}

type R<'a, T> = Result<T, Fail<'a>>;

/// What evaluation reads besides the record: the clock and the plugin-function runner.
pub(crate) struct Ectx<'c> {
    pub base: EvalCtx,
    pub ext: Option<&'c dyn crate::expr::ExtCalls>,
}

fn fail<'a>(reason: String) -> Fail<'a> {
    Fail { ptr: None, reason }
}

impl<'a> Rec<'a> {
    fn get(&self, m: &CompiledMapping, slot: usize) -> Val<'a> {
        match self {
            Rec::Line { line, slots } => match slots.get(slot).copied().flatten() {
                Some(s) => s.raw(line).val(),
                None => Val::Absent,
            },
            Rec::Value(v) => {
                let mut cur: &'a Value = v;
                for seg in &m.segs[slot] {
                    cur = match cur {
                        Value::Object(o) => match o.get(seg.as_str()) {
                            Some(x) => x,
                            None => return Val::Absent,
                        },
                        Value::Array(a) => match seg.parse::<usize>().ok().and_then(|i| a.get(i)) {
                            Some(x) => x,
                            None => return Val::Absent,
                        },
                        _ => return Val::Absent,
                    };
                }
                Val::from_json(cur)
            }
        }
    }

    fn value(&self) -> Option<&'a Value> {
        match self {
            Rec::Value(v) => Some(v),
            Rec::Line { .. } => None,
        }
    }
}

trait Sink<'a> {
    fn begin(&mut self, name: &'a str, key_json: &'a str);
    fn field(&mut self, f: &'a FieldPlan, v: Val<'a>);
    fn end(&mut self);
    fn triggers_begin(&mut self);
    fn trigger(&mut self, t: &'a TriggerPlan);
    /// A configured field (`label`) that resolved to nothing, and why.
    fn note(&mut self, label: &str, pointer: &str, why: &str);
}

struct LineSink<'o> {
    out: &'o mut Vec<u8>,
    obj_start: usize,
    nfields: usize,
    nobjs: usize,
    ntrig: usize,
    /// `{"field":…}` entries of the record's notes, written after the triggers.
    notes: Vec<u8>,
}

impl<'a> Sink<'a> for LineSink<'_> {
    fn begin(&mut self, _: &'a str, key_json: &'a str) {
        self.obj_start = self.out.len();
        if self.nobjs > 0 {
            self.out.push(b',');
        }
        self.out.extend_from_slice(key_json.as_bytes());
        self.out.push(b'{');
        self.nfields = 0;
    }
    fn field(&mut self, f: &'a FieldPlan, v: Val<'a>) {
        if self.nfields > 0 {
            self.out.push(b',');
        }
        self.out.extend_from_slice(f.key_json.as_bytes());
        write_val(self.out, &v);
        self.nfields += 1;
    }
    fn end(&mut self) {
        if self.nfields == 0 {
            self.out.truncate(self.obj_start);
        } else {
            self.out.push(b'}');
            self.nobjs += 1;
        }
    }
    fn triggers_begin(&mut self) {
        self.out.extend_from_slice(b"},\"triggers\":[");
    }
    fn trigger(&mut self, t: &'a TriggerPlan) {
        if self.ntrig > 0 {
            self.out.push(b',');
        }
        self.out.extend_from_slice(t.name_json.as_bytes());
        self.ntrig += 1;
    }
    fn note(&mut self, label: &str, pointer: &str, why: &str) {
        if !self.notes.is_empty() {
            self.notes.push(b',');
        }
        self.notes.extend_from_slice(b"{\"field\":");
        write_str(&mut self.notes, label);
        self.notes.extend_from_slice(b",\"pointer\":");
        write_str(&mut self.notes, pointer);
        self.notes.extend_from_slice(b",\"note\":");
        write_str(&mut self.notes, why);
        self.notes.push(b'}');
    }
}

struct MapSink {
    mapped: Mapped,
    current: Option<(String, Map<String, Value>)>,
}

impl<'a> Sink<'a> for MapSink {
    fn begin(&mut self, name: &'a str, _: &'a str) {
        self.current = Some((name.to_string(), Map::new()));
    }
    fn field(&mut self, f: &'a FieldPlan, v: Val<'a>) {
        if let (Some((_, m)), Some(j)) = (&mut self.current, v.to_json()) {
            m.insert(f.name.clone(), j);
        }
    }
    fn end(&mut self) {
        if let Some((name, m)) = self.current.take()
            && !m.is_empty()
        {
            self.mapped.objects.insert(name, m);
        }
    }
    fn triggers_begin(&mut self) {}
    fn trigger(&mut self, t: &'a TriggerPlan) {
        self.mapped.triggers.push(FiredTrigger {
            name: t.name.clone(),
            actions: t.actions.clone(),
        });
    }
    fn note(&mut self, label: &str, pointer: &str, why: &str) {
        self.mapped.notes.push(FieldNote {
            field: label.to_string(),
            pointer: pointer.to_string(),
            note: why.to_string(),
        });
    }
}

/// Notes of a payload template being evaluated: (label, pointer, reason) per leaf that
/// gave nothing.
type TreeNotes<'a> = Vec<(&'a str, &'a str, String)>;

/// Write a value as compact JSON (the same bytes `serde_json` writes).
pub(crate) fn write_val(out: &mut Vec<u8>, v: &Val) {
    match v {
        Val::Absent | Val::Null => out.extend_from_slice(b"null"),
        Val::Bool(true) => out.extend_from_slice(b"true"),
        Val::Bool(false) => out.extend_from_slice(b"false"),
        Val::Int(i) => out.extend_from_slice(itoa::Buffer::new().format(*i).as_bytes()),
        Val::Float(f) => out.extend_from_slice(float_text(*f).as_bytes()),
        Val::Str(s) => write_str(out, s),
        Val::Raw(r) => match serde_json::from_str::<Value>(r) {
            Ok(v) => {
                let _ = serde_json::to_writer(&mut *out, &v);
            }
            Err(_) => out.extend_from_slice(b"null"),
        },
        Val::Json(j) => {
            let _ = serde_json::to_writer(&mut *out, j.as_ref());
        }
    }
}

fn write_str(out: &mut Vec<u8>, s: &str) {
    let clean = s.bytes().all(|b| b >= 0x20 && b != b'"' && b != b'\\');
    if clean {
        out.reserve(s.len() + 2);
        out.push(b'"');
        out.extend_from_slice(s.as_bytes());
        out.push(b'"');
    } else {
        let _ = serde_json::to_writer(&mut *out, s);
    }
}

fn is_date(s: &str) -> bool {
    s.len() == 10 && chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d").is_ok()
}

/// Give a value its field's type; `Err` with the reason when it cannot take it.
pub(crate) fn coerce<'a>(v: Val<'a>, ty: FieldType, options: &[String]) -> Result<Val<'a>, String> {
    if v.is_nothing() {
        return Ok(Val::Absent);
    }
    let compound = matches!(v, Val::Raw(_) | Val::Json(_));
    match ty {
        FieldType::Any => Ok(v),
        FieldType::Object | FieldType::Array => {
            let want = if ty == FieldType::Object {
                "object"
            } else {
                "array"
            };
            if v.kind_name() == want {
                Ok(v)
            } else {
                Err(format!("{} is not an {want}", v.describe()))
            }
        }
        FieldType::String => match v {
            Val::Str(_) => Ok(v),
            _ if compound => Err(format!("{} {} is not text", v.kind_name(), v.describe())),
            other => Ok(Val::Str(Cow::Owned(
                other.text().map(Cow::into_owned).unwrap_or_default(),
            ))),
        },
        FieldType::Number => match v {
            Val::Int(_) | Val::Float(_) => Ok(v),
            Val::Str(ref s) => {
                parse_number(s).ok_or_else(|| format!("{} is not a number", v.describe()))
            }
            other => Err(format!(
                "{} {} is not a number",
                other.kind_name(),
                other.describe()
            )),
        },
        FieldType::Bool => match v {
            Val::Bool(_) => Ok(v),
            Val::Str(ref s) if s.eq_ignore_ascii_case("true") => Ok(Val::Bool(true)),
            Val::Str(ref s) if s.eq_ignore_ascii_case("false") => Ok(Val::Bool(false)),
            other => Err(format!("{} is not a boolean", other.describe())),
        },
        FieldType::Enumeration => {
            if compound {
                return Err(format!(
                    "{} {} is not an enumeration value",
                    v.kind_name(),
                    v.describe()
                ));
            }
            let ok = options.is_empty()
                || v.text()
                    .is_some_and(|t| options.iter().any(|o| o == t.as_ref()));
            if !ok {
                return Err(format!(
                    "{} is not one of the allowed values: {}",
                    v.describe(),
                    options.join(", ")
                ));
            }
            match v {
                Val::Str(_) => Ok(v),
                other => Ok(Val::Str(Cow::Owned(
                    other.text().map(Cow::into_owned).unwrap_or_default(),
                ))),
            }
        }
        FieldType::Date => match v {
            Val::Str(ref s) if is_date(s) => Ok(v),
            Val::Str(ref s) => match chrono::DateTime::parse_from_rfc3339(s) {
                Ok(t) => Ok(Val::Str(Cow::Owned(
                    t.date_naive().format("%Y-%m-%d").to_string(),
                ))),
                Err(_) => Err(format!("{} is not a date (YYYY-MM-DD)", v.describe())),
            },
            other => Err(format!("{} is not a date (YYYY-MM-DD)", other.describe())),
        },
        FieldType::Datetime => match v {
            Val::Str(ref s) if is_date(s) || chrono::DateTime::parse_from_rfc3339(s).is_ok() => {
                Ok(v)
            }
            other => Err(format!("{} is not an RFC 3339 timestamp", other.describe())),
        },
    }
}

fn json_text(v: &Val) -> String {
    match v {
        Val::Absent | Val::Null => String::new(),
        Val::Raw(_) | Val::Json(_) => v.to_json().map(|j| j.to_string()).unwrap_or_default(),
        other => other.text().map(Cow::into_owned).unwrap_or_default(),
    }
}

impl CompiledMapping {
    fn eval_src<'a>(&'a self, src: &'a Src, rec: &Rec<'a>, ctx: &Ectx<'_>) -> R<'a, Val<'a>> {
        Ok(match src {
            Src::Slot(i) => rec.get(self, *i),
            Src::Lit(v) => match v {
                Val::Str(s) => Val::Str(Cow::Borrowed(s)),
                Val::Json(j) => Val::Json(Cow::Borrowed(j.as_ref())),
                other => other.clone(),
            },
            Src::JsonPath(i) => {
                let Some(root) = rec.value() else {
                    return Ok(Val::Absent);
                };
                let (_, q) = &self.jsonpaths[*i];
                match jsonpath_rust::query::js_path_process(q, root) {
                    Ok(found) => match found.len() {
                        0 => Val::Absent,
                        1 => found
                            .into_iter()
                            .next()
                            .map_or(Val::Absent, |r| Val::from_json(r.val())),
                        _ => Val::Json(Cow::Owned(Value::Array(
                            found.into_iter().map(|r| r.val().clone()).collect(),
                        ))),
                    },
                    Err(_) => Val::Absent,
                }
            }
            Src::Expr(i, ptr) => {
                let plan = &self.exprs[*i];
                plan.expr
                    .eval_ext(&|v| rec.get(self, plan.slots[v]), &ctx.base, ctx.ext)
                    .map_err(|e| Fail {
                        ptr: Some(ptr),
                        reason: e.0,
                    })?
            }
            Src::Template(i) => Val::Str(Cow::Owned(self.render(*i, rec)?)),
            Src::Cond(branches, default) => {
                for (e, ptr, then) in branches {
                    let plan = &self.exprs[*e];
                    let c = plan
                        .expr
                        .eval_ext(&|v| rec.get(self, plan.slots[v]), &ctx.base, ctx.ext)
                        .map_err(|e| Fail {
                            ptr: Some(ptr),
                            reason: e.0,
                        })?;
                    if c.truthy() {
                        return self.eval_src(then, rec, ctx);
                    }
                }
                match default {
                    Some(d) => self.eval_src(d, rec, ctx)?,
                    None => Val::Absent,
                }
            }
            Src::WithDefault(inner, d) => {
                let v = self.eval_src(inner, rec, ctx)?;
                if v.is_nothing() {
                    self.eval_src_lit(d)
                } else {
                    v
                }
            }
            Src::Tree(t) => match self.tree(t, rec, ctx, &mut None)? {
                Some(v) => Val::Json(Cow::Owned(v)),
                None => Val::Absent,
            },
            Src::Lookup {
                key,
                table,
                default,
            } => {
                let k = self.eval_src(key, rec, ctx)?;
                let hit = k.text().and_then(|k| table.get(k.as_ref()));
                match hit.or(default.as_ref()) {
                    Some(v) => Val::from_json(v),
                    None => Val::Absent,
                }
            }
        })
    }

    fn eval_src_lit<'a>(&'a self, v: &'a Val<'static>) -> Val<'a> {
        match v {
            Val::Str(s) => Val::Str(Cow::Borrowed(s)),
            other => other.clone(),
        }
    }

    fn render<'a>(&'a self, i: usize, rec: &Rec<'a>) -> R<'a, String> {
        let t = &self.templates[i];
        if let Some(parts) = &t.parts {
            let mut s = String::new();
            for p in parts {
                match p {
                    Part::Text(x) | Part::Keep(x) => s.push_str(x),
                    Part::Path(slot) => {
                        let v = rec.get(self, *slot);
                        match &v {
                            Val::Str(x) => s.push_str(x),
                            other => s.push_str(&json_text(other)),
                        }
                    }
                }
            }
            return Ok(s);
        }
        let (Some(reg), Some(root)) = (&self.registry, rec.value()) else {
            return Ok(String::new());
        };
        reg.render(&t.name, root)
            .map_err(|e| fail(format!("template failed: {}", e.reason())))
    }

    /// A payload template's value. With `notes`, each leaf that gives nothing is noted under
    /// its dotted label and pointer.
    fn tree<'a>(
        &'a self,
        t: &'a Tree,
        rec: &Rec<'a>,
        ctx: &Ectx<'_>,
        notes: &mut Option<TreeNotes<'a>>,
    ) -> R<'a, Option<Value>> {
        Ok(match t {
            Tree::Leaf {
                src,
                label,
                pointer,
            } => {
                let v = self
                    .eval_src(src, rec, ctx)?
                    .to_json()
                    .filter(|v| !v.is_null());
                if v.is_none()
                    && let Some(out) = notes
                {
                    out.push((label, pointer, self.why_absent(src, rec, ctx)));
                }
                v
            }
            Tree::Object(fields) => {
                let mut m = Map::new();
                for (k, sub) in fields {
                    if let Some(v) = self.tree(sub, rec, ctx, notes)? {
                        m.insert(k.clone(), v);
                    }
                }
                Some(Value::Object(m))
            }
            Tree::Array(items) => {
                let mut a = Vec::new();
                for sub in items {
                    if let Some(v) = self.tree(sub, rec, ctx, notes)? {
                        a.push(v);
                    }
                }
                Some(Value::Array(a))
            }
        })
    }

    /// Why `src` gives no value for this record (only asked when it gives none).
    fn why_absent<'a>(&'a self, src: &'a Src, rec: &Rec<'a>, ctx: &Ectx<'_>) -> String {
        match src {
            Src::Slot(i) => {
                let what = if matches!(rec.get(self, *i), Val::Null) {
                    "is null"
                } else {
                    "is absent"
                };
                format!("source field `{}` {what}", self.paths[*i])
            }
            Src::JsonPath(i) => format!("JSONPath `{}` matches nothing", self.jsonpaths[*i].0),
            Src::Lit(_) => "its value is null".into(),
            Src::Expr(..) => "the formula gives no value (a field it reads is absent)".into(),
            Src::Template(_) | Src::Tree(_) => "the template gives no value".into(),
            Src::WithDefault(inner, _) => self.why_absent(inner, rec, ctx),
            Src::Lookup { key, .. } => match self.eval_src(key, rec, ctx) {
                Ok(k) if !k.is_nothing() => format!(
                    "no value for `{}` in the table and no default",
                    k.text().unwrap_or_default()
                ),
                _ => format!("its key gives no value: {}", self.why_absent(key, rec, ctx)),
            },
            Src::Cond(branches, default) => {
                for (e, ptr, then) in branches {
                    let plan = &self.exprs[*e];
                    let held = plan
                        .expr
                        .eval_ext(&|v| rec.get(self, plan.slots[v]), &ctx.base, ctx.ext)
                        .is_ok_and(|c| c.truthy());
                    if held {
                        return format!(
                            "the condition at {ptr} holds and its value gives nothing: {}",
                            self.why_absent(then, rec, ctx)
                        );
                    }
                }
                match default {
                    Some(d) => format!(
                        "no condition holds and the default gives nothing: {}",
                        self.why_absent(d, rec, ctx)
                    ),
                    None => "no condition holds and there is no `default`".into(),
                }
            }
        }
    }

    fn run<'a, S: Sink<'a>>(
        &'a self,
        rec: &Rec<'a>,
        ctx: &Ectx<'_>,
        sink: &mut S,
    ) -> Result<(), RecordError> {
        for obj in &self.objects {
            sink.begin(&obj.name, &obj.key_json);
            for f in &obj.fields {
                let to_err = |e: Fail| RecordError {
                    line: None,
                    field: Some(f.label.clone()),
                    pointer: e.ptr.unwrap_or(&f.pointer).to_string(),
                    reason: e.reason,
                };
                let v = match &f.src {
                    Src::Tree(t) => {
                        let mut notes = Some(Vec::new());
                        let v = self.tree(t, rec, ctx, &mut notes).map_err(to_err)?;
                        for (label, ptr, why) in notes.into_iter().flatten() {
                            sink.note(label, ptr, &why);
                        }
                        match v {
                            Some(v) => Val::Json(Cow::Owned(v)),
                            None => Val::Absent,
                        }
                    }
                    src => self.eval_src(src, rec, ctx).map_err(to_err)?,
                };
                let v = coerce(v, f.ty, &f.options).map_err(|reason| RecordError {
                    line: None,
                    field: Some(f.label.clone()),
                    pointer: f.pointer.clone(),
                    reason: format!("cannot be {}: {reason}", f.ty),
                })?;
                if !matches!(v, Val::Absent) {
                    sink.field(f, v);
                } else if !matches!(f.src, Src::Tree(_)) {
                    sink.note(&f.label, &f.pointer, &self.why_absent(&f.src, rec, ctx));
                }
            }
            sink.end();
        }
        sink.triggers_begin();
        for t in &self.triggers {
            let plan = &self.exprs[t.expr];
            let c = plan
                .expr
                .eval_ext(&|v| rec.get(self, plan.slots[v]), &ctx.base, ctx.ext)
                .map_err(|e| RecordError {
                    line: None,
                    field: Some(format!("trigger:{}", t.name)),
                    pointer: t.pointer.clone(),
                    reason: e.0,
                })?;
            if c.truthy() {
                sink.trigger(t);
            }
        }
        Ok(())
    }

    /// The evaluation context: the run's plugin session, else `own` (a session for this call).
    fn ectx<'c>(ctx: &MapContext<'c>, own: Option<&'c crate::plugin::PluginSession>) -> Ectx<'c> {
        Ectx {
            base: Self::eval_ctx(ctx),
            ext: ctx
                .ext
                .or_else(|| own.map(|s| s as &dyn crate::expr::ExtCalls)),
        }
    }

    /// Map one record.
    pub fn apply(&self, record: &Value, ctx: &MapContext) -> Result<Mapped, RecordError> {
        if !record.is_object() {
            return Err(RecordError {
                line: None,
                field: None,
                pointer: String::new(),
                reason: "a record must be a JSON object".into(),
            });
        }
        let mut sink = MapSink {
            mapped: Mapped::default(),
            current: None,
        };
        let own = ctx.ext.is_none().then(|| self.plugin_session()).flatten();
        let ectx = Self::ectx(ctx, own.as_ref());
        self.run(&Rec::Value(record), &ectx, &mut sink)?;
        Ok(sink.mapped)
    }

    /// Map one NDJSON line, appending `{"objects": …, "triggers": […]}` and a newline to `out`.
    /// On error nothing is appended. Blank lines are skipped.
    pub fn apply_line(
        &self,
        line: &str,
        ctx: &MapContext,
        scratch: &mut Scratch,
        out: &mut Vec<u8>,
    ) -> Result<LineOutcome, RecordError> {
        if line.trim().is_empty() {
            return Ok(LineOutcome::Blank);
        }
        let start = out.len();
        let own = ctx.ext.is_none().then(|| self.plugin_session()).flatten();
        let ectx = Self::ectx(ctx, own.as_ref());
        let mut sink = LineSink {
            out,
            obj_start: start,
            nfields: 0,
            nobjs: 0,
            ntrig: 0,
            notes: Vec::new(),
        };
        sink.out.extend_from_slice(b"{\"objects\":{");
        let res = if self.needs_value {
            match super::line::parse_record(line) {
                Ok(v) => self.run(&Rec::Value(&v), &ectx, &mut sink),
                Err(e) => Err(e),
            }
        } else {
            scratch.slots.clear();
            scratch.slots.resize(self.trie.slots, None);
            match scan::scan(line, &self.trie, &mut scratch.slots) {
                Ok(()) => {
                    let rec = Rec::Line {
                        line,
                        slots: &scratch.slots,
                    };
                    self.run(&rec, &ectx, &mut sink)
                }
                Err(e) if e.message == scan::NUMBER_OUT_OF_RANGE => {
                    Err(super::line::out_of_range(line))
                }
                Err(e) => Err(invalid(e.to_string())),
            }
        };
        match res {
            Ok(()) => {
                sink.out.push(b']');
                if !sink.notes.is_empty() {
                    sink.out.extend_from_slice(b",\"notes\":[");
                    sink.out.extend_from_slice(&sink.notes);
                    sink.out.push(b']');
                }
                sink.out.extend_from_slice(b"}\n");
                Ok(LineOutcome::Mapped)
            }
            Err(e) => {
                sink.out.truncate(start);
                Err(e)
            }
        }
    }
}

fn invalid(reason: String) -> RecordError {
    RecordError {
        line: None,
        field: None,
        pointer: String::new(),
        reason,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn coercion_rules() {
        let o: Vec<String> = vec!["a".into(), "b".into()];
        assert_eq!(
            coerce(Val::Str("42".into()), FieldType::Number, &[]),
            Ok(Val::Int(42))
        );
        assert_eq!(
            coerce(Val::Str("4.5".into()), FieldType::Number, &[]),
            Ok(Val::Float(4.5))
        );
        assert!(coerce(Val::Str("4x".into()), FieldType::Number, &[]).is_err());
        assert_eq!(
            coerce(Val::Int(7), FieldType::String, &[]),
            Ok(Val::Str("7".into()))
        );
        assert_eq!(
            coerce(Val::Str("TRUE".into()), FieldType::Bool, &[]),
            Ok(Val::Bool(true))
        );
        assert!(coerce(Val::Str("c".into()), FieldType::Enumeration, &o).is_err());
        assert_eq!(
            coerce(Val::Str("c".into()), FieldType::Enumeration, &[]),
            Ok(Val::Str("c".into()))
        );
        assert_eq!(
            coerce(
                Val::Str("2026-01-05T10:00:00Z".into()),
                FieldType::Date,
                &[]
            ),
            Ok(Val::Str("2026-01-05".into()))
        );
        assert!(coerce(Val::Str("05/01/2026".into()), FieldType::Date, &[]).is_err());
        assert_eq!(coerce(Val::Null, FieldType::Number, &[]), Ok(Val::Absent));
    }

    #[test]
    fn written_strings_match_serde_json() {
        for s in [
            "plain",
            "quo\"te",
            "back\\slash",
            "new\nline",
            "tab\t",
            "\u{1}",
            "é ✓ 🚀",
            "</script>",
        ] {
            let mut out = Vec::new();
            write_str(&mut out, s);
            assert_eq!(
                String::from_utf8(out).expect("utf8"),
                serde_json::to_string(s).expect("json")
            );
        }
    }
}
