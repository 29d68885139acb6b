//! One module per subcommand.

pub mod cancel;
pub mod config;
pub mod dev;
pub mod dlq;
pub mod dry_run;
pub mod gc;
pub mod health;
pub mod jobs;
pub mod limits;
pub mod mapreduce;
pub mod pause;
pub mod provision;
pub mod results;
pub mod retry_failed;
pub mod roles;
pub mod state;
pub mod status;
pub mod submit;
pub mod watch;
pub mod workers;
