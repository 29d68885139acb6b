use std::process::ExitCode;

use clap::Parser;
use jetflow_protocol::Stage;

jetflow_runtime::use_mimalloc!();

/// jetflow's reduce stage: tallies results exactly once and finishes jobs.
#[derive(Parser)]
#[command(name = Stage::Reduce.service_name(), version)]
struct Cli {
    #[command(flatten)]
    config: jetflow_reduce::Config,
    #[command(flatten)]
    log: jetflow_runtime::LogArgs,
    #[command(flatten)]
    runtime: jetflow_runtime::RuntimeArgs,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    jetflow_runtime::process::service::main(
        Stage::Reduce.service_name(),
        cli.log,
        cli.runtime,
        |shutdown| jetflow_reduce::run(cli.config, shutdown),
    )
}
