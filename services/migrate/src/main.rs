use std::process::ExitCode;

use clap::Parser;
use jetflow_protocol::Stage;

jetflow_runtime::use_mimalloc!();

/// jetflow's migrate stage: runs each item's handler with durable retries.
#[derive(Parser)]
#[command(name = Stage::Migrate.service_name(), version)]
struct Cli {
    #[command(flatten)]
    config: jetflow_migrate::Config,
    #[command(flatten)]
    log: jetflow_runtime::LogArgs,
    #[command(flatten)]
    runtime: jetflow_runtime::RuntimeArgs,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    jetflow_runtime::process::service::main(
        Stage::Migrate.service_name(),
        cli.log,
        cli.runtime,
        |shutdown| jetflow_migrate::run(cli.config, shutdown),
    )
}
