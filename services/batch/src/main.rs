use std::process::ExitCode;

use jetflow_protocol::Stage;

jetflow_runtime::use_mimalloc!();

fn main() -> ExitCode {
    jetflow_runtime::process::service::run_stage(
        Stage::Batch,
        "jetflow's batch stage: fans each page out into one task per item.",
        jetflow_batch::run,
    )
}
