//! The vendor emulators over real HTTP: state, pagination, auth, throttling and faults.

use reqwest::{Client, StatusCode};
use serde_json::{Value, json};
use std::time::Duration;
use switchyard::sandbox::{
    self, Emulator, FaultConfig, FaultKind, RateLimitOverride, SandboxOptions, ScriptedFault,
    Vendor,
};

fn client() -> Client {
    Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("client")
}

async fn emu(vendor: Vendor) -> Emulator {
    sandbox::start(vendor, SandboxOptions::default())
        .await
        .expect("emulator starts")
}

async fn emu_with(vendor: Vendor, opts: SandboxOptions) -> Emulator {
    sandbox::start(vendor, opts).await.expect("emulator starts")
}

fn script(faults: &[(u64, FaultKind)]) -> SandboxOptions {
    SandboxOptions {
        faults: FaultConfig {
            script: faults
                .iter()
                .map(|(n, f)| ScriptedFault {
                    request: *n,
                    fault: *f,
                })
                .collect(),
            ..FaultConfig::default()
        },
        ..SandboxOptions::default()
    }
}

fn cred(e: &Emulator, k: &str) -> String {
    e.credentials().get(k).expect("credential").to_string()
}

// ------------------------------------------------------------------------------- HubSpot

struct Hs {
    e: Emulator,
    c: Client,
    token: String,
}

impl Hs {
    async fn new(opts: SandboxOptions) -> Self {
        let e = emu_with(Vendor::Hubspot, opts).await;
        let token = cred(&e, "access_token");
        Hs {
            e,
            c: client(),
            token,
        }
    }

    async fn send(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut r = self
            .c
            .request(method, format!("{}{path}", self.e.base_url()))
            .bearer_auth(&self.token);
        if let Some(b) = body {
            r = r.json(&b);
        }
        let resp = r.send().await.expect("request");
        let status = resp.status().as_u16();
        let text = resp.text().await.expect("body");
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }
}

