//! `jetflow cancel JOB`: what `nats pub jetflow.jobs.cancel.<job> ''` does,
//! plus following the job until its in-flight items have finished.

use anyhow::Context as _;
use jetflow_protocol::{codec, messages::CancelRequest};
use jetflow_runtime::NatsArgs;

use crate::{
    commands::submit::{exit_code, print_final},
    connect, exit, job_state, progress,
};

/// Arguments of `jetflow cancel`.
#[derive(Debug, clap::Args)]
pub struct CancelArgs {
    /// The job id.
    pub job: String,
    /// Why, for the job's state and `cancelled` event.
    #[arg(long)]
    pub reason: Option<String>,
    /// Wait until the job has stopped, then print its final state.
    #[arg(long)]
    pub wait: bool,
    #[command(flatten)]
    pub nats: NatsArgs,
}

pub async fn run(args: CancelArgs) -> anyhow::Result<u8> {
    let bus = connect::existing(&args.nats).await?;
    job_state::load(&bus, &args.job).await?;
    request(&bus, &args.job, args.reason).await?;
    if !args.wait {
        eprintln!("cancel requested for {}", args.job);
        return Ok(exit::OK);
    }
    eprintln!(
        "cancel requested for {}; waiting for items in flight to finish",
        args.job
    );
    let state = progress::follow(&bus, &args.job).await?;
    print_final(&state, false);
    Ok(exit_code(state.status))
}

/// Stores a cancel request for `job` (the dashboard's cancel too).
pub(crate) async fn request(
    bus: &jetflow_runtime::Bus,
    job: &str,
    reason: Option<String>,
) -> anyhow::Result<()> {
    bus.js
        .publish_with_headers(
            bus.names.cancel_subject(job),
            codec::headers_for(codec::Format::Json),
            codec::to_json(&CancelRequest { reason }),
        )
        .await
        .context("publishing the cancel request")?
        .await
        .context("storing the cancel request")?;
    Ok(())
}
