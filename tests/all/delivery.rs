//! Exactly-once delivery on every path (issue 10's findings, each a regression test): batch
//! reruns, a CRM that forgot its objects, conflicts that name the existing object, a crash
//! between the create and its record, another process delivering the same record, a store
//! that refuses writes, lines that never became records, vendor errors that echo secrets, and
//! two runs of one input.

#![allow(clippy::unwrap_used)]

use crate::connector::{contact, dd, hubspot_emu_opts, opts, session, spec};
use serde_json::{Value, json};
use std::sync::Arc;
use switchyard::connector::{Deliverer, DeliveryItem, Outcome};
use switchyard::spec::mapping::DuplicateAction;
use switchyard::store::{ClaimKey, Store};
use switchyard_sandbox::{self as sandbox, SandboxOptions, Vendor};

fn hubspot_session(emu: &sandbox::Emulator) -> switchyard::connector::Session {
    session(
        spec("hubspot"),
        emu,
        &[("api_token", "access_token")],
        json!({}),
        true,
    )
}

fn emails(emu: &sandbox::Emulator) -> Vec<String> {
    let mut e: Vec<String> = emu
        .records("contacts")
        .iter()
        .map(|c| c["properties"]["email"].as_str().unwrap_or("").to_string())
        .collect();
    e.sort();
    e
}

/// Routes without duplicate detection go through batch creates; running the same input again
/// used to create every record again (10 records → 15 contacts).
#[tokio::test]
async fn batch_reruns_update_the_records_instead_of_creating_them_again() {
    let emu = sandbox::start(Vendor::Hubspot, hubspot_emu_opts())
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(Store::open(&dir.path().join("s.sqlite")).unwrap());
    let d = Deliverer::new(
        hubspot_session(&emu),
        Some(store.clone()),
        opts(None, "contact"),
    );
    let r = d
        .deliver((0..10).map(|i| contact(i, "Ann")).collect())
        .await;
    assert_eq!((r.created, r.failed), (10, 0), "{:?}", r.objects);
    assert_eq!(emu.stats().requests, 1, "one batch");
    let r = d
        .deliver((0..10).map(|i| contact(i, "Bob")).collect())
        .await;
    assert_eq!(
        (r.created, r.updated, r.failed),
        (0, 10, 0),
        "{:?}",
        r.objects
    );
    assert_eq!(emu.records("contacts").len(), 10);
    assert!(
        emu.records("contacts")
            .iter()
            .all(|c| c["properties"]["firstname"] == "Bob")
    );
    emu.shutdown().await;
}

/// A CRM behind the same URL that forgot its objects and issued their ids again (a sandbox
/// reset, a restored backup): the store's ids now name other people. A rerun used to PATCH
/// them — 1,234 of 3,000 records silently lost. Now every indexed id is verified to still
/// carry the record's match key before it is updated.
#[tokio::test]
async fn a_crm_that_reissued_ids_is_not_overwritten_on_the_batch_or_the_dedupe_path() {
    for (label, dedupe) in [
        ("batch", None),
        ("dedupe", dd(DuplicateAction::UpdateExisting)),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(Store::open(&dir.path().join("s.sqlite")).unwrap());
        let emu = sandbox::start(Vendor::Hubspot, hubspot_emu_opts())
            .await
            .unwrap();
        let port: u16 = emu.base_url().rsplit(':').next().unwrap().parse().unwrap();
        let d = Deliverer::new(
            hubspot_session(&emu),
            Some(store.clone()),
            opts(dedupe.clone(), "contact"),
        );
        let r = d.deliver((0..6).map(|i| contact(i, "Ann")).collect()).await;
        assert_eq!(r.created, 6, "{label}: {:?}", r.objects);
        let ids: Vec<String> = emu
            .records("contacts")
            .iter()
            .map(|c| c["id"].as_str().unwrap().to_string())
            .collect();
        emu.shutdown().await;

        // The same URL, a CRM that lost everything and gave the same ids to other people.
        let emu = sandbox::start(
            Vendor::Hubspot,
            SandboxOptions {
                port: Some(port),
                ..hubspot_emu_opts()
            },
        )
        .await
        .unwrap();
        let strangers: Vec<Value> = ids
            .iter()
            .enumerate()
            .map(|(i, id)| {
                json!({"id": id, "properties": {"email": format!("stranger{i}@elsewhere.example"),
                                                "firstname": "Stranger"}})
            })
            .collect();
        emu.seed("contacts", &strangers).unwrap();
        let d = Deliverer::new(
            hubspot_session(&emu),
            Some(store.clone()),
            opts(dedupe.clone(), "contact"),
        );
        let r = d.deliver((0..6).map(|i| contact(i, "Bob")).collect()).await;
        assert_eq!(
            (r.created, r.updated, r.failed),
            (6, 0, 0),
            "{label}: {:?}",
            r.objects
        );
        let recs = emu.records("contacts");
        assert_eq!(recs.len(), 12, "{label}");
        for c in &recs {
            let email = c["properties"]["email"].as_str().unwrap();
            let first = &c["properties"]["firstname"];
            if email.starts_with("stranger") {
                assert_eq!(
                    first, "Stranger",
                    "{label}: a stranger was overwritten: {c}"
                );
            } else {
                assert_eq!(first, "Bob", "{label}: {c}");
            }
        }
        // And the run after that updates the right ones.
        let r = d.deliver((0..6).map(|i| contact(i, "Cy")).collect()).await;
        assert_eq!((r.created, r.updated), (0, 6), "{label}: {:?}", r.objects);
        assert_eq!(emu.records("contacts").len(), 12);
        emu.shutdown().await;
    }
}

