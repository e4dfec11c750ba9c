//! The records that flow through the engine: an inbound [`Record`], and the [`Mapped`] result
//! of a mapping (the payload of each target object plus the workflow triggers that fired),
//! which the connector runtime delivers.

use indexmap::IndexMap;
use serde::Serialize;
use serde_json::{Map, Value};

/// One inbound record (webhook POST, NDJSON line, or a connector pull).
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    /// Tenant it belongs to.
    pub tenant: String,
    /// Source name (e.g. `callrail`).
    pub source: String,
    /// The payload.
    pub payload: Value,
    /// Idempotency key (e.g. the call id), when the source has one.
    pub idempotency_key: Option<String>,
}

/// A workflow trigger or rule whose condition held for a record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FiredTrigger {
    /// Trigger (or rule) name.
    pub name: String,
    /// Actions it asks for, in the author's order.
    pub actions: Vec<String>,
}

/// What a mapping makes of one record: per target object (`contact`, `deal`, `lead`, `task`,
/// …) its fields in the author's order, and the triggers that fired.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct Mapped {
    /// Object name → field → value.
    pub objects: IndexMap<String, Map<String, Value>>,
    /// Triggers that fired, in the author's order.
    pub triggers: Vec<FiredTrigger>,
    /// Configured fields that resolved to nothing for this record (and so are not in
    /// `objects`), each with the reason: an omission is always said, never silent.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<FieldNote>,
}

/// A configured field left out of a record's output, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FieldNote {
    /// `object.field` (payload templates: `object.field.nested`).
    pub field: String,
    /// JSON pointer of the field's source in the mapping spec.
    pub pointer: String,
    /// Why it has no value, e.g. "source field `customer_email` is absent".
    pub note: String,
}
