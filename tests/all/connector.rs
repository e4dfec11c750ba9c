//! The connector runtime end to end against the in-process vendor emulators: create, update,
//! dedupe, batch, page, incremental sync, dead letters, and exactly-once delivery under faults.

#![allow(clippy::unwrap_used)]

use crate::cli::repo_root;
use serde_json::{Map, Value, json};
use std::collections::HashMap;
use std::sync::Arc;
use switchyard::connector::{
    self, Binding, Connector, Deliverer, DeliveryItem, DeliveryOptions, Outcome, Runtime, Secret,
    Session,
};
use switchyard::record::{FiredTrigger, Mapped};
use switchyard::spec::mapping::{DuplicateAction, DuplicateDetection, MatchStrategy};
use switchyard::store::Store;
use switchyard_sandbox::{self as sandbox, FaultConfig, RateLimitOverride, SandboxOptions, Vendor};

pub(crate) fn spec(name: &str) -> switchyard::spec::connector::ConnectorSpec {
    connector::load_spec(&repo_root().join(format!("connector-specs/{name}.toml"))).unwrap()
}

/// A session against an emulator; `fast` lifts the rate limits (general and per class) and
/// shortens timeouts so that fault tests run in seconds.
pub(crate) fn session(
    mut spec: switchyard::spec::connector::ConnectorSpec,
    emu: &sandbox::Emulator,
    secrets: &[(&str, &str)],
    config: Value,
    fast: bool,
) -> Session {
    if fast {
        if let Some(rl) = &mut spec.rate_limit {
            rl.requests = 2000;
            rl.per_seconds = 1;
            for class in rl.classes.values_mut() {
                class.requests = 2000;
                class.per_seconds = 1;
            }
        }
        let r = spec
            .retry
            .get_or_insert(switchyard::spec::connector::Retry {
                max_attempts: 6,
                initial_backoff_ms: 20,
                max_backoff_ms: 200,
                timeout_ms: 800,
            });
        r.max_attempts = 6;
        r.initial_backoff_ms = 20;
        r.max_backoff_ms = 200;
        r.timeout_ms = 800;
    }
    let c = Arc::new(Connector::compile(spec).unwrap());
    let mut s = HashMap::new();
    for (name, cred) in secrets {
        s.insert(
            name.to_string(),
            Secret::new(emu.credentials().get(cred).unwrap().to_string()),
        );
    }
    let config: Map<String, Value> = config.as_object().cloned().unwrap_or_default();
    Runtime::new().session(
        c,
        Binding {
            tenant: "tenant_test".into(),
            config,
            secrets: s,
            base_url: Some(emu.base_url().to_string()),
        },
    )
}

pub(crate) fn contact(i: usize, first: &str) -> DeliveryItem {
    let mut o = Map::new();
    o.insert("email".into(), json!(format!("lead{i}@example.com")));
    o.insert("firstname".into(), json!(first));
    o.insert("lastname".into(), json!(format!("L{i}")));
    o.insert("phone".into(), json!(format!("(555) 010-{i:04}")));
    let mut objects = indexmap::IndexMap::new();
    objects.insert("contact".to_string(), o);
    DeliveryItem {
        key: format!("call_{i}"),
        mapped: Mapped {
            objects,
            triggers: vec![],
            notes: vec![],
        },
    }
}

pub(crate) fn dd(action: DuplicateAction) -> Option<DuplicateDetection> {
    Some(DuplicateDetection {
        enabled: true,
        match_fields: vec!["phone".into(), "email".into()],
        match_strategy: MatchStrategy::Exact,
        action,
    })
}

pub(crate) fn opts(d: Option<DuplicateDetection>, object: &str) -> DeliveryOptions {
    DeliveryOptions {
        route: "test-route.json".into(),
        duplicate_detection: d,
        dedupe_object: object.into(),
        concurrency: 8,
        batch: true,
    }
}

pub(crate) fn hubspot_emu_opts() -> SandboxOptions {
    SandboxOptions {
        rate_limit: Some(RateLimitOverride {
            requests: 5000,
            per: std::time::Duration::from_secs(1),
        }),
        ..Default::default()
    }
}

/// The local dedupe index is namespaced by CRM instance (a fresh emulator on another port does
/// not inherit the last one's ids), and an indexed record deleted in the CRM is forgotten on
/// the update's 404 and created again, instead of failing.
#[tokio::test]
async fn stale_index_entries_are_forgotten_when_the_crm_answers_404() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(Store::open(&dir.path().join("s.sqlite")).unwrap());
    for round in 0..2 {
        // Search sees writes 300 ms late, deletes included (as HubSpot's does).
        let emu = sandbox::start(
            Vendor::Hubspot,
            SandboxOptions {
                search_lag: std::time::Duration::from_millis(300),
                ..hubspot_emu_opts()
            },
        )
        .await
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
            Some(store.clone()),
            opts(dd(DuplicateAction::UpdateExisting), "contact"),
        );
        let r = d.deliver((0..3).map(|i| contact(i, "Ann")).collect()).await;
        assert_eq!(
            (r.created, r.updated, r.failed),
            (3, 0, 0),
            "round {round}: {:?}",
            r.objects
        );
        assert_eq!(emu.records("contacts").len(), 3);
        // Within one instance the index still finds them: updates, no new records.
        let r = d.deliver((0..3).map(|i| contact(i, "Ann")).collect()).await;
        assert_eq!(
            (r.created, r.updated, r.failed),
            (0, 3, 0),
            "{:?}",
            r.objects
        );
        assert_eq!(emu.records("contacts").len(), 3);
        if round == 1 {
            // Someone deletes one of them in the CRM: its indexed id answers 404, the entry is
            // forgotten; the vendor's search, lagging, still answers the deleted id, which is
            // known gone; so the record is created again.
            tokio::time::sleep(std::time::Duration::from_millis(400)).await;
            let id = r.objects[0].id.clone().unwrap();
            let del = reqwest::Client::new()
                .delete(format!("{}/crm/v3/objects/contacts/{id}", emu.base_url()))
                .bearer_auth(emu.credentials().get("access_token").unwrap())
                .send()
                .await
                .unwrap();
            assert!(del.status().is_success(), "{}", del.status());
            assert_eq!(emu.records("contacts").len(), 2);
            let r = d.deliver((0..3).map(|i| contact(i, "Ann")).collect()).await;
            assert_eq!(
                (r.created, r.updated, r.failed),
                (1, 2, 0),
                "{:?}",
                r.objects
            );
            assert_eq!(emu.records("contacts").len(), 3);
            assert_ne!(r.objects[0].id.as_deref(), Some(id.as_str()));
        }
        emu.shutdown().await;
    }
}

