//! [`WebhookRoute`]: a route that receives its records from a webhook — the source's verifier
//! (compiled once), its idempotency key path, and a redactor of every secret the route holds;
//! `receive` maps and delivers a verified body (refusing it whole when a record does not map:
//! the sender is told), `receive_kept` delivers a body nobody is waiting for (records that do
//! not map are dead-lettered with their text, for a replay), and `abandon` dead-letters a body
//! whose processing kept failing.

use super::{EngineError, Route};
use crate::connector::deliver::input::content_key;
use crate::connector::webhook::{Refusal, Verifier, WebhookRequest};
use crate::connector::{
    DeliveryItem, DeliveryReport, Input, Path as JsonPath, RejectedInput, scalar,
};
use crate::secrets::{Redactor, Secret};
use crate::spec::connector::Verification;
use serde_json::Value;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Why a verified webhook body was not delivered.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WebhookError {
    /// The body is not a JSON object or an array of objects.
    #[error("{0}")]
    BadBody(String),
    /// The mapping refused a record (secrets redacted).
    #[error("{0}")]
    Mapping(String),
}

/// A webhook route.
#[derive(Clone)]
pub struct WebhookRoute {
    route: Route,
    source: String,
    verifier: Option<Arc<Verifier>>,
    idempotency: Option<JsonPath>,
    redactor: Redactor,
    verifier_id: [u8; 32],
}

impl std::fmt::Debug for WebhookRoute {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookRoute")
            .field("route", &self.route)
            .field("source", &self.source)
            .field("verification", &self.verification())
            .finish_non_exhaustive()
    }
}

impl super::Engine {
    /// Make `route` a webhook route: its source must be an inbound source that declares how
    /// senders are verified (or says `verification = "none"`), and every signing secret must
    /// resolve to a non-empty value.
    pub fn webhook_route(&self, route: Route) -> Result<WebhookRoute, EngineError> {
        let m = route.mapping();
        let path = route.path().to_path_buf();
        let invalid = |msg: String| EngineError::Invalid(msg);
        let source = m.source.clone().ok_or_else(|| {
            invalid(format!(
                "{}: /source: a webhook route needs the inbound source it receives from",
                path.display()
            ))
        })?;
        let label = format!("route {}/{source} ({})", m.tenant, path.display());
        let (spec, spec_path) = route
            .source()
            .map(|(s, p)| (s.clone(), p.to_path_buf()))
            .ok_or_else(|| invalid(format!("{label}: source `{source}` not found")))?;
        let inbound = spec.inbound.as_ref().ok_or_else(|| {
            invalid(format!(
                "{label}: source `{source}` ({}) is not an inbound source (no [inbound] table)",
                spec_path.display()
            ))
        })?;
        let mut secrets = HashMap::new();
        for (name, reference) in &m.source_secrets {
            let v = self
                .secrets()
                .resolve(reference)
                .map_err(|e| invalid(format!("{}: /source_secrets/{name}: {e}", path.display())))?;
            secrets.insert(name.clone(), v);
        }
        let set = self
            .plugins()
            .load_set(&spec_path, &spec.plugins, &m.tenant)?;
        let redactor = route_redactor(self, &route, &secrets, &spec, &spec_path);
        let verifier = match (&inbound.webhook, inbound.verification) {
            (Some(scheme), Verification::Required) => Some(
                Verifier::new(scheme, &secrets, Some(&set))
                    .map_err(|e| {
                        let reference = e.secret().and_then(|n| m.source_secrets.get(n));
                        invalid(verifier_error(&label, &e, reference))
                    })?
                    .with_redactor(redactor.clone()),
            ),
            (None, Verification::None) => None,
            (None, Verification::Required) => {
                return Err(invalid(format!(
                    "{label}: source `{source}` ({}) declares no webhook verification: anyone could \
                     post records; declare `webhook = {{ scheme = … }}` in its [inbound] table, or \
                     `verification = \"none\"` to accept unsigned webhooks",
                    spec_path.display()
                )));
            }
            (Some(_), Verification::None) => {
                return Err(invalid(format!(
                    "{label}: source `{source}` ({}): /inbound/verification: `none` contradicts the \
                     declared webhook scheme",
                    spec_path.display()
                )));
            }
        };
        let idempotency = inbound
            .idempotency_key
            .as_deref()
            .map(JsonPath::compile)
            .transpose()
            .map_err(|e| {
                invalid(format!(
                    "{}: /inbound/idempotency_key: {e}",
                    spec_path.display()
                ))
            })?;
        let verifier_id =
            verifier_identity(&m.tenant, &spec_path, inbound.webhook.as_ref(), &secrets);
        Ok(WebhookRoute {
            route,
            source,
            verifier: verifier.map(Arc::new),
            idempotency,
            redactor,
            verifier_id,
        })
    }
}

