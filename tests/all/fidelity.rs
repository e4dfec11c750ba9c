//! Declarative fidelity (issue 12): every key a tenant writes takes effect, or `validate` says
//! it does not. Custom REST endpoints and authentication against a local server that records
//! exactly what arrived, Salesforce's `api_version` and auth flows, and the key invariant.

#![allow(clippy::unwrap_used)]

use crate::cli::switchyard;
use base64::Engine as _;
use serde_json::{Value, json};
use std::sync::{Arc, Mutex};

/// One request as the server saw it.
#[derive(Debug, Clone)]
struct Seen {
    method: String,
    path: String,
    headers: Vec<(String, String)>,
    body: String,
}

impl Seen {
    fn header(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect()
    }
}

/// A server on 127.0.0.1 that records every request and answers `{"id": "<n>"}` (the token
/// endpoint `/oauth/token`: an access token; a body holding `fail@`: a 400 that echoes every
/// header it got, as careless APIs do).
async fn recorder() -> (String, Arc<Mutex<Vec<Seen>>>) {
    use axum::{Router, body::Bytes, http::HeaderMap, http::Method, http::Uri};
    let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
    let s2 = seen.clone();
    let app = Router::new().fallback(
        move |method: Method, uri: Uri, headers: HeaderMap, body: Bytes| {
            let seen = s2.clone();
            async move {
                let body = String::from_utf8_lossy(&body).to_string();
                let hs: Vec<(String, String)> = headers
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("").to_string()))
                    .collect();
                let n = {
                    let mut s = seen.lock().unwrap();
                    s.push(Seen {
                        method: method.to_string(),
                        path: uri.to_string(),
                        headers: hs.clone(),
                        body: body.clone(),
                    });
                    s.len()
                };
                if uri.path() == "/services/oauth2/token" {
                    let base = format!(
                        "http://{}",
                        headers
                            .get("host")
                            .and_then(|h| h.to_str().ok())
                            .unwrap_or_default()
                    );
                    return (
                        axum::http::StatusCode::OK,
                        axum::Json(json!({"access_token": "00Dx!SF-TOKEN-e3a1", "instance_url": base, "token_type": "Bearer"})),
                    );
                }
                if uri.path().ends_with("/composite/sobjects") {
                    return (
                        axum::http::StatusCode::OK,
                        axum::Json(json!([{"id": format!("00Q{n}"), "success": true, "errors": []}])),
                    );
                }
                if uri.path() == "/oauth/token" {
                    return (
                        axum::http::StatusCode::OK,
                        axum::Json(json!({"access_token": "at-OBTAINED-5c2e9", "token_type": "bearer", "expires_in": 3600})),
                    );
                }
                if body.contains("fail@") {
                    return (
                        axum::http::StatusCode::BAD_REQUEST,
                        axum::Json(json!({"message": format!("bad request, headers were {hs:?}")})),
                    );
                }
                (
                    axum::http::StatusCode::CREATED,
                    axum::Json(json!({"id": format!("{n}")})),
                )
            }
        },
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (base, seen)
}

struct RunOut {
    code: Option<i32>,
    stderr: String,
    report: String,
}

/// `switchyard run` of `crm_config` (a custom REST route) over `records`, with `env` set.
async fn run_custom(crm_config: Value, records: &[Value], env: &[(&str, &str)]) -> RunOut {
    run_route("custom-rest", crm_config, records, env).await
}

/// `switchyard run` of a route to `connector` with `crm_config` over `records`.
async fn run_route(
    connector: &str,
    crm_config: Value,
    records: &[Value],
    env: &[(&str, &str)],
) -> RunOut {
    let dir = tempfile::tempdir().unwrap();
    let route = dir.path().join("route.json");
    std::fs::write(
        &route,
        json!({"spec_version": 1, "tenant": "t", "connector": connector,
               "crm_config": crm_config})
        .to_string(),
    )
    .unwrap();
    let input = dir.path().join("in.ndjson");
    let lines: Vec<String> = records.iter().map(Value::to_string).collect();
    std::fs::write(&input, lines.join("\n") + "\n").unwrap();
    let store = dir.path().join("s.sqlite");
    let report = dir.path().join("r.json");
    let env: Vec<(String, String)> = env
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let (r2, rep2) = (report.clone(), report.clone());
    let out = tokio::task::spawn_blocking(move || {
        let mut c = switchyard();
        for (k, v) in &env {
            c.env(k, v);
        }
        c.env("RUST_LOG", "debug")
            .args(["run", "--mapping"])
            .arg(&route)
            .arg("--input")
            .arg(&input)
            .arg("--store")
            .arg(&store)
            .arg("--report")
            .arg(&r2)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    RunOut {
        code: out.status.code(),
        stderr: String::from_utf8_lossy(&out.stderr).to_string()
            + &String::from_utf8_lossy(&out.stdout),
        report: std::fs::read_to_string(&rep2).unwrap_or_default(),
    }
}

fn contact_template() -> Value {
    json!({"contact": {
        "first_name": "{{customer_name_first}}",
        "email": "{{customer_email}}",
        "address": {"city": "{{customer_city}}"},
        "custom_fields": {"lead_source": "phone_call", "ai_score": "{{ai_analysis.lead_score}}"}
    }})
}

/// Seed 003's custom CRM as written: `POST {api_base_url}/contacts` with a bearer token, the
/// endpoint's own `Authorization: Bearer {{auth.token}}` sent once, one content type, the
/// payload template as the body.
#[tokio::test]
async fn custom_rest_bearer_follows_the_tenants_endpoint_and_payload_template() {
    const TOKEN: &str = "tok-BEARER-91c3d7e0";
    let (base, seen) = recorder().await;
    let out = run_custom(
        json!({"type": "custom", "api_base_url": format!("{base}/v1"),
            "authentication": {"type": "bearer", "token": "env:CR_TOKEN"},
            "endpoints": {"create_contact": {"method": "POST", "path": "/contacts", "headers": {
                "Content-Type": "application/json",
                "Authorization": "Bearer {{auth.token}}",
                "X-Tenant": "acme-{{tenant}}"}}},
            "payload_templates": contact_template()}),
        &[
            json!({"id": "c1", "customer_name_first": "Ann", "customer_email": "ann@example.com",
                 "customer_city": "Austin", "ai_analysis": {"lead_score": 91}}),
        ],
        &[("CR_TOKEN", TOKEN)],
    )
    .await;
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 1, "{seen:#?}");
    let r = &seen[0];
    assert_eq!(
        (r.method.as_str(), r.path.as_str()),
        ("POST", "/v1/contacts")
    );
    assert_eq!(r.header("authorization"), vec![format!("Bearer {TOKEN}")]);
    assert_eq!(r.header("content-type"), vec!["application/json"]);
    assert_eq!(r.header("x-tenant"), vec!["acme-t"]);
    let body: Value = serde_json::from_str(&r.body).unwrap();
    assert_eq!(
        body,
        json!({"first_name": "Ann", "email": "ann@example.com", "address": {"city": "Austin"},
               "custom_fields": {"lead_source": "phone_call", "ai_score": 91}})
    );
}

/// The tenant: `PUT /people` with an API key in `X-Api-Key`, a header templated from
/// `auth.token`; it used to get `POST /contacts` with a bearer token. A vendor error that
/// echoes the key never shows it.
#[tokio::test]
async fn custom_rest_api_key_put_people_and_errors_never_show_the_key() {
    const KEY: &str = "key-APIKEY-4b8e1f27";
    let (base, seen) = recorder().await;
    let out = run_custom(
        json!({"type": "custom", "api_base_url": base,
            "authentication": {"type": "api_key", "header": "X-Api-Key", "token": "env:CR_KEY"},
            "endpoints": {"create_contact": {"method": "PUT", "path": "/people",
                "headers": {"X-Signature": "sig:{{auth.token}}"}}},
            "payload_templates": {"contact": {"email": "{{customer_email}}"}}}),
        &[
            json!({"id": "k1", "customer_email": "ok@example.com"}),
            json!({"id": "k2", "customer_email": "fail@example.com"}),
        ],
        &[("CR_KEY", KEY)],
    )
    .await;
    let seen = seen.lock().unwrap().clone();
    let ok = seen
        .iter()
        .find(|s| s.body.contains("ok@"))
        .unwrap_or_else(|| panic!("{seen:#?}"));
    assert_eq!((ok.method.as_str(), ok.path.as_str()), ("PUT", "/people"));
    assert_eq!(ok.header("x-api-key"), vec![KEY]);
    assert_eq!(ok.header("x-signature"), vec![format!("sig:{KEY}")]);
    assert!(ok.header("authorization").is_empty(), "{ok:#?}");
    assert_eq!(
        serde_json::from_str::<Value>(&ok.body).unwrap(),
        json!({"email": "ok@example.com"})
    );
    assert!(seen.iter().all(|s| s.path == "/people"), "{seen:#?}");
    assert_eq!(out.code, Some(3), "one record refused: {}", out.stderr);
    assert!(
        out.stderr.contains("bad request") || out.report.contains("bad request"),
        "{}",
        out.stderr
    );
    for (place, text) in [("output", &out.stderr), ("report", &out.report)] {
        assert!(!text.contains(KEY), "{place} shows the key: {text}");
        assert!(!text.contains("4b8e1f27"), "{place} shows the key: {text}");
    }
}

/// HTTP Basic from `username` / `password`.
#[tokio::test]
async fn custom_rest_basic_auth() {
    let (base, seen) = recorder().await;
    let out = run_custom(
        json!({"type": "custom", "api_base_url": base,
            "authentication": {"type": "basic", "username": "api-user", "password": "env:CR_PASS"},
            "payload_templates": {"contact": {"email": "{{customer_email}}"}}}),
        &[json!({"id": "b1", "customer_email": "b@example.com"})],
        &[("CR_PASS", "pw-BASIC-77aa")],
    )
    .await;
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 1, "{seen:#?}");
    let want = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode("api-user:pw-BASIC-77aa")
    );
    assert_eq!(seen[0].header("authorization"), vec![want.as_str()]);
    assert_eq!(
        (seen[0].method.as_str(), seen[0].path.as_str()),
        ("POST", "/contacts")
    );
}

