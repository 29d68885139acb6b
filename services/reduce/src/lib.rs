//! The reduce stage: tallies every job's results exactly once and ends the job.
//!
//! - [`reducer`] — per job, on the one instance holding its lease, reads the
//!   job's ledger in order from the checkpoint and folds it.
//! - [`outcomes`] — item outcome records, created once and recognisable.
//! - [`fold`] — the pure fold from ledger entries to job state.
//! - [`announce`] — batch records, events and log lines derived from a fold.
//! - [`stopping`] — cancel, timeout and failure policies: drain, then end.
//!
//! Why no crash can make it count an item twice or lose one:
//! docs/exactly-once.md.

pub mod announce;
pub mod fold;
pub mod outcomes;
pub mod reducer;
pub mod stopping;

use jetflow_shared::{
    activity::Activity, job::JobState, lease, micro, supervisor, Bus, NatsArgs, Result,
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
    let activity = Activity::new("reduce", &instance, bus.names.namespace());
    let service = micro::spawn(&bus, &activity, None, &shutdown);

    let janitor = tokio::spawn(jetflow_shared::janitor::run(
        bus.clone(),
        bus.names.results_stream(),
        "result",
        "reduce",
        shutdown.clone(),
    ));
    let wants = |state: &JobState| !state.status.is_terminal();
    supervisor::per_job(&bus, &shutdown, wants, |state, stop| {
        let job = state.borrow().id.clone();
        let (bus, owner) = (bus.clone(), instance.clone());
        let activity = activity.clone();
        async move {
            lease::contend_for_job(&bus, "reduce", &job, &owner, stop, |token| {
                let (bus, job, activity) = (bus.clone(), job.clone(), activity.clone());
                async move {
                    // Listed only while this instance holds the job's lease.
                    let _owning = activity.job(&job);
                    reducer::reduce_job(bus, job, token).await
                }
            })
            .await
        }
    })
    .await;
    let _ = tokio::join!(janitor, service);
    Ok(())
}
