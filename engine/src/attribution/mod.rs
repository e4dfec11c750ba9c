//! Attribution: from CRM and payment records to conversions, journeys of marketing touches,
//! treatment assignment, channel credits under seven models, and one `CausalMarketingData`
//! record per conversion (seed 000).
//!
//! A spec ([`crate::spec::AttributionSpec`]) is compiled once into a [`Plan`]; [`Plan::run`]
//! takes every record of a run (JSON objects; the spec's `source_field`/`object_field` name their
//! system and object) and returns an [`Outcome`].
//!
//! How a run works:
//! 0. **Sources.** Every record must name its system as text in `source_field`; otherwise the
//!    run is refused with [`AttributionError::MissingSource`] (rules select records by source,
//!    so such a run would silently attribute nothing).
//! 1. **Identity.** Each record is a node; identity rules link it to its normalised email
//!    (trimmed, lowercased), phone (E.164) and customer id. Records sharing an identifier,
//!    directly or through other records, are one person ([`identity`]).
//! 2. **Conversions and touches.** Conversion rules (condition, value, currency, time) and
//!    touchpoint rules (channel, campaign, time) are evaluated on every matching record.
//!    Channels are trimmed, lowercased and mapped through `channel_map`. Touches of one person
//!    in the same channel at the same instant are one touch (the first read keeps its campaign):
//!    HubSpot's original and latest source are the same visit when a contact came once.
//! 3. **Journeys.** A conversion's journey is its person's touches with
//!    `conversion_time − lookback ≤ touch_time ≤ conversion_time`, oldest first; ties in time
//!    keep input order. Touches after the conversion never count. A conversion without an
//!    eligible touch is *unattributed*: it is still output and counted in the report's
//!    `unattributed`, never dropped. A person's touches after their last conversion (all of them
//!    for a person who never converted) form one non-converting path, used by the Markov model.
//! 4. **Models** ([`models`], [`markov`], [`shapley`]) credit channels; the report holds one
//!    channel table per model, and with the Markov model its chain's baseline conversion
//!    probability and expected value and each channel's removal effects on both. Markov value
//!    credit follows the value removal effects (value-weighted, as `ChannelAttribution` does),
//!    not the conversion shares.
//! 5. **Per conversion**, evaluated on the *conversion context* — the record with an extra
//!    `journey` object (`touches`, `channels`, `first_channel`, `last_channel`,
//!    `first_campaign`, `last_campaign`, `prior_conversions` of the same person,
//!    `days_from_first_touch`): the first matching treatment rule, the confounders, and the
//!    data-quality checks (score = weighted share passed, with a reason per failure).
//! 6. **Anomalies** ([`anomaly`]): conversion values, and daily conversion counts (over the UTC
//!    days that have a conversion of the type: sparse data would otherwise make every active day
//!    an outlier against a median of zero), per conversion type, by median absolute deviation.
//!
//! Values of different currencies are summed as given in the channel tables: convert in the
//! value expression when a tenant mixes currencies.

pub mod anomaly;
pub mod enrich;
pub mod expr;
pub mod identity;
pub mod markov;
pub mod models;
pub mod shapley;

use crate::expr::{EvalCtx, Val};
use crate::spec::AttributionSpec;
use crate::spec::attribution::{ModelKind, TouchpointRule};
use expr::{CompiledExpr, Scope};
use indexmap::IndexMap;
use models::{Credit, HeuristicParams, Journey, Journeys};
use serde::Serialize;
use serde_json::{Map, Value, json};
use std::collections::{BTreeMap, HashMap, HashSet};

const DAY_MS: f64 = 86_400_000.0;

/// What went wrong compiling a spec or running a model.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AttributionError {
    /// The spec is invalid: a setting out of range or an expression that does not compile.
    #[error("{pointer}: {message}")]
    InvalidSpec {
        /// JSON pointer into the spec.
        pointer: String,
        /// The cause.
        message: String,
    },
    /// A model could not be computed.
    #[error(transparent)]
    Shapley(#[from] shapley::TooManyChannels),
    /// An input record does not name its system in the spec's `source_field`: the run is
    /// refused (every rule selects records by source, so nothing could be attributed).
    #[error("record {record}: {message}")]
    MissingSource {
        /// 1-based position of the first such record among the records of the run.
        record: usize,
        /// The key the spec reads the system from (`source_field`).
        field: String,
        /// The cause, naming the missing key and how many records lack it.
        message: String,
        /// How to fix it: the key of the record that looks like the system, and the setting
        /// to point at it.
        hint: String,
    },
}

/// Kinds of [`AttributionError`], for callers that branch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The spec is invalid.
    InvalidSpec,
    /// A model could not be computed on this data.
    Model,
    /// The input records are not what the spec reads.
    Input,
}

impl AttributionError {
    /// The kind of error.
    pub fn kind(&self) -> ErrorKind {
        match self {
            AttributionError::InvalidSpec { .. } => ErrorKind::InvalidSpec,
            AttributionError::Shapley(_) => ErrorKind::Model,
            AttributionError::MissingSource { .. } => ErrorKind::Input,
        }
    }
}

fn invalid(pointer: impl Into<String>, message: impl Into<String>) -> AttributionError {
    AttributionError::InvalidSpec {
        pointer: pointer.into(),
        message: message.into(),
    }
}

fn compile(pointer: String, text: &str) -> Result<CompiledExpr, AttributionError> {
    CompiledExpr::compile(text).map_err(|e| {
        let hint = e
            .hint
            .as_deref()
            .map(|h| format!("; {h}"))
            .unwrap_or_default();
        invalid(
            pointer,
            format!(
                "expression `{}` does not compile: {e}{hint}",
                crate::expr::excerpt(text, e.offset)
            ),
        )
    })
}

