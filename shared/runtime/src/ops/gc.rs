//! Removing finished jobs: their state, spec, checkpoint, batch records,
//! item outcomes, shared state, ledger, events and dead letters.
//!
//! Only a job whose state says it ended (`completed`, `partial`, `failed`,
//! `cancelled`) before the cutoff is touched; a running job never is.
//! Records are removed by purging the buckets' and streams' subjects of the
//! job — what `nats stream purge <stream> --subject <subject>` does —
//! so nothing of the job is left, not even delete markers. Used by `jetflow
//! gc` and by the reduce service's automatic retention.

use std::time::Duration;

use chrono::{DateTime, Utc};
use jetflow_protocol::{
    codec,
    job::{JobState, JobStatus},
};
use serde::{Deserialize, Serialize};

use crate::{nats::scan::KvScan, Bus, Result, ResultExt};

/// How long finished jobs are kept by default (`--retention`).
pub const DEFAULT_RETENTION: Duration = Duration::from_secs(7 * 86_400);

/// A finished job that is old enough to remove.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Expired {
    /// Job id.
    pub job: String,
    /// How it ended.
    pub status: JobStatus,
    /// When it ended.
    pub finished_at: DateTime<Utc>,
}

/// Finished jobs that ended before `cutoff`, oldest first.
pub async fn expired(bus: &Bus, cutoff: DateTime<Utc>) -> Result<Vec<Expired>> {
    let mut scan = KvScan::start(&bus.js, &bus.kv.jobs, ">").await?;
    let mut found = Vec::new();
    while let Some(change) = scan.next().await? {
        let Some(raw) = change.value else { continue };
        let state: JobState = match codec::decode_as(codec::Format::Json, &raw) {
            Ok(state) => state,
            Err(err) => {
                tracing::warn!(key = change.key, error = %err, "unreadable job state; leaving it");
                continue;
            }
        };
        if !state.status.is_terminal() {
            continue;
        }
        let finished_at = state.finished_at.unwrap_or(state.updated_at);
        if finished_at < cutoff {
            found.push(Expired {
                job: state.id,
                status: state.status,
                finished_at,
            });
        }
    }
    found.sort_by_key(|e| e.finished_at);
    Ok(found)
}

/// Removes everything jetflow keeps of `job`. The caller has checked that
/// it ended ([`expired`]). Idempotent: removing a removed job does nothing.
pub async fn remove(bus: &Bus, job: &str) -> Result<()> {
    let names = &bus.names;
    let kv = |bucket: String, subject: String| {
        (format!("KV_{bucket}"), format!("$KV.{bucket}.{subject}"))
    };
    // The job's state goes last: while it is there, a failed removal is
    // found and finished by the next run.
    let purges = [
        kv(names.items_bucket(), format!("{job}.>")),
        kv(names.batches_bucket(), format!("{job}.>")),
        kv(names.state_bucket(), format!("{job}.>")),
        kv(names.checkpoints_bucket(), job.to_string()),
        kv(names.specs_bucket(), job.to_string()),
        (names.results_stream(), names.result_subject(job)),
        (names.events_stream(), names.event_subject(job, ">")),
        (names.dlq_stream(), names.dlq_filter(None, Some(job))),
        (names.batches_stream(), names.batch_subject(job)),
        (names.tasks_stream(), names.task_subject(job)),
        kv(names.jobs_bucket(), job.to_string()),
    ];
    for (stream, subject) in purges {
        let stream_handle = bus
            .js
            .get_stream(&stream)
            .await
            .ctx(format!("opening {stream}"))?;
        stream_handle
            .purge()
            .filter(&subject)
            .await
            .ctx(format!("purging {subject} from {stream}"))?;
    }
    tracing::info!(job, "finished job removed");
    Ok(())
}

/// Removes every job that ended more than `older_than` ago; returns them.
pub async fn collect(bus: &Bus, older_than: Duration) -> Result<Vec<Expired>> {
    let age = chrono::Duration::from_std(older_than).unwrap_or(chrono::Duration::MAX);
    let cutoff = Utc::now()
        .checked_sub_signed(age)
        .unwrap_or(DateTime::<Utc>::MIN_UTC);
    let jobs = expired(bus, cutoff).await?;
    for expired in &jobs {
        remove(bus, &expired.job).await?;
    }
    Ok(jobs)
}
