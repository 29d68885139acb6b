//! Creating every stream and bucket jetflow needs, idempotently: each service
//! calls this at start, so none needs a separate set-up step, and running it
//! twice (or from four services at once) changes nothing.

use std::time::Duration;

use async_nats::jetstream::{
    self,
    kv::{self, Store},
    stream::{self, DiscardPolicy, RetentionPolicy, StorageType},
};
use jetflow_protocol::names::Names;

use crate::{error::ResultExt, Error, Result};

/// How long a lease lives without renewal (the leases bucket's `max_age`).
pub const LEASE_TTL: Duration = Duration::from_secs(6);

/// Deduplication window of every stream (JetStream's default).
const DUPLICATE_WINDOW: Duration = Duration::from_secs(120);

/// How long a rate counter is kept: longer than the longest window.
const RATE_COUNTER_AGE: Duration = Duration::from_secs(180);

/// The KV buckets, opened.
#[derive(Clone)]
pub struct Buckets {
    /// Job state.
    pub jobs: Store,
    /// Batch records.
    pub batches: Store,
    /// Item outcomes.
    pub items: Store,
    /// Shared job state for user code.
    pub state: Store,
    /// Full job specs.
    pub specs: Store,
    /// Fetch checkpoints.
    pub checkpoints: Store,
    /// Ownership leases.
    pub leases: Store,
    /// Limits of targets, for every job.
    pub limits: Store,
}

/// The stream definitions, for provisioning and for `deploy/` files.
pub fn stream_configs(names: &Names, replicas: usize) -> Vec<stream::Config> {
    let base = |name: String, subjects: Vec<String>, retention, max_age| stream::Config {
        name,
        subjects,
        retention,
        max_age,
        storage: StorageType::File,
        num_replicas: replicas,
        duplicate_window: DUPLICATE_WINDOW,
        discard: DiscardPolicy::Old,
        ..Default::default()
    };
    let days = |d: u64| Duration::from_secs(d * 86_400);
    vec![
        base(
            names.jobs_stream(),
            vec![
                names.submit_subject(),
                names.cancel_subject("*"),
                names.config_subject("*"),
                names.pause_subject("*"),
                names.resume_subject("*"),
            ],
            RetentionPolicy::WorkQueue,
            days(7),
        ),
        base(
            names.batches_stream(),
            vec![names.batch_subject("*")],
            RetentionPolicy::WorkQueue,
            Duration::ZERO,
        ),
        // A retry waits out its backoff as a message schedule on its
        // item's retry subject, which the server publishes to the task
        // subject when it is due (docs/exactly-once.md).
        stream::Config {
            allow_message_schedules: true,
            ..base(
                names.tasks_stream(),
                vec![names.task_subject("*"), names.retry_filter("*")],
                RetentionPolicy::WorkQueue,
                Duration::ZERO,
            )
        },
        // Ledgers are read by position (the reducer's checkpoint), so they
        // are kept by limits and purged by the reducer as it folds.
        base(
            names.results_stream(),
            vec![names.result_subject("*")],
            RetentionPolicy::Limits,
            days(14),
        ),
        base(
            names.events_stream(),
            vec![names.event_subject("*", "*")],
            RetentionPolicy::Limits,
            days(30),
        ),
        base(
            names.dlq_stream(),
            vec![names.dlq_filter(None, None)],
            RetentionPolicy::Limits,
            Duration::ZERO,
        ),
        // One NATS counter per rate scope and window, of which only the
        // total matters; a window's counter outlives the window (at most
        // a minute) and then goes by age.
        stream::Config {
            allow_message_counter: true,
            max_messages_per_subject: 1,
            ..base(
                names.rates_stream(),
                vec![names.rate_filter()],
                RetentionPolicy::Limits,
                RATE_COUNTER_AGE,
            )
        },
        // A target's slots: as many messages as its `concurrency`, handed
        // out and taken back by its slot consumer (`target_slots`).
        base(
            names.slots_stream(),
            vec![names.slot_filter()],
            RetentionPolicy::Limits,
            Duration::ZERO,
        ),
        // Notifications of jobs' ends, each taken away once delivered (or
        // dead-lettered); one that could not be delivered for a week goes.
        base(
            names.notify_stream(),
            vec![names.notify_subject("*")],
            RetentionPolicy::WorkQueue,
            days(7),
        ),
    ]
}

