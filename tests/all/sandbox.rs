//! The vendor emulators over real HTTP: state, pagination, auth, throttling and faults.

use reqwest::{Client, StatusCode};
use serde_json::{Value, json};
use std::time::Duration;
use switchyard_sandbox::{
    self as sandbox, Emulator, FaultConfig, FaultKind, RateLimitOverride, SandboxOptions,
    ScriptedFault, Vendor,
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

/// Searches see every write at once: for tests of what a search finds, not of when (the
/// default lags writes by `sandbox::DEFAULT_SEARCH_LAG`, as the vendors' indexes do).
fn consistent_search() -> SandboxOptions {
    SandboxOptions {
        search_lag: Duration::ZERO,
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

    /// Creates a tenant's custom property through the properties API, as on HubSpot.
    async fn create_property(&self, object: &str, name: &str, kind: &str) {
        let field = if kind == "number" { "number" } else { "text" };
        let (s, body) = self
            .send(
                reqwest::Method::POST,
                &format!("/crm/v3/properties/{object}"),
                Some(
                    json!({"name": name, "label": name, "type": kind, "fieldType": field,
                            "groupName": "contactinformation"}),
                ),
            )
            .await;
        assert_eq!(s, 201, "{body}");
    }
}

#[tokio::test]
async fn hubspot_contacts_create_read_search_list_update() {
    let hs = Hs::new(consistent_search()).await;
    use reqwest::Method as M;
    hs.create_property("contacts", "lead_score", "number").await;
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

/// Batch read by a unique property (what batch duplicate detection sends): found inputs in
/// `results`, every missing one listed in one `OBJECT_NOT_FOUND` error's `context.ids` (207);
/// reads see writes at once, unlike search; a property whose values are not unique is
/// refused as `idProperty`; a search's `IN` filter matches any of many values.
#[tokio::test]
async fn hubspot_batch_read_by_email_lists_the_missing_and_refuses_non_unique_properties() {
    use reqwest::Method as M;
    let hs = Hs::new(SandboxOptions {
        search_lag: Duration::from_secs(30),
        ..SandboxOptions::default()
    })
    .await;
    for i in 0..3 {
        let (s, body) = hs
            .send(
                M::POST,
                "/crm/v3/objects/contacts",
                Some(json!({"properties": {"email": format!("r{i}@example.com"),
                                           "phone": format!("+1555000000{i}")},
                            "associations": []})),
            )
            .await;
        assert_eq!(s, 201, "{body}");
    }
    let read = |ids: &[&str], prop: Option<&str>| {
        let mut b = json!({"inputs": ids.iter().map(|i| json!({"id": i})).collect::<Vec<_>>(),
                           "properties": ["email", "phone"], "propertiesWithHistory": []});
        if let Some(p) = prop {
            b["idProperty"] = json!(p);
        }
        b
    };
    // Written a moment ago, not yet searchable (30 s lag), yet read by e-mail at once; case
    // does not matter.
    let (s, body) = hs
        .send(
            M::POST,
            "/crm/v3/objects/contacts/batch/read",
            Some(read(
                &[
                    "r0@example.com",
                    "nobody@example.com",
                    "R2@Example.com",
                    "ghost@example.com",
                ],
                Some("email"),
            )),
        )
        .await;
    assert_eq!(s, 207, "{body}");
    let mut found: Vec<&str> = body["results"]
        .as_array()
        .expect("results")
        .iter()
        .map(|r| r["properties"]["email"].as_str().expect("email"))
        .collect();
    found.sort_unstable();
    assert_eq!(found, ["r0@example.com", "r2@example.com"]);
    assert_eq!(body["numErrors"], 1, "{body}");
    let e = &body["errors"][0];
    assert_eq!(e["category"], "OBJECT_NOT_FOUND");
    assert_eq!(e["status"], "error");
    assert_eq!(
        e["context"]["ids"],
        json!(["nobody@example.com", "ghost@example.com"])
    );
    // All found: 200 without errors.
    let (s, body) = hs
        .send(
            M::POST,
            "/crm/v3/objects/contacts/batch/read",
            Some(read(&["r1@example.com"], Some("email"))),
        )
        .await;
    assert_eq!(s, 200, "{body}");
    assert!(body.get("errors").is_none(), "{body}");
    // By id (no idProperty).
    let id = body["results"][0]["id"].as_str().expect("id").to_string();
    let (s, body) = hs
        .send(
            M::POST,
            "/crm/v3/objects/contacts/batch/read",
            Some(read(&[id.as_str()], None)),
        )
        .await;
    assert_eq!(
        (s, body["results"][0]["id"].as_str()),
        (200, Some(id.as_str())),
        "{body}"
    );
    // A phone is not unique: HubSpot refuses it as idProperty, for reads and writes.
    for (action, body) in [
        ("read", read(&["+15550000001"], Some("phone"))),
        (
            "update",
            json!({"inputs": [{"id": "+15550000001", "idProperty": "phone", "properties": {}}]}),
        ),
    ] {
        let (s, body) = hs
            .send(
                M::POST,
                &format!("/crm/v3/objects/contacts/batch/{action}"),
                Some(body),
            )
            .await;
        assert_eq!(s, 400, "{action}: {body}");
        assert_eq!(body["category"], "VALIDATION_ERROR");
        assert!(
            body["message"]
                .as_str()
                .expect("message")
                .contains("non-unique 0-1 property phone"),
            "{body}"
        );
    }
    let (s, _) = hs
        .send(
            M::GET,
            "/crm/v3/objects/contacts/+15550000001?idProperty=phone",
            None,
        )
        .await;
    assert_eq!(s, 400);
    let too_many: Vec<String> = (0..101).map(|i| format!("x{i}@example.com")).collect();
    let refs: Vec<&str> = too_many.iter().map(String::as_str).collect();
    let (s, _) = hs
        .send(
            M::POST,
            "/crm/v3/objects/contacts/batch/read",
            Some(read(&refs, Some("email"))),
        )
        .await;
    assert_eq!(s, 400, "at most 100 inputs");
    // Once searchable, one IN filter finds every listed phone.
    let hs2 = Hs::new(consistent_search()).await;
    for i in 0..4 {
        hs2.send(
            M::POST,
            "/crm/v3/objects/contacts",
            Some(json!({"properties": {"phone": format!("+1555000000{i}")}, "associations": []})),
        )
        .await;
    }
    let (s, body) = hs2
        .send(
            M::POST,
            "/crm/v3/objects/contacts/search",
            Some(json!({"filterGroups": [{"filters": [{"propertyName": "phone", "operator": "IN",
                         "values": ["+15550000001", "+15550000003", "+15559999999"]}]}],
                        "properties": ["phone"], "sorts": ["hs_object_id"], "limit": 200, "after": "0"})),
        )
        .await;
    assert_eq!(s, 200, "{body}");
    assert_eq!(body["total"], 2, "{body}");
    hs.e.shutdown().await;
    hs2.e.shutdown().await;
}

#[tokio::test]
async fn hubspot_tasks_need_a_timestamp_and_valid_options() {
    use reqwest::Method as M;
    let hs = Hs::new(consistent_search()).await;
    let (s, bad) = hs
        .send(
            M::POST,
            "/crm/v3/objects/tasks",
            Some(json!({"properties": {"hs_task_subject": "Call"}})),
        )
        .await;
    assert_eq!(
        (s, bad["category"].as_str()),
        (400, Some("VALIDATION_ERROR"))
    );
    let (s, bad) = hs
        .send(M::POST, "/crm/v3/objects/tasks",
              Some(json!({"properties": {"hs_task_subject": "Call", "hs_timestamp": "2026-12-01T09:00:00Z",
                                         "hs_task_priority": "URGENT"}})))
        .await;
    assert_eq!(s, 400, "{bad}");
    let (s, task) = hs
        .send(M::POST, "/crm/v3/objects/tasks",
              Some(json!({"properties": {"hs_task_subject": "Call back Ada", "hs_timestamp": "2026-12-01T09:00:00Z",
                                         "hs_task_priority": "HIGH", "hs_task_status": "NOT_STARTED"}})))
        .await;
    assert_eq!(s, 201, "{task}");
    let (s, found) = hs
        .send(M::POST, "/crm/v3/objects/tasks/search",
              Some(json!({"filterGroups": [{"filters": [{"propertyName": "hs_task_subject", "operator": "EQ", "value": "Call back Ada"}]}],
                          "properties": ["hs_task_subject", "hs_timestamp"]})))
        .await;
    assert_eq!((s, found["total"].as_u64()), (200, Some(1)));
    assert_eq!(
        found["results"][0]["properties"]["hs_timestamp"],
        "2026-12-01T09:00:00Z"
    );
    hs.e.shutdown().await;
}

/// Owners as HubSpot lists them: a new portal has one, more are seeded; `email` filters
/// (case-insensitively), `limit`/`after` page, archived owners only when asked, one owner by
/// id or `userId`, HubSpot's 400/404 for bad parameters and unknown ids.
#[tokio::test]
async fn hubspot_owners_filter_by_email_and_page() {
    use reqwest::Method as M;
    let hs = Hs::new(SandboxOptions::default()).await;
    let (s, all) = hs.send(M::GET, "/crm/v3/owners", None).await;
    assert_eq!(s, 200, "{all}");
    assert_eq!(all["results"].as_array().map(Vec::len), Some(1));
    assert_eq!(all["results"][0]["email"], "owner@company.com");
    assert_eq!(all["results"][0]["type"], "PERSON");
    let owners: Vec<Value> = (0..5)
        .map(|i| {
            json!({"id": format!("{}", 500 + i), "email": format!("rep{i}@company.com"),
                        "userId": 900 + i, "archived": i == 4})
        })
        .collect();
    hs.e.seed("owners", &owners).expect("seed");
    let (s, page) = hs.send(M::GET, "/crm/v3/owners?limit=2", None).await;
    assert_eq!(s, 200);
    assert_eq!(page["results"].as_array().map(Vec::len), Some(2));
    let after = page["paging"]["next"]["after"]
        .as_str()
        .expect("next page")
        .to_string();
    let (_, rest) = hs
        .send(
            M::GET,
            &format!("/crm/v3/owners?limit=2&after={after}"),
            None,
        )
        .await;
    let (_, last) = hs
        .send(
            M::GET,
            &format!(
                "/crm/v3/owners?limit=2&after={}",
                rest["paging"]["next"]["after"].as_str().expect("next")
            ),
            None,
        )
        .await;
    let live = page["results"]
        .as_array()
        .into_iter()
        .chain(rest["results"].as_array())
        .chain(last["results"].as_array())
        .flatten()
        .count();
    assert_eq!(
        live, 5,
        "four seeded live owners and the portal's own: {last}"
    );
    assert!(last.get("paging").is_none(), "{last}");
    let (_, one) = hs
        .send(M::GET, "/crm/v3/owners?email=REP2%40Company.com", None)
        .await;
    assert_eq!(one["results"].as_array().map(Vec::len), Some(1), "{one}");
    assert_eq!(one["results"][0]["id"], "502");
    let (_, none) = hs
        .send(M::GET, "/crm/v3/owners?email=rep4%40company.com", None)
        .await;
    assert_eq!(none["results"], json!([]), "archived: {none}");
    let (_, archived) = hs
        .send(
            M::GET,
            "/crm/v3/owners?email=rep4%40company.com&archived=true",
            None,
        )
        .await;
    assert_eq!(archived["results"][0]["id"], "504");
    let (s, by_user) = hs
        .send(M::GET, "/crm/v3/owners/901?idProperty=userId", None)
        .await;
    assert_eq!((s, &by_user["id"]), (200, &json!("501")));
    let (s, missing) = hs.send(M::GET, "/crm/v3/owners/999", None).await;
    assert_eq!(s, 404, "{missing}");
    assert_eq!(missing["category"], "OBJECT_NOT_FOUND");
    let (s, bad) = hs.send(M::GET, "/crm/v3/owners?limit=501", None).await;
    assert_eq!((s, &bad["category"]), (400, &json!("VALIDATION_ERROR")));
    hs.e.shutdown().await;
}

/// Writes take only real owners, pipelines and stages: `hubspot_owner_id` must name a live
/// owner, a deal's `pipeline` a pipeline and its `dealstage` a stage of it; each refusal is
/// HubSpot's 400 with the property named.
#[tokio::test]
async fn hubspot_checks_owner_ids_pipelines_and_deal_stages() {
    use reqwest::Method as M;
    let hs = Hs::new(SandboxOptions::default()).await;
    let deal = |props: Value| Some(json!({"properties": props, "associations": []}));
    let (s, ok) = hs
        .send(
            M::POST,
            "/crm/v3/objects/deals",
            deal(json!({"dealname": "D", "pipeline": "default",
            "dealstage": "closedwon", "hubspot_owner_id": "70000001"})),
        )
        .await;
    assert_eq!(s, 201, "{ok}");
    for (props, name) in [
        (
            json!({"dealname": "D", "hubspot_owner_id": "123"}),
            "hubspot_owner_id",
        ),
        (json!({"dealname": "D", "pipeline": "sales"}), "pipeline"),
        (json!({"dealname": "D", "dealstage": "won"}), "dealstage"),
    ] {
        let (s, e) = hs.send(M::POST, "/crm/v3/objects/deals", deal(props)).await;
        assert_eq!(
            (s, &e["category"]),
            (400, &json!("VALIDATION_ERROR")),
            "{e}"
        );
        assert!(
            e["message"]
                .as_str()
                .expect("message")
                .contains(&format!("\"name\":\"{name}\"")),
            "{e}"
        );
    }
    let (s, e) = hs
        .send(M::POST, "/crm/v3/objects/contacts", Some(json!({"properties": {"email": "a@b.co", "hubspot_owner_id": "9"}, "associations": []})))
        .await;
    assert_eq!(s, 400, "{e}");
    assert_eq!(hs.e.records("contacts").len(), 0);
    hs.e.shutdown().await;
}

/// Associations v4: `PUT …/associations/default/…` associates two objects with the default
/// type both ways (read back by v4 and by v3 `?associations=`), again without a second entry;
/// an unknown id or object type is HubSpot's 400 naming it.
#[tokio::test]
async fn hubspot_v4_default_associations_both_ways() {
    use reqwest::Method as M;
    let hs = Hs::new(SandboxOptions::default()).await;
    hs.e.seed(
        "contacts",
        &[json!({"id": "101", "properties": {"email": "a@b.co"}})],
    )
    .expect("seed");
    hs.e.seed(
        "companies",
        &[json!({"id": "201", "properties": {"domain": "b.co"}})],
    )
    .expect("seed");
    hs.e.seed(
        "deals",
        &[json!({"id": "301", "properties": {"dealname": "D"}})],
    )
    .expect("seed");
    for _ in 0..2 {
        let (s, r) = hs
            .send(
                M::PUT,
                "/crm/v4/objects/contacts/101/associations/default/companies/201",
                None,
            )
            .await;
        assert_eq!(s, 200, "{r}");
        assert_eq!(r["status"], "COMPLETE");
        assert_eq!(
            r["results"][0]["associationSpec"]["associationTypeId"], 279,
            "{r}"
        );
        assert_eq!(
            r["results"][1]["associationSpec"]["associationTypeId"], 280,
            "{r}"
        );
    }
    let (s, r) = hs
        .send(
            M::PUT,
            "/crm/v4/objects/0-3/301/associations/default/contact/101",
            None,
        )
        .await;
    assert_eq!(s, 200, "{r}");
    let (_, v4) = hs
        .send(
            M::GET,
            "/crm/v4/objects/contacts/101/associations/companies",
            None,
        )
        .await;
    assert_eq!(
        v4["results"],
        json!([{"toObjectId": "201", "associationTypes": [{"category": "HUBSPOT_DEFINED", "typeId": 279, "label": null}]}]),
        "once, however often it was made: {v4}"
    );
    let (_, v4) = hs
        .send(
            M::GET,
            "/crm/v4/objects/contacts/101/associations/deals",
            None,
        )
        .await;
    assert_eq!(v4["results"][0]["toObjectId"], "301");
    assert_eq!(v4["results"][0]["associationTypes"][0]["typeId"], 4);
    let (_, v3) = hs
        .send(
            M::GET,
            "/crm/v3/objects/companies/201?associations=contacts",
            None,
        )
        .await;
    assert_eq!(
        v3["associations"]["contacts"]["results"],
        json!([{"id": "101", "type": "company_to_contact_unlabeled"}])
    );
    let (s, e) = hs
        .send(
            M::PUT,
            "/crm/v4/objects/contacts/101/associations/default/companies/999",
            None,
        )
        .await;
    assert_eq!(s, 400, "{e}");
    assert_eq!(e["message"], "One or more associations are invalid");
    assert_eq!(
        e["context"]["INVALID_OBJECT_IDS"],
        json!(["COMPANY=999 is not valid"]),
        "{e}"
    );
    let (s, e) = hs
        .send(
            M::PUT,
            "/crm/v4/objects/widgets/1/associations/default/companies/201",
            None,
        )
        .await;
    assert_eq!(
        (s, &e["category"]),
        (400, &json!("VALIDATION_ERROR")),
        "{e}"
    );
    let (s, e) = hs
        .send(
            M::GET,
            "/crm/v4/objects/contacts/555/associations/companies",
            None,
        )
        .await;
    assert_eq!(s, 400, "{e}");
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

    // Expired tokens get HubSpot's EXPIRED_AUTHENTICATION 401; a refresh fixes it.
    e.expire_tokens();
    let r = c
        .get(format!("{}/crm/v3/objects/deals", e.base_url()))
        .bearer_auth(access)
        .send()
        .await
        .expect("request");
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let body: Value = r.json().await.expect("json");
    assert_eq!(body["category"], "EXPIRED_AUTHENTICATION");
    let tok: Value = c
        .post(format!("{}/oauth/v1/token", e.base_url()))
        .form(&form)
        .send()
        .await
        .expect("request")
        .json()
        .await
        .expect("json");
    let r = c
        .get(format!("{}/crm/v3/objects/deals", e.base_url()))
        .bearer_auth(tok["access_token"].as_str().expect("token"))
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

/// CRM search has its own limit (HubSpot: 5 a second per account), answered with HubSpot's
/// `SECONDLY` 429 and a Retry-After, without using the general limit; and a new contact only
/// becomes searchable `search_lag` after its write, while a read by id sees it at once.
#[tokio::test]
async fn hubspot_search_has_its_own_limit_and_lags_writes() {
    use reqwest::Method as M;
    let lag = Duration::from_millis(600);
    let hs = Hs::new(SandboxOptions {
        search_lag: lag,
        search_rate_limit: Vendor::Hubspot.search_rate_limit(),
        ..SandboxOptions::default()
    })
    .await;
    let by_email = |email: &str| {
        json!({"filterGroups": [{"filters": [
            {"propertyName": "email", "operator": "EQ", "value": email}]}]})
    };
    let (s, created) = hs
        .send(
            M::POST,
            "/crm/v3/objects/contacts",
            Some(json!({"properties": {"email": "lag@example.com"}})),
        )
        .await;
    assert_eq!(s, 201, "{created}");
    let id = created["id"].as_str().expect("id").to_string();
    let (s, found) = hs
        .send(
            M::POST,
            "/crm/v3/objects/contacts/search",
            Some(by_email("lag@example.com")),
        )
        .await;
    assert_eq!(
        (s, found["total"].clone()),
        (200, json!(0)),
        "not searchable yet"
    );
    let (s, read) = hs
        .send(M::GET, &format!("/crm/v3/objects/contacts/{id}"), None)
        .await;
    assert_eq!((s, read["id"].as_str()), (200, Some(id.as_str())));

    // Four more searches fill the second; the sixth is refused.
    for _ in 0..4 {
        let (s, _) = hs
            .send(
                M::POST,
                "/crm/v3/objects/contacts/search",
                Some(by_email("x@example.com")),
            )
            .await;
        assert_eq!(s, 200);
    }
    let r =
        hs.c.post(format!(
            "{}/crm/v3/objects/contacts/search",
            hs.e.base_url()
        ))
        .bearer_auth(&hs.token)
        .json(&by_email("x@example.com"))
        .send()
        .await
        .expect("request");
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(r.headers()["retry-after"], "1");
    let body: Value = r.json().await.expect("json");
    assert_eq!(body["errorType"], "RATE_LIMIT");
    assert_eq!(body["policyName"], "SECONDLY");
    // The general limit still admits other requests, and counted no refused search.
    let r =
        hs.c.get(format!("{}/crm/v3/objects/contacts", hs.e.base_url()))
            .bearer_auth(&hs.token)
            .send()
            .await
            .expect("request");
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()["x-hubspot-ratelimit-remaining"], "92");
    let stats = hs.e.stats();
    assert_eq!((stats.searches, stats.search_throttled), (6, 1));

    tokio::time::sleep(lag.max(Duration::from_secs(1))).await;
    let (s, found) = hs
        .send(
            M::POST,
            "/crm/v3/objects/contacts/search",
            Some(by_email("lag@example.com")),
        )
        .await;
    assert_eq!(s, 200);
    assert_eq!(found["total"], 1, "searchable after the lag");
    assert_eq!(found["results"][0]["id"].as_str(), Some(id.as_str()));
    hs.e.shutdown().await;
}

/// A seeded id is never issued again, not even after its record is archived.
#[tokio::test]
async fn hubspot_never_reissues_a_seeded_id_after_archive() {
    use reqwest::Method as M;
    let hs = Hs::new(SandboxOptions::default()).await;
    hs.e.seed(
        "contacts",
        &[json!({"id": "100002", "properties": {"email": "seeded@example.com"}})],
    )
    .expect("seeds");
    let (s, _) = hs
        .send(M::DELETE, "/crm/v3/objects/contacts/100002", None)
        .await;
    assert_eq!(s, 204);
    for i in 0..4 {
        let (s, c) = hs
            .send(
                M::POST,
                "/crm/v3/objects/contacts",
                Some(json!({"properties": {"email": format!("new{i}@example.com")}})),
            )
            .await;
        assert_eq!(s, 201, "{c}");
        let id: u64 = c["id"]
            .as_str()
            .and_then(|s| s.parse().ok())
            .expect("numeric id");
        assert!(id > 100_002, "id {id} reissued or below the seeded one");
    }
    hs.e.shutdown().await;
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
fn sandbox_command_serves_several_vendors_on_consecutive_ports_and_stops_on_sigterm() {
    use std::io::{BufRead, BufReader};
    let port = {
        // Two free neighbours are likely above a just-freed ephemeral port.
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr").port()
    };
    let mut child = super::cli::switchyard()
        .args(["sandbox", "stripe", "zendesk", "--port", &port.to_string()])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawns");
    let stdout = child.stdout.take().expect("stdout");
    let mut lines = BufReader::new(stdout).lines();
    let mut text = Vec::new();
    for _ in 0..5 {
        text.push(lines.next().expect("a line").expect("utf-8"));
    }
    let text = text.join("\n");
    assert!(
        text.contains(&format!("stripe      http://127.0.0.1:{port}")),
        "{text}"
    );
    assert!(
        text.contains(&format!("zendesk     http://127.0.0.1:{}", port + 1)),
        "{text}"
    );
    assert!(text.contains("secret_key = sk_test_"), "{text}");
    assert!(text.contains("api_token = "), "{text}");
    let _ = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let out = child.wait_with_output().expect("exits");
    assert!(out.status.success(), "{:?}", out.status);
    assert!(String::from_utf8_lossy(&out.stderr).contains("stripe: 0 requests"));
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

/// The request shapes checked against HubSpot's official description (tests/prism) are
/// accepted by the emulator too: it never answers them with a validation error.
#[tokio::test]
async fn hubspot_emulator_accepts_the_requests_the_official_description_accepts() {
    let hs = Hs::new(SandboxOptions::default()).await;
    // The lines set one custom property, which the tenant's portal has, and associate a deal
    // and a task with contact 100234 and the contact with company 100300, which it holds.
    hs.create_property("contacts", "lead_score", "number").await;
    hs.e.seed(
        "contacts",
        &[json!({"id": "100234", "properties": {"email": "known@example.com"}})],
    )
    .expect("seed");
    hs.e.seed(
        "companies",
        &[json!({"id": "100300", "properties": {"domain": "example.com"}})],
    )
    .expect("seed");
    let path = super::cli::repo_root().join("tests/prism/requests/hubspot-representative.jsonl");
    let text = std::fs::read_to_string(&path).expect("request lines");
    let mut sent = 0;
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let v: Value = serde_json::from_str(line).expect("json line");
        let url = url::Url::parse(v["url"].as_str().expect("url")).expect("url");
        if url.path().starts_with("/oauth/") {
            continue; // redacted client credentials
        }
        let target = match url.query() {
            Some(q) => format!("{}{}?{q}", hs.e.base_url(), url.path()),
            None => format!("{}{}", hs.e.base_url(), url.path()),
        };
        let method = reqwest::Method::from_bytes(v["method"].as_str().expect("method").as_bytes())
            .expect("method");
        let mut r = hs.c.request(method, target).bearer_auth(&hs.token);
        if !v["body"].is_null() {
            r = r.json(&v["body"]);
        }
        let resp = r.send().await.expect("request");
        let status = resp.status().as_u16();
        let body = resp.text().await.unwrap_or_default();
        assert!(
            status < 300 || status == 404,
            "{} {}: {status} {body}",
            v["method"],
            url.path()
        );
        sent += 1;
    }
    assert!(sent >= 16, "{sent}");
    hs.e.shutdown().await;
}

// ---------------------------------------------------------------------------- Salesforce

async fn sf_token(e: &Emulator, c: &Client, form: &[(&str, String)]) -> (u16, Value) {
    let r = c
        .post(format!("{}/services/oauth2/token", e.base_url()))
        .form(form)
        .send()
        .await
        .expect("request");
    (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
}

async fn sf_password_token(e: &Emulator, c: &Client) -> String {
    let form = [
        ("grant_type", "password".to_string()),
        ("client_id", cred(e, "client_id")),
        ("client_secret", cred(e, "client_secret")),
        ("username", cred(e, "username")),
        (
            "password",
            format!("{}{}", cred(e, "password"), cred(e, "security_token")),
        ),
    ];
    let (s, body) = sf_token(e, c, &form).await;
    assert_eq!(s, 200, "{body}");
    assert_eq!(body["instance_url"], e.base_url());
    body["access_token"].as_str().expect("token").to_string()
}

struct Sf<'a> {
    e: &'a Emulator,
    c: Client,
    token: String,
}

impl Sf<'_> {
    async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
        batch: Option<usize>,
    ) -> (u16, Value) {
        let url = format!("{}/services/data/v62.0{path}", self.e.base_url());
        let mut r = self.c.request(method, url).bearer_auth(&self.token);
        if let Some(b) = body {
            r = r.json(&b);
        }
        if let Some(n) = batch {
            r = r.header("Sforce-Query-Options", format!("batchSize={n}"));
        }
        let resp = r.send().await.expect("request");
        let s = resp.status().as_u16();
        (s, resp.json().await.unwrap_or(Value::Null))
    }

    async fn query_all(&self, soql: &str, batch: usize) -> (Vec<Value>, usize) {
        let (s, mut page) = self
            .send(
                reqwest::Method::GET,
                &format!("/query?q={}", url_encode(soql)),
                None,
                Some(batch),
            )
            .await;
        assert_eq!(s, 200, "{page}");
        let mut rows = Vec::new();
        let mut pages = 1;
        loop {
            rows.extend(page["records"].as_array().cloned().unwrap_or_default());
            if page["done"] == true {
                break;
            }
            let next = page["nextRecordsUrl"]
                .as_str()
                .expect("next url")
                .to_string();
            let r = self
                .c
                .get(format!("{}{next}", self.e.base_url()))
                .bearer_auth(&self.token)
                .header("Sforce-Query-Options", format!("batchSize={batch}"))
                .send()
                .await
                .expect("request");
            page = r.json().await.expect("json");
            pages += 1;
        }
        (rows, pages)
    }
}

fn url_encode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

#[tokio::test]
async fn salesforce_sobjects_soql_paging_and_collections() {
    use reqwest::Method as M;
    let e = emu(Vendor::Salesforce).await;
    let c = client();
    let token = sf_password_token(&e, &c).await;
    let sf = Sf { e: &e, c, token };

    let (s, created) = sf
        .send(
            M::POST,
            "/sobjects/Lead",
            Some(
                json!({"FirstName": "Ada", "LastName": "Lovelace", "Company": "AE",
                          "Email": "ada@example.com", "LeadSource": "Web"}),
            ),
            None,
        )
        .await;
    assert_eq!(s, 201, "{created}");
    assert_eq!(created["success"], true);
    let id = created["id"].as_str().expect("id").to_string();
    assert_eq!(id.len(), 18);
    assert!(id.starts_with("00Q"));

    let (s, missing) = sf
        .send(
            M::POST,
            "/sobjects/Lead",
            Some(json!({"LastName": "x"})),
            None,
        )
        .await;
    assert_eq!(s, 400);
    assert_eq!(missing[0]["errorCode"], "REQUIRED_FIELD_MISSING");
    assert_eq!(missing[0]["fields"], json!(["Company"]));
    let (s, bad) = sf
        .send(
            M::POST,
            "/sobjects/Lead",
            Some(json!({"LastName": "x", "Company": "y", "Bogus": 1})),
            None,
        )
        .await;
    assert_eq!(
        (s, bad[0]["errorCode"].as_str()),
        (400, Some("INVALID_FIELD"))
    );

    let (s, _) = sf
        .send(
            M::PATCH,
            &format!("/sobjects/Lead/{id}"),
            Some(json!({"Title": "Countess"})),
            None,
        )
        .await;
    assert_eq!(s, 204);
    let (s, read) = sf
        .send(
            M::GET,
            &format!("/sobjects/Lead/{id}?fields=Name,Title"),
            None,
            None,
        )
        .await;
    assert_eq!(s, 200);
    assert_eq!(read["attributes"]["type"], "Lead");
    assert_eq!(read["Name"], "Ada Lovelace");
    assert_eq!(read["Title"], "Countess");

    // Collections: per-record results in input order, HTTP 200 with a failure inside.
    let mut records: Vec<Value> = (0..7)
        .map(|i| {
            json!({"attributes": {"type": "Lead"}, "LastName": format!("L{i}"),
                        "Company": "C", "LeadSource": "Web"})
        })
        .collect();
    records[3] = json!({"attributes": {"type": "Lead"}, "LastName": "NoCompany"});
    let (s, results) = sf
        .send(
            M::POST,
            "/composite/sobjects",
            Some(json!({"allOrNone": false, "records": records.clone()})),
            None,
        )
        .await;
    assert_eq!(s, 200);
    let oks: Vec<bool> = results
        .as_array()
        .expect("array")
        .iter()
        .map(|r| r["success"] == true)
        .collect();
    assert_eq!(oks, vec![true, true, true, false, true, true, true]);
    assert_eq!(
        results[3]["errors"][0]["statusCode"],
        "REQUIRED_FIELD_MISSING"
    );
    let before = e.records("Lead").len();
    let (s, rolled) = sf
        .send(
            M::POST,
            "/composite/sobjects",
            Some(json!({"allOrNone": true, "records": records})),
            None,
        )
        .await;
    assert_eq!(s, 200);
    assert_eq!(
        rolled[0]["errors"][0]["statusCode"],
        "ALL_OR_NONE_OPERATION_ROLLED_BACK"
    );
    assert_eq!(e.records("Lead").len(), before, "allOrNone kept nothing");
    let too_many: Vec<Value> = (0..201)
        .map(|_| json!({"attributes": {"type": "Lead"}, "LastName": "x", "Company": "y"}))
        .collect();
    let (s, _) = sf
        .send(
            M::POST,
            "/composite/sobjects",
            Some(json!({"records": too_many})),
            None,
        )
        .await;
    assert_eq!(s, 400);

    // SOQL with a small batch size: 7 Web leads over 3 pages.
    let (rows, pages) = sf
        .query_all(
            "SELECT Id, LastName, Email FROM Lead WHERE LeadSource = 'Web' ORDER BY LastName",
            3,
        )
        .await;
    assert_eq!((rows.len(), pages), (7, 3));
    assert_eq!(rows[0]["attributes"]["type"], "Lead");
    let (rows, _) = sf
        .query_all(
            "SELECT Id FROM Lead WHERE Email = 'ADA@example.com' AND LastName = 'Lovelace'",
            2000,
        )
        .await;
    assert_eq!(rows.len(), 1);
    let (s, bad) = sf
        .send(
            M::GET,
            &format!("/query?q={}", url_encode("SELECT Nope FROM Lead")),
            None,
            None,
        )
        .await;
    assert_eq!(
        (s, bad[0]["errorCode"].as_str()),
        (400, Some("INVALID_FIELD"))
    );

    // Upsert by external id: created, then updated.
    let (s, up) = sf
        .send(
            M::PATCH,
            "/sobjects/Contact/External_Id__c/ext-1",
            Some(json!({"LastName": "Hopper"})),
            None,
        )
        .await;
    assert_eq!((s, up["created"].as_bool()), (201, Some(true)));
    let (s, up) = sf
        .send(
            M::PATCH,
            "/sobjects/Contact/External_Id__c/ext-1",
            Some(json!({"FirstName": "Grace"})),
            None,
        )
        .await;
    assert_eq!((s, up["created"].as_bool()), (200, Some(false)));
    assert_eq!(e.records("Contact").len(), 1);

    let (s, _) = sf
        .send(M::DELETE, &format!("/sobjects/Lead/{id}"), None, None)
        .await;
    assert_eq!(s, 204);
    let (s, gone) = sf
        .send(M::GET, &format!("/sobjects/Lead/{id}"), None, None)
        .await;
    assert_eq!((s, gone[0]["errorCode"].as_str()), (404, Some("NOT_FOUND")));
    e.shutdown().await;
}

fn sign_jwt(pem: &str, claims: &Value) -> String {
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let der_b64: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    let der = base64::engine::general_purpose::STANDARD
        .decode(der_b64)
        .expect("pem");
    let key = ring::signature::RsaKeyPair::from_pkcs8(&der).expect("pkcs8");
    let signing_input = format!(
        "{}.{}",
        b64.encode(br#"{"alg":"RS256","typ":"JWT"}"#),
        b64.encode(claims.to_string())
    );
    let mut sig = vec![0; key.public().modulus_len()];
    key.sign(
        &ring::signature::RSA_PKCS1_SHA256,
        &ring::rand::SystemRandom::new(),
        signing_input.as_bytes(),
        &mut sig,
    )
    .expect("sign");
    format!("{signing_input}.{}", b64.encode(sig))
}

#[tokio::test]
async fn salesforce_jwt_bearer_and_refresh_grants_and_auth_errors() {
    let e = emu(Vendor::Salesforce).await;
    let c = client();
    let claims = json!({"iss": cred(&e, "client_id"), "sub": cred(&e, "username"),
                        "aud": "https://login.salesforce.com",
                        "exp": chrono::Utc::now().timestamp() + 120});
    let jwt = sign_jwt(&cred(&e, "private_key_pem"), &claims);
    let grant = "urn:ietf:params:oauth:grant-type:jwt-bearer".to_string();
    let (s, body) = sf_token(
        &e,
        &c,
        &[("grant_type", grant.clone()), ("assertion", jwt.clone())],
    )
    .await;
    assert_eq!(s, 200, "{body}");
    let token = body["access_token"].as_str().expect("token");
    assert!(body.get("refresh_token").is_none());
    let r = c
        .get(format!("{}/services/data/v62.0/limits", e.base_url()))
        .bearer_auth(token)
        .send()
        .await
        .expect("request");
    assert_eq!(r.status(), StatusCode::OK);
    assert!(
        r.headers()["sforce-limit-info"]
            .to_str()
            .unwrap_or_default()
            .starts_with("api-usage=")
    );
    e.expire_tokens();
    let r = c
        .get(format!("{}/services/data/v62.0/limits", e.base_url()))
        .bearer_auth(token)
        .send()
        .await
        .expect("request");
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "expired session");

    // `exp` as a numeric string (simple-salesforce sends it so) is accepted, as at Salesforce.
    let as_string = sign_jwt(
        &cred(&e, "private_key_pem"),
        &json!({"iss": cred(&e, "client_id"), "sub": cred(&e, "username"),
                "aud": "https://login.salesforce.com",
                "exp": (chrono::Utc::now().timestamp() + 120).to_string()}),
    );
    let (s, body) = sf_token(
        &e,
        &c,
        &[("grant_type", grant.clone()), ("assertion", as_string)],
    )
    .await;
    assert_eq!(s, 200, "{body}");

    // A tampered signature, a wrong subject, an expired assertion: invalid_grant.
    let mut tampered = jwt.clone();
    tampered.pop();
    tampered.push(if jwt.ends_with('A') { 'B' } else { 'A' });
    for bad in [
        tampered,
        sign_jwt(
            &cred(&e, "private_key_pem"),
            &json!({"iss": cred(&e, "client_id"), "sub": "someone@else",
             "aud": "https://login.salesforce.com", "exp": chrono::Utc::now().timestamp() + 120}),
        ),
        sign_jwt(
            &cred(&e, "private_key_pem"),
            &json!({"iss": cred(&e, "client_id"), "sub": cred(&e, "username"),
             "aud": "https://login.salesforce.com", "exp": chrono::Utc::now().timestamp() - 10}),
        ),
    ] {
        let (s, body) =
            sf_token(&e, &c, &[("grant_type", grant.clone()), ("assertion", bad)]).await;
        assert_eq!(
            (s, body["error"].as_str()),
            (400, Some("invalid_grant")),
            "{body}"
        );
    }

    let (s, body) = sf_token(
        &e,
        &c,
        &[
            ("grant_type", "refresh_token".into()),
            ("client_id", cred(&e, "client_id")),
            ("refresh_token", cred(&e, "refresh_token")),
        ],
    )
    .await;
    assert_eq!(s, 200, "{body}");
    let (s, body) = sf_token(
        &e,
        &c,
        &[
            ("grant_type", "password".into()),
            ("client_id", cred(&e, "client_id")),
            ("client_secret", cred(&e, "client_secret")),
            ("username", cred(&e, "username")),
            ("password", "wrong".into()),
        ],
    )
    .await;
    assert_eq!((s, body["error"].as_str()), (400, Some("invalid_grant")));

    let r = c
        .get(format!(
            "{}/services/data/v62.0/sobjects/Lead/00Q000000000001EAA",
            e.base_url()
        ))
        .bearer_auth("expired")
        .send()
        .await
        .expect("request");
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let body: Value = r.json().await.expect("json");
    assert_eq!(body[0]["errorCode"], "INVALID_SESSION_ID");
    e.shutdown().await;
}

#[tokio::test]
async fn salesforce_over_quota_is_403_request_limit_exceeded() {
    let e = emu_with(
        Vendor::Salesforce,
        SandboxOptions {
            rate_limit: Some("2/60".parse().expect("limit")),
            ..SandboxOptions::default()
        },
    )
    .await;
    let c = client();
    let token = sf_password_token(&e, &c).await;
    let url = format!(
        "{}/services/data/v62.0/query?q=SELECT+Id+FROM+Lead",
        e.base_url()
    );
    for used in 1..=2 {
        let r = c
            .get(&url)
            .bearer_auth(&token)
            .send()
            .await
            .expect("request");
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(
            r.headers()["sforce-limit-info"],
            format!("api-usage={used}/2").as_str()
        );
    }
    let r = c
        .get(&url)
        .bearer_auth(&token)
        .send()
        .await
        .expect("request");
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let body: Value = r.json().await.expect("json");
    assert_eq!(body[0]["errorCode"], "REQUEST_LIMIT_EXCEEDED");
    e.shutdown().await;
}

// -------------------------------------------------------------------------------- Stripe

struct St {
    e: Emulator,
    c: Client,
    key: String,
}

impl St {
    async fn new(opts: SandboxOptions) -> Self {
        let e = emu_with(Vendor::Stripe, opts).await;
        let key = cred(&e, "secret_key");
        assert!(key.starts_with("sk_test_"));
        St {
            e,
            c: client(),
            key,
        }
    }

    async fn post(
        &self,
        path: &str,
        form: &[(&str, &str)],
        idem: Option<&str>,
    ) -> reqwest::Response {
        let mut r = self
            .c
            .post(format!("{}{path}", self.e.base_url()))
            .bearer_auth(&self.key)
            .form(form);
        if let Some(k) = idem {
            r = r.header("Idempotency-Key", k);
        }
        r.send().await.expect("request")
    }

    async fn get(&self, path_and_query: &str) -> (u16, Value) {
        let r = self
            .c
            .get(format!("{}{path_and_query}", self.e.base_url()))
            .bearer_auth(&self.key)
            .send()
            .await
            .expect("request");
        let s = r.status().as_u16();
        (s, r.json().await.unwrap_or(Value::Null))
    }
}

#[tokio::test]
async fn stripe_customers_create_read_search_and_list_pages() {
    let st = St::new(consistent_search()).await;
    let r = st
        .post(
            "/v1/customers",
            &[
                ("email", "ada@example.com"),
                ("name", "Ada"),
                ("metadata[tenant]", "acme"),
                ("metadata[src]", "web"),
            ],
            None,
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    assert!(r.headers().contains_key("request-id"));
    let cus: Value = r.json().await.expect("json");
    let id = cus["id"].as_str().expect("id").to_string();
    assert!(id.starts_with("cus_"));
    assert_eq!(cus["metadata"], json!({"tenant": "acme", "src": "web"}));

    let r = st
        .post(
            &format!("/v1/customers/{id}"),
            &[("metadata[src]", ""), ("phone", "+15551234567")],
            None,
        )
        .await;
    let upd: Value = r.json().await.expect("json");
    assert_eq!(upd["metadata"], json!({"tenant": "acme"}));
    let (s, read) = st.get(&format!("/v1/customers/{id}")).await;
    assert_eq!((s, read["phone"].as_str()), (200, Some("+15551234567")));

    for i in 0..7 {
        let email = format!("c{i}@example.com");
        let r = st
            .post("/v1/customers", &[("email", email.as_str())], None)
            .await;
        assert_eq!(r.status(), StatusCode::OK);
    }
    let (s, found) = st
        .get(&format!(
            "/v1/customers/search?query={}",
            url_encode("email:'ada@example.com' AND metadata['tenant']:'acme'")
        ))
        .await;
    assert_eq!(s, 200, "{found}");
    assert_eq!(found["object"], "search_result");
    assert_eq!(found["data"][0]["id"], id.as_str());

    // Newest first, 3 per page: 8 customers over 3 pages.
    let mut seen = Vec::new();
    let mut after: Option<String> = None;
    let mut pages = 0;
    loop {
        let q = match &after {
            Some(a) => format!("/v1/customers?limit=3&starting_after={a}"),
            None => "/v1/customers?limit=3".to_string(),
        };
        let (s, page) = st.get(&q).await;
        assert_eq!(s, 200);
        assert_eq!(page["object"], "list");
        pages += 1;
        let data = page["data"].as_array().expect("data");
        seen.extend(
            data.iter()
                .map(|c| c["id"].as_str().unwrap_or_default().to_string()),
        );
        if page["has_more"] == false {
            break;
        }
        after = data.last().and_then(|c| c["id"].as_str()).map(String::from);
    }
    assert_eq!((pages, seen.len()), (3, 8));
    assert_eq!(seen.last(), Some(&id), "oldest last");

    let (s, gone) = st.get("/v1/customers/cus_nope").await;
    assert_eq!(
        (s, gone["error"]["code"].as_str()),
        (404, Some("resource_missing"))
    );
    st.e.shutdown().await;
}

#[tokio::test]
async fn stripe_idempotency_key_replays_and_rejects_different_params() {
    let st = St::new(consistent_search()).await;
    let cus: Value = st
        .post("/v1/customers", &[("email", "p@example.com")], None)
        .await
        .json()
        .await
        .expect("json");
    let cid = cus["id"].as_str().expect("id");
    let form = [
        ("amount", "2000"),
        ("currency", "usd"),
        ("customer", cid),
        ("metadata[order]", "6735"),
    ];
    let first = st.post("/v1/payment_intents", &form, Some("key-1")).await;
    assert_eq!(first.status(), StatusCode::OK);
    assert!(!first.headers().contains_key("idempotent-replayed"));
    let first: Value = first.json().await.expect("json");
    assert_eq!(first["status"], "requires_payment_method");
    assert_eq!(first["amount"], 2000);

    let again = st.post("/v1/payment_intents", &form, Some("key-1")).await;
    assert_eq!(again.status(), StatusCode::OK);
    assert_eq!(again.headers()["idempotent-replayed"], "true");
    let again: Value = again.json().await.expect("json");
    assert_eq!(again, first);

    let other = st
        .post(
            "/v1/payment_intents",
            &[("amount", "999"), ("currency", "usd")],
            Some("key-1"),
        )
        .await;
    assert_eq!(other.status(), StatusCode::BAD_REQUEST);
    let other: Value = other.json().await.expect("json");
    assert_eq!(other["error"]["type"], "idempotency_error");
    assert_eq!(st.e.records("payment_intents").len(), 1);

    let missing: Value = st
        .post("/v1/payment_intents", &[("currency", "usd")], None)
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(missing["error"]["code"], "parameter_missing");
    assert_eq!(missing["error"]["param"], "amount");
    let unknown: Value = st
        .post("/v1/customers", &[("emial", "x@y.z")], None)
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(unknown["error"]["code"], "parameter_unknown");

    let (s, by_customer) = st
        .get(&format!(
            "/v1/payment_intents?customer={cid}&expand[]=data.customer"
        ))
        .await;
    assert_eq!(s, 200);
    assert_eq!(by_customer["data"].as_array().map(Vec::len), Some(1));
    assert_eq!(
        by_customer["data"][0]["customer"]["email"], "p@example.com",
        "expanded"
    );
    let (s, found) = st
        .get(&format!(
            "/v1/payment_intents/search?query={}",
            url_encode("amount>1000 AND currency:'usd'")
        ))
        .await;
    assert_eq!((s, found["data"].as_array().map(Vec::len)), (200, Some(1)));

    // A subscription names a recurring price that exists (Stripe refuses unknown ids).
    let missing = st
        .post(
            "/v1/subscriptions",
            &[("customer", cid), ("items[0][price]", "price_123")],
            None,
        )
        .await;
    assert_eq!(missing.status(), StatusCode::BAD_REQUEST);
    let missing: Value = missing.json().await.expect("json");
    assert_eq!(missing["error"]["code"], "resource_missing");
    let price: Value = st
        .post(
            "/v1/prices",
            &[
                ("currency", "usd"),
                ("unit_amount", "1500"),
                ("recurring[interval]", "month"),
                ("product_data[name]", "Plan"),
            ],
            None,
        )
        .await
        .json()
        .await
        .expect("json");
    let price_id = price["id"].as_str().expect("price id");
    let sub: Value = st
        .post(
            "/v1/subscriptions",
            &[("customer", cid), ("items[0][price]", price_id)],
            None,
        )
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(sub["status"], "active");
    assert_eq!(sub["items"]["data"][0]["price"]["id"], price_id);
    let sid = sub["id"].as_str().expect("id");
    let r =
        st.c.delete(format!("{}/v1/subscriptions/{sid}", st.e.base_url()))
            .bearer_auth(&st.key)
            .send()
            .await
            .expect("request");
    let canceled: Value = r.json().await.expect("json");
    assert_eq!(canceled["status"], "canceled");
    let (_, active) = st.get("/v1/subscriptions").await;
    assert_eq!(active["data"].as_array().map(Vec::len), Some(0));
    st.e.shutdown().await;
}

#[tokio::test]
async fn stripe_auth_errors_and_rate_limit() {
    let e = emu_with(
        Vendor::Stripe,
        SandboxOptions {
            rate_limit: Some("3/60".parse().expect("limit")),
            ..SandboxOptions::default()
        },
    )
    .await;
    let c = client();
    let url = format!("{}/v1/customers", e.base_url());
    let r = c.get(&url).send().await.expect("request");
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let body: Value = r.json().await.expect("json");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("did not provide an API key")
    );
    let r = c
        .get(&url)
        .bearer_auth("sk_test_wrong1234")
        .send()
        .await
        .expect("request");
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let body: Value = r.json().await.expect("json");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .ends_with("1234")
    );
    // Basic auth with the key as user name works too.
    let r = c
        .get(&url)
        .basic_auth(cred(&e, "secret_key"), Some(""))
        .send()
        .await
        .expect("request");
    assert_eq!(r.status(), StatusCode::OK);
    let r = c
        .get(&url)
        .bearer_auth(cred(&e, "secret_key"))
        .send()
        .await
        .expect("request");
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    let body: Value = r.json().await.expect("json");
    assert_eq!(body["error"]["code"], "rate_limit");
    e.shutdown().await;
}

// ----------------------------------------------------------------------------- Pipedrive

struct Pd {
    e: Emulator,
    c: Client,
    token: String,
}

impl Pd {
    async fn send(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut r = self
            .c
            .request(method, format!("{}{path}", self.e.base_url()))
            .header("x-api-token", &self.token);
        if let Some(b) = body {
            r = r.json(&b);
        }
        let resp = r.send().await.expect("request");
        let s = resp.status().as_u16();
        (s, resp.json().await.unwrap_or(Value::Null))
    }
}

/// Pipedrive's field registries: custom fields added through `POST /v1/personFields` get
/// 40-character hash keys; v2 persons and deals keep custom values under those keys only (an
/// unknown key, a standard field's key or another object's custom field is ignored), merged on
/// PATCH; the registries page by `start`/`limit` and refuse what Pipedrive refuses.
#[tokio::test]
async fn pipedrive_custom_fields_live_under_generated_hash_keys() {
    use reqwest::Method as M;
    let e = emu(Vendor::Pipedrive).await;
    let pd = Pd {
        c: client(),
        token: cred(&e, "api_token"),
        e,
    };
    let (s, score) = pd
        .send(
            M::POST,
            "/v1/personFields",
            Some(json!({"name": "Lead score", "field_type": "double"})),
        )
        .await;
    assert_eq!(s, 200, "{score}");
    let score = score["data"]["key"].as_str().expect("key").to_string();
    assert!(score.len() == 40 && score.chars().all(|c| c.is_ascii_hexdigit()));
    let (_, city) = pd
        .send(
            M::POST,
            "/api/v1/personFields",
            Some(json!({"name": "City", "field_type": "varchar"})),
        )
        .await;
    let city = city["data"]["key"].as_str().expect("key").to_string();
    assert_ne!(city, score);
    let (_, deal_field) = pd
        .send(
            M::POST,
            "/v1/dealFields",
            Some(json!({"name": "Source", "field_type": "enum", "options": [{"label": "web"}]})),
        )
        .await;
    let deal_field = deal_field["data"]["key"].as_str().expect("key").to_string();
    assert_eq!(deal_field.len(), 40);
    for (body, why) in [
        (json!({"field_type": "varchar"}), "name"),
        (json!({"name": "X", "field_type": "colour"}), "field_type"),
        (json!({"name": "X", "field_type": "enum"}), "options"),
    ] {
        let (s, r) = pd.send(M::POST, "/v1/personFields", Some(body)).await;
        assert_eq!(s, 400, "{r}");
        assert!(r["error"].as_str().is_some_and(|m| m.contains(why)), "{r}");
    }
    // The list: standard fields (not editable) first, then the custom ones; paged.
    let (s, all) = pd.send(M::GET, "/v1/personFields?limit=500", None).await;
    assert_eq!(s, 200);
    let defs = all["data"].as_array().expect("fields");
    assert!(
        defs.iter()
            .any(|d| d["key"] == "name" && d["edit_flag"] == false)
    );
    let custom: Vec<&str> = defs
        .iter()
        .filter(|d| d["edit_flag"] == true)
        .filter_map(|d| d["key"].as_str())
        .collect();
    assert_eq!(custom, [score.as_str(), city.as_str()]);
    let (_, page) = pd
        .send(M::GET, "/v1/personFields?start=0&limit=2", None)
        .await;
    assert_eq!(page["data"].as_array().map(Vec::len), Some(2));
    assert_eq!(page["additional_data"]["pagination"]["next_start"], 2);

    let unknown = "ffffffffffffffffffffffffffffffffffffffff";
    let (s, p) = pd
        .send(
            M::POST,
            "/api/v2/persons",
            Some(json!({"name": "Ada", "custom_fields": {
                score.clone(): 92, unknown: "x", "name": "Bob", deal_field.clone(): "web"}})),
        )
        .await;
    assert_eq!(s, 200, "{p}");
    let id = p["data"]["id"].as_u64().expect("id");
    assert_eq!(p["data"]["custom_fields"], json!({score.clone(): 92}));
    let (_, p) = pd
        .send(
            M::PATCH,
            &format!("/api/v2/persons/{id}"),
            Some(json!({"custom_fields": {city.clone(): "Miami"}})),
        )
        .await;
    assert_eq!(
        p["data"]["custom_fields"],
        json!({score.clone(): 92, city.clone(): "Miami"})
    );
    let (_, read) = pd
        .send(M::GET, &format!("/api/v2/persons/{id}"), None)
        .await;
    assert_eq!(read["data"]["custom_fields"][&score], 92);
    assert_eq!(read["data"]["name"], "Ada");
    let (_, d) = pd
        .send(
            M::POST,
            "/api/v2/deals",
            Some(json!({"title": "T", "custom_fields": {deal_field.clone(): "web", score.clone(): 1}})),
        )
        .await;
    assert_eq!(d["data"]["custom_fields"], json!({deal_field: "web"}));
    let (s, _) = pd.send(M::GET, "/v1/productFields", None).await;
    assert_eq!(s, 404);
}

#[tokio::test]
async fn pipedrive_persons_deals_leads_with_both_paging_styles() {
    use reqwest::Method as M;
    let e = emu(Vendor::Pipedrive).await;
    let pd = Pd {
        c: client(),
        token: cred(&e, "api_token"),
        e,
    };
    let (s, created) = pd
        .send(M::POST, "/api/v2/persons",
              Some(json!({"name": "Ada Lovelace",
                          "emails": [{"value": "ada@example.com", "primary": true, "label": "work"}],
                          "phones": [{"value": "+15551234567", "primary": true, "label": "mobile"}]})))
        .await;
    assert_eq!(s, 200, "{created}");
    assert_eq!(created["success"], true);
    let pid = created["data"]["id"].as_u64().expect("id");
    let (s, read) = pd
        .send(M::GET, &format!("/api/v2/persons/{pid}"), None)
        .await;
    assert_eq!(
        (s, read["data"]["emails"][0]["value"].as_str()),
        (200, Some("ada@example.com"))
    );
    let (s, bad) = pd
        .send(M::POST, "/api/v2/persons", Some(json!({"emails": []})))
        .await;
    assert_eq!((s, bad["success"].as_bool()), (400, Some(false)));

    let (s, found) = pd
        .send(
            M::GET,
            "/api/v2/persons/search?term=ADA@example.com&fields=email&exact_match=true",
            None,
        )
        .await;
    assert_eq!(s, 200);
    assert_eq!(found["data"]["items"][0]["item"]["id"].as_u64(), Some(pid));

    for i in 0..6 {
        let (s, _) = pd
            .send(
                M::POST,
                "/api/v2/persons",
                Some(json!({"name": format!("P{i}")})),
            )
            .await;
        assert_eq!(s, 200);
    }
    let mut cursor: Option<String> = None;
    let (mut pages, mut total) = (0, 0);
    loop {
        let path = match &cursor {
            Some(c) => format!("/api/v2/persons?limit=3&cursor={c}"),
            None => "/api/v2/persons?limit=3".to_string(),
        };
        let (s, page) = pd.send(M::GET, &path, None).await;
        assert_eq!(s, 200);
        pages += 1;
        total += page["data"].as_array().map_or(0, Vec::len);
        match page["additional_data"]["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => break,
        }
    }
    assert_eq!((pages, total), (3, 7));

    let (s, deal) = pd
        .send(
            M::POST,
            "/api/v2/deals",
            Some(json!({"title": "Big deal", "value": 5000, "person_id": pid})),
        )
        .await;
    assert_eq!(s, 200, "{deal}");
    let did = deal["data"]["id"].as_u64().expect("id");
    let (s, upd) = pd
        .send(
            M::PATCH,
            &format!("/api/v2/deals/{did}"),
            Some(json!({"status": "won"})),
        )
        .await;
    assert_eq!((s, upd["data"]["status"].as_str()), (200, Some("won")));
    let (s, _) = pd.send(M::GET, "/api/v2/deals/99999", None).await;
    assert_eq!(s, 404);

    // v1 leads: start/limit paging with additional_data.pagination.
    for i in 0..5 {
        let (s, lead) = pd
            .send(
                M::POST,
                "/v1/leads",
                Some(json!({"title": format!("Lead {i}"), "person_id": pid,
                              "value": {"amount": 100, "currency": "USD"}})),
            )
            .await;
        assert_eq!(s, 201, "{lead}");
    }
    let (s, _) = pd
        .send(M::POST, "/v1/leads", Some(json!({"title": "orphan"})))
        .await;
    assert_eq!(s, 400);
    let mut start = Some(0);
    let (mut pages, mut total) = (0, 0);
    while let Some(st) = start {
        let (s, page) = pd
            .send(M::GET, &format!("/v1/leads?start={st}&limit=2"), None)
            .await;
        assert_eq!(s, 200);
        pages += 1;
        total += page["data"].as_array().map_or(0, Vec::len);
        let p = &page["additional_data"]["pagination"];
        start =
            (p["more_items_in_collection"] == true).then(|| p["next_start"].as_u64().unwrap_or(0));
    }
    assert_eq!((pages, total), (3, 5));
    let (s, act) = pd
        .send(M::POST, "/v1/activities",
              Some(json!({"subject": "Call back", "type": "call", "due_date": "2026-12-01", "person_id": pid})))
        .await;
    assert_eq!((s, act["success"].as_bool()), (201, Some(true)), "{act}");
    let (s, _) = pd
        .send(
            M::POST,
            "/v1/activities",
            Some(json!({"subject": "x", "due_date": "tomorrow"})),
        )
        .await;
    assert_eq!(s, 400);
    let (s, found) = pd.send(M::GET, "/v1/leads/search?term=Lead 3", None).await;
    assert_eq!(
        (s, found["data"]["items"].as_array().map(Vec::len)),
        (200, Some(1))
    );
    assert_eq!(pd.e.records("leads").len(), 5);
    pd.e.shutdown().await;
}

#[tokio::test]
async fn pipedrive_auth_by_query_token_and_burst_limit() {
    let e = emu_with(
        Vendor::Pipedrive,
        SandboxOptions {
            rate_limit: Some("2/2".parse().expect("limit")),
            ..SandboxOptions::default()
        },
    )
    .await;
    let c = client();
    let r = c
        .get(format!("{}/api/v2/persons", e.base_url()))
        .send()
        .await
        .expect("request");
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let body: Value = r.json().await.expect("json");
    assert_eq!(body["error"], "unauthorized access");
    let url = format!(
        "{}/api/v2/persons?api_token={}",
        e.base_url(),
        cred(&e, "api_token")
    );
    let r = c.get(&url).send().await.expect("request");
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()["x-ratelimit-limit"], "2");
    assert_eq!(r.headers()["x-ratelimit-remaining"], "0");
    let r = c.get(&url).send().await.expect("request");
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(r.headers().contains_key("retry-after"));
    assert!(r.headers().contains_key("x-ratelimit-reset"));
    let body: Value = r.json().await.expect("json");
    assert_eq!(body["success"], false);
    e.shutdown().await;
}