/// OAuth 2.0 client credentials: one token request (client id and secret in Basic, the
/// scope in the form), then the obtained token on the endpoint's request, the endpoint's own
/// `Authorization` header giving way to it.
#[tokio::test]
async fn custom_rest_oauth2_client_credentials() {
    let (base, seen) = recorder().await;
    let out = run_custom(
        json!({"type": "custom", "api_base_url": base,
            "authentication": {"type": "oauth2_client_credentials",
                "token_url": format!("{base}/oauth/token"), "client_id": "cid-1",
                "client_secret": "env:CR_SECRET", "scope": "contacts.write"},
            "endpoints": {"create_contact": {"method": "POST", "path": "/crm/people",
                "headers": {"Authorization": "Bearer {{auth.client_id}}"}}},
            "payload_templates": {"contact": {"email": "{{customer_email}}"}}}),
        &[json!({"id": "o1", "customer_email": "o@example.com"})],
        &[("CR_SECRET", "cs-OAUTH-0d9f")],
    )
    .await;
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 2, "{seen:#?}");
    let (tok, req) = (&seen[0], &seen[1]);
    assert_eq!(
        (tok.method.as_str(), tok.path.as_str()),
        ("POST", "/oauth/token")
    );
    let basic = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode("cid-1:cs-OAUTH-0d9f")
    );
    assert_eq!(tok.header("authorization"), vec![basic.as_str()]);
    assert!(
        tok.body.contains("grant_type=client_credentials"),
        "{tok:#?}"
    );
    assert!(tok.body.contains("scope=contacts.write"), "{tok:#?}");
    assert_eq!(
        (req.method.as_str(), req.path.as_str()),
        ("POST", "/crm/people")
    );
    assert_eq!(
        req.header("authorization"),
        vec!["Bearer at-OBTAINED-5c2e9"]
    );
}

/// `validate` names what is wrong or has no effect in a custom REST config.
#[test]
fn custom_rest_validate_reports_unusable_endpoints_and_auth_keys() {
    let dir = tempfile::tempdir().unwrap();
    let route = dir.path().join("route.json");
    std::fs::write(
        &route,
        json!({"spec_version": 1, "tenant": "t", "connector": "custom-rest",
            "crm_config": {"type": "custom", "api_base_url": "https://api.example.com",
                "authentication": {"type": "bearer", "token": "env:T", "username": "u"},
                "endpoints": {
                    "make_contact": {"method": "POST", "path": "/x"},
                    "create_contact": {"method": "POST", "path": "/c",
                        "headers": {"X-Key": "{{auth.api_key}}"}}},
                "payload_templates": {"contact": {"email": "{{customer_email}}"}}}})
        .to_string(),
    )
    .unwrap();
    let out = switchyard()
        .args(["validate", "--format", "json"])
        .arg(&route)
        .arg("connector-specs")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let has = |code: &str, ptr: &str| text.contains(code) && text.contains(ptr);
    assert!(has("W230", "/crm_config/endpoints/make_contact"), "{text}");
    assert!(has("W231", "/crm_config/authentication/username"), "{text}");
    assert!(
        has("E234", "/crm_config/endpoints/create_contact/headers/X-Key"),
        "{text}"
    );
    assert_eq!(out.status.code(), Some(1), "{text}");
}

/// Salesforce's `api_version` was ignored (every request went to v62.0), and the
/// username-password flow of seeds 000/001 could not be configured with the shipped spec.
/// Both flows against a local server: the token request of each, then the API under the
/// tenant's version.
#[tokio::test]
async fn salesforce_api_version_and_both_auth_flows_are_the_tenants() {
    for flow in ["jwt", "password"] {
        let (base, seen) = recorder().await;
        let mut cfg = json!({"type": "salesforce", "instance_url": base,
            "consumer_key": "env:SF_KEY", "username": "env:SF_USER", "api_version": "v54.0",
            "settings": {"login_url": base},
            "object_mappings": {"lead": {"LastName": "customer_name_last", "Email": "customer_email"}}});
        if flow == "password" {
            cfg["settings"]["auth_flow"] = json!("password");
            cfg["settings"]["consumer_secret"] = json!("env:SF_SECRET");
            cfg["settings"]["password"] = json!("env:SF_PASS");
        } else {
            cfg["private_key"] = json!("env:SF_PEM");
        }
        let out = run_route(
            "salesforce",
            cfg,
            &[json!({"id": "s1", "customer_name_last": "Lee", "customer_email": "lee@example.com"})],
            &[
                ("SF_KEY", "3MVG9.consumer"),
                ("SF_USER", "api@example.com"),
                ("SF_SECRET", "cs-SF-6611"),
                ("SF_PASS", "pw-SF-9922TOKEN"),
                ("SF_PEM", switchyard_sandbox::JWT_TEST_PRIVATE_KEY_PEM),
            ],
        )
        .await;
        let seen = seen.lock().unwrap().clone();
        assert_eq!(out.code, Some(0), "{flow}: {}\n{seen:#?}", out.stderr);
        let tok = &seen[0];
        assert_eq!(tok.path, "/services/oauth2/token", "{flow}: {seen:#?}");
        let form: std::collections::HashMap<String, String> =
            url::form_urlencoded::parse(tok.body.as_bytes())
                .into_owned()
                .collect();
        if flow == "password" {
            assert_eq!(form["grant_type"], "password");
            assert_eq!(form["client_id"], "3MVG9.consumer");
            assert_eq!(form["client_secret"], "cs-SF-6611");
            assert_eq!(form["username"], "api@example.com");
            assert_eq!(form["password"], "pw-SF-9922TOKEN");
        } else {
            assert_eq!(
                form["grant_type"],
                "urn:ietf:params:oauth:grant-type:jwt-bearer"
            );
            let claims = form["assertion"].split('.').nth(1).unwrap();
            let claims: Value = serde_json::from_slice(
                &base64::engine::general_purpose::URL_SAFE_NO_PAD
                    .decode(claims)
                    .unwrap(),
            )
            .unwrap();
            assert_eq!(claims["iss"], "3MVG9.consumer");
            assert_eq!(claims["sub"], "api@example.com");
        }
        let api: Vec<&Seen> = seen[1..].iter().collect();
        assert!(!api.is_empty(), "{flow}: {seen:#?}");
        for r in &api {
            assert!(
                r.path.starts_with("/services/data/v54.0/"),
                "{flow}: {} {}",
                r.method,
                r.path
            );
            assert_eq!(r.header("authorization"), vec!["Bearer 00Dx!SF-TOKEN-e3a1"]);
        }
        assert!(
            api.iter().any(|r| r.body.contains("lee@example.com")),
            "{flow}: {api:#?}"
        );
    }
}

