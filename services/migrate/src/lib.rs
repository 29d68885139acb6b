//! The migrate stage: runs each item's handler.
//!
//! - `worker` — for every active job, a pull loop on the job's own task
//!   consumer (whose `max_ack_pending` is the job's concurrency, enforced by
//!   the server across all instances), one task per item in flight, each
//!   holding one of the instance's `slots` (handed out by job priority).
//! - `context` — what a job's worker and its item tasks share, and the one
//!   acknowledgement a task gets.
//! - `item` — one task: may it run, run it, settle it.
//! - [`handler`] — the handler kinds (`http`, `nats`, `steps`).
//! - `decision` — succeeded, failed for good, or retried after a backoff
//!   delay (or after the target's `Retry-After`, spending no retry).
//! - `park` — the retry engine: a retry waits as a JetStream message
//!   schedule, holding no concurrency slot, so a crash loses none.
//! - `breaker` — a circuit breaker per target.
//! - `limiter` — rate limits shared by every instance, as NATS counters;
//!   `gate` — targets' shared concurrency, as slots handed out by NATS in
//!   priority order; `competition` — priority under a target's shared
//!   rate; `target_limits` — the limits targets carry for every job,
//!   watched.
//! - `ledger` — item results onto the job's ledger, grouped.

mod breaker;
mod competition;
mod context;
mod decision;
mod gate;
pub mod handler;
mod item;
mod ledger;
mod limiter;
mod park;
mod slots;
mod target_limits;
mod worker;

use std::{sync::Arc, time::Instant};

use jetflow_protocol::{
    duration::HumanDuration,
    job::{HandlerSpec, JobState},
    names, Stage,
};
use jetflow_runtime::{
    ownership::supervisor, process::activity::Activity, process::metrics, process::micro, Bus,
    Error, NatsArgs, Result, ServiceArgs,
};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::{
    breaker::{BreakerConfig, Breakers},
    context::{Instance, JobContext},
    gate::Gates,
    limiter::Limiter,
    slots::Slots,
    target_limits::Targets,
};

/// Settings of the migrate service.
#[derive(Debug, Clone, clap::Args)]
pub struct Config {
    /// NATS, namespace and metrics.
    #[command(flatten)]
    pub service: ServiceArgs,
    /// Items this instance runs at once, over all jobs (each job's own
    /// `concurrency` is enforced across instances by NATS).
    #[arg(long, env = "JETFLOW_MIGRATE_MAX_INFLIGHT", default_value_t = 1024)]
    pub max_inflight: usize,
    /// Consecutive transient failures of a target that open its circuit breaker.
    #[arg(long, env = "JETFLOW_BREAKER_THRESHOLD", default_value_t = 5)]
    pub breaker_threshold: u32,
    /// How long an open breaker holds tasks back before a probe (doubling,
    /// up to 30 s, while probes fail).
    #[arg(long, env = "JETFLOW_BREAKER_COOLDOWN", default_value = "2s")]
    pub breaker_cooldown: HumanDuration,
}

impl Config {
    /// Defaults with `nats`.
    pub fn new(nats: NatsArgs) -> Self {
        Self {
            service: ServiceArgs::new(nats),
            max_inflight: 1024,
            breaker_threshold: 5,
            breaker_cooldown: HumanDuration::from_secs(2),
        }
    }
}

