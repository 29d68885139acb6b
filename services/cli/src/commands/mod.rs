//! One module per subcommand.

pub mod dev;
pub mod status;
pub mod submit;
