//! `switchyard serve`: webhooks verified as the source's connector spec declares (built-in
//! HMAC, or a webhook-verifier plugin with operator grants), mapped and delivered to an emulator.

use crate::cli::{repo_root, switchyard};
use base64::Engine as _;
use ring::hmac;
use serde_json::{Value, json};
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Stdio};

struct Server {
    child: Child,
    base: String,
    /// What it wrote on stderr before listening.
    banner: String,
    /// Its later stderr lines, as they come.
    log: std::sync::mpsc::Receiver<String>,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start(args: &[&str], envs: &[(&str, &str)]) -> Server {
    launch(args, envs).unwrap_or_else(|seen| panic!("serve exited before listening:\n{seen}"))
}

/// Starts `serve`; `Err` holds its stderr when it exits instead of listening.
fn launch(args: &[&str], envs: &[(&str, &str)]) -> Result<Server, String> {
    let mut cmd = switchyard();
    cmd.arg("serve")
        .args(args)
        .args(["--listen", "127.0.0.1:0"])
        .env_remove("SWITCHYARD_PLUGIN_GRANTS")
        .env_remove("SWITCHYARD_PUBLIC_URL")
        .stderr(Stdio::piped())
        .stdout(Stdio::null());
    for (k, v) in envs {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().expect("serve starts");
    let stderr = child.stderr.take().expect("stderr");
    let mut lines = BufReader::new(stderr).lines();
    let mut seen = String::new();
    let base = loop {
        let Some(Ok(line)) = lines.next() else {
            let status = child.wait().expect("exit status");
            seen.push_str(&format!("({status})"));
            return Err(seen);
        };
        seen.push_str(&line);
        seen.push('\n');
        if let Some(b) = line.strip_prefix("listening on ") {
            break b.to_string();
        }
    };
    let (tx, log) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in lines.map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    Ok(Server {
        child,
        base,
        banner: seen,
        log,
    })
}

fn write(dir: &Path, name: &str, text: &str) -> String {
    let p = dir.join(name);
    std::fs::write(&p, text).expect("write");
    p.to_str().expect("utf-8").to_string()
}

/// Seed 003's HubSpot contact route, its CallRail signing key from `SY_TEST_CALLRAIL_KEY`.
fn contact_route() -> Value {
    let mut m: Value = serde_json::from_str(
        &std::fs::read_to_string(repo_root().join("mapping-specs/examples/hubspot-contact.json"))
            .expect("example"),
    )
    .expect("json");
    m["source_secrets"] = json!({"webhook_signing_key": "env:SY_TEST_CALLRAIL_KEY"});
    m
}

/// `serve` with these route files on in-process emulators (`--sandbox`), the repo's connector
/// specs, the store `store` and the CallRail signing key of [`contact_route`]; `extra` flags
/// are added.
fn start_sandboxed(mappings: &[&str], store: &Path, extra: &[&str]) -> Server {
    let connectors = repo_root().join("connector-specs");
    let mut args: Vec<&str> = Vec::new();
    for m in mappings {
        args.extend(["--mapping", m]);
    }
    args.extend([
        "--sandbox",
        "--connectors",
        connectors.to_str().expect("utf-8"),
        "--store",
        store.to_str().expect("utf-8"),
    ]);
    args.extend(extra);
    start(&args, &[("SY_TEST_CALLRAIL_KEY", "callrail-signing-key")])
}

fn callrail_sig(key: &str, body: &[u8]) -> String {
    let key = hmac::Key::new(hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, key.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(hmac::sign(&key, body).as_ref())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn callrail_webhooks_are_verified_mapped_and_delivered() {
    let dir = tempfile::tempdir().expect("dir");
    let m = contact_route();
    let mapping = write(dir.path(), "route.json", &m.to_string());
    let store = dir.path().join("s.sqlite");
    let server = start_sandboxed(&[&mapping], &store, &[]);
    let url = format!("{}/webhooks/tenant_TENANT_ID/callrail", server.base);
    let http = reqwest::Client::new();
    let call = json!({"call_id": "CAL9", "customer_phone": "(415) 555-2671", "customer_email": "ada@example.com",
                      "customer_name_first": "Ada", "customer_name_last": "Lovelace", "source": "Google Ads"});
    let body = call.to_string().into_bytes();
    let post = |sig: String, body: Vec<u8>| {
        http.post(&url)
            .header("content-type", "application/json")
            .header("Signature", sig)
            .body(body)
            .send()
    };
    let r = post(callrail_sig("callrail-signing-key", &body), body.clone())
        .await
        .expect("sent");
    assert_eq!(r.status(), 200);
    let report: Value = r.json().await.expect("json");
    // The contact and the deal the seed's `pipeline_id` brings (the route maps `email` from a
    // field this call does not have, so no company).
    assert_eq!(report["created"], 2, "{report}");
    // The same call again (CallRail retries): found as a duplicate, updated, not created.
    let r = post(callrail_sig("callrail-signing-key", &body), body.clone())
        .await
        .expect("sent");
    let report: Value = r.json().await.expect("json");
    assert_eq!(
        (report["created"].as_u64(), report["updated"].as_u64()),
        (Some(0), Some(2)),
        "{report}"
    );
    // A forged signature, a tampered body, garbage, an unknown route.
    let r = post(callrail_sig("wrong-key", &body), body.clone())
        .await
        .expect("sent");
    assert_eq!(r.status(), 401);
    let e: Value = r.json().await.expect("json");
    assert_eq!(e, json!({"error": "signature_invalid"}));
    let r = post(callrail_sig("callrail-signing-key", &body), b"{}".to_vec())
        .await
        .expect("sent");
    assert_eq!(r.status(), 401);
    let r = post(
        callrail_sig("callrail-signing-key", b"nope"),
        b"nope".to_vec(),
    )
    .await
    .expect("sent");
    assert_eq!(r.status(), 400);
    let r = http
        .post(format!("{}/webhooks/other/callrail", server.base))
        .body("{}")
        .send()
        .await
        .expect("sent");
    assert_eq!(r.status(), 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_webhook_verifier_plugin_guards_a_source_with_the_operators_secret() {
    assert!(
        repo_root()
            .join("target/plugins/webhook_verifier.wasm")
            .exists(),
        "run .ci/build-plugins first"
    );
    let dir = tempfile::tempdir().expect("dir");
    let specs = dir.path().join("specs");
    std::fs::create_dir(&specs).expect("dir");
    std::fs::copy(
        repo_root().join("connector-specs/hubspot.toml"),
        specs.join("hubspot.toml"),
    )
    .expect("copy");
    write(
        &specs,
        "formhook.toml",
        &format!(
            r#"spec_version = 1
[connector]
name = "formhook"
title = "Web form webhooks"
kind = "source"
base_url = "https://forms.example"
[plugins]
verifier = "{}"
[inbound]
object = "submission"
idempotency_key = "$.id"
webhook = {{ scheme = "plugin", plugin = "verifier" }}
[objects.submission.fields]
id = "string"
email = "string"
first = "string"
"#,
            repo_root()
                .join("plugins/webhook-verifier/plugin.toml")
                .display()
        ),
    );
    let mapping = write(
        dir.path(),
        "route.json",
        &json!({"spec_version": 1, "tenant": "t1", "connector": "hubspot", "source": "formhook",
                "crm_config": {"type": "hubspot", "field_mappings": {"email": "email", "firstname": "first"}}})
        .to_string(),
    );
    let grants = write(
        dir.path(),
        "grants.toml",
        &format!(
            "[host]\ncache_dir = \"{}\"\n[[grant]]\nsha256 = \"{}\"\ntenants = [\"t1\"]\nsecrets = {{ webhook_secret = \"env:SY_TEST_WH\" }}\n",
            dir.path().join("cache").display(),
            // The grant names the verifier's wasm by its sha256.
            hex::encode(<sha2::Sha256 as sha2::Digest>::digest(
                std::fs::read(repo_root().join("target/plugins/webhook_verifier.wasm"))
                    .expect("built")
            ))
        ),
    );
    let server = start(
        &[
            "--mapping",
            &mapping,
            "--sandbox",
            "--connectors",
            specs.to_str().expect("utf-8"),
            "--plugin-grants",
            &grants,
            "--store",
            dir.path().join("s.sqlite").to_str().expect("utf-8"),
        ],
        &[("SY_TEST_WH", "whsec_form")],
    );
    let url = format!("{}/webhooks/t1/formhook", server.base);
    let body = json!({"id": "F1", "email": "grace@example.com", "first": "Grace"}).to_string();
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs();
    let sign = |secret: &str, t: u64, body: &str| {
        let key = hmac::Key::new(hmac::HMAC_SHA256, secret.as_bytes());
        let sig = hmac::sign(&key, format!("{t}.{body}").as_bytes());
        format!("t={t},v1={}", hex::encode(sig.as_ref()))
    };
    let http = reqwest::Client::new();
    let r = http
        .post(&url)
        .header("X-Signature", sign("whsec_form", t, &body))
        .body(body.clone())
        .send()
        .await
        .expect("sent");
    assert_eq!(r.status(), 200);
    let report: Value = r.json().await.expect("json");
    assert_eq!(report["created"], 1, "{report}");
    let r = http
        .post(&url)
        .header("X-Signature", sign("whsec_form", t - 3600, &body))
        .body(body.clone())
        .send()
        .await
        .expect("sent");
    assert_eq!(r.status(), 401);
    let e: Value = r.json().await.expect("json");
    // The plugin's reason ("timestamp outside the tolerance") is for the log only.
    assert_eq!(e, json!({"error": "signature_invalid"}));
    let r = http
        .post(&url)
        .header("X-Signature", sign("not-the-secret", t, &body))
        .body(body)
        .send()
        .await
        .expect("sent");
    assert_eq!(r.status(), 401);
    let e: Value = r.json().await.expect("json");
    assert_eq!(e, json!({"error": "signature_invalid"}));
}

/// A connectors folder with HubSpot (the CRM routes deliver to) and an inbound source `hook`
/// whose `[inbound]` table ends with `inbound`, and a route from `hook` to HubSpot for tenant
/// `t1` with the signing key `env:SY_HOOK_KEY`.
struct Hook {
    dir: tempfile::TempDir,
    specs: String,
    route: String,
    store: String,
}

fn hook(inbound: &str) -> Hook {
    let dir = tempfile::tempdir().expect("dir");
    let specs = dir.path().join("specs");
    std::fs::create_dir(&specs).expect("dir");
    std::fs::copy(
        repo_root().join("connector-specs/hubspot.toml"),
        specs.join("hubspot.toml"),
    )
    .expect("copy");
    write(
        &specs,
        "hook.toml",
        &format!(
            r#"spec_version = 1
[connector]
name = "hook"
title = "A webhook source"
kind = "source"
base_url = "https://hook.example"
[secrets]
signing_key = {{ description = "webhook signing secret" }}
[inbound]
object = "event"
idempotency_key = "$.id"
{inbound}
[objects.event.fields]
id = "string"
email = "string"
first = "string"
"#
        ),
    );
    let route = write(
        dir.path(),
        "route.json",
        &json!({"spec_version": 1, "tenant": "t1", "connector": "hubspot", "source": "hook",
                "source_secrets": {"signing_key": "env:SY_HOOK_KEY"},
                "crm_config": {"type": "hubspot", "field_mappings": {"email": "email", "firstname": "first"}}})
        .to_string(),
    );
    Hook {
        specs: specs.to_str().expect("utf-8").to_string(),
        route,
        store: dir
            .path()
            .join("s.sqlite")
            .to_str()
            .expect("utf-8")
            .to_string(),
        dir,
    }
}

impl Hook {
    fn args<'a>(&'a self, extra: &[&'a str]) -> Vec<&'a str> {
        let mut a = vec![
            "--mapping",
            &self.route,
            "--sandbox",
            "--connectors",
            &self.specs,
            "--store",
            &self.store,
        ];
        a.extend_from_slice(extra);
        a
    }

    fn serve(&self, extra: &[&str], key: &str) -> Server {
        start(&self.args(extra), &[("SY_HOOK_KEY", key)])
    }
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs()
}

fn event(id: &str) -> String {
    json!([{"id": id, "email": format!("{id}@example.com"), "first": "Ada"}]).to_string()
}

fn hmac_sha256(key: &str, parts: &[&[u8]]) -> Vec<u8> {
    let key = hmac::Key::new(hmac::HMAC_SHA256, key.as_bytes());
    let mut ctx = hmac::Context::with_key(&key);
    for p in parts {
        ctx.update(p);
    }
    ctx.sign().as_ref().to_vec()
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_source_without_verification_is_refused_unless_it_says_none() {
    let h = hook("");
    let e = launch(&h.args(&[]), &[("SY_HOOK_KEY", "k")])
        .err()
        .expect("a route that verifies nothing must not be served");
    assert!(e.contains("route t1/hook"), "{e}");
    assert!(e.contains("declares no webhook verification"), "{e}");
    assert!(e.contains("verification = \"none\""), "{e}");
    assert!(e.ends_with("(exit status: 1)"), "{e}");

    // Said explicitly: served, and validate warns.
    let h = hook(r#"verification = "none""#);
    let out = switchyard()
        .args(["validate", &format!("{}/hook.toml", h.specs)])
        .output()
        .expect("runs");
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(text.contains("warning[W240]"), "{text}");
    assert!(text.contains("/inbound/verification"), "{text}");
    let server = h.serve(&[], "unused");
    let r = reqwest::Client::new()
        .post(format!("{}/webhooks/t1/hook", server.base))
        .body(event("unsigned"))
        .send()
        .await
        .expect("sent");
    assert_eq!(r.status(), 200);
    let report: Value = r.json().await.expect("json");
    assert_eq!(report["created"], 1, "{report}");

    // Both a scheme and "none" contradict each other.
    let h = hook(
        "verification = \"none\"\nwebhook = { scheme = \"stripe\", secret = \"signing_key\" }",
    );
    let e = launch(&h.args(&[]), &[("SY_HOOK_KEY", "k")])
        .err()
        .expect("contradiction refused");
    assert!(e.contains("contradicts"), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_empty_signing_secret_refuses_to_start_the_route() {
    let h = hook(r#"webhook = { scheme = "stripe", secret = "signing_key" }"#);
    let e = launch(&h.args(&[]), &[("SY_HOOK_KEY", "")])
        .err()
        .expect("an empty signing secret must not be served");
    assert!(e.contains("route t1/hook"), "{e}");
    assert!(
        e.contains("/source_secrets/signing_key (env:SY_HOOK_KEY)"),
        "{e}"
    );
    assert!(
        e.contains("the webhook secret `signing_key` is empty"),
        "{e}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stripe_signatures_with_thousands_of_candidates_do_not_stall_the_server() {
    let h = hook(r#"webhook = { scheme = "stripe", secret = "signing_key" }"#);
    let server = h.serve(&[], "whsec_stall");
    let url = format!("{}/webhooks/t1/hook", server.base);
    let http = reqwest::Client::new();
    // ~60 KB of `v1=` candidates (under any server's header limit) over a ~1 MB body: one
    // HMAC per candidate would be close to a gigabyte of hashing per request.
    let t = unix_now();
    let junk = format!("v1={}", "ab".repeat(32));
    let header = format!("t={t},") + &vec![junk; 880].join(",");
    let body = format!("{{\"pad\":\"{}\"}}", "x".repeat(1_000_000));
    let started = std::time::Instant::now();
    let hostile: Vec<_> = (0..8)
        .map(|_| {
            let req = http
                .post(&url)
                .header("Stripe-Signature", &header)
                .body(body.clone());
            tokio::spawn(async move { req.send().await })
        })
        .collect();
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let health = std::time::Instant::now();
    let r = tokio::time::timeout(
        std::time::Duration::from_secs(20),
        http.get(format!("{}/health", server.base)).send(),
    )
    .await
    .expect("health answers")
    .expect("sent");
    assert_eq!(r.status(), 200);
    let health = health.elapsed();
    let mut statuses = Vec::new();
    for h in hostile {
        statuses.push(h.await.expect("task").expect("sent").status());
    }
    let all = started.elapsed();
    assert!(
        health < std::time::Duration::from_millis(1500),
        "/health took {health:?} while forged signatures were checked"
    );
    assert!(
        all < std::time::Duration::from_secs(10),
        "eight forged requests took {all:?}"
    );
    assert!(statuses.iter().all(|s| *s == 401), "{statuses:?}");
    // A genuine signature still verifies.
    let body = event("pi1");
    let sig = hex::encode(hmac_sha256(
        "whsec_stall",
        &[format!("{t}.").as_bytes(), body.as_bytes()],
    ));
    let r = http
        .post(&url)
        .header("Stripe-Signature", format!("t={t},v1={sig}"))
        .body(body)
        .send()
        .await
        .expect("sent");
    assert_eq!(r.status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hubspot_v3_verifies_against_the_public_url_and_ignores_untrusted_forwarding() {
    let h = hook(r#"webhook = { scheme = "hubspot_v3", secret = "signing_key" }"#);
    let secret = "hubspot-client-secret";
    let body = event("hs1");
    // Exactly as HubSpot documents v3: method + the full https URI it called + body +
    // timestamp (ms), HMAC-SHA256 with the client secret, base64.
    let signed = |ts: &str| {
        b64(&hmac_sha256(
            secret,
            &[
                b"POST",
                b"https://hooks.example.com/webhooks/t1/hook",
                body.as_bytes(),
                ts.as_bytes(),
            ],
        ))
    };
    let ts = (unix_now() * 1000).to_string();
    let http = reqwest::Client::new();
    let post = |base: &str, forwarded: bool, ts: &str| {
        let mut r = http
            .post(format!("{base}/webhooks/t1/hook"))
            .header("X-HubSpot-Signature-v3", signed(ts))
            .header("X-HubSpot-Request-Timestamp", ts)
            .header("content-type", "application/json")
            .body(body.clone());
        if forwarded {
            r = r
                .header("X-Forwarded-Proto", "https")
                .header("X-Forwarded-Host", "hooks.example.com");
        }
        r.send()
    };

    let public = h.serve(&["--public-url", "https://hooks.example.com"], secret);
    let r = post(&public.base, false, &ts).await.expect("sent");
    assert_eq!(r.status(), 200, "{:?}", r.text().await);
    // Outside the 5-minute window: refused.
    let old = ((unix_now() - 600) * 1000).to_string();
    let r = post(&public.base, false, &old).await.expect("sent");
    assert_eq!(r.status(), 401);

    // Forged forwarding headers from a peer that is not a trusted proxy change nothing.
    let untrusted = h.serve(&["--trusted-proxy", "10.0.0.0/8"], secret);
    let r = post(&untrusted.base, true, &ts).await.expect("sent");
    assert_eq!(r.status(), 401);
    let e: Value = r.json().await.expect("json");
    assert_eq!(e, json!({"error": "signature_invalid"}));

    // From a trusted proxy they are the public URL.
    let trusted = h.serve(&["--trusted-proxy", "127.0.0.1/32"], secret);
    let r = post(&trusted.base, true, &ts).await.expect("sent");
    assert_eq!(r.status(), 200);
    let r = post(&trusted.base, false, &ts).await.expect("sent");
    assert_eq!(r.status(), 401);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zendesk_signatures_outside_the_replay_window_are_refused() {
    let h = hook(r#"webhook = { scheme = "zendesk", secret = "signing_key" }"#);
    let secret = "zendesk-signing-secret";
    let server = h.serve(&[], secret);
    let http = reqwest::Client::new();
    let post = |ts: String, body: String| {
        let sig = b64(&hmac_sha256(secret, &[ts.as_bytes(), body.as_bytes()]));
        http.post(format!("{}/webhooks/t1/hook", server.base))
            .header("X-Zendesk-Webhook-Signature", sig)
            .header("X-Zendesk-Webhook-Signature-Timestamp", ts)
            .body(body)
            .send()
    };
    let rfc3339 = |secs: u64| {
        chrono::DateTime::from_timestamp(i64::try_from(secs).expect("time"), 0)
            .expect("time")
            .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
    };
    let r = post(rfc3339(unix_now()), event("zd1")).await.expect("sent");
    assert_eq!(r.status(), 200);
    // A captured request replayed an hour later.
    let r = post(rfc3339(unix_now() - 3600), event("zd2"))
        .await
        .expect("sent");
    assert_eq!(r.status(), 401);
    let e: Value = r.json().await.expect("json");
    assert_eq!(e, json!({"error": "signature_invalid"}));
}

/// Reads from `s` until the server closes the connection (or `limit` passes); what it sent.
fn read_until_closed(s: &mut std::net::TcpStream, limit: std::time::Duration) -> (String, bool) {
    use std::io::Read;
    s.set_read_timeout(Some(limit)).expect("timeout");
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return (String::from_utf8_lossy(&got).into_owned(), true),
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {
                return (String::from_utf8_lossy(&got).into_owned(), true);
            }
            Err(_) => return (String::from_utf8_lossy(&got).into_owned(), false),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_partial_request_is_closed_while_others_are_served() {
    use std::io::Write;
    let h = hook(r#"webhook = { scheme = "stripe", secret = "signing_key" }"#);
    // Default limits: the header timeout is 10 s.
    let server = h.serve(&[], "whsec_slow");
    let addr = server.base.trim_start_matches("http://").to_string();
    let mut slow = std::net::TcpStream::connect(&addr).expect("connect");
    slow.write_all(b"POST /webhooks/t1/hook HTTP/1.1\r\nHost: x\r\nContent-Ty")
        .expect("half a request");
    let started = std::time::Instant::now();
    // Meanwhile the server answers others.
    let r = reqwest::get(format!("{}/health", server.base))
        .await
        .expect("sent");
    assert_eq!(r.status(), 200);
    assert!(started.elapsed() < std::time::Duration::from_secs(2));
    let (_, closed) = tokio::task::spawn_blocking(move || {
        read_until_closed(&mut slow, std::time::Duration::from_secs(20))
    })
    .await
    .expect("reader");
    let waited = started.elapsed();
    assert!(
        closed,
        "the stalled connection was left open for {waited:?}"
    );
    assert!(
        waited < std::time::Duration::from_secs(15),
        "closed only after {waited:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_body_times_out_and_a_large_one_is_refused() {
    use std::io::Write;
    let h = hook(r#"webhook = { scheme = "stripe", secret = "signing_key" }"#);
    let server = h.serve(
        &["--body-timeout-secs", "1", "--max-body-bytes", "1000"],
        "whsec_body",
    );
    let addr = server.base.trim_start_matches("http://").to_string();
    let mut slow = std::net::TcpStream::connect(&addr).expect("connect");
    slow.write_all(
        b"POST /webhooks/t1/hook HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{\"id\":",
    )
    .expect("headers and a bit of body");
    let started = std::time::Instant::now();
    let (answer, closed) = tokio::task::spawn_blocking(move || {
        read_until_closed(&mut slow, std::time::Duration::from_secs(10))
    })
    .await
    .expect("reader");
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("body_timeout"), "{answer}");
    assert!(closed, "{answer}");
    assert!(started.elapsed() < std::time::Duration::from_secs(5));

    let http = reqwest::Client::new();
    let r = http
        .post(format!("{}/webhooks/t1/hook", server.base))
        .body("x".repeat(1001))
        .send()
        .await
        .expect("sent");
    assert_eq!(r.status(), 413);
    let e: Value = r.json().await.expect("json");
    assert_eq!(e["error"], "body_too_large");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_beyond_the_cap_wait_for_a_free_slot() {
    use std::io::Write;
    let h = hook(r#"webhook = { scheme = "stripe", secret = "signing_key" }"#);
    let server = h.serve(
        &["--max-connections", "1", "--header-timeout-secs", "1"],
        "whsec_cap",
    );
    let addr = server.base.trim_start_matches("http://").to_string();
    let mut slow = std::net::TcpStream::connect(&addr).expect("connect");
    slow.write_all(b"GET /health HTTP/1.1\r\n").expect("half");
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let started = std::time::Instant::now();
    let r = reqwest::get(format!("{}/health", server.base))
        .await
        .expect("sent");
    assert_eq!(r.status(), 200);
    let waited = started.elapsed();
    assert!(
        waited >= std::time::Duration::from_millis(400),
        "served at once ({waited:?}) although the one slot was taken"
    );
    drop(slow);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_verifier_plugins_reason_never_reaches_the_sender() {
    assert!(
        repo_root()
            .join("target/plugins/hostile_reason.wasm")
            .exists(),
        "run .ci/build-plugins first"
    );
    let h = hook("webhook = { scheme = \"plugin\", plugin = \"verifier\" }");
    let wasm = repo_root().join("target/plugins/hostile_reason.wasm");
    let sha256 = {
        use sha2::Digest;
        hex::encode(sha2::Sha256::digest(std::fs::read(&wasm).expect("wasm")))
    };
    let manifest = write(
        h.dir.path(),
        "blabber.toml",
        &format!(
            "spec_version = 1\n[plugin]\nname = \"blabber\"\nversion = \"0.1.0\"\nworld = \"webhook-verifier\"\nwasm = \"{}\"\nsha256 = \"{sha256}\"\n[plugin.capabilities]\nsecrets = [\"webhook_secret\"]\n",
            wasm.display()
        ),
    );
    let spec = std::path::Path::new(&h.specs).join("hook.toml");
    let text = std::fs::read_to_string(&spec).expect("spec");
    std::fs::write(
        &spec,
        text.replace(
            "[inbound]",
            &format!("[plugins]\nverifier = \"{manifest}\"\n[inbound]"),
        ),
    )
    .expect("spec");
    let grants = write(
        h.dir.path(),
        "grants.toml",
        &format!(
            "[host]\ncache_dir = \"{}\"\n[[grant]]\nsha256 = \"{sha256}\"\ntenants = [\"t1\"]\nsecrets = {{ webhook_secret = \"env:SY_TEST_BLAB\" }}\n",
            h.dir.path().join("cache").display()
        ),
    );
    let secret = "whsec_blabber_0123";
    let server = start(
        &h.args(&["--plugin-grants", &grants]),
        &[("SY_HOOK_KEY", "unused"), ("SY_TEST_BLAB", secret)],
    );
    let http = reqwest::Client::new();
    let reversed: String = secret.chars().rev().collect();
    for (fail, status, code) in [
        (false, 401, "signature_invalid"),
        (true, 503, "verifier_unavailable"),
    ] {
        let mut r = http
            .post(format!("{}/webhooks/t1/hook", server.base))
            .body(event("p1"));
        if fail {
            r = r.header("X-Fail", "1");
        }
        let r = r.send().await.expect("sent");
        assert_eq!(r.status(), status);
        let text = r.text().await.expect("text");
        for leak in [secret, &reversed, &hex::encode(secret)] {
            assert!(!text.contains(leak), "{text}");
        }
        assert_eq!(
            serde_json::from_str::<Value>(&text).expect("json"),
            json!({ "error": code })
        );
    }
}

/// Two routes of one tenant and one connector (here from two inbound sources) used to get a
/// rate limiter each, so together they sent twice the vendor's allowance. One engine now
/// serves every route: one budget per (tenant, connector), and the vendor sees no 429.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_routes_of_one_tenant_and_connector_share_one_rate_budget() {
    use switchyard_sandbox::{self as sandbox, RateLimitOverride, SandboxOptions, Vendor};
    let emu = sandbox::start(
        Vendor::Hubspot,
        SandboxOptions {
            rate_limit: Some(RateLimitOverride {
                requests: 10,
                per: std::time::Duration::from_secs(1),
            }),
            ..Default::default()
        },
    )
    .await
    .expect("emulator");
    let dir = tempfile::tempdir().expect("dir");
    let specs = dir.path().join("connectors");
    std::fs::create_dir_all(&specs).expect("dir");
    // The connector's own budget: 8 requests a second, under the vendor's 10.
    let hubspot = std::fs::read_to_string(repo_root().join("connector-specs/hubspot.toml"))
        .expect("spec")
        .replace(
            "requests = 100\nper_seconds = 10",
            "requests = 8\nper_seconds = 1",
        );
    std::fs::write(specs.join("hubspot.toml"), hubspot).expect("write");
    let callrail =
        std::fs::read_to_string(repo_root().join("connector-specs/callrail.toml")).expect("spec");
    std::fs::write(specs.join("callrail.toml"), &callrail).expect("write");
    std::fs::write(
        specs.join("callrail2.toml"),
        callrail.replace("name = \"callrail\"", "name = \"callrail2\""),
    )
    .expect("write");
    let route = |source: &str| {
        let m = json!({"spec_version": 1, "tenant": "t1", "connector": "hubspot", "source": source,
            "source_secrets": {"webhook_signing_key": "env:SY_TEST_SHARED_KEY"},
            "crm_config": {"type": "hubspot", "api_token": emu.credentials().get("access_token").expect("token"),
                           "settings": {"base_url": emu.base_url()},
                           "duplicate_detection": {"enabled": true, "match_fields": ["email"]},
                           "field_mappings": {"email": "customer_email", "firstname": "customer_name_first"}}});
        write(dir.path(), &format!("{source}.json"), &m.to_string())
    };
    let (a, b) = (route("callrail"), route("callrail2"));
    let store = dir.path().join("s.sqlite");
    let server = start(
        &[
            "--mapping",
            &a,
            "--mapping",
            &b,
            "--connectors",
            specs.to_str().expect("utf-8"),
            "--store",
            store.to_str().expect("utf-8"),
        ],
        &[("SY_TEST_SHARED_KEY", "shared-key")],
    );
    let http = reqwest::Client::new();
    let mut sends = Vec::new();
    for i in 0..24 {
        let source = if i % 2 == 0 { "callrail" } else { "callrail2" };
        let body =
            json!({"call_id": format!("C{i}"), "customer_email": format!("p{i}@example.com"),
                          "customer_name_first": "P"})
            .to_string()
            .into_bytes();
        let req = http
            .post(format!("{}/webhooks/t1/{source}", server.base))
            .header("Signature", callrail_sig("shared-key", &body))
            .body(body);
        sends.push(tokio::spawn(async move { req.send().await }));
    }
    for s in sends {
        let r = s.await.expect("joined").expect("sent");
        assert_eq!(r.status(), 200);
    }
    let stats = emu.stats();
    assert_eq!(emu.records("contacts").len(), 24);
    assert_eq!(
        stats.throttled, 0,
        "the vendor throttled {} of {} requests: the routes did not share one budget",
        stats.throttled, stats.requests
    );
    emu.shutdown().await;
}

/// Waits up to `secs` for a log line containing `needle`; returns it.
fn wait_for_log(server: &Server, needle: &str, secs: u64) -> Option<String> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
    loop {
        let left = deadline.checked_duration_since(std::time::Instant::now())?;
        match server.log.recv_timeout(left) {
            Ok(line) if line.contains(needle) => return Some(line),
            Ok(_) => {}
            Err(_) => return None,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changed_routes_reload_and_broken_ones_keep_the_old_version_serving() {
    let dir = tempfile::tempdir().expect("dir");
    let mut m = contact_route();
    let mapping = write(dir.path(), "route.json", &m.to_string());
    let store = dir.path().join("s.sqlite");
    let server = start_sandboxed(
        &[&mapping],
        &store,
        &["--reload-secs", "1", "--log-format", "json"],
    );
    let emulator = server
        .banner
        .lines()
        .find_map(|l| l.strip_prefix("sandbox: hubspot emulator at "))
        .expect("the emulator's address")
        .trim()
        .to_string();
    let url = format!("{}/webhooks/tenant_TENANT_ID/callrail", server.base);
    let http = reqwest::Client::new();
    // Sends one call; answers the first name the contact got in the CRM.
    let deliver = |n: u32| {
        let http = http.clone();
        let url = url.clone();
        let emulator = emulator.clone();
        async move {
            let call = json!({"call_id": format!("CAL{n}"), "customer_email": format!("caller{n}@example.com"),
                              "customer_name_first": "First", "customer_name_last": "Last"});
            let body = call.to_string().into_bytes();
            let r = http
                .post(&url)
                .header("content-type", "application/json")
                .header("Signature", callrail_sig("callrail-signing-key", &body))
                .body(body)
                .send()
                .await
                .expect("sent");
            assert_eq!(r.status(), 200);
            let report: Value = r.json().await.expect("json");
            let id = report["objects"][0]["id"]
                .as_str()
                .expect("an id")
                .to_string();
            let contact: Value = http
                .get(format!(
                    "{emulator}/crm/v3/objects/contacts/{id}?properties=firstname"
                ))
                .bearer_auth("pat-sandbox-hubspot-0001")
                .send()
                .await
                .expect("read back")
                .json()
                .await
                .expect("json");
            contact["properties"]["firstname"]
                .as_str()
                .unwrap_or_default()
                .to_string()
        }
    };
    assert_eq!(deliver(1).await, "First");

    // The tenant changes its mapping: the next webhook uses the new version.
    m["crm_config"]["field_mappings"]["firstname"] = json!("customer_name_last");
    std::thread::sleep(std::time::Duration::from_millis(1100));
    write(dir.path(), "route.json", &m.to_string());
    assert!(
        wait_for_log(&server, "route reloaded", 15).is_some(),
        "no reload logged"
    );
    assert_eq!(deliver(2).await, "Last");

    // A broken version (a typo in a key) is reported and the last good one keeps serving.
    let broken = m.to_string().replace("field_mappings", "feild_mappings");
    std::thread::sleep(std::time::Duration::from_millis(1100));
    write(dir.path(), "route.json", &broken);
    let line = wait_for_log(&server, "reload failed", 15).expect("the failed reload is logged");
    assert!(line.contains("feild_mappings"), "{line}");
    assert_eq!(deliver(3).await, "Last");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_webhook_accepted_before_a_crash_is_delivered_after_restart() {
    use switchyard_sandbox::{self as sandbox, FaultConfig, SandboxOptions, Vendor};
    let emu = sandbox::start(Vendor::Hubspot, SandboxOptions::default())
        .await
        .expect("emulator");
    let dir = tempfile::tempdir().expect("dir");
    let m = json!({"spec_version": 1, "tenant": "t1", "connector": "hubspot", "source": "callrail",
        "source_secrets": {"webhook_signing_key": "env:SY_TEST_INBOX_KEY"},
        "crm_config": {"type": "hubspot", "api_token": emu.credentials().get("access_token").expect("token"),
                       "settings": {"base_url": emu.base_url()},
                       "duplicate_detection": {"enabled": true, "match_fields": ["email"]},
                       "field_mappings": {"email": "customer_email", "firstname": "customer_name_first"}}});
    let mapping = write(dir.path(), "route.json", &m.to_string());
    let store = dir.path().join("s.sqlite");
    let connectors = repo_root().join("connector-specs");
    let args = [
        "--mapping",
        &mapping,
        "--connectors",
        connectors.to_str().expect("utf-8"),
        "--store",
        store.to_str().expect("utf-8"),
    ];
    let envs = [("SY_TEST_INBOX_KEY", "inbox-key")];
    // The CRM answers slowly: the server is killed while the webhook is being delivered.
    emu.set_faults(FaultConfig {
        slow_ms: 5_000,
        ..FaultConfig::default()
    })
    .expect("faults");
    let mut server = start(&args, &envs);
    let body = json!({"call_id": "CRASH1", "customer_email": "survivor@example.com",
                      "customer_name_first": "Sur"})
    .to_string()
    .into_bytes();
    let req = reqwest::Client::new()
        .post(format!("{}/webhooks/t1/callrail", server.base))
        .header("Signature", callrail_sig("inbox-key", &body))
        .body(body);
    let sent = tokio::spawn(async move { req.send().await });
    tokio::time::sleep(std::time::Duration::from_millis(1_500)).await;
    server.child.kill().expect("SIGKILL");
    let _ = server.child.wait();
    assert!(
        sent.await.expect("joined").is_err(),
        "the sender got an answer before the crash"
    );
    assert!(emu.records("contacts").is_empty());

    // Restarted (the CRM answers again): the accepted webhook is delivered, once.
    emu.set_faults(FaultConfig::default()).expect("faults");
    let server = start(&args, &envs);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while emu.records("contacts").is_empty() && std::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let contacts = emu.records("contacts");
    assert_eq!(contacts.len(), 1, "{contacts:?}");
    assert_eq!(contacts[0]["properties"]["email"], "survivor@example.com");
    assert!(
        wait_for_log(&server, "accepted webhook delivered after restart", 10).is_some(),
        "the recovery is logged"
    );
    // Settled: a third start delivers nothing again.
    drop(server);
    let server = start(&args, &envs);
    tokio::time::sleep(std::time::Duration::from_millis(1_000)).await;
    assert_eq!(emu.records("contacts").len(), 1);
    drop(server);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_readiness_and_metrics_say_what_happened() {
    let dir = tempfile::tempdir().expect("dir");
    let mapping = write(dir.path(), "route.json", &contact_route().to_string());
    let store = dir.path().join("s.sqlite");
    let server = start_sandboxed(&[&mapping], &store, &[]);
    let http = reqwest::Client::new();
    let url = format!("{}/v1/webhooks/tenant_TENANT_ID/callrail", server.base);
    let body =
        json!({"call_id": "M1", "customer_email": "m1@example.com", "customer_name_first": "M"})
            .to_string()
            .into_bytes();
    for key in ["callrail-signing-key", "forged-key"] {
        http.post(&url)
            .header("Signature", callrail_sig(key, &body))
            .body(body.clone())
            .send()
            .await
            .expect("sent");
    }
    let health: Value = http
        .get(format!("{}/v1/health", server.base))
        .send()
        .await
        .expect("health")
        .json()
        .await
        .expect("json");
    assert_eq!(health["status"], "ok", "{health}");
    assert_eq!(health["store"]["ok"], true, "{health}");
    assert_eq!(
        health["routes"][0]["tenant"], "tenant_TENANT_ID",
        "{health}"
    );
    assert_eq!(
        health["routes"][0]["path"],
        "/v1/webhooks/tenant_TENANT_ID/callrail"
    );
    let ready = http
        .get(format!("{}/v1/ready", server.base))
        .send()
        .await
        .expect("ready");
    assert_eq!(ready.status(), 200);
    let metrics = http
        .get(format!("{}/metrics", server.base))
        .send()
        .await
        .expect("metrics");
    assert!(
        metrics
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("text/plain"))
    );
    let text = metrics.text().await.expect("text");
    for line in [
        "switchyard_webhook_requests_total{status=\"200\"} 1",
        "switchyard_webhook_requests_total{status=\"401\"} 1",
        "switchyard_webhook_refused_total{code=\"signature_invalid\"} 1",
        // A contact and its deal.
        "switchyard_records_total{outcome=\"created\"} 2",
        "switchyard_webhook_duration_seconds_count 2",
        "switchyard_dead_letters_pending 0",
    ] {
        assert!(text.lines().any(|l| l == line), "no `{line}` in:\n{text}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tenant_endpoints_take_each_tenants_own_key_and_show_only_its_data() {
    use switchyard::store::{NewDeadLetter, Store};
    let dir = tempfile::tempdir().expect("dir");
    let store = dir.path().join("s.sqlite");
    // Two tenants, each with a route and a dead letter; a key each (the CLI, as an operator).
    let mut second = contact_route();
    second["tenant"] = json!("t2");
    let a = write(dir.path(), "a.json", &contact_route().to_string());
    let b = write(dir.path(), "b.json", &second.to_string());
    {
        let s = Store::open(&store).expect("store");
        for tenant in ["tenant_TENANT_ID", "t2"] {
            s.dead_letter(&NewDeadLetter {
                tenant,
                connector: "hubspot",
                route: "route.json",
                object: "contact",
                record_key: &format!("{tenant}-call"),
                payload: &json!({"objects": {"contact": {"email": format!("{tenant}@example.com")}}}),
                reason: "400 INVALID_EMAIL",
                attempts: 1,
                settle: None,
                correlation_id: None,
            })
            .expect("dead letter");
        }
    }
    let key = |tenant: &str| {
        let out = switchyard()
            .args([
                "apikey", "create", "--tenant", tenant, "--label", "test", "--store",
            ])
            .arg(&store)
            .output()
            .expect("runs");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout)
            .expect("utf-8")
            .trim()
            .to_string()
    };
    let (key1, key2) = (key("tenant_TENANT_ID"), key("t2"));
    let server = start_sandboxed(&[&a, &b], &store, &[]);
    let http = reqwest::Client::new();
    let get = |path: &str, key: Option<&str>| {
        let mut r = http.get(format!("{}{path}", server.base));
        if let Some(k) = key {
            r = r.bearer_auth(k);
        }
        r.send()
    };
    let mine: Value = get("/v1/tenants/t2/dead-letters", Some(&key2))
        .await
        .expect("sent")
        .json()
        .await
        .expect("json");
    let letters = mine["dead_letters"].as_array().expect("a list");
    assert_eq!(letters.len(), 1, "{mine}");
    assert_eq!(letters[0]["tenant"], "t2");
    let routes: Value = get("/v1/tenants/t2/routes", Some(&key2))
        .await
        .expect("sent")
        .json()
        .await
        .expect("json");
    assert_eq!(
        routes["routes"].as_array().map(Vec::len),
        Some(1),
        "{routes}"
    );
    // Another tenant's key, no key, a made-up key: refused.
    for (path, key, status) in [
        ("/v1/tenants/t2/dead-letters", Some(key1.as_str()), 403),
        (
            "/v1/tenants/tenant_TENANT_ID/routes",
            Some(key2.as_str()),
            403,
        ),
        ("/v1/tenants/t2/dead-letters", None, 401),
        (
            "/v1/tenants/t2/dead-letters",
            Some("sy_0123456789ab_deadbeef"),
            401,
        ),
    ] {
        let r = get(path, key).await.expect("sent");
        assert_eq!(r.status(), status, "{path} with {key:?}");
    }
    // Revoked: refused at once.
    let id = key2.split('_').nth(1).expect("id").to_string();
    let out = switchyard()
        .args(["apikey", "revoke", &id, "--store"])
        .arg(&store)
        .output()
        .expect("runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r = get("/v1/tenants/t2/dead-letters", Some(&key2))
        .await
        .expect("sent");
    assert_eq!(r.status(), 401);
}

/// The property-based API check: schemathesis (PyPI; `.ci/test` installs it and names it in
/// `SWITCHYARD_SCHEMATHESIS`) generates requests from the service's own OpenAPI document and
/// checks that no answer is a 5xx or outside the document. Skipped outside CI when absent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schemathesis_finds_no_server_error_and_no_answer_outside_the_openapi_document() {
    let st = std::env::var("SWITCHYARD_SCHEMATHESIS")
        .ok()
        .filter(|p| std::path::Path::new(p).exists());
    let Some(st) = st else {
        assert!(
            !crate::prism::in_ci(),
            "CI is set, so the schemathesis check must run (SWITCHYARD_SCHEMATHESIS)"
        );
        eprintln!("skipping: schemathesis is not installed (SWITCHYARD_SCHEMATHESIS)");
        return;
    };
    let dir = tempfile::tempdir().expect("dir");
    let store = dir.path().join("s.sqlite");
    let mapping = write(dir.path(), "route.json", &contact_route().to_string());
    let out = switchyard()
        .args([
            "apikey",
            "create",
            "--tenant",
            "tenant_TENANT_ID",
            "--store",
        ])
        .arg(&store)
        .output()
        .expect("runs");
    let key = String::from_utf8(out.stdout)
        .expect("utf-8")
        .trim()
        .to_string();
    // With a store key, as a service holding OAuth tokens runs: onboarding can start.
    let connectors = repo_root().join("connector-specs");
    let server = start(
        &[
            "--mapping",
            &mapping,
            "--sandbox",
            "--connectors",
            connectors.to_str().expect("utf-8"),
            "--store",
            store.to_str().expect("utf-8"),
        ],
        &[
            ("SY_TEST_CALLRAIL_KEY", "callrail-signing-key"),
            ("SWITCHYARD_STORE_KEY", "schemathesis-store-key"),
        ],
    );
    let base = server.base.clone();
    let work = dir.path().to_path_buf();
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new(st)
            // Its cache goes to the temporary folder, not the source tree.
            .current_dir(&work)
            .args(["run", &format!("{base}/v1/openapi.json"), "--url", &base])
            .args(["--max-examples", "40", "--seed", "7"])
            .args(["-H", &format!("Authorization: Bearer {key}")])
            .env("NO_COLOR", "1")
            .output()
    })
    .await
    .expect("joined")
    .expect("schemathesis runs");
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "schemathesis found failures:\n{report}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    drop(server);
}

/// Contacts a delivery report says were created (seed 003's HubSpot config brings a deal and a
/// company along with each contact).
fn contacts_created(report: &Value) -> usize {
    report["objects"]
        .as_array()
        .map(|o| {
            o.iter()
                .filter(|x| x["object"] == "contact" && x["outcome"] == "created")
                .count()
        })
        .unwrap_or_default()
}

/// Seed 004's onboarding, end to end against the HubSpot emulator: authorize → consent page →
/// callback → sealed token → API call with it → refresh after expiry → disconnect (revoked at
/// the vendor); a forged or reused `state` is refused, and one tenant's key cannot start
/// another tenant's connection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hubspot_oauth_onboarding_runs_end_to_end_and_refuses_forged_or_reused_states() {
    use switchyard::store::Store;
    use switchyard_sandbox::{SandboxOptions, Vendor};
    let emu = switchyard_sandbox::start(Vendor::Hubspot, SandboxOptions::default())
        .await
        .expect("emulator");
    let creds = emu.credentials();
    let dir = tempfile::tempdir().expect("dir");
    let store = dir.path().join("s.sqlite");
    let mut m = contact_route();
    m["tenant"] = json!("t1");
    m["crm_config"]
        .as_object_mut()
        .expect("crm_config")
        .remove("api_token");
    m["crm_config"]["settings"] = json!({
        "base_url": emu.base_url(), "auth_flow": "oauth",
        "client_id": creds.get("client_id").expect("id"),
        "client_secret": creds.get("client_secret").expect("secret"),
    });
    let mapping = write(dir.path(), "route.json", &m.to_string());
    let mut other = contact_route();
    other["tenant"] = json!("t2");
    other["crm_config"]["api_token"] = json!(creds.get("access_token").expect("token"));
    other["crm_config"]["settings"] = json!({"base_url": emu.base_url()});
    let other = write(dir.path(), "other.json", &other.to_string());
    let connectors = repo_root().join("connector-specs");
    let server = start(
        &[
            "--mapping",
            &mapping,
            "--mapping",
            &other,
            "--connectors",
            connectors.to_str().expect("utf-8"),
            "--store",
            store.to_str().expect("utf-8"),
        ],
        &[
            ("SY_TEST_CALLRAIL_KEY", "callrail-signing-key"),
            ("SWITCHYARD_STORE_KEY", "store-key-for-tests"),
        ],
    );
    let key = |tenant: &str| {
        let out = switchyard()
            .args(["apikey", "create", "--tenant", tenant, "--store"])
            .arg(&store)
            .output()
            .expect("runs");
        String::from_utf8(out.stdout)
            .expect("utf-8")
            .trim()
            .to_string()
    };
    let (k1, k2) = (key("t1"), key("t2"));
    let manual = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    let browser = reqwest::Client::new(); // follows redirects, as a browser does
    let authorize = format!("{}/v1/oauth/hubspot/authorize?tenant=t1", server.base);

    // Without a key, with another tenant's key: refused.
    let r = manual.get(&authorize).send().await.expect("sent");
    assert_eq!(r.status(), 401);
    let r = manual
        .get(&authorize)
        .bearer_auth(&k2)
        .send()
        .await
        .expect("sent");
    assert_eq!(r.status(), 403);

    // Authorize: a redirect to the vendor's consent page carrying a state.
    let start_flow = || async {
        let r = manual
            .get(&authorize)
            .bearer_auth(&k1)
            .send()
            .await
            .expect("sent");
        assert_eq!(r.status(), 302);
        let to = r.headers()["location"]
            .to_str()
            .expect("location")
            .to_string();
        assert!(
            to.starts_with(&format!("{}/oauth/authorize?", emu.base_url())),
            "{to}"
        );
        assert!(
            to.contains("client_id=sandbox-hubspot-client-id")
                && to.contains("scope=crm.objects.contacts.read"),
            "{to}"
        );
        let page = browser
            .get(&to)
            .send()
            .await
            .expect("consent")
            .text()
            .await
            .expect("html");
        let href = page
            .split("id=\"approve\" href=\"")
            .nth(1)
            .and_then(|s| s.split('"').next())
            .expect("an approve link")
            .replace("&amp;", "&");
        format!("{}{href}", emu.base_url())
    };
    let approve = start_flow().await;
    // The user approves; the browser follows the vendor's redirect to our callback.
    let r = browser.get(&approve).send().await.expect("approve");
    let callback_url = r.url().to_string();
    assert!(
        callback_url.starts_with(&format!("{}/v1/oauth/hubspot/callback?code=", server.base)),
        "{callback_url}"
    );
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap_or_default());
    let body: Value = r.json().await.expect("json");
    assert_eq!(
        body,
        json!({"connected": true, "tenant": "t1", "connector": "hubspot"})
    );

    // Sealed at rest: the stored bytes do not hold the token; with the key they open.
    let s = Store::open(&store)
        .expect("store")
        .with_key("store-key-for-tests");
    let token = s
        .get_token("t1", "hubspot")
        .expect("read")
        .expect("a token");
    let access = token["access_token"].as_str().expect("access").to_string();
    assert!(access.starts_with("sandbox-hubspot-oauth-"), "{token}");
    let sealed = s
        .sealed_token_bytes("t1", "hubspot")
        .expect("read")
        .expect("row");
    assert!(!sealed.windows(access.len()).any(|w| w == access.as_bytes()));

    // Replaying the callback (the same state) and a forged state: refused.
    let r = browser.get(&callback_url).send().await.expect("replay");
    assert_eq!(r.status(), 403);
    assert_eq!(
        r.json::<Value>().await.expect("json")["error"],
        "state_used_or_unknown"
    );
    let forged = format!(
        "{}/v1/oauth/hubspot/callback?code=x&state={}",
        server.base,
        "0".repeat(32) + ".9999999999.abcd"
    );
    let r = browser.get(&forged).send().await.expect("forged");
    assert_eq!(r.status(), 403);
    assert_eq!(
        r.json::<Value>().await.expect("json")["error"],
        "state_used_or_unknown"
    );
    let tampered = callback_url.replace("state=", "state=1");
    let r = browser.get(&tampered).send().await.expect("tampered");
    assert_eq!(r.status(), 403);

    // The API call: a webhook's contact is delivered with the onboarded token.
    let hook = |call: &str| {
        let body = json!({"call_id": call, "customer_phone": "(415) 555-2671",
                          "customer_email": format!("{call}@example.com"),
                          "customer_name_first": "Ada", "customer_name_last": "Lovelace"})
        .to_string();
        manual
            .post(format!("{}/v1/webhooks/t1/callrail", server.base))
            .header(
                "Signature",
                callrail_sig("callrail-signing-key", body.as_bytes()),
            )
            .body(body)
            .send()
    };
    let r = hook("CALL1").await.expect("sent");
    let report: Value = r.json().await.expect("json");
    assert_eq!(contacts_created(&report), 1, "{report}");

    // The token expires: the engine refreshes it with the stored refresh token and goes on.
    emu.expire_tokens();
    let r = hook("CALL2").await.expect("sent");
    let report: Value = r.json().await.expect("json");
    assert_eq!(contacts_created(&report), 1, "{report}");
    let renewed = s.get_token("t1", "hubspot").expect("read").expect("token");
    assert_ne!(renewed["access_token"], token["access_token"], "refreshed");
    assert_eq!(renewed["refresh_token"], token["refresh_token"]);

    // Status, then disconnect: revoked at HubSpot, forgotten here.
    let status = format!("{}/v1/tenants/t1/connections/hubspot", server.base);
    let r: Value = manual
        .get(&status)
        .bearer_auth(&k1)
        .send()
        .await
        .expect("s")
        .json()
        .await
        .expect("j");
    assert_eq!(r["connected"], true);
    let r = manual
        .delete(&status)
        .bearer_auth(&k2)
        .send()
        .await
        .expect("sent");
    assert_eq!(r.status(), 403, "another tenant cannot disconnect t1");
    let r: Value = manual
        .delete(&status)
        .bearer_auth(&k1)
        .send()
        .await
        .expect("s")
        .json()
        .await
        .expect("j");
    assert_eq!(
        (r["had_tokens"].as_bool(), r["revoked"].as_bool()),
        (Some(true), Some(true)),
        "{r}"
    );
    assert!(s.get_token("t1", "hubspot").expect("read").is_none());
    let r: Value = manual
        .get(&status)
        .bearer_auth(&k1)
        .send()
        .await
        .expect("s")
        .json()
        .await
        .expect("j");
    assert_eq!(r["error"], "not_connected", "{r}");
    // The revoked refresh token no longer works at the vendor.
    let r = reqwest::Client::new()
        .post(format!("{}/oauth/v1/token", emu.base_url()))
        .form(&[
            ("grant_type", "refresh_token"),
            ("client_id", creds.get("client_id").expect("id")),
            ("client_secret", creds.get("client_secret").expect("secret")),
            (
                "refresh_token",
                token["refresh_token"].as_str().expect("refresh"),
            ),
        ])
        .send()
        .await
        .expect("sent");
    assert_eq!(r.status(), 400, "HubSpot refuses a revoked refresh token");
    // A denied consent comes back as access_denied, and its state is used up.
    let approve = start_flow().await;
    let deny = approve.replace("decision=approve", "decision=deny");
    let r = browser.get(&deny).send().await.expect("deny");
    assert_eq!(r.status(), 403);
    assert_eq!(
        r.json::<Value>().await.expect("json")["error"],
        "access_denied"
    );
    // Nothing here printed a token.
    let mut log = String::new();
    while let Ok(l) = server.log.try_recv() {
        log.push_str(&l);
    }
    assert!(
        !log.contains(&access) && !log.contains("sandbox-hubspot-refresh-"),
        "{log}"
    );
    emu.shutdown().await;
}

/// The HubSpot emulator answering every request after `slow_ms`.
async fn slow_hubspot(slow_ms: u64) -> switchyard_sandbox::Emulator {
    use switchyard_sandbox::{FaultConfig, SandboxOptions, Vendor};
    let emu = switchyard_sandbox::start(Vendor::Hubspot, SandboxOptions::default())
        .await
        .expect("emulator");
    emu.set_faults(FaultConfig {
        slow_ms,
        ..FaultConfig::default()
    })
    .expect("faults");
    emu
}

/// A route from CallRail (its signing key from the environment variable `key_env`) for
/// `tenant` to the HubSpot emulator `emu`, duplicate detection by e-mail on.
fn emulator_route(emu: &switchyard_sandbox::Emulator, tenant: &str, key_env: &str) -> Value {
    json!({"spec_version": 1, "tenant": tenant, "connector": "hubspot", "source": "callrail",
        "source_secrets": {"webhook_signing_key": format!("env:{key_env}")},
        "crm_config": {"type": "hubspot", "api_token": emu.credentials().get("access_token").expect("token"),
                       "settings": {"base_url": emu.base_url()},
                       "duplicate_detection": {"enabled": true, "match_fields": ["email"]},
                       "field_mappings": {"email": "customer_email", "firstname": "customer_name_first"}}})
}

/// `serve` arguments for these route files, the repo's connectors and `store`, then `extra`.
fn routed<'a>(mappings: &'a [String], store: &'a Path, extra: &[&'a str]) -> Vec<String> {
    let mut args: Vec<String> = Vec::new();
    for m in mappings {
        args.extend(["--mapping".to_string(), m.clone()]);
    }
    args.extend([
        "--connectors".to_string(),
        repo_root()
            .join("connector-specs")
            .to_str()
            .expect("utf-8")
            .to_string(),
        "--store".to_string(),
        store.to_str().expect("utf-8").to_string(),
    ]);
    args.extend(extra.iter().map(|s| s.to_string()));
    args
}

fn start_owned(args: &[String], envs: &[(&str, &str)]) -> Server {
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    start(&args, envs)
}

/// Posts a CallRail call signed with `key` to `/v1/webhooks/{tenant}/callrail`.
async fn post_call(
    http: &reqwest::Client,
    base: &str,
    tenant: &str,
    key: &str,
    call: &Value,
) -> reqwest::Result<reqwest::Response> {
    let body = call.to_string().into_bytes();
    http.post(format!("{base}/v1/webhooks/{tenant}/callrail"))
        .header("content-type", "application/json")
        .header("Signature", callrail_sig(key, &body))
        .body(body)
        .send()
        .await
}

/// Waits up to `secs` for `f` to hold.
async fn eventually(secs: u64, mut f: impl FnMut() -> bool) -> bool {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
    while std::time::Instant::now() < deadline {
        if f() {
            return true;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    f()
}

fn inbox_len(store: &Path) -> u64 {
    switchyard::store::Store::open(store)
        .expect("store")
        .inbox_len()
        .expect("inbox")
}

fn sigterm(server: &Server) {
    let pid = i32::try_from(server.child.id()).expect("pid");
    // SAFETY: kill(2) with a pid we spawned and a valid signal number.
    let rc = unsafe { libc::kill(pid, libc::SIGTERM) };
    assert_eq!(rc, 0, "kill failed");
}

/// Waits up to `secs` for the server to exit; its exit status.
fn wait_exit(server: &mut Server, secs: u64) -> Option<std::process::ExitStatus> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
    while std::time::Instant::now() < deadline {
        if let Some(st) = server.child.try_wait().expect("try_wait") {
            return Some(st);
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    None
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn routes_of_one_tenant_and_source_fan_out_and_each_distinct_verifier_must_agree() {
    use switchyard_sandbox::{self as sandbox, SandboxOptions, Vendor};
    let a_emu = sandbox::start(Vendor::Hubspot, SandboxOptions::default())
        .await
        .expect("emulator");
    let b_emu = sandbox::start(Vendor::Hubspot, SandboxOptions::default())
        .await
        .expect("emulator");
    let dir = tempfile::tempdir().expect("dir");
    let store = dir.path().join("s.sqlite");
    let a = write(
        dir.path(),
        "to-a.json",
        &emulator_route(&a_emu, "t1", "SY_FAN_KEY").to_string(),
    );
    let b = write(
        dir.path(),
        "to-b.json",
        &emulator_route(&b_emu, "t1", "SY_FAN_KEY").to_string(),
    );
    let envs = [("SY_FAN_KEY", "fan-key"), ("SY_FAN_OTHER", "other-key")];
    let server = start_owned(&routed(&[a.clone(), b.clone()], &store, &[]), &envs);
    assert!(
        server
            .banner
            .contains("fan-out: /v1/webhooks/t1/callrail is delivered through 2 routes"),
        "{}",
        server.banner
    );
    let http = reqwest::Client::new();
    let call = json!({"call_id": "FAN1", "customer_email": "fan@example.com", "customer_name_first": "Fan"});
    let r = post_call(&http, &server.base, "t1", "fan-key", &call)
        .await
        .expect("sent");
    assert_eq!(r.status(), 200);
    let report: Value = r.json().await.expect("json");
    // One body, kept once, delivered through both routes: each route's outcome is listed.
    assert_eq!(report["created"], 2, "{report}");
    let mut routes: Vec<(String, u64)> = report["routes"]
        .as_array()
        .expect("routes")
        .iter()
        .map(|r| {
            assert_eq!(r["status"], "delivered", "{r}");
            (
                r["route"].as_str().expect("name").to_string(),
                r["created"].as_u64().expect("count"),
            )
        })
        .collect();
    routes.sort();
    assert_eq!(
        routes,
        vec![("to-a".to_string(), 1), ("to-b".to_string(), 1)]
    );
    let objects = report["objects"].as_array().expect("objects");
    assert!(
        objects.iter().any(|o| o["route"] == "to-a")
            && objects.iter().any(|o| o["route"] == "to-b"),
        "{report}"
    );
    assert!(report["event_id"].as_i64().is_some(), "{report}");
    assert_eq!(a_emu.records("contacts").len(), 1);
    assert_eq!(b_emu.records("contacts").len(), 1);
    assert_eq!(
        inbox_len(&store),
        0,
        "settled for every route: the entry is gone"
    );

    // The tenant sees both routes.
    let out = switchyard()
        .args(["apikey", "create", "--tenant", "t1", "--store"])
        .arg(&store)
        .output()
        .expect("runs");
    let key = String::from_utf8(out.stdout)
        .expect("utf-8")
        .trim()
        .to_string();
    let listed: Value = http
        .get(format!("{}/v1/tenants/t1/routes", server.base))
        .bearer_auth(&key)
        .send()
        .await
        .expect("sent")
        .json()
        .await
        .expect("json");
    let names: Vec<&str> = listed["routes"]
        .as_array()
        .expect("routes")
        .iter()
        .map(|r| r["route"].as_str().expect("name"))
        .collect();
    assert_eq!(names, ["to-a", "to-b"], "{listed}");
    drop(server);

    // A third route whose source signs with another key: a body signed with the first key is
    // refused by its verifier, hence by the service, and no route delivers it.
    let c = write(
        dir.path(),
        "to-c.json",
        &emulator_route(&a_emu, "t1", "SY_FAN_OTHER").to_string(),
    );
    let server = start_owned(&routed(&[a, b, c], &store, &[]), &envs);
    let call = json!({"call_id": "FAN2", "customer_email": "fan2@example.com", "customer_name_first": "Fan"});
    let r = post_call(&http, &server.base, "t1", "fan-key", &call)
        .await
        .expect("sent");
    assert_eq!(r.status(), 401);
    let e: Value = r.json().await.expect("json");
    assert_eq!(e, json!({"error": "signature_invalid"}));
    assert_eq!(a_emu.records("contacts").len(), 1);
    assert_eq!(b_emu.records("contacts").len(), 1);
    // The same file twice is one route given twice: refused, naming it.
    let a_again = dir.path().join("to-a.json");
    let a_again = a_again.to_str().expect("utf-8").to_string();
    let args = routed(&[a_again.clone(), a_again], &store, &[]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let seen = launch(&args, &envs)
        .err()
        .expect("one file given twice must not start");
    assert!(seen.contains("under the name `to-a`"), "{seen}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fan_out_cut_between_its_routes_resumes_with_only_the_route_that_had_not_settled() {
    use switchyard_sandbox::{self as sandbox, FaultConfig, SandboxOptions, Vendor};
    let a_emu = sandbox::start(Vendor::Hubspot, SandboxOptions::default())
        .await
        .expect("emulator");
    let b_emu = sandbox::start(Vendor::Hubspot, SandboxOptions::default())
        .await
        .expect("emulator");
    let dir = tempfile::tempdir().expect("dir");
    let store = dir.path().join("s.sqlite");
    let a = write(
        dir.path(),
        "fast.json",
        &emulator_route(&a_emu, "t1", "SY_CUT_KEY").to_string(),
    );
    let b = write(
        dir.path(),
        "slow.json",
        &emulator_route(&b_emu, "t1", "SY_CUT_KEY").to_string(),
    );
    let envs = [("SY_CUT_KEY", "cut-key")];
    let args = routed(&[a, b], &store, &[]);
    // Route `slow`'s CRM answers slowly: the process dies after `fast` settled, before `slow`.
    b_emu
        .set_faults(FaultConfig {
            slow_ms: 6_000,
            ..FaultConfig::default()
        })
        .expect("faults");
    let mut server = start_owned(&args, &envs);
    let http = reqwest::Client::new();
    let call = json!({"call_id": "CUT1", "customer_email": "cut@example.com", "customer_name_first": "Cut"});
    let sent = {
        let (http, base) = (http.clone(), server.base.clone());
        tokio::spawn(async move { post_call(&http, &base, "t1", "cut-key", &call).await })
    };
    assert!(
        eventually(10, || a_emu.records("contacts").len() == 1).await,
        "route `fast` did not deliver"
    );
    // `fast`'s settlement row is written as soon as it settles.
    tokio::time::sleep(std::time::Duration::from_millis(700)).await;
    server.child.kill().expect("SIGKILL");
    let _ = server.child.wait();
    assert!(
        sent.await.expect("joined").is_err(),
        "answered before the crash"
    );
    assert!(b_emu.records("contacts").is_empty());
    let fast_requests = a_emu.stats().requests;

    // Restarted with both CRMs answering: only `slow` gets the body; `fast` is not asked again.
    b_emu.set_faults(FaultConfig::default()).expect("faults");
    let server = start_owned(&args, &envs);
    assert!(
        eventually(20, || b_emu.records("contacts").len() == 1).await,
        "route `slow` was not delivered after the restart"
    );
    assert!(
        wait_for_log(&server, "accepted webhook delivered after restart", 10).is_some(),
        "the recovery is logged"
    );
    assert!(
        eventually(10, || inbox_len(&store) == 0).await,
        "inbox not settled"
    );
    assert_eq!(
        a_emu.stats().requests,
        fast_requests,
        "route `fast` had settled the entry, yet it was sent again"
    );
    assert_eq!(a_emu.records("contacts").len(), 1);
    drop(server);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ack_accepted_answers_202_at_once_and_the_workers_deliver_in_order() {
    let emu = slow_hubspot(150).await;
    let dir = tempfile::tempdir().expect("dir");
    let store = dir.path().join("s.sqlite");
    let m = write(
        dir.path(),
        "route.json",
        &emulator_route(&emu, "t1", "SY_ACK_KEY").to_string(),
    );
    let server = start_owned(
        &routed(&[m], &store, &["--ack", "accepted", "--workers", "2"]),
        &[("SY_ACK_KEY", "ack-key")],
    );
    let http = reqwest::Client::new();
    // Ten calls from one person, each renaming them: only the order of delivery decides the
    // name the CRM ends with.
    let started = std::time::Instant::now();
    let mut ids = Vec::new();
    for i in 0..10 {
        let call = json!({"call_id": format!("ORD{i}"), "customer_email": "order@example.com",
                          "customer_name_first": format!("N{i}")});
        let r = post_call(&http, &server.base, "t1", "ack-key", &call)
            .await
            .expect("sent");
        assert_eq!(r.status(), 202);
        let a: Value = r.json().await.expect("json");
        assert_eq!(a["status"], "accepted", "{a}");
        assert!(a["correlation_id"].as_str().is_some(), "{a}");
        ids.push(a["event_id"].as_i64().expect("an event id"));
    }
    let accepted_in = started.elapsed();
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "{ids:?}");
    // Delivering the ten takes at least 10 × 150 ms; accepting them did not wait for that.
    assert!(
        accepted_in < std::time::Duration::from_millis(1_200),
        "ten accepts took {accepted_in:?}"
    );
    let health = || async {
        http.get(format!("{}/v1/health", server.base))
            .send()
            .await
            .expect("health")
            .json::<Value>()
            .await
            .expect("json")
    };
    let h = health().await;
    assert_eq!(h["inbox"]["ack"], "accepted", "{h}");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while health().await["inbox"]["backlog"] != 0 && std::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(inbox_len(&store), 0);
    let contacts = emu.records("contacts");
    assert_eq!(contacts.len(), 1, "{contacts:?}");
    assert_eq!(
        contacts[0]["properties"]["firstname"], "N9",
        "delivered out of order: {contacts:?}"
    );
    let text = http
        .get(format!("{}/metrics", server.base))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    for line in [
        "switchyard_webhook_requests_total{status=\"202\"} 10",
        "switchyard_inbox_settled_total 10",
        "switchyard_inbox_kept_total 10",
        "switchyard_inbox_backlog 0",
    ] {
        assert!(text.lines().any(|l| l == line), "no `{line}` in:\n{text}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_inbox_is_answered_503_with_retry_after_until_the_workers_catch_up() {
    let emu = slow_hubspot(1_500).await;
    let dir = tempfile::tempdir().expect("dir");
    let store = dir.path().join("s.sqlite");
    let m = write(
        dir.path(),
        "route.json",
        &emulator_route(&emu, "t1", "SY_BP_KEY").to_string(),
    );
    let server = start_owned(
        &routed(&[m], &store, &["--ack", "accepted", "--max-backlog", "2"]),
        &[("SY_BP_KEY", "bp-key")],
    );
    let http = reqwest::Client::new();
    let call = |i: u32| json!({"call_id": format!("BP{i}"), "customer_email": format!("bp{i}@example.com"), "customer_name_first": "B"});
    for i in 0..2 {
        let r = post_call(&http, &server.base, "t1", "bp-key", &call(i))
            .await
            .expect("sent");
        assert_eq!(r.status(), 202);
    }
    let r = post_call(&http, &server.base, "t1", "bp-key", &call(2))
        .await
        .expect("sent");
    assert_eq!(r.status(), 503);
    assert_eq!(
        r.headers().get("retry-after").and_then(|v| v.to_str().ok()),
        Some("1")
    );
    let e: Value = r.json().await.expect("json");
    assert_eq!(e, json!({"error": "backlog_full"}));
    // Once the two are delivered, the sender's retry is taken.
    assert!(
        eventually(20, || emu.records("contacts").len() == 2).await,
        "the backlog was not delivered"
    );
    assert!(eventually(5, || inbox_len(&store) == 0).await);
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let r = post_call(&http, &server.base, "t1", "bp-key", &call(2))
        .await
        .expect("sent");
    assert_eq!(r.status(), 202);
    assert!(eventually(20, || emu.records("contacts").len() == 3).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_inbox_entry_that_keeps_failing_goes_to_the_dead_letters_instead_of_being_retried() {
    use switchyard::store::Store;
    use switchyard_sandbox::{self as sandbox, SandboxOptions, Vendor};
    let emu = sandbox::start(Vendor::Hubspot, SandboxOptions::default())
        .await
        .expect("emulator");
    let dir = tempfile::tempdir().expect("dir");
    let store = dir.path().join("s.sqlite");
    let m = write(
        dir.path(),
        "route.json",
        &emulator_route(&emu, "t1", "SY_POISON_KEY").to_string(),
    );
    let body = json!({"call_id": "POISON1", "customer_email": "poison@example.com", "customer_name_first": "P"})
        .to_string();
    // Five processes began this entry and died before settling it (a body that crashes its
    // server, say): the next start must not try it a sixth time.
    {
        let s = Store::open(&store).expect("store");
        let id = s
            .inbox_accept("t1", "callrail", body.as_bytes(), "req-poison")
            .expect("kept");
        for _ in 0..4 {
            s.inbox_begin(id).expect("begun").expect("there");
        }
    }
    let server = start_owned(
        &routed(std::slice::from_ref(&m), &store, &["--max-attempts", "5"]),
        &[("SY_POISON_KEY", "poison-key")],
    );
    assert!(
        wait_for_log(&server, "poison webhook moved to the dead letters", 15).is_some(),
        "no poison message logged"
    );
    assert!(
        eventually(5, || inbox_len(&store) == 0).await,
        "still in the inbox"
    );
    assert!(
        emu.records("contacts").is_empty(),
        "a poison message was delivered"
    );
    let letters = Store::open(&store)
        .expect("store")
        .dead_letters(true)
        .expect("dead letters");
    assert_eq!(letters.len(), 1, "{letters:?}");
    assert_eq!(letters[0].object, "(inbox)");
    assert_eq!(letters[0].record_key, "POISON1");
    assert_eq!(letters[0].correlation_id.as_deref(), Some("req-poison"));
    assert!(
        letters[0].reason.contains("processing began 5 times"),
        "{}",
        letters[0].reason
    );
    drop(server);
    // Kept for the operator: a replay maps it again with the route and delivers it.
    let out = switchyard()
        .args(["deadletter", "replay", "--store"])
        .arg(&store)
        .arg("--connectors")
        .arg(repo_root().join("connector-specs"))
        .env("SY_POISON_KEY", "poison-key")
        .output()
        .expect("runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let contacts = emu.records("contacts");
    assert_eq!(contacts.len(), 1, "{contacts:?}");
    assert_eq!(contacts[0]["properties"]["email"], "poison@example.com");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_lets_a_request_in_flight_finish_and_be_delivered_then_exits_0() {
    let emu = slow_hubspot(2_000).await;
    let dir = tempfile::tempdir().expect("dir");
    let store = dir.path().join("s.sqlite");
    let m = write(
        dir.path(),
        "route.json",
        &emulator_route(&emu, "t1", "SY_TERM_KEY").to_string(),
    );
    let mut server = start_owned(&routed(&[m], &store, &[]), &[("SY_TERM_KEY", "term-key")]);
    let http = reqwest::Client::new();
    let call = json!({"call_id": "TERM1", "customer_email": "term@example.com", "customer_name_first": "T"});
    let sent = {
        let (http, base) = (http.clone(), server.base.clone());
        tokio::spawn(async move { post_call(&http, &base, "t1", "term-key", &call).await })
    };
    tokio::time::sleep(std::time::Duration::from_millis(700)).await;
    sigterm(&server);
    assert!(
        wait_for_log(&server, "shutting down", 5).is_some(),
        "no shutdown logged"
    );
    // No new connection is taken while the one in flight finishes.
    let fresh = reqwest::Client::new()
        .get(format!("{}/health", server.base))
        .send()
        .await;
    assert!(
        fresh.as_ref().is_err_and(|e| e.is_connect()),
        "a new connection was served during shutdown: {fresh:?}"
    );
    let r = sent.await.expect("joined").expect("answered");
    assert_eq!(r.status(), 200);
    let report: Value = r.json().await.expect("json");
    assert_eq!(report["created"], 1, "{report}");
    let status = tokio::task::block_in_place(|| wait_exit(&mut server, 15)).expect("exited");
    assert_eq!(status.code(), Some(0), "{status}");
    assert_eq!(emu.records("contacts").len(), 1);
    assert_eq!(inbox_len(&store), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_ack_accepted_sigterm_finishes_the_delivery_in_hand_and_keeps_the_rest_for_the_next_start()
 {
    use switchyard_sandbox::FaultConfig;
    let emu = slow_hubspot(1_500).await;
    let dir = tempfile::tempdir().expect("dir");
    let store = dir.path().join("s.sqlite");
    let m = write(
        dir.path(),
        "route.json",
        &emulator_route(&emu, "t1", "SY_TERM2_KEY").to_string(),
    );
    let envs = [("SY_TERM2_KEY", "term2-key")];
    let args = |extra: &[&str]| {
        let mut e = vec!["--ack", "accepted", "--workers", "1"];
        e.extend_from_slice(extra);
        routed(std::slice::from_ref(&m), &store, &e)
    };
    let mut server = start_owned(&args(&[]), &envs);
    let http = reqwest::Client::new();
    for i in 0..3 {
        let call = json!({"call_id": format!("Q{i}"), "customer_email": format!("q{i}@example.com"), "customer_name_first": "Q"});
        let r = post_call(&http, &server.base, "t1", "term2-key", &call)
            .await
            .expect("sent");
        assert_eq!(r.status(), 202);
    }
    // The worker is delivering the first (its CRM answers in 1.5 s) when the signal comes.
    tokio::time::sleep(std::time::Duration::from_millis(400)).await;
    sigterm(&server);
    let status = tokio::task::block_in_place(|| wait_exit(&mut server, 15)).expect("exited");
    assert_eq!(status.code(), Some(0), "{status}");
    let contacts = emu.records("contacts");
    assert_eq!(
        contacts.len(),
        1,
        "the delivery in hand did not finish: {contacts:?}"
    );
    assert_eq!(contacts[0]["properties"]["email"], "q0@example.com");
    assert_eq!(
        inbox_len(&store),
        2,
        "the two not begun stay for the next start"
    );

    // A delivery that outlasts --drain-secs is cut: the process still exits 0 at once, and the
    // entry stays in the inbox.
    emu.set_faults(FaultConfig {
        slow_ms: 8_000,
        ..FaultConfig::default()
    })
    .expect("faults");
    let mut server = start_owned(&args(&["--drain-secs", "1"]), &envs);
    tokio::time::sleep(std::time::Duration::from_millis(800)).await;
    let stopping = std::time::Instant::now();
    sigterm(&server);
    let status = tokio::task::block_in_place(|| wait_exit(&mut server, 15)).expect("exited");
    assert_eq!(status.code(), Some(0), "{status}");
    let took = stopping.elapsed();
    assert!(
        took < std::time::Duration::from_secs(5),
        "shutdown took {took:?} with --drain-secs 1"
    );
    assert_eq!(inbox_len(&store), 2);

    // The next start (the CRM answering again) delivers both: every accepted event arrives.
    emu.set_faults(FaultConfig::default()).expect("faults");
    let server = start_owned(&args(&[]), &envs);
    assert!(
        eventually(30, || inbox_len(&store) == 0).await,
        "the inbox was not drained after the restart"
    );
    let mut emails: Vec<String> = emu
        .records("contacts")
        .iter()
        .map(|c| {
            c["properties"]["email"]
                .as_str()
                .unwrap_or_default()
                .to_string()
        })
        .collect();
    emails.sort();
    assert_eq!(
        emails,
        ["q0@example.com", "q1@example.com", "q2@example.com"]
    );
    drop(server);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_no_sender_can_be_told_about_go_to_the_dead_letters_with_their_text() {
    use switchyard::store::Store;
    use switchyard_sandbox::{self as sandbox, SandboxOptions, Vendor};
    let emu = sandbox::start(Vendor::Hubspot, SandboxOptions::default())
        .await
        .expect("emulator");
    let dir = tempfile::tempdir().expect("dir");
    let store = dir.path().join("s.sqlite");
    // This route types `duration` as HubSpot's numeric lead score: a call whose duration is
    // not a number does not map.
    let mut strict = emulator_route(&emu, "t1", "SY_KEPT_KEY");
    strict["crm_config"]["field_mappings"]["hs_lead_score"] = json!("duration");
    let strict = write(dir.path(), "scored.json", &strict.to_string());
    let envs = [("SY_KEPT_KEY", "kept-key")];
    let http = reqwest::Client::new();
    let calls = json!([
        {"call_id": "K1", "customer_email": "k1@example.com", "customer_name_first": "K", "duration": 12},
        {"call_id": "K2", "customer_email": "k2@example.com", "customer_name_first": "K", "duration": "long"}
    ]);

    // Accepted (202) before anyone knew: the record that maps is delivered, the other is
    // dead-lettered with its text, and the inbox is settled.
    let server = start_owned(
        &routed(
            std::slice::from_ref(&strict),
            &store,
            &["--ack", "accepted"],
        ),
        &envs,
    );
    let r = post_call(&http, &server.base, "t1", "kept-key", &calls)
        .await
        .expect("sent");
    assert_eq!(r.status(), 202);
    assert!(
        eventually(20, || inbox_len(&store) == 0).await,
        "not settled"
    );
    let contacts = emu.records("contacts");
    assert_eq!(contacts.len(), 1, "{contacts:?}");
    assert_eq!(contacts[0]["properties"]["email"], "k1@example.com");
    let letters = Store::open(&store)
        .expect("store")
        .dead_letters(true)
        .expect("dead letters");
    assert_eq!(letters.len(), 1, "{letters:?}");
    assert_eq!(letters[0].object, "(mapping)");
    assert_eq!(letters[0].record_key, "K2");
    assert!(
        letters[0].reason.contains("\"long\" is not a number"),
        "{}",
        letters[0].reason
    );
    let kept: Value =
        serde_json::from_str(letters[0].payload["input"].as_str().expect("input text"))
            .expect("json");
    assert_eq!(kept["call_id"], "K2");
    drop(server);

    // Told mode with two routes, one of which refuses a record: the other route took the
    // body, so the sender gets 200 (and will not send it again); the refusing route delivers
    // what it can map and dead-letters the rest, and says why under `routes`.
    let plain = write(
        dir.path(),
        "plain.json",
        &emulator_route(&emu, "t1", "SY_KEPT_KEY").to_string(),
    );
    let server = start_owned(&routed(&[strict, plain], &store, &[]), &envs);
    let calls = json!([
        {"call_id": "K3", "customer_email": "k3@example.com", "customer_name_first": "K", "duration": "short"}
    ]);
    let r = post_call(&http, &server.base, "t1", "kept-key", &calls)
        .await
        .expect("sent");
    assert_eq!(r.status(), 200);
    let report: Value = r.json().await.expect("json");
    let scored = report["routes"]
        .as_array()
        .expect("routes")
        .iter()
        .find(|r| r["route"] == "scored")
        .expect("route `scored` listed")
        .clone();
    assert!(
        scored["rejected"]
            .as_str()
            .is_some_and(|w| w.contains("\"short\" is not a number")),
        "{report}"
    );
    assert_eq!(scored["dead_lettered"], 1, "{report}");
    assert_eq!(report["created"], 1, "{report}");
    let letters = Store::open(&store)
        .expect("store")
        .dead_letters(true)
        .expect("dead letters");
    assert!(
        letters
            .iter()
            .any(|l| l.record_key == "K3" && l.object == "(mapping)"),
        "{letters:?}"
    );
    // Every route refuses: the sender is told (422) and nothing is kept.
    let strict_only = dir.path().join("scored.json");
    drop(server);
    let server = start_owned(
        &routed(
            &[strict_only.to_str().expect("utf-8").to_string()],
            &store,
            &[],
        ),
        &envs,
    );
    let r = post_call(&http, &server.base, "t1", "kept-key", &calls)
        .await
        .expect("sent");
    assert_eq!(r.status(), 422);
    let e: Value = r.json().await.expect("json");
    assert!(
        e["error"]
            .as_str()
            .is_some_and(|w| w.contains("is not a number")),
        "{e}"
    );
    assert_eq!(inbox_len(&store), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_intake_queue_is_answered_503_with_retry_after() {
    let h = hook(r#"webhook = { scheme = "stripe", secret = "signing_key" }"#);
    let server = h.serve(
        &["--ack", "accepted", "--queue-capacity", "1"],
        "whsec_queue",
    );
    let url = format!("{}/webhooks/t1/hook", server.base);
    let post = |id: &str| {
        let body = event(id);
        let t = unix_now();
        let sig = hex::encode(hmac_sha256(
            "whsec_queue",
            &[format!("{t}.").as_bytes(), body.as_bytes()],
        ));
        reqwest::Client::new()
            .post(&url)
            .header("Stripe-Signature", format!("t={t},v1={sig}"))
            .body(body)
            .send()
    };
    // Another process holds the store's write lock: the committer waits for it with the
    // first body, the second fills the queue, the third is refused at once.
    let lock = rusqlite::Connection::open(&h.store).expect("store");
    lock.execute_batch("BEGIN IMMEDIATE").expect("write lock");
    let first = tokio::spawn(post("q1"));
    tokio::time::sleep(std::time::Duration::from_millis(400)).await;
    let second = tokio::spawn(post("q2"));
    tokio::time::sleep(std::time::Duration::from_millis(400)).await;
    let r = post("q3").await.expect("sent");
    assert_eq!(r.status(), 503);
    assert_eq!(
        r.headers().get("retry-after").and_then(|v| v.to_str().ok()),
        Some("1")
    );
    let e: Value = r.json().await.expect("json");
    assert_eq!(e, json!({"error": "queue_full"}));
    // The lock goes: both waiting bodies are committed and answered.
    lock.execute_batch("ROLLBACK").expect("unlock");
    for r in [first, second] {
        let r = r.await.expect("joined").expect("sent");
        assert_eq!(r.status(), 202);
    }
}
