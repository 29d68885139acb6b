//! The reducer's metrics: outcomes counted into tallies (exactly once per
//! item, as the tallies are), jobs ended, and each job's batches in flight.

use jetflow_protocol::job::JobState;
use jetflow_runtime::process::metrics::{self, Gauge, Metrics};

/// The reduce stage's instruments.
#[derive(Clone)]
pub struct JobMetrics {
    metrics: Metrics,
    batches_in_flight: Gauge,
}

impl JobMetrics {
    /// Instruments on `metrics`.
    pub fn new(metrics: Metrics) -> Self {
        let batches_in_flight = if metrics.enabled {
            metrics.gauge(
                metrics::BATCHES_IN_FLIGHT,
                "Batches fetched but not yet fully reduced, per job",
            )
        } else {
            Gauge::default()
        };
        Self {
            metrics,
            batches_in_flight,
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
    }

    /// `state`'s job ended.
    pub fn ended(&self, state: &JobState) {
        self.metrics.ended(state.status.as_str());
        self.batches_in_flight.remove(&[("job", state.id.as_str())]);
    }
}
