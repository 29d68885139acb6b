use std::process::ExitCode;

use jetflow_protocol::Stage;

jetflow_runtime::use_mimalloc!();

fn main() -> ExitCode {
    jetflow_runtime::process::service::run_stage(
        Stage::Fetch,
        "jetflow's fetch stage: validates submitted jobs and pages through their sources.",
        jetflow_fetch::run,
    )
}
