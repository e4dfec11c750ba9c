//! The example host service (`engine/cli/examples/embed.rs`): built from source and run as a
//! user would, then driven over HTTP.

use crate::cli::repo_root;
use serde_json::{Value, json};
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

/// The example's binary, next to the `switchyard` binary; built when a filtered test run
/// (`--test all`) did not build examples.
fn embed_binary() -> PathBuf {
    let bin = PathBuf::from(env!("CARGO_BIN_EXE_switchyard"));
    let dir = bin.parent().expect("target dir");
    let exe = dir
        .join("examples")
        .join(format!("embed{}", std::env::consts::EXE_SUFFIX));
    if !exe.exists() {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let mut build = Command::new(cargo);
        build.current_dir(repo_root()).args([
            "build",
            "--quiet",
            "-p",
            "switchyard-cli",
            "--example",
            "embed",
        ]);
        if dir.ends_with("release") {
            build.arg("--release");
        }
        assert!(build.status().expect("cargo runs").success(), "builds");
    }
    exe
}

struct Service(Child);

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_embedding_example_maps_delivers_and_reads_back_through_the_engine() {
    let tmp = tempfile::tempdir().expect("tmp");
    let mut child = Command::new(embed_binary())
        .args(["--listen", "127.0.0.1:0", "--sandbox", "--store"])
        .arg(tmp.path().join("embed.sqlite"))
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("starts");
    let stdout = child.stdout.take().expect("stdout");
    let service = Service(child);
    let mut first = String::new();
    BufReader::new(stdout)
        .read_line(&mut first)
        .expect("reads its address");
    let base = first
        .trim()
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("unexpected first line {first:?}"))
        .to_string();
    let http = reqwest::Client::new();

    // The example's route is seed 003's HubSpot contact spec: `customer_name_first` → firstname.
    let record = json!({"id": "call-1", "email": "ada@example.com", "phone": "+14155552671",
                        "customer_name_first": "Ada"});
    let r = http
        .post(format!("{base}/records"))
        .json(&record)
        .send()
        .await
        .expect("posts");
    assert_eq!(r.status(), 200);
    let report: Value = r.json().await.expect("json");
    // Seed 003's config brings the deal and the e-mail domain's company along with the contact.
    assert_eq!(report["created"], 3, "{report}");
    assert_eq!(report["objects"][0]["object"], "contact", "{report}");
    let id = report["objects"][0]["id"]
        .as_str()
        .expect("the CRM id")
        .to_string();

    // Read back through the connector's get operation.
    let got: Value = http
        .get(format!("{base}/objects/contact/{id}"))
        .send()
        .await
        .expect("gets")
        .json()
        .await
        .expect("json");
    assert_eq!(got["properties"]["firstname"], "Ada", "{got}");

    // The same record again updates the one contact (its id keys it; the store remembers).
    let again: Value = http
        .post(format!("{base}/records"))
        .json(
            &json!({"id": "call-1", "email": "ada@example.com", "phone": "+14155552671",
                      "customer_name_first": "Ada L."}),
        )
        .send()
        .await
        .expect("posts")
        .json()
        .await
        .expect("json");
    // Nothing new: the contact and its deal are updated, the company found again is left as it is.
    assert_eq!(
        (&again["created"], &again["updated"]),
        (&json!(0), &json!(2)),
        "{again}"
    );
    assert_eq!(again["objects"][0]["id"], id.as_str());

    // Map only: nothing sent.
    let mapped: Value = http
        .post(format!("{base}/map"))
        .json(&json!({"email": "b@example.com"}))
        .send()
        .await
        .expect("posts")
        .json()
        .await
        .expect("json");
    assert_eq!(mapped["objects"]["contact"]["email"], "b@example.com");

    // An unknown object is the engine's error, not a crash.
    let r = http
        .get(format!("{base}/objects/spaceship/1"))
        .send()
        .await
        .expect("gets");
    assert_eq!(r.status(), 400);
    let missing = http
        .get(format!("{base}/objects/contact/999999"))
        .send()
        .await
        .expect("gets");
    assert_eq!(missing.status(), 404);
    drop(service);
}
