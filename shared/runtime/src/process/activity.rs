//! What one service instance is doing right now — its jobs, the work in its
//! hands with the time it started, and its counters — for the micro
//! service's status and stats answers (`jetflow workers`, `nats micro stats`).
//!
//! Kept deliberately cheap: a stage marks work with a guard that unmarks
//! it on drop, so no path (error, panic, cancel) leaves stale entries.

use std::{
    collections::{BTreeMap, HashMap},
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc, Mutex, MutexGuard,
    },
};

use chrono::{DateTime, Utc};

pub use jetflow_protocol::status::{JobWork, StatusReport, Work, REPORTED_IN_FLIGHT};
use jetflow_protocol::Stage;

/// One instance's activity, shared by its tasks.
#[derive(Debug)]
pub struct Activity {
    stage: Stage,
    instance: String,
    namespace: String,
    started_at: DateTime<Utc>,
    next_id: AtomicU64,
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    jobs: BTreeMap<String, DateTime<Utc>>,
    in_flight: HashMap<u64, Work>,
    counters: BTreeMap<&'static str, u64>,
}

impl Activity {
    /// The activity of one instance of `stage`.
    pub fn new(stage: Stage, instance: &str, namespace: &str) -> Arc<Self> {
        Arc::new(Self {
            stage,
            instance: instance.to_string(),
            namespace: namespace.to_string(),
            started_at: Utc::now(),
            next_id: AtomicU64::new(0),
            inner: Mutex::new(Inner::default()),
        })
    }

    /// The stage's name.
    pub fn stage(&self) -> Stage {
        self.stage
    }

    /// The instance id.
    pub fn instance(&self) -> &str {
        &self.instance
    }

    /// The namespace.
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic elsewhere while holding it cannot corrupt plain maps.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Marks `job` as worked on until the guard drops.
    pub fn job(self: &Arc<Self>, job: &str) -> JobGuard {
        self.lock().jobs.insert(job.to_string(), Utc::now());
        JobGuard {
            activity: self.clone(),
            job: job.to_string(),
        }
    }

    /// Marks `what` of `job` as in this instance's hands until the guard drops.
    pub fn start(self: &Arc<Self>, job: &str, what: impl Into<String>) -> WorkGuard {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let work = Work {
            job: job.to_string(),
            what: what.into(),
            since: Utc::now(),
        };
        self.lock().in_flight.insert(id, work);
        WorkGuard {
            activity: self.clone(),
            id,
        }
    }

    /// Adds `n` to counter `name`.
    pub fn count(&self, name: &'static str, n: u64) {
        *self.lock().counters.entry(name).or_default() += n;
    }

    /// A snapshot, with `details` attached.
    pub fn report(&self, details: serde_json::Value) -> StatusReport {
        let inner = self.lock();
        let mut in_flight: Vec<Work> = inner.in_flight.values().cloned().collect();
        let in_flight_count = in_flight.len();
        in_flight.sort_by(|a, b| a.since.cmp(&b.since).then(a.what.cmp(&b.what)));
        in_flight.truncate(REPORTED_IN_FLIGHT);
        StatusReport {
            stage: self.stage.to_string(),
            instance: self.instance.clone(),
            namespace: self.namespace.clone(),
            version: env!("CARGO_PKG_VERSION").to_string(),
            started_at: self.started_at,
            jobs: inner
                .jobs
                .iter()
                .map(|(job, since)| JobWork {
                    job: job.clone(),
                    since: *since,
                })
                .collect(),
            in_flight,
            in_flight_count,
            counters: inner
                .counters
                .iter()
                .map(|(k, v)| (k.to_string(), *v))
                .collect(),
            details,
        }
    }
}

/// Unmarks a job on drop.
#[derive(Debug)]
pub struct JobGuard {
    activity: Arc<Activity>,
    job: String,
}

impl Drop for JobGuard {
    fn drop(&mut self) {
        self.activity.lock().jobs.remove(&self.job);
    }
}

/// Unmarks a piece of work on drop.
#[derive(Debug)]
pub struct WorkGuard {
    activity: Arc<Activity>,
    id: u64,
}

impl Drop for WorkGuard {
    fn drop(&mut self) {
        self.activity.lock().in_flight.remove(&self.id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guards_mark_and_unmark_work_and_counters_add_up() {
        let activity = Activity::new(Stage::Migrate, "i1", "ns");
        let job = activity.job("j");
        let a = activity.start("j", "item-1");
        let b = activity.start("j", "item-2");
        activity.count("items_succeeded", 2);
        activity.count("items_succeeded", 1);
        let report = activity.report(serde_json::Value::Null);
        assert_eq!(report.in_flight_count, 2);
        assert_eq!(report.jobs.len(), 1);
        assert_eq!(report.counters["items_succeeded"], 3);
        drop(a);
        let report = activity.report(serde_json::Value::Null);
        assert_eq!(report.in_flight.len(), 1);
        assert_eq!(report.in_flight[0].what, "item-2");
        drop((b, job));
        let report = activity.report(serde_json::Value::Null);
        assert!(report.in_flight.is_empty() && report.jobs.is_empty());
    }

    #[test]
    fn a_report_lists_a_bounded_oldest_first_sample_but_counts_all() {
        let activity = Activity::new(Stage::Migrate, "i1", "ns");
        let guards: Vec<_> = (0..REPORTED_IN_FLIGHT + 10)
            .map(|i| activity.start("j", format!("item-{i}")))
            .collect();
        let report = activity.report(serde_json::Value::Null);
        assert_eq!(report.in_flight_count, guards.len());
        assert_eq!(report.in_flight.len(), REPORTED_IN_FLIGHT);
        assert!(report
            .in_flight
            .windows(2)
            .all(|w| w[0].since <= w[1].since));
        let json = serde_json::to_value(&report).unwrap();
        assert!(json.get("details").is_none(), "null details are left out");
    }
}
