use std::process::ExitCode;

use clap::Parser;

jetflow_shared::use_mimalloc!();

/// jetflow's batch stage: fans each page out into one task per item.
#[derive(Parser)]
#[command(name = "jetflow-batch", version)]
struct Cli {
    #[command(flatten)]
    config: jetflow_batch::Config,
    #[command(flatten)]
    log: jetflow_shared::LogArgs,
    #[command(flatten)]
    runtime: jetflow_shared::RuntimeArgs,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    jetflow_shared::service::main("jetflow-batch", cli.log, cli.runtime, |shutdown| {
        jetflow_batch::run(cli.config, shutdown)
    })
}
