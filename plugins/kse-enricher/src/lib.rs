//! Example enricher plugin for attribution output: the seed's `kse_enhancement`, computed
//! deterministically from one CausalMarketingData record (no I/O, no clock).
//!
//! - `kse_score` = data quality × (½ + ½ × confounder coverage) × treatment confidence, rounded
//!   to 4 decimals: how much weight a causal model should give the record.
//! - `neural_content`: a one-line summary of the conversion and its journey.
//! - `conceptual_space`: value tier (`high` from the `high_value_threshold` config value the
//!   operator grants, default 1000; `medium` from 100), journey length, channel mix, confounder
//!   coverage, quality band, whether an anomaly was flagged.
//! - `knowledge_graph`: the conversion, its channels, campaigns and treatment group as nodes and
//!   edges.
//!
//! Refused (`invalid-input`): a record that is not an object or has no `record_id`, a negative
//! or missing conversion value, a data-quality score outside [0, 1].

use serde_json::{Map, Value, json};
use switchyard_sdk::PluginError;
use switchyard_sdk::exports::enrichment::Guest;

struct Kse;

impl Guest for Kse {
    fn enrich(record: String) -> Result<String, PluginError> {
        let record: Value = serde_json::from_str(&record)
            .map_err(|e| PluginError::InvalidInput(format!("record is not JSON: {e}")))?;
        enhance(&record).map(|v| v.to_string())
    }
}

switchyard_sdk::export!(Kse);

fn invalid(message: String) -> PluginError {
    PluginError::InvalidInput(message)
}

fn round4(x: f64) -> f64 {
    (x * 10_000.0).round() / 10_000.0
}

fn enhance(r: &Value) -> Result<Value, PluginError> {
    let id = r
        .get("record_id")
        .and_then(Value::as_str)
        .ok_or_else(|| invalid("record has no `record_id`".into()))?;
    let value = r
        .get("conversion_value")
        .and_then(Value::as_f64)
        .ok_or_else(|| invalid(format!("{id}: no numeric `conversion_value`")))?;
    if value < 0.0 {
        return Err(invalid(format!(
            "{id}: conversion value {value} is negative; KSE scores conversions, not refunds"
        )));
    }
    let quality = r
        .get("data_quality_score")
        .and_then(Value::as_f64)
        .unwrap_or(0.0);
    if !(0.0..=1.0).contains(&quality) {
        return Err(invalid(format!(
            "{id}: data_quality_score {quality} is outside [0, 1]"
        )));
    }
    let text = |v: &Value, k: &str| v.get(k).and_then(Value::as_str).unwrap_or("").to_string();
    let kind = text(r, "conversion_type");
    let currency = text(r, "currency");
    let treatment = r
        .get("treatment_assignment")
        .cloned()
        .unwrap_or(Value::Null);
    let group = text(&treatment, "treatment_group");
    let confidence = treatment
        .get("confidence_score")
        .and_then(Value::as_f64)
        .unwrap_or(0.0);
    let empty = Map::new();
    let confounders = r
        .get("confounders")
        .and_then(Value::as_object)
        .unwrap_or(&empty);
    let known = confounders.values().filter(|v| !v.is_null()).count();
    let coverage = if confounders.is_empty() {
        1.0
    } else {
        known as f64 / confounders.len() as f64
    };
    let touches: Vec<&Value> = r
        .get("touchpoints")
        .and_then(Value::as_array)
        .map(|a| a.iter().collect())
        .unwrap_or_default();
    let channels: Vec<String> = touches.iter().map(|t| text(t, "channel")).collect();

    let mut mix: Map<String, Value> = Map::new();
    for c in &channels {
        let n = mix.get(c).and_then(Value::as_f64).unwrap_or(0.0);
        mix.insert(c.clone(), json!(n + 1.0));
    }
    for v in mix.values_mut() {
        *v = json!(round4(v.as_f64().unwrap_or(0.0) / channels.len() as f64));
    }
    // The operator may move the "high value" line per tenant (config grant); default 1000.
    let high = switchyard_sdk::host::config("high_value_threshold")
        .and_then(|v| v.as_f64().or_else(|| v.as_str()?.trim().parse().ok()))
        .unwrap_or(1000.0);
    let value_tier = if value >= high {
        "high"
    } else if value >= 100.0 {
        "medium"
    } else {
        "low"
    };
    let quality_band = if quality >= 0.9 {
        "high"
    } else if quality >= 0.6 {
        "medium"
    } else {
        "low"
    };
    let anomalous = r
        .get("anomaly_flags")
        .and_then(Value::as_array)
        .is_some_and(|a| !a.is_empty());

    let mut nodes = vec![json!({"id": id, "type": "conversion", "label": kind})];
    let mut edges = Vec::new();
    let mut seen = std::collections::BTreeSet::new();
    for t in &touches {
        let ch = format!("channel:{}", text(t, "channel"));
        if seen.insert(ch.clone()) {
            nodes.push(json!({"id": ch, "type": "channel"}));
            edges.push(json!({"from": ch, "to": id, "relation": "touched"}));
        }
        let campaign = text(t, "campaign");
        if !campaign.is_empty() {
            let cp = format!("campaign:{campaign}");
            if seen.insert(cp.clone()) {
                nodes.push(json!({"id": cp, "type": "campaign"}));
                edges.push(json!({"from": cp, "to": ch, "relation": "runs_on"}));
            }
        }
    }
    if !group.is_empty() {
        let tg = format!("treatment:{group}");
        nodes.push(json!({"id": tg, "type": "treatment"}));
        edges.push(json!({"from": id, "to": tg, "relation": "assigned_to"}));
    }

    let path = if channels.is_empty() {
        "no eligible touch".to_string()
    } else {
        channels.join(" → ")
    };
    let neural_content = format!(
        "{kind} worth {value:.2} {currency} via {path}; treatment {group} (confidence {confidence:.2}); \
         data quality {quality:.2}, {known} of {} confounders known",
        confounders.len()
    );
    Ok(json!({
        "model": "kse-enricher/0.1.0",
        "kse_score": round4(quality * (0.5 + 0.5 * coverage) * confidence),
        "neural_content": neural_content,
        "conceptual_space": {
            "value_tier": value_tier,
            "journey_length": channels.len(),
            "channel_mix": mix,
            "confounder_coverage": round4(coverage),
            "quality_band": quality_band,
            "anomalous": anomalous,
        },
        "knowledge_graph": {"nodes": nodes, "edges": edges},
    }))
}