/// Pipedrive's `pipeline_id`, `stage_id` and `default_owner` reach the deal request.
#[test]
fn pipedrive_deal_settings_reach_the_deal_request() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.ndjson");
    std::fs::write(
        &input,
        json!({"call_id": "p1", "customer_name": "Ada Lovelace", "customer_email": "ada@example.com",
               "ai_analysis": {"project_type": "kitchen"}})
        .to_string()
            + "\n",
    )
    .unwrap();
    let out = switchyard()
        .args([
            "run",
            "--dry-run",
            "--mapping",
            "mapping-specs/examples/pipedrive-person-deal.json",
            "--input",
        ])
        .arg(&input)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    let deal: Value = stdout
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|r| {
            r["url"]
                .as_str()
                .is_some_and(|u| u.ends_with("/api/v2/deals"))
        })
        .unwrap_or_else(|| panic!("{stdout}"));
    assert_eq!(deal["body"]["pipeline_id"], 1);
    assert_eq!(deal["body"]["stage_id"], 2);
    assert_eq!(deal["body"]["owner_id"], 123456);
}

fn connector_specs() -> Vec<switchyard::spec::ConnectorSpec> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(crate::cli::repo_root().join("connector-specs")).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "toml") {
            out.push(toml::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap());
        }
    }
    out
}

/// Seed 003's HubSpot keys that did nothing (`pipeline_id`, `deal_stage`, `contact_owner`,
/// `company_domain_mapping`, `portal_id`) validated with 0 warnings. The first four now take
/// effect (`hubspot_seed_003_brings_its_deal_company_owner_and_associations`) and are not
/// warned about; `portal_id`, which no request needs, still is. For every connector and every
/// scalar `crm_config` key, validate warns exactly when nothing in the connector's spec reads
/// the key.
#[test]
fn validate_warns_for_every_key_without_effect() {
    let out = switchyard()
        .args([
            "validate",
            "--format",
            "json",
            "mapping-specs/examples/hubspot-contact.json",
            "connector-specs",
        ])
        .output()
        .unwrap();
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let mut w232: Vec<String> = v["diagnostics"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| d["code"] == "W232")
        .map(|d| d["pointer"].as_str().unwrap().to_string())
        .collect();
    w232.sort();
    assert_eq!(w232, ["/crm_config/portal_id"], "{v:#}");
    // Every connector × every scalar key, through the library.
    let scalar = [
        "api_token",
        "portal_id",
        "pipeline_id",
        "deal_stage",
        "contact_owner",
        "instance_url",
        "consumer_key",
        "private_key",
        "username",
        "api_version",
        "company_domain",
        "stage_id",
        "default_owner",
        "api_base_url",
    ];
    for spec in connector_specs() {
        let name = spec.connector.name.clone();
        for key in scalar {
            let m: switchyard::spec::MappingSpec = serde_json::from_value(json!({
                "spec_version": 1, "tenant": "t", "connector": name,
                "crm_config": {"type": "x", key: "v", "settings": {"zz_unread": "1"},
                    "endpoints": {"create_contact": {"method": "POST", "path": "/c"}}}}))
            .unwrap();
            let d = switchyard::spec::keys::without_effect(&spec, &m);
            let warned = |p: &str| d.0.iter().any(|x| x.code == "W232" && x.pointer == p);
            let read = !switchyard::spec::keys::readers(&spec, key).is_empty();
            assert_eq!(
                warned(&format!("/crm_config/{key}")),
                !read,
                "{name}.{key}: {d}"
            );
            assert!(warned("/crm_config/settings/zz_unread"), "{name}: {d}");
            let custom = spec.connector.kind == switchyard::spec::connector::ConnectorKind::Custom;
            assert_eq!(warned("/crm_config/endpoints"), !custom, "{name}: {d}");
        }
    }
}

/// The invariant: every key of the mapping spec schema (envelope and `crm_config`) is in the
/// key table with an effect and an existing test, or (per connector) has no effect and is
/// warned about; `docs/keys.md` is the table as the code makes it.
#[test]
fn every_mapping_key_has_an_effect_and_a_test_or_a_warning() {
    use switchyard::spec::keys::{
        ENVELOPE_KEYS, NO_EFFECT_TEST, SCALAR_KEY_TESTS, STRUCTURAL_KEYS, effect_of,
    };
    let root = crate::cli::repo_root();
    let schema: Value = serde_json::from_str(
        &std::fs::read_to_string(root.join("schemas/mapping.schema.json")).unwrap(),
    )
    .unwrap();
    let test_exists = |t: &str| {
        let (module, f) = t.split_once("::").unwrap();
        let text = std::fs::read_to_string(root.join(format!("tests/all/{module}.rs")))
            .unwrap_or_default();
        text.contains(&format!("fn {f}("))
    };
    let mut missing = Vec::new();
    for k in schema["properties"].as_object().unwrap().keys() {
        match ENVELOPE_KEYS.iter().find(|d| d.key == k) {
            Some(d) if test_exists(d.test) => {}
            Some(d) => missing.push(format!("{k}: test {} does not exist", d.test)),
            None => missing.push(format!("envelope key `{k}` is not in spec::keys")),
        }
    }
    let specs = connector_specs();
    let crm = schema["$defs"]["CrmConfig"]["properties"]
        .as_object()
        .unwrap();
    assert!(crm.len() >= 25, "{crm:?}");
    for k in crm.keys() {
        if let Some(d) = STRUCTURAL_KEYS.iter().find(|d| d.key == k) {
            if !test_exists(d.test) {
                missing.push(format!("{k}: test {} does not exist", d.test));
            }
            continue;
        }
        // A setting: its effect is what the connector's spec reads.
        for c in &specs {
            let (effect, test) = effect_of(c, k);
            if effect.starts_with("none") {
                assert_eq!(test, NO_EFFECT_TEST);
            } else if test == NO_EFFECT_TEST {
                missing.push(format!(
                    "{}.{k} has an effect ({effect}) but no test in SCALAR_KEY_TESTS",
                    c.connector.name
                ));
            }
        }
    }
    for (k, t) in SCALAR_KEY_TESTS {
        if !test_exists(t) {
            missing.push(format!("{k}: test {t} does not exist"));
        }
    }
    assert!(test_exists(NO_EFFECT_TEST));
    assert!(missing.is_empty(), "{missing:#?}");
    let text = switchyard::spec::keys::markdown(&specs);
    let path = root.join("docs/keys.md");
    if std::env::var_os("BLESS").is_some() {
        std::fs::write(&path, &text).unwrap();
    }
    assert!(
        std::fs::read_to_string(&path).unwrap_or_default() == text,
        "docs/keys.md is stale: run with BLESS=1"
    );
}

/// Keys the engine reads by name nowhere, with why they are not silent: documentation, a
/// serde rename or tag, a single-valued choice, or a mapping setting whose effect is the
/// connector spec's (checked per connector by `spec::keys`, W232).
const NOT_READ_BY_NAME: &[(&str, &str)] = &[
    ("docs_url", "documentation: a link for people"),
    (
        "spec_version",
        "pinned by its type (`SpecVersion`): another version is refused at load",
    ),
    (
        "api_version",
        "connector: documents the version its operations follow (the base URL carries it); mapping: a setting (spec::keys)",
    ),
    (
        "type",
        "a serde tag or rename: the variant chosen is the effect",
    ),
    ("in", "renamed `location`"),
    ("if", "renamed `condition`"),
    (
        "match_strategy",
        "one value (`exact`), the only strategy there is",
    ),
];

/// Whether `src` reads the field `name` (`x.name`, `name: …` in a pattern, `{ name }`).
fn reads_field(src: &str, name: &str) -> bool {
    let b = src.as_bytes();
    let ident = |c: u8| c.is_ascii_alphanumeric() || c == b'_';
    src.match_indices(name).any(|(i, _)| {
        let before = if i == 0 { b' ' } else { b[i - 1] };
        let after = b.get(i + name.len()).copied().unwrap_or(b' ');
        !ident(before)
            && !ident(after)
            && before != b'"'
            && after != b'"'
            && (before == b'.' || matches!(after, b',' | b':' | b'}' | b' '))
    })
}

