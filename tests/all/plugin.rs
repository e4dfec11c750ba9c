//! WebAssembly plugins through the real host: example plugins (mapping functions, AcmeCRM
//! connector against an emulator, webhook verifier), every hostile plugin with the host's exact
//! reaction, hot reload and the compiled cache. Plugins come from `.ci/build-plugins`.

use crate::cli::{repo_root, switchyard};
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use switchyard::plugin::{
    Grants, HostConfig, PluginErrorKind, PluginHandle, PluginHost, PreparedArgs, Secret,
};

/// The built component `name` (crate name with `_`), or a panic telling how to build it.
fn wasm(name: &str) -> PathBuf {
    let p = repo_root()
        .join("target/plugins")
        .join(format!("{name}.wasm"));
    assert!(
        p.exists(),
        "{} is missing: run .ci/build-plugins first (builds plugins/ and tests/plugins/ for wasm32-wasip2)",
        p.display()
    );
    p
}

/// Lowercase hex sha256 of a file.
fn sha256_file(path: &Path) -> String {
    hex::encode(Sha256::digest(std::fs::read(path).expect("readable")))
}

/// Writes a manifest for the wasm file `wasm_file` into `dir`, pinned to its sha256 unless
/// `extra` sets `sha256` itself, and returns its path.
fn manifest_for(dir: &Path, name: &str, world: &str, wasm_file: &Path, extra: &str) -> PathBuf {
    let path = dir.join(format!("{name}.toml"));
    let pin = if extra.contains("sha256 =") {
        String::new()
    } else {
        format!("sha256 = \"{}\"\n", sha256_file(wasm_file))
    };
    let text = format!(
        "spec_version = 1\n\n[plugin]\nname = \"{name}\"\nversion = \"0.1.0\"\nworld = \"{world}\"\nwasm = \"{}\"\n{pin}{extra}",
        wasm_file.display()
    );
    std::fs::write(&path, text).expect("ok");
    path
}

/// Writes a pinned manifest for the built component `wasm_name` into `dir`.
fn manifest(dir: &Path, name: &str, world: &str, wasm_name: &str, extra: &str) -> PathBuf {
    manifest_for(dir, name, world, &wasm(wasm_name), extra)
}

/// A host sharing one compiled cache across tests (compiling in debug builds is slow).
fn host() -> PluginHost {
    PluginHost::new(HostConfig {
        cache_dir: Some(repo_root().join("target/plugins/.cache-tests")),
        ..HostConfig::default()
    })
    .expect("ok")
}

fn load(
    dir: &Path,
    name: &str,
    world: &str,
    wasm_name: &str,
    extra: &str,
    grants: Grants,
) -> PluginHandle {
    host()
        .load(&manifest(dir, name, world, wasm_name, extra), grants)
        .expect("ok")
}

fn basics(dir: &Path) -> PluginHandle {
    load(
        dir,
        "basics",
        "mapping-functions",
        "mapping_basics",
        "[plugin.limits]\ncpu_ms = 5000\n",
        Grants::default(),
    )
}

fn hostile(dir: &Path, limits: &str) -> PluginHandle {
    load(
        dir,
        "hostile",
        "mapping-functions",
        "hostile_compute",
        &format!("[plugin.limits]\n{limits}\n"),
        Grants::default(),
    )
}

