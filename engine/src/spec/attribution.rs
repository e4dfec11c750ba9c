//! Attribution specs: how a tenant declares conversions, touchpoints, identity joins, treatment
//! assignment, confounders, data-quality rules, anomaly detection and credit models. Compiled by
//! `crate::attribution::Plan::compile`; every expression here is compiled once at load.
//!
//! Records are JSON objects (one NDJSON line each). The field named by `source_field` (default
//! `source`) names the system (`hubspot`, `stripe`, …) and `object_field` (default `object`) the
//! object (`deal`, `contact`, `payment_intent`, …). Expressions are the engine's expression
//! dialect (`crate::expr`, as in mapping specs) and see the whole record, so
//! `properties.dealstage == 'closedwon'` reads `record.properties.dealstage`.

use super::common::SpecVersion;
use indexmap::IndexMap;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// An attribution spec (`mapping-specs/…/attribution-*.toml`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AttributionSpec {
    /// Spec format version; must be 1.
    pub spec_version: SpecVersion,
    /// The attribution rules.
    pub attribution: AttributionConfig,
}

/// The attribution rules of one tenant.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AttributionConfig {
    /// Name of this rule set. Required.
    pub name: String,
    /// Tenant it belongs to. Required.
    pub tenant: String,
    /// What this rule set is for. Default: none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Record field naming the system a record comes from. Default: `"source"`.
    #[serde(default = "default_source_field")]
    pub source_field: String,
    /// Record field naming the object type of a record. Default: `"object"`.
    #[serde(default = "default_object_field")]
    pub object_field: String,
    /// Currency of conversions whose rule has no `currency` expression (or whose expression is
    /// absent for a record). Default: `"USD"`.
    #[serde(default = "default_currency")]
    pub default_currency: String,
    /// Touches more than this many days before a conversion do not count. Default: 30.
    #[serde(default = "default_lookback")]
    pub lookback_days: f64,
    /// Credit models to compute, in report order. Default: all seven
    /// (`first_touch`, `last_touch`, `linear`, `time_decay`, `position_based`, `markov`,
    /// `shapley`).
    #[serde(default = "default_models")]
    pub models: Vec<ModelKind>,
    /// Settings of the `time_decay` model. Default: half-life 7 days.
    #[serde(default)]
    pub time_decay: TimeDecaySettings,
    /// Settings of the `position_based` model. Default: 40 % first, 40 % last, 20 % middle.
    #[serde(default)]
    pub position_based: PositionBasedSettings,
    /// Settings of the `markov` model. Default: order 1.
    #[serde(default)]
    pub markov: MarkovSettings,
    /// Settings of the `shapley` model. Default: at most 15 channels.
    #[serde(default)]
    pub shapley: ShapleySettings,
    /// Identity rules: which fields of which records identify a person. All identifiers of one
    /// record are joined (an email, a phone and a customer id on one HubSpot contact make them
    /// the same person everywhere). Default: none (every record is its own person).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub identity: Vec<IdentityRule>,
    /// Phone numbers without a country prefix are read in this region (ISO 3166 alpha-2).
    /// Default: `"US"`.
    #[serde(default = "default_region")]
    pub default_phone_region: String,
    /// Conversion definitions (the seed's dual processing: e.g. deal closed-won and MQL
    /// lifecycle change). Required: at least one.
    pub conversions: Vec<ConversionRule>,
    /// Touchpoint definitions: which records (or which fields of them) are marketing touches.
    /// Default: none (every conversion is unattributed).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub touchpoints: Vec<TouchpointRule>,
    /// Map from raw channel values (after trimming and lowercasing) to channel names, e.g.
    /// `paid_search = "paid_search"`, `organic_search = "seo"`. Unmapped values keep their
    /// lowercased form. Default: empty.
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    pub channel_map: IndexMap<String, String>,
    /// Treatment assignment rules, tried in order; the first whose condition holds assigns the
    /// conversion's treatment group. Default: none (every conversion gets `default_treatment`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub treatment_rules: Vec<TreatmentRule>,
    /// Treatment of conversions no rule matches. Default: group `"unassigned"`, method
    /// `"default"`, confidence 0.
    #[serde(default)]
    pub default_treatment: DefaultTreatment,
    /// Anomaly detection on conversion values and daily volumes. Default: enabled, threshold
    /// 3.5, at least 5 samples.
    #[serde(default)]
    pub anomalies: AnomalySettings,
    /// An enrichment plugin (the seed's `kse_enhancement`): each CausalMarketingData record is
    /// passed to the plugin's `enrich` export and the JSON it returns is stored under
    /// `kse_enhancement`. A failure for one record is reported and the record is output
    /// without it. Default: none (no `kse_enhancement` field).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enrichment: Option<EnrichmentSettings>,
    /// Records pulled through connectors (`switchyard attribute --pull`, or `--sandbox` against
    /// the vendors' emulators), in addition to the `--input` records. Default: none.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pull: Vec<PullRule>,
}

