//! The reducer's metrics: outcomes counted into tallies (exactly once per
//! item, as the tallies are), jobs ended, each job's batches in flight and
//! the numeric answers of its reductions.

use std::{
    collections::VecDeque,
    sync::{Arc, Mutex},
};

use jetflow_protocol::job::JobState;
use jetflow_runtime::process::metrics::{self, Gauge, Metrics};

/// Ended jobs whose reduction answers stay on show: a scrape after a short
/// job still sees its final values, and a long-lived reducer does not keep
/// a series for every job it ever reduced.
const ENDED_SHOWN: usize = 100;

/// The reduce stage's instruments.
#[derive(Clone)]
pub struct JobMetrics {
    metrics: Metrics,
    batches_in_flight: Gauge,
    results: Gauge,
    /// Ended jobs with answers on show, oldest first.
    ended: Arc<Mutex<VecDeque<String>>>,
}

impl JobMetrics {
    /// Instruments on `metrics`.
    pub fn new(metrics: Metrics) -> Self {
        let (batches_in_flight, results) = if metrics.enabled {
            (
                metrics.gauge(
                    metrics::BATCHES_IN_FLIGHT,
                    "Batches fetched but not yet fully reduced, per job",
                ),
                metrics.gauge(
                    metrics::JOB_RESULT,
                    "The numeric answer of a job's reduction (sum, min, max, avg, count)",
                ),
            )
        } else {
            (Gauge::default(), Gauge::default())
        };
        Self {
            metrics,
            batches_in_flight,
            results,
            ended: Arc::default(),
        }
    }

    /// A fold from `before` to `after` was checkpointed.
    pub fn checkpointed(&self, before: &JobState, after: &JobState) {
        let kind = &after.spec.kind;
        let grew = |a: u64, b: u64| b.saturating_sub(a);
        self.metrics
            .counted(kind, "succeeded", grew(before.succeeded, after.succeeded));
        self.metrics
            .counted(kind, "failed", grew(before.failed, after.failed));
        self.metrics
            .counted(kind, "skipped", grew(before.skipped, after.skipped));
        self.batches_in_flight.set(
            &[("job", after.id.as_str())],
            after.open_batches.len() as f64,
        );
        for (name, reduced) in &after.results {
            if let Some(value) = reduced.value.as_f64() {
                let labels = [("job", after.id.as_str()), ("reduction", name.as_str())];
                self.results.set(&labels, value);
            }
        }
    }

    /// `state`'s job ended.
    pub fn ended(&self, state: &JobState) {
        self.metrics.ended(state.status.as_str());
        self.batches_in_flight.remove(&[("job", state.id.as_str())]);
        if state.results.is_empty() {
            return;
        }
        let Ok(mut ended) = self.ended.lock() else {
            return;
        };
        ended.push_back(state.id.clone());
        while ended.len() > ENDED_SHOWN {
            if let Some(old) = ended.pop_front() {
                self.results.remove_all("job", &old);
            }
        }
    }
}
