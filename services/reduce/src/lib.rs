//! The reduce stage: tallies every job's results exactly once and ends the job.
//!
//! - [`reducer`] — per job, on the one instance holding its lease, reads the
//!   job's ledger in order from the checkpoint and folds it.
//! - [`facts`] — ledger entries as facts to fold, and how each counts.
//! - [`outcomes`] — item outcome records, created once and recognisable:
//!   they decide how each fact counts.
//! - [`fold`] — the pure fold from facts to job state.
//! - [`announce`] — batch records, events and log lines derived from a fold.
//! - [`stopping`] — cancel, timeout and failure policies: drain, then end.
//! - [`retention`] — removing jobs that finished long ago.
//! - [`job_metrics`] — tallies, ends and batches in flight, as metrics.
//! - [`user_reducers`] — `nats` reductions, folded by the user's code.
//! - [`notify`] — telling a job's end where its `notify` says, at least once.
//!
//! Why no crash can make it count an item twice or lose one:
//! docs/exactly-once.md.

pub mod announce;
pub mod facts;
pub mod fold;
pub mod job_metrics;
pub mod notify;
pub mod outcomes;
pub mod reducer;
pub mod retention;
pub mod stopping;
pub mod user_reducers;

use std::sync::Arc;

use jetflow_protocol::{duration::HumanDuration, job::JobState, Stage};
use jetflow_runtime::{
    nats::stage_consumers, ownership::lease, ownership::supervisor, process::activity::Activity,
    process::metrics, process::micro, Bus, Error, NatsArgs, Result, ServiceArgs,
};
use tokio_util::sync::CancellationToken;

/// Settings of the reduce service.
#[derive(Debug, Clone, clap::Args)]
pub struct Config {
    /// NATS, namespace and metrics.
    #[command(flatten)]
    pub service: ServiceArgs,
    /// Finished jobs are removed this long after they ended (`off` keeps
    /// them until `jetflow gc`).
    #[arg(long, env = "JETFLOW_RETENTION", default_value = "7d")]
    pub retention: Retention,
    /// How often retention looks for expired jobs.
    #[arg(long, env = "JETFLOW_GC_EVERY", default_value = "10m")]
    pub gc_every: HumanDuration,
    /// Attempts at delivering a notification of a job's end before it is
    /// dead-lettered (backoff from 1 s, doubling, up to 1 min apart).
    #[arg(long, env = "JETFLOW_NOTIFY_ATTEMPTS", default_value_t = 30)]
    pub notify_attempts: u32,
}

impl Config {
    /// Defaults with `nats`.
    pub fn new(nats: NatsArgs) -> Self {
        Self {
            service: ServiceArgs::new(nats),
            retention: Retention(Some(HumanDuration::from_secs(7 * 86_400))),
            gc_every: HumanDuration::from_secs(600),
            notify_attempts: 30,
        }
    }
}

/// A retention period, or `off`.
#[derive(Debug, Clone, Copy)]
pub struct Retention(pub Option<HumanDuration>);

impl std::str::FromStr for Retention {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "off" | "never" => Ok(Retention(None)),
            other => other.parse().map(|d| Retention(Some(d))),
        }
    }
}

/// Reduces every job that has not ended, each on whichever instance holds
/// its reduce lease, until `shutdown`.
async fn reduce_jobs(
    bus: &Bus,
    instance: &str,
    activity: &Arc<Activity>,
    job_metrics: &job_metrics::JobMetrics,
    shutdown: &CancellationToken,
) {
    let wants = |state: &JobState| !state.status.is_terminal();
    supervisor::per_job(bus, shutdown, wants, |state, stop| {
        let job = state.borrow().id.clone();
        let (bus, owner) = (bus.clone(), instance.to_string());
        let (activity, job_metrics) = (activity.clone(), job_metrics.clone());
        async move {
            lease::contend_for_job(&bus, Stage::Reduce, &job, &owner, stop, |token| {
                let (bus, job, activity) = (bus.clone(), job.clone(), activity.clone());
                let job_metrics = job_metrics.clone();
                async move {
                    // Listed only while this instance holds the job's lease.
                    let _owning = activity.job(&job);
                    reducer::reduce_job(bus, job, job_metrics, token).await
                }
            })
            .await
        }
    })
    .await;
}

/// Runs the reduce stage until `shutdown` is cancelled.
pub async fn run(config: Config, shutdown: CancellationToken) -> Result<()> {
    if config.gc_every.get().is_zero() {
        return Err(Error::Config("--gc-every: must be above zero".into()));
    }
    if config.notify_attempts == 0 {
        return Err(Error::Config(
            "--notify-attempts: must be above zero".into(),
        ));
    }
    let metrics = metrics::serve(
        config.service.metrics.metrics_addr,
        Stage::Reduce.service_name(),
        &shutdown,
    )
    .await?;
    let bus = Bus::connect(
        &config.service.nats,
        Stage::Reduce.service_name(),
        &shutdown,
    )
    .await?;
    // Bind-only, a missing consumer ends the start here, not in a retry loop.
    bus.ensure_consumers(
        &stage_consumers::of(Stage::Reduce, &bus.names, 0),
        &shutdown,
    )
    .await?;
    let instance = jetflow_runtime::instance_id();
    tracing::info!(namespace = bus.names.namespace(), instance, "reduce ready");
    let activity = Activity::new(Stage::Reduce, &instance, bus.names.namespace());
    let service = micro::spawn(&bus, &activity, None, &shutdown);
    let job_metrics = job_metrics::JobMetrics::new(metrics.clone());
    metrics.readiness.ready(&bus.client);
    let retention = config.retention.0.map(|period| {
        tokio::spawn(retention::run(
            bus.clone(),
            instance.clone(),
            period.get(),
            config.gc_every.get(),
            shutdown.clone(),
        ))
    });

    let janitor = tokio::spawn(jetflow_runtime::ops::janitor::run(
        bus.clone(),
        bus.names.results_stream(),
        bus.names.result_subject("*"),
        Stage::Reduce,
        shutdown.clone(),
    ));
    let notifier = tokio::spawn(notify::deliver(
        bus.clone(),
        config.notify_attempts,
        shutdown.clone(),
    ));
    reduce_jobs(&bus, &instance, &activity, &job_metrics, &shutdown).await;
    let _ = tokio::join!(janitor, service, notifier);
    if let Some(retention) = retention {
        let _ = retention.await;
    }
    Ok(())
}
