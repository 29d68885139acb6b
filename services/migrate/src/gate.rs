//! Targets' shared concurrency, from migrate's side: a call to a target
//! that carries a `concurrency` limit first takes one of the target's
//! slots (`target_slots`), and hands it back when the call ends.
//!
//! A call waits for its slot as a pull request of one slot message at its
//! job's priority, so when jobs compete for a target the server gives each
//! freed slot to the most urgent job's waiting call, and to jobs of equal
//! priority in turn. The wait is after the task is pulled: the task keeps
//! its place in its own job's concurrency, but makes no call and spends no
//! retry while it waits; a pause or a stop ends the wait (`Entry::Halted`).

use std::{
    collections::{BTreeMap, HashMap},
    future::Future,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use async_nats::{
    jetstream::{
        consumer::{pull::BatchConfig, PullConsumer},
        AckKind, Message,
    },
    StatusCode,
};
use futures::StreamExt;
use jetflow_protocol::names::SLOT_PRIORITY_GROUP;
use jetflow_runtime::{
    nats::target_slots, process::metrics::Metrics, Bus, Error, ErrorKind, Result, ResultExt,
};
use serde::Serialize;
use tokio::task::JoinHandle;

use crate::target_limits::Targets;

/// How long one pull request for a slot waits before it is asked again
/// (short, so a request whose caller went away is soon forgotten).
const REQUEST_EXPIRES: Duration = Duration::from_secs(5);

/// How long to wait before asking again when the slots cannot be reached.
const RETRY: Duration = Duration::from_secs(1);

/// The NATS pull priority of a job's calls: NATS serves 0 first and counts
/// to 9, a job's `priority` counts the other way from 0 (its default), so
/// 0 is NATS's 5; jobs of priority 5 and above share NATS's first place,
/// and of -4 and below its last.
pub(crate) fn slot_priority(job_priority: i32) -> usize {
    (5 - i64::from(job_priority)).clamp(0, 9) as usize
}

/// What a call may do about its target's slots.
pub(crate) enum Entry {
    /// The target has no shared concurrency: call.
    Free,
    /// Call, holding this slot until the call ends (dropping it hands the
    /// slot back).
    Held { _slot: Slot },
    /// The job was paused or stopped before a slot came: make no call.
    Halted,
}

/// One of a target's slots, held: progress acks keep it while the call
/// runs; dropping it hands it back (a nak, so the next waiting call gets
/// it at once).
pub(crate) struct Slot {
    msg: Arc<Message>,
    keeper: JoinHandle<()>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.keeper.abort();
        let msg = self.msg.clone();
        tokio::spawn(async move {
            if let Err(err) = msg.ack_with(AckKind::Nak(None)).await {
                // It comes back by itself after the lease.
                tracing::debug!(error = %err, "cannot hand a target slot back");
            }
        });
    }
}

impl Slot {
    fn hold(msg: Message) -> Self {
        let msg = Arc::new(msg);
        let kept = msg.clone();
        let keeper = tokio::spawn(async move {
            let every = target_slots::LEASE / 3;
            loop {
                tokio::time::sleep(every).await;
                if let Err(err) = kept.ack_with(AckKind::Progress).await {
                    tracing::debug!(error = %err, "cannot keep a target slot");
                }
            }
        });
        Self { msg, keeper }
    }
}

/// What this instance's calls did with one target's slots, for status
/// reports.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub(crate) struct SlotStats {
    /// The target's concurrency, as last used.
    pub concurrency: u32,
    /// Slots taken.
    pub taken: u64,
    /// Seconds calls spent waiting for them, in all.
    pub waited_secs: f64,
}

/// This instance's way to the targets' slots.
pub(crate) struct Gates {
    bus: Bus,
    metrics: Metrics,
    consumers: Mutex<HashMap<String, PullConsumer>>,
    stats: Mutex<BTreeMap<String, SlotStats>>,
}

impl Gates {
    pub(crate) fn new(bus: Bus, metrics: Metrics) -> Self {
        Self {
            bus,
            metrics,
            consumers: Mutex::default(),
            stats: Mutex::default(),
        }
    }

