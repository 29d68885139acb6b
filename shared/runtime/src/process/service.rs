//! The body of every service's `main`: flags, logging, signals, a runtime,
//! `run`.

use std::{future::Future, process::ExitCode};

use clap::{Args, CommandFactory, FromArgMatches, Parser};
use jetflow_protocol::Stage;
use tokio_util::sync::CancellationToken;

use crate::{process::signals, process::telemetry, LogArgs, Result, RuntimeArgs};

#[doc(hidden)]
pub use mimalloc::MiMalloc;

/// Makes mimalloc the binary's allocator; every jetflow binary calls it
/// once, at its crate root. Each item allocates and frees many small
/// buffers (messages, headers, futures): with glibc malloc that was a
/// quarter to a third of migrate's and reduce's profiles, with mimalloc a
/// fraction of it (docs/performance.md).
#[macro_export]
macro_rules! use_mimalloc {
    () => {
        #[global_allocator]
        static ALLOCATOR: $crate::process::service::MiMalloc = $crate::process::service::MiMalloc;
    };
}

/// A stage's command line: its own settings, then the logging and runtime
/// flags every binary takes.
#[derive(Parser)]
struct StageCli<C: Args> {
    #[command(flatten)]
    config: C,
    #[command(flatten)]
    log: LogArgs,
    #[command(flatten)]
    runtime: RuntimeArgs,
}

/// The whole `main` of a stage's binary: parses its flags into `C` (the
/// binary named and described as `stage` and `about`), then runs `run` as
/// [`main`] does.
///
/// ```no_run
/// # #[derive(clap::Args)] struct Config {}
/// # async fn run(_: Config, _: tokio_util::sync::CancellationToken) -> jetflow_runtime::Result<()> { Ok(()) }
/// fn main() -> std::process::ExitCode {
///     let about = "jetflow's fetch stage: validates jobs and pages their sources.";
///     jetflow_runtime::process::service::run_stage(jetflow_protocol::Stage::Fetch, about, run)
/// }
/// ```
pub fn run_stage<C, F, Fut>(stage: Stage, about: &'static str, run: F) -> ExitCode
where
    C: Args,
    F: FnOnce(C, CancellationToken) -> Fut,
    Fut: Future<Output = Result<()>>,
{
    let command = StageCli::<C>::command()
        .name(stage.service_name())
        .about(about)
        .version(env!("CARGO_PKG_VERSION"));
    let cli = match StageCli::<C>::from_arg_matches(&command.get_matches()) {
        Ok(cli) => cli,
        Err(err) => err.exit(),
    };
    main(stage.service_name(), cli.log, cli.runtime, |shutdown| {
        run(cli.config, shutdown)
    })
}

/// Runs `run` on a runtime of `runtime.worker_threads` threads with logging
/// and signal handling set up; maps its result to the exit code.
pub fn main<F, Fut>(name: &str, log: LogArgs, runtime: RuntimeArgs, run: F) -> ExitCode
where
    F: FnOnce(CancellationToken) -> Fut,
    Fut: Future<Output = Result<()>>,
{
    if runtime.worker_threads == 0 {
        eprintln!("{name}: --worker-threads: must be at least 1");
        return ExitCode::from(2);
    }
    let _telemetry = telemetry::init(log.log_format, name);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(runtime.worker_threads)
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("{name}: cannot start the async runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async {
        let shutdown = CancellationToken::new();
        signals::install(shutdown.clone());
        match run(shutdown).await {
            Ok(()) => {
                tracing::info!("{name} stopped");
                ExitCode::SUCCESS
            }
            Err(err) => {
                tracing::error!(error = %err, "{name} failed");
                ExitCode::FAILURE
            }
        }
    })
}
