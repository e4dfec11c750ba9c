//! Attribution: every model on hand-checkable journeys, agreement with an independent
//! implementation (`channelattribution`, output committed in tests/attribution/reference.json),
//! and `switchyard attribute` end to end on the example specs.

use crate::cli::{repo_root, switchyard};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use switchyard::attribution::markov::markov;
use switchyard::attribution::models::{HeuristicParams, Journey, Journeys, heuristic_table};
use switchyard::attribution::shapley::shapley;
use switchyard::attribution::{Outcome, Plan, Report};
use switchyard::spec::AttributionSpec;
use switchyard::spec::attribution::ModelKind;

/// A spec over `web` touches and `shop` orders joined by email; 30-day lookback.
const SPEC: &str = r#"
spec_version = 1
[attribution]
name = "hand"
tenant = "t"
lookback_days = 30

[[attribution.identity]]
source = "web"
email = "email"
phone = "phone"
customer_id = "crm_id"
[[attribution.identity]]
source = "shop"
email = "customer.email"
phone = "customer.phone"
[[attribution.identity]]
source = "crm"
email = "email"
customer_id = "id"

[[attribution.conversions]]
name = "order"
source = "shop"
condition = "status == 'paid'"
value = "total"
time = "at"

[[attribution.touchpoints]]
name = "visit"
source = "web"
channel = "channel"
time = "at"
"#;

const DAY: i64 = 86_400;
const T0: i64 = 1_704_067_200; // 2024-01-01T00:00:00Z

fn touch(email: &str, channel: &str, day: f64) -> Value {
    json!({"source": "web", "email": email, "channel": channel, "at": T0 + (day * DAY as f64) as i64})
}

fn order(email: &str, total: f64, day: f64) -> Value {
    json!({"source": "shop", "id": format!("o{day}"), "status": "paid", "total": total,
           "customer": {"email": email}, "at": T0 + (day * DAY as f64) as i64})
}

fn run(records: &[Value]) -> Outcome {
    let spec: AttributionSpec = toml::from_str(SPEC).expect("spec parses");
    let plan = Plan::compile(&spec).expect("spec compiles");
    plan.run(records).expect("runs")
}

/// Assert a model's table: channel → (conversions, value), exactly (1e-9); unlisted channels 0.
fn check(report: &Report, model: &str, expected: &[(&str, f64, f64)]) {
    let table = &report.models[model];
    for (channel, cell) in table {
        let (c, v) = expected
            .iter()
            .find(|(n, ..)| n == channel)
            .map_or((0.0, 0.0), |&(_, c, v)| (c, v));
        assert!(
            (cell.conversions - c).abs() < 1e-9 && (cell.value - v).abs() < 1e-6,
            "{model}/{channel}: got {cell:?}, expected ({c}, {v})"
        );
    }
    for (channel, ..) in expected {
        assert!(table.contains_key(*channel), "{model}: no {channel}");
    }
}

#[test]
fn single_touch_gets_everything_in_every_model() {
    let out = run(&[touch("a@x.io", "search", 0.0), order("A@X.io ", 100.0, 2.0)]);
    for model in ModelKind::ALL {
        check(&out.report, model.as_str(), &[("search", 1.0, 100.0)]);
    }
    assert_eq!(out.report.unattributed.conversions, 0.0);
    assert!(out.records[0].attributed);
}

