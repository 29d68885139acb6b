//! A job's `after`, from fetch's side: before its first page, the job waits
//! for every job it names to end (a watch on each one's state in the jobs
//! bucket), then may start — or fails, saying which dependency ended how
//! (`after::verdict`).

use jetflow_protocol::{
    codec,
    job::{
        after::{verdict, Wait},
        Dependency, JobState,
    },
};
use jetflow_runtime::{nats::watch::KvWatch, Bus, Error, Result, ResultExt};
use tokio_util::sync::CancellationToken;

/// What the dependencies of a job came to.
#[derive(Debug, PartialEq, Eq)]
pub enum Released {
    /// Every one ended as the job accepts: start it.
    Go,
    /// One did not: the job fails with this reason.
    Broken(String),
}

/// Waits until every one of `after` has ended (or `stop`).
pub async fn wait(bus: &Bus, after: &[Dependency], stop: &CancellationToken) -> Result<Released> {
    for dep in after {
        if let Some(reason) = wait_for(bus, dep, stop).await? {
            return Ok(Released::Broken(reason));
        }
    }
    Ok(Released::Go)
}

/// Waits until `dep` has ended or is gone: `None` if it ended as the job
/// accepts, else why not.
async fn wait_for(bus: &Bus, dep: &Dependency, stop: &CancellationToken) -> Result<Option<String>> {
    // A key that is already gone would never show in the watch.
    let current = bus
        .kv
        .jobs
        .get(&dep.job)
        .await
        .ctx("reading a dependency")?;
    let status = |raw: &[u8]| -> Result<_> {
        let state: JobState = codec::decode_as(codec::Format::Json, raw)?;
        Ok(Some(state.status))
    };
    let now = match current.as_deref() {
        Some(raw) => verdict(dep, status(raw)?),
        None => verdict(dep, None),
    };
    if let Some(ended) = ended(now) {
        return Ok(ended);
    }
    tracing::info!(dependency = %dep.job, "waiting for a job to end");
    let mut watch = KvWatch::new(&bus.js, &bus.kv.jobs, &dep.job);
    loop {
        let change = tokio::select! {
            _ = stop.cancelled() => return Err(Error::Shutdown),
            change = watch.next() => change,
        };
        let change = match change {
            Ok(change) => change,
            Err(err) => {
                tracing::debug!(dependency = %dep.job, error = %err, "watching a dependency; retrying");
                tokio::select! {
                    _ = stop.cancelled() => return Err(Error::Shutdown),
                    _ = tokio::time::sleep(std::time::Duration::from_secs(1)) => {}
                }
                continue;
            }
        };
        let now = match change.value.as_deref() {
            Some(raw) => verdict(dep, status(raw)?),
            None => verdict(dep, None),
        };
        if let Some(ended) = ended(now) {
            return Ok(ended);
        }
    }
}

/// `Some` once a dependency has ended: `Some(None)` met, `Some(Some(why))`
/// broken.
fn ended(wait: Wait) -> Option<Option<String>> {
    match wait {
        Wait::Pending => None,
        Wait::Met => Some(None),
        Wait::Broken(reason) => Some(Some(reason)),
    }
}
