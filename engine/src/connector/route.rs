//! A route's binding: a tenant's mapping spec (its `crm_config`) bound to the connector spec it
//! names, giving the connector's `config` and `secrets` their tenant values.

use super::{Binding, ConnectorError, Secret, SecretResolver};
use crate::spec::connector::ConnectorSpec;
use crate::spec::mapping::MappingSpec;
use serde_json::{Map, Value};
use std::collections::HashMap;
use std::path::Path;

/// Load a mapping spec file.
pub fn load_mapping(path: &Path) -> Result<MappingSpec, ConnectorError> {
    crate::spec::load_as::<MappingSpec>(path)
        .map(|(m, _)| m)
        .map_err(|e| ConnectorError::Config(e.to_string()))
}

/// The tenant's settings as one flat map: `crm_config`'s scalar keys, `authentication.*`
/// (custom REST), then `settings` (which win).
pub fn tenant_settings(m: &MappingSpec) -> Map<String, Value> {
    let mut flat = Map::new();
    if let Ok(Value::Object(cfg)) = serde_json::to_value(&m.crm_config) {
        for (k, v) in cfg {
            match (k.as_str(), v) {
                ("authentication", Value::Object(a)) => {
                    for (ak, av) in a {
                        if ak != "type" {
                            flat.insert(ak, av);
                        }
                    }
                }
                ("settings", Value::Object(s)) => {
                    for (sk, sv) in s {
                        flat.insert(sk, sv);
                    }
                }
                (_, v @ (Value::String(_) | Value::Number(_) | Value::Bool(_))) => {
                    flat.insert(k, v);
                }
                _ => {}
            }
        }
    }
    flat
}

/// Bind `spec` to a tenant: settings that name a config parameter fill it, settings that name a
/// secret are resolved through `resolver`; `base_url` replaces the base URL. Secrets given in
/// `override_secrets` (an emulator's credentials) win and skip resolution. With `lenient`
/// (dry runs) an unresolvable secret becomes a placeholder instead of an error.
pub fn bind(
    m: &MappingSpec,
    spec: &ConnectorSpec,
    resolver: &SecretResolver,
    override_secrets: &HashMap<String, Secret>,
    override_base: Option<String>,
    lenient: bool,
) -> Result<Binding, ConnectorError> {
    let flat = tenant_settings(m);
    let mut config = Map::new();
    for (k, v) in &flat {
        if !spec.secrets.contains_key(k) {
            config.insert(k.clone(), v.clone());
        }
    }
    let mut secrets = HashMap::new();
    for (name, p) in &spec.secrets {
        if let Some(s) = override_secrets.get(name) {
            secrets.insert(name.clone(), s.clone());
            continue;
        }
        match flat.get(name) {
            Some(Value::String(r)) => {
                let v = match resolver.resolve(r) {
                    Ok(v) => v,
                    Err(_) if lenient => Secret::new(format!("unresolved-{name}")),
                    Err(e) => return Err(e.into()),
                };
                secrets.insert(name.clone(), v);
            }
            Some(other) => {
                secrets.insert(name.clone(), Secret::new(super::scalar(other)));
            }
            None if p.required => {}
            None => {}
        }
    }
    let base_url = override_base.or_else(|| {
        flat.get("base_url")
            .and_then(Value::as_str)
            .map(str::to_string)
    });
    Ok(Binding {
        tenant: m.tenant.clone(),
        config,
        secrets,
        base_url,
    })
}

/// An emulator's credentials under the names a spec's secrets use (same name, or the
/// conventional alias: `api_token`/`secret_key` ← `access_token`).
pub fn credentials_for(
    spec: &ConnectorSpec,
    creds: &[(String, String)],
) -> HashMap<String, Secret> {
    let get = |n: &str| creds.iter().find(|(k, _)| k == n).map(|(_, v)| v.clone());
    let mut out = HashMap::new();
    for name in spec.secrets.keys() {
        let v = get(name).or_else(|| match name.as_str() {
            "api_token" | "secret_key" | "token" | "api_key" => get("access_token")
                .or_else(|| get("api_token"))
                .or_else(|| get("secret_key"))
                .or_else(|| get("api_key")),
            "consumer_key" => get("client_id"),
            "private_key" => get("private_key_pem"),
            _ => None,
        });
        if let Some(v) = v {
            out.insert(name.clone(), Secret::new(v));
        }
    }
    out
}
