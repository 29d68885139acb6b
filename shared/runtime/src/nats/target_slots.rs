//! A target's shared concurrency (`jetflow limits set T concurrency=N`):
//! its slots are messages on `<ns>.slot.<target key>` in the slots stream,
//! handed out by the target's own durable consumer, whose
//! `max_ack_pending` is N — so the server, not any one instance, says how
//! many calls are in flight to the target, across every job and instance.
//!
//! - A call holds one slot message unacknowledged (with progress acks while
//!   it runs) and naks it when it ends, which hands it on at once.
//! - A call waiting for a slot is a pull request of one message, with its
//!   job's priority: the consumer's `prioritized` policy serves the most
//!   urgent waiting request first, and requests of equal priority in turn
//!   (nats-server keeps each priority's requests in arrival order).
//! - A slot held by an instance that died comes back after [`LEASE`].
//!
//! A slot is never acked: an acked slot would be gone from the consumer.
//! There may be more messages than slots (two instances topping up at
//! once); `max_ack_pending` still holds the calls to N.

use std::time::Duration;

use async_nats::jetstream::consumer::{pull, AckPolicy, PriorityPolicy, PullConsumer};
use futures::TryStreamExt;
use jetflow_protocol::names::{Names, SLOT_PRIORITY_GROUP};

use crate::{error::ResultExt, Bus, Result};

/// How long a slot stays with a holder that stopped answering (its holder
/// sends progress acks every third of this while it calls).
pub const LEASE: Duration = Duration::from_secs(10);

/// Pull requests the consumer keeps waiting at once: one per call waiting
/// for a slot, so at least the concurrency of every job on the target.
const MAX_WAITING: i64 = 16_384;

/// The slot consumer of `target` for `concurrency` calls at once.
pub fn config(names: &Names, target: &str, concurrency: u32) -> pull::Config {
    pull::Config {
        durable_name: Some(names.slot_consumer(target)),
        filter_subject: names.slot_subject(target),
        ack_policy: AckPolicy::Explicit,
        ack_wait: LEASE,
        max_ack_pending: i64::from(concurrency),
        max_deliver: -1,
        max_waiting: MAX_WAITING,
        priority_policy: PriorityPolicy::Prioritized,
        priority_groups: vec![SLOT_PRIORITY_GROUP.to_string()],
        ..Default::default()
    }
}

/// Makes `target` have `concurrency` slots: creates or resizes its slot
/// consumer and tops its slot messages up. Idempotent; every migrate
/// instance runs it when it sees the target's limits change.
pub async fn ensure(bus: &Bus, target: &str, concurrency: u32) -> Result<()> {
    let names = &bus.names;
    bus.js
        .create_consumer_on_stream(config(names, target, concurrency), names.slots_stream())
        .await
        .ctx(format!("creating the slot consumer of {target}"))?;
    let subject = names.slot_subject(target);
    let have = messages_on(bus, &subject).await?;
    for _ in have..u64::from(concurrency) {
        bus.js
            .publish(subject.clone(), bytes::Bytes::new())
            .await
            .ctx("adding a target slot")?
            .await
            .ctx("storing a target slot")?;
    }
    Ok(())
}

/// Takes `target`'s slots away: its calls are no longer counted. Calls
/// holding a slot finish; their naks find nothing.
pub async fn remove(bus: &Bus, target: &str) -> Result<()> {
    let names = &bus.names;
    let stream = bus
        .js
        .get_stream(names.slots_stream())
        .await
        .ctx("opening the slots stream")?;
    match stream
        .delete_consumer(&names.slot_consumer(target))
        .await
        .ctx(format!("deleting the slot consumer of {target}"))
    {
        Err(err) if err.is_not_found() => {}
        other => {
            other?;
        }
    }
    stream
        .purge()
        .filter(names.slot_subject(target))
        .await
        .ctx(format!("removing the slots of {target}"))?;
    Ok(())
}

/// `target`'s slot consumer, to take slots from.
pub async fn open(bus: &Bus, target: &str) -> Result<PullConsumer> {
    bus.js
        .get_consumer_from_stream(bus.names.slot_consumer(target), bus.names.slots_stream())
        .await
        .ctx(format!("opening the slot consumer of {target}"))
}

/// How a target's slots are used right now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Usage {
    /// Slots held by calls in flight.
    pub in_use: u64,
    /// Calls waiting for a slot.
    pub waiting: u64,
}

/// How `target`'s slots are used, or `None` if it has none.
pub async fn usage(bus: &Bus, target: &str) -> Result<Option<Usage>> {
    let mut consumer = match open(bus, target).await {
        Ok(consumer) => consumer,
        Err(err) if err.is_not_found() => return Ok(None),
        Err(err) => return Err(err),
    };
    let info = consumer.info().await.ctx("reading a slot consumer")?;
    Ok(Some(Usage {
        in_use: info.num_ack_pending as u64,
        waiting: info.num_waiting as u64,
    }))
}

/// Messages on `subject` in the slots stream.
async fn messages_on(bus: &Bus, subject: &str) -> Result<u64> {
    let stream = bus
        .js
        .get_stream(bus.names.slots_stream())
        .await
        .ctx("opening the slots stream")?;
    let mut subjects = stream
        .info_with_subjects(subject)
        .await
        .ctx("counting target slots")?;
    let mut total = 0;
    while let Some((_, count)) = subjects.try_next().await.ctx("counting target slots")? {
        total += count as u64;
    }
    Ok(total)
}