#[tokio::test]
async fn hubspot_creates_then_updates_duplicates_by_normalised_email_and_phone() {
    let emu = sandbox::start(Vendor::Hubspot, hubspot_emu_opts())
        .await
        .unwrap();
    let s = session(
        spec("hubspot"),
        &emu,
        &[("api_token", "access_token")],
        json!({}),
        true,
    );
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(Store::open(&dir.path().join("s.sqlite")).unwrap());
    let d = Deliverer::new(
        s.clone(),
        Some(store.clone()),
        opts(dd(DuplicateAction::UpdateExisting), "contact"),
    );
    let r = d.deliver((0..5).map(|i| contact(i, "Ann")).collect()).await;
    assert_eq!(
        (r.created, r.updated, r.failed),
        (5, 0, 0),
        "{:?}",
        r.objects
    );
    assert_eq!(emu.records("contacts").len(), 5);

    // Same people, new keys, shouting e-mails: found by search (a fresh store has no index).
    let store2 = Arc::new(Store::open(&dir.path().join("s2.sqlite")).unwrap());
    let d2 = Deliverer::new(
        s.clone(),
        Some(store2),
        opts(dd(DuplicateAction::UpdateExisting), "contact"),
    );
    let again: Vec<DeliveryItem> = (0..5)
        .map(|i| {
            let mut it = contact(i, "Bea");
            it.key = format!("other_{i}");
            it.mapped.objects["contact"]["email"] = json!(format!("  LEAD{i}@Example.com "));
            it.mapped.objects["contact"].remove("phone");
            it
        })
        .collect();
    let r2 = d2.deliver(again).await;
    assert_eq!(
        (r2.created, r2.updated, r2.failed),
        (0, 5, 0),
        "{:?}",
        r2.objects
    );
    let recs = emu.records("contacts");
    assert_eq!(recs.len(), 5);
    assert!(
        recs.iter().all(|c| c["properties"]["firstname"] == "Bea"),
        "{recs:?}"
    );

    // action = skip leaves them alone.
    let d3 = Deliverer::new(s, Some(store), opts(dd(DuplicateAction::Skip), "contact"));
    let r3 = d3.deliver(vec![contact(1, "Cid")]).await;
    assert_eq!((r3.created, r3.skipped), (0, 1));
    emu.shutdown().await;
}

#[tokio::test]
async fn hubspot_batches_by_100_and_lists_every_page() {
    let emu = sandbox::start(Vendor::Hubspot, hubspot_emu_opts())
        .await
        .unwrap();
    let s = session(
        spec("hubspot"),
        &emu,
        &[("api_token", "access_token")],
        json!({}),
        true,
    );
    let d = Deliverer::new(s.clone(), None, opts(None, "contact"));
    let r = d
        .deliver((0..250).map(|i| contact(i, "Dee")).collect())
        .await;
    assert_eq!((r.created, r.failed), (250, 0));
    assert!(
        r.objects.iter().all(|o| o.id.is_some()),
        "batch results carry ids"
    );
    // 3 batch requests, not 250 creates.
    assert_eq!(emu.stats().requests, 3);
    let mut seen = Vec::new();
    let n = s
        .list("list_contact", Map::new(), None, |r| seen.push(r))
        .await
        .unwrap();
    assert_eq!(n, 250);
    assert_eq!(emu.stats().requests, 3 + 3, "100 per page");
    let mut emails: Vec<String> = seen
        .iter()
        .map(|r| r["properties"]["email"].as_str().unwrap().to_string())
        .collect();
    emails.sort();
    emails.dedup();
    assert_eq!(emails.len(), 250);
    emu.shutdown().await;
}

#[tokio::test]
async fn hubspot_incremental_sync_fetches_only_changes() {
    let emu = sandbox::start(Vendor::Hubspot, hubspot_emu_opts())
        .await
        .unwrap();
    let s = session(
        spec("hubspot"),
        &emu,
        &[("api_token", "access_token")],
        json!({}),
        true,
    );
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("s.sqlite")).unwrap();
    let d = Deliverer::new(s.clone(), None, opts(None, "contact"));
    d.deliver((0..3).map(|i| contact(i, "Eve")).collect()).await;
    // The sync reads through CRM search, which lags writes (as HubSpot's does).
    tokio::time::sleep(sandbox::DEFAULT_SEARCH_LAG * 2).await;
    let first = connector::sync::pull(&s, Some(&store), "contact", None, None)
        .await
        .unwrap();
    assert_eq!(first.records.len(), 3);
    assert!(
        store
            .cursor("tenant_test", "hubspot", "contact")
            .unwrap()
            .is_some()
    );
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    let d2 = Deliverer::new(
        s.clone(),
        None,
        DeliveryOptions {
            batch: false,
            ..opts(None, "contact")
        },
    );
    d2.deliver(vec![contact(7, "Fay")]).await;
    tokio::time::sleep(sandbox::DEFAULT_SEARCH_LAG * 2).await;
    let second = connector::sync::pull(&s, Some(&store), "contact", None, None)
        .await
        .unwrap();
    assert_eq!(second.records.len(), 1, "{:?}", second.records);
    assert_eq!(
        second.records[0]["properties"]["email"],
        "lead7@example.com"
    );
    let third = connector::sync::pull(&s, Some(&store), "contact", None, None)
        .await
        .unwrap();
    assert!(third.records.is_empty());
    emu.shutdown().await;
}

#[tokio::test]
async fn refused_records_are_dead_lettered_with_the_vendor_reason() {
    let emu = sandbox::start(Vendor::Hubspot, hubspot_emu_opts())
        .await
        .unwrap();
    let s = session(
        spec("hubspot"),
        &emu,
        &[("api_token", "access_token")],
        json!({}),
        true,
    );
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(Store::open(&dir.path().join("s.sqlite")).unwrap());
    let d = Deliverer::new(
        s,
        Some(store.clone()),
        DeliveryOptions {
            batch: false,
            ..opts(None, "contact")
        },
    );
    let mut bad = contact(1, "Gus");
    bad.mapped.objects["contact"]["email"] = json!("not-an-email");
    let r = d.deliver(vec![bad, contact(2, "Hal")]).await;
    assert_eq!((r.created, r.failed, r.dead_lettered), (1, 1, 1));
    let dl = store.dead_letters(true).unwrap();
    assert_eq!(dl.len(), 1);
    assert_eq!(dl[0].record_key, "call_1");
    assert!(dl[0].reason.contains("400"), "{}", dl[0].reason);
    assert_eq!(dl[0].payload["objects"]["contact"]["email"], "not-an-email");
    emu.shutdown().await;
}

/// 10% 5xx and 5% timeouts: every record ends created exactly once or dead-lettered.
#[tokio::test]
async fn faults_never_lose_or_duplicate_a_record() {
    let emu = sandbox::start(
        Vendor::Hubspot,
        SandboxOptions {
            faults: FaultConfig {
                error_5xx_rate: 0.10,
                timeout_rate: 0.05,
                ..Default::default()
            },
            seed: 7,
            ..hubspot_emu_opts()
        },
    )
    .await
    .unwrap();
    let s = session(
        spec("hubspot"),
        &emu,
        &[("api_token", "access_token")],
        json!({}),
        true,
    );
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(Store::open(&dir.path().join("s.sqlite")).unwrap());
    let n = 150;
    // A third through the one-record dedupe path (lookups + create), a third through batch
    // dedupe (10 records a delivery: batch read, IN search, batch create), a third through
    // batch creates.
    let d = Deliverer::new(
        s.clone(),
        Some(store.clone()),
        DeliveryOptions {
            batch: false,
            ..opts(dd(DuplicateAction::UpdateExisting), "contact")
        },
    );
    let mut r1 = d
        .deliver((0..n / 3).map(|i| contact(i, "Ivy")).collect())
        .await;
    let d = Deliverer::new(
        s.clone(),
        Some(store.clone()),
        opts(dd(DuplicateAction::UpdateExisting), "contact"),
    );
    for start in (n / 3..2 * n / 3).step_by(10) {
        let r = d
            .deliver((start..start + 10).map(|i| contact(i, "Ivy")).collect())
            .await;
        r1.created += r.created;
        r1.failed += r.failed;
    }
    let d2 = Deliverer::new(s, Some(store.clone()), opts(None, "contact"));
    let r2 = d2
        .deliver((2 * n / 3..n).map(|i| contact(i, "Ivy")).collect())
        .await;
    let stats = emu.stats();
    assert!(
        stats.faults.get("5xx").copied().unwrap_or(0) > 0,
        "{stats:?}"
    );
    assert!(
        stats.faults.get("timeout").copied().unwrap_or(0) > 0,
        "{stats:?}"
    );
    let dead: Vec<String> = store
        .dead_letters(true)
        .unwrap()
        .into_iter()
        .map(|d| d.record_key)
        .collect();
    let recs = emu.records("contacts");
    let mut created: Vec<String> = recs
        .iter()
        .map(|c| c["properties"]["email"].as_str().unwrap().to_string())
        .collect();
    let total = created.len();
    created.sort();
    created.dedup();
    assert_eq!(created.len(), total, "no duplicates");
    for i in 0..n {
        let email = format!("lead{i}@example.com");
        let in_crm = created.binary_search(&email).is_ok();
        let in_dlq = dead.contains(&format!("call_{i}"));
        assert!(
            in_crm ^ in_dlq,
            "record {i}: in CRM {in_crm}, dead-lettered {in_dlq}"
        );
    }
    assert_eq!(r1.created + r2.created, total);
    assert_eq!(r1.failed + r2.failed, dead.len());
    emu.shutdown().await;
}