// ------------------------------------------------------------------------------- Zendesk

struct Zd {
    e: Emulator,
    c: Client,
}

impl Zd {
    async fn send(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> (u16, Value) {
        let user = format!("{}/token", cred(&self.e, "email"));
        let mut r = self
            .c
            .request(method, format!("{}{path}", self.e.base_url()))
            .basic_auth(user, Some(cred(&self.e, "api_token")));
        if let Some(b) = body {
            r = r.json(&b);
        }
        let resp = r.send().await.expect("request");
        let s = resp.status().as_u16();
        (s, resp.json().await.unwrap_or(Value::Null))
    }
}

#[tokio::test]
async fn zendesk_users_tickets_cursor_paging_and_bulk_jobs() {
    use reqwest::Method as M;
    let zd = Zd {
        e: emu(Vendor::Zendesk).await,
        c: client(),
    };
    let (s, u) = zd
        .send(M::POST, "/api/v2/users.json",
              Some(json!({"user": {"name": "Ada", "email": "Ada@Example.com", "external_id": "crm-1"}})))
        .await;
    assert_eq!(s, 201, "{u}");
    let uid = u["user"]["id"].as_u64().expect("id");
    let (s, dup) = zd
        .send(
            M::POST,
            "/api/v2/users",
            Some(json!({"user": {"name": "Ada 2", "email": "ada@example.com"}})),
        )
        .await;
    assert_eq!(s, 422);
    assert_eq!(dup["error"], "RecordInvalid");
    assert_eq!(dup["details"]["email"][0]["error"], "DuplicateValue");
    let (s, found) = zd
        .send(
            M::GET,
            "/api/v2/users/search.json?query=email:ada@example.com",
            None,
        )
        .await;
    assert_eq!(s, 200);
    assert_eq!(found["users"][0]["id"].as_u64(), Some(uid));
    let (s, upd) = zd
        .send(
            M::POST,
            "/api/v2/users/create_or_update",
            Some(json!({"user": {"name": "Ada L", "email": "ada@example.com"}})),
        )
        .await;
    assert_eq!((s, upd["user"]["id"].as_u64()), (200, Some(uid)));

    let (s, t) = zd
        .send(
            M::POST,
            "/api/v2/tickets.json",
            Some(
                json!({"ticket": {"subject": "Help", "comment": {"body": "It broke"},
                                     "requester": {"name": "Bob", "email": "bob@example.com"},
                                     "priority": "high", "tags": ["vip"]}}),
            ),
        )
        .await;
    assert_eq!(s, 201, "{t}");
    assert_eq!(t["ticket"]["status"], "new");
    assert_eq!(t["ticket"]["description"], "It broke");
    assert!(t["audit"].is_object());
    let tid = t["ticket"]["id"].as_u64().expect("id");
    let (s, bad) = zd
        .send(
            M::POST,
            "/api/v2/tickets",
            Some(json!({"ticket": {"subject": "x", "comment": {"body": "y"}, "priority": "asap"}})),
        )
        .await;
    assert_eq!(
        (s, bad["details"]["priority"][0]["error"].as_str()),
        (422, Some("InvalidValue"))
    );
    let (s, _) = zd
        .send(
            M::POST,
            "/api/v2/tickets",
            Some(json!({"ticket": {"subject": "no body"}})),
        )
        .await;
    assert_eq!(s, 422);
    let (s, upd) = zd
        .send(
            M::PUT,
            &format!("/api/v2/tickets/{tid}.json"),
            Some(json!({"ticket": {"status": "solved"}})),
        )
        .await;
    assert_eq!((s, upd["ticket"]["status"].as_str()), (200, Some("solved")));
    let (s, read) = zd
        .send(M::GET, &format!("/api/v2/tickets/{tid}"), None)
        .await;
    assert_eq!((s, read["ticket"]["tags"][0].as_str()), (200, Some("vip")));
    let (s, missing) = zd.send(M::GET, "/api/v2/tickets/999999.json", None).await;
    assert_eq!(
        (s, missing["error"].as_str()),
        (404, Some("RecordNotFound"))
    );

    // Search API: type, field terms (quoted), requester e-mail, updated>, offset paging.
    let (s, me) = zd.send(M::GET, "/api/v2/users/me.json", None).await;
    assert_eq!(
        (s, me["user"]["email"].as_str()),
        (200, Some("agent@switchyard.sandbox"))
    );
    let (s, found) = zd
        .send(
            M::GET,
            &format!(
                "/api/v2/search.json?query={}",
                url_encode("type:ticket requester:bob@example.com tags:\"vip\"")
            ),
            None,
        )
        .await;
    assert_eq!(s, 200, "{found}");
    assert_eq!(found["count"], 1);
    assert_eq!(found["results"][0]["result_type"], "ticket");
    let (s, changed) = zd
        .send(
            M::GET,
            &format!(
                "/api/v2/search.json?query={}&sort_by=updated_at&sort_order=asc",
                url_encode("type:ticket updated>2000-01-01T00:00:00Z")
            ),
            None,
        )
        .await;
    assert_eq!((s, changed["count"].as_u64()), (200, Some(1)));
    let (_, none) = zd
        .send(
            M::GET,
            &format!(
                "/api/v2/search.json?query={}",
                url_encode("type:ticket external_id:\"nope\"")
            ),
            None,
        )
        .await;
    assert_eq!(none["count"], 0);

    // Bulk create: a queued job, completed when polled, per-item results.
    let tickets: Vec<Value> = (0..4)
        .map(|i| json!({"subject": format!("Bulk {i}"), "comment": {"body": "b"}}))
        .collect();
    let (s, job) = zd
        .send(
            M::POST,
            "/api/v2/tickets/create_many.json",
            Some(json!({"tickets": tickets})),
        )
        .await;
    assert_eq!(s, 200, "{job}");
    assert_eq!(job["job_status"]["status"], "queued");
    let job_url = job["job_status"]["url"].as_str().expect("url");
    let path = job_url.trim_start_matches(zd.e.base_url());
    let (s, polled) = zd.send(M::GET, path, None).await;
    assert_eq!(s, 200);
    assert_eq!(polled["job_status"]["status"], "completed");
    assert_eq!(
        polled["job_status"]["results"].as_array().map(Vec::len),
        Some(4)
    );
    assert_eq!(zd.e.records("tickets").len(), 5);

    // Cursor paging: 5 tickets, 2 per page → 3 pages via links.next.
    let mut path = "/api/v2/tickets.json?page[size]=2".to_string();
    let (mut pages, mut total) = (0, 0);
    loop {
        let (s, page) = zd.send(M::GET, &path, None).await;
        assert_eq!(s, 200, "{page}");
        pages += 1;
        total += page["tickets"].as_array().map_or(0, Vec::len);
        if page["meta"]["has_more"] == false {
            assert!(page["links"]["next"].is_null());
            break;
        }
        let next = page["links"]["next"].as_str().expect("next link");
        path = next.trim_start_matches(zd.e.base_url()).to_string();
    }
    assert_eq!((pages, total), (3, 5));
    let mut next = Some(format!(
        "/api/v2/search.json?per_page=2&query={}",
        url_encode("type:ticket")
    ));
    let mut search_pages = 0;
    while let Some(path) = next {
        let (s, page) = zd.send(M::GET, &path, None).await;
        assert_eq!(s, 200);
        search_pages += 1;
        next = page["next_page"]
            .as_str()
            .map(|u| u.trim_start_matches(zd.e.base_url()).to_string());
    }
    assert_eq!(search_pages, 3);
    let (s, offset) = zd
        .send(M::GET, "/api/v2/tickets.json?per_page=2&page=3", None)
        .await;
    assert_eq!(s, 200);
    assert_eq!(offset["count"], 5);
    assert!(offset["next_page"].is_null());
    assert!(offset["previous_page"].is_string());
    zd.e.shutdown().await;
}

#[tokio::test]
async fn zendesk_auth_and_rate_limit_retry_after() {
    let e = emu_with(
        Vendor::Zendesk,
        SandboxOptions {
            rate_limit: Some("1/60".parse().expect("limit")),
            ..SandboxOptions::default()
        },
    )
    .await;
    let c = client();
    let url = format!("{}/api/v2/users.json", e.base_url());
    let r = c
        .get(&url)
        .basic_auth(format!("{}/token", cred(&e, "email")), Some("wrong"))
        .send()
        .await
        .expect("request");
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(r.headers()["x-rate-limit"], "1");
    let body: Value = r.json().await.expect("json");
    assert_eq!(body["error"], "Couldn't authenticate you");
    let r = c
        .get(&url)
        .basic_auth(
            format!("{}/token", cred(&e, "email")),
            Some(cred(&e, "api_token")),
        )
        .send()
        .await
        .expect("request");
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry: u64 = r.headers()["retry-after"]
        .to_str()
        .unwrap_or("0")
        .parse()
        .unwrap_or(0);
    assert!((1..=60).contains(&retry), "{retry}");
    assert_eq!(r.headers()["x-rate-limit-remaining"], "0");
    e.shutdown().await;
}

// --------------------------------------------------------------------- every vendor

#[tokio::test]
async fn every_vendor_injects_vendor_shaped_5xx_drops_and_malformed_bodies() {
    for vendor in Vendor::ALL {
        let e = emu_with(
            vendor,
            script(&[
                (1, FaultKind::ServerError { status: 503 }),
                (2, FaultKind::Drop),
                (3, FaultKind::Malformed),
            ]),
        )
        .await;
        let c = client();
        let url = format!("{}/anything", e.base_url());
        let r = c.get(&url).send().await.expect("5xx answers");
        assert_eq!(r.status().as_u16(), 503, "{vendor}");
        let text = r.text().await.unwrap_or_default();
        if vendor == Vendor::Acmecrm {
            // AcmeCRM answers errors in XML.
            assert!(
                text.contains("<error code=\"server_error\">"),
                "{vendor}: {text}"
            );
        } else {
            let body: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
            assert!(
                body.is_object() || body.is_array(),
                "{vendor}: 5xx body is vendor JSON"
            );
        }
        assert!(c.get(&url).send().await.is_err(), "{vendor}: dropped");
        let r = c.get(&url).send().await.expect("malformed answers");
        assert_eq!(r.status(), StatusCode::OK, "{vendor}");
        let text = r.text().await.unwrap_or_default();
        assert!(
            serde_json::from_str::<Value>(&text).is_err(),
            "{vendor}: {text}"
        );
        assert_eq!(e.stats().faults_total(), 3, "{vendor}");
        assert_eq!(format!("{vendor}").parse::<Vendor>().ok(), Some(vendor));
        e.shutdown().await;
    }
}

/// Regression: huge paging numbers from a client overflowed offset arithmetic.
#[tokio::test]
async fn huge_paging_values_are_rejected_or_empty_not_a_crash() {
    use reqwest::Method as M;
    let hs = Hs::new(SandboxOptions::default()).await;
    let (s, _) = hs
        .send(
            M::POST,
            "/crm/v3/objects/contacts/search",
            Some(json!({"filterGroups": [], "after": "18446744073709551615", "limit": 200})),
        )
        .await;
    assert_eq!(s, 400);
    hs.e.shutdown().await;

    let zd = Zd {
        e: emu(Vendor::Zendesk).await,
        c: client(),
    };
    let (s, _) = zd
        .send(
            M::GET,
            "/api/v2/tickets.json?page=18446744073709551615&per_page=100",
            None,
        )
        .await;
    assert_eq!(s, 400);
    let (s, _) = zd
        .send(
            M::GET,
            "/api/v2/search.json?query=type:ticket&page=18446744073709551615",
            None,
        )
        .await;
    assert_eq!(s, 422);
    zd.e.shutdown().await;

    let e = emu(Vendor::Pipedrive).await;
    let pd = Pd {
        c: client(),
        token: cred(&e, "api_token"),
        e,
    };
    let (s, page) = pd
        .send(
            M::GET,
            "/v1/leads?start=18446744073709551615&limit=10",
            None,
        )
        .await;
    assert_eq!((s, page["data"].as_array().map(Vec::len)), (200, Some(0)));
    pd.e.shutdown().await;
}

// ------------------------------------------------------------------- issue 19 fidelity

/// Zendesk keeps every comment a ticket gets, and its incremental cursor export walks every
/// change once per record, then from the returned cursor only what changed after.
#[tokio::test]
async fn zendesk_keeps_every_comment_and_serves_the_incremental_cursor_export() {
    use reqwest::Method as M;
    let zd = Zd {
        e: emu(Vendor::Zendesk).await,
        c: client(),
    };
    let (s, t) = zd
        .send(
            M::POST,
            "/api/v2/tickets.json",
            Some(json!({"ticket": {"subject": "Help", "comment": {"body": "first"}}})),
        )
        .await;
    assert_eq!(s, 201, "{t}");
    let tid = t["ticket"]["id"].as_u64().expect("id");
    for body in ["second", "third <b>"] {
        let (s, u) = zd
            .send(
                M::PUT,
                &format!("/api/v2/tickets/{tid}.json"),
                Some(json!({"ticket": {"comment": {"body": body, "public": false}}})),
            )
            .await;
        assert_eq!(s, 200, "{u}");
    }
    let (s, c) = zd
        .send(
            M::GET,
            &format!("/api/v2/tickets/{tid}/comments.json"),
            None,
        )
        .await;
    assert_eq!(s, 200, "{c}");
    let bodies: Vec<&str> = c["comments"]
        .as_array()
        .expect("comments")
        .iter()
        .filter_map(|c| c["body"].as_str())
        .collect();
    assert_eq!(bodies, ["first", "second", "third <b>"]);
    assert_eq!(c["comments"][1]["public"], false);
    let (s, _) = zd
        .send(M::GET, "/api/v2/tickets/987654/comments.json", None)
        .await;
    assert_eq!(s, 404);

    let (s, page) = zd
        .send(
            M::GET,
            "/api/v2/incremental/tickets/cursor.json?start_time=0",
            None,
        )
        .await;
    assert_eq!(s, 200, "{page}");
    let ids: Vec<u64> = page["tickets"]
        .as_array()
        .expect("tickets")
        .iter()
        .filter_map(|t| t["id"].as_u64())
        .collect();
    assert_eq!(ids, [tid], "three writes of one ticket appear once");
    assert_eq!(page["end_of_stream"], true);
    let cursor = page["after_cursor"].as_str().expect("cursor").to_string();
    let (s, t2) = zd
        .send(
            M::POST,
            "/api/v2/tickets.json",
            Some(json!({"ticket": {"subject": "Later", "comment": {"body": "x"}}})),
        )
        .await;
    assert_eq!(s, 201);
    let (s, next) = zd
        .send(
            M::GET,
            &format!("/api/v2/incremental/tickets/cursor.json?cursor={cursor}"),
            None,
        )
        .await;
    assert_eq!(s, 200, "{next}");
    assert_eq!(next["tickets"].as_array().map(Vec::len), Some(1));
    assert_eq!(next["tickets"][0]["id"], t2["ticket"]["id"]);
    let (s, _) = zd
        .send(M::GET, "/api/v2/incremental/tickets/cursor.json", None)
        .await;
    assert_eq!(s, 400, "start_time or cursor is required");
    zd.e.shutdown().await;
}

/// Salesforce routes a trailing-slash path as without (simple-salesforce sends them), and its
/// SOQL takes OR, NOT, parentheses and parent relationship fields.
#[tokio::test]
async fn salesforce_trailing_slash_and_soql_or_not_parentheses_relationships() {
    use reqwest::Method as M;
    let e = emu(Vendor::Salesforce).await;
    let c = client();
    let token = sf_password_token(&e, &c).await;
    let sf = Sf { e: &e, c, token };
    let (s, acct) = sf
        .send(
            M::POST,
            "/sobjects/Account/",
            Some(json!({"Name": "Acme"})),
            None,
        )
        .await;
    assert_eq!(s, 201, "{acct}");
    let acct_id = acct["id"].as_str().expect("id").to_string();
    for (first, last, account) in [
        ("Ada", "Lovelace", Some(acct_id.as_str())),
        ("Bob", "Smith", None),
        ("Cy", "Jones", None),
    ] {
        let mut body = json!({"FirstName": first, "LastName": last});
        if let Some(a) = account {
            body["AccountId"] = json!(a);
        }
        let (s, r) = sf
            .send(M::POST, "/sobjects/Contact", Some(body), None)
            .await;
        assert_eq!(s, 201, "{r}");
    }
    let (s, read) = sf
        .send(M::GET, &format!("/sobjects/Account/{acct_id}/"), None, None)
        .await;
    assert_eq!((s, read["Name"].as_str()), (200, Some("Acme")));

    let names = |rows: Vec<Value>| -> Vec<String> {
        let mut v: Vec<String> = rows
            .iter()
            .filter_map(|r| r["LastName"].as_str().map(String::from))
            .collect();
        v.sort();
        v
    };
    let (rows, _) = sf
        .query_all(
            "SELECT Id, LastName FROM Contact WHERE (FirstName = 'Ada' OR FirstName = 'Cy') AND NOT LastName = 'Jones'",
            10,
        )
        .await;
    assert_eq!(names(rows), ["Lovelace"]);
    let (rows, _) = sf
        .query_all(
            "SELECT Id, LastName FROM Contact WHERE FirstName = 'Bob' OR LastName = 'Jones' ORDER BY LastName",
            10,
        )
        .await;
    assert_eq!(names(rows), ["Jones", "Smith"]);
    let (rows, _) = sf
        .query_all(
            "SELECT Id, LastName, Account.Name FROM Contact WHERE Account.Name = 'Acme'",
            10,
        )
        .await;
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0]["Account"]["Name"], "Acme");
}

