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
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start(args: &[&str], envs: &[(&str, &str)]) -> Server {
    let mut cmd = switchyard();
    cmd.arg("serve")
        .args(args)
        .args(["--listen", "127.0.0.1:0"])
        .env_remove("SWITCHYARD_PLUGIN_GRANTS")
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
            let _ = child.kill();
            panic!("serve exited before listening:\n{seen}");
        };
        seen.push_str(&line);
        seen.push('\n');
        if let Some(b) = line.strip_prefix("listening on ") {
            break b.to_string();
        }
    };
    std::thread::spawn(move || for _ in lines {});
    Server { child, base }
}

fn write(dir: &Path, name: &str, text: &str) -> String {
    let p = dir.join(name);
    std::fs::write(&p, text).expect("write");
    p.to_str().expect("utf-8").to_string()
}

fn callrail_sig(key: &str, body: &[u8]) -> String {
    let key = hmac::Key::new(hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, key.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(hmac::sign(&key, body).as_ref())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn callrail_webhooks_are_verified_mapped_and_delivered() {
    let dir = tempfile::tempdir().expect("dir");
    let mut m: Value = serde_json::from_str(
        &std::fs::read_to_string(repo_root().join("mapping-specs/examples/hubspot-contact.json"))
            .expect("example"),
    )
    .expect("json");
    m["source_secrets"] = json!({"webhook_signing_key": "env:SY_TEST_CALLRAIL_KEY"});
    let mapping = write(dir.path(), "route.json", &m.to_string());
    let store = dir.path().join("s.sqlite");
    let server = start(
        &[
            "--mapping",
            &mapping,
            "--sandbox",
            "--connectors",
            repo_root().join("connector-specs").to_str().expect("utf-8"),
            "--store",
            store.to_str().expect("utf-8"),
        ],
        &[("SY_TEST_CALLRAIL_KEY", "callrail-signing-key")],
    );
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
    assert_eq!(report["created"], 1, "{report}");
    // The same call again (CallRail retries): found as a duplicate, updated, not created.
    let r = post(callrail_sig("callrail-signing-key", &body), body.clone())
        .await
        .expect("sent");
    let report: Value = r.json().await.expect("json");
    assert_eq!(
        (report["created"].as_u64(), report["updated"].as_u64()),
        (Some(0), Some(1)),
        "{report}"
    );
    // A forged signature, a tampered body, garbage, an unknown route.
    let r = post(callrail_sig("wrong-key", &body), body.clone())
        .await
        .expect("sent");
    assert_eq!(r.status(), 401);
    let e: Value = r.json().await.expect("json");
    assert_eq!(e["error"], "webhook signature refused: signature mismatch");
    assert!(!e.to_string().contains("callrail-signing-key"));
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
    assert_eq!(
        e["error"],
        "webhook signature refused: timestamp outside the tolerance"
    );
    let r = http
        .post(&url)
        .header("X-Signature", sign("not-the-secret", t, &body))
        .body(body)
        .send()
        .await
        .expect("sent");
    let e: Value = r.json().await.expect("json");
    assert_eq!(e["error"], "webhook signature refused: signature mismatch");
}