/// The enrichment plugin hook.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EnrichmentSettings {
    /// Path of the plugin's manifest (`plugin.toml` of a plugin of world `enricher`), relative
    /// to this spec file. Required.
    pub plugin: String,
}

/// One object pulled through a connector (its list operation, every page). Each pulled record
/// gets `source_field` set to `source`, and `object_field` set to `record_object` unless the
/// vendor object already carries one (Stripe objects do).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PullRule {
    /// Connector spec name (a file in the connector-specs folder), e.g. `hubspot`. Required.
    pub connector: String,
    /// The connector's object to list, e.g. `contact`, `deal`, `payment`. Required.
    pub object: String,
    /// System name written to the records' `source_field`. Default: the connector name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// Object name written to the records' `object_field` when they have none, and the object
    /// of the `--input` records that `--sandbox` loads into the emulator, e.g.
    /// `payment_intent` for Stripe's `payment`. Default: `object`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub record_object: Option<String>,
    /// Extra query parameters of the list request, e.g. HubSpot's
    /// `properties = "email,hs_analytics_source"` (HubSpot lists return only default
    /// properties unless asked). Default: none.
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    pub query: IndexMap<String, String>,
}

impl PullRule {
    /// The system name of pulled records.
    pub fn source(&self) -> &str {
        self.source.as_deref().unwrap_or(&self.connector)
    }

    /// The object name of pulled records.
    pub fn record_object(&self) -> &str {
        self.record_object.as_deref().unwrap_or(&self.object)
    }
}

/// A credit model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ModelKind {
    /// All credit to the first eligible touch.
    FirstTouch,
    /// All credit to the last eligible touch.
    LastTouch,
    /// Equal credit to every eligible touch.
    Linear,
    /// Weight 2^(−t/half_life) with t the time from the touch to the conversion.
    TimeDecay,
    /// First and last touches get fixed shares, the middle ones split the rest.
    PositionBased,
    /// Markov-chain removal effect (data driven).
    Markov,
    /// Exact Shapley value over channel coalitions (data driven).
    Shapley,
}

impl ModelKind {
    /// Every model, in the default report order.
    pub const ALL: [ModelKind; 7] = [
        ModelKind::FirstTouch,
        ModelKind::LastTouch,
        ModelKind::Linear,
        ModelKind::TimeDecay,
        ModelKind::PositionBased,
        ModelKind::Markov,
        ModelKind::Shapley,
    ];

    /// The snake_case name used in specs and reports.
    pub fn as_str(self) -> &'static str {
        match self {
            ModelKind::FirstTouch => "first_touch",
            ModelKind::LastTouch => "last_touch",
            ModelKind::Linear => "linear",
            ModelKind::TimeDecay => "time_decay",
            ModelKind::PositionBased => "position_based",
            ModelKind::Markov => "markov",
            ModelKind::Shapley => "shapley",
        }
    }
}

/// Settings of the time-decay model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TimeDecaySettings {
    /// Half-life in days: a touch this long before the conversion weighs half as much as one at
    /// the conversion. Default: 7.
    #[serde(default = "default_half_life")]
    pub half_life_days: f64,
}

impl Default for TimeDecaySettings {
    fn default() -> Self {
        TimeDecaySettings {
            half_life_days: default_half_life(),
        }
    }
}

