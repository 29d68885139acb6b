use std::process::ExitCode;

use clap::Parser;
use jetflow_protocol::Stage;

jetflow_runtime::use_mimalloc!();

/// jetflow's fetch stage: validates submitted jobs and pages through their sources.
#[derive(Parser)]
#[command(name = Stage::Fetch.service_name(), version)]
struct Cli {
    #[command(flatten)]
    config: jetflow_fetch::Config,
    #[command(flatten)]
    log: jetflow_runtime::LogArgs,
    #[command(flatten)]
    runtime: jetflow_runtime::RuntimeArgs,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    jetflow_runtime::process::service::main(
        Stage::Fetch.service_name(),
        cli.log,
        cli.runtime,
        |shutdown| jetflow_fetch::run(cli.config, shutdown),
    )
}
