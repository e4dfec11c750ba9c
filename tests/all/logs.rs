//! Logs reach someone: the binary writes the engine's events to stderr (`--log-format json`
//! gives one JSON object per line), with correlation ids and without secrets. A refused
//! webhook, a dead-letter write and a denied plugin capability each leave a line.

use crate::cli::{repo_root, switchyard};
use serde_json::{Value, json};
use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::sync::{Arc, Mutex};

/// The JSON log lines of stderr text (other lines ignored).
fn json_lines(stderr: &str) -> Vec<Value> {
    stderr
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v.get("level").is_some())
        .collect()
}

fn has_no_secret(lines: &[Value], secret: &str) {
    for l in lines {
        let t = l.to_string();
        assert!(!t.contains(secret), "a log line holds the secret: {t}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_webhook_is_logged_as_json_with_its_correlation_id_and_no_secret() {
    let dir = tempfile::tempdir().expect("dir");
    let mut m: Value = serde_json::from_str(
        &std::fs::read_to_string(repo_root().join("mapping-specs/examples/hubspot-contact.json"))
            .expect("example"),
    )
    .expect("json");
    m["source_secrets"] = json!({"webhook_signing_key": "env:SY_LOG_KEY"});
    let mapping = dir.path().join("route.json");
    std::fs::write(&mapping, m.to_string()).expect("write");
    let key = "callrail-key-6c1d0e9f";
    let mut child = switchyard()
        .args([
            "--log-format",
            "json",
            "serve",
            "--sandbox",
            "--listen",
            "127.0.0.1:0",
        ])
        .arg("--mapping")
        .arg(&mapping)
        .arg("--store")
        .arg(dir.path().join("s.sqlite"))
        .env("SY_LOG_KEY", key)
        .env_remove("RUST_LOG")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("serve starts");
    let stderr = child.stderr.take().expect("stderr");
    let seen = Arc::new(Mutex::new(Vec::<String>::new()));
    let (tx, rx) = std::sync::mpsc::channel();
    {
        let seen = seen.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(b) = line.strip_prefix("listening on ") {
                    let _ = tx.send(b.to_string());
                }
                seen.lock().expect("lock").push(line);
            }
        });
    }
    let base = rx
        .recv_timeout(std::time::Duration::from_secs(60))
        .expect("listening");
    let r = reqwest::Client::new()
        .post(format!("{base}/webhooks/tenant_TENANT_ID/callrail"))
        .header("Signature", "forged")
        .header("X-Request-Id", "req-test-42")
        .body(r#"{"call_id": "C1"}"#)
        .send()
        .await
        .expect("sent");
    assert_eq!(r.status(), 401);
    assert_eq!(
        r.headers()
            .get("x-request-id")
            .and_then(|v| v.to_str().ok()),
        Some("req-test-42")
    );
    // The log line may trail the answer by a moment.
    let mut refused = None;
    for _ in 0..100 {
        let lines = json_lines(&seen.lock().expect("lock").join("\n"));
        refused = lines
            .iter()
            .find(|l| l["message"] == "webhook refused")
            .cloned();
        if refused.is_some() {
            has_no_secret(&lines, key);
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let _ = child.kill();
    let _ = child.wait();
    let refused = refused.expect("a `webhook refused` log line");
    assert_eq!(refused["level"], "WARN");
    assert_eq!(refused["correlation_id"], "req-test-42");
    assert_eq!(refused["code"], "signature_invalid");
}

#[test]
fn a_dead_letter_write_is_logged_with_the_runs_correlation_id() {
    let dir = tempfile::tempdir().expect("dir");
    let out = switchyard()
        .args([
            "--log-format",
            "json",
            "run",
            "--sandbox",
            "--mapping",
            "mapping-specs/examples/hubspot-contact.json",
            "--input",
            "tests/mapping/records.ndjson",
            "--store",
        ])
        .arg(dir.path().join("s.sqlite"))
        .env_remove("RUST_LOG")
        .output()
        .expect("runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    let lines = json_lines(&stderr);
    let dead: Vec<&Value> = lines
        .iter()
        .filter(|l| l["message"] == "record dead-lettered")
        .collect();
    assert!(!dead.is_empty(), "{stderr}");
    for d in &dead {
        assert_eq!(d["level"], "WARN");
        assert!(
            d["correlation_id"]
                .as_str()
                .is_some_and(|c| c.starts_with("run-")),
            "{d}"
        );
        assert!(d["key"].is_string() && d["reason"].is_string(), "{d}");
    }
    // The same correlation id is kept with the dead letters.
    let store = switchyard::store::Store::open(&dir.path().join("s.sqlite")).expect("store");
    let dl = store.dead_letters(true).expect("dead letters");
    assert_eq!(dl.len(), dead.len());
    assert!(
        dl.iter()
            .all(|x| x.correlation_id.as_deref() == dead[0]["correlation_id"].as_str())
    );
}

#[test]
fn a_denied_plugin_capability_is_logged() {
    let wasm = repo_root().join("target/plugins/hostile_http.wasm");
    assert!(wasm.exists(), "run .ci/build-plugins first");
    let dir = tempfile::tempdir().expect("dir");
    let sha = {
        use sha2::Digest;
        hex::encode(sha2::Sha256::digest(std::fs::read(&wasm).expect("wasm")))
    };
    let manifest = dir.path().join("fetch.toml");
    std::fs::write(
        &manifest,
        format!(
            "spec_version = 1\n[plugin]\nname = \"fetch\"\nversion = \"0.1.0\"\nworld = \"enricher\"\nwasm = \"{}\"\nsha256 = \"{sha}\"\n[plugin.capabilities]\nallowed_hosts = [\"https://allowed.example\"]\n",
            wasm.display()
        ),
    )
    .expect("write");
    let out = switchyard()
        .args(["--log-format", "json", "plugin", "test"])
        .arg(&manifest)
        .args(["--input", r#"{"url": "https://evil.example/steal"}"#])
        .env_remove("RUST_LOG")
        .output()
        .expect("runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    let lines = json_lines(&stderr);
    let denied = lines
        .iter()
        .find(|l| l["message"] == "plugin capability denied")
        .unwrap_or_else(|| panic!("no denial logged:\n{stderr}"));
    assert_eq!(denied["level"], "WARN");
    assert!(
        denied.to_string().contains("evil.example"),
        "the denial names what was refused: {denied}"
    );
}
