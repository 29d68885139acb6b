//! `jetflow status JOB`.

use jetflow_protocol::target::{self, TargetLimits};
use jetflow_runtime::{Bus, NatsArgs};

use crate::{connect, exit, job_state, render};

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
    let bus = connect::existing(&args.nats).await?;
    let state = job_state::load(&bus, &args.job).await?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&state)?);
    } else {
        let targets = target_limits(&bus, &render::targets(&state)).await;
        print!("{}", render::summary(&state, &targets));
    }
    Ok(exit::OK)
}

/// The limits of `targets` that carry any. Best effort: a user who may not
/// read the limits bucket still sees the job.
async fn target_limits(bus: &Bus, targets: &[String]) -> Vec<TargetLimits> {
    let mut found = Vec::new();
    for name in targets {
        match bus.kv.limits.get(target::key(name)).await {
            Ok(Some(value)) => found.extend(serde_json::from_slice::<TargetLimits>(&value).ok()),
            Ok(None) => {}
            Err(err) => tracing::debug!(target = %name, error = %err, "cannot read target limits"),
        }
    }
    found
}
