//! `switchyard schema <kind>`: print a spec kind's JSON Schema.

use clap::builder::TypedValueParser as _;
use switchyard::spec::{SpecKind, schema};

/// Arguments of `switchyard schema`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Which spec kind.
    #[arg(value_parser = clap::builder::PossibleValuesParser::new(SpecKind::ALL.map(SpecKind::as_str)).map(|s: String| kind_named(&s)))]
    pub kind: SpecKind,
}

fn kind_named(s: &str) -> SpecKind {
    SpecKind::ALL
        .into_iter()
        .find(|k| k.as_str() == s)
        .unwrap_or(SpecKind::Mapping)
}

pub(super) fn run(a: Args) -> u8 {
    out!("{}", schema::schema_text(a.kind));
    super::EXIT_OK
}