impl WebhookRoute {
    /// The route.
    pub fn route(&self) -> &Route {
        &self.route
    }

    /// (tenant, source): the address senders post to.
    pub fn key(&self) -> (String, String) {
        (self.route.tenant().to_string(), self.source.clone())
    }

    /// The verification scheme (`none` when the source accepts unsigned webhooks).
    pub fn verification(&self) -> &'static str {
        self.verifier.as_ref().map_or("none", |v| v.scheme())
    }

    /// Every secret the route holds, for redacting what goes to logs and answers.
    pub fn redactor(&self) -> &Redactor {
        &self.redactor
    }

    /// Two routes with the same identity verify a request the same way (the same tenant,
    /// source spec file, scheme and signing secrets): one check serves both. A digest; the
    /// secrets cannot be read back from it.
    pub fn verifier_identity(&self) -> [u8; 32] {
        self.verifier_id
    }

    /// Verify a request (blocking: an HMAC over the body, or a plugin call; run it off the
    /// async workers). `Ok` without a verifier.
    pub fn verify(&self, req: &WebhookRequest<'_>, now: i64) -> Result<(), Refusal> {
        match &self.verifier {
            Some(v) => v.verify(req, now),
            None => Ok(()),
        }
    }

    /// Map and deliver a verified body (one JSON object, or an array of them), under the
    /// request's correlation id. A record the mapping refuses refuses the whole body, and
    /// nothing is delivered: the sender is told why.
    pub async fn receive(
        &self,
        body: &[u8],
        correlation_id: &str,
    ) -> Result<DeliveryReport, WebhookError> {
        let records = records(body)?;
        let mut items = Vec::with_capacity(records.len());
        for (i, r) in records.iter().enumerate() {
            let mapped = self.route.map(r).map_err(|e| {
                WebhookError::Mapping(
                    self.redactor
                        .redact(&format!("record {i}: {e}"))
                        .into_owned(),
                )
            })?;
            items.push(DeliveryItem {
                key: self.key_of(r),
                mapped,
            });
        }
        let report = self.route.deliver_correlated(items, correlation_id).await;
        Ok(self.redacted(report))
    }

    /// Map and deliver a body no sender waits for (accepted earlier, delivered from the
    /// inbox): every record that maps is delivered, and what cannot be — a body that is not
    /// JSON (`(input)`), a record the mapping refuses (`(mapping)`) — is dead-lettered with
    /// its text, so that `switchyard deadletter replay` maps it again once the route is fixed.
    pub async fn receive_kept(&self, body: &[u8], correlation_id: &str) -> DeliveryReport {
        let inputs = match records(body) {
            Ok(records) => records
                .iter()
                .enumerate()
                .map(|(i, r)| match self.route.map(r) {
                    Ok(mapped) => Input::Record(DeliveryItem {
                        key: self.key_of(r),
                        mapped,
                    }),
                    Err(e) => Input::Rejected(RejectedInput {
                        key: self.key_of(r),
                        line: None,
                        stage: "(mapping)",
                        input: r.to_string().into_bytes(),
                        reason: format!("record {i}: {e}"),
                    }),
                })
                .collect(),
            Err(e) => vec![Input::Rejected(RejectedInput {
                key: content_key(body),
                line: None,
                stage: "(input)",
                input: body.to_vec(),
                reason: e.to_string(),
            })],
        };
        self.deliver_inputs(inputs, correlation_id).await
    }

    /// Give up on a body whose processing kept failing (`reason` says how): each of its
    /// records is dead-lettered as `(inbox)` with its text (the whole body when it is not a
    /// JSON object or array), nothing is mapped or sent. A replay maps them again.
    pub async fn abandon(&self, body: &[u8], correlation_id: &str, reason: &str) -> DeliveryReport {
        let rejected = |key: String, input: Vec<u8>| {
            Input::Rejected(RejectedInput {
                key,
                line: None,
                stage: "(inbox)",
                input,
                reason: reason.to_string(),
            })
        };
        let inputs = match records(body) {
            Ok(records) => records
                .iter()
                .map(|r| rejected(self.key_of(r), r.to_string().into_bytes()))
                .collect(),
            Err(_) => vec![rejected(content_key(body), body.to_vec())],
        };
        self.deliver_inputs(inputs, correlation_id).await
    }

    async fn deliver_inputs(&self, inputs: Vec<Input>, correlation_id: &str) -> DeliveryReport {
        let mut report = DeliveryReport::default();
        self.route
            .deliverer()
            .with_correlation(correlation_id)
            .deliver_stream(futures::stream::iter(inputs), |r| report.add(r))
            .await;
        self.redacted(report)
    }

    /// A record's idempotency key: the source's id, else a digest of the record.
    fn key_of(&self, r: &Value) -> String {
        self.idempotency
            .as_ref()
            .and_then(|p| p.first(r))
            .map(scalar)
            .filter(|k| !k.is_empty())
            .unwrap_or_else(|| content_key(r.to_string().as_bytes()))
    }

    fn redacted(&self, mut report: DeliveryReport) -> DeliveryReport {
        let reasons = (report.objects.iter_mut().map(|o| &mut o.reason))
            .chain(report.actions.iter_mut().map(|a| &mut a.reason));
        for r in reasons.flatten() {
            self.redactor.redact_in_place(r);
        }
        report
    }
}

