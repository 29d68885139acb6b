//! Reading a job's state from the jobs bucket, as `nats kv get` would.

use anyhow::{bail, Context as _};
use jetflow_protocol::{codec, job::JobState, names};
use jetflow_runtime::Bus;

/// The job's state; an error naming the job and namespace if there is none.
pub async fn load(bus: &Bus, job: &str) -> anyhow::Result<JobState> {
    if let Err(reason) = names::validate_job_id(job) {
        bail!("JOB: {reason}");
    }
    let raw = bus.kv.jobs.get(job).await.context("reading job state")?;
    let Some(raw) = raw else {
        bail!("no job {job:?} in namespace {:?}", bus.names.namespace());
    };
    Ok(codec::decode_as(codec::Format::Json, &raw)?)
}