/// Issue 12's invariant over every spec kind: each key of the connector, mapping, attribution
/// and plugin schemas is read by the engine outside the spec model (so it has an effect), or
/// is listed above with the reason it needs no reader; a mapping setting that is not read is
/// then the connector's business, warned per connector (W232).
#[test]
fn every_key_of_every_spec_kind_is_read_by_the_engine_or_accounted_for() {
    let root = crate::cli::repo_root();
    let model = [
        "connector.rs",
        "mapping.rs",
        "attribution.rs",
        "plugin.rs",
        "common.rs",
        "schema.rs",
        "keys.rs",
    ];
    let mut src = String::new();
    let mut stack = vec![root.join("engine/src"), root.join("engine/cli/src")];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "rs") {
                let in_spec = p.parent().is_some_and(|d| d.ends_with("spec"));
                let name = p.file_name().unwrap().to_string_lossy().to_string();
                if !(in_spec && model.contains(&name.as_str())) {
                    src.push_str(&std::fs::read_to_string(&p).unwrap());
                }
            }
        }
    }
    fn props(v: &Value, out: &mut std::collections::BTreeSet<String>) {
        match v {
            Value::Object(m) => {
                if let Some(Value::Object(p)) = m.get("properties") {
                    for (k, d) in p {
                        if d.get("const").is_none() {
                            out.insert(k.clone());
                        }
                    }
                }
                m.values().for_each(|x| props(x, out));
            }
            Value::Array(a) => a.iter().for_each(|x| props(x, out)),
            _ => {}
        }
    }
    let mapping_settings: Vec<&str> = switchyard::spec::keys::SCALAR_KEY_TESTS
        .iter()
        .map(|(k, _)| *k)
        .chain([
            "portal_id",
            "deal_stage",
            "contact_owner",
            "company_domain_mapping",
            "company_domain",
        ])
        .collect();
    let mut unread = Vec::new();
    for kind in ["connector", "mapping", "attribution", "plugin"] {
        let schema: Value = serde_json::from_str(
            &std::fs::read_to_string(root.join(format!("schemas/{kind}.schema.json"))).unwrap(),
        )
        .unwrap();
        let mut keys = Default::default();
        props(&schema, &mut keys);
        assert!(keys.len() > 15, "{kind}: {keys:?}");
        for k in keys {
            let accounted = NOT_READ_BY_NAME.iter().any(|(n, _)| *n == k)
                || kind == "mapping" && mapping_settings.contains(&k.as_str());
            if !accounted && !reads_field(&src, &k) {
                unread.push(format!("{kind}: `{k}`"));
            }
        }
    }
    assert!(
        unread.is_empty(),
        "keys no engine code reads (give each an effect, or a W232-style warning): {unread:#?}"
    );
    // The check can fail: a key nothing reads is found.
    assert!(!reads_field(&src, "no_such_key_anywhere"));
    assert!(reads_field("if d.read_only {", "read_only"));
}

/// Duplicate detection searched the CRM with the phone as the record wrote it, so a contact
/// stored in E.164 was missed and created again; the search now sends E.164 first (then the
/// written form).
#[tokio::test]
async fn duplicate_search_sends_the_normalised_phone() {
    use crate::connector::{hubspot_emu_opts, opts, session, spec};
    use switchyard::connector::{Deliverer, DeliveryItem};
    use switchyard::spec::mapping::{DuplicateAction, DuplicateDetection, MatchStrategy};
    use switchyard_sandbox::{self as sandbox, Vendor};
    let emu = sandbox::start(Vendor::Hubspot, hubspot_emu_opts())
        .await
        .unwrap();
    emu.seed(
        "contacts",
        &[json!({"id": "9001", "properties": {"phone": "+15550100007", "firstname": "Old"}})],
    )
    .unwrap();
    let s = session(
        spec("hubspot"),
        &emu,
        &[("api_token", "access_token")],
        json!({}),
        true,
    );
    let d = Deliverer::new(
        s,
        None,
        opts(
            Some(DuplicateDetection {
                enabled: true,
                match_fields: vec!["phone".into()],
                match_strategy: MatchStrategy::Exact,
                action: DuplicateAction::UpdateExisting,
            }),
            "contact",
        ),
    );
    let mut o = serde_json::Map::new();
    o.insert("phone".into(), json!("(555) 010-0007"));
    o.insert("firstname".into(), json!("New"));
    let item = DeliveryItem {
        key: "call_7".into(),
        mapped: switchyard::record::Mapped {
            objects: [("contact".to_string(), o)].into_iter().collect(),
            triggers: vec![],
            notes: vec![],
        },
    };
    let r = d.deliver(vec![item]).await;
    assert_eq!(
        (r.created, r.updated, r.failed),
        (0, 1, 0),
        "{:?}",
        r.objects
    );
    let recs = emu.records("contacts");
    assert_eq!(recs.len(), 1, "{recs:#?}");
    assert_eq!(recs[0]["properties"]["firstname"], "New");
    emu.shutdown().await;
}

/// Pipedrive's person create named each custom field it sent; a custom field beyond those was
/// mapped and then dropped from the request without a word. Now the tenant's custom fields are
/// resolved to Pipedrive's keys and sent in `custom_fields` (`field_keys`), so none is dropped;
/// a create that names its fields one by one still gets W232 for a field it never sends.
#[test]
fn mapped_fields_a_create_operation_never_sends_are_warned() {
    let specs = connector_specs();
    let pipedrive = specs
        .iter()
        .find(|s| s.connector.name == "pipedrive")
        .unwrap();
    let m: switchyard::spec::MappingSpec = serde_json::from_value(json!({
        "spec_version": 1, "tenant": "t", "connector": "pipedrive",
        "crm_config": {"type": "pipedrive", "api_token": "env:T",
            "field_mappings": {"name": "customer_name", "email": "customer_email"},
            "custom_fields": {"ai_lead_score": "ai_analysis.lead_score",
                              "favourite_colour": "colour"}}}))
    .unwrap();
    let d = switchyard::spec::keys::without_effect(pipedrive, &m);
    assert!(
        !d.0.iter()
            .any(|x| x.code == "W232" && x.pointer.contains("custom_fields")),
        "every custom field is sent: {d}"
    );
    // The same spec with a person create that lists its custom fields by name, as it did.
    let mut listed = pipedrive.clone();
    let person = listed.objects.get_mut("person").unwrap();
    person.field_keys = None;
    person.fields.insert(
        "ai_lead_score".into(),
        switchyard::spec::connector::FieldSpec::Type(switchyard::spec::FieldType::Number),
    );
    listed.operations.get_mut("create_person").unwrap().body = Some(json!({
        "name": "{{payload.name}}",
        "emails": ["{{payload.email}}"],
        "custom_fields": {"ai_lead_score": "{{payload.ai_lead_score}}"}
    }));
    let d = switchyard::spec::keys::without_effect(&listed, &m);
    let ptrs: Vec<&str> =
        d.0.iter()
            .filter(|x| x.code == "W232")
            .map(|x| x.pointer.as_str())
            .collect();
    assert_eq!(ptrs, ["/crm_config/custom_fields/favourite_colour"], "{d}");
    // `field_keys` without `into`: resolved fields stay at the top level under their keys,
    // which a body naming fields one by one cannot send.
    let mut top = pipedrive.clone();
    top.objects
        .get_mut("person")
        .unwrap()
        .field_keys
        .as_mut()
        .unwrap()
        .into = None;
    let d = switchyard::spec::keys::without_effect(&top, &m);
    assert_eq!(
        d.0.iter()
            .filter(|x| x.code == "W232" && x.pointer.contains("custom_fields"))
            .count(),
        2,
        "{d}"
    );
    // A connector whose create sends the whole payload drops nothing.
    let hubspot = specs
        .iter()
        .find(|s| s.connector.name == "hubspot")
        .unwrap();
    let m: switchyard::spec::MappingSpec = serde_json::from_value(json!({
        "spec_version": 1, "tenant": "t", "connector": "hubspot",
        "crm_config": {"type": "hubspot", "api_token": "env:T",
            "field_mappings": {"favourite_colour": "colour"}}}))
    .unwrap();
    assert!(
        switchyard::spec::keys::without_effect(hubspot, &m)
            .0
            .is_empty(),
        "hubspot sends every mapped property"
    );
}

#[tokio::test]
async fn custom_rest_endpoint_for_a_new_object_validates_maps_and_runs() {
    let (base, seen) = recorder().await;
    let cfg = json!({"type": "custom", "api_base_url": base,
        "authentication": {"type": "bearer", "token": "env:CR_TOKEN"},
        "endpoints": {"create_person": {"method": "POST", "path": "/people/{{tenant}}"}},
        "payload_templates": {"person": {"full_name": "{{customer_name}}"}}});
    let dir = tempfile::tempdir().unwrap();
    let route = dir.path().join("route.json");
    std::fs::write(
        &route,
        json!({"spec_version": 1, "tenant": "t", "connector": "custom-rest", "crm_config": cfg})
            .to_string(),
    )
    .unwrap();
    let r2 = route.clone();
    let (validate, map) = tokio::task::spawn_blocking(move || {
        let v = switchyard()
            .args(["validate"])
            .arg(&r2)
            .arg("connector-specs")
            .output()
            .unwrap();
        let mut child = switchyard()
            .args(["map", "--mapping"])
            .arg(&r2)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        {
            use std::io::Write;
            child
                .stdin
                .take()
                .unwrap()
                .write_all(b"{\"customer_name\": \"Ann Lee\"}\n")
                .unwrap();
        }
        (v, child.wait_with_output().unwrap())
    })
    .await
    .unwrap();
    assert_eq!(
        validate.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&validate.stdout)
    );
    assert_eq!(
        String::from_utf8_lossy(&map.stdout),
        "{\"objects\":{\"person\":{\"full_name\":\"Ann Lee\"}},\"triggers\":[]}\n"
    );
    let out = run_custom(
        cfg,
        &[json!({"id": "n1", "customer_name": "Ann Lee"})],
        &[("CR_TOKEN", "tok-PERSON-1")],
    )
    .await;
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 1, "{seen:#?}");
    assert_eq!(
        (seen[0].method.as_str(), seen[0].path.as_str()),
        ("POST", "/people/t")
    );
    assert_eq!(
        serde_json::from_str::<Value>(&seen[0].body).unwrap(),
        json!({"full_name": "Ann Lee"})
    );
}

