//! The chaos test of exactly-once delivery: 3,000 records (`CHAOS_RECORDS`) through the
//! HubSpot emulator with faults (10% 5xx, 3% timeouts, 5% dropped connections, 5% truncated
//! answers), on the batch path and on the duplicate-detection path. The `switchyard run`
//! process is SIGKILLed at three points and rerun; the emulator then forgets everything and
//! gives the old ids to strangers (a reset portal) and the input is run again; then two runs
//! overlap (one of the same file, one of a copy). Throughout: every record is in the CRM at
//! most once, and in the CRM or in the dead letters with its reason; bystanders (contacts that
//! are not ours) never change. A last clean pass leaves every record in the CRM exactly once
//! and no dead letter pending.

#![allow(clippy::unwrap_used)]

use serde_json::{Value, json};
use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::Duration;
use switchyard::store::Store;
use switchyard_sandbox::{self as sandbox, FaultConfig, SandboxOptions, Vendor};

fn faults() -> FaultConfig {
    FaultConfig {
        error_5xx_rate: 0.10,
        timeout_rate: 0.03,
        drop_rate: 0.05,
        malformed_rate: 0.05,
        ..Default::default()
    }
}

fn records() -> usize {
    std::env::var("CHAOS_RECORDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(3000)
}

/// The shipped HubSpot spec, paced for the emulator, with short timeouts and retries.
fn connectors(dir: &Path) -> PathBuf {
    let out = dir.join("connectors");
    std::fs::create_dir_all(&out).unwrap();
    let text = std::fs::read_to_string(
        crate::cli::repo_root().join("connector-specs/hubspot.toml"),
    )
    .unwrap()
    .replace(
        "requests = 100\nper_seconds = 10",
        "requests = 100000\nper_seconds = 1",
    )
    .replace(
        "[rate_limit.classes.search]\nrequests = 5\n",
        "[rate_limit.classes.search]\nrequests = 100000\n",
    )
    .replace(
        "max_attempts = 5\ninitial_backoff_ms = 200\nmax_backoff_ms = 10000\ntimeout_ms = 10000",
        "max_attempts = 6\ninitial_backoff_ms = 10\nmax_backoff_ms = 100\ntimeout_ms = 1500",
    );
    assert!(
        text.contains("timeout_ms = 1500"),
        "the retry section moved"
    );
    std::fs::write(out.join("hubspot.toml"), text).unwrap();
    out
}

struct Bench {
    dir: tempfile::TempDir,
    connectors: PathBuf,
    route: PathBuf,
    input: PathBuf,
    copy: PathBuf,
    store: PathBuf,
    emu: Option<sandbox::Emulator>,
    port: u16,
    n: usize,
    /// Contacts that are not ours: id → properties, as they must stay.
    bystanders: BTreeMap<String, Value>,
}

impl Bench {
    async fn new(dedupe: bool) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let n = records();
        let emu = sandbox::start(Vendor::Hubspot, opts(None, faults()))
            .await
            .unwrap();
        let port = emu.base_url().rsplit(':').next().unwrap().parse().unwrap();
        let connectors = connectors(dir.path());
        let mut crm = json!({
            "type": "hubspot",
            "api_token": emu.credentials().get("access_token").unwrap(),
            "settings": {"base_url": emu.base_url()},
            "field_mappings": {"email": "email", "firstname": "first", "lastname": "last"},
        });
        if dedupe {
            crm["duplicate_detection"] = json!({"enabled": true, "match_fields": ["email"]});
        }
        let route = dir.path().join("route.json");
        std::fs::write(
            &route,
            json!({"spec_version": 1, "tenant": "chaos", "connector": "hubspot", "crm_config": crm}).to_string(),
        )
        .unwrap();
        let text: String = (0..n)
            .map(|i| format!("{{\"id\": \"rec{i}\", \"email\": \"person{i}@example.com\", \"first\": \"P{i}\", \"last\": \"L{i}\"}}\n"))
            .collect();
        let input = dir.path().join("in.ndjson");
        std::fs::write(&input, &text).unwrap();
        let copy = dir.path().join("copy.ndjson");
        std::fs::write(&copy, &text).unwrap();
        let store = dir.path().join("s.sqlite");
        let mut b = Self {
            dir,
            connectors,
            route,
            input,
            copy,
            store,
            emu: Some(emu),
            port,
            n,
            bystanders: BTreeMap::new(),
        };
        b.seed_bystanders(
            (0..40)
                .map(|i| {
                    (
                        format!("{}", 900_000 + i),
                        format!("bystander{i}@other.example"),
                    )
                })
                .collect(),
        );
        b
    }

    fn emu(&self) -> &sandbox::Emulator {
        self.emu.as_ref().unwrap()
    }

    fn seed_bystanders(&mut self, people: Vec<(String, String)>) {
        let recs: Vec<Value> = people
            .iter()
            .map(|(id, email)| json!({"id": id, "properties": {"email": email, "firstname": "Bystander"}}))
            .collect();
        self.emu().seed("contacts", &recs).unwrap();
        for (id, email) in people {
            self.bystanders
                .insert(id, json!({"email": email, "firstname": "Bystander"}));
        }
    }

    fn run(&self, input: &Path) -> std::process::Child {
        crate::cli::switchyard()
            .args(["run", "--concurrency", "32", "--mapping"])
            .arg(&self.route)
            .arg("--input")
            .arg(input)
            .arg("--store")
            .arg(&self.store)
            .arg("--connectors")
            .arg(&self.connectors)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    }

    /// A run SIGKILLed once the emulator has seen `after` more requests.
    async fn killed_run(&self, after: u64) {
        let start = self.emu().stats().requests;
        let mut child = self.run(&self.input);
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                // Finished before the kill point: fine, but say so.
                eprintln!("chaos: run ended ({status}) before {after} requests");
                return;
            }
            if self.emu().stats().requests - start >= after {
                child.kill().unwrap();
                child.wait().unwrap();
                return;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    async fn full_run(&self, input: &Path) -> std::process::Output {
        let child = self.run(input);
        tokio::task::spawn_blocking(move || child.wait_with_output().unwrap())
            .await
            .unwrap()
    }

    /// The CRM forgets everything; the ids it gave our records now belong to strangers.
    async fn reset(&mut self) {
        let ours: Vec<(String, String)> = self
            .emu()
            .records("contacts")
            .iter()
            .filter(|c| !self.bystanders.contains_key(c["id"].as_str().unwrap()))
            .enumerate()
            .map(|(i, c)| {
                (
                    c["id"].as_str().unwrap().to_string(),
                    format!("stranger{i}@elsewhere.example"),
                )
            })
            .collect();
        let old = std::mem::take(&mut self.bystanders);
        self.emu.take().unwrap().shutdown().await;
        self.emu = Some(
            sandbox::start(Vendor::Hubspot, opts(Some(self.port), faults()))
                .await
                .unwrap(),
        );
        let mut people: Vec<(String, String)> = old
            .into_iter()
            .map(|(id, p)| (id, p["email"].as_str().unwrap().to_string()))
            .collect();
        people.extend(ours);
        self.seed_bystanders(people);
    }

    /// Every record at most once in the CRM; after a complete run also in the CRM or pending in
    /// the dead letters (both only when the record's object exists and only its update is
    /// pending); bystanders as they were. Returns (in the CRM, pending dead letters).
    fn check(&self, label: &str, complete: bool) -> (usize, usize) {
        let contacts = self.emu().records("contacts");
        let mut seen = HashSet::new();
        for c in &contacts {
            let id = c["id"].as_str().unwrap();
            let email = c["properties"]["email"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            if let Some(p) = self.bystanders.get(id) {
                assert_eq!(
                    c["properties"]["email"], p["email"],
                    "{label}: bystander {id} changed: {c}"
                );
                assert_eq!(
                    c["properties"]["firstname"], p["firstname"],
                    "{label}: bystander {id} changed: {c}"
                );
                continue;
            }
            assert!(
                email.starts_with("person"),
                "{label}: a contact that is neither ours nor a bystander: {c}"
            );
            assert!(
                seen.insert(email.clone()),
                "{label}: {email} is in the CRM twice"
            );
        }
        let s = Store::open(&self.store).unwrap();
        let ns = format!("hubspot@{}", self.emu().base_url());
        let pending = s.dead_letters(true).unwrap();
        let mut dead = HashSet::new();
        for d in &pending {
            assert!(
                !d.reason.is_empty(),
                "{label}: a dead letter without a reason"
            );
            let i: usize = d.record_key.trim_start_matches("rec").parse().unwrap();
            let email = format!("person{i}@example.com");
            if seen.contains(&email) {
                // In the CRM and dead-lettered: only an update that failed on a delivered
                // record, or a create whose outcome the engine says it does not know (a request
                // the client gave up on can still be carried out by the vendor after the
                // lookup; the next run looks again).
                let state = s
                    .delivery_state("chaos", &ns, &d.object, &d.record_key)
                    .unwrap();
                let update_failed = matches!(&state, Some((st, _)) if st == "done");
                let unknown = matches!(&state, Some((st, _)) if st == "pending")
                    && d.reason.contains("unknown");
                assert!(
                    update_failed || unknown,
                    "{label}: {email} is in the CRM and dead-lettered ({}), state {state:?}",
                    d.reason
                );
            }
            dead.insert(email);
        }
        for i in (0..self.n).filter(|_| complete) {
            let email = format!("person{i}@example.com");
            assert!(
                seen.contains(&email) || dead.contains(&email),
                "{label}: {email} is neither in the CRM nor in the dead letters"
            );
        }
        eprintln!(
            "chaos {label}: {} in the CRM, {} dead letters pending, emulator {:?}",
            seen.len(),
            pending.len(),
            self.emu().stats().faults
        );
        (seen.len(), pending.len())
    }
}

fn opts(port: Option<u16>, faults: FaultConfig) -> SandboxOptions {
    SandboxOptions {
        port,
        faults,
        rate_limit: Some(switchyard_sandbox::RateLimitOverride {
            requests: 100_000,
            per: Duration::from_secs(1),
        }),
        seed: 7,
        ..Default::default()
    }
}

/// The two chaos tests run one after the other (each loads the machine on its own).
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

async fn chaos(dedupe: bool) {
    let _one = ONE_AT_A_TIME.lock().await;
    let path = if dedupe { "dedupe" } else { "batch" };
    let mut b = Bench::new(dedupe).await;
    // Kill points, in requests the emulator sees: early, middle, late of one pass.
    let pass = if dedupe {
        2 * b.n as u64
    } else {
        (b.n as u64 / 100).max(3)
    };
    for (k, frac) in [0.1, 0.35, 0.6].into_iter().enumerate() {
        b.killed_run((pass as f64 * frac) as u64).await;
        // A killed run leaves records it never reached: neither in the CRM nor dead-lettered.
        b.check(&format!("{path}: after kill {}", k + 1), false);
    }
    let out = b.full_run(&b.input).await;
    assert!(
        matches!(out.status.code(), Some(0 | 3)),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    b.check(&format!("{path}: after the rerun"), true);

    b.reset().await;
    let out = b.full_run(&b.input).await;
    assert!(
        matches!(out.status.code(), Some(0 | 3)),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    b.check(&format!("{path}: after the reset and a rerun"), true);

    // Two overlapping runs: the same file again (refused while the first lives), and a copy.
    let first = b.run(&b.input);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let same = b.full_run(&b.input).await;
    let copy = b.full_run(&b.copy).await;
    let first = tokio::task::spawn_blocking(move || first.wait_with_output().unwrap())
        .await
        .unwrap();
    for (name, o) in [("first", &first), ("copy", &copy)] {
        assert!(
            matches!(o.status.code(), Some(0 | 3)),
            "{name}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    }
    // The same input either finished before the first run started delivering, or was refused.
    assert!(
        matches!(same.status.code(), Some(0 | 2 | 3)),
        "{}",
        String::from_utf8_lossy(&same.stderr)
    );
    b.check(&format!("{path}: after two overlapping runs"), true);

    // A clean pass: everything in the CRM exactly once, nothing pending.
    b.emu().set_faults(FaultConfig::default()).unwrap();
    let out = b.full_run(&b.input).await;
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (in_crm, pending) = b.check(&format!("{path}: after a clean pass"), true);
    assert_eq!((in_crm, pending), (b.n, 0), "{path}");
    let _ = &b.dir;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chaos_batch_path_every_record_once_or_dead_lettered() {
    chaos(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chaos_dedupe_path_every_record_once_or_dead_lettered() {
    chaos(true).await;
}
