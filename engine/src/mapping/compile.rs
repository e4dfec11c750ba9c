//! Mapping spec → plan, with every problem reported as a diagnostic (unplaced: pointers into
//! the mapping document; `validate` places them in the file).

use super::{
    CompileEnv, CompiledMapping, ExprPlan, FieldPlan, ObjectPlan, Src, TemplatePlan, Tree,
    TriggerPlan, scan::PathTrie,
};
use crate::diag::{Diagnostic, Diagnostics, did_you_mean, pointer_join};
use crate::expr::{Expr, ExprEnv, Val};
use crate::spec::connector::ObjectSpec;
use crate::spec::mapping::{Condition, ExplicitSource, FieldSource, ScalarLiteral};
use crate::spec::{FieldType, MappingSpec};
use crate::template::{self, Part};
use serde_json::Value;
use std::borrow::Cow;
use std::collections::HashSet;
use std::sync::Arc;

struct Compiler<'a> {
    spec: &'a MappingSpec,
    env: &'a CompileEnv<'a>,
    source_catalog: Option<&'a ObjectSpec>,
    diags: Diagnostics,
    /// The spec's lookup tables, each behind one `Arc` that every expression shares.
    lookups: crate::expr::Lookups,
    paths: Vec<String>,
    /// Path → slot, so interning stays linear in the number of paths a spec references.
    path_slots: std::collections::HashMap<String, usize>,
    jsonpaths: Vec<(String, jsonpath_rust::parser::model::JpQuery)>,
    exprs: Vec<ExprPlan>,
    templates: Vec<TemplatePlan>,
    registry: Option<handlebars::Handlebars<'static>>,
    needs_value: bool,
    ext: Option<crate::expr::ExtFunctions>,
}

/// Compile a mapping spec against its connectors. Returns the plan unless there are errors,
/// and every diagnostic (errors, warnings, notes) with pointers into the mapping document.
pub fn compile(spec: &MappingSpec, env: &CompileEnv) -> (Option<CompiledMapping>, Diagnostics) {
    let source_catalog = env
        .source
        .and_then(|s| s.inbound.as_ref().and_then(|i| s.objects.get(&i.object)));
    let mut c = Compiler {
        spec,
        env,
        source_catalog,
        diags: Diagnostics::default(),
        lookups: spec
            .lookups
            .iter()
            .map(|(k, t)| (k.clone(), Arc::new(t.clone())))
            .collect(),
        paths: Vec::new(),
        path_slots: Default::default(),
        jsonpaths: Vec::new(),
        exprs: Vec::new(),
        templates: Vec::new(),
        registry: None,
        needs_value: false,
        ext: match env.plugins {
            Some(p) => Some(p.functions().clone()),
            None if !spec.plugins.is_empty() => {
                Some(crate::expr::ExtFunctions::open(spec.plugins.keys()))
            }
            None => None,
        },
    };
    let objects = c.objects();
    let triggers = c.triggers();
    c.secrets();
    c.endpoints();
    if c.diags.has_errors() {
        return (None, c.diags);
    }
    let segs = c
        .paths
        .iter()
        .map(|p| p.split('.').map(str::to_string).collect())
        .collect();
    let plan = CompiledMapping {
        trie: PathTrie::new(&c.paths),
        segs,
        paths: c.paths,
        jsonpaths: c.jsonpaths,
        needs_value: c.needs_value,
        exprs: c.exprs,
        templates: c.templates,
        registry: c.registry.map(Arc::new),
        objects,
        triggers,
        plugins: env.plugins.cloned(),
    };
    (Some(plan), c.diags)
}

fn key_json(name: &str) -> String {
    let mut s = serde_json::to_string(name).unwrap_or_else(|_| "\"\"".into());
    s.push(':');
    s
}

fn is_dotted_path(s: &str) -> bool {
    !s.is_empty()
        && s.split('.').all(|seg| {
            let mut ch = seg.chars();
            match ch.next() {
                Some(c) if c.is_ascii_alphabetic() || c == '_' => {
                    ch.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
                }
                Some(c) if c.is_ascii_digit() => seg.chars().all(|c| c.is_ascii_digit()),
                _ => false,
            }
        })
}

/// `$.a.b` / `$['a']` style JSONPaths that are plain member chains become dotted paths.
fn simple_jsonpath(s: &str) -> Option<String> {
    let rest = s.strip_prefix("$.")?;
    is_dotted_path(rest).then(|| rest.to_string())
}

