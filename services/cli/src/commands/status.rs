//! `jetflow status JOB`.

use jetflow_runtime::NatsArgs;

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
        print!("{}", render::summary(&state));
    }
    Ok(exit::OK)
}