fn compile_opt(
    pointer: String,
    text: Option<&String>,
) -> Result<Option<CompiledExpr>, AttributionError> {
    text.map(|t| compile(pointer, t)).transpose()
}

#[derive(Debug)]
struct Selector {
    source: String,
    object: Option<String>,
}

impl Selector {
    fn matches(&self, source: &str, object: Option<&str>) -> bool {
        self.source == source && self.object.as_deref().is_none_or(|o| Some(o) == object)
    }
}

#[derive(Debug)]
struct ConversionPlan {
    name: String,
    select: Selector,
    condition: Option<CompiledExpr>,
    value: Option<CompiledExpr>,
    currency: Option<CompiledExpr>,
    time: CompiledExpr,
    id: CompiledExpr,
    event_type: String,
    confounders: Vec<(String, CompiledExpr)>,
    required: Vec<CompiledExpr>,
    valid: Vec<(String, CompiledExpr, f64)>,
}

#[derive(Debug)]
struct TouchPlan {
    name: String,
    select: Selector,
    condition: Option<CompiledExpr>,
    channel: CompiledExpr,
    campaign: Option<CompiledExpr>,
    time: CompiledExpr,
}

#[derive(Debug)]
struct IdentityPlan {
    select: Selector,
    email: Option<CompiledExpr>,
    phone: Option<CompiledExpr>,
    customer_id: Option<CompiledExpr>,
}

#[derive(Debug)]
struct TreatmentPlan {
    condition: CompiledExpr,
    assignment: TreatmentAssignment,
    conversions: Vec<String>,
}

/// A compiled attribution spec.
#[derive(Debug)]
pub struct Plan {
    name: String,
    tenant: String,
    source_field: String,
    object_field: String,
    /// Every source a rule selects, for the hint of [`AttributionError::MissingSource`].
    rule_sources: Vec<String>,
    default_currency: String,
    lookback_ms: i64,
    models: Vec<ModelKind>,
    heuristic: HeuristicParams,
    markov_order: usize,
    shapley_max: usize,
    region: Option<phonenumber::country::Id>,
    identity: Vec<IdentityPlan>,
    conversions: Vec<ConversionPlan>,
    touchpoints: Vec<TouchPlan>,
    channel_map: HashMap<String, String>,
    treatments: Vec<TreatmentPlan>,
    default_treatment: TreatmentAssignment,
    anomalies: Option<(f64, usize)>,
}

/// The seed's `treatment_assignment` block.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TreatmentAssignment {
    /// The treatment group, e.g. `paid_ads_google`.
    pub treatment_group: String,
    /// How it was assigned, e.g. `source_based`.
    pub assignment_method: String,
    /// Confidence in [0, 1].
    pub confidence_score: f64,
}

/// One eligible touch of a conversion's journey.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TouchOut {
    /// Channel after normalisation and `channel_map`.
    pub channel: String,
    /// Campaign, when the rule names one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub campaign: Option<String>,
    /// Touch time (RFC 3339, UTC).
    pub time: String,
    /// System the touch came from.
    pub source: String,
    /// The touchpoint rule that produced it.
    pub rule: String,
}

/// One conversion in the seed's CausalMarketingData shape, plus Switchyard's extra fields.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CausalMarketingData {
    /// `<source>_<object>_<id>` (with `_<conversion type>` appended when one record is several
    /// conversions).
    pub record_id: String,
    /// System of the conversion record.
    pub data_source: String,
    /// The rule's `event_type` (default `conversion`).
    pub event_type: String,
    /// The conversion rule's name.
    pub conversion_type: String,
    /// The conversion value.
    pub conversion_value: f64,
    /// ISO currency code.
    pub currency: String,
    /// Conversion time (RFC 3339, UTC).
    pub conversion_date: String,
    /// The treatment assignment.
    pub treatment_assignment: TreatmentAssignment,
    /// Confounders by name (null when absent).
    pub confounders: Map<String, Value>,
    /// What the spec's enrichment plugin returned for this record (the seed's
    /// `kse_enhancement`); `None` without a plugin, or when it failed for this record.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kse_enhancement: Option<Value>,
    /// Data-quality score in [0, 1].
    pub data_quality_score: f64,
    /// Why the score is below 1.
    pub data_quality_reasons: Vec<String>,
    /// `conversion_value_outlier`, `daily_volume_outlier`.
    pub anomaly_flags: Vec<String>,
    /// Whether the conversion had an eligible touch.
    pub attributed: bool,
    /// The eligible touches, oldest first.
    pub touchpoints: Vec<TouchOut>,
    /// Share of this conversion per channel under each heuristic model.
    pub attribution: IndexMap<String, IndexMap<String, f64>>,
}

/// Credited conversions and value of a channel (or of the unattributed conversions).
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize)]
pub struct ChannelCredit {
    /// Conversions.
    pub conversions: f64,
    /// Value.
    pub value: f64,
}

/// The report: `{"models": {"<model>": {"<channel>": {"conversions", "value"}}},
/// "unattributed": {"conversions", "value"}}`, plus `"markov": {…}` ([`MarkovReport`]) when the
/// Markov model ran.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct Report {
    /// Channel table per model, channels sorted by name.
    pub models: IndexMap<String, BTreeMap<String, ChannelCredit>>,
    /// Conversions without an eligible touch.
    pub unattributed: ChannelCredit,
    /// What the Markov credits were computed from, when the Markov model ran.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub markov: Option<MarkovReport>,
}