#[tokio::test]
async fn workflow_actions_run_as_operations_and_webhooks() {
    use axum::{Router, routing::post};
    let hits: Arc<std::sync::Mutex<Vec<Value>>> = Arc::default();
    let h2 = hits.clone();
    let app = Router::new().route(
        "/notify",
        post(move |axum::Json(v): axum::Json<Value>| {
            let h = h2.clone();
            async move {
                h.lock().unwrap().push(v);
                "ok"
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let emu = sandbox::start(Vendor::Hubspot, hubspot_emu_opts())
        .await
        .unwrap();
    // HubSpot takes only the id of one of the portal's owners.
    emu.seed(
        "owners",
        &[json!({"id": "777", "email": "jo.owner@company.com"})],
    )
    .unwrap();
    let s = session(
        spec("hubspot"),
        &emu,
        &[("api_token", "access_token")],
        json!({"notification_webhook_url": format!("http://{addr}/notify"), "owner_id": "777"}),
        true,
    );
    let d = Deliverer::new(
        s,
        None,
        opts(dd(DuplicateAction::UpdateExisting), "contact"),
    );
    let mut it = contact(3, "Jo");
    it.mapped.triggers.push(FiredTrigger {
        name: "high_value_lead".into(),
        actions: vec![
            "send_notification".into(),
            "assign_owner".into(),
            "no_such".into(),
        ],
    });
    let r = d.deliver(vec![it]).await;
    let st: Vec<&str> = r.actions.iter().map(|a| a.status).collect();
    assert_eq!(st, ["ran", "ran", "skipped"], "{:?}", r.actions);
    let hits = hits.lock().unwrap().clone();
    assert_eq!(hits.len(), 1);
    assert_eq!(hits[0]["email"], "lead3@example.com");
    assert_eq!(hits[0]["event"], "high_value_lead");
    assert_eq!(
        emu.records("contacts")[0]["properties"]["hubspot_owner_id"],
        "777"
    );
    assert!(r.objects.iter().all(|o| o.outcome == Outcome::Created));
    emu.shutdown().await;
}

fn write_input(dir: &std::path::Path, lines: &[Value]) -> std::path::PathBuf {
    let p = dir.join("in.ndjson");
    let text: Vec<String> = lines.iter().map(|l| l.to_string()).collect();
    std::fs::write(&p, text.join("\n")).unwrap();
    p
}

#[test]
fn run_dry_run_prints_requests_with_secrets_redacted() {
    let dir = tempfile::tempdir().unwrap();
    let input = write_input(
        dir.path(),
        &[json!({"call_id": "c1", "objects": {"contact": {"email": "a@b.co", "firstname": "Al"}}})],
    );
    let secrets = dir.path().join("secrets.json");
    std::fs::write(
        &secrets,
        json!({"secret:projects/PROJECT_ID/secrets/hubspot-token-tenant-TENANT_ID/versions/latest": "pat-na1-SUPERSECRET"}).to_string(),
    )
    .unwrap();
    let out = crate::cli::switchyard()
        .env("SWITCHYARD_SECRETS", &secrets)
        .args([
            "run",
            "--mapped",
            "--mapping",
            "mapping-specs/examples/hubspot-contact.json",
            "--dry-run",
            "--input",
        ])
        .arg(&input)
        .arg("--store")
        .arg(dir.path().join("s.sqlite"))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!stdout.contains("SUPERSECRET"));
    let lines: Vec<Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let create = lines
        .iter()
        .find(|l| l["url"] == "https://api.hubapi.com/crm/v3/objects/contacts")
        .unwrap_or_else(|| panic!("{stdout}"));
    assert_eq!(create["method"], "POST");
    assert_eq!(create["headers"]["authorization"], "Bearer [redacted]");
    assert_eq!(create["body"]["properties"]["email"], "a@b.co");
    // Duplicate detection looked first: by e-mail, HubSpot's unique `idProperty`, with a
    // batch read (a search would lag writes).
    let read = lines
        .iter()
        .find(|l| l["url"].as_str().unwrap().ends_with("/contacts/batch/read"))
        .unwrap_or_else(|| panic!("{stdout}"));
    assert_eq!(read["body"]["idProperty"], "email");
    assert_eq!(read["body"]["inputs"], json!([{"id": "a@b.co"}]));
    assert!(
        lines
            .iter()
            .position(|l| l == read)
            .lt(&lines.iter().position(|l| l == create)),
        "{stdout}"
    );
}

#[test]
fn run_sandbox_delivers_reports_and_dead_letters() {
    let dir = tempfile::tempdir().unwrap();
    let input = write_input(
        dir.path(),
        &[
            json!({"call_id": "c1", "objects": {"contact": {"email": "a@b.co", "firstname": "Al"}}}),
            json!({"call_id": "c2", "objects": {"contact": {"email": "broken", "firstname": "Bo"}}}),
        ],
    );
    let store = dir.path().join("s.sqlite");
    let report = dir.path().join("r.json");
    let out = crate::cli::switchyard()
        .args([
            "run",
            "--mapped",
            "--mapping",
            "mapping-specs/examples/hubspot-contact.json",
            "--sandbox",
            "--input",
        ])
        .arg(&input)
        .arg("--store")
        .arg(&store)
        .arg("--report")
        .arg(&report)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    // The seed's config brings a deal and the company of the e-mail domain with each contact.
    assert!(
        stderr.contains("created 3, updated 0, skipped 0, failed 1"),
        "{stderr}"
    );
    let r: Value = serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    assert_eq!(r["created"], 3);
    let created: Vec<&str> = r["objects"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|o| o["outcome"] == "created")
        .map(|o| o["object"].as_str().unwrap())
        .collect();
    assert_eq!(created, ["contact", "company", "deal"]);
    assert_eq!(r["dead_lettered"], 1);
    let list = crate::cli::switchyard()
        .args(["deadletter", "list", "--json", "--store"])
        .arg(&store)
        .output()
        .unwrap();
    let rows: Vec<Value> = String::from_utf8_lossy(&list.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0]["record_key"], "c2");
    assert!(
        rows[0]["reason"].as_str().unwrap().contains("400"),
        "{rows:?}"
    );
    assert_eq!(rows[0]["payload"]["objects"]["contact"]["email"], "broken");
}

/// OAuth refresh-token auth: one token request however many requests run at once, and the
/// token persisted encrypted so that the next session reuses it.
#[tokio::test]
async fn oauth_refresh_is_single_flight_and_sealed_at_rest() {
    use switchyard::spec::connector::{Auth, CredentialsIn};
    let emu = sandbox::start(Vendor::Hubspot, hubspot_emu_opts())
        .await
        .unwrap();
    let mut sp = spec("hubspot");
    for (k, _) in [
        ("client_id", ()),
        ("client_secret", ()),
        ("refresh_token", ()),
    ] {
        sp.secrets.insert(
            k.into(),
            switchyard::spec::connector::SecretParam {
                description: None,
                required: true,
            },
        );
    }
    sp.auth = Some(Auth::Oauth2Refresh {
        token_url: "https://api.hubapi.com/oauth/v1/token".into(),
        client_id: "{{secrets.client_id}}".into(),
        client_secret: "{{secrets.client_secret}}".into(),
        refresh_token: "{{secrets.refresh_token}}".into(),
        scheme: None,
        credentials_in: CredentialsIn::Body,
        refresh_ahead_secs: 60,
        base_url_field: None,
    });
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(
        Store::open(&dir.path().join("s.sqlite"))
            .unwrap()
            .with_key("test-key"),
    );
    let creds = [
        ("client_id", "client_id"),
        ("client_secret", "client_secret"),
        ("refresh_token", "refresh_token"),
    ];
    let s = session(sp.clone(), &emu, &creds, json!({}), true).with_token_store(store.clone());
    let d = Deliverer::new(
        s,
        None,
        DeliveryOptions {
            batch: false,
            concurrency: 16,
            ..opts(None, "contact")
        },
    );
    let r = d
        .deliver((0..40).map(|i| contact(i, "Kim")).collect())
        .await;
    assert_eq!(r.created, 40, "{:?}", r.objects);
    assert_eq!(
        emu.stats().requests,
        41,
        "40 creates and exactly one token request"
    );
    let sealed = store
        .sealed_token_bytes("tenant_test", "hubspot")
        .unwrap()
        .unwrap();
    let access = store.get_token("tenant_test", "hubspot").unwrap().unwrap()["access_token"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        !sealed.windows(access.len()).any(|w| w == access.as_bytes()),
        "sealed at rest"
    );
    // A new session (another process) reuses the persisted token: no token request.
    let s2 = session(sp, &emu, &creds, json!({}), true).with_token_store(store);
    let d2 = Deliverer::new(
        s2,
        None,
        DeliveryOptions {
            batch: false,
            ..opts(None, "contact")
        },
    );
    d2.deliver(vec![contact(99, "Lou")]).await;
    assert_eq!(emu.stats().requests, 42);
    emu.shutdown().await;
}

fn item(key: &str, objects: Value) -> DeliveryItem {
    let mut m = Mapped::default();
    for (k, v) in objects.as_object().unwrap() {
        m.objects.insert(k.clone(), v.as_object().unwrap().clone());
    }
    DeliveryItem {
        key: key.into(),
        mapped: m,
    }
}

fn dd_on(fields: &[&str]) -> Option<DuplicateDetection> {
    Some(DuplicateDetection {
        enabled: true,
        match_fields: fields.iter().map(|f| f.to_string()).collect(),
        match_strategy: MatchStrategy::Exact,
        action: DuplicateAction::UpdateExisting,
    })
}

/// Salesforce through the JWT bearer flow (RS256): create, dedupe → update, collections of
/// 200, and SOQL paging by `nextRecordsUrl`.
#[tokio::test]
async fn salesforce_jwt_create_dedupe_collections_and_paging() {
    let emu = sandbox::start(Vendor::Salesforce, SandboxOptions::default())
        .await
        .unwrap();
    let creds = [
        ("consumer_key", "client_id"),
        ("private_key", "private_key_pem"),
        ("username", "username"),
    ];
    let s = session(
        spec("salesforce"),
        &emu,
        &creds,
        json!({"query_batch_size": "200"}),
        true,
    );
    let lead = |i: usize, company: &str| {
        item(
            &format!("sf{i}"),
            json!({"lead": {"LastName": format!("L{i}"), "Company": company, "Email": format!("sf{i}@example.com")}}),
        )
    };
    let d = Deliverer::new(s.clone(), None, opts(dd_on(&["Email"]), "lead"));
    let r = d.deliver((0..3).map(|i| lead(i, "Acme")).collect()).await;
    assert_eq!((r.created, r.failed), (3, 0), "{:?}", r.objects);
    let r2 = d
        .deliver((0..3).map(|i| lead(i, "Initech")).collect())
        .await;
    assert_eq!(
        (r2.created, r2.updated, r2.failed),
        (0, 3, 0),
        "{:?}",
        r2.objects
    );
    assert!(
        emu.records("Lead")
            .iter()
            .all(|l| l["Company"] == "Initech")
    );
    let before = emu.stats().requests;
    let batch = Deliverer::new(s.clone(), None, opts(None, "lead"));
    let r3 = batch
        .deliver((10..260).map(|i| lead(i, "Hooli")).collect())
        .await;
    assert_eq!(
        (r3.created, r3.failed),
        (250, 0),
        "{:?}",
        r3.objects.iter().find(|o| o.reason.is_some())
    );
    assert!(
        emu.stats().requests - before <= 3,
        "two collection calls (+ token)"
    );
    let mut n = 0;
    s.list("list_lead", Map::new(), None, |_| n += 1)
        .await
        .unwrap();
    assert_eq!(n, 253);
    emu.shutdown().await;
}

/// Pipedrive v2: person then deal (the deal gets the new person's id), dedupe by e-mail,
/// cursor paging.
#[tokio::test]
async fn pipedrive_person_and_deal_dedupe_and_cursor_paging() {
    let emu = sandbox::start(Vendor::Pipedrive, SandboxOptions::default())
        .await
        .unwrap();
    let s = session(
        spec("pipedrive"),
        &emu,
        &[("api_token", "api_token")],
        json!({"page_size": "2"}),
        true,
    );
    let rec = |i: usize, title: &str| {
        item(
            &format!("pd{i}"),
            json!({"person": {"name": format!("P{i}"), "email": format!("pd{i}@example.com"), "phone": "+15550001111"},
                   "deal": {"title": title, "value": 25000, "currency": "USD"}}),
        )
    };
    let d = Deliverer::new(s.clone(), None, opts(dd_on(&["email"]), "person"));
    let r = d.deliver((0..5).map(|i| rec(i, "Kitchen")).collect()).await;
    assert_eq!((r.created, r.failed), (10, 0), "{:?}", r.objects);
    let persons = emu.records("persons");
    let deals = emu.records("deals");
    assert_eq!((persons.len(), deals.len()), (5, 5));
    assert!(
        deals
            .iter()
            .all(|dl| persons.iter().any(|p| p["id"] == dl["person_id"])),
        "{deals:?}"
    );
    let r2 = d.deliver(vec![rec(1, "Bathroom")]).await;
    assert_eq!(r2.updated, 1, "{:?}", r2.objects);
    assert_eq!(emu.records("persons").len(), 5);
    let mut n = 0;
    let before = emu.stats().requests;
    s.list("list_person", Map::new(), None, |_| n += 1)
        .await
        .unwrap();
    assert_eq!(n, 5);
    assert_eq!(emu.stats().requests - before, 3, "pages of 2");
    emu.shutdown().await;
}

/// Zendesk: end users deduplicated by e-mail, tickets created, cursor paging.
#[tokio::test]
async fn zendesk_users_dedupe_tickets_and_cursor_paging() {
    let emu = sandbox::start(Vendor::Zendesk, SandboxOptions::default())
        .await
        .unwrap();
    let s = session(
        spec("zendesk"),
        &emu,
        &[("email", "email"), ("api_token", "api_token")],
        json!({"page_size": "2"}),
        true,
    );
    let user = |i: usize, name: &str| {
        item(
            &format!("zu{i}"),
            json!({"contact": {"name": name, "email": format!("zd{i}@example.com")}}),
        )
    };
    let d = Deliverer::new(s.clone(), None, opts(dd_on(&["email"]), "contact"));
    let r = d.deliver((0..3).map(|i| user(i, "Old")).collect()).await;
    assert_eq!((r.created, r.failed), (3, 0), "{:?}", r.objects);
    let r2 = d.deliver((0..3).map(|i| user(i, "New")).collect()).await;
    assert_eq!((r2.updated, r2.failed), (3, 0), "{:?}", r2.objects);
    let tickets = Deliverer::new(s.clone(), None, opts(None, "ticket"));
    let t = tickets
        .deliver(
            (0..5)
                .map(|i| item(&format!("zt{i}"), json!({"ticket": {"subject": format!("Help {i}"), "comment": {"body": "Order is late"}, "priority": "high", "requester": {"name": "Zed", "email": "zed@example.com"}}})))
                .collect(),
        )
        .await;
    assert_eq!((t.created, t.failed), (5, 0), "{:?}", t.objects);
    let mut n = 0;
    s.list("list_ticket", Map::new(), None, |_| n += 1)
        .await
        .unwrap();
    assert_eq!(n, 5);
    emu.shutdown().await;
}

/// Stripe: form-encoded customers deduplicated through search, `starting_after` paging, and
/// creates under 10% 5xx + 5% timeouts made exactly once by the Idempotency-Key.
#[tokio::test]
async fn stripe_dedupe_paging_and_idempotent_creates_under_faults() {
    // Search consistent at once: a rerun inside Stripe's search lag is
    // `stripe_rerun_with_changed_data_inside_the_search_lag_updates` below.
    let emu = sandbox::start(
        Vendor::Stripe,
        SandboxOptions {
            search_lag: std::time::Duration::ZERO,
            ..SandboxOptions::default()
        },
    )
    .await
    .unwrap();
    let s = session(
        spec("stripe"),
        &emu,
        &[("secret_key", "secret_key")],
        json!({"page_size": "2"}),
        true,
    );
    let cust = |i: usize, name: &str| {
        item(
            &format!("st{i}"),
            json!({"contact": {"email": format!("st{i}@example.com"), "name": name, "metadata": {"call_id": format!("c{i}")}}}),
        )
    };
    let d = Deliverer::new(s.clone(), None, opts(dd_on(&["email"]), "contact"));
    let r = d.deliver((0..3).map(|i| cust(i, "Ann")).collect()).await;
    assert_eq!((r.created, r.failed), (3, 0), "{:?}", r.objects);
    let r2 = d.deliver((0..3).map(|i| cust(i, "Bea")).collect()).await;
    assert_eq!((r2.updated, r2.failed), (3, 0), "{:?}", r2.objects);
    let mut n = 0;
    s.list("list_contact", Map::new(), None, |_| n += 1)
        .await
        .unwrap();
    assert_eq!(n, 3);
    emu.shutdown().await;

    let emu = sandbox::start(
        Vendor::Stripe,
        SandboxOptions {
            faults: FaultConfig {
                error_5xx_rate: 0.10,
                timeout_rate: 0.05,
                ..Default::default()
            },
            seed: 3,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let s = session(
        spec("stripe"),
        &emu,
        &[("secret_key", "secret_key")],
        json!({}),
        true,
    );
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(Store::open(&dir.path().join("s.sqlite")).unwrap());
    let d = Deliverer::new(s, Some(store.clone()), opts(None, "contact"));
    let n = 60;
    let r = d.deliver((0..n).map(|i| cust(i, "Cy")).collect()).await;
    let recs = emu.records("customers");
    let mut emails: Vec<&str> = recs.iter().map(|c| c["email"].as_str().unwrap()).collect();
    emails.sort();
    let total = emails.len();
    emails.dedup();
    assert_eq!(emails.len(), total, "no duplicates");
    assert_eq!(r.created + r.failed, n);
    assert_eq!(total, r.created);
    assert_eq!(store.dead_letters(true).unwrap().len(), r.failed);
    assert!(emu.stats().faults_total() > 0);
    emu.shutdown().await;
}

/// The README's main command: seed records mapped by the tenant's spec and delivered to the
/// HubSpot emulator; mapping rejects are reported, the rest end created or updated.
#[test]
fn run_maps_seed_records_and_delivers_them_to_the_sandbox() {
    let dir = tempfile::tempdir().unwrap();
    let report = dir.path().join("r.json");
    let out = crate::cli::switchyard()
        .args([
            "run",
            "--mapping",
            "mapping-specs/examples/hubspot-contact.json",
            "--input",
            "tests/mapping/records.ndjson",
            "--sandbox",
            "--store",
        ])
        .arg(dir.path().join("s.sqlite"))
        .arg("--report")
        .arg(&report)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    let r: Value = serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    let expected_mapped =
        std::fs::read_to_string(repo_root().join("tests/mapping/expected/hubspot-contact.ndjson"))
            .unwrap()
            .lines()
            .count();
    // Every mapped record ends created, updated, or skipped (`{}` maps to nothing); records
    // bring their deal (and company) along.
    let objects = r["objects"].as_array().unwrap();
    let delivered: std::collections::BTreeSet<&str> = objects
        .iter()
        .filter(|o| o["outcome"] != "failed")
        .map(|o| o["key"].as_str().unwrap())
        .collect();
    assert_eq!(delivered.len(), expected_mapped, "{stderr}");
    assert!(r["created"].as_u64().unwrap() > 0);
    assert!(
        objects
            .iter()
            .any(|o| o["object"] == "deal" && o["outcome"] == "created"),
        "{stderr}"
    );
    // Every line the mapping rejects is dead-lettered with its text (replayable), and those
    // are the only failures.
    assert!(r["failed"].as_u64().unwrap() > 0);
    assert_eq!(r["dead_lettered"], r["failed"]);
    assert!(
        r["actions"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a["action"] == "assign_owner" && a["status"] == "ran")
    );
}

#[test]
fn connectors_test_checks_credentials_and_reports_unresolved_secrets() {
    let ok = crate::cli::switchyard()
        .args([
            "connectors",
            "test",
            "hubspot",
            "--sandbox",
            "--tenant-config",
            "mapping-specs/examples/hubspot-contact.json",
        ])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&ok.stdout);
    assert!(
        ok.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    assert!(
        stdout.starts_with("hubspot\ttenant_TENANT_ID\tok\t200"),
        "{stdout}"
    );
    let bad = crate::cli::switchyard()
        .env_remove("SWITCHYARD_SECRETS")
        .args([
            "connectors",
            "test",
            "--tenant-config",
            "mapping-specs/examples/hubspot-contact.json",
        ])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&bad.stdout);
    assert_eq!(bad.status.code(), Some(3));
    assert!(
        stdout.contains("failed") && stdout.contains("secret:projects/PROJECT_ID"),
        "{stdout}"
    );
}

/// Seed 002's human handoff through the LiveChat spec, against a local server that checks
/// LiveChat's PAT Basic auth: `start_chat` carries the transcript and the context, then
/// `transfer_chat` moves the chat it started to the target group.
#[tokio::test]
async fn livechat_handoff_starts_a_chat_with_the_transcript_then_transfers_it() {
    use axum::{Router, http::HeaderMap, routing::post};
    let seen: Arc<std::sync::Mutex<Vec<(String, Value)>>> = Arc::default();
    let (s1, s2) = (seen.clone(), seen.clone());
    let auth_ok = |h: &HeaderMap| {
        h.get("authorization").and_then(|v| v.to_str().ok())
            == Some("Basic YWNjLTE6ZGFsOnBhdC1zZWNyZXQ=")
    };
    let app = Router::new()
        .route(
            "/v3.5/agent/action/start_chat",
            post(move |h: HeaderMap, axum::Json(v): axum::Json<Value>| {
                let s = s1.clone();
                async move {
                    if !auth_ok(&h) {
                        return (axum::http::StatusCode::UNAUTHORIZED, axum::Json(json!({"error": {"type": "authentication", "message": "bad"}})));
                    }
                    s.lock().unwrap().push(("start_chat".into(), v));
                    (axum::http::StatusCode::OK, axum::Json(json!({"chat_id": "PJ0MRSHTDG", "thread_id": "PGDGHT5G", "event_ids": ["e1"]})))
                }
            }),
        )
        .route(
            "/v3.5/agent/action/transfer_chat",
            post(move |axum::Json(v): axum::Json<Value>| {
                let s = s2.clone();
                async move {
                    s.lock().unwrap().push(("transfer_chat".into(), v));
                    axum::Json(json!({}))
                }
            }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    let c = Arc::new(Connector::compile(spec("livechat")).unwrap());
    let s = Runtime::new().session(
        c,
        Binding {
            tenant: "t".into(),
            config: json!({"group_id": 3}).as_object().cloned().unwrap(),
            secrets: HashMap::from([
                ("account_id".to_string(), Secret::new("acc-1")),
                (
                    "personal_access_token".to_string(),
                    Secret::new("dal:pat-secret"),
                ),
            ]),
            base_url: Some(format!("http://{addr}")),
        },
    );
    let handoff = item(
        "call_abc123",
        json!({
            "chat": {"customer_id": "cust-9", "call_id": "call_abc123", "customer_name": "Ahmed Al-Mansoori",
                     "customer_email": "ahmed@example.ae", "reason": "customer_request", "urgency": "medium",
                     "transcript": [{"role": "user", "text": "I need help with my order"},
                                    {"role": "bot", "text": "What's your order number?"},
                                    {"role": "user", "text": "ORD12345"}],
                     "metadata": {"order_id": "ORD12345", "language": "en"}},
            "transfer": {"target_type": "group", "target_id": 3}
        }),
    );
    let r = Deliverer::new(s, None, opts(None, "chat"))
        .deliver(vec![handoff])
        .await;
    assert_eq!((r.created, r.failed), (2, 0), "{:?}", r.objects);
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 2);
    let (op, start) = &seen[0];
    assert_eq!(op, "start_chat");
    assert_eq!(
        start["chat"]["users"][0],
        json!({"id": "cust-9", "type": "customer"})
    );
    assert_eq!(start["chat"]["access"]["group_ids"], json!([3]));
    let text = start["chat"]["thread"]["events"][0]["text"]
        .as_str()
        .unwrap();
    assert!(
        text.contains(
            "user: I need help with my order\nbot: What's your order number?\nuser: ORD12345"
        ),
        "{text}"
    );
    assert_eq!(
        start["chat"]["properties"]["handoff"]["customer_email"],
        "ahmed@example.ae"
    );
    assert_eq!(start["chat"]["properties"]["handoff"]["urgency"], "medium");
    let (op, transfer) = &seen[1];
    assert_eq!(op, "transfer_chat");
    assert_eq!(transfer["id"], "PJ0MRSHTDG");
    assert_eq!(transfer["target"], json!({"type": "group", "ids": [3]}));
}

/// Partial failures of batch calls come back per record: HubSpot 207 (`errors[]`, results
/// paired by e-mail) and Salesforce collections (HTTP 200, `success: false` in input order).
#[tokio::test]
async fn batch_partial_failures_fail_only_the_refused_records() {
    let emu = sandbox::start(Vendor::Hubspot, hubspot_emu_opts())
        .await
        .unwrap();
    let s = session(
        spec("hubspot"),
        &emu,
        &[("api_token", "access_token")],
        json!({}),
        true,
    );
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(Store::open(&dir.path().join("s.sqlite")).unwrap());
    let mut items: Vec<DeliveryItem> = (0..10).map(|i| contact(i, "Max")).collect();
    items[4].mapped.objects["contact"]["email"] = json!("not-an-email");
    let r = Deliverer::new(s, Some(store.clone()), opts(None, "contact"))
        .deliver(items)
        .await;
    assert_eq!(
        (r.created, r.failed, r.dead_lettered),
        (9, 1, 1),
        "{:?}",
        r.objects
    );
    // One batch call; the input HubSpot refused without saying which it was goes the
    // one-record way (a search, then its own create) and gets the vendor's reason for itself.
    assert_eq!(
        emu.stats().requests,
        3,
        "one batch call, then search + create of the refused one"
    );
    let dl = store.dead_letters(true).unwrap();
    assert_eq!(dl[0].record_key, "call_4");
    assert!(dl[0].reason.contains("not-an-email"), "{}", dl[0].reason);
    emu.shutdown().await;

    let emu = sandbox::start(Vendor::Salesforce, SandboxOptions::default())
        .await
        .unwrap();
    let creds = [
        ("consumer_key", "client_id"),
        ("private_key", "private_key_pem"),
        ("username", "username"),
    ];
    let s = session(spec("salesforce"), &emu, &creds, json!({}), true);
    let mut leads: Vec<DeliveryItem> = (0..5)
        .map(|i| {
            item(
                &format!("l{i}"),
                json!({"lead": {"LastName": format!("L{i}"), "Company": "Acme"}}),
            )
        })
        .collect();
    leads[2].mapped.objects["lead"].remove("LastName");
    let r = Deliverer::new(s, None, opts(None, "lead"))
        .deliver(leads)
        .await;
    assert_eq!((r.created, r.failed), (4, 1), "{:?}", r.objects);
    let failed = r
        .objects
        .iter()
        .find(|o| o.outcome == Outcome::Failed)
        .unwrap();
    assert_eq!(failed.key, "l2");
    assert!(
        failed.reason.as_deref().unwrap().contains("LastName"),
        "{failed:?}"
    );
    assert_eq!(emu.records("Lead").len(), 4);
    emu.shutdown().await;
}

/// A create whose outcome is unknown and cannot be checked is dead-lettered, never retried
/// blind; `switchyard deadletter replay` sends it again once the vendor is back.
#[tokio::test]
async fn unknown_outcomes_are_dead_lettered_and_replayed_by_the_cli() {
    use switchyard_sandbox::{FaultKind, ScriptedFault};
    let emu = sandbox::start(
        Vendor::Hubspot,
        SandboxOptions {
            faults: FaultConfig {
                script: vec![ScriptedFault {
                    request: 1,
                    fault: FaultKind::ServerError { status: 503 },
                }],
                ..Default::default()
            },
            ..hubspot_emu_opts()
        },
    )
    .await
    .unwrap();
    let s = session(
        spec("hubspot"),
        &emu,
        &[("api_token", "access_token")],
        json!({}),
        true,
    );
    let dir = tempfile::tempdir().unwrap();
    let store_path = dir.path().join("s.sqlite");
    let store = Arc::new(Store::open(&store_path).unwrap());
    let route = dir.path().join("route.json");
    std::fs::write(
        &route,
        json!({"spec_version": 1, "tenant": "tenant_test", "connector": "hubspot",
               "crm_config": {"type": "hubspot", "api_token": emu.credentials().get("access_token").unwrap(),
                              "settings": {"base_url": emu.base_url()}}})
        .to_string(),
    )
    .unwrap();
    let d = Deliverer::new(
        s,
        Some(store.clone()),
        DeliveryOptions {
            route: route.display().to_string(),
            batch: false,
            ..opts(None, "deal")
        },
    );
    // Deals have no field to search by (contacts would be reconciled by e-mail, companies by
    // domain).
    let deal = item(
        "co1",
        json!({"deal": {"dealname": "Acme", "pipeline": "default", "dealstage": "appointmentscheduled"}}),
    );
    let r = d.deliver(vec![deal]).await;
    assert_eq!((r.created, r.dead_lettered), (0, 1), "{:?}", r.objects);
    let dl = store.dead_letters(true).unwrap();
    assert!(dl[0].reason.contains("outcome unknown"), "{}", dl[0].reason);
    assert_eq!(emu.stats().requests, 1, "not retried blind");
    drop(store);

    // A plain replay keeps the promise: nothing to look the deal up by, so it is not sent.
    let replay = |extra: &'static [&'static str]| {
        let store_arg = store_path.clone();
        tokio::task::spawn_blocking(move || {
            crate::cli::switchyard()
                .args(["deadletter", "replay", "--store"])
                .arg(&store_arg)
                .args(extra)
                .output()
                .unwrap()
        })
    };
    let out = replay(&[]).await.unwrap();
    assert_eq!(out.status.code(), Some(3));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("outcome is unknown"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(emu.records("deals").len(), 0);
    // The operator checked the CRM: it was not created.
    let out = replay(&["--assume-not-created"]).await.unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(emu.records("deals").len(), 1);
    let store = Store::open(&store_path).unwrap();
    assert!(store.dead_letters(true).unwrap().is_empty());
    assert_eq!(store.dead_letters(false).unwrap()[0].status, "delivered");
    emu.shutdown().await;
}

/// A token the vendor no longer accepts (revoked, or persisted by another process) is
/// refreshed once on the 401 and the request goes through.
#[tokio::test]
async fn oauth_refreshes_once_on_401() {
    use switchyard::spec::connector::{Auth, CredentialsIn};
    let emu = sandbox::start(Vendor::Hubspot, hubspot_emu_opts())
        .await
        .unwrap();
    let mut sp = spec("hubspot");
    for k in ["client_id", "client_secret", "refresh_token"] {
        sp.secrets.insert(
            k.into(),
            switchyard::spec::connector::SecretParam {
                description: None,
                required: true,
            },
        );
    }
    sp.auth = Some(Auth::Oauth2Refresh {
        token_url: "https://api.hubapi.com/oauth/v1/token".into(),
        client_id: "{{secrets.client_id}}".into(),
        client_secret: "{{secrets.client_secret}}".into(),
        refresh_token: "{{secrets.refresh_token}}".into(),
        scheme: None,
        credentials_in: CredentialsIn::Body,
        refresh_ahead_secs: 60,
        base_url_field: None,
    });
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(
        Store::open(&dir.path().join("s.sqlite"))
            .unwrap()
            .with_key("k"),
    );
    let far = chrono::Utc::now().timestamp() + 3600;
    store
        .put_token(
            "tenant_test",
            "hubspot",
            &json!({"access_token": "revoked-token", "expires_at": far}),
        )
        .unwrap();
    let creds = [
        ("client_id", "client_id"),
        ("client_secret", "client_secret"),
        ("refresh_token", "refresh_token"),
    ];
    let s = session(sp, &emu, &creds, json!({}), true).with_token_store(store.clone());
    let d = Deliverer::new(
        s,
        None,
        DeliveryOptions {
            batch: false,
            ..opts(None, "contact")
        },
    );
    let r = d.deliver(vec![contact(1, "Oz")]).await;
    assert_eq!(r.created, 1, "{:?}", r.objects);
    let st = emu.stats();
    assert_eq!(st.by_status.get(&401).copied(), Some(1), "{st:?}");
    assert_eq!(st.requests, 3, "401, token refresh, create");
    let saved = store.get_token("tenant_test", "hubspot").unwrap().unwrap();
    assert_ne!(saved["access_token"], "revoked-token");
    emu.shutdown().await;
}

/// Seed 001's "test all connections" against every emulator (Salesforce through the JWT
/// bearer flow), with no tenant config.
#[test]
fn connectors_test_all_emulated_connections() {
    let out = crate::cli::switchyard()
        .args([
            "connectors",
            "test",
            "--sandbox",
            "hubspot",
            "salesforce",
            "pipedrive",
            "zendesk",
            "stripe",
        ])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        stdout.lines().filter(|l| l.contains("\tok\t200")).count(),
        5,
        "{stdout}"
    );
    let out = crate::cli::switchyard()
        .args(["connectors", "test", "zoho"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(3));
    assert!(
        stdout.contains("missing secrets.client_id, secrets.client_secret, secrets.refresh_token"),
        "{stdout}"
    );
}

/// Pipedrive v1 leads (UUID ids) for a new v2 person, paged by `start`/`next_start`.
#[tokio::test]
async fn pipedrive_v1_leads_page_by_offset() {
    let emu = sandbox::start(Vendor::Pipedrive, SandboxOptions::default())
        .await
        .unwrap();
    let s = session(
        spec("pipedrive"),
        &emu,
        &[("api_token", "api_token")],
        json!({"page_size": "2"}),
        true,
    );
    let recs: Vec<DeliveryItem> = (0..5)
        .map(|i| {
            item(
                &format!("pl{i}"),
                json!({"person": {"name": format!("Lead Person {i}"), "email": format!("pl{i}@example.com")},
                       "lead": {"title": format!("Kitchen {i}"), "value": {"amount": 25000, "currency": "USD"}}}),
            )
        })
        .collect();
    let r = Deliverer::new(s.clone(), None, opts(None, "person"))
        .deliver(recs)
        .await;
    assert_eq!((r.created, r.failed), (10, 0), "{:?}", r.objects);
    let lead_ids: Vec<&str> = r
        .objects
        .iter()
        .filter(|o| o.object == "lead")
        .filter_map(|o| o.id.as_deref())
        .collect();
    assert!(
        lead_ids.iter().all(|id| id.len() == 36),
        "UUIDs: {lead_ids:?}"
    );
    let before = emu.stats().requests;
    let mut n = 0;
    s.list("list_lead", Map::new(), None, |_| n += 1)
        .await
        .unwrap();
    assert_eq!(n, 5);
    assert_eq!(emu.stats().requests - before, 3, "pages of 2 by start");
    emu.shutdown().await;
}

/// Incremental sync beyond HubSpot: Salesforce (SOQL `LastModifiedDate >`), Pipedrive
/// (`updated_since`) and Stripe (`created[gt]`); a second run brings nothing new.
#[tokio::test]
async fn incremental_sync_on_salesforce_pipedrive_and_stripe() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("s.sqlite")).unwrap();

    let emu = sandbox::start(Vendor::Salesforce, SandboxOptions::default())
        .await
        .unwrap();
    let creds = [
        ("consumer_key", "client_id"),
        ("private_key", "private_key_pem"),
        ("username", "username"),
    ];
    let s = session(spec("salesforce"), &emu, &creds, json!({}), true);
    let leads = (0..3)
        .map(|i| {
            item(
                &format!("s{i}"),
                json!({"lead": {"LastName": format!("L{i}"), "Company": "Acme"}}),
            )
        })
        .collect();
    Deliverer::new(s.clone(), None, opts(None, "lead"))
        .deliver(leads)
        .await;
    let first = connector::sync::pull(&s, Some(&store), "lead", None, None)
        .await
        .unwrap();
    assert_eq!(first.records.len(), 3);
    let again = connector::sync::pull(&s, Some(&store), "lead", None, None)
        .await
        .unwrap();
    assert!(again.records.is_empty(), "{:?}", again.records);
    emu.shutdown().await;

    let emu = sandbox::start(Vendor::Pipedrive, SandboxOptions::default())
        .await
        .unwrap();
    let s = session(
        spec("pipedrive"),
        &emu,
        &[("api_token", "api_token")],
        json!({}),
        true,
    );
    let persons = (0..2)
        .map(|i| {
            item(
                &format!("p{i}"),
                json!({"person": {"name": format!("P{i}")}}),
            )
        })
        .collect();
    Deliverer::new(s.clone(), None, opts(None, "person"))
        .deliver(persons)
        .await;
    let first = connector::sync::pull(&s, Some(&store), "person", None, None)
        .await
        .unwrap();
    assert_eq!(first.records.len(), 2);
    let again = connector::sync::pull(&s, Some(&store), "person", None, None)
        .await
        .unwrap();
    assert!(again.records.is_empty(), "{:?}", again.records);
    emu.shutdown().await;

    let emu = sandbox::start(Vendor::Stripe, SandboxOptions::default())
        .await
        .unwrap();
    let s = session(
        spec("stripe"),
        &emu,
        &[("secret_key", "secret_key")],
        json!({}),
        true,
    );
    let custs = (0..4)
        .map(|i| {
            item(
                &format!("c{i}"),
                json!({"contact": {"email": format!("c{i}@example.com")}}),
            )
        })
        .collect();
    Deliverer::new(s.clone(), None, opts(None, "contact"))
        .deliver(custs)
        .await;
    let first = connector::sync::pull(&s, Some(&store), "contact", None, None)
        .await
        .unwrap();
    assert_eq!(first.records.len(), 4);
    let again = connector::sync::pull(&s, Some(&store), "contact", None, None)
        .await
        .unwrap();
    assert!(again.records.is_empty(), "{:?}", again.records);
    emu.shutdown().await;
}

#[test]
fn validate_reports_graphql_without_document_and_batch_without_settings() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("bad.toml");
    std::fs::write(
        &p,
        r#"spec_version = 1
[connector]
name = "bad"
kind = "custom"
base_url = "https://x.example"
[objects.item.fields]
name = "string"
[operations.create_item]
object = "item"
kind = "create"
path = "/"
encoding = "graphql"
[operations.batch_create_item]
object = "item"
kind = "batch_create"
path = "/batch"
"#,
    )
    .unwrap();
    let out = crate::cli::switchyard()
        .arg("validate")
        .arg(&p)
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.contains("E230") && text.contains("/operations/create_item/graphql"),
        "{text}"
    );
    assert!(
        text.contains("E231") && text.contains("/operations/batch_create_item/batch"),
        "{text}"
    );
}