#[test]
fn repeated_channels() {
    // email d0, search d1, email d2; order at d2 (same instant as the last touch: it counts).
    let out = run(&[
        touch("a@x.io", "email", 0.0),
        touch("a@x.io", "search", 1.0),
        touch("a@x.io", "email", 2.0),
        order("a@x.io", 90.0, 2.0),
    ]);
    let r = &out.report;
    check(r, "first_touch", &[("email", 1.0, 90.0)]);
    check(r, "last_touch", &[("email", 1.0, 90.0)]);
    check(
        r,
        "linear",
        &[("email", 2.0 / 3.0, 60.0), ("search", 1.0 / 3.0, 30.0)],
    );
    // Ages 2, 1, 0 days, half-life 7: weights 2^(-2/7), 2^(-1/7), 1.
    let (w0, w1, w2) = (2f64.powf(-2.0 / 7.0), 2f64.powf(-1.0 / 7.0), 1.0);
    let s = w0 + w1 + w2;
    let email = (w0 + w2) / s;
    check(
        r,
        "time_decay",
        &[
            ("email", email, 90.0 * email),
            ("search", 1.0 - email, 90.0 * (1.0 - email)),
        ],
    );
    check(
        r,
        "position_based",
        &[("email", 0.8, 72.0), ("search", 0.2, 18.0)],
    );
    // start→email; email→search ½, email→conv ½; search→email. P = 1.
    // Without email P = 0 (RE 1); without search P = ½ (RE ½): credits 2/3 and 1/3.
    check(
        r,
        "markov",
        &[("email", 2.0 / 3.0, 60.0), ("search", 1.0 / 3.0, 30.0)],
    );
    // One journey over {email, search}: v is a unanimity game, half each.
    check(r, "shapley", &[("email", 0.5, 45.0), ("search", 0.5, 45.0)]);
}

#[test]
fn ties_in_time_keep_input_order() {
    let out = run(&[
        touch("a@x.io", "display", 0.0),
        touch("a@x.io", "social", 0.0),
        order("a@x.io", 10.0, 1.0),
    ]);
    let r = &out.report;
    check(r, "first_touch", &[("display", 1.0, 10.0)]);
    check(r, "last_touch", &[("social", 1.0, 10.0)]);
    for m in ["linear", "time_decay", "position_based", "shapley"] {
        check(r, m, &[("display", 0.5, 5.0), ("social", 0.5, 5.0)]);
    }
    // display→social→conv: removing either kills the only path; RE 1 each.
    check(r, "markov", &[("display", 0.5, 5.0), ("social", 0.5, 5.0)]);
}

#[test]
fn touches_outside_the_lookback_or_after_the_conversion_never_count() {
    let out = run(&[
        touch("a@x.io", "display", -40.0),
        touch("a@x.io", "email", -5.0),
        touch("a@x.io", "social", 1.0),
        order("a@x.io", 50.0, 0.0),
    ]);
    for model in ModelKind::ALL {
        let m = model.as_str();
        check(&out.report, m, &[("email", 1.0, 50.0)]);
        assert_eq!(
            out.report.models[m].get("display").map(|c| c.conversions),
            None,
            "{m}"
        );
    }
    let touches: Vec<_> = out.records[0]
        .touchpoints
        .iter()
        .map(|t| t.channel.as_str())
        .collect();
    assert_eq!(touches, ["email"]);
}

#[test]
fn zero_conversions_and_unattributed_conversions() {
    // Only touches: every table is all zeros and nothing is unattributed.
    let out = run(&[
        touch("a@x.io", "search", 0.0),
        touch("b@x.io", "email", 1.0),
    ]);
    assert!(out.records.is_empty());
    for model in ModelKind::ALL {
        check(
            &out.report,
            model.as_str(),
            &[("search", 0.0, 0.0), ("email", 0.0, 0.0)],
        );
    }
    assert_eq!(out.report.unattributed.conversions, 0.0);

    // A conversion without touches is reported, not dropped.
    let out = run(&[touch("a@x.io", "search", 0.0), order("z@x.io", 70.0, 3.0)]);
    assert_eq!(out.records.len(), 1);
    assert!(!out.records[0].attributed);
    assert_eq!(
        out.records[0].treatment_assignment.treatment_group,
        "unassigned"
    );
    assert_eq!(out.report.unattributed.conversions, 1.0);
    assert_eq!(out.report.unattributed.value, 70.0);
    for model in ModelKind::ALL {
        check(&out.report, model.as_str(), &[("search", 0.0, 0.0)]);
    }
}