#[tokio::test]
async fn hubspot_contacts_create_read_search_list_update() {
    let hs = Hs::new(SandboxOptions::default()).await;
    use reqwest::Method as M;
    let (s, created) = hs
        .send(
            M::POST,
            "/crm/v3/objects/contacts",
            Some(
                json!({"properties": {"email": "Ada@Example.com", "firstname": "Ada",
                                       "lead_score": 91}}),
            ),
        )
        .await;
    assert_eq!(s, 201, "{created}");
    let id = created["id"].as_str().expect("id").to_string();
    assert_eq!(
        created["properties"]["lead_score"], "91",
        "values become strings"
    );

    let (s, read) = hs
        .send(
            M::GET,
            &format!("/crm/v3/objects/contacts/{id}?properties=lead_score"),
            None,
        )
        .await;
    assert_eq!(s, 200);
    assert_eq!(read["properties"]["firstname"], "Ada");
    assert_eq!(read["properties"]["lead_score"], "91");
    let (s, by_email) = hs
        .send(
            M::GET,
            "/crm/v3/objects/contacts/ada@example.com?idProperty=email",
            None,
        )
        .await;
    assert_eq!((s, by_email["id"].as_str()), (200, Some(id.as_str())));

    // Duplicate e-mail: 409 CONFLICT naming the existing id.
    let (s, dup) = hs
        .send(
            M::POST,
            "/crm/v3/objects/contacts",
            Some(json!({"properties": {"email": "ada@example.com"}})),
        )
        .await;
    assert_eq!(s, 409);
    assert_eq!(dup["category"], "CONFLICT");
    assert!(dup["message"].as_str().unwrap_or_default().contains(&id));

    // Invalid e-mail: 400 VALIDATION_ERROR.
    let (s, bad) = hs
        .send(
            M::POST,
            "/crm/v3/objects/contacts",
            Some(json!({"properties": {"email": "not-an-email"}})),
        )
        .await;
    assert_eq!(
        (s, bad["category"].as_str()),
        (400, Some("VALIDATION_ERROR"))
    );

    let (s, upd) = hs
        .send(
            M::PATCH,
            &format!("/crm/v3/objects/contacts/{id}"),
            Some(json!({"properties": {"lastname": "Lovelace"}})),
        )
        .await;
    assert_eq!(
        (s, upd["properties"]["lastname"].as_str()),
        (200, Some("Lovelace"))
    );

    // 24 more contacts, then list 10 per page: 3 pages, every id once.
    for i in 0..24 {
        let (s, _) = hs
            .send(M::POST, "/crm/v3/objects/contacts",
                  Some(json!({"properties": {"email": format!("p{i}@example.com"),
                                             "lifecyclestage": if i % 2 == 0 { "lead" } else { "customer" }}})))
            .await;
        assert_eq!(s, 201);
    }
    let mut seen = Vec::new();
    let mut after: Option<String> = None;
    let mut pages = 0;
    loop {
        let path = match &after {
            Some(a) => format!("/crm/v3/objects/contacts?limit=10&after={a}"),
            None => "/crm/v3/objects/contacts?limit=10".to_string(),
        };
        let (s, page) = hs.send(M::GET, &path, None).await;
        assert_eq!(s, 200);
        pages += 1;
        for r in page["results"].as_array().expect("results") {
            seen.push(r["id"].as_str().expect("id").to_string());
        }
        match page["paging"]["next"]["after"].as_str() {
            Some(a) => after = Some(a.to_string()),
            None => break,
        }
    }
    assert_eq!(pages, 3);
    assert_eq!(seen.len(), 25);
    seen.dedup();
    assert_eq!(seen.len(), 25);

    // Search: EQ on email (case-insensitive), IN, paging with `after` in the body.
    let (s, found) = hs
        .send(
            M::POST,
            "/crm/v3/objects/contacts/search",
            Some(json!({"filterGroups": [{"filters": [
                  {"propertyName": "email", "operator": "EQ", "value": "ADA@example.com"}]}],
                  "properties": ["email", "lastname"]})),
        )
        .await;
    assert_eq!(s, 200);
    assert_eq!(found["total"], 1);
    assert_eq!(found["results"][0]["properties"]["lastname"], "Lovelace");
    let mut total_seen = 0;
    let mut after = Value::Null;
    let mut search_pages = 0;
    loop {
        let (s, page) = hs
            .send(
                M::POST,
                "/crm/v3/objects/contacts/search",
                Some(json!({"filterGroups": [{"filters": [
                      {"propertyName": "lifecyclestage", "operator": "IN", "values": ["lead"]}]}],
                      "limit": 5, "after": after})),
            )
            .await;
        assert_eq!(s, 200, "{page}");
        assert_eq!(page["total"], 12);
        search_pages += 1;
        total_seen += page["results"].as_array().map_or(0, Vec::len);
        match page["paging"]["next"]["after"].as_str() {
            Some(a) => after = json!(a),
            None => break,
        }
    }
    assert_eq!((search_pages, total_seen), (3, 12));

    let (s, _) = hs
        .send(M::DELETE, &format!("/crm/v3/objects/contacts/{id}"), None)
        .await;
    assert_eq!(s, 204);
    let (s, gone) = hs
        .send(M::GET, &format!("/crm/v3/objects/contacts/{id}"), None)
        .await;
    assert_eq!(
        (s, gone["category"].as_str()),
        (404, Some("OBJECT_NOT_FOUND"))
    );
    assert_eq!(hs.e.records("contacts").len(), 24);
    assert_eq!(hs.e.stats().created.get("contacts"), Some(&25));
    hs.e.shutdown().await;
}

