//! The optional enrichment hook (the seed's `kse_enhancement`): an attribution spec may name a
//! WebAssembly plugin of world `enricher` (`[attribution.enrichment] plugin = "…/plugin.toml"`,
//! relative to the spec file). Each CausalMarketingData record is passed to its `enrich` export
//! and the JSON it returns is stored under `kse_enhancement`. A failure for one record is
//! returned as an [`EnrichFailure`] (record id and cause) and the record is kept without the
//! field: enrichment never drops a conversion.
//!
//! Loading is one function, [`load_enricher`], taking the host and the grants, so that a caller
//! decides what the plugin may reach (the CLI passes the operator's grants for the sha256 of the
//! wasm loaded, for the spec's tenant; nothing without a grants file).

use super::CausalMarketingData;
use crate::plugin::{GrantSource, PluginHandle, PluginHost};
use crate::spec::attribution::EnrichmentSettings;
use crate::spec::plugin::PluginWorld;
use futures::StreamExt;
use std::path::{Path, PathBuf};

/// The JSON pointer of the plugin setting, for diagnostics.
pub const POINTER: &str = "/attribution/enrichment/plugin";

/// Calls in flight at once.
const CONCURRENCY: usize = 8;

/// Why one record was not enriched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnrichFailure {
    /// The record's `record_id`.
    pub record_id: String,
    /// What the plugin or the host said.
    pub cause: String,
}

/// The manifest path of a spec's enrichment plugin: `plugin`, relative to the spec file's
/// folder (absolute paths are kept).
pub fn manifest_path(spec_file: &Path, settings: &EnrichmentSettings) -> PathBuf {
    let dir = spec_file.parent().unwrap_or_else(|| Path::new(""));
    dir.join(&settings.plugin)
}

/// The `plugin.name` of a manifest (for messages; operator grants are given by wasm sha256).
pub fn plugin_name(manifest: &Path) -> Result<String, String> {
    let what = || format!("enrichment plugin `{}`", manifest.display());
    let (loaded, diags) =
        crate::spec::load_file(manifest).map_err(|e| format!("cannot read {}: {e}", what()))?;
    if diags.has_errors() {
        return Err(format!(
            "{} is not a valid plugin manifest:\n{}",
            what(),
            crate::diag::render_human(&diags, None).trim_end()
        ));
    }
    match loaded.and_then(|l| l.spec) {
        Some(crate::spec::Spec::Plugin(m)) => Ok(m.plugin.name),
        _ => Err(format!("{} is not a plugin manifest", what())),
    }
}

/// Load the enrichment plugin at `manifest` with the operator's `grants`; the error says why
/// (missing file, bad manifest, a world other than `enricher`, a capability not granted…).
pub fn load_enricher(
    host: &PluginHost,
    manifest: &Path,
    grants: impl Into<GrantSource>,
) -> Result<PluginHandle, String> {
    let h = host
        .load(manifest, grants)
        .map_err(|e| format!("cannot load enrichment plugin: {e}"))?;
    if h.world() != PluginWorld::Enricher {
        return Err(format!(
            "enrichment plugin `{}` implements world `{}`; an enrichment plugin must implement `enricher`",
            manifest.display(),
            h.world().as_str()
        ));
    }
    Ok(h)
}

/// Pass every record to the plugin (a few calls at a time, each in a fresh instance) and store
/// what it returns under `kse_enhancement`. Returns the failures, in record order.
pub async fn enrich_records(
    h: &PluginHandle,
    records: &mut [CausalMarketingData],
) -> Vec<EnrichFailure> {
    let inputs: Vec<Result<serde_json::Value, String>> = records
        .iter()
        .map(|r| serde_json::to_value(r).map_err(|e| e.to_string()))
        .collect();
    let results: Vec<Result<serde_json::Value, String>> =
        futures::stream::iter(inputs.into_iter().map(|input| async move {
            match input {
                Ok(v) => h.enrich(&v).await.map_err(|e| e.to_string()),
                Err(e) => Err(e),
            }
        }))
        .buffered(CONCURRENCY)
        .collect()
        .await;
    let mut failures = Vec::new();
    for (r, res) in records.iter_mut().zip(results) {
        match res {
            Ok(v) => r.kse_enhancement = Some(v),
            Err(cause) => failures.push(EnrichFailure {
                record_id: r.record_id.clone(),
                cause,
            }),
        }
    }
    failures
}