/// Issue 19 (found when the emulators' search began to lag writes as Stripe's does, "usually
/// under a minute"): a second delivery of the same records with changed data, before the first
/// run's customers are searchable and without a store, finds no duplicate and creates again
/// with the same Idempotency-Key and other parameters; Stripe refuses that with 400
/// `idempotency_error`, which the spec declares as `errors.created_before`: the engine looks
/// the customers up again (waiting out the lag) and updates them — no failure, no duplicate.
#[tokio::test]
async fn stripe_rerun_with_changed_data_inside_the_search_lag_updates() {
    let emu = sandbox::start(Vendor::Stripe, SandboxOptions::default())
        .await
        .unwrap();
    let s = session(
        spec("stripe"),
        &emu,
        &[("secret_key", "secret_key")],
        json!({}),
        true,
    );
    let cust = |i: usize, name: &str| {
        item(
            &format!("st{i}"),
            json!({"contact": {"email": format!("st{i}@example.com"), "name": name}}),
        )
    };
    let d = Deliverer::new(s.clone(), None, opts(dd_on(&["email"]), "contact"));
    let r = d.deliver((0..3).map(|i| cust(i, "Ann")).collect()).await;
    assert_eq!((r.created, r.failed), (3, 0), "{:?}", r.objects);
    let r2 = d.deliver((0..3).map(|i| cust(i, "Bea")).collect()).await;
    assert_eq!((r2.updated, r2.failed), (3, 0), "{:?}", r2.objects);
    let customers = emu.records("customers");
    assert_eq!(customers.len(), 3);
    assert!(
        customers.iter().all(|c| c["name"] == "Bea"),
        "{customers:?}"
    );
    emu.shutdown().await;
}