    /// Waits for a slot of `target` if it carries a shared concurrency (as
    /// `targets` say now, and again after each failed try), at `priority`
    /// ([`slot_priority`]), unless `halt` comes first.
    pub(crate) async fn enter(
        &self,
        targets: &Targets,
        target: &str,
        priority: usize,
        halt: impl Future<Output = ()>,
    ) -> Entry {
        tokio::pin!(halt);
        let started = Instant::now();
        loop {
            let Some(concurrency) = targets.concurrency(target) else {
                return Entry::Free;
            };
            let taken = tokio::select! {
                biased;
                _ = &mut halt => return Entry::Halted,
                taken = self.take(target, concurrency, priority) => taken,
            };
            match taken {
                Ok(Some(msg)) => {
                    self.record(target, concurrency, started.elapsed());
                    return Entry::Held {
                        _slot: Slot::hold(msg),
                    };
                }
                Ok(None) => {}
                Err(err) => {
                    tracing::debug!(target, error = %err, "cannot take a target slot; retrying");
                    self.forget(target);
                    tokio::select! {
                        _ = &mut halt => return Entry::Halted,
                        _ = tokio::time::sleep(RETRY) => {}
                    }
                }
            }
        }
    }

    /// What this instance's calls did with each target's slots.
    pub(crate) fn stats(&self) -> BTreeMap<String, SlotStats> {
        self.stats.lock().map(|s| s.clone()).unwrap_or_default()
    }

    /// One pull request for a slot: the slot, or `None` if none came
    /// before the request expired. (A request of our own: async-nats's
    /// one-shot `batch()` cannot carry a priority.)
    async fn take(
        &self,
        target: &str,
        concurrency: u32,
        priority: usize,
    ) -> Result<Option<Message>> {
        let consumer = self.consumer(target, concurrency).await?;
        let client = &self.bus.client;
        let inbox = client.new_inbox();
        let mut replies = client
            .subscribe(inbox.clone())
            .await
            .ctx("asking for a target slot")?;
        let request = BatchConfig {
            batch: 1,
            expires: Some(REQUEST_EXPIRES),
            group: Some(SLOT_PRIORITY_GROUP.to_string()),
            priority: Some(priority),
            ..Default::default()
        };
        consumer
            .request_batch(request, inbox.into())
            .await
            .map_err(|e| {
                Error::nats(
                    "asking for a target slot",
                    ErrorKind::Transient,
                    e.to_string(),
                )
            })?;
        let deadline = tokio::time::Instant::now() + REQUEST_EXPIRES + RETRY;
        loop {
            let reply = match tokio::time::timeout_at(deadline, replies.next()).await {
                Ok(Some(reply)) => reply,
                // The server's timeout notice went missing, or we lost the
                // connection: ask again.
                Ok(None) | Err(_) => return Ok(None),
            };
            match reply.status {
                None | Some(StatusCode::OK) => {
                    return Ok(Some(Message {
                        message: reply,
                        context: self.bus.js.clone(),
                    }))
                }
                Some(StatusCode::TIMEOUT) => return Ok(None),
                Some(StatusCode::IDLE_HEARTBEAT) => {}
                Some(status) => {
                    let why = reply.description.unwrap_or_default();
                    return Err(Error::nats(
                        "asking for a target slot",
                        ErrorKind::Transient,
                        format!("{status} {why}"),
                    ));
                }
            }
        }
    }

    /// `target`'s slot consumer, made with `concurrency` slots if it is
    /// not there yet (the limits watch normally has made it).
    async fn consumer(&self, target: &str, concurrency: u32) -> Result<PullConsumer> {
        if let Some(consumer) = self
            .consumers
            .lock()
            .ok()
            .and_then(|c| c.get(target).cloned())
        {
            return Ok(consumer);
        }
        let consumer = match target_slots::open(&self.bus, target).await {
            Err(err) if err.is_not_found() => {
                target_slots::ensure(&self.bus, target, concurrency).await?;
                target_slots::open(&self.bus, target).await?
            }
            other => other?,
        };
        if let Ok(mut consumers) = self.consumers.lock() {
            consumers.insert(target.to_string(), consumer.clone());
        }
        Ok(consumer)
    }

    fn forget(&self, target: &str) {
        if let Ok(mut consumers) = self.consumers.lock() {
            consumers.remove(target);
        }
    }

    fn record(&self, target: &str, concurrency: u32, waited: Duration) {
        self.metrics.slot_wait(target, waited.as_secs_f64());
        if let Ok(mut stats) = self.stats.lock() {
            let entry = stats.entry(target.to_string()).or_default();
            entry.concurrency = concurrency;
            entry.taken += 1;
            entry.waited_secs += waited.as_secs_f64();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::slot_priority;

    #[test]
    fn a_higher_job_priority_is_a_lower_nats_priority_within_nats_range() {
        assert_eq!(slot_priority(0), 5);
        assert_eq!(slot_priority(1), 4);
        assert_eq!(slot_priority(-1), 6);
        assert_eq!(slot_priority(5), 0);
        assert_eq!(slot_priority(i32::MAX), 0);
        assert_eq!(slot_priority(-4), 9);
        assert_eq!(slot_priority(i32::MIN), 9);
        assert!(slot_priority(3) < slot_priority(2));
    }
}