/// Settings of the position-based (U-shaped) model. A single touch gets all the credit; two
/// touches split it 50/50; with three or more the middle touches share `1 − first − last`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PositionBasedSettings {
    /// Share of the first touch. Default: 0.4.
    #[serde(default = "default_edge_share")]
    pub first: f64,
    /// Share of the last touch. Default: 0.4.
    #[serde(default = "default_edge_share")]
    pub last: f64,
}

impl Default for PositionBasedSettings {
    fn default() -> Self {
        PositionBasedSettings {
            first: default_edge_share(),
            last: default_edge_share(),
        }
    }
}

/// Settings of the Markov model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MarkovSettings {
    /// Order of the chain: a state is the last `order` channels seen. Default: 1.
    #[serde(default = "default_order")]
    pub order: u32,
}

impl Default for MarkovSettings {
    fn default() -> Self {
        MarkovSettings {
            order: default_order(),
        }
    }
}

/// Settings of the Shapley model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ShapleySettings {
    /// Refuse to compute (and report an error) above this many distinct channels, because the
    /// exact value costs 2^channels. At most 20. Default: 15.
    #[serde(default = "default_max_channels")]
    pub max_channels: u32,
}

impl Default for ShapleySettings {
    fn default() -> Self {
        ShapleySettings {
            max_channels: default_max_channels(),
        }
    }
}

/// Which fields of which records identify a person.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct IdentityRule {
    /// System the rule applies to (matched against the record's `source_field`). Required.
    pub source: String,
    /// Object type the rule applies to. Default: every object of the system.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub object: Option<String>,
    /// Expression giving an email; normalised by trimming and lowercasing. Default: none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    /// Expression giving a phone number; normalised to E.164 (digits only when it cannot be
    /// parsed). Default: none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phone: Option<String>,
    /// Expression giving a customer id shared across systems (e.g. a Stripe customer id stored
    /// on a HubSpot contact); trimmed. Default: none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub customer_id: Option<String>,
}

/// One kind of conversion.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ConversionRule {
    /// Conversion type written to `conversion_type`, e.g. `deal_closed_won`. Required.
    pub name: String,
    /// System whose records this rule reads. Required.
    pub source: String,
    /// Object type this rule reads. Default: every object of the system.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub object: Option<String>,
    /// Condition a record must meet to be this conversion, e.g.
    /// `properties.dealstage == 'closedwon'`. Default: every record of the source/object.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub condition: Option<String>,
    /// Expression giving the conversion value, e.g. `amount / 100`; numeric strings are read as
    /// numbers. Default: 1 for every conversion.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    /// Expression giving the ISO currency code, e.g. `upper(currency)`.
    /// Default: the spec's `default_currency`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub currency: Option<String>,
    /// Expression giving the conversion time: RFC 3339, `YYYY-MM-DD`, or epoch seconds or
    /// milliseconds (numbers or numeric strings). Required.
    pub time: String,
    /// Expression giving the record's id, used in `record_id` as
    /// `<source>_<object>_<id>`. Default: `id`.
    #[serde(default = "default_id")]
    pub id: String,
    /// Written to `event_type`. Default: `"conversion"`.
    #[serde(default = "default_event_type")]
    pub event_type: String,
    /// Confounders: output name → expression over the conversion context (the record plus
    /// `journey.*`, see the module docs). Absent values are written as null. Default: none.
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    pub confounders: IndexMap<String, String>,
    /// Data-quality rules of this conversion type. Default: none (score 1).
    #[serde(default)]
    pub quality: QualityRules,
}

/// Declared data-quality checks. The score is the weighted share of checks passed.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct QualityRules {
    /// Completeness: expressions (usually paths) that must be present and non-empty, each
    /// weighing 1. Default: none.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub required: Vec<String>,
    /// Validity: named conditions that must hold. Default: none.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub valid: Vec<ValidityRule>,
}

/// A named validity condition.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ValidityRule {
    /// Name, used in the reasons of a failed check. Required.
    pub name: String,
    /// Condition that must hold, e.g. `number(amount) > 0`. Required.
    pub condition: String,
    /// Weight of this check in the score. Default: 1.
    #[serde(default = "default_weight")]
    pub weight: f64,
}