#[tokio::test]
async fn hubspot_batch_create_reports_duplicates_per_item_and_upsert_is_idempotent() {
    let hs = Hs::new(SandboxOptions::default()).await;
    use reqwest::Method as M;
    let inputs: Vec<Value> = (0..3)
        .map(|i| {
            json!({"properties": {"email": format!("b{i}@example.com")}, "associations": [],
                        "objectWriteTraceId": format!("t{i}")})
        })
        .collect();
    let (s, body) = hs
        .send(
            M::POST,
            "/crm/v3/objects/contacts/batch/create",
            Some(json!({"inputs": inputs})),
        )
        .await;
    assert_eq!(s, 201, "{body}");
    assert_eq!(body["results"].as_array().map(Vec::len), Some(3));

    let again = vec![
        json!({"properties": {"email": "b1@example.com"}, "associations": [], "objectWriteTraceId": "x1"}),
        json!({"properties": {"email": "new@example.com"}, "associations": []}),
    ];
    let (s, body) = hs
        .send(
            M::POST,
            "/crm/v3/objects/contacts/batch/create",
            Some(json!({"inputs": again})),
        )
        .await;
    assert_eq!(s, 207, "{body}");
    assert_eq!(body["numErrors"], 1);
    assert_eq!(body["errors"][0]["category"], "CONFLICT");
    assert_eq!(body["errors"][0]["context"]["objectWriteTraceId"][0], "x1");
    assert_eq!(body["results"].as_array().map(Vec::len), Some(1));

    let too_many: Vec<Value> = (0..101).map(|_| json!({"properties": {}})).collect();
    let (s, _) = hs
        .send(
            M::POST,
            "/crm/v3/objects/contacts/batch/create",
            Some(json!({"inputs": too_many})),
        )
        .await;
    assert_eq!(s, 400);

    let up = json!({"inputs": [
        {"id": "b0@example.com", "idProperty": "email", "properties": {"firstname": "B"}},
        {"id": "fresh@example.com", "idProperty": "email", "properties": {"firstname": "F"}}]});
    let (s, body) = hs
        .send(
            M::POST,
            "/crm/v3/objects/contacts/batch/upsert",
            Some(up.clone()),
        )
        .await;
    assert_eq!(s, 200, "{body}");
    let news: Vec<bool> = body["results"]
        .as_array()
        .expect("results")
        .iter()
        .map(|r| r["new"].as_bool().expect("new"))
        .collect();
    assert_eq!(news, vec![false, true]);
    let (s, body) = hs
        .send(M::POST, "/crm/v3/objects/contacts/batch/upsert", Some(up))
        .await;
    assert_eq!(s, 200);
    assert!(
        body["results"]
            .as_array()
            .expect("results")
            .iter()
            .all(|r| r["new"] == false)
    );
    assert_eq!(hs.e.records("contacts").len(), 5);

    let (s, body) = hs
        .send(
            M::POST,
            "/crm/v3/objects/contacts/batch/update",
            Some(json!({"inputs": [{"id": "999999", "properties": {"firstname": "x"}}]})),
        )
        .await;
    assert_eq!(
        (s, body["errors"][0]["category"].as_str()),
        (207, Some("OBJECT_NOT_FOUND"))
    );
    hs.e.shutdown().await;
}

#[tokio::test]
async fn hubspot_rejects_bad_tokens_and_refreshes_oauth_tokens() {
    let e = emu(Vendor::Hubspot).await;
    let c = client();
    let r = c
        .get(format!("{}/crm/v3/objects/deals", e.base_url()))
        .bearer_auth("wrong")
        .send()
        .await
        .expect("request");
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let body: Value = r.json().await.expect("json");
    assert_eq!(body["category"], "INVALID_AUTHENTICATION");
    assert_eq!(body["status"], "error");

    let form = [
        ("grant_type", "refresh_token"),
        (
            "client_id",
            e.credentials().get("client_id").unwrap_or_default(),
        ),
        (
            "client_secret",
            e.credentials().get("client_secret").unwrap_or_default(),
        ),
        (
            "refresh_token",
            e.credentials().get("refresh_token").unwrap_or_default(),
        ),
    ];
    let tok: Value = c
        .post(format!("{}/oauth/v1/token", e.base_url()))
        .form(&form)
        .send()
        .await
        .expect("request")
        .json()
        .await
        .expect("json");
    let access = tok["access_token"].as_str().expect("access token");
    assert_eq!(tok["expires_in"], 1800);
    let r = c
        .get(format!("{}/crm/v3/objects/deals", e.base_url()))
        .bearer_auth(access)
        .send()
        .await
        .expect("request");
    assert_eq!(r.status(), StatusCode::OK);

    let bad = c
        .post(format!("{}/oauth/v1/token", e.base_url()))
        .form(&[("grant_type", "refresh_token"), ("client_id", "x")])
        .send()
        .await
        .expect("request");
    assert_eq!(bad.status(), StatusCode::BAD_REQUEST);
    e.shutdown().await;
}

#[tokio::test]
async fn hubspot_throttles_with_its_429_body_and_headers() {
    let e = emu_with(
        Vendor::Hubspot,
        SandboxOptions {
            rate_limit: Some(RateLimitOverride {
                requests: 3,
                per: Duration::from_secs(10),
            }),
            ..SandboxOptions::default()
        },
    )
    .await;
    let c = client();
    let token = cred(&e, "access_token");
    let get = || {
        c.get(format!("{}/crm/v3/objects/companies", e.base_url()))
            .bearer_auth(&token)
            .send()
    };
    for left in (0..3).rev() {
        let r = get().await.expect("request");
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(r.headers()["x-hubspot-ratelimit-max"], "3");
        assert_eq!(
            r.headers()["x-hubspot-ratelimit-remaining"],
            left.to_string().as_str()
        );
        assert_eq!(
            r.headers()["x-hubspot-ratelimit-interval-milliseconds"],
            "10000"
        );
    }
    let r = get().await.expect("request");
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(r.headers()["x-hubspot-ratelimit-remaining"], "0");
    let body: Value = r.json().await.expect("json");
    assert_eq!(body["errorType"], "RATE_LIMIT");
    assert_eq!(body["policyName"], "TEN_SECONDLY_ROLLING");
    assert_eq!(e.stats().throttled, 1);
    assert_eq!(e.stats().by_status.get(&429), Some(&1));
    e.shutdown().await;
}