/// A 409 that names the existing object used to be dead-lettered ("already exists"); it is
/// this record's object, so it is updated.
#[tokio::test]
async fn a_conflict_naming_the_existing_object_becomes_an_update() {
    let emu = sandbox::start(Vendor::Hubspot, hubspot_emu_opts())
        .await
        .unwrap();
    emu.seed(
        "contacts",
        &[json!({"id": "501", "properties": {"email": "lead1@example.com", "firstname": "Old"}})],
    )
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(Store::open(&dir.path().join("s.sqlite")).unwrap());
    let d = Deliverer::new(
        hubspot_session(&emu),
        Some(store.clone()),
        opts(None, "contact"),
    );
    // Single path (one record) and batch path (several, one of them conflicting).
    let r = d.deliver(vec![contact(1, "New")]).await;
    assert_eq!((r.updated, r.failed), (1, 0), "{:?}", r.objects);
    assert_eq!(r.objects[0].id.as_deref(), Some("501"));
    emu.seed(
        "contacts",
        &[json!({"id": "502", "properties": {"email": "lead7@example.com", "firstname": "Old"}})],
    )
    .unwrap();
    let mut items: Vec<DeliveryItem> = (5..10).map(|i| contact(i, "New")).collect();
    items
        .iter_mut()
        .for_each(|it| it.key = format!("b{}", it.key));
    let r = d.deliver(items).await;
    assert_eq!(
        (r.created, r.updated, r.failed, r.dead_lettered),
        (4, 1, 0, 0),
        "{:?}",
        r.objects
    );
    assert_eq!(emu.records("contacts").len(), 6);
    assert!(store.dead_letters(true).unwrap().is_empty());
    let c502 = emu
        .records("contacts")
        .into_iter()
        .find(|c| c["id"] == "502")
        .unwrap();
    assert_eq!(c502["properties"]["firstname"], "New");
    emu.shutdown().await;
}