#[test]
fn markov_counts_non_converting_paths() {
    // a: search → order. b: search, display, never orders.
    // start→search 1; search→conv ½, search→display ½; display→null.
    // P = ½; without search 0 (RE 1); without display still ½ (RE 0).
    let out = run(&[
        touch("a@x.io", "search", 0.0),
        order("a@x.io", 20.0, 1.0),
        touch("b@x.io", "search", 0.0),
        touch("b@x.io", "display", 1.0),
    ]);
    check(
        &out.report,
        "markov",
        &[("search", 1.0, 20.0), ("display", 0.0, 0.0)],
    );
}

#[test]
fn markov_value_credit_follows_value_removal_effects() {
    // Search converts a 100 order alone; display converts a 10 order alone and closes a 40
    // order after search; one display visitor never orders.
    // start→search ½, start→display ½; search→conv ½ (worth 100 over its 2 steps out: 50),
    // search→display ½; display→conv ⅔ (worth (10 + 40) / 3 = 50/3), display→null ⅓.
    // P = ¾; without search ⅓, without display ¼: RE 5/9 and ⅔, conversions 15/11 and 18/11.
    // V = ½(50 + ½·50/3) + ½·50/3 = 37.5; without search 25/3, without display 25: value RE
    // 7/9 and ⅓, so of the 150: search 150·(7/9)/(10/9) = 105, display 45. Conversions ×
    // average value would have given search 150·5/11 ≈ 68.18: a different, uninformed split.
    let out = run(&[
        touch("a@x.io", "search", 0.0),
        order("a@x.io", 100.0, 1.0),
        touch("b@x.io", "display", 0.0),
        order("b@x.io", 10.0, 1.0),
        touch("c@x.io", "search", 0.0),
        touch("c@x.io", "display", 1.0),
        order("c@x.io", 40.0, 2.0),
        touch("d@x.io", "display", 0.0),
    ]);
    let r = &out.report;
    check(
        r,
        "markov",
        &[
            ("search", 15.0 / 11.0, 105.0),
            ("display", 18.0 / 11.0, 45.0),
        ],
    );
    let search = r.models["markov"]["search"];
    assert!(
        (search.value - search.conversions * 50.0).abs() > 30.0,
        "value is not conversions × average: {search:?}"
    );
    let m = r.markov.as_ref().expect("markov figures in the report");
    assert_eq!(m.order, 1);
    assert!((m.conversion_probability - 0.75).abs() < 1e-12, "{m:?}");
    assert!((m.expected_value - 37.5).abs() < 1e-9, "{m:?}");
    let re = |c: &str| m.removal_effects[c];
    assert!(
        (re("search").conversions - 5.0 / 9.0).abs() < 1e-12,
        "{m:?}"
    );
    assert!((re("search").value - 7.0 / 9.0).abs() < 1e-12, "{m:?}");
    assert!(
        (re("display").conversions - 2.0 / 3.0).abs() < 1e-12,
        "{m:?}"
    );
    assert!((re("display").value - 1.0 / 3.0).abs() < 1e-12, "{m:?}");
    // Without the Markov model there is nothing to report.
    let spec: AttributionSpec = toml::from_str(&SPEC.replace(
        "lookback_days = 30",
        "lookback_days = 30\nmodels = [\"linear\"]",
    ))
    .expect("spec parses");
    let plan = Plan::compile(&spec).expect("compiles");
    let out = plan
        .run(&[touch("a@x.io", "search", 0.0), order("a@x.io", 1.0, 1.0)])
        .expect("runs");
    assert_eq!(out.report.markov, None);
}

#[test]
fn identity_joins_by_email_phone_and_customer_id() {
    let out = run(&[
        // Joined by phone in two spellings.
        json!({"source": "web", "phone": "(415) 555-0123", "channel": "search", "at": T0}),
        // Joined through a CRM record: its id is the web touch's crm_id, its email the order's.
        json!({"source": "web", "crm_id": "c-9", "channel": "email", "at": T0 + DAY}),
        json!({"source": "crm", "id": "c-9", "email": "ana@x.io"}),
        json!({"source": "shop", "status": "paid", "total": 10, "at": T0 + 2 * DAY,
               "customer": {"email": " ANA@x.io", "phone": "+1 415-555-0123"}}),
        // Someone else.
        touch("bob@x.io", "social", 1.0),
    ]);
    let channels: Vec<_> = out.records[0]
        .touchpoints
        .iter()
        .map(|t| t.channel.as_str())
        .collect();
    assert_eq!(channels, ["search", "email"]);
}

