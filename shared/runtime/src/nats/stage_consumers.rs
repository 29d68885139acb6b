//! The durable consumers the stages pull from, defined once: a stage
//! creates (or brings up to date) its own at start, and `jetflow provision`
//! creates them all for an admin, so a stage started with `--no-provision`
//! only opens them.
//!
//! The per-job task consumers are not here: they belong to a job's life
//! ([`task_queue`](super::task_queue)).

use std::time::Duration;

use async_nats::jetstream::consumer::{pull, AckPolicy};
use jetflow_protocol::{Names, Stage};

/// How many batches a batch instance fans out at once, unless told.
pub const DEFAULT_BATCH_PARALLEL: usize = 8;

/// One stage's durable consumer: the stream it reads and its settings.
#[derive(Debug, Clone)]
pub struct StageConsumer {
    /// The stream.
    pub stream: String,
    /// The consumer's configuration; its `durable_name` is its name.
    pub config: pull::Config,
}

impl StageConsumer {
    /// The consumer's name.
    pub fn name(&self) -> &str {
        self.config.durable_name.as_deref().unwrap_or_default()
    }
}

/// Fetch's consumer on submissions.
pub fn submissions(names: &Names) -> StageConsumer {
    durable(
        names.jobs_stream(),
        names.fetch_consumer(),
        names.submit_subject(),
    )
}

/// Fetch's consumer on cancel requests.
pub fn cancels(names: &Names) -> StageConsumer {
    durable(
        names.jobs_stream(),
        names.cancel_consumer(),
        names.cancel_subject("*"),
    )
}

/// Fetch's consumer on settings changes.
pub fn config_changes(names: &Names) -> StageConsumer {
    durable(
        names.jobs_stream(),
        names.config_consumer(),
        names.config_subject("*"),
    )
}

/// Fetch's consumer on pause and resume requests, both in one so that a
/// pause and the resume after it are taken in order.
pub fn pauses(names: &Names) -> StageConsumer {
    let mut consumer = durable(names.jobs_stream(), names.pause_consumer(), String::new());
    consumer.config.filter_subjects = vec![names.pause_subject("*"), names.resume_subject("*")];
    consumer
}

/// Batch's consumer on pages: pages are handed out a few per fan-out slot
/// (`parallel` slots per instance), and one not acked within a minute (an
/// instance that died mid-fan-out) goes to another instance.
pub fn pages(names: &Names, parallel: usize) -> StageConsumer {
    StageConsumer {
        stream: names.batches_stream(),
        config: pull::Config {
            durable_name: Some(names.batch_consumer()),
            ack_policy: AckPolicy::Explicit,
            ack_wait: Duration::from_secs(60),
            max_ack_pending: i64::try_from(parallel.saturating_mul(4)).unwrap_or(i64::MAX),
            ..Default::default()
        },
    }
}

/// Reduce's consumer on notifications of jobs' ends: each is delivered
/// (and retried, by a nak with a delay) by whichever reduce instance takes
/// it; one not settled within a minute (an instance that died mid-call)
/// goes to another.
pub fn notifications(names: &Names) -> StageConsumer {
    let mut consumer = durable(
        names.notify_stream(),
        names.notify_consumer(),
        names.notify_subject("*"),
    );
    consumer.config.ack_wait = Duration::from_secs(60);
    consumer.config.max_ack_pending = 100;
    consumer
}

/// Fetch's four consumers.
pub fn fetch(names: &Names) -> Vec<StageConsumer> {
    vec![
        submissions(names),
        cancels(names),
        config_changes(names),
        pauses(names),
    ]
}

/// The durable consumers `stage` pulls from.
pub fn of(stage: Stage, names: &Names, batch_parallel: usize) -> Vec<StageConsumer> {
    match stage {
        Stage::Fetch => fetch(names),
        Stage::Batch => vec![pages(names, batch_parallel)],
        Stage::Reduce => vec![notifications(names)],
        Stage::Migrate => Vec::new(),
    }
}

/// Every stage's durable consumers, with the default settings.
pub fn all(names: &Names) -> Vec<StageConsumer> {
    Stage::ALL
        .iter()
        .flat_map(|stage| of(*stage, names, DEFAULT_BATCH_PARALLEL))
        .collect()
}

fn durable(stream: String, name: String, filter: String) -> StageConsumer {
    StageConsumer {
        stream,
        config: pull::Config {
            durable_name: Some(name),
            filter_subject: filter,
            ack_policy: AckPolicy::Explicit,
            ..Default::default()
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fetch_batch_and_reduce_pull_from_durable_consumers_migrate_does_not() {
        let names = Names::default();
        let fetch: Vec<_> = of(Stage::Fetch, &names, 8)
            .iter()
            .map(|c| (c.stream.clone(), c.name().to_string()))
            .collect();
        assert_eq!(
            fetch,
            [
                ("JETFLOW_JOBS".to_string(), "fetch".to_string()),
                ("JETFLOW_JOBS".into(), "cancel".into()),
                ("JETFLOW_JOBS".into(), "config".into()),
                ("JETFLOW_JOBS".into(), "pause".into()),
            ]
        );
        let batch = of(Stage::Batch, &names, 3);
        assert_eq!(batch[0].config.max_ack_pending, 12);
        assert!(of(Stage::Migrate, &names, 8).is_empty());
        assert_eq!(of(Stage::Reduce, &names, 8)[0].name(), "notify");
        assert_eq!(all(&names).len(), 6);
    }
}
