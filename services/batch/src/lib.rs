//! The batch stage: turns each page into one task per item.
//!
//! - [`fanout`] — decides what a batch message becomes (tasks, a dead letter,
//!   nothing for an ended job) and publishes it, pipelined.
//!
//! A batch is acked only after every task publish is acknowledged by the
//! stream and its `dispatched` fact is on the ledger; a crash before that
//! redelivers the batch, whose task publishes then de-duplicate (same
//! `Nats-Msg-Id`) and whose finished items are skipped.

pub mod fanout;

use std::{sync::Arc, time::Duration};

use futures::StreamExt;
use jetflow_protocol::{names, Stage};
use jetflow_runtime::{
    nats::stage_consumers,
    process::activity::Activity,
    process::metrics::{self, Metrics},
    process::micro,
    Bus, Error, ErrorKind, NatsArgs, Result, ResultExt, ServiceArgs,
};
use tokio_util::{sync::CancellationToken, task::TaskTracker};

/// Settings of the batch service.
#[derive(Debug, Clone, clap::Args)]
pub struct Config {
    /// NATS, namespace and metrics.
    #[command(flatten)]
    pub service: ServiceArgs,
    /// Batches this instance fans out at once.
    #[arg(long, env = "JETFLOW_BATCH_PARALLEL", default_value_t = stage_consumers::DEFAULT_BATCH_PARALLEL)]
    pub parallel: usize,
}

impl Config {
    /// Defaults with `nats`.
    pub fn new(nats: NatsArgs) -> Self {
        Self {
            service: ServiceArgs::new(nats),
            parallel: stage_consumers::DEFAULT_BATCH_PARALLEL,
        }
    }
}

/// Runs the batch stage until `shutdown` is cancelled.
pub async fn run(config: Config, shutdown: CancellationToken) -> Result<()> {
    if config.parallel == 0 {
        return Err(Error::Config("--parallel: must be at least 1".into()));
    }
    let metrics = metrics::serve(
        config.service.metrics.metrics_addr,
        Stage::Batch.service_name(),
        &shutdown,
    )
    .await?;
    let bus = Bus::connect(&config.service.nats, Stage::Batch.service_name(), &shutdown).await?;
    // Bind-only, a missing consumer ends the start here, not in a retry loop.
    let pages = stage_consumers::pages(&bus.names, config.parallel);
    bus.ensure_consumers(std::slice::from_ref(&pages), &shutdown)
        .await?;
    let instance = jetflow_runtime::instance_id();
    tracing::info!(namespace = bus.names.namespace(), instance, "batch ready");
    let activity = Activity::new(Stage::Batch, &instance, bus.names.namespace());
    let service = micro::spawn(&bus, &activity, None, &shutdown);
    metrics.readiness.ready(&bus.client);
    tokio::spawn(metrics::watch_consumers(
        bus.clone(),
        metrics.clone(),
        Stage::Batch,
        bus.names.batches_stream(),
        |name| name == names::BATCH_CONSUMER,
        shutdown.clone(),
    ));
    loop {
        match consume(&bus, &config, &activity, &metrics, &shutdown).await {
            Ok(()) => {
                let _ = service.await;
                return Ok(());
            }
            Err(err) => {
                tracing::warn!(error = %err, "batch consumer interrupted; restarting");
                tokio::select! {
                    _ = shutdown.cancelled() => return Ok(()),
                    _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                }
            }
        }
    }
}

async fn consume(
    bus: &Bus,
    config: &Config,
    activity: &Arc<Activity>,
    metrics: &Metrics,
    shutdown: &CancellationToken,
) -> Result<()> {
    let consumer = bus
        .durable(&stage_consumers::pages(&bus.names, config.parallel))
        .await?;
    let mut messages = consumer
        .stream()
        .max_messages_per_batch(config.parallel)
        .messages()
        .await
        .ctx("pulling batches")?;
    let tasks = TaskTracker::new();
    let slots = Arc::new(tokio::sync::Semaphore::new(config.parallel));
    let result = loop {
        let next = tokio::select! {
            biased;
            _ = shutdown.cancelled() => break Ok(()),
            next = messages.next() => next,
        };
        match next {
            Some(Ok(msg)) => {
                let Ok(permit) = slots.clone().acquire_owned().await else {
                    break Ok(());
                };
                let (bus, activity, metrics) = (bus.clone(), activity.clone(), metrics.clone());
                tasks.spawn(async move {
                    fanout::handle(&bus, &activity, &metrics, msg).await;
                    drop(permit);
                });
            }
            Some(Err(err)) => tracing::warn!(error = %err, "error pulling batches"),
            None => {
                break Err(Error::nats(
                    "pulling batches",
                    ErrorKind::Transient,
                    "stream ended",
                ))
            }
        }
    };
    // Let batches being fanned out finish: their acks are what make them done.
    tasks.close();
    tasks.wait().await;
    result
}