#[test]
fn daily_volume_and_value_outliers_are_flagged() {
    let mut records = Vec::new();
    for d in 0..6 {
        records.push(order(&format!("p{d}@x.io"), 100.0, f64::from(d)));
    }
    for k in 0..10 {
        records.push(order(
            &format!("q{k}@x.io"),
            100.0,
            6.0 + f64::from(k) / 100.0,
        ));
    }
    records.push(order("r@x.io", 100_000.0, 7.0));
    let out = run(&records);
    let flags: Vec<&Vec<String>> = out.records.iter().map(|r| &r.anomaly_flags).collect();
    for f in &flags[..6] {
        assert!(f.is_empty(), "{f:?}");
    }
    for f in &flags[6..16] {
        assert_eq!(*f, &vec!["daily_volume_outlier".to_string()]);
    }
    assert_eq!(flags[16], &vec!["conversion_value_outlier".to_string()]);
}

#[test]
fn invalid_settings_name_their_place() {
    let bad = SPEC.replace(
        "lookback_days = 30",
        "lookback_days = 30\nposition_based = { first = 0.7, last = 0.5 }",
    );
    let spec: AttributionSpec = toml::from_str(&bad).expect("parses");
    let err = Plan::compile(&spec).expect_err("shares above 1");
    assert_eq!(err.kind(), switchyard::attribution::ErrorKind::InvalidSpec);
    assert!(
        err.to_string().starts_with("/attribution/position_based:"),
        "{err}"
    );
    let bad = SPEC.replace(
        "lookback_days = 30",
        "lookback_days = 30\nshapley = { max_channels = 1 }",
    );
    let spec: AttributionSpec = toml::from_str(&bad).expect("parses");
    let plan = Plan::compile(&spec).expect("compiles");
    let err = plan
        .run(&[
            touch("a@x.io", "a", 0.0),
            touch("a@x.io", "b", 0.5),
            order("a@x.io", 1.0, 1.0),
        ])
        .expect_err("two channels");
    assert_eq!(err.kind(), switchyard::attribution::ErrorKind::Model);
}

// ---- agreement with channelattribution -------------------------------------------------------

fn reference_journeys() -> Journeys {
    let text = std::fs::read_to_string(repo_root().join("tests/attribution/journeys.csv"))
        .expect("journeys.csv");
    let mut js = Journeys::default();
    for line in text.lines().skip(1) {
        let f: Vec<&str> = line.split(',').collect();
        assert_eq!(f.len(), 4, "{line}");
        let channels = f[0]
            .split('>')
            .map(|c| js.channel_id(c))
            .collect::<Vec<_>>();
        let n = channels.len();
        js.paths.push(Journey {
            channels,
            ages_days: vec![0.0; n],
            conversions: f[1].parse().expect("conversions"),
            value: f[2].parse().expect("value"),
            nulls: f[3].parse().expect("nulls"),
        });
    }
    js
}

fn reference() -> Value {
    let text = std::fs::read_to_string(repo_root().join("tests/attribution/reference.json"))
        .expect("reference.json");
    serde_json::from_str(&text).expect("reference parses")
}

#[test]
fn heuristic_models_match_channelattribution_exactly() {
    let js = reference_journeys();
    let reference = reference();
    for (ours, theirs) in [
        (ModelKind::FirstTouch, "first_touch"),
        (ModelKind::LastTouch, "last_touch"),
        (ModelKind::Linear, "linear"),
    ] {
        let table = heuristic_table(ours, &js, &HeuristicParams::default());
        let expected = &reference["models"][theirs];
        assert_eq!(
            expected.as_object().map(|o| o.len()),
            Some(js.channels.len())
        );
        for (name, cell) in js.channels.iter().zip(&table) {
            let c = expected[name]["conversions"].as_f64().expect("number");
            let v = expected[name]["value"].as_f64().expect("number");
            assert!(
                (cell.conversions - c).abs() < 1e-6,
                "{theirs}/{name}: {} vs {c}",
                cell.conversions
            );
            assert!(
                (cell.value - v).abs() < 1e-6,
                "{theirs}/{name}: {} vs {v}",
                cell.value
            );
        }
    }
}