/// One call as CallRail sends it, for the HubSpot tests below: `name` is "First Last", `ai`
/// the analysis's (project type, timeline, lead score).
fn call(id: &str, name: &str, email: Option<&str>, phone: &str, ai: (&str, &str, u32)) -> Value {
    let (first, last) = name.split_once(' ').unwrap();
    let (project, timeline, score) = ai;
    let mut r = json!({
        "call_id": id, "customer_name": name,
        "customer_name_first": first, "customer_name_last": last,
        "customer_phone": phone, "phone": phone, "customer_city": "Austin", "customer_state": "TX",
        "source": "Google Ads", "recording_url": format!("https://rec.example.com/{id}"),
        "transcription": "I'd like a quote.", "call_details": {"duration": 120},
        "ai_analysis": {"project_type": project, "timeline": timeline, "lead_score": score,
                        "urgency": "low"}
    });
    if let Some(e) = email {
        r["email"] = json!(e);
        r["customer_email"] = json!(e);
    }
    r
}

/// `switchyard run` of `route` over `input` with `store`, its report as JSON.
async fn run_to(
    route: &std::path::Path,
    input: &std::path::Path,
    store: &std::path::Path,
) -> (Option<i32>, String, Value) {
    let dir = route.parent().unwrap().to_path_buf();
    let report = dir.join(format!("r-{}.json", rand_suffix()));
    let (route, input, store, r2) = (
        route.to_path_buf(),
        input.to_path_buf(),
        store.to_path_buf(),
        report.clone(),
    );
    let out = tokio::task::spawn_blocking(move || {
        switchyard()
            .args(["run", "--mapping"])
            .arg(&route)
            .arg("--input")
            .arg(&input)
            .arg("--store")
            .arg(&store)
            .arg("--report")
            .arg(&r2)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    let report = std::fs::read_to_string(&report)
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or(Value::Null);
    (out.status.code(), stderr, report)
}

fn rand_suffix() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    N.fetch_add(1, Ordering::Relaxed)
}

/// Seed 003's HubSpot block (the advanced example: the seed's keys and its mapping examples)
/// run by `switchyard run` against the HubSpot emulator, read back over HTTP: each call is a
/// contact owned by `contact_owner`'s owner (looked up by e-mail through the owners API), a
/// deal in `pipeline_id`/`deal_stage` named `deal_name` and worth `estimated_value` with the
/// same owner, and — with `company_domain_mapping` — the company of the e-mail domain (one per
/// domain, reused, none without an e-mail); contact↔deal, contact↔company and deal↔company are
/// associated (v4), a second call of a known contact associates its new deal with it, and the
/// workflow's tasks belong to their contact. Running the same input again creates nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hubspot_seed_003_brings_its_deal_company_owner_and_associations() {
    use switchyard_sandbox::{self as sandbox, RateLimitOverride, SandboxOptions, Vendor};
    let emu = sandbox::start(
        Vendor::Hubspot,
        SandboxOptions {
            rate_limit: Some(RateLimitOverride {
                requests: 5000,
                per: std::time::Duration::from_secs(1),
            }),
            // Searches lag writes (as HubSpot's do): a company created for one record is
            // found for the next through the dedupe index, not the search.
            search_lag: std::time::Duration::from_millis(400),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    // 150 owners, the tenant's among them (not first, other case): only the e-mail filter
    // finds it.
    let owners: Vec<Value> = (0..150)
        .map(|i| {
            json!({"id": format!("{}", 71_000_000 + i), "email": format!("rep{i}@company.com"),
                        "firstName": "Rep", "lastName": format!("{i}"), "userId": 8_000_000 + i})
        })
        .collect();
    emu.seed("owners", &owners).unwrap();
    let owner_id = "71000077";
    let token = emu.credentials().get("access_token").unwrap().to_string();
    let mut spec: Value = serde_json::from_str(
        &std::fs::read_to_string(
            crate::cli::repo_root().join("mapping-specs/examples/hubspot-advanced.json"),
        )
        .unwrap(),
    )
    .unwrap();
    for (k, v) in [
        ("pipeline_id", json!("default")),
        ("deal_stage", json!("appointmentscheduled")),
        ("company_domain_mapping", json!(true)),
    ] {
        assert_eq!(
            spec["crm_config"][k], v,
            "the example carries the seed's `{k}`"
        );
    }
    let cfg = &mut spec["crm_config"];
    cfg["api_token"] = json!(token);
    cfg["contact_owner"] = json!("REP77@Company.com");
    cfg["settings"] = json!({"base_url": emu.base_url()});
    let dir = tempfile::tempdir().unwrap();
    let route = dir.path().join("route.json");
    std::fs::write(&route, spec.to_string()).unwrap();
    let calls = [
        call(
            "C1",
            "Ada Lovelace",
            Some("ada@analytical.example"),
            "(555) 201-0001",
            ("kitchen", "immediate", 85),
        ),
        call(
            "C2",
            "Charles Babbage",
            Some("Charles@Analytical.example"),
            "(555) 201-0002",
            ("bathroom", "1-3_months", 40),
        ),
        call(
            "C3",
            "Grace Hopper",
            Some("grace@cobol.example"),
            "(555) 201-0003",
            ("unknown", "3-6_months", 50),
        ),
        call(
            "C4",
            "Alan Turing",
            None,
            "(555) 201-0004",
            ("addition", "6+_months", 30),
        ),
        // A consumer mail address names no company.
        call(
            "C6",
            "Edsger Dijkstra",
            Some("edsger.d@gmail.com"),
            "(555) 201-0006",
            ("kitchen", "3-6_months", 20),
        ),
        // Ada calls again: her contact is found (updated), her new deal associated with it.
        call(
            "C5",
            "Ada Lovelace",
            Some("ada@analytical.example"),
            "(555) 201-0001",
            ("whole_home", "immediate", 90),
        ),
    ];
    let input = dir.path().join("calls.ndjson");
    let lines: Vec<String> = calls.iter().map(Value::to_string).collect();
    std::fs::write(&input, lines.join("\n") + "\n").unwrap();
    let store = dir.path().join("s.sqlite");

    let (code, stderr, r) = run_to(&route, &input, &store).await;
    assert_eq!(code, Some(0), "{stderr}\n{r:#}");
    assert_eq!(r["failed"], 0, "{r:#}");
    let count = |object: &str, outcome: &str| {
        r["objects"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|o| o["object"] == object && o["outcome"] == outcome)
            .count()
    };
    assert_eq!(
        (count("contact", "created"), count("contact", "updated")),
        (5, 1),
        "{r:#}"
    );
    assert_eq!(
        (count("deal", "created"), count("company", "created")),
        (6, 2),
        "{r:#}"
    );
    assert_eq!(
        count("company", "skipped"),
        2,
        "reused for C2 and C5: {r:#}"
    );

    let c = reqwest::Client::new();
    let get = |path: String| {
        let (c, base, token) = (c.clone(), emu.base_url().to_string(), token.clone());
        async move {
            let resp = c
                .get(format!("{base}{path}"))
                .bearer_auth(&token)
                .send()
                .await
                .unwrap();
            assert_eq!(resp.status(), 200, "{path}");
            resp.json::<Value>().await.unwrap()
        }
    };
    let by = |records: Vec<Value>, prop: &str| -> std::collections::BTreeMap<String, Value> {
        records
            .into_iter()
            .map(|r| (r["properties"][prop].as_str().unwrap_or("").to_string(), r))
            .collect()
    };
    let contacts = by(
        get("/crm/v3/objects/contacts?limit=100&properties=email,firstname,hubspot_owner_id&associations=deals,companies".into())
            .await["results"]
            .as_array()
            .unwrap()
            .clone(),
        "firstname",
    );
    assert_eq!(contacts.len(), 5, "{contacts:#?}");
    let companies = by(
        get("/crm/v3/objects/companies?limit=100&properties=domain,name".into()).await["results"]
            .as_array()
            .unwrap()
            .clone(),
        "domain",
    );
    assert_eq!(
        companies.keys().collect::<Vec<_>>(),
        ["analytical.example", "cobol.example"],
        "one company per e-mail domain, none without an e-mail or for a consumer mail address"
    );
    assert_eq!(
        companies["cobol.example"]["properties"]["name"],
        "cobol.example"
    );
    let deals = get("/crm/v3/objects/deals?limit=100&properties=dealname,amount,pipeline,dealstage,hubspot_owner_id".into())
        .await["results"]
        .as_array()
        .unwrap()
        .clone();
    let deal_names: std::collections::BTreeSet<&str> = deals
        .iter()
        .map(|d| d["properties"]["dealname"].as_str().unwrap())
        .collect();
    assert_eq!(
        deal_names,
        [
            "Ada Lovelace - kitchen Project",
            "Ada Lovelace - whole_home Project",
            "Alan Turing - addition Project",
            "Edsger Dijkstra - kitchen Project",
            "Charles Babbage - bathroom Project",
            "Grace Hopper - unknown Project",
        ]
        .into_iter()
        .collect(),
        "{deals:#?}"
    );
    for d in &deals {
        let p = &d["properties"];
        assert_eq!(
            (p["pipeline"].as_str(), p["dealstage"].as_str()),
            (Some("default"), Some("appointmentscheduled")),
            "{d}"
        );
        assert_eq!(p["hubspot_owner_id"], owner_id, "{d}");
        let expected = match p["dealname"].as_str().unwrap() {
            n if n.contains("kitchen") => "25000",
            n if n.contains("bathroom") => "15000",
            n if n.contains("whole_home") => "100000",
            n if n.contains("addition") => "50000",
            _ => "20000",
        };
        assert_eq!(p["amount"], expected, "the mapped estimated_value: {d}");
    }
    let deal_of = |name: &str| {
        deals
            .iter()
            .find(|d| d["properties"]["dealname"] == name)
            .unwrap()["id"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let ids = |v: &Value, to: &str| -> std::collections::BTreeSet<String> {
        v["associations"][to]["results"]
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|x| x["id"].as_str().unwrap().to_string())
                    .collect()
            })
            .unwrap_or_default()
    };
    let set = |xs: &[&str]| {
        xs.iter()
            .map(|s| s.to_string())
            .collect::<std::collections::BTreeSet<_>>()
    };
    let analytical = companies["analytical.example"]["id"].as_str().unwrap();
    let cobol = companies["cobol.example"]["id"].as_str().unwrap();
    for c in contacts.values() {
        assert_eq!(c["properties"]["hubspot_owner_id"], owner_id, "{c}");
    }
    let ada = &contacts["Ada"];
    assert_eq!(
        ids(ada, "deals"),
        set(&[
            &deal_of("Ada Lovelace - kitchen Project"),
            &deal_of("Ada Lovelace - whole_home Project")
        ]),
        "{ada}"
    );
    assert_eq!(ids(ada, "companies"), set(&[analytical]), "{ada}");
    assert_eq!(ids(&contacts["Charles"], "companies"), set(&[analytical]));
    assert_eq!(
        ids(&contacts["Charles"], "deals"),
        set(&[&deal_of("Charles Babbage - bathroom Project")])
    );
    assert_eq!(ids(&contacts["Grace"], "companies"), set(&[cobol]));
    assert_eq!(
        ids(&contacts["Alan"], "companies"),
        set(&[]),
        "no e-mail, no company"
    );
    assert_eq!(
        ids(&contacts["Edsger"], "companies"),
        set(&[]),
        "gmail.com names no company"
    );
    assert_eq!(
        ids(&contacts["Alan"], "deals"),
        set(&[&deal_of("Alan Turing - addition Project")])
    );
    // deal → company through the v4 API: the default (unlabeled) type, 341.
    let v4 = get(format!(
        "/crm/v4/objects/deals/{}/associations/companies",
        deal_of("Grace Hopper - unknown Project")
    ))
    .await;
    assert_eq!(v4["results"][0]["toObjectId"], cobol, "{v4}");
    assert_eq!(
        v4["results"][0]["associationTypes"][0]["typeId"], 341,
        "{v4}"
    );
    let v4 = get(format!(
        "/crm/v4/objects/deals/{}/associations/companies",
        deal_of("Alan Turing - addition Project")
    ))
    .await;
    assert_eq!(v4["results"], json!([]), "{v4}");
    // The workflow's tasks (timeline `immediate`: C1, C5) belong to Ada, with her owner.
    let tasks = emu.records("tasks");
    assert_eq!(tasks.len(), 2, "{tasks:#?}");
    for t in &tasks {
        let task = get(format!(
            "/crm/v3/objects/tasks/{}?properties=hubspot_owner_id&associations=contacts",
            t["id"].as_str().unwrap()
        ))
        .await;
        assert_eq!(
            ids(&task, "contacts"),
            set(&[ada["id"].as_str().unwrap()]),
            "{task}"
        );
        assert_eq!(
            task["associations"]["contacts"]["results"][0]["type"], "task_to_contact",
            "{task}"
        );
        assert_eq!(task["properties"]["hubspot_owner_id"], owner_id, "{task}");
    }

    // The same input again: nothing new in the CRM; contacts and deals updated, companies
    // reused, associations and tasks not made again.
    let before: Vec<usize> = ["contacts", "companies", "deals", "tasks"]
        .iter()
        .map(|o| emu.records(o).len())
        .collect();
    let (code, stderr, r) = run_to(&route, &input, &store).await;
    assert_eq!(code, Some(0), "{stderr}\n{r:#}");
    assert_eq!(
        (r["created"].as_u64(), r["failed"].as_u64()),
        (Some(0), Some(0)),
        "{r:#}"
    );
    let after: Vec<usize> = ["contacts", "companies", "deals", "tasks"]
        .iter()
        .map(|o| emu.records(o).len())
        .collect();
    assert_eq!(before, after);
    assert_eq!(after, [5, 2, 6, 2]);
    let assoc: Vec<&Value> = r["actions"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["trigger"] == "associations")
        .collect();
    assert!(
        !assoc.is_empty() && assoc.iter().all(|a| a["status"] == "skipped"),
        "{assoc:#?}"
    );
    emu.shutdown().await;
}

/// Seed 003's HubSpot config exactly as written, dry run over four calls: the owner is looked
/// up once for the run (`GET /crm/v3/owners?email=owner@company.com`), every contact, deal and
/// task carries it, each deal is in the seed's pipeline and stage (named after the contact:
/// the seed maps no deal name), the company is the e-mail domain's, and three v4 associations
/// follow each record.
#[test]
fn hubspot_seed_003_dry_run_looks_the_owner_up_once_and_associates_every_record() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.ndjson");
    let calls: Vec<String> = std::fs::read_to_string(
        crate::cli::repo_root().join("mapping-specs/examples/data/calls.ndjson"),
    )
    .unwrap()
    .lines()
    .take(4)
    .map(String::from)
    .collect();
    std::fs::write(&input, calls.join("\n") + "\n").unwrap();
    let out = switchyard()
        .args([
            "run",
            "--dry-run",
            "--mapping",
            "mapping-specs/examples/hubspot-contact.json",
            "--input",
        ])
        .arg(&input)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let of = |method: &str, path: &str| -> Vec<&Value> {
        lines
            .iter()
            .filter(|l| {
                l["method"] == method
                    && l["url"].as_str().unwrap().split('?').next().unwrap()
                        == format!("https://api.hubapi.com{path}")
            })
            .collect()
    };
    let owners = of("GET", "/crm/v3/owners");
    assert_eq!(owners.len(), 1, "{stdout}");
    assert!(
        owners[0]["url"]
            .as_str()
            .unwrap()
            .contains("email=owner%40company.com"),
        "{}",
        owners[0]
    );
    let contacts = of("POST", "/crm/v3/objects/contacts");
    assert_eq!(contacts.len(), 4);
    assert!(
        contacts
            .iter()
            .all(|c| c["body"]["properties"]["hubspot_owner_id"] == "dry-run-owner")
    );
    let deals = of("POST", "/crm/v3/objects/deals");
    assert_eq!(deals.len(), 4);
    let first = &deals[0]["body"]["properties"];
    assert_eq!(
        (
            first["pipeline"].as_str(),
            first["dealstage"].as_str(),
            first["hubspot_owner_id"].as_str()
        ),
        (
            Some("default"),
            Some("appointmentscheduled"),
            Some("dry-run-owner")
        ),
        "{first}"
    );
    assert_eq!(first["dealname"], "Olivia Garcia");
    let companies = of("POST", "/crm/v3/objects/companies");
    assert_eq!(
        companies[0]["body"]["properties"],
        json!({"domain": "example.com", "name": "example.com"})
    );
    let puts: Vec<&Value> = lines.iter().filter(|l| l["method"] == "PUT").collect();
    assert_eq!(puts.len(), 12, "{stdout}");
    assert!(puts.iter().any(|p| p["url"] == "https://api.hubapi.com/crm/v4/objects/deals/dry-run-deal-id/associations/default/companies/dry-run-company-id"));
}

