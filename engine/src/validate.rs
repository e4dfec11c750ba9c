//! Semantic validation across a set of spec files: references between specs (connectors,
//! sources, operations, plugins, secrets), duplicate names, JSONPaths and templates of
//! connector specs, and each mapping spec compiled against its connector's field catalog.

use crate::diag::{Diagnostic, Diagnostics, did_you_mean, pointer_join};
use crate::spec::connector::{Auth, ConnectorSpec, Pagination};
use crate::spec::{LoadedSpec, Spec, SpecKind, connectors_by_name};
use std::collections::HashMap;
use std::path::PathBuf;

/// The result of validating a set of paths.
#[derive(Debug, Default)]
pub struct Report {
    /// Number of spec files read.
    pub files: usize,
    /// Every diagnostic, sorted.
    pub diagnostics: Diagnostics,
    /// The loaded specs.
    pub specs: Vec<LoadedSpec>,
}

/// Load and validate every spec under `paths`. Only I/O errors are `Err`.
pub fn validate_paths(paths: &[PathBuf]) -> Result<Report, std::io::Error> {
    let files = crate::spec::collect_files(paths)?;
    let mut report = Report {
        files: files.len(),
        ..Default::default()
    };
    for f in &files {
        let (loaded, d) = crate::spec::load_file(f)?;
        report.diagnostics.extend(d);
        if let Some(l) = loaded {
            report.specs.push(l);
        }
    }
    let d = validate_set(&report.specs);
    report.diagnostics.extend(d);
    report.diagnostics.sort();
    Ok(report)
}

/// Semantic checks over loaded specs (structurally valid ones only).
pub fn validate_set(specs: &[LoadedSpec]) -> Diagnostics {
    let mut out = Diagnostics::default();
    // Duplicate names across files.
    let mut seen: HashMap<(SpecKind, String), &LoadedSpec> = HashMap::new();
    for l in specs {
        let name = match &l.spec {
            Some(Spec::Connector(c)) => Some((
                SpecKind::Connector,
                c.connector.name.clone(),
                "/connector/name",
            )),
            Some(Spec::Plugin(p)) => {
                Some((SpecKind::Plugin, p.plugin.name.clone(), "/plugin/name"))
            }
            Some(Spec::Attribution(a)) => Some((
                SpecKind::Attribution,
                format!("{}/{}", a.attribution.tenant, a.attribution.name),
                "/attribution/name",
            )),
            _ => None,
        };
        if let Some((kind, name, ptr)) = name {
            if let Some(first) = seen.get(&(kind, name.clone())) {
                let (l1, c1) = first.source.position(ptr);
                out.push(
                    l.source.place(
                        Diagnostic::error("E209", ptr, format!("duplicate {kind} name `{name}`"))
                            .with_hint(format!(
                                "first defined at {}:{l1}:{c1}",
                                first.source.path.display()
                            )),
                    ),
                );
            } else {
                seen.insert((kind, name), l);
            }
        }
    }
    let connectors = connectors_by_name(specs);
    for l in specs {
        match &l.spec {
            Some(Spec::Connector(c)) => {
                for d in check_connector(c).0 {
                    out.push(l.source.place(d));
                }
                for d in check_plugin_manifests(&l.source.path, &c.plugins, None).0 {
                    out.push(l.source.place(d));
                }
            }
            Some(Spec::Attribution(a)) => {
                if let Some(e) = &a.attribution.enrichment {
                    let decl = [("plugin".to_string(), e.plugin.clone())]
                        .into_iter()
                        .collect();
                    let world = Some(crate::spec::plugin::PluginWorld::Enricher);
                    for mut d in check_plugin_manifests(&l.source.path, &decl, world).0 {
                        d.pointer = "/attribution/enrichment/plugin".into();
                        d.code = "E601";
                        out.push(l.source.place(d));
                    }
                }
                for (i, rule) in a.attribution.pull.iter().enumerate() {
                    if !connectors.is_empty() && !connectors.contains_key(rule.connector.as_str()) {
                        let d = Diagnostic::error(
                            "E200",
                            format!("/attribution/pull/{i}/connector"),
                            format!("unknown connector `{}`", rule.connector),
                        )
                        .with_hint_opt(did_you_mean(&rule.connector, connectors.keys().copied()));
                        out.push(l.source.place(d));
                    }
                }
                // Settings and expressions compile exactly as `switchyard attribute` compiles them.
                if let Err(crate::attribution::AttributionError::InvalidSpec { pointer, message }) =
                    crate::attribution::Plan::compile(a)
                {
                    out.push(l.source.place(Diagnostic::error("E600", pointer, message)));
                }
            }
            Some(Spec::Mapping(m)) => {
                for d in check_mapping_refs(m, &connectors).0 {
                    out.push(l.source.place(d));
                }
                let world = Some(crate::spec::plugin::PluginWorld::MappingFunctions);
                for d in check_plugin_manifests(&l.source.path, &m.plugins, world).0 {
                    out.push(l.source.place(d));
                }
                if let Some(shipped) = connectors.get(m.connector.as_str()) {
                    // What validates is what runs: the spec the tenant's crm_config makes.
                    let mut warnings = Diagnostics::default();
                    let tenant = crate::connector::tenant::tenant_spec(shipped, m, &mut warnings);
                    for d in warnings.0 {
                        out.push(l.source.place(d));
                    }
                    let tenant = match tenant {
                        Ok(t) => t,
                        Err(errors) => {
                            for d in errors.0 {
                                out.push(l.source.place(d));
                            }
                            None
                        }
                    };
                    let target = tenant.as_ref().unwrap_or(shipped);
                    for d in crate::spec::keys::without_effect(target, m).0 {
                        out.push(l.source.place(d));
                    }
                    let source = m
                        .source
                        .as_deref()
                        .and_then(|s| connectors.get(s).copied())
                        .filter(|c| c.inbound.is_some());
                    let env = crate::mapping::CompileEnv {
                        target,
                        source,
                        plugins: None,
                    };
                    let (plan, diags) = crate::mapping::compile(m, &env);
                    for d in diags.0 {
                        out.push(l.source.place(d));
                    }
                    for d in crate::spectest::check(m, plan.as_ref()).0 {
                        out.push(l.source.place(d));
                    }
                } else {
                    for d in crate::spectest::check(m, None).0 {
                        out.push(l.source.place(d));
                    }
                }
            }
            _ => {}
        }
    }
    out
}