fn enum_options(
    declared: Option<(FieldType, &[String])>,
    catalog: Option<(FieldType, &[String])>,
) -> Vec<String> {
    if let Some((_, o)) = declared
        && !o.is_empty()
    {
        return o.to_vec();
    }
    match catalog {
        Some((FieldType::Enumeration, o)) => o.to_vec(),
        _ => Vec::new(),
    }
}

impl<'a> Compiler<'a> {
    fn intern(
        (paths, slots): (
            &mut Vec<String>,
            &mut std::collections::HashMap<String, usize>,
        ),
        p: &str,
    ) -> usize {
        if let Some(&i) = slots.get(p) {
            return i;
        }
        paths.push(p.to_string());
        slots.insert(p.to_string(), paths.len() - 1);
        paths.len() - 1
    }

    fn is_source_field(&self, name: &str) -> bool {
        match self.source_catalog {
            None => true,
            Some(cat) => {
                cat.fields.contains_key(name)
                    || cat.fields.keys().any(|k| {
                        k.len() > name.len()
                            && k.starts_with(name)
                            && k.as_bytes()[name.len()] == b'.'
                    })
            }
        }
    }

    fn source_type(&self, name: &str) -> Option<FieldType> {
        self.source_catalog?
            .fields
            .get(name)
            .map(|f| f.field_type())
    }

    fn source_name(&self) -> &str {
        self.spec.source.as_deref().unwrap_or("source")
    }

    fn expr(&mut self, src: &str, ptr: &str) -> Option<usize> {
        let catalog = self.source_catalog;
        let is_field = move |n: &str| match catalog {
            None => true,
            Some(cat) => {
                cat.fields.contains_key(n)
                    || cat.fields.keys().any(|k| {
                        k.len() > n.len() && k.starts_with(n) && k.as_bytes()[n.len()] == b'.'
                    })
            }
        };
        let env = ExprEnv {
            lookups: &self.lookups,
            is_field: if catalog.is_some() {
                Some(&is_field)
            } else {
                None
            },
            ext: self.ext.as_ref(),
        };
        match Expr::compile(src, &env) {
            Ok(e) => {
                let slots = e
                    .vars
                    .iter()
                    .map(|v| Self::intern((&mut self.paths, &mut self.path_slots), v))
                    .collect();
                self.exprs.push(ExprPlan { expr: e, slots });
                Some(self.exprs.len() - 1)
            }
            Err(e) => {
                // Unknown names already say what they are; syntax errors get a lead-in.
                let what = match e.kind {
                    crate::expr::ExprErrorKind::Syntax => "expression does not parse: ",
                    crate::expr::ExprErrorKind::UnknownFunction
                    | crate::expr::ExprErrorKind::UnknownLookup
                    | crate::expr::ExprErrorKind::TooDeep => "",
                };
                self.diags.push(
                    Diagnostic::error(
                        e.kind.code(),
                        ptr,
                        format!(
                            "{what}{} (at offset {} of `{}`)",
                            e.message,
                            e.offset,
                            crate::expr::excerpt(src, e.offset)
                        ),
                    )
                    .with_hint_opt(e.hint.clone()),
                );
                None
            }
        }
    }

