use std::process::ExitCode;

use jetflow_protocol::Stage;

jetflow_runtime::use_mimalloc!();

fn main() -> ExitCode {
    jetflow_runtime::process::service::run_stage(
        Stage::Migrate,
        "jetflow's migrate stage: runs each item's handler with durable retries.",
        jetflow_migrate::run,
    )
}