/// Runs the migrate stage until `shutdown` is cancelled; in-flight items
/// finish first.
pub async fn run(config: Config, shutdown: CancellationToken) -> Result<()> {
    if config.max_inflight == 0 {
        return Err(Error::Config("--max-inflight: must be at least 1".into()));
    }
    let metrics = metrics::serve(
        config.service.metrics.metrics_addr,
        Stage::Migrate.service_name(),
        &shutdown,
    )
    .await?;
    let bus = Bus::connect(
        &config.service.nats,
        Stage::Migrate.service_name(),
        &shutdown,
    )
    .await?;
    let http = handler::http::client()
        .map_err(|e| Error::Config(format!("cannot build the HTTP client: {e}")))?;
    let breakers = Arc::new(breakers(&config)?);
    let slots = Slots::new(config.max_inflight);
    let instance = jetflow_runtime::instance_id();
    let janitor = spawn_janitor(&bus, &shutdown);
    let activity = Activity::new(Stage::Migrate, &instance, bus.names.namespace());
    let limiter = Arc::new(Limiter::new(bus.clone(), metrics.clone()));
    let targets = Arc::new(Targets::default());
    let gates = Arc::new(Gates::new(bus.clone(), metrics.clone()));
    let target_watch = tokio::spawn(target_limits::watch(
        bus.clone(),
        targets.clone(),
        shutdown.clone(),
    ));
    let details = details(&breakers, &limiter, &gates);
    let service = micro::spawn(&bus, &activity, Some(details), &shutdown);
    let consumers = spawn_consumer_metrics(&bus, &metrics, &shutdown);
    let breaker_gauge = tokio::spawn(breaker::export(
        breakers.clone(),
        metrics.clone(),
        shutdown.clone(),
    ));
    tracing::info!(
        namespace = bus.names.namespace(),
        max_inflight = config.max_inflight,
        "migrate ready"
    );
    metrics.readiness.ready(&bus.client);
    let shared = Instance {
        bus: bus.clone(),
        http,
        slots,
        breakers,
        limiter,
        targets,
        gates,
        competition: Arc::default(),
        activity,
        metrics,
    };
    supervisor::per_job(&bus, &shutdown, wants, |states, stop| {
        let context = JobContext::new(&shared, states.clone(), stop.clone());
        worker::run(context, states, stop)
    })
    .await;
    let _ = tokio::join!(janitor, service, consumers, breaker_gauge, target_watch);
    Ok(())
}

/// Starts sweeping the task stream of tasks for jobs that do not exist.
fn spawn_janitor(bus: &Bus, shutdown: &CancellationToken) -> JoinHandle<()> {
    tokio::spawn(jetflow_runtime::ops::janitor::run(
        bus.clone(),
        bus.names.tasks_stream(),
        bus.names.task_subject("*"),
        Stage::Migrate,
        shutdown.clone(),
    ))
}

/// Starts keeping the job task consumers' pending and ack-pending gauges
/// up to date.
fn spawn_consumer_metrics(
    bus: &Bus,
    metrics: &metrics::Metrics,
    shutdown: &CancellationToken,
) -> JoinHandle<()> {
    tokio::spawn(metrics::watch_consumers(
        bus.clone(),
        metrics.clone(),
        Stage::Migrate,
        bus.names.tasks_stream(),
        |name| name.starts_with(names::TASK_CONSUMER_PREFIX),
        shutdown.clone(),
    ))
}

/// The circuit breakers `config` asks for, once its breaker settings are valid.
fn breakers(config: &Config) -> Result<Breakers> {
    if config.breaker_threshold == 0 || config.breaker_cooldown.get().is_zero() {
        return Err(Error::Config(
            "--breaker-threshold and --breaker-cooldown: must be above zero".into(),
        ));
    }
    Ok(Breakers::new(BreakerConfig {
        threshold: config.breaker_threshold,
        cooldown: config.breaker_cooldown.get(),
        ..BreakerConfig::default()
    }))
}

/// What this instance adds to its status reports: every target's breaker,
/// what it took under each rate limit, and of each target's slots.
fn details(breakers: &Arc<Breakers>, limiter: &Arc<Limiter>, gates: &Arc<Gates>) -> micro::Details {
    let (breakers, limiter, gates) = (breakers.clone(), limiter.clone(), gates.clone());
    Arc::new(move || {
        serde_json::json!({
            "breakers": breakers.statuses(Instant::now()),
            "rate_limits": limiter.stats(),
            "slots": gates.stats(),
        })
    })
}

/// Whether this instance works on the job: an active job's, until it stops
/// (a stopping job's worker stops pulling; its items in flight finish).
/// External jobs' tasks are for external workers.
fn wants(state: &JobState) -> bool {
    state.status.is_active() && !matches!(state.spec.handler, HandlerSpec::External(_))
}
