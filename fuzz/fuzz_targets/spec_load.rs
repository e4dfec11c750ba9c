//! Spec files as text (TOML, or JSON when it starts with `{`) → load (syntax, kind, JSON
//! Schema, typed form) → semantic validation together with the repo's HubSpot and CallRail
//! connector specs (so mapping specs are compiled: expressions, templates, JSONPaths) →
//! every diagnostic rendered. Nothing may panic, overflow or hang.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::sync::LazyLock;
use switchyard::diag::{self, Format};
use switchyard::spec::{self, LoadedSpec, SourceFile, SyntaxFormat};

static CONNECTORS: LazyLock<Vec<LoadedSpec>> = LazyLock::new(|| {
    [
        (
            "hubspot.toml",
            include_str!("../../connector-specs/hubspot.toml"),
        ),
        (
            "callrail.toml",
            include_str!("../../connector-specs/callrail.toml"),
        ),
    ]
    .into_iter()
    .map(|(name, text)| {
        let src = SourceFile::parse(name, text.to_string(), SyntaxFormat::Toml)
            .unwrap_or_else(|_| panic!("{name} parses"));
        spec::load_source(src).0
    })
    .collect()
});

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let format = if text.trim_start().starts_with('{') {
        SyntaxFormat::Json
    } else {
        SyntaxFormat::Toml
    };
    let src = match SourceFile::parse("fuzz", text.to_string(), format) {
        Ok(s) => s,
        Err(d) => {
            let _ = format!("{d:?}");
            return;
        }
    };
    let (loaded, mut diags) = spec::load_source(src);
    let mut set = CONNECTORS.clone();
    set.push(loaded);
    diags.extend(spec::validate::validate_set(&set));
    for f in [Format::Human, Format::Json, Format::Github] {
        let _ = diag::render(&diags, f, None);
    }
});
