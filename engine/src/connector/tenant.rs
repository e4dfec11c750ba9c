//! The connector spec a tenant's `crm_config` makes of a shipped spec: a custom REST tenant's
//! `authentication` and `endpoints` become the spec's auth and operations, and an `auth_flow`
//! setting picks one of the spec's `auth_flows` (Salesforce: JWT or username-password).
//! Pure spec → spec (no I/O), used alike by `validate` and by the engine's routes, so what
//! validates is what runs.

use crate::diag::{Diagnostic, Diagnostics, did_you_mean, pointer_join};
use crate::spec::connector::{
    Auth, ConnectorKind, ConnectorSpec, KeyLocation, ObjectSpec, Operation, OperationKind,
};
use crate::spec::mapping::{CustomAuthType, MappingSpec};
use serde_json::Value;
use std::sync::LazyLock;

/// Kinds an endpoint name may start with (`<kind>_<object>`).
const ENDPOINT_KINDS: [(&str, OperationKind); 5] = [
    ("create", OperationKind::Create),
    ("update", OperationKind::Update),
    ("upsert", OperationKind::Upsert),
    ("get", OperationKind::Get),
    ("delete", OperationKind::Delete),
];

/// The spec `m` runs against: `Ok(None)` when its `crm_config` changes nothing, `Err` with
/// every error (pointers into the mapping document). Warnings go to `diags` either way.
pub fn tenant_spec(
    spec: &ConnectorSpec,
    m: &MappingSpec,
    diags: &mut Diagnostics,
) -> Result<Option<ConnectorSpec>, Diagnostics> {
    let cfg = &m.crm_config;
    let mut errors = Diagnostics::default();
    let mut out: Option<ConnectorSpec> = None;
    let flow = cfg
        .settings
        .get("auth_flow")
        .and_then(Value::as_str)
        .map(str::to_string);
    if let Some(flow) = flow {
        match spec.auth_flows.get(&flow) {
            Some(a) => out.get_or_insert_with(|| spec.clone()).auth = Some(a.clone()),
            None => {
                let names: Vec<&str> = spec.auth_flows.keys().map(String::as_str).collect();
                errors.push(
                    Diagnostic::error(
                        "E232",
                        "/crm_config/settings/auth_flow",
                        format!(
                            "connector `{}` has no auth flow `{flow}`",
                            spec.connector.name
                        ),
                    )
                    .with_hint(
                        did_you_mean(&flow, names.iter().copied()).unwrap_or_else(|| {
                            if names.is_empty() {
                                "it declares no [auth_flows]".to_string()
                            } else {
                                format!("known flows: {}", names.join(", "))
                            }
                        }),
                    ),
                );
            }
        }
    }
    // Other connectors do not read them (`validate` says so, W232).
    let custom = spec.connector.kind == ConnectorKind::Custom;
    if let Some(a) = cfg.authentication.as_ref().filter(|_| custom) {
        let s = out.get_or_insert_with(|| spec.clone());
        let ap = "/crm_config/authentication";
        let need = |v: &Option<String>, key: &str, errors: &mut Diagnostics| {
            if v.is_none() {
                errors.push(Diagnostic::error(
                    "E233",
                    ap,
                    format!(
                        "authentication `{}` needs `{key}`",
                        auth_type_name(a.auth_type)
                    ),
                ));
            }
        };
        s.auth = Some(match a.auth_type {
            CustomAuthType::Bearer => {
                need(&a.token, "token", &mut errors);
                Auth::Bearer {
                    token: "{{secrets.token}}".into(),
                    scheme: None,
                }
            }
            CustomAuthType::ApiKey => {
                need(&a.token, "token", &mut errors);
                Auth::ApiKey {
                    location: KeyLocation::Header,
                    name: a.header.clone().unwrap_or_else(|| "X-API-Key".into()),
                    value: "{{secrets.token}}".into(),
                }
            }
            CustomAuthType::Basic => {
                need(&a.username, "username", &mut errors);
                Auth::Basic {
                    username: "{{secrets.username}}".into(),
                    password: "{{secrets.password}}".into(),
                }
            }
            CustomAuthType::Oauth2ClientCredentials => {
                need(&a.token_url, "token_url", &mut errors);
                need(&a.client_id, "client_id", &mut errors);
                need(&a.client_secret, "client_secret", &mut errors);
                Auth::Oauth2ClientCredentials {
                    token_url: "{{config.token_url}}".into(),
                    client_id: "{{secrets.client_id}}".into(),
                    client_secret: "{{secrets.client_secret}}".into(),
                    scope: a.scope.as_ref().map(|_| "{{config.scope}}".into()),
                    credentials_in: Default::default(),
                    method: Default::default(),
                    refresh_ahead_secs: 60,
                }
            }
        });
        for key in unused_auth_keys(a) {
            diags.push(
                Diagnostic::warning(
                    "W231",
                    pointer_join(ap, key),
                    format!(
                        "`{key}` has no effect with authentication `{}`",
                        auth_type_name(a.auth_type)
                    ),
                )
                .with_hint("remove it, or choose the type it belongs to"),
            );
        }
    }
    let given: Vec<&str> = cfg
        .authentication
        .as_ref()
        .map(given_auth_keys)
        .unwrap_or_default();
    for (name, e) in cfg.endpoints.iter().filter(|_| custom) {
        let ep = pointer_join("/crm_config/endpoints", name);
        for (ptr, text) in std::iter::once((pointer_join(&ep, "path"), e.path.as_str())).chain(
            e.headers
                .iter()
                .map(|(h, v)| (pointer_join(&pointer_join(&ep, "headers"), h), v.as_str())),
        ) {
            for key in auth_refs(text) {
                if !given.contains(&key.as_str()) {
                    errors.push(
                        Diagnostic::error(
                            "E234",
                            &ptr,
                            format!("`auth.{key}` is not set in `authentication`"),
                        )
                        .with_hint_opt(did_you_mean(&key, given.iter().copied())),
                    );
                }
            }
        }
        let s = out.get_or_insert_with(|| spec.clone());
        let headers = e
            .headers
            .iter()
            .map(|(k, v)| (k.clone(), auth_to_secrets(v)))
            .collect();
        let path = auth_to_secrets(&e.path);
        if let Some(op) = s.operations.get_mut(name) {
            op.method = e.method;
            op.path = path;
            op.headers = headers;
            continue;
        }
        let parsed = ENDPOINT_KINDS.iter().find_map(|(k, kind)| {
            name.strip_prefix(k)
                .and_then(|r| r.strip_prefix('_'))
                .filter(|o| !o.is_empty())
                .map(|o| (*kind, o.to_string()))
        });
        let Some((kind, object)) = parsed else {
            diags.push(
                Diagnostic::warning(
                    "W230",
                    &ep,
                    format!("endpoint `{name}` has no effect: no operation is named so and the name is not `<kind>_<object>`"),
                )
                .with_hint("name it e.g. `create_contact`, `update_contact`, `upsert_contact`, `get_contact` or `delete_contact`"),
            );
            continue;
        };
        s.objects
            .entry(object.clone())
            .or_insert_with(|| ObjectSpec {
                api_name: None,
                description: None,
                open: true,
                custom_field_pattern: None,
                unique_fields: Vec::new(),
                fields: Default::default(),
                field_keys: None,
            });
        let body = matches!(
            kind,
            OperationKind::Create | OperationKind::Update | OperationKind::Upsert
        )
        .then(|| Value::String("{{payload}}".into()));
        s.operations.insert(
            name.clone(),
            Operation {
                object: Some(object),
                kind,
                method: e.method,
                path,
                query: Default::default(),
                headers,
                body,
                encoding: Default::default(),
                graphql: None,
                id: Some("$.id".into()),
                records: None,
                fields: None,
                pagination: None,
                batch: None,
                incremental: None,
                success_status: Vec::new(),
                budget: None,
                idempotency_header: None,
                plugin: None,
                decode: None,
            },
        );
    }
    if errors.has_errors() {
        return Err(errors);
    }
    Ok(out)
}

