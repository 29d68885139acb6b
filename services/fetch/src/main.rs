use std::process::ExitCode;

use clap::Parser;

jetflow_shared::use_mimalloc!();

/// jetflow's fetch stage: validates submitted jobs and pages through their sources.
#[derive(Parser)]
#[command(name = "jetflow-fetch", version)]
struct Cli {
    #[command(flatten)]
    config: jetflow_fetch::Config,
    #[command(flatten)]
    log: jetflow_shared::LogArgs,
    #[command(flatten)]
    runtime: jetflow_shared::RuntimeArgs,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    jetflow_shared::service::main("jetflow-fetch", cli.log, cli.runtime, |shutdown| {
        jetflow_fetch::run(cli.config, shutdown)
    })
}