/// One kind of touchpoint. Each matching record yields at most one touch per rule; identical
/// touches (same person, channel, campaign and time) are counted once.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TouchpointRule {
    /// Name of the rule (e.g. `original_source`), written with each touch. Required.
    pub name: String,
    /// System whose records this rule reads. Required.
    pub source: String,
    /// Object type this rule reads. Default: every object of the system.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub object: Option<String>,
    /// Condition a record must meet to yield a touch. Default: always (a record whose channel
    /// is absent yields no touch).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub condition: Option<String>,
    /// Expression giving the channel, e.g. `metadata.utm_source`; trimmed, lowercased, then
    /// looked up in `channel_map`. Required.
    pub channel: String,
    /// Expression giving the campaign. Default: none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub campaign: Option<String>,
    /// Expression giving the touch time (same formats as a conversion time). Required.
    pub time: String,
}

/// An ordered treatment assignment rule (the seed's `treatment_assignment` block).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TreatmentRule {
    /// Condition over the conversion context (the record plus `journey.*`). Required.
    pub condition: String,
    /// Treatment group assigned, e.g. `paid_ads_google`. Required.
    pub treatment_group: String,
    /// How the group was inferred, e.g. `source_based`, `utm_based`, `campaign_based`.
    /// Required.
    pub assignment_method: String,
    /// Confidence in the assignment, in [0, 1]. Default: 1.
    #[serde(default = "default_confidence")]
    pub confidence_score: f64,
    /// Conversion types the rule applies to. Default: all.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conversions: Vec<String>,
}

/// Treatment of conversions no rule matches.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DefaultTreatment {
    /// Group. Default: `"unassigned"`.
    #[serde(default = "default_group")]
    pub treatment_group: String,
    /// Method. Default: `"default"`.
    #[serde(default = "default_method")]
    pub assignment_method: String,
    /// Confidence. Default: 0.
    #[serde(default)]
    pub confidence_score: f64,
}

impl Default for DefaultTreatment {
    fn default() -> Self {
        DefaultTreatment {
            treatment_group: default_group(),
            assignment_method: default_method(),
            confidence_score: 0.0,
        }
    }
}

/// Anomaly detection by median absolute deviation: a value is flagged when
/// `0.6745 · |x − median| / MAD` exceeds the threshold.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AnomalySettings {
    /// Whether to flag anomalies at all. Default: true.
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// Robust z-score above which a value is flagged. Default: 3.5 (Iglewicz and Hoaglin).
    #[serde(default = "default_threshold")]
    pub threshold: f64,
    /// Fewer samples than this (per conversion type) flag nothing. Default: 5.
    #[serde(default = "default_min_samples")]
    pub min_samples: u32,
}

impl Default for AnomalySettings {
    fn default() -> Self {
        AnomalySettings {
            enabled: true,
            threshold: default_threshold(),
            min_samples: default_min_samples(),
        }
    }
}

fn default_source_field() -> String {
    "source".into()
}
fn default_object_field() -> String {
    "object".into()
}
fn default_currency() -> String {
    "USD".into()
}
fn default_lookback() -> f64 {
    30.0
}
fn default_models() -> Vec<ModelKind> {
    ModelKind::ALL.to_vec()
}
fn default_half_life() -> f64 {
    7.0
}
fn default_edge_share() -> f64 {
    0.4
}
fn default_order() -> u32 {
    1
}
fn default_max_channels() -> u32 {
    15
}
fn default_region() -> String {
    "US".into()
}
fn default_id() -> String {
    "id".into()
}
fn default_event_type() -> String {
    "conversion".into()
}
fn default_weight() -> f64 {
    1.0
}
fn default_confidence() -> f64 {
    1.0
}
fn default_group() -> String {
    "unassigned".into()
}
fn default_method() -> String {
    "default".into()
}
fn default_true() -> bool {
    true
}
fn default_threshold() -> f64 {
    3.5
}
fn default_min_samples() -> u32 {
    5
}
