use std::process::ExitCode;

use jetflow_protocol::Stage;

jetflow_runtime::use_mimalloc!();

fn main() -> ExitCode {
    jetflow_runtime::process::service::run_stage(
        Stage::Reduce,
        "jetflow's reduce stage: tallies results exactly once and finishes jobs.",
        jetflow_reduce::run,
    )
}
