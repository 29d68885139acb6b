//! `jetflow status JOB`.

use anyhow::Context as _;
use jetflow_shared::{codec, job::JobState, NatsArgs};

use crate::{connect, exit, render};

/// Arguments of `jetflow status`.
#[derive(Debug, clap::Args)]
pub struct StatusArgs {
    /// The job id.
    pub job: String,
    /// Print the job state as JSON (exactly what `nats kv get` shows).
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub nats: NatsArgs,
}

pub async fn run(args: StatusArgs) -> anyhow::Result<u8> {
    if let Err(reason) = jetflow_shared::names::validate_job_id(&args.job) {
        anyhow::bail!("JOB: {reason}");
    }
    let bus = connect::existing(&args.nats).await?;
    let Some(raw) = bus
        .kv
        .jobs
        .get(&args.job)
        .await
        .context("reading job state")?
    else {
        eprintln!(
            "no job {:?} in namespace {:?}",
            args.job, args.nats.namespace
        );
        return Ok(exit::FAILED);
    };
    let state: JobState = codec::decode_as(codec::Format::Json, &raw)?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&state)?);
    } else {
        print!("{}", render::summary(&state));
    }
    Ok(exit::OK)
}
