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
        base(
            names.tasks_stream(),
            vec![names.task_subject("*")],
            RetentionPolicy::WorkQueue,
            Duration::ZERO,
        ),
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
    ]
}

/// Opens the buckets of an already provisioned namespace, creating nothing
/// (for read-only tools).
pub async fn open(js: &jetstream::Context, names: &Names) -> Result<Buckets> {
    let mut stores = Vec::new();
    for config in bucket_configs(names, 1) {
        let name = config.bucket;
        let store = js.get_key_value(&name).await.map_err(|e| {
            Error::Config(format!(
                "bucket {name} not found ({e}): is jetflow running in namespace {:?}?",
                names.namespace()
            ))
        })?;
        stores.push(store);
    }
    buckets(stores)
}

/// Creates what is missing and brings what exists up to date; returns the
/// buckets.
///
/// An existing stream or bucket never loses replicas: a service started
/// without `--replicas 3` against a cluster must not quietly turn R3 streams
/// into R1 (the server does it — "stream remapping" — and a node loss then
/// takes the streams it held with it). It only gains them, and a stream gains
/// the subjects a newer version needs.
pub async fn provision(js: &jetstream::Context, names: &Names, replicas: usize) -> Result<Buckets> {
    for mut config in stream_configs(names, replicas) {
        let name = config.name.clone();
        if let Some(existing) = existing_replicas(js, &name).await? {
            config.num_replicas = config.num_replicas.max(existing);
        }
        retry_conflicts(|| js.create_or_update_stream(config.clone()))
            .await
            .ctx(format!("provisioning stream {name}"))?;
    }
    let mut stores = Vec::new();
    for mut config in bucket_configs(names, replicas) {
        let name = config.bucket.clone();
        if let Some(existing) = existing_replicas(js, &format!("KV_{name}")).await? {
            config.num_replicas = config.num_replicas.max(existing);
        }
        let store = retry_conflicts(|| js.create_or_update_key_value(config.clone()))
            .await
            .ctx(format!("provisioning bucket {name}"))?;
        stores.push(store);
    }
    buckets(stores)
}

/// Replicas of an existing stream, `None` if there is no such stream.
async fn existing_replicas(js: &jetstream::Context, stream: &str) -> Result<Option<usize>> {
    match js.get_stream(stream).await {
        Ok(mut handle) => {
            let info = handle
                .info()
                .await
                .ctx(format!("reading stream {stream}"))?;
            Ok(Some(info.config.num_replicas))
        }
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
