//! What jetflow records about a job in KV, as JSON anyone can read with
//! `nats kv get`. Job state and batch records are written only by the job's
//! reducer (one owner at a time), item outcomes are created once.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

pub use super::status::JobStatus;
use super::{error_groups::ErrorGroups, spec::JobSpec};

/// How many error samples job state keeps.
pub const ERROR_SAMPLE_LEN: usize = 10;

/// Progress of one unfinished batch, kept inside job state so the reducer's
/// checkpoint covers it atomically.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct OpenBatch {
    /// Items in the batch.
    pub size: u64,
    /// Items succeeded so far.
    pub succeeded: u64,
    /// Items failed so far.
    pub failed: u64,
    /// Items of it waiting out a retry (parked in the task stream). An
    /// item whose first result after a retry was not the one counted (a
    /// crash repeated its call) stays in this count until the batch closes,
    /// so it can only overstate.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub parked: u64,
    /// When fetch published it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fetched_at: Option<DateTime<Utc>>,
    /// When the batch stage fanned it out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dispatched_at: Option<DateTime<Utc>>,
    /// Items of it the source had given before, in this batch or an
    /// earlier one: counted once each, as the job's `duplicates`.
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub duplicates: BTreeSet<String>,
}

impl OpenBatch {
    /// Items with an outcome, or that need none (duplicates).
    pub fn done(&self) -> u64 {
        self.succeeded + self.failed + self.duplicates.len() as u64
    }

    /// Items without an outcome.
    pub fn remaining(&self) -> u64 {
        self.size.saturating_sub(self.done())
    }

    /// Items without an outcome that are waiting out a retry.
    pub fn parked_now(&self) -> u64 {
        self.parked.min(self.remaining())
    }

    /// Whether every unfinished item is waiting out a retry: the batch
    /// holds no concurrency slot and waits only for time to pass.
    pub fn only_parked(&self) -> bool {
        self.size > 0 && self.remaining() > 0 && self.parked >= self.remaining()
    }
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// One recent error, for `jetflow status`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ErrorSample {
    /// The item.
    pub item: String,
    /// Its error.
    pub error: String,
}

/// Job state, KV `<ns>_jobs` key `<job>`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct JobState {
    /// Job id.
    pub id: String,
    /// Lifecycle status.
    pub status: JobStatus,
    /// Items known so far (all items once `fetch_done`).
    pub total: u64,
    /// Items fetched from the source.
    pub fetched: u64,
    /// Whether the source is exhausted.
    pub fetch_done: bool,
    /// Batches published by fetch.
    pub batches: u64,
    /// Batches whose items all have outcomes.
    pub batches_done: u64,
    /// Items that succeeded.
    pub succeeded: u64,
    /// Items that failed for good.
    pub failed: u64,
    /// Items skipped (already done in an earlier run).
    pub skipped: u64,
    /// Retries spent, over all items.
    pub retries: u64,
    /// Items sent to the DLQ.
    pub dead_lettered: u64,
    /// Items of a job that ended early (cancelled, failed) that never ran.
    /// For every ended job: `succeeded + failed + skipped + duplicates +
    /// not_run == total`.
    #[serde(default)]
    pub not_run: u64,
    /// Items the source gave more than once (overlapping pages): each copy
    /// after the first, counted here and not run again.
    #[serde(default)]
    pub duplicates: u64,
    /// While `cancelling`: the status the job will end with once its
    /// in-flight items finish (`cancelled`, or `failed` for a timeout,
    /// `fail_fast`, a failure ratio or a failed source).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ends_as: Option<JobStatus>,
    /// When stopping began.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stopping_since: Option<DateTime<Utc>>,
    /// While `paused`: when the pause ends by itself (none: until resumed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub paused_until: Option<DateTime<Utc>>,
    /// While `paused`: why, as the request said.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pause_reason: Option<String>,
    /// `(succeeded + failed + skipped) / total`, 0 before anything is known.
    pub progress: f64,
    /// When the job was accepted.
    pub created_at: DateTime<Utc>,
    /// When fetching began.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<DateTime<Utc>>,
    /// Last write.
    pub updated_at: DateTime<Utc>,
    /// When the job ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<DateTime<Utc>>,
    /// Why a job failed or was cancelled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The most recent item errors, at most [`ERROR_SAMPLE_LEN`].
    #[serde(default)]
    pub errors: Vec<ErrorSample>,
    /// Every failure counted by its error message (bounded, exact).
    #[serde(default, skip_serializing_if = "ErrorGroups::is_empty")]
    pub error_groups: ErrorGroups,
    /// The answers of the job's reductions (`reduce` in its spec), by name.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub results: super::reduction::Results,
    /// Unfinished batches by number.
    #[serde(default)]
    pub open_batches: BTreeMap<u64, OpenBatch>,
    /// Items replayed from the DLQ whose new result has not come in yet.
    #[serde(default, skip_serializing_if = "std::collections::BTreeSet::is_empty")]
    pub replaying: std::collections::BTreeSet<String>,
    /// The reducer's checkpoint: the job's ledger is folded up to and
    /// including this stream sequence.
    #[serde(default)]
    pub folded_seq: u64,
    /// The job's W3C `traceparent`: its root span's when traces are
    /// exported, else the submitter's own, passed through. Every message of
    /// the job and every call it makes carries this trace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traceparent: Option<String>,
    /// Where the job's tasks wait (external workers pull from it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tasks: Option<super::queue::TaskQueue>,
    /// The job as accepted, without inline items (those stay in the specs bucket).
    pub spec: JobSpec,
}