/// The host and another tenant's plugin still work.
async fn others_still_work(dir: &Path) {
    let b = basics(dir);
    let v = b
        .call_function("phone_e164", &[json!("(415) 555-2671"), json!("US")])
        .await
        .expect("ok");
    assert_eq!(v, json!("+14155552671"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mapping_functions_phone_name_address() {
    let dir = tempfile::tempdir().expect("ok");
    let b = basics(dir.path());
    assert_eq!(
        b.functions().await.expect("ok"),
        vec!["phone_e164", "split_name", "split_address", "contact_key"]
    );
    let call = |f: &'static str, args: Vec<Value>| {
        let b = b.clone();
        async move { b.call_function(f, &args).await.expect("ok") }
    };
    assert_eq!(
        call("phone_e164", vec![json!("+44 20 7946 0958")]).await,
        json!("+442079460958")
    );
    assert_eq!(
        call("phone_e164", vec![json!("555"), json!("US")]).await,
        Value::Null
    );
    assert_eq!(
        call("split_name", vec![json!("Dr. Ada M. Lovelace Jr.")]).await,
        json!({"title": "Dr.", "first": "Ada", "middle": "M.", "last": "Lovelace", "suffix": "Jr."})
    );
    assert_eq!(
        call("split_name", vec![json!("Hopper, Grace")]).await,
        json!({"title": null, "first": "Grace", "middle": null, "last": "Hopper", "suffix": null})
    );
    assert_eq!(
        call(
            "split_address",
            vec![json!("221B Baker Street, London NW1 6XE")]
        )
        .await,
        json!({"number": "221B", "street": "Baker Street", "locality": "London NW1 6XE", "postal_code": "6XE"})
    );
    // Lazily parsed record argument: three members read, the rest skipped.
    let record = json!({"id": 7, "notes": {"deep": [1, {"x": "y"}]}, "first_name": "Grace",
                        "last_name": "Hopper", "email": "  Grace@Navy.MIL "});
    assert_eq!(
        call("contact_key", vec![record.clone()]).await,
        json!("grace@navy.mil")
    );
    assert_eq!(
        call(
            "contact_key",
            vec![json!({"first_name": "Grace", "last_name": "Hopper", "email": ""})]
        )
        .await,
        json!("grace.hopper")
    );
    assert_eq!(
        call("contact_key", vec![json!({"id": 1})]).await,
        Value::Null
    );
    let err = b
        .call_function("contact_key", &[json!([1, 2])])
        .await
        .expect_err("not an object");
    assert_eq!(err.kind(), PluginErrorKind::Guest);
    assert!(err.to_string().contains("argument 0:"), "{err}");
    // The same record serialised once and passed to several calls (fresh and batch).
    let prepared = PreparedArgs::new(std::slice::from_ref(&record));
    assert_eq!(prepared.len(), 1);
    assert_eq!(
        b.call_function_prepared("contact_key", &prepared)
            .await
            .expect("ok"),
        json!("grace@navy.mil")
    );
    let mut batch = b.batch(10).await.expect("ok");
    for _ in 0..3 {
        assert_eq!(
            batch
                .call_function_prepared("contact_key", &prepared)
                .await
                .expect("ok"),
            json!("grace@navy.mil")
        );
    }
    let err = b.call_function("nope", &[]).await.expect_err("must fail");
    assert_eq!(err.kind(), PluginErrorKind::Guest);
    assert!(err.to_string().contains("unknown function `nope`"), "{err}");
    let err = b.verify_webhook(&[], b"").await.expect_err("must fail");
    assert_eq!(err.kind(), PluginErrorKind::NotProvided);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batch_mode_reuses_an_instance_within_limits() {
    let dir = tempfile::tempdir().expect("ok");
    let h = hostile(dir.path(), "cpu_ms = 100");
    let mut batch = h.batch(3).await.expect("ok");
    for i in 0..7 {
        assert_eq!(
            batch.call_function("echo", &[json!(i)]).await.expect("ok"),
            json!(i)
        );
    }
    // A trap inside a batch drops that instance; the next call gets a fresh one.
    let err = batch
        .call_function("panic", &[])
        .await
        .expect_err("must fail");
    assert_eq!(err.kind(), PluginErrorKind::Trap);
    assert_eq!(
        batch
            .call_function("echo", &[json!("after")])
            .await
            .expect("ok"),
        json!("after")
    );
}

// ---------------------------------------------------------------------------------------------
// Emulators

#[derive(Default)]
struct Emu {
    hits: AtomicUsize,
    secret: String,
}

fn hmac_hex(secret: &str, msg: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("ok");
    mac.update(msg);
    hex::encode(mac.finalize().into_bytes())
}

/// AcmeCRM: checks the HMAC signature of every request; contacts in CSV, deals in XML.
async fn acme(
    State(emu): State<Arc<Emu>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    emu.hits.fetch_add(1, Ordering::SeqCst);
    let h = |n: &str| {
        headers
            .get(n)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string()
    };
    let pq = uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
    let canonical = format!(
        "{method}\n{pq}\n{}\n{}",
        h("x-acme-timestamp"),
        hex::encode(Sha256::digest(&body))
    );
    if h("x-acme-key") != "key-1"
        || h("x-acme-signature") != hmac_hex(&emu.secret, canonical.as_bytes())
    {
        return (StatusCode::UNAUTHORIZED, "bad signature").into_response();
    }
    let page = uri
        .query()
        .and_then(|q| q.strip_prefix("page="))
        .unwrap_or("1")
        .to_string();
    match (method.as_str(), uri.path(), page.as_str()) {
        ("GET", "/contacts", "1") => (
            [("content-type", "text/csv"), ("x-next-page", "2")],
            "id,email,name\r\n1,ada@example.com,\"Lovelace, Ada\"\r\n2,grace@example.com,\"Grace \"\"Amazing\"\" Hopper\"\r\n",
        )
            .into_response(),
        ("GET", "/contacts", "2") => ([("content-type", "text/csv")], "id,email,name\n3,alan@example.com,Alan Turing\n").into_response(),
        ("GET", "/deals", _) => (
            [("content-type", "application/xml")],
            r#"<?xml version="1.0"?><deals><deal id="d1"><name>Big &amp; Bold</name><amount>1200.50</amount></deal><deal id="d2"><name>Small</name><amount>3</amount></deal></deals>"#,
        )
            .into_response(),
        ("POST", "/contacts", _) => {
            let v: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
            let id = format!("c-{}", v["email"].as_str().unwrap_or("?").len());
            ([("content-type", "application/xml")], format!("<result status=\"created\"><id>{id}</id></result>")).into_response()
        }
        _ => StatusCode::NOT_FOUND.into_response(),
    }
}

async fn redirect(Query(q): Query<HashMap<String, String>>) -> Response {
    (
        StatusCode::FOUND,
        [("location", q.get("to").cloned().unwrap_or_default())],
    )
        .into_response()
}

async fn serve(router: Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("ok");
    let addr = listener.local_addr().expect("ok");
    tokio::spawn(async move { axum::serve(listener, router).await.expect("ok") });
    addr
}

async fn acme_emulator(secret: &str) -> (SocketAddr, Arc<Emu>) {
    let emu = Arc::new(Emu {
        hits: AtomicUsize::new(0),
        secret: secret.into(),
    });
    let router = Router::new()
        .route("/ok", get(|| async { "fine" }))
        .route("/redirect", get(redirect))
        .route(
            "/slow",
            get(|| async {
                tokio::time::sleep(Duration::from_secs(5)).await;
                "late"
            }),
        )
        .fallback(acme)
        .with_state(emu.clone());
    (serve(router).await, emu)
}

fn crm_grants(addr: SocketAddr, secret: &str) -> Grants {
    Grants {
        allowed_hosts: vec![format!("http://{addr}")],
        secrets: [("api_secret".to_string(), Secret::new(secret))]
            .into_iter()
            .collect(),
        config: [
            ("base_url".to_string(), json!(format!("http://{addr}"))),
            ("key_id".to_string(), json!("key-1")),
        ]
        .into_iter()
        .collect(),
        allow_private_networks: true,
    }
}

fn crm_manifest(dir: &Path, addr: SocketAddr) -> PathBuf {
    manifest(
        dir,
        "acmecrm",
        "full-connector",
        "crm_connector",
        &format!(
            "[plugin.capabilities]\nallowed_hosts = [\"http://{addr}\"]\nsecrets = [\"api_secret\"]\nconfig = [\"base_url\", \"key_id\"]\n"
        ),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crm_connector_signs_requests_and_decodes_csv_and_xml() {
    let (addr, emu) = acme_emulator("s3cret").await;
    let dir = tempfile::tempdir().expect("ok");
    let crm = host()
        .load(&crm_manifest(dir.path(), addr), crm_grants(addr, "s3cret"))
        .expect("ok");

    let p1 = crm.read("contacts", &json!({}), None).await.expect("ok");
    assert_eq!(
        p1.records,
        vec![
            json!({"id": "1", "email": "ada@example.com", "name": "Lovelace, Ada"}),
            json!({"id": "2", "email": "grace@example.com", "name": "Grace \"Amazing\" Hopper"}),
        ]
    );
    assert_eq!(p1.next_cursor.as_deref(), Some("2"));
    let p2 = crm
        .read("contacts", &json!({}), Some("2"))
        .await
        .expect("ok");
    assert_eq!(
        p2.records,
        vec![json!({"id": "3", "email": "alan@example.com", "name": "Alan Turing"})]
    );
    assert_eq!(p2.next_cursor, None);

    let deals = crm.read("deals", &json!({}), None).await.expect("ok");
    assert_eq!(
        deals.records,
        vec![
            json!({"id": "d1", "name": "Big & Bold", "amount": "1200.50"}),
            json!({"id": "d2", "name": "Small", "amount": "3"}),
        ]
    );
    let written = crm
        .write(
            "contacts",
            &[
                json!({"email": "x@y.z"}),
                json!({"email": "longer@example.com"}),
            ],
        )
        .await
        .expect("ok");
    assert_eq!(
        written,
        vec![
            json!({"status": "created", "id": "c-5"}),
            json!({"status": "created", "id": "c-18"})
        ]
    );
    assert_eq!(emu.hits.load(Ordering::SeqCst), 5);

    // A wrong secret: the emulator rejects the signature and the plugin reports it.
    let bad = host()
        .load(&crm_manifest(dir.path(), addr), crm_grants(addr, "wrong"))
        .expect("ok");
    let err = bad
        .read("contacts", &json!({}), None)
        .await
        .expect_err("must fail");
    assert_eq!(err.kind(), PluginErrorKind::Guest);
    assert!(
        err.to_string()
            .contains("upstream: acmecrm answered 401: bad signature"),
        "{err}"
    );
    assert!(!err.to_string().contains("wrong"), "secret leaked: {err}");
}

fn webhook_headers(secret: &str, t: u64, body: &[u8]) -> Vec<(String, String)> {
    let mut msg = format!("{t}.").into_bytes();
    msg.extend_from_slice(body);
    vec![(
        "X-Signature".into(),
        format!("t={t},v1={}", hmac_hex(secret, &msg)),
    )]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhook_verifier_accepts_valid_and_rejects_tampered() {
    let dir = tempfile::tempdir().expect("ok");
    let grants = Grants {
        secrets: [("webhook_secret".to_string(), Secret::new("whsec"))]
            .into_iter()
            .collect(),
        ..Grants::default()
    };
    let v = load(
        dir.path(),
        "hooks",
        "webhook-verifier",
        "webhook_verifier",
        "[plugin.capabilities]\nsecrets = [\"webhook_secret\"]\nconfig = [\"tolerance_s\"]\n",
        grants,
    );
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("ok")
        .as_secs();
    let body = br#"{"type":"payment.succeeded"}"#;
    let ok = v
        .verify_webhook(&webhook_headers("whsec", now, body), body)
        .await
        .expect("ok");
    assert!(ok.valid, "{ok:?}");
    let tampered = v
        .verify_webhook(&webhook_headers("whsec", now, body), b"{}")
        .await
        .expect("ok");
    assert_eq!(tampered.reason.as_deref(), Some("signature mismatch"));
    let old = v
        .verify_webhook(&webhook_headers("whsec", now - 3600, body), body)
        .await
        .expect("ok");
    assert_eq!(
        old.reason.as_deref(),
        Some("timestamp outside the tolerance")
    );
    let none = v.verify_webhook(&[], body).await.expect("ok");
    assert!(!none.valid);
}

// ---------------------------------------------------------------------------------------------
// Hostile plugins

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_infinite_loop_is_stopped_by_its_cpu_budget() {
    let dir = tempfile::tempdir().expect("ok");
    let h = hostile(dir.path(), "cpu_ms = 100");
    let tick = host().tick();
    let start = Instant::now();
    let err = h.call_function("spin", &[]).await.expect_err("must fail");
    let elapsed = start.elapsed();
    assert_eq!(err.kind(), PluginErrorKind::CpuLimit, "{err}");
    assert_eq!(
        err.to_string(),
        "plugin `hostile` exceeded its cpu budget of 100 ms and was stopped"
    );
    assert!(
        elapsed >= Duration::from_millis(100),
        "stopped early: {elapsed:?}"
    );
    // By construction the guest runs at most one tick past its budget; the slack here only
    // absorbs scheduling on a loaded machine.
    assert!(
        elapsed < Duration::from_millis(100) + tick * 2 + Duration::from_millis(400),
        "{elapsed:?}"
    );
    assert_eq!(
        h.call_function("echo", &[json!(1)]).await.expect("ok"),
        json!(1)
    );
    others_still_work(dir.path()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_memory_growth_hits_its_limit() {
    let dir = tempfile::tempdir().expect("ok");
    let h = hostile(dir.path(), "memory_mib = 16");
    let err = h.call_function("grow", &[]).await.expect_err("must fail");
    assert_eq!(err.kind(), PluginErrorKind::MemoryLimit, "{err}");
    assert!(
        err.to_string().contains("over its limit of 16777216 bytes"),
        "{err}"
    );
    assert_eq!(
        h.call_function("echo", &[json!("ok")]).await.expect("ok"),
        json!("ok")
    );
    others_still_work(dir.path()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_deep_recursion_overflows_its_stack() {
    let dir = tempfile::tempdir().expect("ok");
    let h = hostile(dir.path(), "");
    let err = h
        .call_function("recurse", &[json!(0)])
        .await
        .expect_err("must fail");
    assert_eq!(err.kind(), PluginErrorKind::StackOverflow, "{err}");
    assert_eq!(
        err.to_string(),
        "plugin `hostile` overflowed its stack (too deep recursion)"
    );
    others_still_work(dir.path()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_huge_output_is_refused() {
    let dir = tempfile::tempdir().expect("ok");
    let h = hostile(dir.path(), "output_bytes = 1000000");
    // Over the output limit but within one transfer: refused after the call.
    let err = h
        .call_function("big", &[json!(2_000_000)])
        .await
        .expect_err("must fail");
    assert_eq!(err.kind(), PluginErrorKind::OutputTooLarge, "{err}");
    assert!(
        err.to_string()
            .contains("over its output limit of 1000000 bytes"),
        "{err}"
    );
    // Larger than one transfer may carry (4 MiB host-call limit + 64 KiB): stopped while copying.
    let err = h
        .call_function("big", &[json!(8_000_000)])
        .await
        .expect_err("must fail");
    assert_eq!(err.kind(), PluginErrorKind::DataLimit, "{err}");
    assert_eq!(
        h.call_function("big", &[json!(10)]).await.expect("ok"),
        json!("xxxxxxxxxx")
    );
    others_still_work(dir.path()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_panic_is_a_trap() {
    let dir = tempfile::tempdir().expect("ok");
    let h = hostile(dir.path(), "");
    let err = h.call_function("panic", &[]).await.expect_err("must fail");
    assert_eq!(err.kind(), PluginErrorKind::Trap, "{err}");
    assert!(
        err.to_string().starts_with("plugin `hostile` trapped: "),
        "{err}"
    );
    assert!(err.to_string().contains("unreachable"), "{err}");
    others_still_work(dir.path()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_import_the_host_does_not_provide_is_refused_at_load() {
    let dir = tempfile::tempdir().expect("ok");
    let m = manifest(
        dir.path(),
        "sneaky",
        "mapping-functions",
        "hostile_import",
        "",
    );
    let err = host().load(&m, Grants::default()).expect_err("must fail");
    assert_eq!(err.kind(), PluginErrorKind::ImportNotProvided, "{err}");
    assert!(
        err.to_string()
            .starts_with("plugin `sneaky` imports `wasi:sockets/"),
        "{err}"
    );
    others_still_work(dir.path()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_unsupported_wit_version_names_both_versions() {
    let dir = tempfile::tempdir().expect("ok");
    let m = manifest(
        dir.path(),
        "future",
        "mapping-functions",
        "hostile_future_wit",
        "",
    );
    let err = host().load(&m, Grants::default()).expect_err("must fail");
    assert_eq!(err.kind(), PluginErrorKind::UnsupportedWitVersion, "{err}");
    assert_eq!(
        err.to_string(),
        "plugin `future` was built against switchyard:plugin@9.0.0, but this host supports switchyard:plugin@0.1.0"
    );
    // The manifest's own declaration is checked too.
    let m = manifest(
        dir.path(),
        "future2",
        "mapping-functions",
        "mapping_basics",
        "wit_version = \"1.0.0\"\n",
    );
    let err = host().load(&m, Grants::default()).expect_err("must fail");
    assert!(err.to_string().contains("switchyard:plugin@1.0.0"), "{err}");
    others_still_work(dir.path()).await;
}

fn fetcher(
    dir: &Path,
    allowed: &str,
    grants: Grants,
) -> Result<PluginHandle, switchyard::plugin::PluginError> {
    let m = manifest(
        dir,
        "fetch",
        "enricher",
        "hostile_http",
        &format!("[plugin.capabilities]\nallowed_hosts = [\"{allowed}\"]\n"),
    );
    host().load(&m, grants)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_http_to_a_host_not_granted_is_denied_also_via_redirect() {
    let (good, _) = acme_emulator("x").await;
    let (evil, evil_emu) = acme_emulator("x").await;
    let dir = tempfile::tempdir().expect("ok");
    let grants = Grants {
        allowed_hosts: vec![format!("http://{good}")],
        allow_private_networks: true,
        ..Grants::default()
    };
    let f = fetcher(dir.path(), &format!("http://{good}"), grants.clone()).expect("ok");
    let ok = f
        .enrich(&json!({"url": format!("http://{good}/ok")}))
        .await
        .expect("ok");
    assert_eq!(ok, json!({"status": 200, "body": "fine"}));

    let err = f
        .enrich(&json!({"url": format!("http://{evil}/ok")}))
        .await
        .expect_err("must fail");
    assert_eq!(err.kind(), PluginErrorKind::Guest, "{err}");
    assert_eq!(
        err.to_string(),
        format!(
            "plugin `fetch` failed: denied: `http://{evil}` is not in the plugin's allowed hosts (http://{good})"
        )
    );
    let via = format!("http://{good}/redirect?to=http://{evil}/ok");
    let err = f.enrich(&json!({"url": via})).await.expect_err("must fail");
    assert_eq!(
        err.to_string(),
        format!(
            "plugin `fetch` failed: denied: redirect from `http://{good}` to `http://{evil}` is not in the plugin's allowed hosts (http://{good})"
        )
    );
    assert_eq!(
        evil_emu.hits.load(Ordering::SeqCst),
        0,
        "the forbidden host was reached"
    );

    // Requested by the manifest but not granted by the operator.
    let narrow = Grants {
        allowed_hosts: vec!["https://api.example.com".into()],
        ..grants.clone()
    };
    let f2 = fetcher(dir.path(), &format!("http://{good}"), narrow).expect("ok");
    let err = f2
        .enrich(&json!({"url": format!("http://{good}/ok")}))
        .await
        .expect_err("must fail");
    assert!(
        err.to_string()
            .contains("is not granted by the operator (https://api.example.com)"),
        "{err}"
    );

    // Private addresses stay closed unless the operator opens them.
    let closed = Grants {
        allow_private_networks: false,
        ..grants.clone()
    };
    let f3 = fetcher(dir.path(), &format!("http://{good}"), closed).expect("ok");
    let err = f3
        .enrich(&json!({"url": format!("http://{good}/ok")}))
        .await
        .expect_err("must fail");
    assert!(err.to_string().contains("is a private address"), "{err}");
    // A name resolving to loopback is checked after DNS resolution.
    let port = good.port();
    let f4 = fetcher(
        dir.path(),
        &format!("http://localhost:{port}"),
        Grants {
            allowed_hosts: vec![format!("http://localhost:{port}")],
            allow_private_networks: false,
            ..Grants::default()
        },
    )
    .expect("ok");
    let err = f4
        .enrich(&json!({"url": format!("http://localhost:{port}/ok")}))
        .await
        .expect_err("must fail");
    assert!(
        err.to_string()
            .contains("resolves only to private or loopback addresses"),
        "{err}"
    );

    // No grant at all: the http import is not linked and the plugin is refused at load.
    let err =
        fetcher(dir.path(), &format!("http://{good}"), Grants::default()).expect_err("must fail");
    assert_eq!(err.kind(), PluginErrorKind::CapabilityNotGranted, "{err}");
    assert!(
        err.to_string()
            .contains("capability `http` is not granted: the operator grants no allowed hosts"),
        "{err}"
    );

    // Wall time covers time parked in host calls.
    let slow = fetcher(dir.path(), &format!("http://{good}"), grants).expect("ok");
    let m = manifest(
        dir.path(),
        "slowfetch",
        "enricher",
        "hostile_http",
        &format!(
            "[plugin.capabilities]\nallowed_hosts = [\"http://{good}\"]\n[plugin.limits]\nwall_ms = 300\n"
        ),
    );
    let slow2 = host()
        .load(
            &m,
            Grants {
                allowed_hosts: vec![format!("http://{good}")],
                allow_private_networks: true,
                ..Grants::default()
            },
        )
        .expect("ok");
    let start = Instant::now();
    let err = slow2
        .enrich(&json!({"url": format!("http://{good}/slow")}))
        .await
        .expect_err("must fail");
    assert_eq!(err.kind(), PluginErrorKind::WallTimeout, "{err}");
    assert!(start.elapsed() < Duration::from_secs(3));
    assert_eq!(
        slow.enrich(&json!({"url": format!("http://{good}/ok")}))
            .await
            .expect("ok")["status"],
        200
    );
    others_still_work(dir.path()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_secret_not_declared_is_denied() {
    let dir = tempfile::tempdir().expect("ok");
    let grants = Grants {
        secrets: [
            (
                "webhook_secret".to_string(),
                Secret::new("mine-webhook-secret"),
            ),
            ("other_tenant_key".to_string(), Secret::new("theirs")),
        ]
        .into_iter()
        .collect(),
        ..Grants::default()
    };
    let t = load(
        dir.path(),
        "thief",
        "webhook-verifier",
        "hostile_secret",
        "[plugin.capabilities]\nsecrets = [\"webhook_secret\", \"declared_only\"]\n",
        grants,
    );
    let ask = |name: &'static str| {
        let t = t.clone();
        async move {
            t.verify_webhook(&[("X-Steal".into(), name.into())], b"")
                .await
        }
    };
    let err = ask("other_tenant_key").await.expect_err("must fail");
    assert_eq!(
        err.to_string(),
        "plugin `thief` failed: denied: secret `other_tenant_key` is not declared in the plugin manifest"
    );
    let err = ask("declared_only").await.expect_err("must fail");
    assert_eq!(
        err.to_string(),
        "plugin `thief` failed: denied: secret `declared_only` is not granted by the operator"
    );
    assert_eq!(
        ask("webhook_secret").await.expect("ok").reason.as_deref(),
        Some("got 19 bytes")
    );
    // The plugin logs the secret it was given, raw, in hex and reversed: the host redacts every
    // form (switchyard::secrets::Redactor).
    let out = t
        .run_once("verify", &json!({"headers": {"X-Steal": "webhook_secret"}}))
        .await
        .expect("ran");
    assert_eq!(out.logs.len(), 1);
    assert_eq!(
        out.logs[0].message,
        "stolen: [redacted] hex [redacted] reversed [redacted]"
    );
    assert!(out.denials.is_empty());
    // ... and puts it in its error: redacted there too.
    let err = t
        .verify_webhook(
            &[
                ("X-Steal".into(), "webhook_secret".into()),
                ("X-Leak".into(), "1".into()),
            ],
            b"",
        )
        .await
        .expect_err("fails");
    assert_eq!(
        err.to_string(),
        "plugin `thief` failed: internal: cannot verify with [redacted] ([redacted])"
    );
    let out = t
        .run_once(
            "verify",
            &json!({"headers": {"X-Steal": "other_tenant_key"}}),
        )
        .await
        .expect("ran");
    assert_eq!(
        out.denials,
        ["secret `other_tenant_key` is not declared in the plugin manifest"]
    );
    others_still_work(dir.path()).await;
}

// ---------------------------------------------------------------------------------------------
// Loading: integrity, hot reload, cache

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sha256_mismatch_and_world_mismatch_are_refused() {
    let dir = tempfile::tempdir().expect("ok");
    let zeros = "0".repeat(64);
    let m = manifest(
        dir.path(),
        "basics",
        "mapping-functions",
        "mapping_basics",
        &format!("sha256 = \"{zeros}\"\n"),
    );
    let err = host().load(&m, Grants::default()).expect_err("must fail");
    assert_eq!(err.kind(), PluginErrorKind::Integrity);
    assert!(
        err.to_string()
            .contains(&format!("but the manifest {} pins {zeros}", m.display())),
        "{err}"
    );
    let m = manifest(
        dir.path(),
        "basics",
        "mapping-functions",
        "mapping_basics",
        "sha256 = \"00\"\n",
    );
    let err = host().load(&m, Grants::default()).expect_err("must fail");
    assert_eq!(err.kind(), PluginErrorKind::Manifest);
    assert!(
        err.to_string()
            .contains("/plugin/sha256: `00` is not a sha256 digest (64 hex digits)"),
        "{err}"
    );
    let m = manifest(
        dir.path(),
        "basics",
        "webhook-verifier",
        "mapping_basics",
        "",
    );
    let err = host().load(&m, Grants::default()).expect_err("must fail");
    assert_eq!(err.kind(), PluginErrorKind::WorldMismatch);
    assert_eq!(
        err.to_string(),
        "plugin `basics` declares world `webhook-verifier` but does not export `switchyard:plugin/webhook@0.1.0`"
    );
    let m = dir.path().join("bad.toml");
    std::fs::write(
        &m,
        "spec_version = 1\n[plugin]\nname = \"x\"\nversion = \"1\"\nworld = \"mapping\"\n",
    )
    .expect("ok");
    let err = host().load(&m, Grants::default()).expect_err("must fail");
    assert_eq!(err.kind(), PluginErrorKind::Manifest);
    assert!(err.to_string().contains("/plugin/world"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hot_reload_keeps_the_previous_version_when_the_new_one_fails() {
    let dir = tempfile::tempdir().expect("ok");
    let wasm_copy = dir.path().join("p.wasm");
    std::fs::copy(wasm("hostile_compute"), &wasm_copy).expect("ok");
    let m = dir.path().join("p.toml");
    let write_manifest = |version: &str| {
        let text = format!(
            "spec_version = 1\n[plugin]\nname = \"p\"\nversion = \"{version}\"\nworld = \"mapping-functions\"\nwasm = \"p.wasm\"\nsha256 = \"{}\"\n",
            sha256_file(&wasm_copy)
        );
        std::fs::write(&m, text).expect("ok");
    };
    write_manifest("1.0.0");
    let h = host().load(&m, Grants::default()).expect("ok");
    let first = h.status();
    assert_eq!(
        h.call_function("echo", &[json!(1)]).await.expect("ok"),
        json!(1)
    );
    assert!(!h.reload_if_changed().expect("ok"), "nothing changed yet");

    // A new wasm the manifest does not pin is refused.
    std::fs::write(&wasm_copy, b"\0asm garbage").expect("ok");
    let err = h.reload_if_changed().expect_err("must fail");
    assert_eq!(err.kind(), PluginErrorKind::Integrity, "{err}");
    // Pinned, it is compiled, and fails to.
    write_manifest("1.0.1");
    let err = h.reload_if_changed().expect_err("must fail");
    assert_eq!(err.kind(), PluginErrorKind::Compile);
    let st = h.status();
    assert_eq!(
        st.sha256, first.sha256,
        "the previous version keeps serving"
    );
    assert!(
        st.last_error
            .as_deref()
            .unwrap_or_default()
            .contains("not a valid webassembly component"),
        "{st:?}"
    );
    assert_eq!(
        h.call_function("echo", &[json!(2)]).await.expect("ok"),
        json!(2)
    );

    // A new valid version (another plugin of the same world) replaces it, through the watcher.
    let _watch = host().watch(vec![h.clone()], Duration::from_millis(20));
    std::fs::copy(wasm("mapping_basics"), &wasm_copy).expect("ok");
    write_manifest("2.0.0");
    let deadline = Instant::now() + Duration::from_secs(60);
    while h.status().version != "2.0.0" {
        assert!(Instant::now() < deadline, "not reloaded: {:?}", h.status());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let st = h.status();
    assert_eq!(st.last_error, None);
    assert_ne!(st.sha256, first.sha256);
    assert_eq!(
        h.call_function("split_address", &[json!("1 Main St")])
            .await
            .expect("ok")["street"],
        json!("Main St")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compiled_components_are_cached_on_disk() {
    let dir = tempfile::tempdir().expect("ok");
    let cache = dir.path().join("cache");
    // A new host each time: hosts also share compiled components in memory.
    let host = || {
        PluginHost::new(HostConfig {
            cache_dir: Some(cache.clone()),
            ..HostConfig::default()
        })
        .expect("ok")
    };
    let m = manifest(
        dir.path(),
        "hostile",
        "mapping-functions",
        "hostile_compute",
        "",
    );
    host().load(&m, Grants::default()).expect("ok");
    let entries = || -> Vec<PathBuf> {
        let mut v: Vec<PathBuf> = std::fs::read_dir(&cache)
            .expect("ok")
            .map(|e| e.expect("ok").path())
            .filter(|p| p.extension().is_some_and(|e| e == "cwasm"))
            .collect();
        v.sort();
        v
    };
    let files = entries();
    assert_eq!(files.len(), 1, "{files:?}");
    let sha = hex::encode(Sha256::digest(
        std::fs::read(wasm("hostile_compute")).expect("ok"),
    ));
    let name = files[0]
        .file_name()
        .expect("ok")
        .to_string_lossy()
        .into_owned();
    assert!(name.starts_with(&sha) && name.ends_with(".cwasm"), "{name}");
    let before = std::fs::metadata(&files[0])
        .expect("ok")
        .modified()
        .expect("ok");
    let h = host().load(&m, Grants::default()).expect("ok");
    assert_eq!(
        std::fs::metadata(&files[0])
            .expect("ok")
            .modified()
            .expect("ok"),
        before,
        "recompiled"
    );
    assert_eq!(
        h.call_function("echo", &[json!("c")]).await.expect("ok"),
        json!("c")
    );
    // An entry changed on disk (one byte of its code) is refused and replaced, whatever its
    // mode: only entries carrying this host's MAC over these wasm bytes are deserialised.
    let good = std::fs::read(&files[0]).expect("ok");
    let mut bad = good.clone();
    let last = bad.len() - 1;
    bad[last] ^= 0xff;
    std::fs::write(&files[0], &bad).expect("ok");
    host().load(&m, Grants::default()).expect("ok");
    assert_eq!(std::fs::read(&files[0]).expect("ok"), good, "not rewritten");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = |p: &Path| std::fs::metadata(p).expect("ok").permissions().mode() & 0o777;
        assert_eq!(mode(&files[0]), 0o600);
        assert_eq!(mode(&cache.join("cache.key")), 0o600);
        assert_eq!(mode(&cache), 0o700);
    }
}

/// Finding: a precompiled entry copied under another plugin's sha256 name (mode 0644, a
/// valid-looking name) was deserialised and run in that plugin's place. Now B is recompiled from
/// its own bytes, B's code answers, and the entry is overwritten.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cache_entry_copied_under_another_plugins_name_is_recompiled_not_run() {
    let dir = tempfile::tempdir().expect("ok");
    let cache = dir.path().join("cache");
    let host = || {
        PluginHost::new(HostConfig {
            cache_dir: Some(cache.clone()),
            ..HostConfig::default()
        })
        .expect("ok")
    };
    let a = manifest(dir.path(), "a", "mapping-functions", "mapping_basics", "");
    let b = manifest(dir.path(), "b", "mapping-functions", "hostile_compute", "");
    host().load(&a, Grants::default()).expect("a loads");
    let entry_of = |wasm_name: &str| -> PathBuf {
        let sha = sha256_file(&wasm(wasm_name));
        std::fs::read_dir(&cache)
            .expect("ok")
            .map(|e| e.expect("ok").path())
            .find(|p| {
                p.file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with(&sha))
            })
            .unwrap_or_else(|| cache.join(format!("{sha}-none.cwasm")))
    };
    let a_entry = entry_of("mapping_basics");
    assert!(a_entry.exists(), "A's entry was written");
    let engine_suffix = a_entry
        .file_name()
        .expect("ok")
        .to_string_lossy()
        .split_once('-')
        .map(|(_, rest)| rest.to_string())
        .expect("named <sha>-<engine>.cwasm");
    let b_entry = cache.join(format!(
        "{}-{engine_suffix}",
        sha256_file(&wasm("hostile_compute"))
    ));
    let a_functions = vec!["phone_e164", "split_name", "split_address", "contact_key"];
    for mode in [0o644, 0o600] {
        std::fs::copy(&a_entry, &b_entry).expect("copy");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&b_entry, std::fs::Permissions::from_mode(mode))
                .expect("chmod");
        }
        // A new host: hosts also share compiled components in memory.
        let h = host().load(&b, Grants::default()).expect("b loads");
        let names = h.functions().await.expect("answers");
        assert_ne!(names, a_functions, "A's code ran for B (mode {mode:o})");
        assert!(names.contains(&"spin".to_string()), "{names:?}");
        assert_eq!(
            h.call_function("echo", &[json!("b")]).await.expect("ok"),
            json!("b")
        );
        assert_ne!(
            std::fs::read(&b_entry).expect("ok"),
            std::fs::read(&a_entry).expect("ok"),
            "the poisoned entry was not overwritten"
        );
    }
}

/// Finding: the memory limit was checked per linear memory, so a component with several core
/// instances grew 7 × 62.5 MiB against a 64 MiB limit. Every memory and table of a call's store
/// now counts against one total.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn several_memories_count_against_one_memory_limit() {
    let dir = tempfile::tempdir().expect("ok");
    let wat = repo_root().join("tests/plugins/hostile-memories/component.wat");
    let bytes = wat::parse_file(&wat).expect("the hostile component assembles");
    let file = dir.path().join("memories.wasm");
    std::fs::write(&file, bytes).expect("ok");
    let m = manifest_for(dir.path(), "memories", "mapping-functions", &file, "");
    let h = host().load(&m, Grants::default()).expect("loads");
    assert_eq!(h.limits().memory_bytes, 64 << 20);
    // 8 memories of 1 page, each grown by 100 pages: 43.8 MiB in all, within the limit.
    assert_eq!(
        h.call_function("small", &[])
            .await
            .expect("within the limit"),
        json!(1)
    );
    // Each grown by 1000 pages (62.5 MiB, under the limit alone): stopped once the total passes
    // 64 MiB, at the second memory.
    let err = h
        .call_function("grow", &[])
        .await
        .expect_err("over the total");
    assert_eq!(err.kind(), PluginErrorKind::MemoryLimit, "{err}");
    let total = (1 + 7 + 2 * 1000) * 65536;
    assert_eq!(
        err.to_string(),
        format!(
            "plugin `memories` tried to grow its memories and tables to {total} bytes in total, over its limit of 67108864 bytes"
        )
    );
    // The limit is per call: the next call gets a fresh store.
    assert_eq!(h.call_function("small", &[]).await.expect("ok"), json!(1));
}

/// Runs `f` on a thread and fails the test if it has not finished within `secs` seconds (the
/// old loader blocked forever on a FIFO).
fn within<T: Send + 'static>(secs: u64, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(Duration::from_secs(secs))
        .unwrap_or_else(|_| panic!("did not finish within {secs} s"))
}

/// Finding: a wasm or manifest path naming a FIFO hung the loader (the open waits for a writer),
/// and `/dev/zero` was read until allocation failed. Only regular files are opened (O_NONBLOCK,
/// checked on the opened handle) and reads stop at the configured limit.
#[cfg(unix)]
#[test]
fn fifo_and_device_paths_are_refused_quickly_naming_the_path() {
    let dir = tempfile::tempdir().expect("ok");
    let fifo = dir.path().join("plugin.fifo");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .expect("mkfifo runs");
    assert!(made.success());
    let zero = Path::new("/dev/zero");
    for (what, target) in [("fifo", fifo.clone()), ("zero", zero.to_path_buf())] {
        // The wasm is a FIFO or a device (sha256 pinned to anything: it is never read).
        let m = manifest_for(
            dir.path(),
            what,
            "mapping-functions",
            &target,
            &format!("sha256 = \"{}\"\n", "0".repeat(64)),
        );
        let err = within(10, move || {
            host().load(&m, Grants::default()).expect_err("refused")
        });
        assert_eq!(err.kind(), PluginErrorKind::Io, "{err}");
        let kind = if what == "fifo" {
            "a FIFO (named pipe)"
        } else {
            "a character device"
        };
        assert_eq!(
            err.to_string(),
            format!(
                "{}: {kind} is not read: only regular files are",
                target.display()
            )
        );
    }
    // The manifest itself is a FIFO, or /dev/zero under a manifest's name.
    let m = dir.path().join("fifo-manifest.toml");
    let made = std::process::Command::new("mkfifo")
        .arg(&m)
        .status()
        .expect("mkfifo runs");
    assert!(made.success());
    let shown = m.display().to_string();
    let err = within(10, move || {
        host().load(&m, Grants::default()).expect_err("refused")
    });
    assert_eq!(
        err.to_string(),
        format!("{shown}: a FIFO (named pipe) is not read: only regular files are")
    );
    // A regular file over the limit is refused without reading past it.
    let big = dir.path().join("big.wasm");
    std::fs::write(&big, vec![0u8; 4096]).expect("ok");
    let m = manifest_for(dir.path(), "big", "mapping-functions", &big, "");
    let small = PluginHost::new(HostConfig {
        max_wasm_bytes: 1000,
        ..HostConfig::default()
    })
    .expect("ok");
    let err = small.load(&m, Grants::default()).expect_err("too large");
    assert_eq!(
        err.to_string(),
        format!("{}: larger than the limit of 1000 bytes", big.display())
    );
    // The CLI reads the same way.
    let (code, out, err) = within(20, move || {
        run(&["plugin", "inspect", fifo.to_str().expect("utf-8")])
    });
    assert_eq!(code, 1, "{out}{err}");
    assert!(
        out.contains("a FIFO (named pipe) is not read"),
        "{out}{err}"
    );
}

/// Finding: a compile error echoed text of the file (wasmparser quotes names and bytes).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compile_errors_never_echo_the_file() {
    let dir = tempfile::tempdir().expect("ok");
    // A component whose import name (not kebab-case) the validator would quote.
    let leaky =
        wat::parse_str(r#"(component (import "Leak-THIS-Value-7f3a" (func)))"#).expect("assembles");
    let garbage = {
        let mut b = b"\0asm\x0d\x00\x01\x00".to_vec();
        b.extend_from_slice(b"\x00\x0fSECRET-in-bytes");
        b
    };
    for (name, bytes) in [("leaky", leaky), ("garbage", garbage)] {
        let file = dir.path().join(format!("{name}.wasm"));
        std::fs::write(&file, &bytes).expect("ok");
        let m = manifest_for(dir.path(), name, "mapping-functions", &file, "");
        let err = host().load(&m, Grants::default()).expect_err("refused");
        assert_eq!(err.kind(), PluginErrorKind::Compile, "{err}");
        let msg = err.to_string();
        assert!(!msg.contains("Leak") && !msg.contains("SECRET"), "{msg}");
        assert!(
            msg.starts_with(&format!(
                "{}: not a valid webassembly component: ",
                file.display()
            )),
            "{msg}"
        );
        assert!(msg.contains("byte offset 0x"), "{msg}");
    }
    // A core module is named as such.
    let core = dir.path().join("core.wasm");
    std::fs::write(&core, wat::parse_str("(module)").expect("ok")).expect("ok");
    let m = manifest_for(dir.path(), "core", "mapping-functions", &core, "");
    let err = host().load(&m, Grants::default()).expect_err("refused");
    assert!(
        err.to_string()
            .contains("a core webassembly module, not a component"),
        "{err}"
    );
}

/// Finding: a plugin calling WASI `exit` surfaced as an opaque trap.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plugin_calling_exit_gets_a_clear_error() {
    let dir = tempfile::tempdir().expect("ok");
    let h = hostile(dir.path(), "");
    let err = h
        .call_function("exit", &[json!(3)])
        .await
        .expect_err("exits");
    assert_eq!(err.kind(), PluginErrorKind::Exit, "{err}");
    // WASI 0.2's `exit` carries success or failure only: a guest's exit(3) arrives as 1.
    assert_eq!(
        err.to_string(),
        "plugin `hostile` called exit(1) instead of returning a result"
    );
    let err = h
        .call_function("exit", &[json!(0)])
        .await
        .expect_err("exits");
    assert_eq!(
        err.to_string(),
        "plugin `hostile` called exit(0) instead of returning a result"
    );
    assert_eq!(
        h.call_function("echo", &[json!(1)]).await.expect("ok"),
        json!(1)
    );
}

/// Finding: grants were looked up by the `name` a manifest claims, so any plugin whose manifest
/// said `name = "kse-enricher"` got what the operator granted the real one. Grants now name the
/// wasm's sha256 and apply only to bytes that hash to it.
#[test]
fn grants_bind_to_the_pinned_wasm_not_to_the_name_a_manifest_claims() {
    wasm("kse_enricher");
    let dir = tempfile::tempdir().expect("ok");
    let kse_sha = sha256_file(&wasm("kse_enricher"));
    let grants = dir.path().join("grants.toml");
    let write_grants = |key: &str| {
        std::fs::write(
            &grants,
            format!(
                "[host]\ncache_dir = \"{}\"\nwatch_ms = 0\n\n[[grant]]\n{key}\ntenants = [\"acme\"]\nallowed_hosts = [\"http://127.0.0.1:9\"]\nallow_private_networks = true\nconfig = {{ high_value_threshold = 150 }}\n",
                dir.path().join("cache").display()
            ),
        )
        .expect("ok");
    };
    // An impostor: another wasm (it makes HTTP requests) under the real plugin's name.
    let impostor = manifest(
        dir.path(),
        "kse-enricher",
        "enricher",
        "hostile_http",
        "[plugin.capabilities]\nallowed_hosts = [\"http://127.0.0.1:9\"]\n",
    );
    let spec_text = std::fs::read_to_string(
        repo_root().join("mapping-specs/examples/attribution-stripe-kse.toml"),
    )
    .expect("example spec");
    let spec = dir.path().join("kse.toml");
    std::fs::write(
        &spec,
        spec_text.replace(
            "plugin = \"../../plugins/kse-enricher/plugin.toml\"",
            &format!("plugin = \"{}\"", impostor.display()),
        ),
    )
    .expect("ok");
    let data = "mapping-specs/examples/data/attribution-hubspot-stripe.ndjson";
    let attribute = |spec: &str| {
        run(&[
            "attribute",
            "--spec",
            spec,
            "--input",
            data,
            "--plugin-grants",
            grants.to_str().expect("utf-8"),
            "--output",
            "-",
        ])
    };
    // A grant by name is refused, saying what to write instead.
    write_grants("plugin = \"kse-enricher\"");
    let (code, out, err) = attribute(spec.to_str().expect("utf-8"));
    assert_ne!(
        code, 0,
        "the impostor ran with the real plugin's grant:\n{out}{err}"
    );
    assert!(
        err.contains(
            "grants name a plugin by the sha256 of its wasm, not by the name its manifest claims"
        ),
        "{err}"
    );
    // A grant for the real wasm's digest does not reach the impostor: it is refused at load
    // (its http import is not granted).
    write_grants(&format!("sha256 = \"{kse_sha}\""));
    let (code, out, err) = attribute(spec.to_str().expect("utf-8"));
    assert_eq!(code, 1, "{out}{err}");
    assert!(
        err.contains("capability `http` is not granted: the operator grants no allowed hosts"),
        "{err}"
    );
    // The real plugin gets it.
    let (code, out, err) = attribute("mapping-specs/examples/attribution-stripe-kse.toml");
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("\"value_tier\":\"high\""), "{out}");
}

/// A manifest without a pin is refused, saying how to compute and write it; `plugin pin`
/// writes it.
#[test]
fn an_unpinned_manifest_is_refused_and_plugin_pin_writes_the_pin() {
    let dir = tempfile::tempdir().expect("ok");
    let w = dir.path().join("h.wasm");
    std::fs::copy(wasm("hostile_compute"), &w).expect("ok");
    let m = dir.path().join("plugin.toml");
    std::fs::write(
        &m,
        "# a comment that stays\nspec_version = 1\n\n[plugin]\nname = \"h\"\nversion = \"0.1.0\"\nworld = \"mapping-functions\"\nwasm = \"h.wasm\"\n\n[plugin.limits]\ncpu_ms = 100\n",
    )
    .expect("ok");
    let err = host().load(&m, Grants::default()).expect_err("unpinned");
    assert_eq!(err.kind(), PluginErrorKind::Manifest);
    assert_eq!(
        err.to_string(),
        format!(
            "{m}: /plugin/sha256: missing: the host loads only a wasm its manifest pins (operators grant capabilities to that digest); add `sha256 = \"<hex>\"` under [plugin]: `switchyard plugin pin {m}` writes it, `sha256sum {w}` prints it",
            m = m.display(),
            w = w.display()
        )
    );
    let ms = m.to_str().expect("utf-8");
    let (code, out, _) = run(&["plugin", "pin", "--check", ms]);
    assert_eq!(code, 1);
    let sha = sha256_file(&w);
    assert_eq!(out, format!("{sha}  {ms}: not pinned\n"));
    let (code, out, err) = run(&["plugin", "pin", ms]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out, format!("{ms}: sha256 = \"{sha}\"\n"));
    let text = std::fs::read_to_string(&m).expect("ok");
    assert!(text.starts_with("# a comment that stays\n"), "{text}");
    assert!(
        text.contains(&format!("wasm = \"h.wasm\"\nsha256 = \"{sha}\"\n")),
        "{text}"
    );
    host().load(&m, Grants::default()).expect("pinned: loads");
    // A rebuilt wasm: refused until pinned again; `pin` replaces the old pin.
    std::fs::copy(wasm("mapping_basics"), &w).expect("ok");
    let err = host().load(&m, Grants::default()).expect_err("stale pin");
    assert_eq!(err.kind(), PluginErrorKind::Integrity);
    let (code, _, err) = run(&["plugin", "pin", ms]);
    assert_eq!(code, 0, "{err}");
    let text = std::fs::read_to_string(&m).expect("ok");
    assert_eq!(text.matches("sha256 =").count(), 1, "{text}");
    host()
        .load(&m, Grants::default())
        .expect("pinned again: loads");
}

/// Every example manifest pins what .ci/build-plugins builds (the build is reproducible).
#[test]
fn example_manifests_pin_the_built_plugins() {
    wasm("mapping_basics");
    let manifests: Vec<String> = [
        "acme-codec",
        "crm-connector",
        "kse-enricher",
        "mapping-basics",
        "webhook-verifier",
    ]
    .iter()
    .map(|p| format!("plugins/{p}/plugin.toml"))
    .collect();
    let mut args = vec!["plugin", "pin", "--check"];
    args.extend(manifests.iter().map(String::as_str));
    let (code, out, err) = run(&args);
    assert_eq!(
        code, 0,
        "a pin is stale: rebuild (bash .ci/build-plugins) and run `switchyard plugin pin plugins/*/plugin.toml`\n{out}{err}"
    );
}

// ---------------------------------------------------------------------------------------------
// CLI: plugin inspect / test / new

fn run(args: &[&str]) -> (i32, String, String) {
    let out = switchyard().args(args).output().expect("runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn cli_inspect_shows_world_imports_exports_and_checks_the_manifest() {
    wasm("mapping_basics");
    let (code, out, err) = run(&["plugin", "inspect", "plugins/mapping-basics/plugin.toml"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("plugin: mapping-basics 0.1.0"), "{out}");
    assert!(
        out.contains("worlds implemented: mapping-functions"),
        "{out}"
    );
    assert!(
        out.contains("wit: switchyard:plugin@0.1.0 (this host: 0.1.0)"),
        "{out}"
    );
    assert!(
        out.contains("  switchyard:plugin/mapping@0.1.0: functions, call"),
        "{out}"
    );
    assert!(out.contains("manifest check: ok"), "{out}");

    let dir = tempfile::tempdir().expect("ok");
    let m = manifest(
        dir.path(),
        "sneaky",
        "mapping-functions",
        "hostile_import",
        "",
    );
    let (code, out, _) = run(&["plugin", "inspect", m.to_str().expect("ok")]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("  wasi:sockets/"), "{out}");
    assert!(
        out.contains("manifest check: error: plugin `sneaky` imports `wasi:sockets/"),
        "{out}"
    );
}

#[test]
fn cli_test_runs_a_plugin_once() {
    wasm("mapping_basics");
    let (code, out, err) = run(&[
        "plugin",
        "test",
        "plugins/mapping-basics/plugin.toml",
        "--input",
        r#"{"function": "split_name", "args": ["Grace Hopper"]}"#,
    ]);
    assert_eq!(code, 0, "{out}{err}");
    let v: Value = serde_json::from_str(&out).expect("json output");
    assert_eq!(v["first"], "Grace");
    assert_eq!(v["last"], "Hopper");
    let (code, _, err) = run(&[
        "plugin",
        "test",
        "plugins/mapping-basics/plugin.toml",
        "--input",
        r#"{"function": "nope"}"#,
    ]);
    assert_eq!(code, 1);
    assert!(err.contains("unknown function `nope`"), "{err}");
}

/// Finding: `plugin test` printed plugin output raw, so ANSI escapes, carriage returns and C1
/// controls from a plugin reached the terminal.
#[test]
fn cli_test_escapes_control_characters_in_plugin_output() {
    let dir = tempfile::tempdir().expect("ok");
    let m = manifest(dir.path(), "h", "mapping-functions", "hostile_compute", "");
    let ms = m.to_str().expect("utf-8");
    let raw = |text: &str| {
        text.chars()
            .any(|c| (c.is_control() && c != '\n') || c == '\u{202e}')
    };
    // The result: echo returns what it was given (ESC, CSI as C1, CR, DEL, a bidi override).
    let (code, out, err) = run(&[
        "plugin",
        "test",
        ms,
        "--input",
        r#"{"function": "echo", "args": ["red\u001b[31m \u009b2J \r \u007f \u202e"]}"#,
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(!raw(&out), "raw control characters on stdout: {out:?}");
    let v: Value = serde_json::from_str(&out).expect("still json");
    assert_eq!(v, json!("red\u{1b}[31m \u{9b}2J \r \u{7f} \u{202e}"));
    // The plugin's error quotes the function name it was given.
    let (code, out, err) = run(&[
        "plugin",
        "test",
        ms,
        "--input",
        r#"{"function": "nope\u001b]0;owned\u0007\r"}"#,
    ]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(!raw(&err), "raw control characters on stderr: {err:?}");
    assert!(
        err.contains("unknown function `nope\\u{1b}]0;owned\\u{7}\\r`"),
        "{err}"
    );
    // A denial quotes the secret name the plugin asked for.
    let t = manifest(
        dir.path(),
        "thief",
        "webhook-verifier",
        "hostile_secret",
        "[plugin.capabilities]\nsecrets = [\"webhook_secret\"]\n",
    );
    let (_, out, err) = run(&[
        "plugin",
        "test",
        t.to_str().expect("utf-8"),
        "--op",
        "verify",
        "--input",
        r#"{"headers": {"X-Steal": "k\u001b[2J\r"}}"#,
    ]);
    assert!(!raw(&err) && !raw(&out), "{out:?} {err:?}");
    assert!(
        err.contains("denied: secret `k\\u{1b}[2J\\r` is not declared"),
        "{err}"
    );
}

/// The third-party path: scaffold with `plugin new`, build for wasm32-wasip2, test.
#[test]
fn cli_new_scaffolds_a_plugin_that_builds_and_runs() {
    let dir = tempfile::tempdir().expect("ok");
    let (code, out, err) = run(&[
        "plugin",
        "new",
        "shouter",
        "--world",
        "mapping-functions",
        "--dir",
        dir.path().to_str().expect("ok"),
    ]);
    assert_eq!(code, 0, "{out}{err}");
    let crate_dir = dir.path().join("shouter");
    let lib = std::fs::read_to_string(crate_dir.join("src/lib.rs")).expect("ok");
    assert!(
        lib.lines().count() <= 30,
        "template is {} lines",
        lib.lines().count()
    );
    let target = repo_root().join("target/wasm");
    let build = std::process::Command::new(env!("CARGO"))
        .args(["build", "--release", "--target", "wasm32-wasip2", "--quiet"])
        .current_dir(&crate_dir)
        .env("CARGO_TARGET_DIR", &target)
        .output()
        .expect("cargo runs");
    assert!(
        build.status.success(),
        "{}",
        String::from_utf8_lossy(&build.stderr)
    );
    // The manifest points at the crate's own target folder; ours is shared, so copy it there.
    let built = target.join("wasm32-wasip2/release/shouter.wasm");
    let expected = crate_dir.join("target/wasm32-wasip2/release");
    std::fs::create_dir_all(&expected).expect("ok");
    std::fs::copy(&built, expected.join("shouter.wasm")).expect("ok");
    let m = crate_dir.join("plugin.toml");
    let (code, out, err) = run(&["plugin", "pin", m.to_str().expect("ok")]);
    assert_eq!(code, 0, "{out}{err}");
    let (code, out, err) = run(&[
        "plugin",
        "test",
        m.to_str().expect("ok"),
        "--input",
        r#"{"function": "shout", "args": ["hi"]}"#,
    ]);
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(out.trim(), "\"HI\"");
    // The third party's plugin runs from a tenant's mapping spec, with no change to the host.
    let spec = dir.path().join("route.json");
    std::fs::write(
        &spec,
        serde_json::json!({"spec_version": 1, "tenant": "t", "connector": "hubspot",
            "plugins": {"shouter": m.to_str().expect("ok")},
            "crm_config": {"type": "hubspot", "field_mappings": {
                "email": "email",
                "firstname": {"type": "computed", "formula": "shouter.shout(first)"}}}})
        .to_string(),
    )
    .expect("ok");
    let input = dir.path().join("in.ndjson");
    std::fs::write(&input, "{\"email\": \"a@b.co\", \"first\": \"ada\"}\n").expect("ok");
    let (code, out, err) = run(&[
        "map",
        "--mapping",
        spec.to_str().expect("ok"),
        "--input",
        input.to_str().expect("ok"),
    ]);
    assert_eq!(code, 0, "{out}{err}");
    let v: Value = serde_json::from_str(out.trim()).expect("json");
    assert_eq!(v["objects"]["contact"]["firstname"], "ADA");
    for world in [
        "request-codec",
        "full-connector",
        "webhook-verifier",
        "enricher",
    ] {
        let (code, out, err) = run(&[
            "plugin",
            "new",
            &format!("p-{world}"),
            "--world",
            world,
            "--dir",
            dir.path().to_str().expect("ok"),
        ]);
        assert_eq!(code, 0, "{out}{err}");
    }
    let (code, _, err) = run(&["plugin", "new", "x", "--world", "nope"]);
    assert_eq!(code, 2);
    assert!(err.contains("unknown world `nope`"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_codec_signs_for_the_emulator_and_decodes_its_answers() {
    let (addr, emu) = acme_emulator("codec-secret").await;
    let dir = tempfile::tempdir().expect("ok");
    let codec = load(
        dir.path(),
        "acme-codec",
        "request-codec",
        "acme_codec",
        "[plugin.capabilities]\nsecrets = [\"api_secret\"]\nconfig = [\"key_id\"]\n",
        Grants {
            secrets: [("api_secret".to_string(), Secret::new("codec-secret"))]
                .into_iter()
                .collect(),
            config: [("key_id".to_string(), json!("key-1"))]
                .into_iter()
                .collect(),
            ..Grants::default()
        },
    );
    let signed = codec
        .sign(switchyard::plugin::HttpRequest {
            method: "GET".into(),
            url: format!("http://{addr}/contacts?page=2"),
            headers: vec![("Accept".into(), "text/csv".into())],
            body: Vec::new(),
        })
        .await
        .expect("signed");
    let names: Vec<&str> = signed.headers.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        [
            "Accept",
            "X-Acme-Key",
            "X-Acme-Timestamp",
            "X-Acme-Signature"
        ]
    );
    // The host's HTTP client sends the signed request; the emulator checks the signature.
    let client = reqwest::Client::new();
    let mut rb = client.get(&signed.url);
    for (n, v) in &signed.headers {
        rb = rb.header(n.as_str(), v.as_str());
    }
    let resp = rb.send().await.expect("sent");
    assert_eq!(resp.status(), 200);
    let ct = resp.headers()["content-type"]
        .to_str()
        .expect("ok")
        .to_string();
    let body = resp.bytes().await.expect("body");
    let decoded = codec.decode(&ct, &body).await.expect("decoded");
    assert_eq!(
        decoded,
        json!([{"id": "3", "email": "alan@example.com", "name": "Alan Turing"}])
    );
    assert_eq!(emu.hits.load(Ordering::SeqCst), 1);
    let err = codec
        .decode("application/pdf", b"%PDF")
        .await
        .expect_err("must fail");
    assert_eq!(
        err.to_string(),
        "plugin `acme-codec` failed: invalid-input: unexpected content type `application/pdf`"
    );
}

/// On a single-threaded runtime a spinning plugin yields at every epoch tick, so another tenant's
/// call completes while it spins (and before it is stopped).
#[tokio::test(flavor = "current_thread")]
async fn a_spinning_plugin_does_not_starve_other_calls() {
    let dir = tempfile::tempdir().expect("ok");
    let spinner = hostile(dir.path(), "cpu_ms = 1500");
    let other = load(
        dir.path(),
        "other",
        "mapping-functions",
        "hostile_compute",
        "",
        Grants::default(),
    );
    let order = Arc::new(AtomicUsize::new(0));
    let (o1, o2) = (order.clone(), order.clone());
    let spin = tokio::spawn(async move {
        let r = spinner.call_function("spin", &[]).await;
        (r, o1.fetch_add(1, Ordering::SeqCst))
    });
    let quick = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(50)).await;
        let r = other.call_function("echo", &[json!("still here")]).await;
        (r, o2.fetch_add(1, Ordering::SeqCst))
    });
    let (q, q_pos) = quick.await.expect("joined");
    let (s, s_pos) = spin.await.expect("joined");
    assert_eq!(q.expect("other tenant works"), json!("still here"));
    assert_eq!(s.expect_err("stopped").kind(), PluginErrorKind::CpuLimit);
    assert!(q_pos < s_pos, "the other call waited for the spinner");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_concurrent_calls_share_the_pool() {
    let dir = tempfile::tempdir().expect("ok");
    let h = hostile(dir.path(), "");
    let tasks: Vec<_> = (0..300)
        .map(|i| {
            let h = h.clone();
            tokio::spawn(async move { h.call_function("echo", &[json!(i)]).await })
        })
        .collect();
    for (i, t) in tasks.into_iter().enumerate() {
        assert_eq!(t.await.expect("joined").expect("call"), json!(i));
    }
}