/// Stripe refuses ids of objects that do not exist (naming the parameter) and answers a
/// deleted customer with its tombstone.
#[tokio::test]
async fn stripe_checks_referenced_ids_and_keeps_deleted_customer_tombstones() {
    let st = St::new(SandboxOptions::default()).await;
    let r = st
        .post(
            "/v1/payment_intents",
            &[
                ("amount", "500"),
                ("currency", "usd"),
                ("customer", "cus_nope"),
            ],
            None,
        )
        .await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let body: Value = r.json().await.expect("json");
    assert_eq!(body["error"]["code"], "resource_missing");
    assert_eq!(body["error"]["param"], "customer");
    let r = st
        .post(
            "/v1/prices",
            &[
                ("currency", "usd"),
                ("unit_amount", "100"),
                ("product", "prod_nope"),
            ],
            None,
        )
        .await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);

    let cus: Value = st
        .post("/v1/customers", &[("email", "gone@example.com")], None)
        .await
        .json()
        .await
        .expect("json");
    let cid = cus["id"].as_str().expect("id");
    let r =
        st.c.delete(format!("{}/v1/customers/{cid}", st.e.base_url()))
            .bearer_auth(&st.key)
            .send()
            .await
            .expect("request");
    assert_eq!(r.status(), StatusCode::OK);
    let (s, gone) = st.get(&format!("/v1/customers/{cid}")).await;
    assert_eq!(s, 200, "{gone}");
    assert_eq!(
        gone,
        json!({"id": cid, "object": "customer", "deleted": true})
    );
    let (s, list) = st.get("/v1/customers").await;
    assert_eq!(s, 200);
    assert!(
        list["data"]
            .as_array()
            .expect("data")
            .iter()
            .all(|c| c["id"] != cid),
        "a deleted customer is not listed"
    );
}