/// Every plugin a spec declares names a readable plugin manifest (relative to the spec file)
/// of the expected world (E226). The wasm itself is not loaded: validation stays static.
fn check_plugin_manifests(
    spec: &std::path::Path,
    plugins: &indexmap::IndexMap<String, String>,
    world: Option<crate::spec::plugin::PluginWorld>,
) -> Diagnostics {
    let mut out = Diagnostics::default();
    let base = spec.parent().unwrap_or(std::path::Path::new("."));
    for (alias, rel) in plugins {
        let ptr = pointer_join("/plugins", alias);
        let path = base.join(rel);
        let problem = match crate::spec::load_file(&path) {
            Err(e) => Some(format!("cannot read plugin manifest `{rel}`: {e}")),
            Ok((_, d)) if d.has_errors() => Some(format!(
                "plugin manifest `{rel}` is invalid (validate it for details)"
            )),
            Ok((Some(l), _)) => match l.spec {
                Some(Spec::Plugin(p)) => match world {
                    Some(w) if p.plugin.world != w => Some(format!(
                        "plugin `{}` implements world `{}`, not `{}`",
                        p.plugin.name,
                        p.plugin.world.as_str(),
                        w.as_str()
                    )),
                    _ => None,
                },
                _ => Some(format!("`{rel}` is not a plugin manifest")),
            },
            Ok((None, _)) => Some(format!("`{rel}` is not a plugin manifest")),
        };
        if let Some(p) = problem {
            out.push(
                Diagnostic::error("E226", &ptr, p)
                    .with_hint("the path is relative to this spec file"),
            );
        }
    }
    out
}