#[test]
fn markov_matches_channelattribution_within_its_simulation_error() {
    let js = reference_journeys();
    let reference = reference();
    let total: f64 = js.paths.iter().map(|j| j.conversions).sum();
    for order in [1usize, 2] {
        let ours = markov(&js, order);
        let re = &reference["models"][format!("markov_order_{order}_removal_effects")];
        let credits = &reference["models"][format!("markov_order_{order}")];
        // channelattribution estimates by simulating 10^6 paths: removal effects carry a
        // Monte-Carlo error of about ±0.005 here, credits about ±1 % of the total.
        for (k, name) in js.channels.iter().enumerate() {
            let theirs = re[name].as_f64().expect("number");
            assert!(
                (ours.removal_effects[k] - theirs).abs() < 0.01,
                "order {order} RE {name}: {} vs {theirs}",
                ours.removal_effects[k]
            );
            let c = credits[name]["conversions"].as_f64().expect("number");
            assert!(
                (ours.credits[k].conversions - c).abs() < 0.01 * total,
                "order {order} credit {name}: {} vs {c}",
                ours.credits[k].conversions
            );
        }
        let sum: f64 = ours.credits.iter().map(|c| c.conversions).sum();
        assert!((sum - total).abs() < 1e-6);
    }
}

#[test]
fn markov_value_credits_match_channelattribution_value_credits() {
    // channelattribution credits value by its own simulated removal effects (each walk that
    // converts draws a value from the conversions that left the same state), which the exact
    // value removal effects reproduce: observed within 107 of 127,528 (0.08 %) at orders 1 and
    // 2. The old split (conversion shares × total value) is off by up to 802 (0.63 %), outside
    // the 0.3 % allowed here, so this test tells the two apart.
    let js = reference_journeys();
    let reference = reference();
    let total: f64 = js.paths.iter().map(|j| j.value).sum();
    let conv_total: f64 = js.paths.iter().map(|j| j.conversions).sum();
    let allowed = 0.003 * total;
    for order in [1usize, 2] {
        let ours = markov(&js, order);
        let credits = &reference["models"][format!("markov_order_{order}")];
        let mut worst_old: f64 = 0.0;
        for (k, name) in js.channels.iter().enumerate() {
            let v = credits[name]["value"].as_f64().expect("number");
            assert!(
                (ours.credits[k].value - v).abs() < allowed,
                "order {order} value {name}: {} vs {v}",
                ours.credits[k].value
            );
            let old = ours.credits[k].conversions / conv_total * total;
            worst_old = worst_old.max((old - v).abs());
        }
        assert!(worst_old > allowed, "order {order}: {worst_old}");
        let sum: f64 = ours.credits.iter().map(|c| c.value).sum();
        assert!((sum - total).abs() < 1e-6 * total);
    }
}

#[test]
fn shapley_on_the_reference_journeys_is_efficient_and_equals_the_equal_split() {
    let js = reference_journeys();
    let ours = shapley(&js, 15).expect("5 channels");
    let mut split = vec![0.0; js.channels.len()];
    for j in js.paths.iter().filter(|j| j.conversions > 0.0) {
        let mut set: Vec<u32> = j.channels.clone();
        set.sort_unstable();
        set.dedup();
        for c in &set {
            split[*c as usize] += j.conversions / set.len() as f64;
        }
    }
    for (a, b) in ours.iter().zip(&split) {
        assert!((a.conversions - b).abs() < 1e-9, "{} vs {b}", a.conversions);
    }
}

// ---- the CLI on the example specs -----------------------------------------------------------