/// Issue 19: HubSpot's CRM search has a limit of its own (5 a second). The connector spec
/// gives the search operations a budget of their own (`[rate_limit.classes.search]`), so
/// that many searches at once are paced within it (no 429); and a search that is throttled
/// anyway (here a spec whose class is set too high) pauses searches only, not the rest of
/// the connector's requests.
#[tokio::test]
async fn searches_stay_within_their_budget_and_a_search_429_slows_only_searches() {
    let emu = sandbox::start(
        Vendor::Hubspot,
        SandboxOptions {
            search_rate_limit: Vendor::Hubspot.search_rate_limit(),
            ..hubspot_emu_opts()
        },
    )
    .await
    .unwrap();
    let search = |s: Session, i: usize| async move {
        let mut vars = Map::new();
        vars.insert(
            "match".into(),
            json!({"field": "email", "value": format!("nobody{i}@example.com")}),
        );
        s.list("search_contact", vars, Some(10), |_| {}).await
    };
    // The shipped spec: 12 searches at once take a few seconds, and none is refused.
    let s = session(
        spec("hubspot"),
        &emu,
        &[("api_token", "access_token")],
        json!({}),
        false,
    );
    let start = std::time::Instant::now();
    let all = futures::future::join_all((0..12).map(|i| search(s.clone(), i))).await;
    assert!(all.iter().all(Result::is_ok), "{all:?}");
    let st = emu.stats();
    assert_eq!((st.searches, st.search_throttled, st.throttled), (12, 0, 0));
    assert!(start.elapsed().as_secs_f64() > 2.0, "{:?}", start.elapsed());

    // A class set above the vendor's limit: searches meet 429s (Retry-After 1 s) and wait;
    // a list request sent meanwhile is not held back by their pause.
    // (The general budget is lifted too, so that nothing but a pause could hold the list.)
    let mut too_high = spec("hubspot");
    let rl = too_high.rate_limit.as_mut().unwrap();
    (rl.requests, rl.per_seconds) = (2000, 1);
    rl.classes.get_mut("search").unwrap().requests = 1000;
    let s = session(
        too_high,
        &emu,
        &[("api_token", "access_token")],
        json!({}),
        false,
    );
    let searches = tokio::spawn({
        let s = s.clone();
        async move { futures::future::join_all((0..12).map(|i| search(s.clone(), i))).await }
    });
    let waited = std::time::Instant::now();
    while emu.stats().search_throttled == st.search_throttled {
        assert!(waited.elapsed().as_secs() < 10, "no search was throttled");
        tokio::time::sleep(std::time::Duration::from_millis(2)).await;
    }
    let t = std::time::Instant::now();
    let n = s
        .list("list_contact", Map::new(), Some(1), |_| {})
        .await
        .unwrap();
    let listed_in = t.elapsed();
    assert_eq!(n, 0);
    assert!(
        listed_in < std::time::Duration::from_millis(500),
        "the list waited {listed_in:?} for the searches' pause"
    );
    let all = searches.await.unwrap();
    assert!(all.iter().all(Result::is_ok), "{all:?}");
    assert!(emu.stats().search_throttled > st.search_throttled);
    emu.shutdown().await;
}