fn check_mapping_refs(
    m: &crate::spec::MappingSpec,
    connectors: &HashMap<&str, &ConnectorSpec>,
) -> Diagnostics {
    let mut out = Diagnostics::default();
    let names: Vec<&str> = {
        let mut v: Vec<&str> = connectors.keys().copied().collect();
        v.sort();
        v
    };
    if !connectors.contains_key(m.connector.as_str()) {
        let hint = did_you_mean(&m.connector, names.iter().copied()).or_else(|| {
            Some(if names.is_empty() {
                "no connector specs were given: validate the connector-specs folder together with the mapping".to_string()
            } else {
                format!("known connectors: {}", names.join(", "))
            })
        });
        out.push(
            Diagnostic::error(
                "E200",
                "/connector",
                format!("unknown connector `{}`", m.connector),
            )
            .with_hint_opt(hint),
        );
    }
    if let Some(src) = &m.source {
        match connectors.get(src.as_str()) {
            None => {
                let hint = did_you_mean(src, names.iter().copied());
                out.push(
                    Diagnostic::error("E200", "/source", format!("unknown source `{src}`"))
                        .with_hint_opt(hint),
                );
            }
            Some(c) if c.inbound.is_none() => {
                out.push(Diagnostic::error(
                    "E200",
                    "/source",
                    format!(
                        "connector `{src}` is not an inbound source (it has no [inbound] table)"
                    ),
                ));
            }
            _ => {}
        }
    }
    let expected_type = match m.connector.as_str() {
        "custom-rest" => "custom",
        other => other,
    };
    if connectors.contains_key(m.connector.as_str()) && m.crm_config.crm_type != expected_type {
        out.push(
            Diagnostic::error(
                "E215",
                "/crm_config/type",
                format!(
                    "crm_config type `{}` does not match connector `{}`",
                    m.crm_config.crm_type, m.connector
                ),
            )
            .with_hint(format!("set \"type\": \"{expected_type}\"")),
        );
    }
    out
}

fn check_template_str(t: &str, ptr: &str, c: &ConnectorSpec, out: &mut Diagnostics) {
    if let Err(e) = crate::template::check(t) {
        out.push(Diagnostic::error(
            e.code,
            ptr,
            format!("template does not compile: {}", e.reason),
        ));
        return;
    }
    for name in lookup_refs(t) {
        if !c.lookups.contains_key(&name) {
            let hint = did_you_mean(&name, c.lookups.keys().map(String::as_str))
                .unwrap_or_else(|| "declare it under [lookups]".to_string());
            out.push(
                Diagnostic::error("E236", ptr, format!("unknown lookup `{name}`")).with_hint(hint),
            );
        }
    }
    for (kind, name) in crate::template::template_refs(t) {
        let known: Vec<&str> = if kind == "secrets" {
            c.secrets.keys().map(String::as_str).collect()
        } else {
            c.config.keys().map(String::as_str).collect()
        };
        if !known.contains(&name.as_str()) {
            let code = if kind == "secrets" { "E206" } else { "E216" };
            let what = if kind == "secrets" {
                "secret"
            } else {
                "config setting"
            };
            let hint = did_you_mean(&name, known.iter().copied())
                .unwrap_or_else(|| format!("declare it under [{kind}]"));
            out.push(
                Diagnostic::error(code, ptr, format!("unknown {what} `{name}`")).with_hint(hint),
            );
        }
    }
}

/// Names a template string reads under `lookups.`.
fn lookup_refs(t: &str) -> Vec<String> {
    let mut out = Vec::new();
    for tag in crate::template::tags(t) {
        for word in tag.split(|c: char| c.is_whitespace() || c == '(' || c == ')') {
            let word = word.trim_start_matches(['{', '#', '/', '^']);
            if let Some(rest) = word.strip_prefix("lookups.") {
                let name: String = rest
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_' || *c == '-')
                    .collect();
                out.push(name);
            }
        }
    }
    out
}

fn check_template_tree(v: &serde_json::Value, ptr: &str, c: &ConnectorSpec, out: &mut Diagnostics) {
    match v {
        serde_json::Value::String(s) => check_template_str(s, ptr, c, out),
        serde_json::Value::Array(a) => {
            for (i, x) in a.iter().enumerate() {
                check_template_tree(x, &format!("{ptr}/{i}"), c, out);
            }
        }
        serde_json::Value::Object(m) => {
            for (k, x) in m {
                check_template_tree(x, &pointer_join(ptr, k), c, out);
            }
        }
        _ => {}
    }
}

fn check_jsonpath(p: &str, ptr: &str, out: &mut Diagnostics) {
    if let Err(e) = jsonpath_rust::parser::parse_json_path(p) {
        out.push(Diagnostic::error(
            "E212",
            ptr,
            format!(
                "invalid JSONPath `{p}`: {}",
                crate::diag::jsonpath_error_text(&e.to_string())
            ),
        ));
    }
}

