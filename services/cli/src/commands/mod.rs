//! One module per subcommand.

pub mod cancel;
pub mod dev;
pub mod status;
pub mod submit;
