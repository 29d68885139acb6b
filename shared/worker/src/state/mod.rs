//! Shared job state: JSON values a job's workers keep together, in the
//! bucket `<ns>_state` under `<job>.<name>`, changed by atomic operations
//! — a counter's `incr`, a list's `append`, a set's `add`, `cas` — and
//! removed with the job. Each operation reads the value and its revision,
//! computes the new value ([`value`]) and writes it only if the key is
//! still at that revision, trying again when another writer came first; so
//! no update is ever lost, whoever writes and in whatever language
//! (docs/protocol.md, "Shared job state").
//!
//! ```no_run
//! # async fn f(js: async_nats::jetstream::Context) -> Result<(), jetflow_worker::state::StateError> {
//! use jetflow_worker::state::StateBucket;
//! use serde_json::json;
//! let bucket = StateBucket::open(&js, &jetflow_protocol::Names::default()).await?;
//! let state = bucket.job("reindex-7")?;
//! let processed = state.incr("processed", 1).await?;
//! let new_lang = state.add("langs", json!("en")).await?;
//! let swap = state.cas("leader", &json!(null), json!("worker-3")).await?;
//! println!("{processed} done; en new: {new_lang}; leader taken: {}", swap.swapped);
//! # Ok(()) }
//! ```

pub mod value;

use std::{
    hash::{BuildHasher as _, RandomState},
    time::{Duration, Instant},
};

use async_nats::jetstream::{
    self,
    kv::{Operation, Store, UpdateErrorKind},
};
use jetflow_protocol::{
    limits::MAX_STATE_VALUE_BYTES,
    names::{validate_job_id, validate_state_name},
    Names,
};
use serde_json::Value;

use value::Applied;
pub use value::{Mismatch, Swap};

/// How many times an operation reads and tries to write before it gives
/// up because other writers kept changing the value first.
pub const MAX_ATTEMPTS: u32 = 500;
/// The longest wait before the second attempt; it doubles per conflict.
pub const FIRST_BACKOFF: Duration = Duration::from_millis(2);
/// The longest wait between two attempts.
pub const MAX_BACKOFF: Duration = Duration::from_millis(50);

/// The operations, as errors name them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// Reading a value.
    Get,
    /// Writing a value whatever it was.
    Set,
    /// Adding to a counter.
    Incr,
    /// Appending to a list.
    Append,
    /// Adding to a set.
    Add,
    /// Compare-and-swap.
    Cas,
}

impl Op {
    /// Its name: `incr`.
    pub fn as_str(self) -> &'static str {
        match self {
            Op::Get => "get",
            Op::Set => "set",
            Op::Incr => "incr",
            Op::Append => "append",
            Op::Add => "add",
            Op::Cas => "cas",
        }
    }
}

impl std::fmt::Display for Op {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a shared state operation did not happen.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// Not a job id.
    #[error("job {0}")]
    InvalidJob(String),
    /// Not a state name.
    #[error("state name {0}")]
    InvalidName(String),
    /// The bucket could not be opened (not provisioned, or no right to it).
    #[error("cannot open the shared state bucket {bucket}: {source}")]
    Open {
        /// The bucket.
        bucket: String,
        /// What NATS said.
        #[source]
        source: jetstream::context::KeyValueError,
    },
    /// The operation does not apply to the value there.
    #[error("{op} {key}: {mismatch}")]
    Mismatch {
        /// The operation.
        op: Op,
        /// The key.
        key: String,
        /// How the value does not fit.
        mismatch: Mismatch,
    },
    /// The stored value is not JSON (someone put other bytes there).
    #[error("{op} {key}: the stored value is not JSON ({reason})")]
    NotJson {
        /// The operation.
        op: Op,
        /// The key.
        key: String,
        /// What the parser said.
        reason: String,
    },
    /// The value to write is over [`MAX_STATE_VALUE_BYTES`].
    #[error("{op} {key}: the value would be {size} bytes of JSON, over the limit of {MAX_STATE_VALUE_BYTES}")]
    TooLarge {
        /// The operation.
        op: Op,
        /// The key.
        key: String,
        /// Its size as JSON.
        size: usize,
    },
    /// Other writers changed the value before each of [`MAX_ATTEMPTS`] writes.
    #[error("{op} {key}: other writers changed it first {MAX_ATTEMPTS} times in a row; not applied, try again")]
    Contended {
        /// The operation.
        op: Op,
        /// The key.
        key: String,
    },
    /// The write's acknowledgement did not come in time: it may or may not
    /// have been stored, so it is not tried again.
    #[error("{op} {key}: no acknowledgement in time; it may or may not have been applied")]
    Unacknowledged {
        /// The operation.
        op: Op,
        /// The key.
        key: String,
    },
    /// NATS refused or failed the read or the write.
    #[error("{op} {key}: {source}")]
    Nats {
        /// The operation.
        op: Op,
        /// The key.
        key: String,
        /// What NATS said.
        #[source]
        source: async_nats::Error,
    },
}