fn auth_type_name(t: CustomAuthType) -> &'static str {
    match t {
        CustomAuthType::Bearer => "bearer",
        CustomAuthType::ApiKey => "api_key",
        CustomAuthType::Basic => "basic",
        CustomAuthType::Oauth2ClientCredentials => "oauth2_client_credentials",
    }
}

/// The keys of `a` that are set but that its type does not read.
fn unused_auth_keys(a: &crate::spec::mapping::CustomAuth) -> Vec<&'static str> {
    use CustomAuthType as T;
    let t = a.auth_type;
    [
        (
            "token",
            a.token.is_some(),
            matches!(t, T::Bearer | T::ApiKey),
        ),
        ("header", a.header.is_some(), t == T::ApiKey),
        ("username", a.username.is_some(), t == T::Basic),
        ("password", a.password.is_some(), t == T::Basic),
        (
            "token_url",
            a.token_url.is_some(),
            t == T::Oauth2ClientCredentials,
        ),
        (
            "client_id",
            a.client_id.is_some(),
            t == T::Oauth2ClientCredentials,
        ),
        (
            "client_secret",
            a.client_secret.is_some(),
            t == T::Oauth2ClientCredentials,
        ),
        ("scope", a.scope.is_some(), t == T::Oauth2ClientCredentials),
    ]
    .into_iter()
    .filter(|(_, set, used)| *set && !*used)
    .map(|(k, _, _)| k)
    .collect()
}