/// An owner e-mail HubSpot does not know: nothing of the run is sent (no contact without the
/// owner the tenant asked for), every record is dead-lettered with a reason naming the
/// lookup and the e-mail, so a replay after the fix delivers them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hubspot_an_unknown_contact_owner_sends_nothing_and_says_why() {
    use switchyard_sandbox::{self as sandbox, SandboxOptions, Vendor};
    let emu = sandbox::start(Vendor::Hubspot, SandboxOptions::default())
        .await
        .unwrap();
    let token = emu.credentials().get("access_token").unwrap().to_string();
    let mut spec: Value = serde_json::from_str(
        &std::fs::read_to_string(
            crate::cli::repo_root().join("mapping-specs/examples/hubspot-contact.json"),
        )
        .unwrap(),
    )
    .unwrap();
    spec["crm_config"]["api_token"] = json!(token);
    spec["crm_config"]["contact_owner"] = json!("nobody@company.com");
    spec["crm_config"]["settings"] = json!({"base_url": emu.base_url()});
    let dir = tempfile::tempdir().unwrap();
    let route = dir.path().join("route.json");
    std::fs::write(&route, spec.to_string()).unwrap();
    let input = dir.path().join("in.ndjson");
    let calls = [
        call(
            "N1",
            "Ada Lovelace",
            Some("ada@analytical.example"),
            "(555) 201-0001",
            ("kitchen", "1-3_months", 10),
        ),
        call(
            "N2",
            "Grace Hopper",
            Some("grace@cobol.example"),
            "(555) 201-0003",
            ("kitchen", "1-3_months", 10),
        ),
    ];
    let lines: Vec<String> = calls.iter().map(Value::to_string).collect();
    std::fs::write(&input, lines.join("\n") + "\n").unwrap();
    let store = dir.path().join("s.sqlite");
    let (code, stderr, r) = run_to(&route, &input, &store).await;
    assert_eq!(code, Some(3), "{stderr}");
    assert_eq!(
        (r["created"].as_u64(), r["dead_lettered"].as_u64()),
        (Some(0), Some(2)),
        "{r:#}"
    );
    let reason = r["objects"][0]["reason"].as_str().unwrap();
    assert!(
        reason.contains("lookup `owner`") && reason.contains("nobody@company.com"),
        "{reason}"
    );
    for o in ["contacts", "companies", "deals"] {
        assert!(emu.records(o).is_empty(), "{o}");
    }
    emu.shutdown().await;
}

