//! `jetflow retry-failed JOB`: a new job over the items that failed in an
//! old one, linked to it by the label `retry_of`.
//!
//! The new job is the old one's spec with a `job` source over the old
//! job's failed outcomes, each with the data it ran with (`"data":
//! "input"`, kept in its outcome record), so it runs the same handler and
//! settings on exactly those items — however many: fetch pages them from
//! the items bucket, nothing is inlined.

use anyhow::{bail, Context as _};
use jetflow_protocol::job::{spec::JobSourceData, JobSpec, JobState, OutcomeFilter, SourceSpec};
use jetflow_runtime::{Bus, NatsArgs};

use crate::{
    commands::submit::{self, exit_code, print_final, Verdict},
    connect, exit, job_state, progress,
};

/// Arguments of `jetflow retry-failed`.
#[derive(Debug, clap::Args)]
pub struct RetryFailedArgs {
    /// The finished job whose failed items to run again.
    pub job: String,
    /// The new job's id (default `<job>-retry-<n>`).
    #[arg(long)]
    pub id: Option<String>,
    /// Follow the new job to its end, then print its final state.
    #[arg(long)]
    pub wait: bool,
    #[command(flatten)]
    pub nats: NatsArgs,
}

/// Submits a job over the failed items of `args.job`, and follows it with `--wait`.
pub async fn run(args: RetryFailedArgs) -> anyhow::Result<u8> {
    let bus = connect::provisioned(&args.nats).await?;
    let old = job_state::load(&bus, &args.job).await?;
    if !old.status.is_terminal() {
        bail!(
            "job {} is {}: retry its failed items once it has ended",
            old.id,
            old.status
        );
    }

    if old.failed == 0 {
        eprintln!("job {} has no failed items", old.id);
        return Ok(exit::OK);
    }
    let id = match submit_retry(&bus, &old, args.id).await? {
        Ok(id) => id,
        Err(reason) => {
            eprintln!("rejected: {reason}");
            return Ok(exit::REJECTED);
        }
    };
    eprintln!(
        "submitted {id}: the {} failed items of {}",
        old.failed, old.id
    );
    if !args.wait {
        println!("{id}");
        return Ok(exit::OK);
    }
    let state = progress::follow(&bus, &id).await?;
    print_final(&state, false);
    Ok(exit_code(state.status))
}

/// Submits the job over `old`'s failed items, as `id` or the next free
/// `<job>-retry-<n>` (the dashboard's retry too): its id, or why it was
/// rejected.
pub(crate) async fn submit_retry(
    bus: &Bus,
    old: &JobState,
    id: Option<String>,
) -> anyhow::Result<Result<String, String>> {
    let id = match id {
        Some(id) => id,
        None => free_id(bus, &old.id).await?,
    };
    let body = serde_json::to_value(retry_spec(old, &id))?;
    Ok(match submit::submit(bus, &id, body).await? {
        Verdict::Accepted => Ok(id),
        Verdict::Rejected(reason) => Err(reason),
    })
}

/// `old`'s spec as job `id` over its failed items, labelled `retry_of`.
fn retry_spec(old: &JobState, id: &str) -> JobSpec {
    let mut spec = old.spec.clone();
    spec.id = Some(id.to_string());
    spec.source = SourceSpec::Job {
        job: old.id.clone(),
        status: OutcomeFilter::Failed,
        data: JobSourceData::Input,
    };
    // The old job has ended; the new one waits for nothing else.
    spec.after.clear();
    spec.labels.insert("retry_of".into(), old.id.clone());
    spec
}

/// `<job>-retry-<n>` for the first n with no job of that id.
async fn free_id(bus: &Bus, job: &str) -> anyhow::Result<String> {
    let mut n = 1;
    loop {
        let id = format!("{job}-retry-{n}");
        if bus
            .kv
            .jobs
            .get(&id)
            .await
            .context("reading job state")?
            .is_none()
        {
            return Ok(id);
        }
        n += 1;
    }
}