/// The Markov model's chain figures ([`markov`] explains them): `{"order", "conversion_probability",
/// "expected_value", "removal_effects": {"<channel>": {"conversions", "value"}}}`.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct MarkovReport {
    /// Order of the fitted chain.
    pub order: usize,
    /// Baseline P(conversion) of a journey under the full chain.
    pub conversion_probability: f64,
    /// Baseline expected conversion value of a journey under the full chain.
    pub expected_value: f64,
    /// Removal effect of each channel (sorted by name) on conversions and on value.
    pub removal_effects: BTreeMap<String, RemovalEffect>,
}

/// A channel's removal effects: the share of P(conversion), and of expected value, lost when
/// the channel is removed from the chain.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize)]
pub struct RemovalEffect {
    /// `1 − P_without / P`.
    pub conversions: f64,
    /// `1 − V_without / V`.
    pub value: f64,
}

/// Everything a run produces.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Outcome {
    /// One record per conversion, in input order.
    pub records: Vec<CausalMarketingData>,
    /// The channel tables.
    pub report: Report,
    /// Records that could not be read as declared (e.g. a conversion without a time), each
    /// naming the record by its 1-based position.
    pub warnings: Vec<String>,
}

struct Conv {
    record: usize,
    rule: usize,
    time: i64,
    value: f64,
    currency: String,
    id: String,
}

#[derive(Clone)]
struct Touch {
    record: usize,
    rule: usize,
    time: i64,
    channel: String,
    campaign: Option<String>,
}

impl Plan {
    /// Compile a spec: validate settings and compile every expression once.
    pub fn compile(spec: &AttributionSpec) -> Result<Plan, AttributionError> {
        let a = &spec.attribution;
        let p = "/attribution";
        if !(a.lookback_days > 0.0 && a.lookback_days.is_finite()) {
            return Err(invalid(
                format!("{p}/lookback_days"),
                "must be a positive number of days",
            ));
        }
        if !(a.time_decay.half_life_days > 0.0 && a.time_decay.half_life_days.is_finite()) {
            return Err(invalid(
                format!("{p}/time_decay/half_life_days"),
                "must be a positive number of days",
            ));
        }
        let pb = &a.position_based;
        if !(0.0..=1.0).contains(&pb.first)
            || !(0.0..=1.0).contains(&pb.last)
            || pb.first + pb.last > 1.0 + 1e-12
        {
            return Err(invalid(
                format!("{p}/position_based"),
                "first and last must be shares in [0, 1] adding up to at most 1",
            ));
        }
        if !(1..=4).contains(&a.markov.order) {
            return Err(invalid(
                format!("{p}/markov/order"),
                "must be between 1 and 4",
            ));
        }
        if a.shapley.max_channels as usize > shapley::MAX_CHANNELS {
            return Err(invalid(
                format!("{p}/shapley/max_channels"),
                format!("must be at most {}", shapley::MAX_CHANNELS),
            ));
        }
        if a.conversions.is_empty() {
            return Err(invalid(
                format!("{p}/conversions"),
                "declare at least one conversion",
            ));
        }
        if a.anomalies.threshold.is_nan() || a.anomalies.threshold <= 0.0 {
            return Err(invalid(
                format!("{p}/anomalies/threshold"),
                "must be positive",
            ));
        }
        let mut seen = HashSet::new();
        for (i, m) in a.models.iter().enumerate() {
            if !seen.insert(*m) {
                return Err(invalid(
                    format!("{p}/models/{i}"),
                    format!("model `{}` is listed twice", m.as_str()),
                ));
            }
        }
        let region = a
            .default_phone_region
            .parse::<phonenumber::country::Id>()
            .map_err(|_| {
                invalid(
                    format!("{p}/default_phone_region"),
                    format!(
                        "`{}` is not an ISO 3166 alpha-2 region",
                        a.default_phone_region
                    ),
                )
            })?;

        let mut identity = Vec::new();
        for (i, r) in a.identity.iter().enumerate() {
            let q = format!("{p}/identity/{i}");
            identity.push(IdentityPlan {
                select: Selector {
                    source: r.source.clone(),
                    object: r.object.clone(),
                },
                email: compile_opt(format!("{q}/email"), r.email.as_ref())?,
                phone: compile_opt(format!("{q}/phone"), r.phone.as_ref())?,
                customer_id: compile_opt(format!("{q}/customer_id"), r.customer_id.as_ref())?,
            });
        }
        let mut conversions = Vec::new();
        let mut names = HashSet::new();
        for (i, c) in a.conversions.iter().enumerate() {
            let q = format!("{p}/conversions/{i}");
            if !names.insert(c.name.as_str()) {
                return Err(invalid(
                    format!("{q}/name"),
                    format!("conversion `{}` is declared twice", c.name),
                ));
            }
            let mut confounders = Vec::new();
            for (name, e) in &c.confounders {
                confounders.push((
                    name.clone(),
                    compile(
                        format!(
                            "{q}/confounders/{}",
                            crate::diag::escape_pointer_token(name)
                        ),
                        e,
                    )?,
                ));
            }
            let mut required = Vec::new();
            for (k, e) in c.quality.required.iter().enumerate() {
                required.push(compile(format!("{q}/quality/required/{k}"), e)?);
            }
            let mut valid = Vec::new();
            for (k, v) in c.quality.valid.iter().enumerate() {
                if !(v.weight >= 0.0 && v.weight.is_finite()) {
                    return Err(invalid(
                        format!("{q}/quality/valid/{k}/weight"),
                        "must be a non-negative number",
                    ));
                }
                valid.push((
                    v.name.clone(),
                    compile(format!("{q}/quality/valid/{k}/condition"), &v.condition)?,
                    v.weight,
                ));
            }
            conversions.push(ConversionPlan {
                name: c.name.clone(),
                select: Selector {
                    source: c.source.clone(),
                    object: c.object.clone(),
                },
                condition: compile_opt(format!("{q}/condition"), c.condition.as_ref())?,
                value: compile_opt(format!("{q}/value"), c.value.as_ref())?,
                currency: compile_opt(format!("{q}/currency"), c.currency.as_ref())?,
                time: compile(format!("{q}/time"), &c.time)?,
                id: compile(format!("{q}/id"), &c.id)?,
                event_type: c.event_type.clone(),
                confounders,
                required,
                valid,
            });
        }
        let mut touchpoints = Vec::new();
        for (i, t) in a.touchpoints.iter().enumerate() {
            touchpoints.push(compile_touch(&format!("{p}/touchpoints/{i}"), t)?);
        }
        let mut treatments = Vec::new();
        for (i, t) in a.treatment_rules.iter().enumerate() {
            let q = format!("{p}/treatment_rules/{i}");
            if !(0.0..=1.0).contains(&t.confidence_score) {
                return Err(invalid(
                    format!("{q}/confidence_score"),
                    "must be in [0, 1]",
                ));
            }
            for (k, c) in t.conversions.iter().enumerate() {
                if !names.contains(c.as_str()) {
                    return Err(invalid(
                        format!("{q}/conversions/{k}"),
                        format!("no conversion is named `{c}`"),
                    ));
                }
            }
            treatments.push(TreatmentPlan {
                condition: compile(format!("{q}/condition"), &t.condition)?,
                assignment: TreatmentAssignment {
                    treatment_group: t.treatment_group.clone(),
                    assignment_method: t.assignment_method.clone(),
                    confidence_score: t.confidence_score,
                },
                conversions: t.conversions.clone(),
            });
        }
        let d = &a.default_treatment;
        if !(0.0..=1.0).contains(&d.confidence_score) {
            return Err(invalid(
                format!("{p}/default_treatment/confidence_score"),
                "must be in [0, 1]",
            ));
        }
        let mut rule_sources: Vec<String> = Vec::new();
        for s in identity
            .iter()
            .map(|r| &r.select)
            .chain(conversions.iter().map(|c| &c.select))
            .chain(touchpoints.iter().map(|t| &t.select))
        {
            if !rule_sources.contains(&s.source) {
                rule_sources.push(s.source.clone());
            }
        }
        Ok(Plan {
            name: a.name.clone(),
            tenant: a.tenant.clone(),
            source_field: a.source_field.clone(),
            object_field: a.object_field.clone(),
            rule_sources,
            default_currency: a.default_currency.clone(),
            lookback_ms: (a.lookback_days * DAY_MS).round() as i64,
            models: a.models.clone(),
            heuristic: HeuristicParams {
                half_life_days: a.time_decay.half_life_days,
                position: a.position_based.clone(),
            },
            markov_order: a.markov.order as usize,
            shapley_max: a.shapley.max_channels as usize,
            region: Some(region),
            identity,
            conversions,
            touchpoints,
            channel_map: a
                .channel_map
                .iter()
                .map(|(k, v)| (k.trim().to_lowercase(), v.clone()))
                .collect(),
            treatments,
            default_treatment: TreatmentAssignment {
                treatment_group: d.treatment_group.clone(),
                assignment_method: d.assignment_method.clone(),
                confidence_score: d.confidence_score,
            },
            anomalies: a
                .anomalies
                .enabled
                .then_some((a.anomalies.threshold, a.anomalies.min_samples as usize)),
        })
    }