/// Associations are made once per record and pair of ids; one whose outcome is unknown (the
/// process died between the request and its record) is made again, since the request is
/// idempotent, instead of being skipped for good like a workflow action.
#[tokio::test]
async fn hubspot_an_association_whose_outcome_is_unknown_is_made_again() {
    use crate::connector::{hubspot_emu_opts, opts, session, spec};
    use switchyard::connector::{Deliverer, DeliveryItem};
    use switchyard::store::{ClaimKey, Store};
    use switchyard_sandbox::{self as sandbox, Vendor};
    let emu = sandbox::start(Vendor::Hubspot, hubspot_emu_opts())
        .await
        .unwrap();
    let s = session(
        spec("hubspot"),
        &emu,
        &[("api_token", "access_token")],
        json!({"company_domain_mapping": true}),
        true,
    );
    let dir = tempfile::tempdir().unwrap();
    let store = std::sync::Arc::new(Store::open(&dir.path().join("s.sqlite")).unwrap());
    let d = Deliverer::new(s, Some(store.clone()), opts(None, "contact"));
    let item = || DeliveryItem {
        key: "k1".into(),
        mapped: switchyard::record::Mapped {
            objects: [(
                "contact".to_string(),
                json!({"email": "ada@analytical.example", "firstname": "Ada"})
                    .as_object()
                    .unwrap()
                    .clone(),
            )]
            .into_iter()
            .collect(),
            triggers: vec![],
            notes: vec![],
        },
    };
    let statuses = |r: &switchyard::connector::DeliveryReport| -> Vec<(String, &'static str)> {
        r.actions
            .iter()
            .map(|a| (a.action.clone(), a.status))
            .collect()
    };
    let r = d.deliver(vec![item()]).await;
    assert_eq!(
        statuses(&r),
        [("contact_company".to_string(), "ran")],
        "{r:?}"
    );
    let id = |o: &str| {
        r.objects
            .iter()
            .find(|x| x.object == o)
            .and_then(|x| x.id.clone())
            .unwrap()
    };
    let object = format!(
        "action:associations:contact_company:{}:{}",
        id("contact"),
        id("company")
    );
    // The state a crash after the request leaves: pending, under an owner that is gone.
    store
        .forget_delivery("tenant_test", &d.namespace(), &object, "k1")
        .unwrap();
    store
        .claim(
            "tenant_test",
            &d.namespace(),
            "ghost:1:dead",
            &[ClaimKey {
                object: &object,
                key: "k1",
            }],
        )
        .unwrap();
    let r = d.deliver(vec![item()]).await;
    assert_eq!(
        statuses(&r),
        [("contact_company".to_string(), "ran")],
        "{r:?}"
    );
    let r = d.deliver(vec![item()]).await;
    assert_eq!(
        statuses(&r),
        [("contact_company".to_string(), "skipped")],
        "{r:?}"
    );
    assert_eq!(emu.records("companies").len(), 1);
    assert_eq!(emu.records("contacts").len(), 1);
    emu.shutdown().await;
}

/// `contact_owner` reaches contacts created in batches too (a route without duplicate
/// detection, deals or companies): one owner lookup, one batch, every contact owned.
#[tokio::test]
async fn hubspot_contact_owner_reaches_batch_creates_too() {
    use crate::connector::{contact, hubspot_emu_opts, opts, session, spec};
    use switchyard::connector::Deliverer;
    use switchyard_sandbox::{self as sandbox, Vendor};
    let emu = sandbox::start(Vendor::Hubspot, hubspot_emu_opts())
        .await
        .unwrap();
    let s = session(
        spec("hubspot"),
        &emu,
        &[("api_token", "access_token")],
        json!({"contact_owner": "owner@company.com"}),
        true,
    );
    let d = Deliverer::new(s, None, opts(None, "contact"));
    let r = d.deliver((0..5).map(|i| contact(i, "Ann")).collect()).await;
    assert_eq!((r.created, r.failed), (5, 0), "{:?}", r.objects);
    assert_eq!(
        emu.stats().requests,
        2,
        "one owner lookup, one batch create"
    );
    let contacts = emu.records("contacts");
    assert_eq!(contacts.len(), 5);
    assert!(
        contacts
            .iter()
            .all(|c| c["properties"]["hubspot_owner_id"] == "70000001"),
        "{contacts:#?}"
    );
    emu.shutdown().await;
}

