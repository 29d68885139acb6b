//! What a job's worker and its item tasks share: the job's context, and the
//! one acknowledgement a task gets.

use std::{sync::Arc, time::Duration};

use jetflow_protocol::{
    job::{HandlerSpec, JobSpec, JobState, Settings},
    names::RateScope,
};
use jetflow_runtime::{
    process::{activity::Activity, metrics::Metrics, trace},
    Bus,
};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::{
    breaker::Breakers,
    competition::Competition,
    gate::{self, Entry, Gates},
    ledger::LedgerWriter,
    limiter::{self, Limit, Limiter},
    slots::Slots,
    target_limits::Targets,
};

/// What every job on this instance shares.
#[derive(Clone)]
pub(crate) struct Instance {
    pub(crate) bus: Bus,
    pub(crate) http: reqwest::Client,
    /// This instance's items in flight, over all jobs, by priority.
    pub(crate) slots: Arc<Slots>,
    pub(crate) breakers: Arc<Breakers>,
    pub(crate) limiter: Arc<Limiter>,
    pub(crate) targets: Arc<Targets>,
    pub(crate) gates: Arc<Gates>,
    pub(crate) competition: Arc<Competition>,
    pub(crate) activity: Arc<Activity>,
    pub(crate) metrics: Metrics,
}

/// What a job's worker needs, shared by its item tasks.
#[derive(Clone)]
pub(crate) struct JobContext {
    pub(crate) bus: Bus,
    pub(crate) http: reqwest::Client,
    pub(crate) slots: Arc<Slots>,
    pub(crate) breakers: Arc<Breakers>,
    pub(crate) limiter: Arc<Limiter>,
    pub(crate) targets: Arc<Targets>,
    pub(crate) gates: Arc<Gates>,
    pub(crate) competition: Arc<Competition>,
    pub(crate) activity: Arc<Activity>,
    pub(crate) metrics: Metrics,
    /// The job's state as the supervisor sees it.
    pub(crate) states: watch::Receiver<JobState>,
    /// The worker's stop: the job ended, or this instance is shutting down.
    pub(crate) stop: CancellationToken,
    /// The breaker key of the job's handler.
    pub(crate) target: String,
    pub(crate) job: String,
    pub(crate) spec: Arc<JobSpec>,
    pub(crate) settings: Settings,
    /// Where the job's item results are stored, grouped.
    pub(crate) ledger: LedgerWriter,
}

impl JobContext {
    /// The context on `instance` of the job whose state is in `states`,
    /// for a worker that runs until `stop`.
    pub(crate) fn new(
        instance: &Instance,
        states: watch::Receiver<JobState>,
        stop: CancellationToken,
    ) -> Self {
        let Instance {
            bus,
            http,
            slots,
            breakers,
            limiter,
            targets,
            gates,
            competition,
            activity,
            metrics,
        } = instance.clone();
        let state = states.borrow().clone();
        let target = state
            .spec
            .handler
            .target()
            .unwrap_or_else(|| state.spec.handler.type_name().to_string());
        Self {
            ledger: LedgerWriter::start(
                bus.clone(),
                state.id.clone(),
                trace::remote(state.traceparent.as_deref()),
            ),
            bus,
            http,
            slots,
            breakers,
            limiter,
            targets,
            gates,
            competition,
            activity,
            metrics,
            states,
            stop,
            target,
            job: state.id.clone(),
            settings: state.spec.settings(),
            spec: Arc::new(state.spec.clone()),
        }
    }

    /// The rate limits a task passes before it is pulled, as they are now:
    /// a one-call handler's own, then its target's (`jetflow limits`); for
    /// `steps`, those of the first step (the later steps take their own
    /// tokens as they come to them, see `handler::steps`).
    pub(crate) fn call_limits(&self) -> Vec<Limit> {
        match &self.spec.handler {
            HandlerSpec::Steps { steps } => steps
                .first()
                .map(|step| limiter::for_step(&self.job, step, &self.targets))
                .unwrap_or_default(),
            handler => match handler.target() {
                Some(target) => {
                    let own = handler.rate_limit().map(|rate| Limit {
                        scope: RateScope::Job(self.job.clone()),
                        rate,
                    });
                    limiter::for_call(own, &target, &self.targets)
                }
                None => Vec::new(),
            },
        }
    }

    /// Waits for a slot of `target` if it has shared concurrency (see
    /// `gate`), at the job's priority, unless the job is paused or
    /// stopped first.
    pub(crate) async fn enter(&self, target: &str) -> Entry {
        let priority = gate::slot_priority(self.spec.priority);
        self.gates
            .enter(&self.targets, target, priority, self.halted())
            .await
    }

    /// Returns when no call of the job may start any more: it is paused or
    /// no longer active, or this worker is stopping.
    async fn halted(&self) {
        let mut states = self.states.clone();
        tokio::select! {
            _ = self.stop.cancelled() => {}
            _ = states.wait_for(|s| !s.status.runs_items()) => {}
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