/// The `auth.*` names an endpoint template may read: the secret values of `authentication`.
fn given_auth_keys(a: &crate::spec::mapping::CustomAuth) -> Vec<&'static str> {
    [
        ("token", a.token.is_some()),
        ("username", a.username.is_some()),
        ("password", a.password.is_some()),
        ("client_id", a.client_id.is_some()),
        ("client_secret", a.client_secret.is_some()),
    ]
    .into_iter()
    .filter(|(_, set)| *set)
    .map(|(k, _)| k)
    .collect()
}

static AUTH_REF: LazyLock<Option<regex::Regex>> =
    LazyLock::new(|| regex::Regex::new(r"(^|[^\w.])auth\.([A-Za-z_][A-Za-z0-9_]*)").ok());

/// The `auth.<name>` references inside the `{{…}}` tags of a template.
fn auth_refs(t: &str) -> Vec<String> {
    let mut out = Vec::new();
    let Some(re) = AUTH_REF.as_ref() else {
        return out;
    };
    for tag in crate::template::tags(t) {
        for c in re.captures_iter(tag) {
            out.push(c[2].to_string());
        }
    }
    out
}

/// `{{auth.x}}` → `{{secrets.x}}`: the values of `authentication` are the custom REST
/// connector's secrets (so they are redacted wherever a secret is).
fn auth_to_secrets(t: &str) -> String {
    let Some(re) = AUTH_REF.as_ref() else {
        return t.to_string();
    };
    let mut out = String::with_capacity(t.len());
    let mut rest = t;
    while let Some(i) = rest.find("{{") {
        let Some(j) = rest[i..].find("}}") else { break };
        out.push_str(&rest[..i]);
        let tag = &rest[i..i + j + 2];
        out.push_str(&re.replace_all(tag, "${1}secrets.$2"));
        rest = &rest[i + j + 2..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auth_references_become_secrets_inside_tags_only() {
        assert_eq!(
            auth_to_secrets("Bearer {{auth.token}} auth.token {{ lower auth.username }}"),
            "Bearer {{secrets.token}} auth.token {{ lower secrets.username }}"
        );
        assert_eq!(auth_refs("{{x.auth.token}} {{auth.tokn}}"), vec!["tokn"]);
    }
}
