//! Looking many records up at once: reads by id or by a unique field (`batch_read`, which
//! sees writes at once) and searches for many values of one field in one request
//! (`batch_search`, within the search budget). Both answer per value sent: found (the
//! vendor's record), missing, or not known (the record is then looked up the one-record way).

use super::Deliverer;
use super::object::record_id;
use crate::connector::{CompiledOp, ConnectorError, Retrying, scalar};
use crate::dedupe;
use crate::spec::connector::OperationKind;
use serde_json::{Map, Value, json};
use std::collections::HashSet;

/// What a read says of one value sent.
#[derive(Debug, Clone)]
pub(super) enum Read {
    /// The vendor's record.
    Found(Value),
    /// No object has it.
    Missing,
    /// The answer says nothing of it (or the request failed).
    Unknown,
}

impl Deliverer {
    /// The `batch_read` or `batch_search` operation of an object, when it is plain HTTP (a
    /// plugin's `read`/`write` has no such shape).
    pub(super) fn lookup_op(&self, object: &str, kind: OperationKind) -> Option<&CompiledOp> {
        self.session
            .connector
            .find_op(object, kind)
            .filter(|o| o.spec.plugin.is_none())
    }

    /// The field names a lookup asks the vendor to return: the record's match fields and
    /// the object's unique fields.
    pub(super) fn wanted_fields(&self, object: &str) -> Vec<String> {
        let mut out = self.reconcile_fields(object);
        for f in self.unique_fields(object) {
            if !out.contains(f) {
                out.push(f.clone());
            }
        }
        out
    }

    /// The object's fields that name at most one object (`objects.*.unique_fields`), when the
    /// connector can read by them (a `batch_read` operation).
    pub(super) fn unique_fields(&self, object: &str) -> &[String] {
        let c = &self.session.connector;
        if self.lookup_op(object, OperationKind::BatchRead).is_none() {
            return &[];
        }
        c.spec
            .objects
            .get(object)
            .map(|o| o.unique_fields.as_slice())
            .unwrap_or_default()
    }

    /// Read objects by id (`field` none) or by a unique field, `batch.max` values per request:
    /// what the answers say of each value, in order. A request that fails leaves its values
    /// unknown.
    pub(super) async fn read_many(
        &self,
        object: &str,
        field: Option<&str>,
        values: &[Value],
    ) -> Vec<Read> {
        let Some(op) = self.lookup_op(object, OperationKind::BatchRead) else {
            return vec![Read::Unknown; values.len()];
        };
        let max = op.spec.batch.as_ref().map_or(1, |b| b.max.max(1));
        let mut out = Vec::with_capacity(values.len());
        for chunk in values.chunks(max) {
            match self.read_chunk(op, object, field, chunk).await {
                Ok(r) => out.extend(r),
                Err(e) => {
                    tracing::info!(object, error = %self.reason(&e), "batch read failed; its records are looked up one by one");
                    out.extend(std::iter::repeat_n(Read::Unknown, chunk.len()));
                }
            }
        }
        out
    }

    /// One `batch_read` request.
    pub(super) async fn read_chunk(
        &self,
        op: &CompiledOp,
        object: &str,
        field: Option<&str>,
        values: &[Value],
    ) -> Result<Vec<Read>, ConnectorError> {
        let t = &self.session.connector.templates;
        let mut items = Vec::with_capacity(values.len());
        for v in values {
            let mut vars = Map::new();
            vars.insert("id".into(), v.clone());
            let item = match &op.item {
                Some(tree) => t
                    .tree(tree, &self.session.context(vars))?
                    .unwrap_or(Value::Null),
                None => json!({ "id": v }),
            };
            items.push(item);
        }
        let mut vars = Map::new();
        vars.insert("items".into(), Value::Array(items));
        vars.insert(
            "object".into(),
            Value::String(self.session.connector.api_name(object).to_string()),
        );
        vars.insert("fields".into(), json!(self.wanted_fields(object)));
        if let Some(f) = field {
            vars.insert("id_field".into(), Value::String(f.to_string()));
        }
        let resp = self.session.call(&op.name, vars, Retrying::Safe).await?;
        if self.session.is_dry_run() {
            // Nothing was sent: nothing exists, as a dry run's searches find nothing.
            return Ok(vec![Read::Missing; values.len()]);
        }
        let key = |v: &Value| match field {
            Some(f) => dedupe::normalise(f, v),
            None => Some(scalar(v)),
        };
        let results = op
            .batch_results
            .as_ref()
            .map(|p| p.records(&resp.body))
            .unwrap_or_default();
        let missing: Option<HashSet<String>> = op
            .batch_not_found
            .as_ref()
            .map(|p| p.all(&resp.body).into_iter().filter_map(key).collect());
        Ok(values
            .iter()
            .map(|v| {
                let Some(k) = key(v) else {
                    return Read::Unknown;
                };
                let found = results.iter().find(|r| match field {
                    Some(f) => self
                        .session
                        .record_fields(op, r)
                        .get(f)
                        .and_then(|x| dedupe::normalise(f, x))
                        .is_some_and(|x| x == k),
                    None => record_id(op, r).is_some_and(|id| scalar(&id) == k),
                });
                match (found, &missing) {
                    (Some(r), _) => Read::Found(r.clone()),
                    (None, Some(m)) if m.contains(&k) => Read::Missing,
                    (None, Some(_)) => Read::Unknown,
                    (None, None) => Read::Missing,
                }
            })
            .collect())
    }

    /// Look one record up by a unique field with a read: its id, `None` when no object has
    /// it; an error when the read failed or said nothing of it.
    pub(super) async fn read_by(
        &self,
        object: &str,
        field: &str,
        raw: &Value,
        norm: &str,
    ) -> Result<Option<Value>, ConnectorError> {
        let Some(op) = self.lookup_op(object, OperationKind::BatchRead) else {
            return Ok(None);
        };
        let values = dedupe::search_values(field, raw, norm);
        let reads = self.read_chunk(op, object, Some(field), &values).await?;
        let mut unknown = false;
        for r in reads {
            match r {
                Read::Found(rec) => {
                    let fields = self.session.record_fields(op, &rec);
                    if dedupe::record_matches(fields, field, norm) {
                        return Ok(record_id(op, &rec));
                    }
                }
                Read::Missing => {}
                Read::Unknown => unknown = true,
            }
        }
        if unknown {
            return Err(ConnectorError::Transient {
                path: op.name.clone(),
                message: format!("the read by `{field}` said nothing of the record"),
                attempts: 1,
            });
        }
        Ok(None)
    }

    /// Search for records whose `field` equals any of `values`, in one request (and its
    /// pages): the records found, and whether the answer may be incomplete (more matches
    /// than were read).
    pub(super) async fn search_many(
        &self,
        op: &CompiledOp,
        object: &str,
        field: &str,
        values: &[Value],
    ) -> Result<(Vec<Value>, bool), ConnectorError> {
        let mut vars = Map::new();
        vars.insert(
            "match".into(),
            json!({"field": field, "values": values, "value": values.first()}),
        );
        vars.insert("fields".into(), json!(self.wanted_fields(object)));
        // A value can match several records (a shared phone); beyond this many the answer is
        // taken as incomplete and its records are looked up one by one.
        let limit = (values.len() * 10).clamp(100, 10_000);
        let mut found = Vec::new();
        let n = self
            .session
            .list(&op.name, vars, Some(limit), |r| found.push(r))
            .await?;
        Ok((found, n >= limit))
    }
}
