//! Types shared by every spec kind: the pinned `spec_version` and field types.

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::borrow::Cow;

/// The spec format version. Only `1` exists; a later format bumps it and keeps loading `1`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SpecVersion;

impl SpecVersion {
    /// The only version this engine reads and writes.
    pub const CURRENT: u64 = 1;
}

impl Serialize for SpecVersion {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(Self::CURRENT)
    }
}

impl<'de> Deserialize<'de> for SpecVersion {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = serde_json::Value::deserialize(d)?;
        match v.as_u64() {
            Some(Self::CURRENT) => Ok(SpecVersion),
            _ => Err(serde::de::Error::custom(format!(
                "unsupported spec_version {v}: this engine reads spec_version 1"
            ))),
        }
    }
}

impl JsonSchema for SpecVersion {
    fn schema_name() -> Cow<'static, str> {
        "SpecVersion".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "description": "Version of the spec format. Must be 1.",
            "const": 1
        })
    }
}

/// The type of a field, in a connector's field catalog or a tenant's custom property.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum FieldType {
    /// Text. Numbers and booleans are written as their text.
    String,
    /// A JSON number; integers stay integers and numeric strings are parsed.
    Number,
    /// `true`/`false` (also accepts "true"/"false").
    Bool,
    /// One of a declared list of options (a string).
    Enumeration,
    /// A calendar date, `YYYY-MM-DD`.
    Date,
    /// An RFC 3339 timestamp.
    Datetime,
    /// A JSON object, passed through.
    Object,
    /// A JSON array, passed through.
    Array,
    /// Anything, passed through unchanged.
    Any,
}

impl FieldType {
    /// Name as written in specs.
    pub fn as_str(self) -> &'static str {
        match self {
            FieldType::String => "string",
            FieldType::Number => "number",
            FieldType::Bool => "bool",
            FieldType::Enumeration => "enumeration",
            FieldType::Date => "date",
            FieldType::Datetime => "datetime",
            FieldType::Object => "object",
            FieldType::Array => "array",
            FieldType::Any => "any",
        }
    }

    /// Whether a value of type `self` can be delivered to a field of type `target` without
    /// losing meaning. Text-like targets take anything scalar; numbers only take numbers.
    pub fn compatible_with(self, target: FieldType) -> bool {
        use FieldType::*;
        match (self, target) {
            (_, Any) | (Any, _) => true,
            (a, b) if a == b => true,
            (Number | Bool | Enumeration | Date | Datetime, String) => true,
            (String, Enumeration) => true,
            (Date, Datetime) | (Datetime, Date) => true,
            (String, Date | Datetime) => true,
            _ => false,
        }
    }
}

impl std::fmt::Display for FieldType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}
