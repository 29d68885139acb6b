//! `--stage` flags: one of the pipeline's stages, listed in `--help` and
//! refused with the list when misspelt.

use clap::builder::{PossibleValuesParser, TypedValueParser};
use jetflow_protocol::Stage;

/// The parser of a `--stage` value.
pub fn parser() -> impl TypedValueParser<Value = Stage> {
    PossibleValuesParser::new(Stage::ALL.map(Stage::as_str)).try_map(|name| name.parse::<Stage>())
}