    /// Name of the rule set.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Tenant of the rule set.
    pub fn tenant(&self) -> &str {
        &self.tenant
    }

    /// Run every record of a run through the plan (`today()` and `now()` read the clock).
    pub fn run(&self, records: &[Value]) -> Result<Outcome, AttributionError> {
        self.run_at(records, chrono::Utc::now())
    }

    /// Run every record of a run through the plan, with `now` as the expressions' clock.
    pub fn run_at(
        &self,
        records: &[Value],
        now: chrono::DateTime<chrono::Utc>,
    ) -> Result<Outcome, AttributionError> {
        self.check_sources(records)?;
        let ectx = EvalCtx { now };
        let mut warnings = Vec::new();
        let mut graph = identity::IdentityGraph::default();
        let mut nodes = Vec::with_capacity(records.len());
        let mut convs: Vec<Conv> = Vec::new();
        let mut touches: Vec<Touch> = Vec::new();
        let mut sources: Vec<Option<&str>> = Vec::with_capacity(records.len());
        let mut objects: Vec<Option<&str>> = Vec::with_capacity(records.len());

        for (i, rec) in records.iter().enumerate() {
            let node = graph.node();
            nodes.push(node);
            let source = rec.get(&self.source_field).and_then(Value::as_str);
            let object = rec.get(&self.object_field).and_then(Value::as_str);
            sources.push(source);
            objects.push(object);
            // `check_sources` refused the run when a record has none.
            let Some(source) = source else {
                continue;
            };
            let scope = Scope {
                record: rec,
                journey: None,
                ctx: &ectx,
            };
            for r in self
                .identity
                .iter()
                .filter(|r| r.select.matches(source, object))
            {
                let text = |e: &Option<CompiledExpr>| {
                    e.as_ref().and_then(|e| scalar_text(&e.eval(&scope)))
                };
                if let Some(e) = text(&r.email).and_then(|s| identity::normalize_email(&s)) {
                    graph.link(node, format!("email:{e}"));
                }
                if let Some(ph) =
                    text(&r.phone).and_then(|s| identity::normalize_phone(&s, self.region))
                {
                    graph.link(node, format!("phone:{ph}"));
                }
                if let Some(c) =
                    text(&r.customer_id).and_then(|s| identity::normalize_customer_id(&s))
                {
                    graph.link(node, format!("customer:{c}"));
                }
            }
            for (k, c) in self.conversions.iter().enumerate() {
                if !c.select.matches(source, object)
                    || !c.condition.as_ref().is_none_or(|e| e.eval_bool(&scope))
                {
                    continue;
                }
                let Some(time) = time_of(&c.time.eval(&scope)) else {
                    warnings.push(format!(
                        "record {}: conversion `{}` has no readable time at `{}`; skipped",
                        i + 1,
                        c.name,
                        c.time.text()
                    ));
                    continue;
                };
                let value = match &c.value {
                    None => 1.0,
                    Some(e) => match e.eval(&scope).as_f64() {
                        Some(v) => v,
                        None => {
                            warnings.push(format!(
                                "record {}: conversion `{}` value `{}` is absent or not a number; counted as 0",
                                i + 1,
                                c.name,
                                e.text()
                            ));
                            0.0
                        }
                    },
                };
                let currency = c
                    .currency
                    .as_ref()
                    .and_then(|e| scalar_text(&e.eval(&scope)))
                    .filter(|s| !s.trim().is_empty())
                    .map(|s| s.trim().to_uppercase())
                    .unwrap_or_else(|| self.default_currency.clone());
                let id =
                    scalar_text(&c.id.eval(&scope)).unwrap_or_else(|| format!("record{}", i + 1));
                convs.push(Conv {
                    record: i,
                    rule: k,
                    time,
                    value,
                    currency,
                    id,
                });
            }
            for (k, t) in self.touchpoints.iter().enumerate() {
                if !t.select.matches(source, object)
                    || !t.condition.as_ref().is_none_or(|e| e.eval_bool(&scope))
                {
                    continue;
                }
                let Some(raw) = scalar_text(&t.channel.eval(&scope)) else {
                    continue;
                };
                let raw = raw.trim().to_lowercase();
                if raw.is_empty() {
                    continue;
                }
                let channel = self.channel_map.get(&raw).cloned().unwrap_or(raw);
                let Some(time) = time_of(&t.time.eval(&scope)) else {
                    warnings.push(format!(
                        "record {}: touchpoint `{}` has no readable time at `{}`; skipped",
                        i + 1,
                        t.name,
                        t.time.text()
                    ));
                    continue;
                };
                let campaign = t
                    .campaign
                    .as_ref()
                    .and_then(|e| scalar_text(&e.eval(&scope)))
                    .filter(|s| !s.trim().is_empty());
                touches.push(Touch {
                    record: i,
                    rule: k,
                    time,
                    channel,
                    campaign,
                });
            }
        }

        // Persons.
        let person: Vec<usize> = nodes.iter().map(|&n| graph.find(n)).collect();
        let mut touches_of: HashMap<usize, Vec<Touch>> = HashMap::new();
        for t in touches {
            touches_of.entry(person[t.record]).or_default().push(t);
        }
        for ts in touches_of.values_mut() {
            ts.sort_by_key(|t| (t.time, t.record, t.rule));
            let mut seen = HashSet::new();
            ts.retain(|t| seen.insert((t.time, t.channel.clone())));
        }
        let mut conv_times_of: HashMap<usize, Vec<i64>> = HashMap::new();
        for c in &convs {
            conv_times_of
                .entry(person[c.record])
                .or_default()
                .push(c.time);
        }
        for v in conv_times_of.values_mut() {
            v.sort_unstable();
        }

        // Journeys.
        let mut journeys = Journeys::default();
        let mut channel_ids: HashMap<String, u32> = HashMap::new();
        let mut id_of = |journeys: &mut Journeys, name: &str| -> u32 {
            if let Some(&id) = channel_ids.get(name) {
                return id;
            }
            let id = journeys.channels.len() as u32;
            journeys.channels.push(name.to_string());
            channel_ids.insert(name.to_string(), id);
            id
        };
        let empty: Vec<Touch> = Vec::new();
        let mut eligible_of: Vec<Vec<Touch>> = Vec::with_capacity(convs.len());
        let mut unattributed = ChannelCredit::default();
        for c in &convs {
            let ts = touches_of.get(&person[c.record]).unwrap_or(&empty);
            let from = c.time.saturating_sub(self.lookback_ms);
            let eligible: Vec<Touch> = ts
                .iter()
                .filter(|t| t.time >= from && t.time <= c.time)
                .cloned()
                .collect();
            if eligible.is_empty() {
                unattributed.conversions += 1.0;
                unattributed.value += c.value;
            }
            let mut j = Journey {
                conversions: 1.0,
                value: c.value,
                ..Journey::default()
            };
            for t in &eligible {
                j.channels.push(id_of(&mut journeys, &t.channel));
                j.ages_days.push((c.time - t.time) as f64 / DAY_MS);
            }
            journeys.paths.push(j);
            eligible_of.push(eligible);
        }
        // Non-converting paths: touches after a person's last conversion.
        let mut people: Vec<&usize> = touches_of.keys().collect();
        people.sort_unstable();
        for p in people {
            let last = conv_times_of.get(p).and_then(|v| v.last().copied());
            let mut j = Journey {
                nulls: 1.0,
                ..Journey::default()
            };
            for t in &touches_of[p] {
                if last.is_none_or(|l| t.time > l) {
                    j.channels.push(id_of(&mut journeys, &t.channel));
                    j.ages_days.push(0.0);
                }
            }
            if !j.channels.is_empty() {
                journeys.paths.push(j);
            }
        }

        // Channel tables.
        let mut report = Report {
            models: IndexMap::new(),
            unattributed,
            markov: None,
        };
        for &m in &self.models {
            let table: Vec<Credit> = match m {
                ModelKind::Markov => {
                    let r = markov::markov(&journeys, self.markov_order);
                    report.markov = Some(MarkovReport {
                        order: r.order,
                        conversion_probability: r.conversion_probability,
                        expected_value: r.expected_value,
                        removal_effects: journeys
                            .channels
                            .iter()
                            .zip(r.removal_effects.iter().zip(&r.value_removal_effects))
                            .map(|(name, (&conversions, &value))| {
                                (name.clone(), RemovalEffect { conversions, value })
                            })
                            .collect(),
                    });
                    r.credits
                }
                ModelKind::Shapley => shapley::shapley(&journeys, self.shapley_max)?,
                k => models::heuristic_table(k, &journeys, &self.heuristic),
            };
            let t = journeys
                .channels
                .iter()
                .zip(table)
                .map(|(name, c)| {
                    (
                        name.clone(),
                        ChannelCredit {
                            conversions: c.conversions,
                            value: c.value,
                        },
                    )
                })
                .collect();
            report.models.insert(m.as_str().to_string(), t);
        }

        // Anomalies per conversion type.
        let mut flags: Vec<Vec<String>> = vec![Vec::new(); convs.len()];
        if let Some((threshold, min_samples)) = self.anomalies {
            for k in 0..self.conversions.len() {
                let idx: Vec<usize> = (0..convs.len()).filter(|&i| convs[i].rule == k).collect();
                let values: Vec<f64> = idx.iter().map(|&i| convs[i].value).collect();
                for (&i, out) in
                    idx.iter()
                        .zip(anomaly::mad_outliers(&values, threshold, min_samples))
                {
                    if out {
                        flags[i].push("conversion_value_outlier".into());
                    }
                }
                let days: Vec<i64> = idx
                    .iter()
                    .map(|&i| convs[i].time.div_euclid(DAY_MS as i64))
                    .collect();
                let mut per_day: BTreeMap<i64, f64> = BTreeMap::new();
                for d in &days {
                    *per_day.entry(*d).or_default() += 1.0;
                }
                let counts: Vec<f64> = per_day.values().copied().collect();
                let out = anomaly::mad_outliers(&counts, threshold, min_samples);
                let flagged: HashSet<i64> = per_day
                    .keys()
                    .zip(out)
                    .filter_map(|(d, o)| o.then_some(*d))
                    .collect();
                for (&i, d) in idx.iter().zip(&days) {
                    if flagged.contains(d) {
                        flags[i].push("daily_volume_outlier".into());
                    }
                }
            }
        }

        // Records.
        let mut rules_per_record: HashMap<usize, usize> = HashMap::new();
        for c in &convs {
            *rules_per_record.entry(c.record).or_default() += 1;
        }
        let heuristic_models: Vec<ModelKind> = self
            .models
            .iter()
            .copied()
            .filter(|m| models::is_heuristic(*m))
            .collect();
        let mut out_records = Vec::with_capacity(convs.len());
        let mut weights = Vec::new();
        for (n, c) in convs.iter().enumerate() {
            let rule = &self.conversions[c.rule];
            let rec = &records[c.record];
            let source = sources[c.record].unwrap_or_default();
            let object = objects[c.record].unwrap_or(rule.name.as_str());
            let eligible = &eligible_of[n];
            let prior = conv_times_of
                .get(&person[c.record])
                .map_or(0, |v| v.iter().filter(|&&t| t < c.time).count());
            let journey = journey_object(eligible, prior, c.time);
            let ctx = Scope {
                record: rec,
                journey: Some(&journey),
                ctx: &ectx,
            };
            let treatment = self
                .treatments
                .iter()
                .find(|t| {
                    (t.conversions.is_empty() || t.conversions.contains(&rule.name))
                        && t.condition.eval_bool(&ctx)
                })
                .map_or_else(|| self.default_treatment.clone(), |t| t.assignment.clone());
            let confounders: Map<String, Value> = rule
                .confounders
                .iter()
                .map(|(name, e)| (name.clone(), e.eval_json(&ctx).unwrap_or(Value::Null)))
                .collect();
            let (score, reasons) = quality(rule, &ctx);
            let mut attribution = IndexMap::new();
            for &m in &heuristic_models {
                weights.clear();
                models::heuristic_weights(m, &journeys.paths[n], &self.heuristic, &mut weights);
                let mut shares: IndexMap<String, f64> = IndexMap::new();
                for (t, w) in eligible.iter().zip(&weights) {
                    if *w > 0.0 {
                        *shares.entry(t.channel.clone()).or_default() += w;
                    }
                }
                attribution.insert(m.as_str().to_string(), shares);
            }
            let mut record_id = format!("{source}_{object}_{}", c.id);
            if rules_per_record.get(&c.record).copied().unwrap_or(0) > 1 {
                record_id = format!("{record_id}_{}", rule.name);
            }
            out_records.push(CausalMarketingData {
                record_id,
                data_source: source.to_string(),
                event_type: rule.event_type.clone(),
                conversion_type: rule.name.clone(),
                conversion_value: c.value,
                currency: c.currency.clone(),
                conversion_date: format_time(c.time),
                treatment_assignment: treatment,
                confounders,
                kse_enhancement: None,
                data_quality_score: score,
                data_quality_reasons: reasons,
                anomaly_flags: std::mem::take(&mut flags[n]),
                attributed: !eligible.is_empty(),
                touchpoints: eligible
                    .iter()
                    .map(|t| TouchOut {
                        channel: t.channel.clone(),
                        campaign: t.campaign.clone(),
                        time: format_time(t.time),
                        source: sources[t.record].unwrap_or_default().to_string(),
                        rule: self.touchpoints[t.rule].name.clone(),
                    })
                    .collect(),
                attribution,
            });
        }
        Ok(Outcome {
            records: out_records,
            report,
            warnings,
        })
    }
}