#[tokio::test]
async fn hubspot_faults_by_script_5xx_drop_malformed_timeout_slow() {
    let e = emu_with(
        Vendor::Hubspot,
        script(&[
            (1, FaultKind::ServerError { status: 502 }),
            (2, FaultKind::Drop),
            (3, FaultKind::Malformed),
            (4, FaultKind::Timeout),
            (5, FaultKind::Slow { ms: 300 }),
            (6, FaultKind::RateLimit),
        ]),
    )
    .await;
    let c = Client::builder()
        .timeout(Duration::from_millis(1500))
        .build()
        .expect("client");
    let token = cred(&e, "access_token");
    let create = |n: u32| {
        c.post(format!("{}/crm/v3/objects/contacts", e.base_url()))
            .bearer_auth(&token)
            .json(&json!({"properties": {"email": format!("f{n}@example.com")}}))
            .send()
    };
    let r = create(1).await.expect("5xx is an answer");
    assert_eq!(r.status().as_u16(), 502);
    let dropped = create(2).await;
    assert!(dropped.is_err(), "dropped connection gives no response");
    let r = create(3).await.expect("malformed still answers");
    assert_eq!(r.status(), StatusCode::OK);
    let text = r.text().await.unwrap_or_default();
    assert!(serde_json::from_str::<Value>(&text).is_err(), "{text}");
    let t = create(4).await;
    assert!(t.is_err_and(|e| e.is_timeout()));
    let started = std::time::Instant::now();
    let r = create(5).await.expect("slow answers");
    assert!(started.elapsed() >= Duration::from_millis(300));
    assert_eq!(r.status(), StatusCode::CREATED);
    let r = create(6).await.expect("throttled answers");
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);

    // 5xx, drop and timeout struck before the write; malformed after it.
    let emails: Vec<String> = e
        .records("contacts")
        .iter()
        .filter_map(|r| r["properties"]["email"].as_str().map(String::from))
        .collect();
    assert_eq!(emails, vec!["f3@example.com", "f5@example.com"]);
    let s = e.stats();
    for k in ["5xx", "drop", "malformed", "timeout", "slow", "rate_limit"] {
        assert_eq!(s.faults.get(k), Some(&1), "{k}: {s:?}");
    }
    e.shutdown().await;
}

#[tokio::test]
async fn fault_rates_are_deterministic_for_a_seed() {
    let opts = || SandboxOptions {
        faults: FaultConfig {
            error_5xx_rate: 0.3,
            ..FaultConfig::default()
        },
        seed: 42,
        ..SandboxOptions::default()
    };
    let mut runs = Vec::new();
    for _ in 0..2 {
        let e = emu_with(Vendor::Hubspot, opts()).await;
        let c = client();
        let token = cred(&e, "access_token");
        let mut statuses = Vec::new();
        for _ in 0..30 {
            let r = c
                .get(format!("{}/crm/v3/objects/tickets", e.base_url()))
                .bearer_auth(&token)
                .send()
                .await
                .expect("request");
            statuses.push(r.status().as_u16());
        }
        assert!(statuses.iter().any(|s| *s >= 500) && statuses.contains(&200));
        runs.push(statuses);
        e.shutdown().await;
    }
    assert_eq!(runs[0], runs[1]);
}

// ---------------------------------------------------------------------------------- CLI

#[test]
fn sandbox_command_prints_base_urls_and_credentials() {
    use std::io::{BufRead, BufReader};
    let mut child = super::cli::switchyard()
        .args(["sandbox", "hubspot", "--json", "--seed", "1"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawns");
    let stdout = child.stdout.take().expect("stdout");
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line).expect("line");
    let _ = child.kill();
    let _ = child.wait();
    let v: Value = serde_json::from_str(&line).expect("json line");
    assert_eq!(v["vendor"], "hubspot");
    assert!(
        v["base_url"]
            .as_str()
            .is_some_and(|u| u.starts_with("http://127.0.0.1:"))
    );
    assert!(v["credentials"]["access_token"].is_string());
}

#[test]
fn sandbox_command_rejects_unknown_vendor() {
    let out = super::cli::switchyard()
        .args(["sandbox", "hubspt"])
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown vendor"));
}
