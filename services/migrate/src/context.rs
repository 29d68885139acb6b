//! What a job's worker and its item tasks share: the job's context, and the
//! one acknowledgement a task gets.

use std::{sync::Arc, time::Duration};

use jetflow_protocol::job::{HandlerSpec, JobSpec, JobState, Settings};
use jetflow_runtime::{process::activity::Activity, process::metrics::Metrics, Bus};
use tokio::sync::Semaphore;

use crate::{
    breaker::{http_target, Breakers},
    ledger::LedgerWriter,
};

/// What a job's worker needs, shared by its item tasks.
#[derive(Clone)]
pub(crate) struct JobContext {
    pub(crate) bus: Bus,
    pub(crate) http: reqwest::Client,
    pub(crate) slots: Arc<Semaphore>,
    pub(crate) breakers: Arc<Breakers>,
    pub(crate) activity: Arc<Activity>,
    pub(crate) metrics: Metrics,
    /// The breaker key of the job's handler.
    pub(crate) target: String,
    pub(crate) job: String,
    pub(crate) spec: Arc<JobSpec>,
    pub(crate) settings: Settings,
    /// Where the job's item results are stored, grouped.
    pub(crate) ledger: LedgerWriter,
}

impl JobContext {
    /// The context of `state`'s job; `slots` caps this instance's items in flight.
    pub(crate) fn new(
        bus: Bus,
        http: reqwest::Client,
        slots: Arc<Semaphore>,
        breakers: Arc<Breakers>,
        activity: Arc<Activity>,
        metrics: Metrics,
        state: &JobState,
    ) -> Self {
        let target = match &state.spec.handler {
            HandlerSpec::Http(http) => http_target(&http.url),
            HandlerSpec::Nats(nats) => format!("nats:{}", nats.subject),
            other => other.type_name().to_string(),
        };
        Self {
            ledger: LedgerWriter::start(bus.clone(), state.id.clone()),
            bus,
            http,
            slots,
            breakers,
            activity,
            metrics,
            target,
            job: state.id.clone(),
            settings: state.spec.settings(),
            spec: Arc::new(state.spec.clone()),
        }
    }

    /// The same context with the live settings of `spec`.
    pub(crate) fn reconfigured(&self, spec: &JobSpec) -> Self {
        Self {
            settings: spec.settings(),
            spec: Arc::new(spec.clone()),
            ..self.clone()
        }
    }
}

/// The one acknowledgement a task gets.
pub(crate) enum Ack {
    /// Ack: the task is done with (ran, held back, or dead-lettered).
    Done,
    /// Nak with this delay: try again later.
    Retry(Duration),
}