impl Plan {
    /// Refuse a run in which a record does not name its system in `source_field` (absent, or
    /// not text): every rule selects records by source, so such a run would attribute nothing
    /// and say so only per record. The error names the first such record, how many there are,
    /// and the key of that record that most likely holds its system.
    fn check_sources(&self, records: &[Value]) -> Result<(), AttributionError> {
        let named = |r: &Value| r.get(&self.source_field).is_some_and(Value::is_string);
        let Some(first) = records.iter().position(|r| !named(r)) else {
            return Ok(());
        };
        let lacking = records.iter().filter(|r| !named(r)).count();
        let total = records.len();
        let rec = &records[first];
        let field = &self.source_field;
        let what = match rec.get(field) {
            None => format!("has no `{field}` field naming its system"),
            Some(v) => {
                let found = match v {
                    Value::Array(_) => "an array".to_string(),
                    Value::Object(_) => "an object".to_string(),
                    scalar => scalar.to_string(),
                };
                format!("has `{field}` = {found}, not text naming its system")
            }
        };
        let count = if lacking == total && total > 1 {
            format!(" (none of the {total} records has it)")
        } else if lacking > 1 {
            format!(" ({lacking} of {total} records lack it)")
        } else {
            String::new()
        };
        let keys: Vec<&str> = rec
            .as_object()
            .map(|m| {
                m.keys()
                    .map(String::as_str)
                    .filter(|k| k != field)
                    .collect()
            })
            .unwrap_or_default();
        let carriers = total - lacking;
        let hint = if carriers > 0 {
            // Other records name their system where the spec looks: this record is the one to
            // fix, not the setting.
            let spelled = match rec.get(field) {
                None => crate::diag::closest(field, keys.iter().copied())
                    .map(|k| format!("the record has `{k}`: did you mean `{field}`? ")),
                Some(_) => None,
            };
            let does = if carriers == 1 {
                "record names its"
            } else {
                "records name their"
            };
            format!(
                "{}{carriers} other {does} system in `{field}`: give this record its system there, as text",
                spelled.unwrap_or_default()
            )
        } else {
            self.source_field_hint(rec, &keys)
        };
        Err(AttributionError::MissingSource {
            record: first + 1,
            field: field.clone(),
            message: format!("{what}{count}"),
            hint,
        })
    }

