use std::process::ExitCode;

use clap::Parser;

jetflow_shared::use_mimalloc!();

/// jetflow's reduce stage: tallies results exactly once and finishes jobs.
#[derive(Parser)]
#[command(name = "jetflow-reduce", version)]
struct Cli {
    #[command(flatten)]
    config: jetflow_reduce::Config,
    #[command(flatten)]
    log: jetflow_shared::LogArgs,
    #[command(flatten)]
    runtime: jetflow_shared::RuntimeArgs,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    jetflow_shared::service::main("jetflow-reduce", cli.log, cli.runtime, |shutdown| {
        jetflow_reduce::run(cli.config, shutdown)
    })
}
