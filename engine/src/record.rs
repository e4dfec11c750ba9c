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
}
