use std::process::ExitCode;

use clap::Parser;
use jetflow_protocol::Stage;

jetflow_runtime::use_mimalloc!();

/// jetflow's batch stage: fans each page out into one task per item.
#[derive(Parser)]
#[command(name = Stage::Batch.service_name(), version)]
struct Cli {
    #[command(flatten)]
    config: jetflow_batch::Config,
    #[command(flatten)]
    log: jetflow_runtime::LogArgs,
    #[command(flatten)]
    runtime: jetflow_runtime::RuntimeArgs,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    jetflow_runtime::process::service::main(
        Stage::Batch.service_name(),
        cli.log,
        cli.runtime,
        |shutdown| jetflow_batch::run(cli.config, shutdown),
    )
}
