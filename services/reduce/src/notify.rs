//! Notifications of a job's end (`notify` in its spec), at least once.
//!
//! Two halves, joined by a work-queue stream (`<NS>_NOTIFY`):
//!
//! - [`publish`]: as a fold ends a job, *before* its checkpoint, the
//!   reducer publishes one [`Notification`] per `notify` entry whose `on`
//!   lists the status, each with a de-duplication id. A reducer that dies
//!   before the checkpoint folds the end again and publishes the same ids,
//!   which the stream drops; once the checkpoint is written the
//!   notifications are already stored. So none is lost and none doubles.
//! - [`deliver`]: every reduce instance pulls from the stream's durable
//!   consumer, sends each (an HTTP POST, or a NATS publish) with the key
//!   `<job>:<status>`, and acks it once sent. A failure is tried again
//!   after a backoff (a nak with a delay: nothing waits in memory, and an
//!   instance that dies mid-call leaves the message to another after its
//!   ack wait); after the last attempt it is dead-lettered with the reason.
//!   A delivery can repeat (a crash after the POST, before the ack): the
//!   key is the same, for the receiver to drop it. Nothing here changes
//!   the job.

use std::time::Duration;

use async_nats::jetstream::{self, context::PublishErrorKind, AckKind};
use futures::StreamExt;
use jetflow_protocol::{
    codec, headers,
    job::{JobState, Notify},
    messages::Notification,
    retry::retry_delay,
    Stage,
};
use jetflow_runtime::{nats::stage_consumers, process::trace, Bus, Result, ResultExt};
use tokio_util::sync::CancellationToken;

use crate::announce;

/// How long one delivery may take.
const SEND_TIMEOUT: Duration = Duration::from_secs(10);
/// The first retry's delay; it doubles (with jitter) up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_secs(1);
/// The longest wait between two attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(60);

/// Publishes the notifications of the job that `state` ends (before the
/// fold is checkpointed).
pub async fn publish(bus: &Bus, state: &JobState) -> Result<()> {
    let event = announce::final_event(state);
    for (index, target) in state.spec.notify.iter().enumerate() {
        if !target.on.contains(&state.status) {
            continue;
        }
        let notification = Notification {
            job: state.id.clone(),
            index: u32::try_from(index).unwrap_or(u32::MAX),
            target: target.clone(),
            event: event.clone(),
        };
        let mut hdrs = codec::headers_for(codec::Format::Json);
        hdrs.insert(headers::MSG_ID, notification.msg_id().as_str());
        // The receiver joins the job's trace (the fold carries it).
        trace::inject_current(&mut hdrs);
        bus.js
            .publish_with_headers(
                bus.names.notify_subject(&state.id),
                hdrs,
                codec::to_json(&notification),
            )
            .await
            .ctx("publishing a notification")?
            .await
            .ctx("storing a notification")?;
    }
    Ok(())
}

/// What to do with a notification after an attempt.
#[derive(Debug, PartialEq, Eq)]
pub enum Next {
    /// Sent: ack it.
    Done,
    /// Try again after this long.
    Retry(Duration),
    /// The last attempt failed: dead-letter it with this reason.
    GiveUp(String),
}

/// The step after attempt `attempt` (from 1) of at most `attempts` ended
/// with `sent`.
pub fn judge(sent: std::result::Result<(), String>, attempt: u32, attempts: u32) -> Next {
    match sent {
        Ok(()) => Next::Done,
        Err(why) if attempt >= attempts => {
            Next::GiveUp(format!("undeliverable after {attempt} attempts: {why}"))
        }
        Err(_) => Next::Retry(retry_delay(attempt, FIRST_BACKOFF, MAX_BACKOFF)),
    }
}

/// Delivers notifications until `shutdown`, trying each up to `attempts`
/// times.
pub async fn deliver(bus: Bus, attempts: u32, shutdown: CancellationToken) {
    let http = match reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(SEND_TIMEOUT)
        .build()
    {
        Ok(http) => http,
        Err(err) => {
            tracing::error!(error = %err, "cannot build the HTTP client; notifications wait in the stream");
            return;
        }
    };
    while !shutdown.is_cancelled() {
        if let Err(err) = pull(&bus, &http, attempts, &shutdown).await {
            tracing::warn!(error = %err, "notification consumer interrupted; restarting");
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            }
        }
    }
}

async fn pull(
    bus: &Bus,
    http: &reqwest::Client,
    attempts: u32,
    shutdown: &CancellationToken,
) -> Result<()> {
    let consumer = bus
        .durable(&stage_consumers::notifications(&bus.names))
        .await?;
    let mut messages = consumer.messages().await.ctx("pulling notifications")?;
    loop {
        let msg = tokio::select! {
            biased;
            _ = shutdown.cancelled() => return Ok(()),
            msg = messages.next() => msg,
        };
        let Some(msg) = msg else { return Ok(()) };
        let msg = msg.ctx("pulling notifications")?;
        handle(bus, http, attempts, &msg).await?;
    }
}