fn attribute(spec: &str, data: &str) -> (Vec<Value>, Value) {
    let dir = tempfile::tempdir().expect("tempdir");
    let out_path = dir.path().join("out.ndjson");
    let report_path = dir.path().join("report.json");
    let out = switchyard()
        .args(["attribute", "--spec", spec, "--input", data, "--output"])
        .arg(&out_path)
        .arg("--report")
        .arg(&report_path)
        .output()
        .expect("runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let records = std::fs::read_to_string(&out_path)
        .expect("output")
        .lines()
        .map(|l| serde_json::from_str(l).expect("record json"))
        .collect();
    let report = serde_json::from_str(&std::fs::read_to_string(&report_path).expect("report"))
        .expect("report json");
    (records, report)
}

fn by_id<'a>(records: &'a [Value], id: &str) -> &'a Value {
    records
        .iter()
        .find(|r| r["record_id"] == id)
        .unwrap_or_else(|| panic!("no record {id}"))
}

#[test]
fn hubspot_and_stripe_example_end_to_end() {
    let (records, report) = attribute(
        "mapping-specs/examples/attribution-hubspot-stripe.toml",
        "mapping-specs/examples/data/attribution-hubspot-stripe.ndjson",
    );
    // Report shape: exactly models + unattributed + the Markov chain's figures; seven models.
    let keys: Vec<&String> = report.as_object().expect("object").keys().collect();
    assert_eq!(keys, ["models", "unattributed", "markov"]);
    let models = report["models"].as_object().expect("models");
    assert_eq!(models.len(), 7);
    // The Markov figures: a baseline probability, and both removal effects of every channel of
    // the Markov table.
    let markov = &report["markov"];
    assert_eq!(markov["order"], 1);
    let p = markov["conversion_probability"].as_f64().expect("number");
    assert!(p > 0.0 && p <= 1.0, "{markov}");
    assert!(markov["expected_value"].as_f64().expect("number") > 0.0);
    let effects = markov["removal_effects"].as_object().expect("effects");
    let channels: Vec<&String> = models["markov"]
        .as_object()
        .expect("table")
        .keys()
        .collect();
    assert_eq!(effects.keys().collect::<Vec<_>>(), channels);
    for (c, e) in effects {
        for k in ["conversions", "value"] {
            let x = e[k].as_f64().expect("number");
            assert!((0.0..=1.0).contains(&x), "{c}.{k} = {x}");
        }
    }
    // Dual processing on both systems: 4 conversion types.
    let mut types: BTreeMap<String, usize> = BTreeMap::new();
    for r in &records {
        *types
            .entry(r["conversion_type"].as_str().unwrap_or("").into())
            .or_default() += 1;
    }
    assert_eq!(
        types,
        BTreeMap::from([
            ("deal_closed_won".into(), 4),
            ("mql".into(), 5),
            ("payment_succeeded".into(), 8),
            ("subscription_created".into(), 2),
        ])
    );
    // Every model credits all attributed conversions.
    let unattributed = report["unattributed"]["conversions"]
        .as_f64()
        .expect("number");
    for (name, table) in models {
        let sum: f64 = table
            .as_object()
            .expect("table")
            .values()
            .map(|c| c["conversions"].as_f64().unwrap_or(0.0))
            .sum();
        assert!(
            (sum + unattributed - records.len() as f64).abs() < 1e-9,
            "{name}: {sum}"
        );
    }
    // The seed's record shape.
    let deal = by_id(&records, "hubspot_deal_9001");
    assert_eq!(deal["data_source"], "hubspot");
    assert_eq!(deal["event_type"], "conversion");
    assert_eq!(deal["conversion_value"], 5000.0);
    assert_eq!(deal["conversion_date"], "2024-01-26T09:00:00Z");
    assert_eq!(
        deal["treatment_assignment"],
        json!({"treatment_group": "paid_ads_google", "assignment_method": "source_based", "confidence_score": 0.9})
    );
    assert_eq!(deal["confounders"]["company_size"], "mid_market");
    assert_eq!(deal["confounders"]["deal_stage_probability"], 1.0);
    assert_eq!(deal["data_quality_score"], 1.0);
    // Missing company size: one of five checks fails.
    let deal4 = by_id(&records, "hubspot_deal_9004");
    assert_eq!(deal4["data_quality_score"], 0.8);
    assert_eq!(
        deal4["data_quality_reasons"],
        json!(["missing properties.company_size"])
    );
    // Identity join: Stripe customer → HubSpot contact (stripe_customer_id) → web visits by a
    // differently-cased email; utm rule first for the Stripe payment.
    let pay = by_id(&records, "stripe_payment_intent_pi_1");
    assert_eq!(pay["conversion_value"], 499.0);
    assert_eq!(pay["currency"], "USD");
    assert_eq!(
        pay["treatment_assignment"]["assignment_method"],
        "utm_based"
    );
    assert_eq!(pay["confounders"]["customer_history"], 2.0);
    let sources: Vec<&str> = pay["touchpoints"]
        .as_array()
        .expect("touches")
        .iter()
        .filter_map(|t| t["source"].as_str())
        .collect();
    assert!(
        sources.contains(&"hubspot") && sources.contains(&"web") && sources.contains(&"stripe")
    );
    // A 29,000 payment among ~50–1,000 ones is an outlier; it has no touch: unattributed.
    let big = by_id(&records, "stripe_payment_intent_pi_7");
    assert_eq!(big["anomaly_flags"], json!(["conversion_value_outlier"]));
    assert_eq!(big["attributed"], false);
    assert_eq!(big["treatment_assignment"]["treatment_group"], "control");
    // Payments not succeeded and closed-lost deals are not conversions.
    assert!(
        records
            .iter()
            .all(|r| r["record_id"] != "stripe_payment_intent_pi_8")
    );
    assert!(
        records
            .iter()
            .all(|r| r["record_id"] != "hubspot_deal_9003")
    );
}