impl StateError {
    /// Whether trying the same operation again later may succeed (NATS or
    /// contention), rather than never (a bad name, a value of the wrong
    /// kind). An unacknowledged write is not: it may have been applied.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            StateError::Contended { .. } | StateError::Nats { .. } | StateError::Open { .. }
        )
    }
}

/// The shared state bucket of a namespace, opened once; [`StateBucket::job`]
/// gives one job's state.
#[derive(Clone)]
pub struct StateBucket {
    store: Store,
}

impl StateBucket {
    /// Opens `<ns>_state` (it must exist: any jetflow service or `jetflow
    /// provision` creates it).
    pub async fn open(js: &jetstream::Context, names: &Names) -> Result<Self, StateError> {
        let bucket = names.state_bucket();
        let store = js
            .get_key_value(&bucket)
            .await
            .map_err(|source| StateError::Open { bucket, source })?;
        Ok(Self { store })
    }

    /// Over a bucket opened already.
    pub fn from_store(store: Store) -> Self {
        Self { store }
    }

    /// The shared state of `job`.
    pub fn job(&self, job: &str) -> Result<SharedState, StateError> {
        validate_job_id(job).map_err(StateError::InvalidJob)?;
        Ok(SharedState {
            store: self.store.clone(),
            job: job.to_string(),
        })
    }
}

/// One job's shared state: cheap to clone, safe to use from many tasks and
/// processes at once.
#[derive(Clone)]
pub struct SharedState {
    store: Store,
    job: String,
}

impl SharedState {
    /// The job.
    pub fn job(&self) -> &str {
        &self.job
    }

    /// The value of `name`, or `None` when it is not set.
    pub async fn get(&self, name: &str) -> Result<Option<Value>, StateError> {
        let key = self.key(name)?;
        Ok(self.read(Op::Get, &key).await?.0)
    }

    /// Writes `value` to `name` whatever was there (the last writer wins;
    /// use [`SharedState::cas`] to write only over a known value).
    pub async fn set(&self, name: &str, value: Value) -> Result<(), StateError> {
        let key = self.key(name)?;
        let bytes = encode(Op::Set, &key, &value)?;
        self.store
            .put(&key, bytes.into())
            .await
            .map_err(|err| nats(Op::Set, &key, err))?;
        Ok(())
    }

    /// Adds `by` (may be negative) to the counter `name` (0 when not set);
    /// returns the new count.
    pub async fn incr(&self, name: &str, by: i64) -> Result<i64, StateError> {
        self.change(Op::Incr, name, |current| value::incremented(current, by))
            .await
    }

    /// Appends `item` to the list `name` (empty when not set); returns its
    /// new length.
    pub async fn append(&self, name: &str, item: Value) -> Result<usize, StateError> {
        self.change(Op::Append, name, |current| value::appended(current, &item))
            .await
    }

    /// Adds `member` to the set `name` (empty when not set); returns
    /// whether it was not in it before.
    pub async fn add(&self, name: &str, member: Value) -> Result<bool, StateError> {
        self.change(Op::Add, name, |current| value::added(current, &member))
            .await
    }

    /// Writes `new` to `name` if its value is `old` (null: not set);
    /// returns whether it did and the value now.
    pub async fn cas(&self, name: &str, old: &Value, new: Value) -> Result<Swap, StateError> {
        let key = self.key(name)?;
        // A NEW too large never swaps, whatever the value is.
        encode(Op::Cas, &key, &new)?;
        self.change(Op::Cas, name, |current| {
            Ok(value::swapped(current, old, &new))
        })
        .await
    }

    fn key(&self, name: &str) -> Result<String, StateError> {
        validate_state_name(name).map_err(StateError::InvalidName)?;
        Ok(Names::state_key(&self.job, name))
    }