/// A run killed after its create reached the CRM but before the store heard back leaves the
/// record `pending`: the next run looks it up instead of creating it again, and a record with
/// nothing to look it up by is dead-lettered, never created blind.
#[tokio::test]
async fn records_left_pending_by_a_dead_run_are_reconciled_not_created_again() {
    let emu = sandbox::start(Vendor::Hubspot, hubspot_emu_opts())
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(Store::open(&dir.path().join("s.sqlite")).unwrap());
    let s = hubspot_session(&emu);
    let d = Deliverer::new(s.clone(), Some(store.clone()), opts(None, "contact"));
    let ns = d.namespace();
    // A run (owner "gone", never heartbeating: dead) claimed three contacts and a company, and
    // its creates of the contacts 0 and 1 reached the CRM.
    let keys: Vec<String> = (0..3).map(|i| format!("call_{i}")).collect();
    let claims: Vec<ClaimKey<'_>> = keys
        .iter()
        .map(|k| ClaimKey {
            object: "contact",
            key: k,
        })
        .collect();
    store.claim("tenant_test", &ns, "gone", &claims).unwrap();
    store
        .claim(
            "tenant_test",
            &ns,
            "gone",
            &[ClaimKey {
                object: "company",
                key: "co1",
            }],
        )
        .unwrap();
    emu.seed(
        "contacts",
        &[
            json!({"id": "901", "properties": {"email": "lead0@example.com", "firstname": "Ann"}}),
            json!({"id": "902", "properties": {"email": "lead1@example.com", "firstname": "Ann"}}),
        ],
    )
    .unwrap();
    let r = d.deliver((0..4).map(|i| contact(i, "Ann")).collect()).await;
    assert_eq!((r.failed, r.dead_lettered), (0, 0), "{:?}", r.objects);
    assert_eq!(
        emails(&emu),
        (0..4)
            .map(|i| format!("lead{i}@example.com"))
            .collect::<Vec<_>>()
    );
    let by_key = |k: &str| r.objects.iter().find(|o| o.key == k).unwrap().clone();
    assert_eq!(by_key("call_0").id.as_deref(), Some("901"));
    assert_eq!(by_key("call_1").id.as_deref(), Some("902"));
    assert_eq!(by_key("call_2").outcome, Outcome::Created);

    // Companies have no match field: a pending one cannot be checked, so it is not sent.
    let d = Deliverer::new(s, Some(store.clone()), opts(None, "company"));
    let company = DeliveryItem {
        key: "co1".into(),
        mapped: switchyard::record::Mapped {
            objects: [(
                "company".to_string(),
                json!({"name": "Acme"}).as_object().unwrap().clone(),
            )]
            .into_iter()
            .collect(),
            triggers: vec![],
            notes: vec![],
        },
    };
    let r = d.deliver(vec![company]).await;
    assert_eq!((r.failed, r.dead_lettered), (1, 1), "{:?}", r.objects);
    assert!(emu.records("companies").is_empty());
    let dl = store.dead_letters(true).unwrap();
    assert!(
        dl[0].reason.contains("outcome is unknown"),
        "{}",
        dl[0].reason
    );
    emu.shutdown().await;
}