#[test]
fn salesforce_and_paypal_example_end_to_end() {
    let (records, report) = attribute(
        "mapping-specs/examples/attribution-salesforce-paypal.toml",
        "mapping-specs/examples/data/attribution-salesforce-paypal.ndjson",
    );
    assert_eq!(records.len(), 11);
    assert_eq!(report["unattributed"]["conversions"], 0.0);
    let opp = by_id(&records, "salesforce_Opportunity_006A");
    assert_eq!(
        opp["treatment_assignment"]["treatment_group"],
        "field_events"
    );
    assert_eq!(opp["confounders"]["opportunity_probability"], 1.0);
    let cap = by_id(&records, "paypal_capture_CAP2");
    assert_eq!(
        cap["treatment_assignment"]["assignment_method"],
        "utm_based"
    );
    assert_eq!(cap["touchpoints"][0]["channel"], "email");
}

#[test]
fn ndjson_from_stdin_prints_the_report() {
    use std::io::Write;
    let data = std::fs::read(
        repo_root().join("mapping-specs/examples/data/attribution-hubspot-stripe.ndjson"),
    )
    .expect("data");
    let mut child = switchyard()
        .args([
            "attribute",
            "--spec",
            "mapping-specs/examples/attribution-hubspot-stripe.toml",
            "--input",
            "-",
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("spawns");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(&data)
        .expect("writes");
    let out = child.wait_with_output().expect("runs");
    assert!(out.status.success());
    let report: Value = serde_json::from_slice(&out.stdout).expect("report on stdout");
    assert_eq!(report["unattributed"]["conversions"], 2.0);
}

#[test]
fn bad_input_line_and_bad_expression_are_named() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("bad.ndjson");
    std::fs::write(&data, "{\"source\": \"web\"}\n\n{not json\n").expect("write");
    let out = switchyard()
        .args([
            "attribute",
            "--spec",
            "mapping-specs/examples/attribution-hubspot-stripe.toml",
            "--input",
        ])
        .arg(&data)
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("bad.ndjson:3: invalid JSON"), "{err}");

    let spec = dir.path().join("spec.toml");
    std::fs::write(&spec, SPEC.replace("status == 'paid'", "status == 'paid")).expect("write");
    let out = switchyard()
        .args(["attribute", "--spec"])
        .arg(&spec)
        .args(["--input", "-"])
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("/attribution/conversions/0/condition"),
        "{err}"
    );
    assert!(err.contains("spec.toml:"), "{err}");
}