/// The bucket definitions.
pub fn bucket_configs(names: &Names, replicas: usize) -> Vec<kv::Config> {
    let bucket = |name: String, history: i64, max_age: Duration| kv::Config {
        bucket: name,
        history,
        max_age,
        storage: StorageType::File,
        num_replicas: replicas,
        ..Default::default()
    };
    vec![
        bucket(names.jobs_bucket(), 5, Duration::ZERO),
        bucket(names.batches_bucket(), 1, Duration::ZERO),
        bucket(names.items_bucket(), 1, Duration::ZERO),
        bucket(names.state_bucket(), 5, Duration::ZERO),
        bucket(names.specs_bucket(), 1, Duration::ZERO),
        bucket(names.checkpoints_bucket(), 1, Duration::ZERO),
        bucket(names.leases_bucket(), 1, LEASE_TTL),
        bucket(names.limits_bucket(), 5, Duration::ZERO),
    ]
}

/// Opens the buckets of an already provisioned namespace, creating nothing
/// (for read-only tools).
pub async fn open(js: &jetstream::Context, names: &Names) -> Result<Buckets> {
    open_or(js, names, |bucket| {
        Error::Config(format!(
            "bucket {bucket} not found: nothing is provisioned in namespace {:?} \
             (run `jetflow provision`, or start a service there)",
            names.namespace()
        ))
    })
    .await
}

/// Opens the buckets; a missing one is the error `missing` makes of its
/// name.
async fn open_or(
    js: &jetstream::Context,
    names: &Names,
    missing: impl Fn(&str) -> Error,
) -> Result<Buckets> {
    let mut stores = Vec::new();
    for config in bucket_configs(names, 1) {
        let name = config.bucket;
        // A time-out stays transient: the error is classified by what the
        // lookup of the bucket's stream said (crate::error).
        match js
            .get_key_value(&name)
            .await
            .ctx(format!("opening bucket {name}"))
        {
            Ok(store) => stores.push(store),
            Err(err) if err.is_not_found() => return Err(missing(&name)),
            Err(err) => return Err(err),
        }
    }
    buckets(stores)
}

/// What provisioning found and did to one stream or bucket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Provisioned {
    /// `stream`, `bucket` or `consumer`.
    pub kind: &'static str,
    /// Its name.
    pub name: String,
    /// Its replicas now.
    pub replicas: usize,
    /// Whether it was created.
    pub created: bool,
    /// Whether it existed and was changed (else it was current already).
    pub updated: bool,
}

/// Creates what is missing and brings what is not current up to date,
/// saying what it did to each stream and bucket; [`open`] then opens the
/// buckets.
///
/// An existing stream or bucket never loses replicas: a service started
/// without `--replicas 3` against a cluster must not quietly turn R3 streams
/// into R1 (the server does it — "stream remapping" — and a node loss then
/// takes the streams it held with it). It only gains them, and a stream gains
/// the subjects a newer version needs.
pub async fn provision(
    js: &jetstream::Context,
    names: &Names,
    replicas: usize,
) -> Result<Vec<Provisioned>> {
    let mut report = Vec::new();
    for mut config in stream_configs(names, replicas) {
        let name = config.name.clone();
        let existing = existing_config(js, &name).await?;
        let current = existing
            .as_ref()
            .is_some_and(|e| stream_is_current(e, &config));
        if let Some(existing) = &existing {
            config.num_replicas = config.num_replicas.max(existing.num_replicas);
        }
        // Leaving a current stream alone spares the cluster's meta leader a
        // proposal per stream per service start (four services starting on
        // a fresh cluster made dozens at once).
        if !current {
            retry_conflicts(|| js.create_or_update_stream(config.clone()))
                .await
                .ctx(format!("provisioning stream {name}"))?;
        }
        report.push(Provisioned {
            kind: "stream",
            name,
            replicas: config.num_replicas,
            created: existing.is_none(),
            updated: existing.is_some() && !current,
        });
    }
    for mut config in bucket_configs(names, replicas) {
        let name = config.bucket.clone();
        let existing = existing_config(js, &format!("KV_{name}")).await?;
        let current = existing
            .as_ref()
            .is_some_and(|e| bucket_is_current(e, &config));
        if let Some(existing) = &existing {
            config.num_replicas = config.num_replicas.max(existing.num_replicas);
        }
        if !current {
            retry_conflicts(|| js.create_or_update_key_value(config.clone()))
                .await
                .ctx(format!("provisioning bucket {name}"))?;
        }
        report.push(Provisioned {
            kind: "bucket",
            name,
            replicas: config.num_replicas,
            created: existing.is_none(),
            updated: existing.is_some() && !current,
        });
    }
    Ok(report)
}

/// Whether `existing` already is what `wanted` asks for (replicas: at
/// least as many).
fn stream_is_current(existing: &stream::Config, wanted: &stream::Config) -> bool {
    let subjects = |c: &stream::Config| {
        let mut s = c.subjects.clone();
        s.sort();
        s
    };
    subjects(existing) == subjects(wanted)
        && existing.retention == wanted.retention
        && existing.max_age == wanted.max_age
        && existing.storage == wanted.storage
        && existing.duplicate_window == wanted.duplicate_window
        && existing.discard == wanted.discard
        && existing.allow_message_schedules == wanted.allow_message_schedules
        && existing.allow_message_counter == wanted.allow_message_counter
        // Unset is 0 here and -1 on the server: compare only a set value.
        && (wanted.max_messages_per_subject <= 0
            || existing.max_messages_per_subject == wanted.max_messages_per_subject)
        && existing.num_replicas >= wanted.num_replicas
}

