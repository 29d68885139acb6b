//! The body of every service's `main`: logging, signals, a runtime, `run`.

use std::{future::Future, process::ExitCode};

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