    /// `{{plugin "alias.function" …}}` calls in a template name functions that exist.
    fn check_plugin_calls(&mut self, src: &str, ptr: &str) {
        static CALL: std::sync::LazyLock<Option<regex::Regex>> =
            std::sync::LazyLock::new(|| regex::Regex::new(r#"\{\{~?\s*plugin\s+"([^"]*)""#).ok());
        let Some(re) = CALL.as_ref() else { return };
        for cap in re.captures_iter(src) {
            let name = &cap[1];
            let known = self.ext.as_ref().and_then(|e| e.resolve(name)).is_some();
            if !known {
                let hint = self
                    .ext
                    .as_ref()
                    .and_then(|e| crate::diag::did_you_mean(name, e.names()))
                    .or_else(|| Some("declare a mapping-functions plugin under `plugins`".into()));
                self.diags.push(
                    Diagnostic::error(
                        "E213",
                        ptr,
                        format!("unknown plugin function `{name}` in template"),
                    )
                    .with_hint_opt(hint),
                );
            }
        }
    }

    fn template(&mut self, src: &str, ptr: &str) -> Option<Src> {
        let compiled = match template::compile(src) {
            Ok(t) => t,
            Err(e) => {
                self.diags.push(Diagnostic::error(
                    e.code,
                    ptr,
                    format!("template does not compile: {}", e.reason),
                ));
                return None;
            }
        };
        let (paths, slots) = (&mut self.paths, &mut self.path_slots);
        let parts =
            template::simple_parts(src, &mut |p| Self::intern((&mut *paths, &mut *slots), p));
        if let Some(parts) = &parts {
            if let [Part::Path(slot)] = parts.as_slice() {
                return Some(Src::Slot(*slot));
            }
            if parts
                .iter()
                .all(|p| matches!(p, Part::Text(_) | Part::Keep(_)))
            {
                let text: String = parts
                    .iter()
                    .map(|p| match p {
                        Part::Text(t) | Part::Keep(t) => t.as_str(),
                        Part::Path(_) => "",
                    })
                    .collect();
                return Some(Src::Lit(Val::Str(Cow::Owned(text))));
            }
        }
        let name = format!("t{}", self.templates.len());
        if parts.is_none() {
            self.needs_value = true;
            self.check_plugin_calls(src, ptr);
            let plugins = self.env.plugins;
            let reg = self.registry.get_or_insert_with(|| {
                let mut r = template::new_registry();
                if let Some(set) = plugins {
                    r.register_helper("plugin", Box::new(PluginHelper(set.clone())));
                }
                r
            });
            // Compiled once above, within the limits; registering does not compile again.
            reg.register_template(&name, compiled);
        }
        self.templates.push(TemplatePlan { parts, name });
        Some(Src::Template(self.templates.len() - 1))
    }

    /// Compile a field source. `declared` receives the source catalog type of a bare path.
    fn source(
        &mut self,
        fs: &FieldSource,
        ptr: &str,
        declared: &mut Option<FieldType>,
    ) -> Option<Src> {
        match fs {
            FieldSource::Scalar(ScalarLiteral::Bool(b)) => Some(Src::Lit(Val::Bool(*b))),
            FieldSource::Scalar(ScalarLiteral::Number(n)) => {
                Some(Src::Lit(Val::from_json_owned(Value::Number(n.clone()))))
            }
            FieldSource::Bare(s) => self.bare(s, ptr, declared),
            FieldSource::Explicit(e) => match e {
                ExplicitSource::Literal { value } => {
                    Some(Src::Lit(Val::from_json_owned(value.clone())))
                }
                ExplicitSource::Computed { formula } => {
                    let i = self.expr(formula, &pointer_join(ptr, "formula"))?;
                    Some(Src::Expr(i, pointer_join(ptr, "formula")))
                }
                ExplicitSource::Template { template } => {
                    self.template(template, &pointer_join(ptr, "template"))
                }
                ExplicitSource::Path { path, default } => {
                    let pp = pointer_join(ptr, "path");
                    let inner = self.path(path, &pp, declared)?;
                    Some(match default {
                        Some(d) => {
                            Src::WithDefault(Box::new(inner), Val::from_json_owned(d.clone()))
                        }
                        None => inner,
                    })
                }
                ExplicitSource::Conditional { conditions } => {
                    let base = pointer_join(ptr, "conditions");
                    let mut branches = Vec::new();
                    let mut default = None;
                    for (i, c) in conditions.iter().enumerate() {
                        let cp = format!("{base}/{i}");
                        match c {
                            Condition::When(w) => {
                                let ip = pointer_join(&cp, "if");
                                let e = self.expr(&w.condition, &ip);
                                let then = self.branch_value(&w.then, &pointer_join(&cp, "then"));
                                if let (Some(e), Some(t)) = (e, then) {
                                    branches.push((e, ip, t));
                                }
                            }
                            Condition::Default(d) => {
                                if i + 1 != conditions.len() {
                                    self.diags.push(Diagnostic::warning(
                                        "W226",
                                        cp.clone(),
                                        "conditions after a `default` are never reached",
                                    ));
                                }
                                default = self
                                    .branch_value(&d.default, &pointer_join(&cp, "default"))
                                    .map(Box::new);
                            }
                        }
                    }
                    Some(Src::Cond(branches, default))
                }
            },
        }
    }

    /// A conditional's `then` / `default`: a bare string is a literal (seed 003's
    /// `"then": "High"`), whatever the source catalog says; `$…` JSONPaths, `computed:`
    /// formulas and the explicit forms keep their meaning. The same rule holds with and
    /// without a source catalog, so a route means the same whether or not it names a source.
    fn branch_value(&mut self, fs: &FieldSource, ptr: &str) -> Option<Src> {
        let FieldSource::Bare(s) = fs else {
            return self.source(fs, ptr, &mut None);
        };
        if s.starts_with('$') || s.starts_with("computed:") {
            return self.source(fs, ptr, &mut None);
        }
        if is_dotted_path(s) && self.source_catalog.is_some() && self.is_source_field(s) {
            // Before this rule a field name here was read as a path with a catalog: say so.
            self.diags.push(
                Diagnostic::note(
                    "N003",
                    ptr,
                    format!(
                        "`{s}` is the literal text \"{s}\", although `{}` has a field of that name",
                        self.source_name()
                    ),
                )
                .with_hint(format!(
                    "write \"$.{s}\" or {{\"type\": \"path\", \"path\": \"{s}\"}} to read the field"
                )),
            );
        }
        Some(Src::Lit(Val::Str(Cow::Owned(s.clone()))))
    }

    fn path(&mut self, p: &str, ptr: &str, declared: &mut Option<FieldType>) -> Option<Src> {
        if p.starts_with('$') {
            if let Some(d) = simple_jsonpath(p) {
                *declared = self.source_type(&d);
                return Some(Src::Slot(Self::intern(
                    (&mut self.paths, &mut self.path_slots),
                    &d,
                )));
            }
            return match jsonpath_rust::parser::parse_json_path(p) {
                Ok(q) => {
                    self.needs_value = true;
                    self.jsonpaths.push((p.to_string(), q));
                    Some(Src::JsonPath(self.jsonpaths.len() - 1))
                }
                Err(e) => {
                    self.diags.push(Diagnostic::error(
                        "E212",
                        ptr,
                        format!(
                            "invalid JSONPath `{p}`: {}",
                            crate::diag::jsonpath_error_text(&e.to_string())
                        ),
                    ));
                    None
                }
            };
        }
        if !is_dotted_path(p) {
            self.diags.push(Diagnostic::error(
                "E212",
                ptr,
                format!(
                    "invalid path `{p}`: expected dotted names (`a.b`) or a JSONPath (`$.a[0]`)"
                ),
            ));
            return None;
        }
        *declared = self.source_type(p);
        Some(Src::Slot(Self::intern(
            (&mut self.paths, &mut self.path_slots),
            p,
        )))
    }

    fn bare(&mut self, s: &str, ptr: &str, declared: &mut Option<FieldType>) -> Option<Src> {
        if let Some(f) = s.strip_prefix("computed:") {
            let i = self.expr(f, ptr)?;
            return Some(Src::Expr(i, ptr.to_string()));
        }
        if s.starts_with('$') {
            return self.path(s, ptr, declared);
        }
        let (is_path, why) = match self.source_catalog {
            Some(_) => (
                self.is_source_field(s),
                format!("not a field of source `{}`", self.source_name()),
            ),
            None => (is_dotted_path(s), "not a valid path".to_string()),
        };
        if is_path && is_dotted_path(s) {
            *declared = self.source_type(s);
            return Some(Src::Slot(Self::intern(
                (&mut self.paths, &mut self.path_slots),
                s,
            )));
        }
        let hint = self
            .source_catalog
            .and_then(|c| did_you_mean(s, c.fields.keys().map(String::as_str)));
        self.diags.push(
            Diagnostic::note("N001", ptr, format!("`{s}` is read as a literal: {why}")).with_hint(
                hint.map_or_else(
                    || "write {\"type\": \"literal\", \"value\": …} to say so".to_string(),
                    |h| format!("{h} (or write {{\"type\": \"literal\", …}} to keep the literal)"),
                ),
            ),
        );
        Some(Src::Lit(Val::Str(Cow::Owned(s.to_string()))))
    }

    fn target(&self, obj: &str) -> Option<&'a ObjectSpec> {
        self.env.target.objects.get(obj)
    }

    fn unknown_object(&mut self, obj: &str, ptr: &str) {
        let names: Vec<&str> = self.env.target.objects.keys().map(String::as_str).collect();
        self.diags.push(
            Diagnostic::error(
                "E223",
                ptr,
                format!(
                    "unknown object `{obj}` of connector `{}`",
                    self.env.target.connector.name
                ),
            )
            .with_hint_opt(
                did_you_mean(obj, names.iter().copied())
                    .or_else(|| Some(format!("known objects: {}", names.join(", ")))),
            ),
        );
    }

    /// Check a target field and work out its type and options.
    #[allow(clippy::too_many_arguments)]
    fn field(
        &mut self,
        obj: &str,
        name: &str,
        name_ptr: &str,
        value_ptr: &str,
        src: Src,
        declared_src: Option<FieldType>,
        declared: Option<(FieldType, &[String])>,
        seen: &mut HashSet<String>,
        out: &mut Vec<FieldPlan>,
    ) {
        if !seen.insert(name.to_string()) {
            self.diags.push(Diagnostic::error(
                "E222",
                name_ptr,
                format!("field `{name}` of object `{obj}` is mapped more than once"),
            ));
            return;
        }
        let cat = self.target(obj);
        let cat_field = cat.and_then(|c| c.fields.get(name));
        if let (Some(c), None) = (cat, cat_field) {
            let hint = did_you_mean(name, c.fields.keys().map(String::as_str));
            let conn = &self.env.target.connector.name;
            if !c.open {
                self.diags.push(
                    Diagnostic::error(
                        "E202",
                        name_ptr,
                        format!("unknown field `{name}` of `{conn}` object `{obj}`"),
                    )
                    .with_hint_opt(hint),
                );
            } else if c.field_keys.is_some() {
                // Resolved by name at delivery; a name the CRM does not know fails the record
                // with an error naming it (`connector::fieldkeys`).
            } else if let Some(pat) = &c.custom_field_pattern {
                let matches = regex::Regex::new(pat)
                    .map(|r| r.is_match(name))
                    .unwrap_or(true);
                if !matches {
                    self.diags.push(
                        Diagnostic::warning(
                            "W202",
                            name_ptr,
                            format!("`{name}` is not a field of `{conn}` object `{obj}` and does not match its custom field pattern `{pat}`"),
                        )
                        .with_hint_opt(hint),
                    );
                } else {
                    self.diags.push(
                        Diagnostic::warning("W202", name_ptr, format!("`{name}` is not a known field of `{conn}` object `{obj}`: it must exist as a custom field"))
                            .with_hint_opt(hint),
                    );
                }
            } else if !c.fields.is_empty() {
                self.diags.push(
                    Diagnostic::warning("W202", name_ptr, format!("`{name}` is not a known field of `{conn}` object `{obj}`: it must exist as a custom field"))
                        .with_hint_opt(hint),
                );
            }
        }
        if let Some(crate::spec::connector::FieldSpec::Detailed(d)) = cat_field
            && d.read_only
        {
            self.diags.push(Diagnostic::warning(
                "W233",
                name_ptr,
                format!(
                    "`{name}` is read-only in `{}` object `{obj}`: the API refuses writes to it",
                    self.env.target.connector.name
                ),
            ));
        }
        let catalog = cat_field.map(|f| (f.field_type(), f.options()));
        let target_ty = catalog.map(|c| c.0);
        for (from, what) in [
            (declared.map(|d| d.0), "declared type"),
            (declared_src, "source field type"),
        ] {
            if let (Some(a), Some(b)) = (from, target_ty)
                && !a.compatible_with(b)
            {
                self.diags.push(Diagnostic::error(
                    "E203",
                    if what == "declared type" {
                        name_ptr.to_string()
                    } else {
                        value_ptr.to_string()
                    },
                    format!(
                        "{what} {a} of `{name}` is incompatible with its `{}` catalog type {b}",
                        self.env.target.connector.name
                    ),
                ));
            }
        }
        let ty = declared
            .map(|d| d.0)
            .or(target_ty)
            .unwrap_or(FieldType::Any);
        let options = if ty == FieldType::Enumeration {
            enum_options(declared, catalog)
        } else {
            Vec::new()
        };
        if ty == FieldType::Enumeration {
            if options.is_empty() {
                self.diags.push(Diagnostic::note(
                    "N002",
                    name_ptr,
                    format!(
                        "enumeration `{name}` declares no options: its values cannot be checked"
                    ),
                ));
            } else {
                self.check_enum_literals(&src, &options, value_ptr);
            }
        }
        out.push(FieldPlan {
            name: name.to_string(),
            label: format!("{obj}.{name}"),
            key_json: key_json(name),
            pointer: value_ptr.to_string(),
            src,
            ty,
            options,
        });
    }

    fn check_enum_literals(&mut self, src: &Src, options: &[String], ptr: &str) {
        match src {
            Src::Lit(v) => {
                if let Some(t) = v.text()
                    && !options.iter().any(|o| o == t.as_ref())
                {
                    self.diags.push(
                        Diagnostic::error(
                            "E204",
                            ptr,
                            format!(
                                "`{t}` is not one of the allowed values: {}",
                                options.join(", ")
                            ),
                        )
                        .with_hint_opt(did_you_mean(&t, options.iter().map(String::as_str))),
                    );
                }
            }
            Src::Cond(branches, default) => {
                for (_, ip, s) in branches {
                    let tp = ip
                        .strip_suffix("/if")
                        .map(|b| format!("{b}/then"))
                        .unwrap_or_else(|| ptr.to_string());
                    self.check_enum_literals(s, options, &tp);
                }
                if let Some(d) = default {
                    let n = branches.len();
                    let dp = format!("{ptr}/conditions/{n}/default");
                    self.check_enum_literals(d, options, &dp);
                }
            }
            Src::WithDefault(_, v) => self.check_enum_literals(&Src::Lit(v.clone()), options, ptr),
            _ => {}
        }
    }

    fn objects(&mut self) -> Vec<ObjectPlan> {
        let spec = self.spec;
        let cfg = &spec.crm_config;
        let mut objects: Vec<ObjectPlan> = Vec::new();
        let default_obj = cfg.object_or_default(self.env.target.connector.default_object.as_ref());
        let has_default_fields = !cfg.field_mappings.is_empty()
            || !cfg.custom_properties.is_empty()
            || !cfg.custom_fields.is_empty();
        let default_known = self.target(&default_obj).is_some();
        if !default_known && (has_default_fields || cfg.default_object.is_some()) {
            let ptr = if cfg.default_object.is_some() {
                "/crm_config/default_object"
            } else {
                "/connector"
            };
            self.unknown_object(&default_obj, ptr);
        }
        let mut seen: std::collections::HashMap<String, HashSet<String>> = Default::default();
        if has_default_fields {
            let mut fields = Vec::new();
            let mut s = seen.remove(&default_obj).unwrap_or_default();
            for (name, fs) in &cfg.field_mappings {
                let ptr = pointer_join("/crm_config/field_mappings", name);
                let mut d = None;
                if let Some(src) = self.source(fs, &ptr, &mut d) {
                    self.field(
                        &default_obj,
                        name,
                        &ptr,
                        &ptr,
                        src,
                        d,
                        None,
                        &mut s,
                        &mut fields,
                    );
                }
            }
            for (i, cp) in cfg.custom_properties.iter().enumerate() {
                let base = format!("/crm_config/custom_properties/{i}");
                let vp = format!("{base}/value");
                let mut d = None;
                if let Some(src) = self.source(&cp.value, &vp, &mut d) {
                    let declared = cp.property_type.map(|t| (t, cp.options.as_slice()));
                    self.field(
                        &default_obj,
                        &cp.name,
                        &format!("{base}/name"),
                        &vp,
                        src,
                        d,
                        declared,
                        &mut s,
                        &mut fields,
                    );
                }
            }
            for (name, fs) in &cfg.custom_fields {
                let ptr = pointer_join("/crm_config/custom_fields", name);
                let mut d = None;
                if let Some(src) = self.source(fs, &ptr, &mut d) {
                    self.field(
                        &default_obj,
                        name,
                        &ptr,
                        &ptr,
                        src,
                        d,
                        None,
                        &mut s,
                        &mut fields,
                    );
                }
            }
            seen.insert(default_obj.clone(), s);
            objects.push(ObjectPlan {
                key_json: key_json(&default_obj),
                name: default_obj.clone(),
                fields,
            });
        }
        if let Some(dd) = &cfg.duplicate_detection {
            let mapped = seen.get(&default_obj);
            for (i, f) in dd.match_fields.iter().enumerate() {
                if !mapped.is_some_and(|m| m.contains(f)) {
                    let names: Vec<&str> = mapped
                        .map(|m| m.iter().map(String::as_str).collect())
                        .unwrap_or_default();
                    self.diags.push(
                        Diagnostic::warning(
                            "W224",
                            format!("/crm_config/duplicate_detection/match_fields/{i}"),
                            format!("duplicate detection matches on `{f}`, which the mapping does not fill for `{default_obj}`"),
                        )
                        .with_hint_opt(did_you_mean(f, names)),
                    );
                }
            }
        }
        for (obj, fields_spec) in &cfg.object_mappings {
            let optr = pointer_join("/crm_config/object_mappings", obj);
            if self.target(obj).is_none() {
                self.unknown_object(obj, &optr);
            }
            let mut s = seen.remove(obj).unwrap_or_default();
            let mut fields = Vec::new();
            for (name, fs) in fields_spec {
                let ptr = pointer_join(&optr, name);
                let mut d = None;
                if let Some(src) = self.source(fs, &ptr, &mut d) {
                    self.field(obj, name, &ptr, &ptr, src, d, None, &mut s, &mut fields);
                }
            }
            seen.insert(obj.clone(), s);
            self.push_object(&mut objects, obj, fields);
        }
        for (obj, tpl) in &cfg.payload_templates {
            let optr = pointer_join("/crm_config/payload_templates", obj);
            if self.target(obj).is_none() {
                self.unknown_object(obj, &optr);
            }
            let Value::Object(m) = tpl else {
                self.diags.push(Diagnostic::error(
                    "E211",
                    optr,
                    "a payload template must be a JSON object",
                ));
                continue;
            };
            let mut s = seen.remove(obj).unwrap_or_default();
            let mut fields = Vec::new();
            for (name, v) in m {
                let ptr = pointer_join(&optr, name);
                if let Some(tree) = self.tree(v, &ptr, format!("{obj}.{name}")) {
                    let src = match tree {
                        Tree::Leaf { src, .. } => *src,
                        other => Src::Tree(other),
                    };
                    self.field(obj, name, &ptr, &ptr, src, None, None, &mut s, &mut fields);
                }
            }
            seen.insert(obj.clone(), s);
            self.push_object(&mut objects, obj, fields);
        }
        if let Some(ds) = &cfg.deal_settings {
            let obj = "deal";
            let optr = "/crm_config/deal_settings";
            if self.target(obj).is_none() {
                self.unknown_object(obj, optr);
            }
            let mut s = seen.remove(obj).unwrap_or_default();
            let mut fields = Vec::new();
            if let Some(t) = &ds.title_template {
                let ptr = format!("{optr}/title_template");
                if let Some(src) = self.template(t, &ptr) {
                    self.field(
                        obj,
                        "title",
                        &ptr,
                        &ptr,
                        src,
                        None,
                        None,
                        &mut s,
                        &mut fields,
                    );
                }
            }
            if !ds.value_estimation.is_empty() {
                let ptr = format!("{optr}/value_estimation");
                let key_path = ds
                    .value_key
                    .clone()
                    .unwrap_or_else(|| "ai_analysis.project_type".into());
                let mut d = None;
                let kp = if ds.value_key.is_some() {
                    format!("{optr}/value_key")
                } else {
                    ptr.clone()
                };
                if let Some(key) = self.path(&key_path, &kp, &mut d) {
                    let mut table = ds.value_estimation.clone();
                    let default = table.shift_remove("default");
                    self.field(
                        obj,
                        "value",
                        &ptr,
                        &ptr,
                        Src::Lookup {
                            key: Box::new(key),
                            table,
                            default,
                        },
                        None,
                        None,
                        &mut s,
                        &mut fields,
                    );
                }
            }
            if let Some(cur) = &ds.currency {
                let ptr = format!("{optr}/currency");
                self.field(
                    obj,
                    "currency",
                    &ptr,
                    &ptr,
                    Src::Lit(Val::Str(Cow::Owned(cur.clone()))),
                    None,
                    None,
                    &mut s,
                    &mut fields,
                );
            }
            seen.insert(obj.to_string(), s);
            self.push_object(&mut objects, obj, fields);
        }
        objects
    }

    fn push_object(&mut self, objects: &mut Vec<ObjectPlan>, obj: &str, fields: Vec<FieldPlan>) {
        match objects.iter_mut().find(|o| o.name == obj) {
            Some(o) => o.fields.extend(fields),
            None => objects.push(ObjectPlan {
                key_json: key_json(obj),
                name: obj.to_string(),
                fields,
            }),
        }
    }

    /// A payload template node at `ptr`; `label` is its dotted name (`object.field.key[0]`).
    fn tree(&mut self, v: &Value, ptr: &str, label: String) -> Option<Tree> {
        Some(match v {
            Value::Object(m) => {
                let mut out = Vec::new();
                for (k, x) in m {
                    if let Some(t) = self.tree(x, &pointer_join(ptr, k), format!("{label}.{k}")) {
                        out.push((k.clone(), t));
                    }
                }
                Tree::Object(out)
            }
            Value::Array(a) => {
                let mut out = Vec::new();
                for (i, x) in a.iter().enumerate() {
                    if let Some(t) = self.tree(x, &format!("{ptr}/{i}"), format!("{label}[{i}]")) {
                        out.push(t);
                    }
                }
                Tree::Array(out)
            }
            leaf => Tree::Leaf {
                src: Box::new(match leaf {
                    Value::String(s) => self.template(s, ptr)?,
                    other => Src::Lit(Val::from_json_owned(other.clone())),
                }),
                label,
                pointer: ptr.to_string(),
            },
        })
    }

    fn triggers(&mut self) -> Vec<TriggerPlan> {
        let cfg = &self.spec.crm_config;
        let mut out = Vec::new();
        let actions: Vec<&str> = self.env.target.actions.keys().map(String::as_str).collect();
        for (kind, table) in [
            ("workflow_triggers", &cfg.workflow_triggers),
            ("workflow_rules", &cfg.workflow_rules),
        ] {
            for (name, t) in table {
                let base = pointer_join(&format!("/crm_config/{kind}"), name);
                for (i, a) in t.actions.iter().enumerate() {
                    let ap = format!("{base}/actions/{i}");
                    if actions.is_empty() {
                        self.diags.push(
                            Diagnostic::warning(
                                "W225",
                                ap,
                                format!(
                                    "connector `{}` declares no workflow actions: `{a}` cannot run",
                                    self.env.target.connector.name
                                ),
                            )
                            .with_hint("declare it under [actions] in the connector spec"),
                        );
                    } else if !actions.contains(&a.as_str()) {
                        self.diags.push(
                            Diagnostic::error(
                                "E207",
                                ap,
                                format!(
                                    "unknown action `{a}` of connector `{}`",
                                    self.env.target.connector.name
                                ),
                            )
                            .with_hint_opt(
                                did_you_mean(a, actions.iter().copied()).or_else(|| {
                                    Some(format!("known actions: {}", actions.join(", ")))
                                }),
                            ),
                        );
                    }
                }
                let cp = format!("{base}/condition");
                if let Some(e) = self.expr(&t.condition, &cp) {
                    out.push(TriggerPlan {
                        name: name.clone(),
                        name_json: serde_json::to_string(name).unwrap_or_default(),
                        actions: t.actions.clone(),
                        expr: e,
                        pointer: cp,
                    });
                }
            }
        }
        out
    }

    fn secret_ref(&mut self, v: &str, ptr: &str) {
        if crate::secrets::looks_like_ref(v)
            && let Err(e) = crate::secrets::SecretRef::parse(v)
        {
            self.diags
                .push(Diagnostic::error("E206", ptr, e.to_string()));
        }
    }

    fn secrets(&mut self) {
        let cfg = &self.spec.crm_config;
        for (k, v) in [
            ("api_token", &cfg.api_token),
            ("consumer_key", &cfg.consumer_key),
            ("private_key", &cfg.private_key),
            ("username", &cfg.username),
        ] {
            if let Some(v) = v {
                self.secret_ref(v, &format!("/crm_config/{k}"));
            }
        }
        if let Some(a) = &cfg.authentication {
            for (k, v) in [
                ("token", &a.token),
                ("username", &a.username),
                ("password", &a.password),
            ] {
                if let Some(v) = v {
                    self.secret_ref(v, &format!("/crm_config/authentication/{k}"));
                }
            }
        }
        for (k, v) in &cfg.settings {
            if let Value::String(s) = v {
                self.secret_ref(s, &pointer_join("/crm_config/settings", k));
            }
        }
    }

    fn endpoints(&mut self) {
        let cfg = &self.spec.crm_config;
        for (name, e) in &cfg.endpoints {
            let base = pointer_join("/crm_config/endpoints", name);
            let mut strings = vec![(pointer_join(&base, "path"), e.path.as_str())];
            for (h, v) in &e.headers {
                strings.push((pointer_join(&pointer_join(&base, "headers"), h), v.as_str()));
            }
            for (ptr, s) in strings {
                if let Err(err) = template::check(s) {
                    self.diags.push(Diagnostic::error(
                        err.code,
                        ptr,
                        format!("template does not compile: {}", err.reason),
                    ));
                }
            }
        }
    }
}

/// The `plugin` template helper: `{{plugin "alias.function" arg…}}` renders the function's
/// result (text as is, other values as JSON, null as nothing). Each call opens its own plugin
/// session (templates cannot see the run's session); expressions are the cheaper route.
struct PluginHelper(Arc<crate::plugin::PluginSet>);

impl handlebars::HelperDef for PluginHelper {
    fn call<'reg: 'rc, 'rc>(
        &self,
        h: &handlebars::Helper<'rc>,
        _: &'reg handlebars::Handlebars<'reg>,
        _: &'rc handlebars::Context,
        _: &mut handlebars::RenderContext<'reg, 'rc>,
        out: &mut dyn handlebars::Output,
    ) -> handlebars::HelperResult {
        use crate::expr::ExtCalls as _;
        let fail = |m: String| handlebars::RenderErrorReason::Other(m);
        let name = h.param(0).and_then(|p| p.value().as_str()).ok_or_else(|| {
            fail("`plugin` needs a function name such as \"basics.split_name\"".into())
        })?;
        let f = self
            .0
            .functions()
            .resolve(name)
            .ok_or_else(|| fail(format!("unknown plugin function `{name}`")))?;
        let args: Vec<Value> = h
            .params()
            .iter()
            .skip(1)
            .map(|p| p.value().clone())
            .collect();
        let v = self
            .0
            .session()
            .call(&f, args)
            .map_err(|e| fail(format!("{name}(): {e}")))?;
        match v {
            Value::Null => {}
            Value::String(s) => out.write(&s)?,
            other => out.write(&other.to_string())?,
        }
        Ok(())
    }
}
