//! Enricher that GETs the URL in the record's `url` field: used to check that the host refuses
//! hosts that are not allowed (directly or through a redirect). Returns the status and body.

use serde_json::{Value, json};
use switchyard_sdk::exports::enrichment::Guest;
use switchyard_sdk::{PluginError, host};

struct Fetch;

impl Guest for Fetch {
    fn enrich(record: String) -> Result<String, PluginError> {
        let record: Value =
            serde_json::from_str(&record).map_err(|e| PluginError::InvalidInput(e.to_string()))?;
        let url = record["url"].as_str().unwrap_or_default();
        let resp = host::get(url)?;
        Ok(json!({"status": resp.status, "body": String::from_utf8_lossy(&resp.body)}).to_string())
    }
}

switchyard_sdk::export!(Fetch);