/// Pipedrive addresses custom fields by 40-character hash keys; the tenant writes names. Seed
/// 003's Pipedrive config as written, run against the emulator whose company has the custom
/// fields (added through `POST /v1/personFields`, as an admin would): the values are read back
/// under the hash keys, the deal carries the tenant's pipeline, stage and owner, and the field
/// list is fetched once for the whole run (the deal fields not at all: no deal field to
/// resolve). A name that is no field of the company fails the record, naming it.
#[tokio::test]
async fn pipedrive_custom_fields_reach_the_crm_under_their_hash_keys() {
    use switchyard_sandbox::{SandboxOptions, Vendor};
    let emu = switchyard_sandbox::start(Vendor::Pipedrive, SandboxOptions::default())
        .await
        .unwrap();
    let token = emu.credentials().get("api_token").unwrap().to_string();
    let http = reqwest::Client::new();
    let base = emu.base_url().to_string();
    let mut keys = std::collections::HashMap::new();
    for (name, ty) in [
        ("Call recording URL", "varchar"),
        ("Call transcript", "text"),
        ("AI project type", "varchar"),
        ("AI lead score", "double"),
        ("Address locality", "varchar"),
        ("Address admin area level 1", "varchar"),
    ] {
        let r: Value = http
            .post(format!("{base}/v1/personFields"))
            .header("x-api-token", &token)
            .json(&json!({"name": name, "field_type": ty}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let key = r["data"]["key"].as_str().unwrap().to_string();
        assert_eq!(key.len(), 40, "{r}");
        assert!(key.chars().all(|c| c.is_ascii_hexdigit()), "{r}");
        keys.insert(name, key);
    }
    let example: Value = serde_json::from_str(
        &std::fs::read_to_string(
            crate::cli::repo_root().join("mapping-specs/examples/pipedrive-person-deal.json"),
        )
        .unwrap(),
    )
    .unwrap();
    let mut cfg = example["crm_config"].clone();
    cfg["api_token"] = json!("env:PD_TOKEN");
    cfg["settings"] = json!({"base_url": base});
    let call = |n: u32, name: &str, kind: &str, score: u32| {
        json!({"call_id": format!("CAL{n}"), "customer_name": name,
               "customer_phone": format!("+1555010000{n}"),
               "customer_email": format!("{}@example.com", name.to_lowercase().replace(' ', ".")),
               "customer_city": "Miami", "customer_state": "FL",
               "recording_url": format!("https://rec.example.com/{n}.mp3"),
               "transcription": format!("call {n}"),
               "ai_analysis": {"project_type": kind, "lead_score": score}})
    };
    let mut records = [
        call(1, "Ada Lovelace", "kitchen", 92),
        call(2, "Grace Hopper", "bathroom", 70),
        call(3, "Edsger Dijkstra", "addition", 55),
    ];
    // Numeric text for a field Pipedrive types `double` is sent as a number.
    records[2]["ai_analysis"]["lead_score"] = json!("55");
    let out = run_route("pipedrive", cfg.clone(), &records, &[("PD_TOKEN", &token)]).await;
    assert_eq!(out.code, Some(0), "{}\n{}", out.stderr, out.report);

    let get = |path: String| {
        let (http, token) = (http.clone(), token.clone());
        async move {
            let v: Value = http
                .get(path)
                .header("x-api-token", token)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            v
        }
    };
    let persons = get(format!("{base}/api/v2/persons")).await;
    let persons = persons["data"].as_array().unwrap().clone();
    assert_eq!(persons.len(), 3, "{persons:#?}");
    for (p, (r, score)) in persons.iter().zip(records.iter().zip([92, 70, 55])) {
        // Read back one by one, as Pipedrive answers a person.
        let one = get(format!("{base}/api/v2/persons/{}", p["id"])).await;
        let cf = &one["data"]["custom_fields"];
        assert_eq!(
            cf.as_object().map(|m| m.len()),
            Some(6),
            "only hash keys, all six: {one}"
        );
        assert_eq!(cf[&keys["Call recording URL"]], r["recording_url"], "{one}");
        assert_eq!(cf[&keys["Call transcript"]], r["transcription"], "{one}");
        assert_eq!(
            cf[&keys["AI project type"]], r["ai_analysis"]["project_type"],
            "{one}"
        );
        assert_eq!(cf[&keys["AI lead score"]], json!(score), "{one}");
        assert_eq!(cf[&keys["Address locality"]], "Miami", "{one}");
        assert_eq!(cf[&keys["Address admin area level 1"]], "FL", "{one}");
        assert_eq!(one["data"]["name"], r["customer_name"]);
        assert!(
            !one.to_string().contains("call_recording_url"),
            "no field under the tenant's name: {one}"
        );
    }
    let deals = get(format!("{base}/api/v2/deals")).await;
    let deals = deals["data"].as_array().unwrap().clone();
    assert_eq!(deals.len(), 3, "{deals:#?}");
    for (d, p) in deals.iter().zip(&persons) {
        assert_eq!(d["pipeline_id"], 1, "{d}");
        assert_eq!(d["stage_id"], 2, "{d}");
        assert_eq!(d["owner_id"], 123456, "{d}");
        assert_eq!(d["person_id"], p["id"], "{d}");
    }
    assert_eq!(deals[0]["title"], "Ada Lovelace - kitchen Project");
    assert_eq!(deals[0]["value"], 25000);
    let stats = emu.stats();
    assert_eq!(
        stats.by_route.get("GET /v1/personFields"),
        Some(&1),
        "one field list for the run: {:?}",
        stats.by_route
    );
    assert_eq!(stats.by_route.get("GET /v1/dealFields"), None);

    // A value its Pipedrive field cannot take fails the record, naming field and type.
    let mut bad = call(4, "Alan Kay", "kitchen", 0);
    bad["ai_analysis"]["lead_score"] = json!("high");
    let out = run_route("pipedrive", cfg.clone(), &[bad], &[("PD_TOKEN", &token)]).await;
    assert_ne!(out.code, Some(0), "{}", out.stderr);
    let said = format!("{}{}", out.stderr, out.report);
    assert!(
        said.contains(
            "`ai_lead_score` (a double field in the CRM) cannot be number: \"high\" is not a number"
        ),
        "{said}"
    );

    // A custom field the company does not have: the record fails, naming it; nothing of it
    // reaches Pipedrive.
    cfg["custom_fields"]["favourite_colour"] = json!("colour");
    let out = run_route(
        "pipedrive",
        cfg,
        &[json!({"call_id": "CAL9", "customer_name": "Alan Turing", "colour": "green"})],
        &[("PD_TOKEN", &token)],
    )
    .await;
    assert_ne!(out.code, Some(0), "{}", out.stderr);
    let said = format!("{}{}", out.stderr, out.report);
    assert!(
        said.contains("`favourite_colour` is the name or key of none of the"),
        "{said}"
    );
    assert!(said.contains("list_person_fields"), "{said}");
    let persons = get(format!("{base}/api/v2/persons")).await;
    assert_eq!(persons["data"].as_array().unwrap().len(), 3);
    emu.shutdown().await;
}

/// The field definitions are a session's: listed on first need, shared by its clones, not
/// listed again for a name they lack while fresh, and listed once more for such a name when
/// older than `fieldkeys::REFRESH_AFTER` (a field the tenant just created in the CRM).
#[tokio::test]
async fn field_definitions_are_listed_once_per_session_and_again_for_a_new_name_later() {
    use crate::connector::{session, spec};
    use switchyard_sandbox::{SandboxOptions, Vendor};
    let emu = switchyard_sandbox::start(Vendor::Pipedrive, SandboxOptions::default())
        .await
        .unwrap();
    let token = emu.credentials().get("api_token").unwrap().to_string();
    let add = |name: &'static str| {
        let (base, token) = (emu.base_url().to_string(), token.clone());
        async move {
            let r: Value = reqwest::Client::new()
                .post(format!("{base}/v1/personFields"))
                .header("x-api-token", token)
                .json(&json!({"name": name, "field_type": "double"}))
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            r["data"]["key"].as_str().unwrap().to_string()
        }
    };
    let listed = || {
        emu.stats()
            .by_route
            .get("GET /v1/personFields")
            .copied()
            .unwrap_or(0)
    };
    let score = add("Score").await;
    let s = session(
        spec("pipedrive"),
        &emu,
        &[("api_token", "api_token")],
        json!({}),
        false,
    );
    let payload = |extra: Value| {
        let mut m = json!({"name": "Ada", "score": "7"});
        m.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        m.as_object().unwrap().clone()
    };
    // Nothing to resolve: nothing listed.
    let plain = json!({"name": "Ada", "email": "ada@example.com"});
    s.resolve_fields("person", plain.as_object().unwrap())
        .await
        .unwrap();
    assert_eq!(listed(), 0);
    let p = payload(json!({}));
    let out = s.resolve_fields("person", &p).await.unwrap();
    assert_eq!(out["custom_fields"], json!({score.clone(): 7}));
    assert_eq!(listed(), 1);
    // A clone shares the list.
    s.clone().resolve_fields("person", &p).await.unwrap();
    assert_eq!(listed(), 1);
    // A name the company lacks: refused, not listed again while the list is fresh.
    let p = payload(json!({"size": 3}));
    let e = s.resolve_fields("person", &p).await.unwrap_err();
    assert!(
        e.to_string().contains("`size` is the name or key of none"),
        "{e}"
    );
    assert_eq!(listed(), 1);
    let size = add("Size").await;
    assert!(s.resolve_fields("person", &p).await.is_err());
    assert_eq!(listed(), 1);
    // Later, the same name lists the fields again once, and resolves.
    tokio::time::pause();
    tokio::time::advance(switchyard::connector::fieldkeys::REFRESH_AFTER).await;
    tokio::time::resume();
    let out = s.resolve_fields("person", &p).await.unwrap();
    assert_eq!(out["custom_fields"], json!({score: 7, size: 3}));
    assert_eq!(listed(), 2);
    s.resolve_fields("person", &p).await.unwrap();
    assert_eq!(listed(), 2);
    emu.shutdown().await;
}