    /// The hint when no record names its system in `source_field`: the record's key that
    /// does (by value: a source the rules select; else by spelling), or its keys.
    fn source_field_hint(&self, rec: &Value, keys: &[&str]) -> String {
        let field = &self.source_field;
        let set = |k: &str| format!("set `source_field = \"{k}\"` in [attribution]");
        let by_value = keys.iter().find(|k| {
            rec.get(**k)
                .and_then(Value::as_str)
                .is_some_and(|v| self.rule_sources.iter().any(|s| s == v))
        });
        if let Some(k) = by_value {
            let v = rec.get(*k).and_then(Value::as_str).unwrap_or_default();
            format!(
                "`{k}` holds `{v}`, a source the spec's rules select: did you mean `{k}`? {}",
                set(k)
            )
        } else if let Some(k) = crate::diag::closest(field, keys.iter().copied()) {
            format!("did you mean `{k}`? {}", set(k))
        } else if keys.is_empty() {
            format!(
                "give every record a `{field}` field naming its system (one of {})",
                self.rule_sources
                    .iter()
                    .map(|s| format!("`{s}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        } else {
            const SHOWN: usize = 8;
            let mut list = keys
                .iter()
                .take(SHOWN)
                .map(|k| format!("`{k}`"))
                .collect::<Vec<_>>()
                .join(", ");
            if keys.len() > SHOWN {
                list.push_str(&format!(" and {} more", keys.len() - SHOWN));
            }
            format!(
                "the record's keys are {list}: set `source_field` in [attribution] to the one naming its system, or add `{field}` to every record"
            )
        }
    }
}

fn compile_touch(q: &str, t: &TouchpointRule) -> Result<TouchPlan, AttributionError> {
    Ok(TouchPlan {
        name: t.name.clone(),
        select: Selector {
            source: t.source.clone(),
            object: t.object.clone(),
        },
        condition: compile_opt(format!("{q}/condition"), t.condition.as_ref())?,
        channel: compile(format!("{q}/channel"), &t.channel)?,
        campaign: compile_opt(format!("{q}/campaign"), t.campaign.as_ref())?,
        time: compile(format!("{q}/time"), &t.time)?,
    })
}

/// The `journey` object of a conversion, seen by its treatment, confounder and quality
/// expressions beside the record.
fn journey_object(eligible: &[Touch], prior: usize, conv_time: i64) -> Value {
    let first = eligible.first();
    let last = eligible.last();
    json!({
            "touches": eligible.len(),
            "channels": eligible.iter().map(|t| t.channel.as_str()).collect::<Vec<_>>(),
            "first_channel": first.map(|t| t.channel.as_str()),
            "last_channel": last.map(|t| t.channel.as_str()),
            "first_campaign": first.and_then(|t| t.campaign.as_deref()),
            "last_campaign": last.and_then(|t| t.campaign.as_deref()),
            "prior_conversions": prior,
        "days_from_first_touch": first.map(|t| (conv_time - t.time) as f64 / DAY_MS),
    })
}

/// Score and reasons of the declared quality checks.
fn quality(rule: &ConversionPlan, ctx: &Scope<'_>) -> (f64, Vec<String>) {
    let mut total = 0.0;
    let mut passed = 0.0;
    let mut reasons = Vec::new();
    for e in &rule.required {
        total += 1.0;
        let present = match e.eval(ctx) {
            Val::Absent | Val::Null => false,
            Val::Str(s) => !s.trim().is_empty(),
            _ => true,
        };
        if present {
            passed += 1.0;
        } else {
            reasons.push(format!("missing {}", e.text()));
        }
    }
    for (name, e, w) in &rule.valid {
        total += w;
        if e.eval_bool(ctx) {
            passed += w;
        } else {
            reasons.push(format!("invalid {name}: {}", e.text()));
        }
    }
    let score = if total > 0.0 { passed / total } else { 1.0 };
    (score, reasons)
}

/// Text of a scalar (integral floats without a fraction, so a customer id `42.0` is `42`).
fn scalar_text(v: &Val<'_>) -> Option<String> {
    match v {
        Val::Float(f) if f.fract() == 0.0 && f.abs() < 9.0e15 => Some(format!("{}", *f as i64)),
        Val::Str(_) | Val::Int(_) | Val::Float(_) | Val::Bool(_) => {
            v.text().map(|t| t.into_owned())
        }
        _ => None,
    }
}

/// A time read by [`parse_time`] from an expression's result.
fn time_of(v: &Val<'_>) -> Option<i64> {
    match v {
        Val::Int(i) => time_from_number(*i as f64),
        Val::Float(f) => time_from_number(*f),
        Val::Str(s) => parse_time_str(s),
        _ => None,
    }
}

/// Read a time: RFC 3339 (also with a `+0000` offset, as Salesforce writes it),
/// `YYYY-MM-DD[ T]HH:MM:SS[.f]` (UTC), `YYYY-MM-DD`, or epoch seconds /
/// milliseconds (numbers above 10^11 are milliseconds). Returns epoch milliseconds.
pub fn parse_time(v: &Value) -> Option<i64> {
    match v {
        Value::Number(n) => n.as_f64().and_then(time_from_number),
        Value::String(s) => parse_time_str(s),
        _ => None,
    }
}

/// Epoch seconds, or milliseconds above 10^11.
fn time_from_number(f: f64) -> Option<i64> {
    if !f.is_finite() {
        return None;
    }
    Some(if f.abs() >= 1e11 {
        f.round() as i64
    } else {
        (f * 1000.0).round() as i64
    })
}

/// [`parse_time`] of text.
fn parse_time_str(s: &str) -> Option<i64> {
    use chrono::{DateTime, NaiveDate, NaiveDateTime};
    let s = s.trim();
    if let Ok(f) = s.parse::<f64>() {
        return time_from_number(f);
    }
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Some(t.timestamp_millis());
    }
    // Salesforce writes offsets without a colon: 2024-03-01T12:00:00.000+0000.
    if let Ok(t) = DateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f%z") {
        return Some(t.timestamp_millis());
    }
    for fmt in ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M:%S%.f"] {
        if let Ok(t) = NaiveDateTime::parse_from_str(s, fmt) {
            return Some(t.and_utc().timestamp_millis());
        }
    }
    NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|t| t.and_utc().timestamp_millis())
}