async fn handle(
    bus: &Bus,
    http: &reqwest::Client,
    attempts: u32,
    msg: &jetstream::Message,
) -> Result<()> {
    let attempt = msg.info().map(|i| i.delivered).unwrap_or(1).max(1);
    let attempt = u32::try_from(attempt).unwrap_or(u32::MAX);
    let notification: Notification = match codec::decode(msg.headers.as_ref(), &msg.payload) {
        Ok(n) => n,
        Err(err) => {
            let reason = format!("not a notification: {err}");
            bus.dead_letter_message(Stage::Reduce, None, &reason, msg)
                .await?;
            return ack(msg, AckKind::Ack).await;
        }
    };
    let (job, target) = (&notification.job, notification.target.target());
    let sent = trace::carrying(
        trace::extract(msg.headers.as_ref()),
        send(bus, http, &notification),
    )
    .await;
    match judge(sent, attempt, attempts) {
        Next::Done => {
            tracing::info!(job, target = %redacted(target), attempt, "job end notified");
            ack(msg, AckKind::Ack).await
        }
        Next::Retry(delay) => {
            tracing::warn!(job, target = %redacted(target), attempt, ?delay, "notification not delivered; will retry");
            ack(msg, AckKind::Nak(Some(delay))).await
        }
        Next::GiveUp(reason) => {
            tracing::warn!(job, target = %redacted(target), attempt, reason, "notification dead-lettered");
            let reason = format!("notify {}: {reason}", redacted(target));
            bus.dead_letter_message(Stage::Reduce, Some(job), &reason, msg)
                .await?;
            ack(msg, AckKind::Ack).await
        }
    }
}

async fn ack(msg: &jetstream::Message, kind: AckKind) -> Result<()> {
    msg.ack_with(kind).await.map_err(|e| {
        jetflow_runtime::Error::nats(
            "acknowledging a notification",
            jetflow_runtime::ErrorKind::Transient,
            e.to_string(),
        )
    })
}

/// One attempt: the final event to the URL or the subject, with the key
/// a receiver drops repeats by.
async fn send(
    bus: &Bus,
    http: &reqwest::Client,
    n: &Notification,
) -> std::result::Result<(), String> {
    let key = Notify::idempotency_key(&n.job, n.event.event.as_str());
    let body = codec::to_json(&n.event);
    match (&n.target.url, &n.target.subject) {
        (Some(url), _) => {
            let mut request = http.post(url);
            for (name, value) in trace::headers_of(&tracing::Span::current()) {
                request = request.header(name, value);
            }
            let response = request
                .header(headers::CONTENT_TYPE, "application/json")
                .header(headers::IDEMPOTENCY_KEY, &key)
                .header(headers::JOB, &n.job)
                .body(body)
                .send()
                .await
                // Without the URL, which may carry a token.
                .map_err(|e| e.without_url().to_string())?;
            let status = response.status();
            if status.is_success() {
                Ok(())
            } else {
                Err(format!("HTTP {status}"))
            }
        }
        (None, Some(subject)) => {
            let mut hdrs = codec::headers_for(codec::Format::Json);
            hdrs.insert(headers::IDEMPOTENCY_KEY, key.as_str());
            hdrs.insert(headers::MSG_ID, key.as_str());
            hdrs.insert(headers::JOB, n.job.as_str());
            trace::inject_current(&mut hdrs);
            publish_to(bus, subject, hdrs, body).await
        }
        (None, None) => Err("neither a url nor a subject".into()),
    }
}

/// Publishes to `subject`: stored, if a stream captures it (and the
/// stream's ack awaited); a plain publish to whoever listens if none does.
async fn publish_to(
    bus: &Bus,
    subject: &str,
    hdrs: async_nats::HeaderMap,
    body: bytes::Bytes,
) -> std::result::Result<(), String> {
    let ack = bus
        .js
        .publish_with_headers(subject.to_string(), hdrs.clone(), body.clone())
        .await
        .map_err(|e| e.to_string())?;
    match ack.await {
        Ok(_) => Ok(()),
        Err(err) if err.kind() == PublishErrorKind::StreamNotFound => {
            bus.client
                .publish_with_headers(subject.to_string(), hdrs, body)
                .await
                .map_err(|e| e.to_string())?;
            bus.client.flush().await.map_err(|e| e.to_string())
        }
        Err(err) => Err(err.to_string()),
    }
}

/// A target for a log line or a dead letter: a URL without its query (a
/// token may be there).
fn redacted(target: &str) -> &str {
    target.split(['?', '#']).next().unwrap_or(target)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failure_is_retried_with_backoff_until_the_last_attempt() {
        assert_eq!(judge(Ok(()), 1, 5), Next::Done);
        let Next::Retry(first) = judge(Err("HTTP 503".into()), 1, 5) else {
            panic!("a retry")
        };
        let Next::Retry(later) = judge(Err("HTTP 503".into()), 4, 5) else {
            panic!("a retry")
        };
        assert!(first <= MAX_BACKOFF && later <= MAX_BACKOFF);
        assert!(later >= first / 2, "{first:?} then {later:?}");
        assert_eq!(
            judge(Err("HTTP 503".into()), 5, 5),
            Next::GiveUp("undeliverable after 5 attempts: HTTP 503".into())
        );
    }

    #[test]
    fn a_url_is_logged_without_its_query() {
        assert_eq!(
            redacted("https://hooks.example.com/x?token=s3cret"),
            "https://hooks.example.com/x"
        );
        assert_eq!(redacted("ops.jobs"), "ops.jobs");
    }
}
