use std::process::ExitCode;

use clap::Parser;

jetflow_shared::use_mimalloc!();

/// jetflow's migrate stage: runs each item's handler with durable retries.
#[derive(Parser)]
#[command(name = "jetflow-migrate", version)]
struct Cli {
    #[command(flatten)]
    config: jetflow_migrate::Config,
    #[command(flatten)]
    log: jetflow_shared::LogArgs,
    #[command(flatten)]
    runtime: jetflow_shared::RuntimeArgs,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    jetflow_shared::service::main("jetflow-migrate", cli.log, cli.runtime, |shutdown| {
        jetflow_migrate::run(cli.config, shutdown)
    })
}
