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

use async_nats::jetstream::consumer::{pull, AckPolicy};
use futures::StreamExt;
use jetflow_protocol::{names, Stage};
use jetflow_runtime::{
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
    #[arg(long, env = "JETFLOW_BATCH_PARALLEL", default_value_t = 8)]
    pub parallel: usize,
}

impl Config {
    /// Defaults with `nats`.
    pub fn new(nats: NatsArgs) -> Self {
        Self {
            service: ServiceArgs::new(nats),
            parallel: 8,
        }
    }
}

/// Runs the batch stage until `shutdown` is cancelled.
pub async fn run(config: Config, shutdown: CancellationToken) -> Result<()> {
    if config.parallel == 0 {
        return Err(Error::Config("--parallel: must be at least 1".into()));
    }
    let bus = Bus::connect(&config.service.nats, Stage::Batch.service_name(), &shutdown).await?;
    let instance = jetflow_runtime::instance_id();
    tracing::info!(namespace = bus.names.namespace(), instance, "batch ready");
    let activity = Activity::new(Stage::Batch, &instance, bus.names.namespace());
    let service = micro::spawn(&bus, &activity, None, &shutdown);
    let metrics = metrics::serve(
        config.service.metrics.metrics_addr,
        Stage::Batch.service_name(),
        &shutdown,
    )
    .await?;
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

/// The batch consumer: pages are handed out a few per fan-out slot, and one
/// not acked within a minute (an instance that died mid-fan-out) goes to
/// another instance.
fn consumer_config(bus: &Bus, config: &Config) -> pull::Config {
    pull::Config {
        durable_name: Some(bus.names.batch_consumer()),
        ack_policy: AckPolicy::Explicit,
        ack_wait: Duration::from_secs(60),
        max_ack_pending: config.parallel as i64 * 4,
        ..Default::default()
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
        .js
        .create_consumer_on_stream(consumer_config(bus, config), bus.names.batches_stream())
        .await
        .ctx("creating the batch consumer")?;
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
