//! `switchyard schema <kind>`: print a spec kind's JSON Schema.

use crate::spec::{SpecKind, schema};

/// Arguments of `switchyard schema`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Which spec kind.
    #[arg(value_enum)]
    pub kind: SpecKind,
}

pub(super) fn run(a: Args) -> u8 {
    print!("{}", schema::schema_text(a.kind));
    super::EXIT_OK
}
