//! One task per active job, started when a job appears and stopped when it
//! ends. Used by the stages that work per job (fetch, migrate, reduce).

use std::{collections::HashMap, future::Future};

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::{
    job::JobState,
    watch::{JobUpdate, JobWatch},
    Bus,
};

/// The per-job tasks of one service instance.
pub struct Supervisor {
    shutdown: CancellationToken,
    workers: HashMap<String, (CancellationToken, JoinHandle<()>)>,
}

impl Supervisor {
    /// Workers stop when `shutdown` is cancelled.
    pub fn new(shutdown: CancellationToken) -> Self {
        Self {
            shutdown,
            workers: HashMap::new(),
        }
    }

    /// Starts the worker for `job` unless one is running. `worker` gets a
    /// token cancelled when the job ends or the service shuts down.
    pub fn ensure<F, Fut>(&mut self, job: &str, worker: F)
    where
        F: FnOnce(CancellationToken) -> Fut,
        Fut: Future<Output = ()> + Send + 'static,
    {
        self.workers.retain(|_, (_, handle)| !handle.is_finished());
        if self.workers.contains_key(job) {
            return;
        }
        tracing::debug!(job, "starting job worker");
        let token = self.shutdown.child_token();
        let handle = tokio::spawn(worker(token.clone()));
        self.workers.insert(job.to_string(), (token, handle));
    }

    /// Stops the worker for `job`, if any, without waiting for it.
    pub fn stop(&mut self, job: &str) {
        if let Some((token, _)) = self.workers.get(job) {
            token.cancel();
        }
    }

    /// Jobs with a running worker.
    pub fn running(&self) -> impl Iterator<Item = &str> {
        self.workers
            .iter()
            .filter(|(_, (_, h))| !h.is_finished())
            .map(|(job, _)| job.as_str())
    }

    /// Stops every worker and waits for them to finish.
    pub async fn shutdown(self) {
        for (token, _) in self.workers.values() {
            token.cancel();
        }
        for (job, (_, handle)) in self.workers {
            if let Err(err) = handle.await {
                tracing::error!(job, error = %err, "job worker panicked");
            }
        }
    }
}

/// Runs a worker for every job `wants` (started as the job appears in the
/// jobs bucket, stopped when it no longer qualifies or is removed), until
/// `shutdown`; then stops them all and waits.
pub async fn per_job<W, S, Fut>(bus: &Bus, shutdown: &CancellationToken, wants: W, mut worker: S)
where
    W: Fn(&JobState) -> bool,
    S: FnMut(&JobState, CancellationToken) -> Fut,
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
                workers.ensure(&state.id, |stop| worker(&state, stop));
            }
            JobUpdate::State(state) => workers.stop(&state.id),
            JobUpdate::Removed(job) => workers.stop(&job),
        }
    }
    workers.shutdown().await;
}
