//! `jetflow watch JOB`: live progress of a job and its active batches until
//! it ends, then its tally — bars on a terminal, plain lines when piped.
//! Exits like `submit --wait`: 0 completed, 1 failed, 3 partial, 4 cancelled.

use jetflow_runtime::NatsArgs;

use crate::{
    commands::submit::{exit_code, print_final},
    connect, job_state, progress,
};

/// How long `watch` waits for a job that does not exist (yet).
const APPEAR_WITHIN: std::time::Duration = std::time::Duration::from_secs(10);

/// Arguments of `jetflow watch`.
#[derive(Debug, clap::Args)]
pub struct WatchArgs {
    /// The job id.
    pub job: String,
    /// Print the final state as JSON instead of the summary.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub nats: NatsArgs,
}

pub async fn run(args: WatchArgs) -> anyhow::Result<u8> {
    let bus = connect::existing(&args.nats).await?;
    // A job published a moment ago may not be accepted yet: give it time.
    let deadline = tokio::time::Instant::now() + APPEAR_WITHIN;
    while let Err(err) = job_state::load(&bus, &args.job).await {
        if tokio::time::Instant::now() > deadline {
            return Err(err);
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    let state = progress::follow(&bus, &args.job).await?;
    print_final(&state, args.json);
    Ok(exit_code(state.status))
}
