//! The limits targets carry for every job (`jetflow limits set`), as this
//! instance last saw them: the limits bucket, watched, so a change applies
//! to the calls started after it in every job. Each change also sets the
//! target's concurrency slots to match (`target_slots`): every instance
//! does, idempotently, so a record put with `nats kv put` works as well.

use std::{
    collections::HashMap,
    sync::{Arc, RwLock},
    time::Duration,
};

use jetflow_protocol::{
    names::item_id_from_key,
    rate::RateLimit,
    target::{self, TargetLimits},
};
use jetflow_runtime::{
    nats::{target_slots, watch::KvWatch},
    Bus,
};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

/// Every target's limits, by the target's key.
pub(crate) struct Targets {
    limits: RwLock<HashMap<String, TargetLimits>>,
    /// Counts changes, for workers to notice them.
    changes: watch::Sender<u64>,
}

impl Default for Targets {
    fn default() -> Self {
        Self {
            limits: RwLock::default(),
            changes: watch::Sender::new(0),
        }
    }
}

impl Targets {
    /// Tells of every change after this call.
    pub(crate) fn changes(&self) -> watch::Receiver<u64> {
        self.changes.subscribe()
    }

    /// The rate limit `target` carries, if any.
    pub(crate) fn rate(&self, target: &str) -> Option<RateLimit> {
        let limits = self.limits.read().ok()?;
        limits.get(&target::key(target)).and_then(|l| l.rate)
    }

    /// The shared concurrency `target` carries, if any.
    pub(crate) fn concurrency(&self, target: &str) -> Option<u32> {
        let limits = self.limits.read().ok()?;
        limits.get(&target::key(target)).and_then(|l| l.concurrency)
    }

    /// Applies one change of the bucket: `value` is the key's new record,
    /// `None` when it was removed. A record that does not read as limits
    /// is ignored (and said), leaving the target unlimited.
    fn apply(&self, key: &str, value: Option<&[u8]>) {
        self.set(key, value);
        self.changes.send_modify(|n| *n += 1);
    }

    fn set(&self, key: &str, value: Option<&[u8]>) {
        let Ok(mut limits) = self.limits.write() else {
            return;
        };
        let Some(value) = value else {
            limits.remove(key);
            return;
        };
        match serde_json::from_slice::<TargetLimits>(value) {
            Ok(record) => {
                tracing::info!(target = %record.target, rate = ?record.rate.map(|r| r.to_string()), concurrency = ?record.concurrency, "target limits");
                limits.insert(key.to_string(), record);
            }
            Err(err) => {
                tracing::warn!(key, error = %err, "ignoring unreadable target limits");
                limits.remove(key);
            }
        }
    }
}

/// Keeps `targets` up to date with the limits bucket until `shutdown`.
pub(crate) async fn watch(bus: Bus, targets: Arc<Targets>, shutdown: CancellationToken) {
    let mut watch = KvWatch::new(&bus.js, &bus.kv.limits, ">");
    loop {
        let change = tokio::select! {
            _ = shutdown.cancelled() => return,
            change = watch.next() => change,
        };
        match change {
            Ok(change) => {
                targets.apply(&change.key, change.value.as_deref());
                keep_slots(&bus, &targets, &change.key).await;
            }
            Err(err) => {
                tracing::debug!(error = %err, "watching target limits; retrying");
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                }
            }
        }
    }
}

/// Makes the slots of the target under `key` what its limits now say:
/// `concurrency` slots, or none. A failure is said and left for the next
/// change or for a call that finds no slot consumer (`gate`).
async fn keep_slots(bus: &Bus, targets: &Targets, key: &str) {
    let Some(target) = item_id_from_key(key) else {
        return;
    };
    let kept = match targets.concurrency(&target) {
        Some(concurrency) => target_slots::ensure(bus, &target, concurrency).await,
        None => target_slots::remove(bus, &target).await,
    };
    if let Err(err) = kept {
        tracing::warn!(target = %target, error = %err, "cannot set the target's concurrency slots");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_sets_a_targets_rate_and_its_removal_or_a_bad_one_clears_it() {
        let targets = Targets::default();
        let mut changes = targets.changes();
        let key = target::key("api:80");
        targets.apply(
            &key,
            Some(br#"{"target":"api:80","rate":"20/s","concurrency":4}"#),
        );
        assert_eq!(
            targets.rate("api:80").map(|r| r.to_string()).as_deref(),
            Some("20/s")
        );
        assert_eq!(targets.concurrency("api:80"), Some(4));
        assert_eq!(targets.rate("other:80"), None);
        targets.apply(&key, Some(b"{\"rate\": 5}"));
        assert_eq!(targets.rate("api:80"), None);
        assert_eq!(targets.concurrency("api:80"), None);
        targets.apply(&key, Some(br#"{"target":"api:80","rate":"20/s"}"#));
        targets.apply(&key, None);
        assert_eq!(targets.rate("api:80"), None);
        assert!(changes.has_changed().unwrap());
        assert_eq!(*changes.borrow_and_update(), 4);
    }
}
