//! The reduce stage: tallies every job's results exactly once and ends the job.
//!
//! - [`reducer`] — per job, on the one instance holding its lease, reads the
//!   job's ledger in order from the checkpoint and folds it.
//! - [`outcomes`] — item outcome records, created once and recognisable.
//! - [`fold`] — the pure fold from ledger entries to job state.
//! - [`announce`] — batch records, events and log lines derived from a fold.
//!
//! Why no crash can make it count an item twice or lose one:
//! docs/exactly-once.md.

pub mod announce;
pub mod fold;
pub mod outcomes;
pub mod reducer;

use jetflow_shared::{
    lease,
    supervisor::Supervisor,
    watch::{JobUpdate, JobWatch},
    Bus, Names, NatsArgs, Result,
};
use tokio_util::sync::CancellationToken;

/// Settings of the reduce service.
#[derive(Debug, Clone, clap::Args)]
pub struct Config {
    /// NATS connection and namespace.
    #[command(flatten)]
    pub nats: NatsArgs,
}

/// Runs the reduce stage until `shutdown` is cancelled.
pub async fn run(config: Config, shutdown: CancellationToken) -> Result<()> {
    let bus = Bus::connect(&config.nats, "jetflow-reduce", &shutdown).await?;
    let instance = jetflow_shared::instance_id();
    tracing::info!(namespace = bus.names.namespace(), instance, "reduce ready");

    let mut jobs = JobWatch::new(&bus.js, &bus.kv.jobs);
    let mut reducers = Supervisor::new(shutdown.clone());
    loop {
        let update = tokio::select! {
            biased;
            _ = shutdown.cancelled() => break,
            update = jobs.next() => update,
        };
        match update {
            JobUpdate::State(state) if !state.status.is_terminal() => {
                let (bus, owner, job) = (bus.clone(), instance.clone(), state.id.clone());
                reducers.ensure(&state.id, move |stop| async move {
                    let key = Names::lease_key("reduce", &job);
                    lease::contend(bus.kv.leases.clone(), key, owner, stop, |token| {
                        reducer::reduce_job(bus.clone(), job.clone(), token)
                    })
                    .await
                });
            }
            JobUpdate::State(state) => reducers.stop(&state.id),
            JobUpdate::Removed(job) => reducers.stop(&job),
        }
    }
    reducers.shutdown().await;
    Ok(())
}