/// Format epoch milliseconds as RFC 3339 UTC (`2024-01-15T10:30:00Z`, milliseconds only when
/// not whole seconds).
pub fn format_time(ms: i64) -> String {
    use chrono::{DateTime, SecondsFormat};
    DateTime::from_timestamp_millis(ms).map_or_else(
        || ms.to_string(),
        |t| {
            let f = if ms.rem_euclid(1000) == 0 {
                SecondsFormat::Secs
            } else {
                SecondsFormat::Millis
            };
            t.to_rfc3339_opts(f, true)
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_in_every_declared_format() {
        let t = 1_705_314_600_000; // 2024-01-15T10:30:00Z
        assert_eq!(parse_time(&json!("2024-01-15T10:30:00Z")), Some(t));
        assert_eq!(parse_time(&json!("2024-01-15T11:30:00+01:00")), Some(t));
        assert_eq!(parse_time(&json!("2024-01-15 10:30:00")), Some(t));
        assert_eq!(parse_time(&json!("2024-01-15T10:30:00.000+0000")), Some(t));
        assert_eq!(parse_time(&json!(1_705_314_600)), Some(t));
        assert_eq!(parse_time(&json!("1705314600000")), Some(t));
        assert_eq!(parse_time(&json!("2024-01-15")), Some(t - 37_800_000));
        assert_eq!(parse_time(&json!("yesterday")), None);
        assert_eq!(format_time(t), "2024-01-15T10:30:00Z");
    }
}