fn first_line(s: &str) -> String {
    s.lines().next().unwrap_or_default().to_string()
}

/// Semantic checks of one connector spec (unplaced diagnostics).
#[allow(clippy::collapsible_if)]
pub fn check_connector(c: &ConnectorSpec) -> Diagnostics {
    let mut out = Diagnostics::default();
    let name = &c.connector.name;
    if name.is_empty()
        || !name
            .chars()
            .all(|ch| ch.is_ascii_lowercase() || ch.is_ascii_digit() || ch == '_' || ch == '-')
    {
        out.push(
            Diagnostic::error(
                "E217",
                "/connector/name",
                format!("invalid connector name `{name}`"),
            )
            .with_hint("use lowercase letters, digits, `_` and `-`"),
        );
    }
    check_template_str(&c.connector.base_url, "/connector/base_url", c, &mut out);
    let objects: Vec<&str> = c.objects.keys().map(String::as_str).collect();
    let ops: Vec<&str> = c.operations.keys().map(String::as_str).collect();
    let plugins: Vec<&str> = c.plugins.keys().map(String::as_str).collect();
    let obj_ref = |o: &str, ptr: &str, out: &mut Diagnostics| {
        if !c.objects.contains_key(o) {
            out.push(
                Diagnostic::error("E201", ptr, format!("unknown object `{o}`"))
                    .with_hint_opt(did_you_mean(o, objects.iter().copied())),
            );
        }
    };
    if let Some(o) = &c.connector.default_object {
        obj_ref(o, "/connector/default_object", &mut out);
    }
    let op_ref = |o: &str, ptr: &str, out: &mut Diagnostics| {
        if !c.operations.contains_key(o) {
            out.push(
                Diagnostic::error("E207", ptr, format!("unknown operation `{o}`"))
                    .with_hint_opt(did_you_mean(o, ops.iter().copied())),
            );
        }
    };
    let plugin_ref = |p: &str, ptr: &str, out: &mut Diagnostics| {
        if !c.plugins.contains_key(p) {
            out.push(
                Diagnostic::error("E208", ptr, format!("unknown plugin `{p}`")).with_hint_opt(
                    did_you_mean(p, plugins.iter().copied())
                        .or_else(|| Some("declare it under [plugins]".into())),
                ),
            );
        }
    };
    if let Some(t) = &c.connector.test_operation {
        op_ref(t, "/connector/test_operation", &mut out);
    }
    let flows = c.auth.iter().map(|a| ("/auth".to_string(), a)).chain(
        c.auth_flows
            .iter()
            .map(|(n, a)| (pointer_join("/auth_flows", n), a)),
    );
    for (base, auth) in flows {
        let strings: Vec<(&str, &String)> = match auth {
            Auth::None => vec![],
            Auth::Bearer { token, .. } => vec![("token", token)],
            Auth::ApiKey { value, .. } => vec![("value", value)],
            Auth::Basic { username, password } => {
                vec![("username", username), ("password", password)]
            }
            Auth::Oauth2ClientCredentials {
                token_url,
                client_id,
                client_secret,
                ..
            } => vec![
                ("token_url", token_url),
                ("client_id", client_id),
                ("client_secret", client_secret),
            ],
            Auth::Oauth2Refresh {
                token_url,
                client_id,
                client_secret,
                refresh_token,
                ..
            } => {
                vec![
                    ("token_url", token_url),
                    ("client_id", client_id),
                    ("client_secret", client_secret),
                    ("refresh_token", refresh_token),
                ]
            }
            Auth::Oauth2Password {
                token_url,
                client_id,
                client_secret,
                username,
                password,
                ..
            } => {
                vec![
                    ("token_url", token_url),
                    ("client_id", client_id),
                    ("client_secret", client_secret),
                    ("username", username),
                    ("password", password),
                ]
            }
            Auth::JwtBearer {
                token_url,
                issuer,
                subject,
                private_key,
                ..
            } => vec![
                ("token_url", token_url),
                ("issuer", issuer),
                ("subject", subject),
                ("private_key", private_key),
            ],
            Auth::Plugin { plugin } => {
                plugin_ref(plugin, &format!("{base}/plugin"), &mut out);
                vec![]
            }
        };
        for (k, s) in strings {
            check_template_str(s, &format!("{base}/{k}"), c, &mut out);
        }
    }
    if let Some(o) = &c.oauth {
        match c.auth_flows.get(&o.flow) {
            Some(Auth::Oauth2Refresh { .. }) => {}
            other => out.push(
                Diagnostic::error(
                    "E242",
                    "/oauth/flow",
                    match other {
                        None => format!("[oauth] flow `{}` is not in [auth_flows]", o.flow),
                        Some(_) => format!(
                            "[oauth] flow `{}` is not of type `oauth2_refresh`: onboarded tokens need a refresh flow",
                            o.flow
                        ),
                    },
                )
                .with_hint_opt(did_you_mean(&o.flow, c.auth_flows.keys().map(String::as_str))),
            ),
        }
        if !o.authorize_url.starts_with("https://") && !o.authorize_url.starts_with("http://") {
            out.push(Diagnostic::error(
                "E242",
                "/oauth/authorize_url",
                format!("`{}` is not an absolute http(s) URL", o.authorize_url),
            ));
        }
        check_template_str(&o.authorize_url, "/oauth/authorize_url", c, &mut out);
        for (k, v) in &o.authorize_params {
            check_template_str(v, &pointer_join("/oauth/authorize_params", k), c, &mut out);
        }
        if let Some(r) = &o.revoke {
            check_template_str(&r.path, "/oauth/revoke/path", c, &mut out);
            for (k, v) in &r.form {
                check_template_str(v, &pointer_join("/oauth/revoke/form", k), c, &mut out);
            }
        }
    }
    if let Some(rl) = &c.rate_limit {
        if rl.requests == 0 || rl.per_seconds == 0 {
            out.push(Diagnostic::error(
                "E218",
                "/rate_limit",
                "rate limit must allow at least 1 request per at least 1 second",
            ));
        }
        for (name, class) in &rl.classes {
            let ptr = pointer_join("/rate_limit/classes", name);
            if class.requests == 0 || class.per_seconds == 0 {
                out.push(Diagnostic::error(
                    "E218",
                    ptr.clone(),
                    format!(
                        "rate-limit class `{name}` must allow at least 1 request per at least 1 second"
                    ),
                ));
            }
            if !c
                .operations
                .values()
                .any(|o| o.budget.as_deref() == Some(name.as_str()))
            {
                out.push(
                    Diagnostic::warning(
                        "W236",
                        ptr,
                        format!(
                            "rate-limit class `{name}` has no effect: no operation draws on it"
                        ),
                    )
                    .with_hint(format!(
                        "set budget = \"{name}\" on the operations it limits"
                    )),
                );
            }
        }
        for (i, s) in rl.throttle_signals.iter().enumerate() {
            if let Some(p) = &s.path {
                check_jsonpath(
                    p,
                    &format!("/rate_limit/throttle_signals/{i}/path"),
                    &mut out,
                );
            }
        }
    }
    if let Some(e) = &c.errors {
        for (k, p) in [
            ("message", &e.message),
            ("code", &e.code),
            ("success", &e.success),
            ("failure", &e.failure),
        ] {
            if let Some(p) = p {
                check_jsonpath(p, &format!("/errors/{k}"), &mut out);
            }
        }
        if let Some(c) = &e.created_before {
            check_jsonpath(&c.path, "/errors/created_before/path", &mut out);
        }
        if let Some(x) = &e.existing_id {
            check_jsonpath(&x.path, "/errors/existing_id/path", &mut out);
            if let Some(p) = &x.pattern {
                match crate::connector::existing_id_regex(p) {
                    Err(e) => out.push(Diagnostic::error(
                        "E219",
                        "/errors/existing_id/pattern",
                        format!("invalid regex: {}", first_line(&e.to_string())),
                    )),
                    Ok(re) if re.captures_len() < 2 => out.push(
                        Diagnostic::error(
                            "E219",
                            "/errors/existing_id/pattern",
                            "the pattern has no capture group for the id",
                        )
                        .with_hint("wrap the id in parentheses, e.g. `Existing ID: (\\d+)`"),
                    ),
                    Ok(_) => {}
                }
            }
        }
    }
    for (oname, o) in &c.objects {
        for (i, f) in o.unique_fields.iter().enumerate() {
            if !o.fields.contains_key(f) {
                out.push(
                    Diagnostic::error(
                        "E238",
                        format!(
                            "{}/{i}",
                            pointer_join(&pointer_join("/objects", oname), "unique_fields")
                        ),
                        format!("unique field `{f}` is not in the `{oname}` field catalog"),
                    )
                    .with_hint_opt(did_you_mean(f, o.fields.keys().map(String::as_str))),
                );
            }
        }
        if let Some(fk) = &o.field_keys {
            let fp = pointer_join(&pointer_join("/objects", oname), "field_keys");
            let op_ptr = pointer_join(&fp, "operation");
            match c.operations.get(&fk.operation) {
                None => op_ref(&fk.operation, &op_ptr, &mut out),
                Some(op) if op.kind != crate::spec::connector::OperationKind::List => {
                    out.push(Diagnostic::error(
                        "E235",
                        op_ptr,
                        format!(
                            "`{}` is not a `list` operation: field definitions are read from a list",
                            fk.operation
                        ),
                    ));
                }
                Some(_) => {}
            }
            check_jsonpath(&fk.name, &pointer_join(&fp, "name"), &mut out);
            check_jsonpath(&fk.key, &pointer_join(&fp, "key"), &mut out);
            match &fk.field_type {
                Some(p) => check_jsonpath(p, &pointer_join(&fp, "field_type"), &mut out),
                None if !fk.types.is_empty() => out.push(
                    Diagnostic::error(
                        "E235",
                        pointer_join(&fp, "types"),
                        "`types` maps CRM field types, but `field_type` does not say where a definition keeps its type",
                    )
                    .with_hint("set field_type, e.g. \"$.field_type\""),
                ),
                None => {}
            }
            if !o.open {
                out.push(
                    Diagnostic::error(
                        "E235",
                        fp.clone(),
                        format!(
                            "object `{oname}` resolves custom fields by name but its catalog is closed"
                        ),
                    )
                    .with_hint("set open = true"),
                );
            }
            if let Some(into) = &fk.into
                && o.fields.contains_key(into)
            {
                out.push(Diagnostic::error(
                    "E235",
                    pointer_join(&fp, "into"),
                    format!(
                        "`{into}` is a declared field of `{oname}`: resolved custom fields need a key of their own"
                    ),
                ));
            }
        }
        if let Some(p) = &o.custom_field_pattern
            && let Err(e) = regex::Regex::new(p)
        {
            out.push(Diagnostic::error(
                "E219",
                pointer_join(&pointer_join("/objects", oname), "custom_field_pattern"),
                format!("invalid regex: {}", first_line(&e.to_string())),
            ));
        }
        for (fname, f) in &o.fields {
            let fptr = pointer_join(
                &pointer_join(&pointer_join("/objects", oname), "fields"),
                fname,
            );
            if !f.options().is_empty() && f.field_type() != crate::spec::FieldType::Enumeration {
                out.push(
                    Diagnostic::warning(
                        "W220",
                        fptr,
                        format!(
                            "field `{fname}` declares options but its type is {}",
                            f.field_type()
                        ),
                    )
                    .with_hint("set type = \"enumeration\""),
                );
            }
        }
    }
    for (opname, op) in &c.operations {
        let base = pointer_join("/operations", opname);
        if let Some(o) = &op.object {
            obj_ref(o, &pointer_join(&base, "object"), &mut out);
        }
        check_template_str(&op.path, &pointer_join(&base, "path"), c, &mut out);
        for (k, v) in &op.query {
            check_template_str(
                v,
                &pointer_join(&pointer_join(&base, "query"), k),
                c,
                &mut out,
            );
        }
        for (k, v) in &op.headers {
            check_template_str(
                v,
                &pointer_join(&pointer_join(&base, "headers"), k),
                c,
                &mut out,
            );
        }
        if let Some(b) = &op.body {
            check_template_tree(b, &pointer_join(&base, "body"), c, &mut out);
        }
        for (k, p) in [
            ("id", &op.id),
            ("records", &op.records),
            ("fields", &op.fields),
        ] {
            if let Some(p) = p {
                check_jsonpath(p, &pointer_join(&base, k), &mut out);
            }
        }
        if let Some(p) = &op.pagination {
            let pp = pointer_join(&base, "pagination");
            match p {
                Pagination::Cursor { next, has_more, .. } => {
                    check_jsonpath(next, &pointer_join(&pp, "next"), &mut out);
                    if let Some(h) = has_more {
                        check_jsonpath(h, &pointer_join(&pp, "has_more"), &mut out);
                    }
                }
                Pagination::LastId { has_more, .. } => {
                    check_jsonpath(has_more, &pointer_join(&pp, "has_more"), &mut out)
                }
                Pagination::Offset { next, .. } | Pagination::NextUrl { next } => {
                    check_jsonpath(next, &pointer_join(&pp, "next"), &mut out)
                }
                Pagination::Page { total_pages, .. } => {
                    check_jsonpath(total_pages, &pointer_join(&pp, "total_pages"), &mut out)
                }
                Pagination::LinkHeader => {}
            }
        }
        if let Some(b) = &op.batch {
            let bp = pointer_join(&base, "batch");
            if b.max == 0 {
                out.push(Diagnostic::error(
                    "E218",
                    pointer_join(&bp, "max"),
                    "batch max must be at least 1",
                ));
            }
            check_jsonpath(&b.results, &pointer_join(&bp, "results"), &mut out);
            for (k, p) in [
                ("success", &b.success),
                ("errors", &b.errors),
                ("not_found", &b.not_found),
            ] {
                if let Some(p) = p {
                    check_jsonpath(p, &pointer_join(&bp, k), &mut out);
                }
            }
            if let Some(item) = &b.item {
                check_template_tree(item, &pointer_join(&bp, "item"), c, &mut out);
            }
        }
        if let Some(class) = &op.budget {
            let classes: Vec<&str> = c
                .rate_limit
                .iter()
                .flat_map(|rl| rl.classes.keys().map(String::as_str))
                .collect();
            if !classes.contains(&class.as_str()) {
                out.push(
                    Diagnostic::error(
                        "E237",
                        pointer_join(&base, "budget"),
                        format!("unknown rate-limit class `{class}`"),
                    )
                    .with_hint(
                        did_you_mean(class, classes.iter().copied()).unwrap_or_else(|| {
                            format!("declare it as [rate_limit.classes.{class}] with requests and per_seconds")
                        }),
                    ),
                );
            }
        }
        if let Some(p) = &op.decode {
            plugin_ref(p, &pointer_join(&base, "decode"), &mut out);
        }
        if let Some(p) = &op.plugin {
            plugin_ref(p, &pointer_join(&base, "plugin"), &mut out);
        }
        if op.encoding == crate::spec::connector::BodyEncoding::Graphql && op.graphql.is_none() {
            out.push(Diagnostic::error(
                "E230",
                pointer_join(&base, "graphql"),
                format!(
                    "operation `{opname}` uses encoding = \"graphql\" but has no `graphql` document"
                ),
            ));
        }
        let batch_kind = matches!(
            op.kind,
            crate::spec::connector::OperationKind::BatchCreate
                | crate::spec::connector::OperationKind::BatchUpdate
                | crate::spec::connector::OperationKind::BatchUpsert
                | crate::spec::connector::OperationKind::BatchRead
                | crate::spec::connector::OperationKind::BatchSearch
        );
        if batch_kind && op.batch.is_none() {
            out.push(
                Diagnostic::error(
                    "E231",
                    pointer_join(&base, "batch"),
                    format!("batch operation `{opname}` has no [batch] settings"),
                )
                .with_hint("set batch = { max = …, results = \"$…\" }"),
            );
        }
    }
    for (aname, a) in &c.actions {
        let base = pointer_join("/actions", aname);
        match (&a.operation, &a.webhook) {
            (Some(o), None) => op_ref(o, &pointer_join(&base, "operation"), &mut out),
            (None, Some(w)) => check_template_str(w, &pointer_join(&base, "webhook"), c, &mut out),
            _ => out.push(Diagnostic::error(
                "E221",
                base,
                format!("action `{aname}` must name exactly one of `operation` and `webhook`"),
            )),
        }
        if let Some(p) = &a.payload {
            check_template_tree(
                p,
                &pointer_join(&pointer_join("/actions", aname), "payload"),
                c,
                &mut out,
            );
        }
    }
    for (lname, l) in &c.lookups {
        let base = pointer_join("/lookups", lname);
        op_ref(&l.operation, &pointer_join(&base, "operation"), &mut out);
        check_template_str(&l.input, &pointer_join(&base, "input"), c, &mut out);
        if let Some(p) = &l.value {
            check_jsonpath(p, &pointer_join(&base, "value"), &mut out);
        }
    }
    for (oname, r) in &c.related {
        let base = pointer_join("/related", oname);
        obj_ref(oname, &base, &mut out);
        check_template_str(&r.when, &pointer_join(&base, "when"), c, &mut out);
        check_template_tree(&r.payload, &pointer_join(&base, "payload"), c, &mut out);
        if !r.payload.is_object() {
            out.push(Diagnostic::error(
                "E211",
                pointer_join(&base, "payload"),
                "a related object's payload must be a JSON object",
            ));
        }
        let has = |kind: crate::spec::connector::OperationKind| {
            c.operations
                .values()
                .any(|o| o.kind == kind && o.object.as_deref() == Some(oname.as_str()))
        };
        use crate::spec::connector::OperationKind as K;
        if !has(K::Create) && !has(K::Upsert) {
            out.push(
                Diagnostic::error(
                    "E207",
                    base.clone(),
                    format!("related object `{oname}` has no create operation"),
                )
                .with_hint(format!(
                    "declare an operation with object = \"{oname}\" and kind = \"create\""
                )),
            );
        }
        if let Some(f) = &r.find_by {
            if r.payload.get(f).is_none() {
                out.push(Diagnostic::warning(
                    "W234",
                    pointer_join(&base, "find_by"),
                    format!("`find_by` names `{f}`, which the payload does not set: the object is never brought"),
                ));
            }
            if !has(K::Search) {
                out.push(
                    Diagnostic::warning(
                        "W234",
                        pointer_join(&base, "find_by"),
                        format!("`{oname}` has no search operation: an object that exists already is found only if this store delivered it"),
                    )
                    .with_hint(format!("declare an operation with object = \"{oname}\" and kind = \"search\"")),
                );
            }
        }
    }
    for (aname, a) in &c.associations {
        let base = pointer_join("/associations", aname);
        obj_ref(&a.from, &pointer_join(&base, "from"), &mut out);
        obj_ref(&a.to, &pointer_join(&base, "to"), &mut out);
        op_ref(&a.operation, &pointer_join(&base, "operation"), &mut out);
    }
    if let Some(i) = &c.inbound {
        obj_ref(&i.object, "/inbound/object", &mut out);
        check_verification(i, &mut out);
        if let Some(p) = &i.idempotency_key {
            check_jsonpath(p, "/inbound/idempotency_key", &mut out);
        }
        if let Some(w) = &i.webhook {
            use crate::spec::connector::WebhookVerify as W;
            let secret = match w {
                W::HmacBody { secret, .. }
                | W::Stripe { secret, .. }
                | W::HubspotV3 { secret, .. }
                | W::Zendesk { secret, .. } => Some(secret),
                W::Plugin { plugin } => {
                    plugin_ref(plugin, "/inbound/webhook/plugin", &mut out);
                    None
                }
            };
            if let Some(s) = secret
                && !c.secrets.contains_key(s)
            {
                out.push(
                    Diagnostic::error(
                        "E206",
                        "/inbound/webhook/secret",
                        format!("unknown secret `{s}`"),
                    )
                    .with_hint("declare it under [secrets]"),
                );
            }
        }
    }
    out
}

/// An unsigned inbound source is allowed only when it says so (and is then pointed out).
fn check_verification(i: &crate::spec::connector::Inbound, out: &mut Diagnostics) {
    use crate::spec::connector::Verification;
    if i.verification != Verification::None {
        return;
    }
    if i.webhook.is_some() {
        out.push(
            Diagnostic::error(
                "E241",
                "/inbound/verification",
                "`verification = \"none\"` contradicts the declared `webhook` scheme",
            )
            .with_hint("remove one of them"),
        );
    } else {
        out.push(
            Diagnostic::warning(
                "W240",
                "/inbound/verification",
                "webhooks from this source are accepted unsigned: anyone who can reach the \
                 endpoint can post records",
            )
            .with_hint(
                "declare a `webhook` scheme (hmac_body, stripe, hubspot_v3, zendesk, plugin)",
            ),
        );
    }
}
