//! What the dashboard knows of every job: a summary per job, kept current
//! by one watch of the jobs bucket (its latest values, then each change).
//! Pages are drawn from it, and the live streams wait on its generation,
//! so a request costs no scan and a busy job no more than one watch.

use std::{
    collections::{BTreeMap, HashMap},
    sync::{Arc, RwLock},
};

use chrono::{DateTime, Utc};
use jetflow_protocol::{
    codec,
    job::{JobState, JobStatus},
};
use jetflow_runtime::{nats::watch::KvWatch, Bus};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

/// The few fields of a job the list shows.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct JobSummary {
    pub id: String,
    pub kind: String,
    pub status: JobStatus,
    pub labels: BTreeMap<String, String>,
    pub created_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub updated_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
    pub total: u64,
    pub fetch_done: bool,
    pub succeeded: u64,
    pub failed: u64,
    pub skipped: u64,
    pub duplicates: u64,
    pub not_run: u64,
    pub rate: Option<f64>,
    /// The job state's KV revision this summary is of.
    pub revision: u64,
}

impl Default for JobSummary {
    fn default() -> Self {
        Self {
            id: String::new(),
            kind: String::new(),
            status: JobStatus::Pending,
            labels: BTreeMap::new(),
            created_at: DateTime::<Utc>::UNIX_EPOCH,
            started_at: None,
            updated_at: DateTime::<Utc>::UNIX_EPOCH,
            finished_at: None,
            total: 0,
            fetch_done: false,
            succeeded: 0,
            failed: 0,
            skipped: 0,
            duplicates: 0,
            not_run: 0,
            rate: None,
            revision: 0,
        }
    }
}

impl JobSummary {
    /// The summary of `state` at KV revision `revision`.
    pub fn of(state: &JobState, revision: u64) -> Self {
        Self {
            id: state.id.clone(),
            kind: state.spec.kind.clone(),
            status: state.status,
            labels: state.spec.labels.clone(),
            created_at: state.created_at,
            started_at: state.started_at,
            updated_at: state.updated_at,
            finished_at: state.finished_at,
            total: state.total,
            fetch_done: state.fetch_done,
            succeeded: state.succeeded,
            failed: state.failed,
            skipped: state.skipped,
            duplicates: state.duplicates,
            not_run: state.not_run,
            rate: state.rate(),
            revision,
        }
    }
}

/// Every job's summary, and a generation that moves on each change.
#[derive(Clone)]
pub struct JobIndex {
    jobs: Arc<RwLock<HashMap<String, JobSummary>>>,
    generation: watch::Sender<u64>,
}

impl Default for JobIndex {
    fn default() -> Self {
        Self {
            jobs: Arc::default(),
            generation: watch::channel(0).0,
        }
    }
}

impl JobIndex {
    /// Runs `f` over the summaries (read-locked: keep it short).
    pub fn read<T>(&self, f: impl FnOnce(&HashMap<String, JobSummary>) -> T) -> T {
        match self.jobs.read() {
            Ok(jobs) => f(&jobs),
            Err(poisoned) => f(&poisoned.into_inner()),
        }
    }

    /// The summary of one job.
    pub fn get(&self, job: &str) -> Option<JobSummary> {
        self.read(|jobs| jobs.get(job).cloned())
    }

    /// Something to wait on for the next change.
    pub fn changes(&self) -> watch::Receiver<u64> {
        self.generation.subscribe()
    }

    fn put(&self, key: &str, summary: Option<JobSummary>) {
        let mut jobs = match self.jobs.write() {
            Ok(jobs) => jobs,
            Err(poisoned) => poisoned.into_inner(),
        };
        match summary {
            Some(summary) => jobs.insert(key.to_string(), summary),
            None => jobs.remove(key),
        };
        drop(jobs);
        self.generation.send_modify(|g| *g += 1);
    }

    /// Follows the jobs bucket until `shutdown`.
    pub async fn follow(self, bus: Bus, shutdown: CancellationToken) {
        let mut watch = KvWatch::new(&bus.js, &bus.kv.jobs, ">");
        loop {
            let change = tokio::select! {
                _ = shutdown.cancelled() => return,
                change = watch.next() => change,
            };
            let change = match change {
                Ok(change) => change,
                Err(err) => {
                    // KvWatch subscribes again by itself.
                    tracing::debug!(error = %err, "jobs watch interrupted");
                    continue;
                }
            };
            let summary = change.value.as_ref().and_then(|raw| {
                match codec::decode_as::<JobState>(codec::Format::Json, raw) {
                    Ok(state) => Some(JobSummary::of(&state, change.revision)),
                    Err(err) => {
                        tracing::warn!(key = change.key, error = %err, "unreadable job state");
                        None
                    }
                }
            });
            self.put(&change.key, summary);
        }
    }
}