    /// Reads, applies, writes at the revision read; again on a conflict.
    async fn change<A>(
        &self,
        op: Op,
        name: &str,
        apply: impl Fn(Option<&Value>) -> Result<Applied<A>, Mismatch>,
    ) -> Result<A, StateError> {
        let key = self.key(name)?;
        for attempt in 1..=MAX_ATTEMPTS {
            let (current, revision) = self.read(op, &key).await?;
            let applied = apply(current.as_ref()).map_err(|mismatch| StateError::Mismatch {
                op,
                key: key.clone(),
                mismatch,
            })?;
            let Some(next) = applied.write else {
                return Ok(applied.answer);
            };
            let bytes = encode(op, &key, &next)?;
            // Revision 0 means "no value ever": the write creates the key.
            match self.store.update(&key, bytes.into(), revision).await {
                Ok(_) => return Ok(applied.answer),
                Err(err) if err.kind() == UpdateErrorKind::WrongLastRevision => {
                    tracing::debug!(%op, key, attempt, "another writer came first; trying again");
                    tokio::time::sleep(backoff(attempt)).await;
                }
                Err(err) if err.kind() == UpdateErrorKind::TimedOut => {
                    return Err(StateError::Unacknowledged { op, key });
                }
                Err(err) => return Err(nats(op, &key, err)),
            }
        }
        Err(StateError::Contended { op, key })
    }

    /// The value (none when not set, or deleted) and the revision a write
    /// must name to replace it (0 when the key never had one).
    async fn read(&self, op: Op, key: &str) -> Result<(Option<Value>, u64), StateError> {
        let entry = self
            .store
            .entry(key)
            .await
            .map_err(|err| nats(op, key, err))?;
        let Some(entry) = entry else {
            return Ok((None, 0));
        };
        if matches!(entry.operation, Operation::Delete | Operation::Purge) {
            return Ok((None, entry.revision));
        }
        let value = serde_json::from_slice(&entry.value).map_err(|err| StateError::NotJson {
            op,
            key: key.to_string(),
            reason: err.to_string(),
        })?;
        Ok((Some(value), entry.revision))
    }
}

/// `value` as the JSON to store, if it is within the limit.
fn encode(op: Op, key: &str, value: &Value) -> Result<Vec<u8>, StateError> {
    let bytes = serde_json::to_vec(value).map_err(|err| nats(op, key, err))?;
    if bytes.len() > MAX_STATE_VALUE_BYTES {
        return Err(StateError::TooLarge {
            op,
            key: key.to_string(),
            size: bytes.len(),
        });
    }
    Ok(bytes)
}

fn nats(op: Op, key: &str, err: impl Into<async_nats::Error>) -> StateError {
    StateError::Nats {
        op,
        key: key.to_string(),
        source: err.into(),
    }
}

/// The wait after the `attempt`th conflict: a random time up to
/// min([`MAX_BACKOFF`], [`FIRST_BACKOFF`] × 2^(attempt−1)), so writers
/// that collided spread out.
pub fn backoff(attempt: u32) -> Duration {
    let ceiling = FIRST_BACKOFF
        .saturating_mul(1 << attempt.saturating_sub(1).min(16))
        .min(MAX_BACKOFF);
    let random = RandomState::new().hash_one(Instant::now());
    ceiling.mul_f64(random as f64 / u64::MAX as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_to_its_ceiling_and_spreads() {
        for attempt in 1..40 {
            let ceiling = (2u64 << (attempt - 1).min(16)).min(50);
            let waits: Vec<Duration> = (0..50).map(|_| backoff(attempt)).collect();
            assert!(
                waits.iter().all(|w| *w <= Duration::from_millis(ceiling)),
                "{attempt}: {waits:?}"
            );
            let distinct: std::collections::HashSet<_> = waits.iter().collect();
            assert!(distinct.len() > 10, "{attempt}: {waits:?}");
        }
    }

    #[test]
    fn errors_name_the_operation_and_the_key() {
        let err = StateError::Mismatch {
            op: Op::Incr,
            key: "j1.orgs".into(),
            mismatch: Mismatch::WrongType {
                found: "an array",
                wanted: "an integer",
            },
        };
        assert_eq!(
            err.to_string(),
            "incr j1.orgs: the value is an array, not an integer"
        );
        assert!(!err.is_transient());
        let busy = StateError::Contended {
            op: Op::Add,
            key: "j1.s".into(),
        };
        assert!(busy.is_transient() && busy.to_string().starts_with("add j1.s: "));
    }

    #[test]
    fn values_over_the_limit_are_refused_before_any_write() {
        let big = Value::String("x".repeat(MAX_STATE_VALUE_BYTES));
        let err = encode(Op::Append, "j1.log", &big).unwrap_err();
        assert!(
            matches!(err, StateError::TooLarge { op: Op::Append, size, .. } if size == MAX_STATE_VALUE_BYTES + 2)
        );
        assert!(encode(Op::Set, "j1.x", &Value::from(1)).is_ok());
    }
}
