//! Durable work-queue consumers: pull, handle, acknowledge each message
//! exactly once.

use std::{future::Future, time::Duration};

use async_nats::jetstream::{AckKind, Message};
use futures::StreamExt;
use tokio_util::sync::CancellationToken;

use crate::{
    error::ResultExt, nats::stage_consumers::StageConsumer, Bus, Error, ErrorKind, Result,
};

/// Acks `msg` when `result` is `Ok`. An `Err` is our own plumbing failing
/// — the message itself was handled or dead-lettered inside — so it is
/// nak'ed to be tried again in a second. A transient failure (NATS away, a
/// leader election) heals by itself; any other will fail again until a
/// person fixes its cause (a limit, a permission), so it is logged as an
/// error, and the message stays in the stream meanwhile.
pub async fn settle(msg: &Message, result: Result<()>, what: &str) {
    let ack = match result {
        Ok(()) => AckKind::Ack,
        Err(err) => {
            if err.is_transient() || err.kind() == ErrorKind::Shutdown {
                tracing::warn!(error = %err, "{what} not handled; will retry");
            } else {
                tracing::error!(error = %err, kind = %err.kind(), "{what} not handled; will retry");
            }
            AckKind::Nak(Some(Duration::from_secs(1)))
        }
    };
    if let Err(err) = msg.ack_with(ack).await {
        tracing::warn!(error = %err, "cannot acknowledge {what}");
    }
}

/// Pulls from the stage's durable `consumer` until `shutdown`,
/// one message at a time, settling each with `handle`'s result. A pull that
/// is interrupted (consumer deleted, stream gone) starts again after a second.
///
/// For low-volume streams (submissions, cancels): `handle` gets its own
/// copies of the bus and the message.
pub async fn one_at_a_time<F, Fut>(
    bus: &Bus,
    consumer: StageConsumer,
    what: &str,
    shutdown: &CancellationToken,
    handle: F,
) where
    F: Fn(Bus, Message) -> Fut,
    Fut: Future<Output = Result<()>> + Send,
{
    while !shutdown.is_cancelled() {
        if let Err(err) = pull(bus, &consumer, what, shutdown, &handle).await {
            tracing::warn!(error = %err, "{what} consumer interrupted; restarting");
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            }
        }
    }
}

async fn pull<F, Fut>(
    bus: &Bus,
    consumer: &StageConsumer,
    what: &str,
    shutdown: &CancellationToken,
    handle: &F,
) -> Result<()>
where
    F: Fn(Bus, Message) -> Fut,
    Fut: Future<Output = Result<()>> + Send,
{
    let consumer = bus.durable(consumer).await?;
    let mut messages = consumer.messages().await.ctx(format!("pulling {what}"))?;
    loop {
        let next = tokio::select! {
            biased;
            _ = shutdown.cancelled() => return Ok(()),
            next = messages.next() => next,
        };
        match next {
            Some(Ok(msg)) => settle(&msg, handle(bus.clone(), msg.clone()).await, what).await,
            Some(Err(err)) => tracing::warn!(error = %err, "error pulling {what}"),
            None => {
                return Err(Error::nats(
                    format!("pulling {what}"),
                    ErrorKind::Transient,
                    "stream ended",
                ))
            }
        }
    }
}