impl JobState {
    /// State of a job just accepted.
    pub fn new(spec: &JobSpec, now: DateTime<Utc>) -> Self {
        let total = spec.inline_len().unwrap_or(0) as u64;
        Self {
            id: spec.id.clone().unwrap_or_default(),
            status: if super::after::waits_for(spec).is_empty() {
                JobStatus::Pending
            } else {
                JobStatus::Waiting
            },
            total,
            fetched: 0,
            fetch_done: false,
            batches: 0,
            batches_done: 0,
            succeeded: 0,
            failed: 0,
            skipped: 0,
            retries: 0,
            dead_lettered: 0,
            not_run: 0,
            duplicates: 0,
            ends_as: None,
            stopping_since: None,
            paused_until: None,
            pause_reason: None,
            progress: 0.0,
            created_at: now,
            started_at: None,
            updated_at: now,
            finished_at: None,
            reason: None,
            errors: Vec::new(),
            error_groups: ErrorGroups::default(),
            results: spec
                .reduce
                .iter()
                .map(|r| (r.name.clone(), r.initial()))
                .collect(),
            open_batches: BTreeMap::new(),
            replaying: Default::default(),
            folded_seq: 0,
            traceparent: None,
            tasks: None,
            spec: spec.summary(),
        }
    }

    /// Items done with: with an outcome, skipped, or duplicates.
    pub fn done(&self) -> u64 {
        self.succeeded + self.failed + self.skipped + self.duplicates
    }

    /// Items waiting out a retry, over the open batches.
    pub fn parked(&self) -> u64 {
        self.open_batches.values().map(OpenBatch::parked_now).sum()
    }

    /// The status a job that is not paused has at this point of its life:
    /// what a resumed job goes back to.
    pub fn unpaused_status(&self) -> JobStatus {
        if self.fetch_done {
            JobStatus::Processing
        } else if self.started_at.is_some() {
            JobStatus::Fetching
        } else if !super::after::waits_for(&self.spec).is_empty() {
            JobStatus::Waiting
        } else {
            JobStatus::Pending
        }
    }

    /// Recomputes `progress` from the counts.
    pub fn update_progress(&mut self) {
        self.progress = if self.total == 0 {
            if self.fetch_done {
                1.0
            } else {
                0.0
            }
        } else {
            (self.done() as f64 / self.total as f64).min(1.0)
        };
    }

    /// Items per second since fetching began, if it has.
    pub fn rate(&self) -> Option<f64> {
        let start = self.started_at?;
        let end = self.finished_at.unwrap_or(self.updated_at);
        let secs = (end - start).num_milliseconds() as f64 / 1000.0;
        (secs > 0.0).then(|| self.done() as f64 / secs)
    }
}

/// Status of one batch.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum BatchStatus {
    /// Published by fetch, not yet fanned out.
    Pending,
    /// Items running.
    Processing,
    /// Every item succeeded.
    Completed,
    /// Every item has an outcome, some failed.
    Partial,
}

/// Batch record, KV `<ns>_batches` key `<job>.<batch_no>`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct BatchRecord {
    /// Job id.
    pub job: String,
    /// Batch number, from 1.
    pub batch: u64,
    /// Status.
    pub status: BatchStatus,
    /// Items in the batch.
    pub size: u64,
    /// Items succeeded.
    pub succeeded: u64,
    /// Items failed.
    pub failed: u64,
    /// When fetch published it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fetched_at: Option<DateTime<Utc>>,
    /// When it was fanned out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dispatched_at: Option<DateTime<Utc>>,
    /// When its last item finished.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<DateTime<Utc>>,
}

/// Where fetch is in a job's source, KV `<ns>_checkpoints` key `<job>`.
/// Written after each page is published, so a restarted fetch resumes at
/// the next page (re-publishing at most the last one, which de-duplicates).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct FetchCheckpoint {
    /// Cursor of the next page; `None` before the first.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cursor: Option<String>,
    /// Batches published.
    pub batches: u64,
    /// Items published.
    pub fetched: u64,
    /// The source is exhausted.
    pub done: bool,
}