// ---- input that is not what the spec reads --------------------------------------------------

/// Golden stderr of `switchyard attribute` over `tests/ui/attribution/input/<case>.{toml,ndjson}`
/// (`.err`; `BLESS=1` rewrites them): each is refused with one E602 diagnostic, exit 2, nothing on
/// stdout (no empty tables).
#[test]
fn records_without_the_source_field_are_refused_with_golden_diagnostics() {
    let bless = std::env::var_os("BLESS").is_some();
    let dir = repo_root().join("tests/ui/attribution/input");
    let mut cases: Vec<_> = std::fs::read_dir(&dir)
        .expect("cases")
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    cases.sort();
    assert!(cases.len() >= 3, "{cases:?}");
    let mut failures = Vec::new();
    for spec in &cases {
        let rel = |p: &std::path::Path| {
            p.strip_prefix(repo_root())
                .expect("in the repo")
                .to_path_buf()
        };
        let out = switchyard()
            .arg("attribute")
            .arg("--spec")
            .arg(rel(spec))
            .arg("--input")
            .arg(rel(&spec.with_extension("ndjson")))
            .output()
            .expect("runs");
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        assert_eq!(out.status.code(), Some(2), "{}: {err}", spec.display());
        assert!(out.stdout.is_empty(), "{}: no report", spec.display());
        assert_eq!(err.matches("error[E602]").count(), 1, "{err}");
        assert!(!err.contains("warning"), "{err}");
        let golden = spec.with_extension("err");
        if bless {
            std::fs::write(&golden, &err).expect("bless");
            continue;
        }
        let want = std::fs::read_to_string(&golden).unwrap_or_default();
        if want != err {
            failures.push(format!(
                "--- {}\n+++ got\n{err}--- want\n{want}",
                golden.display()
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} golden mismatches (BLESS=1 to update):\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn missing_source_field_names_the_record_and_the_key_to_use() {
    // Through the library: the error names the first record, the count, and the key whose
    // value is a source the rules select.
    let spec: AttributionSpec = toml::from_str(SPEC).expect("spec parses");
    let plan = Plan::compile(&spec).expect("compiles");
    let err = plan
        .run(&[
            json!({"origin": "web", "email": "b@x.io", "channel": "email", "at": T0}),
            json!({"origin": "shop", "status": "paid", "total": 5, "at": T0}),
        ])
        .expect_err("refused");
    assert_eq!(err.kind(), switchyard::attribution::ErrorKind::Input);
    assert_eq!(
        err.to_string(),
        "record 1: has no `source` field naming its system (none of the 2 records has it)"
    );
    let switchyard::attribution::AttributionError::MissingSource { field, hint, .. } = err else {
        panic!("not MissingSource");
    };
    assert_eq!(field, "source");
    assert_eq!(
        hint,
        "`origin` holds `web`, a source the spec's rules select: did you mean `origin`? set `source_field = \"origin\"` in [attribution]"
    );
    // When other records do carry it, the record is what to fix.
    let err = plan
        .run(&[
            touch("a@x.io", "search", 0.0),
            json!({"Source": "web", "email": "b@x.io", "channel": "email", "at": T0}),
        ])
        .expect_err("refused");
    let switchyard::attribution::AttributionError::MissingSource { record, hint, .. } = err else {
        panic!("not MissingSource");
    };
    assert_eq!(record, 2);
    assert_eq!(
        hint,
        "the record has `Source`: did you mean `source`? 1 other record names its system in `source`: give this record its system there, as text"
    );
    // Every record named: the run goes on.
    assert!(plan.run(&[touch("a@x.io", "search", 0.0)]).is_ok());
}
