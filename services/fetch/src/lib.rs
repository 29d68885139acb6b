//! The fetch stage: takes job submissions and pages through each job's source.
//!
//! - [`intake`] — validates submissions — accepts a job (state, consumer,
//!   `accepted` event), rejects it with the field at fault, or dead-letters a
//!   body that is not a job.
//! - [`source`] — reads one page of a source (HTTP with a cursor, inline ids or items).
//! - [`pager`] — per job, on the one instance holding its lease, fetches page
//!   after page, checkpointing the cursor and never running more than
//!   `max_inflight_batches` ahead of the reducer.

pub mod intake;
pub mod pager;
pub mod source;

use jetflow_shared::{
    job::JobStatus,
    lease,
    supervisor::Supervisor,
    watch::{JobUpdate, JobWatch},
    Bus, Names, NatsArgs, Result,
};
use tokio_util::{sync::CancellationToken, task::TaskTracker};

/// Settings of the fetch service.
#[derive(Debug, Clone, clap::Args)]
pub struct Config {
    /// NATS connection and namespace.
    #[command(flatten)]
    pub nats: NatsArgs,
}

/// Runs the fetch stage until `shutdown` is cancelled.
pub async fn run(config: Config, shutdown: CancellationToken) -> Result<()> {
    let bus = Bus::connect(&config.nats, "jetflow-fetch", &shutdown).await?;
    let instance = jetflow_shared::instance_id();
    tracing::info!(namespace = bus.names.namespace(), instance, "fetch ready");

    let tasks = TaskTracker::new();
    tasks.spawn(intake::run(bus.clone(), shutdown.clone()));
    tasks.spawn(supervise(bus, instance, shutdown.clone()));
    tasks.close();
    tasks.wait().await;
    Ok(())
}

/// Starts a pager contender for every job still fetching, stops it when the
/// job is fetched or ends.
async fn supervise(bus: Bus, instance: String, shutdown: CancellationToken) {
    let mut jobs = JobWatch::new(&bus.js, &bus.kv.jobs);
    let mut pagers = Supervisor::new(shutdown.clone());
    loop {
        let update = tokio::select! {
            biased;
            _ = shutdown.cancelled() => break,
            update = jobs.next() => update,
        };
        match update {
            JobUpdate::State(state) if needs_fetching(state.status, state.fetch_done) => {
                let (bus, owner, job) = (bus.clone(), instance.clone(), state.id.clone());
                pagers.ensure(&state.id, move |stop| async move {
                    let key = Names::lease_key("fetch", &job);
                    lease::contend(bus.kv.leases.clone(), key, owner, stop, |token| {
                        pager::page_job(bus.clone(), job.clone(), token)
                    })
                    .await
                });
            }
            JobUpdate::State(state) => pagers.stop(&state.id),
            JobUpdate::Removed(job) => pagers.stop(&job),
        }
    }
    pagers.shutdown().await;
}

fn needs_fetching(status: JobStatus, fetch_done: bool) -> bool {
    !fetch_done && matches!(status, JobStatus::Pending | JobStatus::Fetching)
}
