//! The fetch stage: takes job submissions and pages through each job's source.
//!
//! - [`intake`] — validates submissions — accepts a job (state, consumer,
//!   `accepted` event), rejects it with the field at fault, or dead-letters a
//!   body that is not a job.
//! - [`control`] — turns cancel requests and settings changes into entries
//!   on the job's ledger.
//! - [`source`] — reads one page of a source (HTTP with a cursor, inline ids or items).
//! - [`pager`] — per job, on the one instance holding its lease, fetches page
//!   after page, checkpointing the cursor and never running more than
//!   `max_inflight_batches` ahead of the reducer.
//! - `checkpoint` — the pager's next-checkpoint rule, as a pure function.
//! - `dependencies` — a job's `after`: before its first page, the pager
//!   waits for the jobs it names to end, then starts it or fails it.

mod checkpoint;
pub mod control;
mod dependencies;
pub mod intake;
pub mod pager;
pub mod source;

use std::sync::Arc;

use jetflow_protocol::{
    job::{JobState, JobStatus},
    names, Stage,
};
use jetflow_runtime::{
    nats::stage_consumers,
    ownership::lease,
    ownership::supervisor,
    process::activity::Activity,
    process::metrics::{self, Metrics},
    process::micro,
    Bus, Error, NatsArgs, Result, ServiceArgs,
};
use tokio_util::{sync::CancellationToken, task::TaskTracker};

/// Settings of the fetch service.
#[derive(Debug, Clone, clap::Args)]
pub struct Config {
    /// NATS, namespace and metrics.
    #[command(flatten)]
    pub service: ServiceArgs,
}

impl Config {
    /// Defaults with `nats`.
    pub fn new(nats: NatsArgs) -> Self {
        Self {
            service: ServiceArgs::new(nats),
        }
    }
}

/// Runs the fetch stage until `shutdown` is cancelled.
pub async fn run(config: Config, shutdown: CancellationToken) -> Result<()> {
    let metrics = metrics::serve(
        config.service.metrics.metrics_addr,
        Stage::Fetch.service_name(),
        &shutdown,
    )
    .await?;
    let bus = Bus::connect(&config.service.nats, Stage::Fetch.service_name(), &shutdown).await?;
    // Bind-only, a missing consumer ends the start here, not in a retry loop.
    bus.ensure_consumers(&stage_consumers::fetch(&bus.names), &shutdown)
        .await?;
    let instance = jetflow_runtime::instance_id();
    tracing::info!(namespace = bus.names.namespace(), instance, "fetch ready");
    let activity = Activity::new(Stage::Fetch, &instance, bus.names.namespace());
    let http = source::http_client()
        .map_err(|e| Error::Config(format!("cannot build the HTTP client: {e}")))?;

    let tasks = TaskTracker::new();
    tasks.spawn(micro::spawn(&bus, &activity, None, &shutdown));
    metrics.readiness.ready(&bus.client);
    tasks.spawn(intake::run(bus.clone(), shutdown.clone()));
    tasks.spawn(control::cancels(bus.clone(), shutdown.clone()));
    tasks.spawn(control::config_changes(bus.clone(), shutdown.clone()));
    tasks.spawn(control::pauses(bus.clone(), shutdown.clone()));
    tasks.spawn(metrics::watch_consumers(
        bus.clone(),
        metrics.clone(),
        Stage::Fetch,
        bus.names.jobs_stream(),
        |name| {
            matches!(
                name,
                names::FETCH_CONSUMER
                    | names::CANCEL_CONSUMER
                    | names::CONFIG_CONSUMER
                    | names::PAUSE_CONSUMER
            )
        },
        shutdown.clone(),
    ));
    tasks.spawn(supervise(
        bus,
        http,
        instance,
        activity,
        metrics,
        shutdown.clone(),
    ));
    tasks.close();
    tasks.wait().await;
    Ok(())
}

/// Starts a pager contender for every job still fetching, stops it when the
/// job is fetched or ends. Every pager is handed its job's state as it
/// changes, and shares `http`'s connection pool.
async fn supervise(
    bus: Bus,
    http: reqwest::Client,
    instance: String,
    activity: Arc<Activity>,
    metrics: Metrics,
    shutdown: CancellationToken,
) {
    let wants = |state: &JobState| needs_fetching(state.status, state.fetch_done);
    supervisor::per_job(&bus, &shutdown, wants, |state, stop| {
        let job = state.borrow().id.clone();
        let (bus, http, owner) = (bus.clone(), http.clone(), instance.clone());
        let (activity, metrics) = (activity.clone(), metrics.clone());
        async move {
            lease::contend_for_job(&bus, Stage::Fetch, &job, &owner, stop, |token| {
                pager::page_job(
                    bus.clone(),
                    http.clone(),
                    state.clone(),
                    activity.clone(),
                    metrics.clone(),
                    token,
                )
            })
            .await
        }
    })
    .await
}

fn needs_fetching(status: JobStatus, fetch_done: bool) -> bool {
    !fetch_done
        && matches!(
            status,
            JobStatus::Waiting | JobStatus::Pending | JobStatus::Fetching
        )
}