/// Another live process holding a record: this one waits for it, then sees it delivered and
/// updates it — never a second create.
#[tokio::test]
async fn a_record_another_live_process_is_delivering_is_waited_for() {
    let emu = sandbox::start(Vendor::Hubspot, hubspot_emu_opts())
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(Store::open(&dir.path().join("s.sqlite")).unwrap());
    let d = Deliverer::new(
        hubspot_session(&emu),
        Some(store.clone()),
        opts(dd(DuplicateAction::UpdateExisting), "contact"),
    );
    let ns = d.namespace();
    // "other" is alive (a fresh heartbeat from this very process id).
    store.heartbeat("other").unwrap();
    store
        .claim(
            "tenant_test",
            &ns,
            "other",
            &[ClaimKey {
                object: "contact",
                key: "call_3",
            }],
        )
        .unwrap();
    let st = store.clone();
    let emu_url = emu.base_url().to_string();
    let token = emu.credentials().get("access_token").unwrap().to_string();
    let finisher = tokio::spawn(async move {
        tokio::time::sleep(std::time::Duration::from_millis(400)).await;
        // The other process creates it and records it.
        let resp: Value = reqwest::Client::new()
            .post(format!("{emu_url}/crm/v3/objects/contacts"))
            .bearer_auth(token)
            .json(&json!({"properties": {"email": "lead3@example.com", "firstname": "Other"}}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let id = resp["id"].to_string();
        st.settle_done(
            "tenant_test",
            &ns,
            "hubspot",
            &[switchyard::store::Delivered {
                object: "contact",
                key: "call_3",
                id: &id,
                match_keys: &[],
                completes_record: true,
            }],
        )
        .unwrap();
    });
    let r = d.deliver(vec![contact(3, "Mine")]).await;
    finisher.await.unwrap();
    assert_eq!((r.created, r.updated), (0, 1), "{:?}", r.objects);
    assert_eq!(emu.records("contacts").len(), 1);
    emu.shutdown().await;
}

/// A store that refuses writes mid-run used to lose the record's dead letter without a word.
/// Now it goes to the fallback file, the run says so, and `deadletter import` loads it.
#[tokio::test]
async fn dead_letters_the_store_refuses_go_to_the_fallback_file_and_can_be_imported() {
    let emu = sandbox::start(Vendor::Hubspot, hubspot_emu_opts())
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.sqlite");
    let store = Arc::new(Store::open(&path).unwrap());
    store
        .set_busy_timeout(std::time::Duration::from_millis(50))
        .unwrap();
    let d = Deliverer::new(
        hubspot_session(&emu),
        Some(store.clone()),
        opts(None, "contact"),
    );
    // Another process holds the database locked for the whole delivery.
    let blocker = rusqlite_lock(&path);
    let mut bad = contact(1, "X");
    bad.mapped.objects["contact"]["email"] = json!("not-an-email");
    let r = d.deliver(vec![bad]).await;
    drop(blocker);
    assert_eq!((r.failed, r.dead_lettered), (1, 0), "{:?}", r.objects);
    assert_eq!(r.dead_letter_failures, 1);
    let reason = r.objects[0].reason.clone().unwrap();
    assert!(reason.contains("dead-letters.ndjson"), "{reason}");
    // Nothing was sent: the attempt could not be recorded first.
    assert_eq!(emu.stats().requests, 0);
    let fallback = store.fallback_path();
    let text = std::fs::read_to_string(&fallback).unwrap();
    assert_eq!(text.lines().count(), 1, "{text}");
    drop(d);
    drop(store);
    let out = crate::cli::switchyard()
        .args(["deadletter", "import", "--store"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!fallback.exists());
    let store = Store::open(&path).unwrap();
    let dl = store.dead_letters(true).unwrap();
    assert_eq!(dl.len(), 1);
    assert_eq!(dl[0].record_key, "call_1");
    emu.shutdown().await;
}

/// Another process holding an exclusive lock on a SQLite file (a long write), until dropped.
struct Locked(std::process::Child);

impl Drop for Locked {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn rusqlite_lock(path: &std::path::Path) -> Locked {
    let script = format!(
        "import sqlite3,time,sys\nc=sqlite3.connect({:?},isolation_level=None)\nc.execute('BEGIN EXCLUSIVE')\nprint('locked',flush=True)\ntime.sleep(30)\n",
        path.display().to_string()
    );
    let mut child = std::process::Command::new("python3")
        .args(["-c", &script])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(child.stdout.as_mut().unwrap()),
        &mut line,
    )
    .unwrap();
    assert_eq!(line.trim(), "locked");
    Locked(child)
}

/// Two processes opening a fresh store at once used to fail with "database is locked".
#[test]
fn processes_opening_a_fresh_store_at_once_all_succeed() {
    for _ in 0..3 {
        let dir = tempfile::tempdir().unwrap();
        let store = dir.path().join("fresh.sqlite");
        let kids: Vec<_> = (0..6)
            .map(|_| {
                crate::cli::switchyard()
                    .args(["deadletter", "list", "--store"])
                    .arg(&store)
                    .stdout(std::process::Stdio::null())
                    .stderr(std::process::Stdio::piped())
                    .spawn()
                    .unwrap()
            })
            .collect();
        for k in kids {
            let out = k.wait_with_output().unwrap();
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
}

/// A connector folder whose HubSpot spec allows the emulator's pace (the shipped one keeps
/// HubSpot's 100 requests / 10 s).
fn fast_connectors(dir: &std::path::Path) -> std::path::PathBuf {
    let out = dir.join("connectors");
    std::fs::create_dir_all(&out).unwrap();
    let text =
        std::fs::read_to_string(crate::cli::repo_root().join("connector-specs/hubspot.toml"))
            .unwrap()
            .replace(
                "requests = 100\nper_seconds = 10",
                "requests = 5000\nper_seconds = 1",
            )
            .replace(
                "[rate_limit.classes.search]\nrequests = 5\n",
                "[rate_limit.classes.search]\nrequests = 5000\n",
            );
    std::fs::write(out.join("hubspot.toml"), text).unwrap();
    out
}

fn hubspot_route(
    dir: &std::path::Path,
    name: &str,
    emu: &sandbox::Emulator,
    extra: Value,
) -> std::path::PathBuf {
    let mut crm = json!({
        "type": "hubspot",
        "api_token": emu.credentials().get("access_token").unwrap(),
        "settings": {"base_url": emu.base_url()},
        "field_mappings": {"email": "email", "firstname": "first"},
    });
    if let (Value::Object(c), Value::Object(x)) = (&mut crm, extra) {
        c.extend(x);
    }
    let p = dir.join(name);
    std::fs::write(
        &p,
        json!({"spec_version": 1, "tenant": "tenant_cli", "connector": "hubspot", "crm_config": crm})
            .to_string(),
    )
    .unwrap();
    p
}

/// Lines that never became records (not JSON, not UTF-8, refused by the mapping) used to be
/// counted as failed and forgotten; `run` also refused a whole file for one bad byte where
/// `map` rejected one line. Now `run` dead-letters exactly the lines `map` rejects, and a
/// replay maps them again with the route as it is now.
#[tokio::test]
async fn run_dead_letters_the_lines_map_rejects_and_replay_maps_them_again() {
    let emu = sandbox::start(Vendor::Hubspot, hubspot_emu_opts())
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let connectors = fast_connectors(dir.path());
    let strict = hubspot_route(
        dir.path(),
        "strict.json",
        &emu,
        json!({"custom_properties": [{"name": "call_duration", "value": "duration", "type": "number"}]}),
    );
    let lenient = hubspot_route(dir.path(), "lenient.json", &emu, json!({}));
    let input = dir.path().join("in.ndjson");
    let mut bytes = Vec::new();
    bytes.extend_from_slice(
        b"{\"id\": \"r1\", \"email\": \"a@example.com\", \"first\": \"A\", \"duration\": 3}\n",
    );
    bytes.extend_from_slice(b"this is not json\n");
    bytes.extend_from_slice(b"{\"id\": \"r3\", \"email\": \"\xff@example.com\"}\n");
    bytes.extend_from_slice(b"{\"id\": \"r4\", \"email\": \"d@example.com\", \"first\": \"D\", \"duration\": \"two minutes\"}\n");
    bytes.extend_from_slice(
        b"\n{\"id\": \"r6\", \"email\": \"f@example.com\", \"first\": \"F\", \"duration\": 1}\n",
    );
    std::fs::write(&input, &bytes).unwrap();
    let store = dir.path().join("s.sqlite");
    let report = dir.path().join("r.json");
    let (strict2, input2, store2, report2, conn2) = (
        strict.clone(),
        input.clone(),
        store.clone(),
        report.clone(),
        connectors.clone(),
    );
    let out = tokio::task::spawn_blocking(move || {
        crate::cli::switchyard()
            .args(["run", "--mapping"])
            .arg(&strict2)
            .arg("--input")
            .arg(&input2)
            .arg("--store")
            .arg(&store2)
            .arg("--report")
            .arg(&report2)
            .arg("--connectors")
            .arg(&conn2)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    let r: Value = serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    assert_eq!(
        (
            r["created"].as_u64(),
            r["failed"].as_u64(),
            r["dead_lettered"].as_u64()
        ),
        (Some(2), Some(3), Some(3)),
        "{r}"
    );
    assert_eq!(emu.records("contacts").len(), 2);
    let s = Store::open(&store).unwrap();
    let dl = s.dead_letters(true).unwrap();
    let mut lines: Vec<u64> = dl
        .iter()
        .map(|d| d.payload["line"].as_u64().unwrap())
        .collect();
    lines.sort();
    assert_eq!(lines, [2, 3, 4]);
    assert!(
        dl.iter().any(|d| d.payload.get("input_base64").is_some()),
        "the invalid UTF-8 line is kept byte for byte"
    );
    // `map` rejects the same lines.
    let (strict3, input3, conn3) = (strict.clone(), input.clone(), connectors.clone());
    let m = tokio::task::spawn_blocking(move || {
        crate::cli::switchyard()
            .args(["map", "--mapping"])
            .arg(&strict3)
            .arg("--input")
            .arg(&input3)
            .arg("--connectors")
            .arg(&conn3)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let mut rejected: Vec<u64> = String::from_utf8_lossy(&m.stderr)
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok()?.get("line")?.as_u64())
        .collect();
    rejected.sort();
    assert_eq!(rejected, lines, "map and run judge the same lines");
    drop(s);
    // Replay with a mapping that no longer types the duration: the refused record goes
    // through; the two lines that are not records stay, with their reasons.
    let (lenient2, store3, conn4) = (lenient.clone(), store.clone(), connectors.clone());
    let out = tokio::task::spawn_blocking(move || {
        crate::cli::switchyard()
            .args(["deadletter", "replay", "--store"])
            .arg(&store3)
            .arg("--mapping")
            .arg(&lenient2)
            .arg("--connectors")
            .arg(&conn4)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert_eq!(
        out.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(emu.records("contacts").len(), 3);
    let s = Store::open(&store).unwrap();
    let mut left: Vec<String> = s
        .dead_letters(true)
        .unwrap()
        .iter()
        .map(|d| d.record_key.clone())
        .collect();
    left.sort();
    assert_eq!(left.len(), 2, "{left:?}");
    assert!(left.contains(&"r3".to_string()), "{left:?}");
    emu.shutdown().await;
}

/// A vendor error body that echoes the token used to land in plain text on stderr, in the
/// `--report` file, in the stored dead-letter reason and in `deadletter list`.
#[tokio::test]
async fn vendor_errors_that_echo_the_token_never_leak_it_in_any_form() {
    use axum::{Router, http::HeaderMap, routing::post};
    use base64::Engine as _;
    const TOKEN: &str = "tok-SECRET-7f3a9c41e2";
    let app = Router::new().route(
        "/contacts",
        post(|h: HeaderMap| async move {
            let auth = h
                .get("authorization")
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_string();
            let tok = auth.trim_start_matches("Bearer ").to_string();
            let b64 = base64::engine::general_purpose::STANDARD.encode(format!("api:{tok}"));
            let url: String = url::form_urlencoded::byte_serialize(tok.as_bytes()).collect();
            (
                axum::http::StatusCode::BAD_REQUEST,
                axum::Json(json!({"message": format!("invalid header `{auth}`; basic {b64}; query token={url}; hex {}", hex::encode(&tok))})),
            )
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let dir = tempfile::tempdir().unwrap();
    let route = dir.path().join("route.json");
    std::fs::write(
        &route,
        json!({"spec_version": 1, "tenant": "t", "connector": "custom-rest",
               "crm_config": {"type": "custom", "api_base_url": base,
                              "authentication": {"type": "bearer", "token": "env:ECHO_TOKEN"},
                              "field_mappings": {"email": "email"}}})
        .to_string(),
    )
    .unwrap();
    let input = dir.path().join("in.ndjson");
    std::fs::write(&input, "{\"id\": \"e1\", \"email\": \"x@example.com\"}\n").unwrap();
    let store = dir.path().join("s.sqlite");
    let report = dir.path().join("r.json");
    let (route2, input2, store2, report2) =
        (route.clone(), input.clone(), store.clone(), report.clone());
    let out = tokio::task::spawn_blocking(move || {
        crate::cli::switchyard()
            .env("ECHO_TOKEN", TOKEN)
            .env("RUST_LOG", "debug")
            .args(["run", "--mapping"])
            .arg(&route2)
            .arg("--input")
            .arg(&input2)
            .arg("--store")
            .arg(&store2)
            .arg("--report")
            .arg(&report2)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(
        stderr.contains("[redacted]"),
        "the vendor's reason is kept, redacted: {stderr}"
    );
    let forms = [
        TOKEN.to_string(),
        base64::engine::general_purpose::STANDARD.encode(format!("api:{TOKEN}")),
        url::form_urlencoded::byte_serialize(TOKEN.as_bytes()).collect::<String>(),
        hex::encode(TOKEN),
        // The part of the base64 made of the token's bytes alone.
        base64::engine::general_purpose::STANDARD.encode(TOKEN)[..12].to_string(),
    ];
    let store3 = store.clone();
    let list = tokio::task::spawn_blocking(move || {
        crate::cli::switchyard()
            .args(["deadletter", "list", "--json", "--store"])
            .arg(&store3)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let mut places = vec![
        ("stderr", stderr.clone()),
        ("stdout", String::from_utf8_lossy(&out.stdout).to_string()),
        ("report", std::fs::read_to_string(&report).unwrap()),
        (
            "deadletter list",
            String::from_utf8_lossy(&list.stdout).to_string(),
        ),
    ];
    for f in std::fs::read_dir(dir.path()).unwrap().flatten() {
        let name = f.file_name().to_string_lossy().to_string();
        if name.starts_with("s.sqlite") {
            places.push((
                Box::leak(name.into_boxed_str()),
                String::from_utf8_lossy(&std::fs::read(f.path()).unwrap()).to_string(),
            ));
        }
    }
    assert!(
        places.iter().any(|(_, t)| t.contains("invalid header")),
        "the reason is stored"
    );
    for (place, text) in &places {
        for form in &forms {
            assert!(
                !text.contains(form.as_str()),
                "{place} holds the token as `{form}`"
            );
        }
    }
}

/// Two overlapping runs of one input on one store used to produce duplicates and false 409
/// dead letters. Now the second run of the same file is refused with a clear message, and a
/// run of another file with the same records waits for them record by record.
#[tokio::test]
async fn overlapping_runs_refuse_the_same_input_and_cooperate_on_others() {
    let emu = sandbox::start(
        Vendor::Hubspot,
        SandboxOptions {
            // The first run's first request answers late, so that it still holds its lease
            // when the second starts (batch duplicate detection needs only a few requests).
            faults: switchyard_sandbox::FaultConfig {
                slow_ms: 15,
                script: vec![switchyard_sandbox::ScriptedFault {
                    request: 1,
                    fault: switchyard_sandbox::FaultKind::Slow { ms: 3000 },
                }],
                ..Default::default()
            },
            ..hubspot_emu_opts()
        },
    )
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let connectors = fast_connectors(dir.path());
    let route = hubspot_route(
        dir.path(),
        "route.json",
        &emu,
        json!({"duplicate_detection": {"enabled": true, "match_fields": ["email"]}}),
    );
    let input = dir.path().join("in.ndjson");
    let text: String = (0..300)
        .map(|i| {
            format!("{{\"id\": \"k{i}\", \"email\": \"p{i}@example.com\", \"first\": \"P{i}\"}}\n")
        })
        .collect();
    std::fs::write(&input, &text).unwrap();
    let copy = dir.path().join("copy.ndjson");
    std::fs::write(&copy, &text).unwrap();
    let store = dir.path().join("s.sqlite");
    let run = |inp: &std::path::Path| {
        crate::cli::switchyard()
            .args(["run", "--mapping"])
            .arg(&route)
            .arg("--input")
            .arg(inp)
            .arg("--store")
            .arg(&store)
            .arg("--connectors")
            .arg(&connectors)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    };
    let a = run(&input);
    // Wait until the first run is delivering.
    for _ in 0..200 {
        if emu.stats().requests > 0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    let b = run(&input).wait_with_output().unwrap();
    let b_err = String::from_utf8_lossy(&b.stderr);
    assert_eq!(b.status.code(), Some(2), "{b_err}");
    assert!(b_err.contains("another run is delivering"), "{b_err}");
    let c = run(&copy);
    let (a, c) = tokio::task::spawn_blocking(move || {
        (a.wait_with_output().unwrap(), c.wait_with_output().unwrap())
    })
    .await
    .unwrap();
    assert!(a.status.success(), "{}", String::from_utf8_lossy(&a.stderr));
    assert!(c.status.success(), "{}", String::from_utf8_lossy(&c.stderr));
    assert_eq!(emu.records("contacts").len(), 300);
    let mut e = emails(&emu);
    e.dedup();
    assert_eq!(e.len(), 300);
    let s = Store::open(&store).unwrap();
    assert!(s.dead_letters(false).unwrap().is_empty());
    emu.shutdown().await;
}

/// The HubSpot route's delivery with duplicate detection (phone, then e-mail) against
/// HubSpot's real search limit and a search that lags writes.
fn lagging_hubspot() -> SandboxOptions {
    SandboxOptions {
        search_lag: std::time::Duration::from_millis(600),
        search_rate_limit: Vendor::Hubspot.search_rate_limit(),
        ..hubspot_emu_opts()
    }
}

/// Issue 19: duplicate detection used to search twice per record (phone, e-mail), capping
/// delivery at the search limit and missing, inside the search lag, what a run had just
/// created. It now reads by e-mail (HubSpot's unique `idProperty`) 100 records a request,
/// searches the rest by phone with one `IN` search, updates what it found in one batch and
/// creates only the new ones in another; an immediate rerun searches nothing and creates
/// nothing, with or without the store of the first run.
#[tokio::test]
async fn batch_dedupe_finds_existing_by_email_and_by_phone_and_creates_only_the_new() {
    let emu = sandbox::start(Vendor::Hubspot, lagging_hubspot())
        .await
        .unwrap();
    // lead0 exists by e-mail (another phone); lead1's phone exists under another e-mail.
    emu.seed(
        "contacts",
        &[
            json!({"id": "501", "properties": {"email": "lead0@example.com", "phone": "+15559990000"}}),
            json!({"id": "502", "properties": {"email": "someone@else.example", "phone": "+15550100001"}}),
        ],
    )
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(Store::open(&dir.path().join("s.sqlite")).unwrap());
    let deliverer = |store: Arc<Store>, action| {
        Deliverer::new(
            hubspot_session(&emu),
            Some(store),
            opts(dd(action), "contact"),
        )
    };
    let d = deliverer(store.clone(), DuplicateAction::UpdateExisting);
    let r = d.deliver((0..6).map(|i| contact(i, "Ann")).collect()).await;
    assert_eq!(
        (r.created, r.updated, r.failed),
        (4, 2, 0),
        "{:?}",
        r.objects
    );
    let id_of = |r: &switchyard::connector::DeliveryReport, key: &str| {
        r.objects
            .iter()
            .find(|o| o.key == key)
            .and_then(|o| o.id.clone())
    };
    assert_eq!(
        id_of(&r, "call_0").as_deref(),
        Some("501"),
        "found by e-mail"
    );
    assert_eq!(
        id_of(&r, "call_1").as_deref(),
        Some("502"),
        "found by phone"
    );
    assert_eq!(emu.records("contacts").len(), 6);
    let st = emu.stats();
    // Read by e-mail, one IN search for the five not found, one update, one create.
    assert_eq!((st.requests, st.searches, st.search_throttled), (4, 1, 0));

    // At once again (the 4 created are not searchable yet): nothing created, no search;
    // the delivered ids are verified by one read and updated by one batch.
    let r = d.deliver((0..6).map(|i| contact(i, "Bea")).collect()).await;
    assert_eq!(
        (r.created, r.updated, r.failed),
        (0, 6, 0),
        "{:?}",
        r.objects
    );
    let st2 = emu.stats();
    assert_eq!((st2.requests - st.requests, st2.searches), (2, 1));
    // A fresh store (no claims, no index) inside the search lag: found by e-mail.
    let fresh = Arc::new(Store::open(&dir.path().join("fresh.sqlite")).unwrap());
    let r = deliverer(fresh, DuplicateAction::UpdateExisting)
        .deliver(
            (0..6)
                .map(|i| {
                    let mut it = contact(i, "Cid");
                    it.key = format!("other_{i}");
                    it
                })
                .collect(),
        )
        .await;
    assert_eq!(
        (r.created, r.updated, r.failed),
        (0, 6, 0),
        "{:?}",
        r.objects
    );
    assert_eq!(
        emu.stats().searches,
        1,
        "nothing searched: every record has an e-mail"
    );
    let recs = emu.records("contacts");
    assert_eq!(recs.len(), 6);
    assert!(
        recs.iter().all(|c| c["properties"]["firstname"] == "Cid"),
        "{recs:?}"
    );
    // action = skip: found, left alone, nothing written.
    let before = emu.stats().requests;
    let r = deliverer(store, DuplicateAction::Skip)
        .deliver((0..6).map(|i| contact(i, "Dan")).collect())
        .await;
    assert_eq!(
        (r.created, r.skipped, r.failed),
        (0, 6, 0),
        "{:?}",
        r.objects
    );
    assert_eq!(
        emu.stats().requests - before,
        1,
        "one verifying read, no update"
    );
    assert!(
        emu.records("contacts")
            .iter()
            .all(|c| c["properties"]["firstname"] == "Cid")
    );
    emu.shutdown().await;
}

/// A batch create whose answer is lost after HubSpot created the contacts (a truncated
/// body) leaves every record's outcome unknown: each goes the one-record way, which reads it
/// by e-mail (reads do not lag) and finds it, instead of creating it again.
#[tokio::test]
async fn a_record_whose_batch_answer_is_unknown_is_reconciled_not_created_twice() {
    let emu = sandbox::start(
        Vendor::Hubspot,
        SandboxOptions {
            // 1: read by e-mail, 2: IN search by phone, 3: the batch create.
            faults: sandbox::FaultConfig {
                script: vec![sandbox::ScriptedFault {
                    request: 3,
                    fault: sandbox::FaultKind::Malformed,
                }],
                ..Default::default()
            },
            ..lagging_hubspot()
        },
    )
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(Store::open(&dir.path().join("s.sqlite")).unwrap());
    let d = Deliverer::new(
        hubspot_session(&emu),
        Some(store.clone()),
        opts(dd(DuplicateAction::UpdateExisting), "contact"),
    );
    let r = d.deliver((0..5).map(|i| contact(i, "Ann")).collect()).await;
    assert_eq!(emu.stats().faults.get("malformed"), Some(&1));
    assert_eq!((r.failed, r.dead_lettered), (0, 0), "{:?}", r.objects);
    assert_eq!(r.created + r.updated, 5, "{:?}", r.objects);
    assert_eq!(emails(&emu).len(), 5, "{:?}", emails(&emu));
    assert_eq!(emu.stats().searches, 1, "reconciled by reads, not searches");
    // And the store knows them: a rerun creates nothing.
    let r = d.deliver((0..5).map(|i| contact(i, "Bea")).collect()).await;
    assert_eq!(
        (r.created, r.updated, r.failed),
        (0, 5, 0),
        "{:?}",
        r.objects
    );
    assert_eq!(emu.records("contacts").len(), 5);
    emu.shutdown().await;
}