/// A body's records: one JSON object, or an array of them.
fn records(body: &[u8]) -> Result<Vec<Value>, WebhookError> {
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Array(a)) => Ok(a),
        Ok(v @ Value::Object(_)) => Ok(vec![v]),
        Ok(_) => Err(WebhookError::BadBody(
            "the body must be a JSON object or an array of objects".into(),
        )),
        Err(e) => Err(WebhookError::BadBody(format!("the body is not JSON: {e}"))),
    }
}

/// What makes two routes' verifiers the same: tenant, source spec file, scheme and signing
/// secrets, hashed (the digest never leaves the process, and the secrets cannot be read back
/// from it).
fn verifier_identity(
    tenant: &str,
    source_spec: &Path,
    scheme: Option<&crate::spec::connector::WebhookVerify>,
    secrets: &HashMap<String, Secret>,
) -> [u8; 32] {
    use sha2::Digest as _;
    let mut h = sha2::Sha256::new();
    let mut part = |b: &[u8]| {
        h.update((b.len() as u64).to_le_bytes());
        h.update(b);
    };
    part(tenant.as_bytes());
    part(source_spec.as_os_str().as_encoded_bytes());
    part(
        serde_json::to_string(&scheme)
            .unwrap_or_default()
            .as_bytes(),
    );
    let mut names: Vec<&String> = secrets.keys().collect();
    names.sort();
    for n in names {
        part(n.as_bytes());
        part(secrets[n].expose().as_bytes());
    }
    h.finalize().into()
}

/// A verifier that cannot be built, named by route and (for secrets) by the reference the
/// route gives — never by the value.
fn verifier_error(
    route: &str,
    e: &crate::connector::webhook::VerifierError,
    reference: Option<&String>,
) -> String {
    let Some(name) = e.secret() else {
        return format!("{route}: {e}");
    };
    // A literal secret in the route is never echoed, only a reference.
    match reference {
        Some(r) if crate::secrets::looks_like_ref(r) => {
            format!("{route}: /source_secrets/{name} ({r}): {e}")
        }
        Some(_) => format!("{route}: /source_secrets/{name} (a literal value): {e}"),
        None => format!("{route}: /source_secrets/{name}: {e}; add it to the route"),
    }
}

/// Every secret a route holds: its connector's, its source's signing secrets, and what the
/// operator granted the plugins of its source, connector and mapping.
fn route_redactor(
    engine: &super::Engine,
    route: &Route,
    source_secrets: &HashMap<String, Secret>,
    source_spec: &crate::spec::connector::ConnectorSpec,
    source_path: &Path,
) -> Redactor {
    let m = route.mapping();
    let mut values: Vec<Secret> = source_secrets.values().cloned().collect();
    values.extend(route.session().binding.secrets.values().cloned());
    let dir = |p: &Path| p.parent().unwrap_or(Path::new(".")).to_path_buf();
    let mut manifests: Vec<PathBuf> = (source_spec.plugins.values())
        .map(|r| dir(source_path).join(r))
        .collect();
    manifests.extend(m.plugins.values().map(|r| dir(route.path()).join(r)));
    let (target, target_path) = route.connector();
    manifests.extend(target.plugins.values().map(|r| dir(target_path).join(r)));
    for manifest in manifests {
        // Grants are keyed by the wasm's pinned digest.
        let Some(sha256) = crate::plugin::read_manifest(&manifest, 1 << 20)
            .ok()
            .and_then(|info| info.sha256)
        else {
            continue;
        };
        let g = match engine.plugins().grants(&manifest, &m.tenant) {
            crate::plugin::GrantSource::Fixed(g) => Ok(g),
            crate::plugin::GrantSource::BySha256(lookup) => lookup(&sha256),
        };
        if let Ok(g) = g {
            values.extend(g.secrets.into_values());
        }
    }
    Redactor::new(values.iter().map(Secret::expose))
}