/// Whether the stream `existing` of a bucket already is what `wanted` asks
/// for.
fn bucket_is_current(existing: &stream::Config, wanted: &kv::Config) -> bool {
    existing.max_messages_per_subject == wanted.history
        && existing.max_age == wanted.max_age
        && existing.storage == wanted.storage
        && existing.num_replicas >= wanted.num_replicas
}

/// Opens every stream and bucket without creating or changing any, for a
/// service started with `--no-provision`; the error names the first one
/// missing.
pub async fn bind(js: &jetstream::Context, names: &Names) -> Result<Buckets> {
    for config in stream_configs(names, 1) {
        if existing_config(js, &config.name).await?.is_none() {
            return Err(missing(&format!("stream {}", config.name)));
        }
    }
    open_or(js, names, |bucket| missing(&format!("bucket {bucket}"))).await
}

/// The error of a bind-only service that finds `what` missing.
pub fn missing(what: &str) -> Error {
    Error::Config(format!(
        "{what} does not exist, and --no-provision (JETFLOW_PROVISION=false) forbids creating it: \
         run `jetflow provision` as an admin"
    ))
}

/// The configuration of an existing stream, `None` if there is no such
/// stream.
async fn existing_config(js: &jetstream::Context, stream: &str) -> Result<Option<stream::Config>> {
    match js.get_stream(stream).await {
        Ok(handle) => Ok(Some(handle.cached_info().config.clone())),
        Err(err) => match err.kind() {
            jetstream::context::GetStreamErrorKind::JetStream(api)
                if api.error_code() == jetstream::ErrorCode::STREAM_NOT_FOUND =>
            {
                Ok(None)
            }
            _ => Err(err).ctx(format!("looking up stream {stream}")),
        },
    }
}

fn buckets(stores: Vec<Store>) -> Result<Buckets> {
    let mut stores = stores.into_iter();
    let mut next = || {
        stores
            .next()
            .ok_or_else(|| Error::Config("bucket list changed".into()))
    };
    Ok(Buckets {
        jobs: next()?,
        batches: next()?,
        items: next()?,
        state: next()?,
        specs: next()?,
        checkpoints: next()?,
        leases: next()?,
        limits: next()?,
    })
}

/// Services start together and provision at once; the loser of a
/// create-create race sees "already in use" and simply tries again.
async fn retry_conflicts<T, E: std::fmt::Display, F, Fut>(mut op: F) -> std::result::Result<T, E>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = std::result::Result<T, E>>,
{
    let mut attempt = 0;
    loop {
        match op().await {
            Ok(value) => return Ok(value),
            Err(err) if attempt < 5 => {
                tracing::debug!(error = %err, attempt, "provisioning conflict; retrying");
                attempt += 1;
                tokio::time::sleep(Duration::from_millis(50 * (attempt + 1))).await;
            }
            Err(err) => return Err(err),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stream_as_wanted_or_with_more_replicas_is_current_any_other_change_is_not() {
        let names = Names::default();
        let wanted = stream_configs(&names, 3).remove(0);
        assert!(stream_is_current(&wanted, &wanted));
        let mut reordered = wanted.clone();
        reordered.subjects.reverse();
        assert!(stream_is_current(&reordered, &wanted));
        let mut r5 = wanted.clone();
        r5.num_replicas = 5;
        assert!(stream_is_current(&r5, &wanted));
        let mut r1 = wanted.clone();
        r1.num_replicas = 1;
        assert!(!stream_is_current(&r1, &wanted), "gains replicas");
        let mut older = wanted.clone();
        older.subjects.pop();
        assert!(!stream_is_current(&older, &wanted), "gains subjects");
        let mut aged = wanted.clone();
        aged.max_age = Duration::from_secs(1);
        assert!(!stream_is_current(&aged, &wanted));
    }

    #[test]
    fn a_bucket_is_current_with_its_history_age_and_replicas() {
        let names = Names::default();
        let wanted = bucket_configs(&names, 3).remove(0);
        let existing = stream::Config {
            max_messages_per_subject: wanted.history,
            max_age: wanted.max_age,
            storage: wanted.storage,
            num_replicas: 3,
            ..Default::default()
        };
        assert!(bucket_is_current(&existing, &wanted));
        let shallow = stream::Config {
            max_messages_per_subject: 1,
            ..existing.clone()
        };
        assert!(!bucket_is_current(&shallow, &wanted));
    }
}
