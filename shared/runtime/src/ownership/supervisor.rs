//! One task per active job, started when a job appears and stopped when it
//! ends. Used by the stages that work per job (fetch, migrate, reduce).
//!
//! A worker follows its job's state through a `watch` channel: migrate
//! picks up live settings (`jetflow config set`) from it without a restart.

use std::{collections::HashMap, future::Future};

use jetflow_protocol::job::JobState;
use tokio::{sync::watch, task::JoinHandle};
use tokio_util::sync::CancellationToken;

use crate::{
    nats::watch::{JobUpdate, JobWatch},
    Bus,
};

/// The per-job tasks of one service instance.
pub struct Supervisor {
    shutdown: CancellationToken,
    workers: HashMap<String, Worker>,
}

struct Worker {
    stop: CancellationToken,
    handle: JoinHandle<()>,
    state: watch::Sender<JobState>,
}

impl Supervisor {
    /// Workers stop when `shutdown` is cancelled.
    pub fn new(shutdown: CancellationToken) -> Self {
        Self {
            shutdown,
            workers: HashMap::new(),
        }
    }

    /// Starts the worker for `state`'s job unless one is running, in which
    /// case it is handed the new state. `worker` gets the job's state as it
    /// changes and a token cancelled when the job ends or the service shuts
    /// down.
    pub fn ensure<F, Fut>(&mut self, state: JobState, worker: F)
    where
        F: FnOnce(watch::Receiver<JobState>, CancellationToken) -> Fut,
        Fut: Future<Output = ()> + Send + 'static,
    {
        self.workers.retain(|_, w| !w.handle.is_finished());
        if let Some(running) = self.workers.get(&state.id) {
            running.state.send_replace(state);
            return;
        }
        tracing::debug!(job = %state.id, "starting job worker");
        let job = state.id.clone();
        let (sender, receiver) = watch::channel(state);
        let stop = self.shutdown.child_token();
        let handle = tokio::spawn(worker(receiver, stop.clone()));
        self.workers.insert(
            job,
            Worker {
                stop,
                handle,
                state: sender,
            },
        );
    }

    /// Stops the worker for `job`, if any, without waiting for it.
    pub fn stop(&mut self, job: &str) {
        if let Some(worker) = self.workers.get(job) {
            worker.stop.cancel();
        }
    }

    /// Jobs with a running worker.
    pub fn running(&self) -> impl Iterator<Item = &str> {
        self.workers
            .iter()
            .filter(|(_, w)| !w.handle.is_finished())
            .map(|(job, _)| job.as_str())
    }

    /// Stops every worker and waits for them to finish.
    pub async fn shutdown(self) {
        for worker in self.workers.values() {
            worker.stop.cancel();
        }
        for (job, Worker { handle, .. }) in self.workers {
            if let Err(err) = handle.await {
                tracing::error!(job, error = %err, "job worker panicked");
            }
        }
    }
}

/// Runs a worker for every job `wants` (started as the job appears in the
/// jobs bucket, handed each new state, stopped when it no longer qualifies
/// or is removed), until `shutdown`; then stops them all and waits.
pub async fn per_job<W, S, Fut>(bus: &Bus, shutdown: &CancellationToken, wants: W, mut worker: S)
where
    W: Fn(&JobState) -> bool,
    S: FnMut(watch::Receiver<JobState>, CancellationToken) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let mut jobs = JobWatch::new(&bus.js, &bus.kv.jobs);
    let mut workers = Supervisor::new(shutdown.clone());
    loop {
        let update = tokio::select! {
            biased;
            _ = shutdown.cancelled() => break,
            update = jobs.next() => update,
        };
        match update {
            JobUpdate::State(state) if wants(&state) => {
                workers.ensure(*state, &mut worker);
            }
            JobUpdate::State(state) => workers.stop(&state.id),
            JobUpdate::Removed(job) => workers.stop(&job),
        }
    }
    workers.shutdown().await;
}
