//! A job's task queue: its own durable consumer on the tasks stream, whose
//! `max_ack_pending` is the job's concurrency, enforced by the server across
//! every migrate instance. This module owns the consumer's whole life:
//!
//! - fetch creates it when it accepts a job ([`ensure`]);
//! - the reducer reconfigures it when live settings change ([`ensure`]),
//!   pauses it when the job stops ([`pause`]) or is paused ([`pause_until`],
//!   [`resume`]), reads how many of its tasks
//!   are in flight while it drains ([`in_flight`]) and deletes it last when
//!   the job has ended ([`delete`]);
//! - migrate pulls from it ([`open`]);
//! - `jetflow dlq replay` waits for a finished job's consumer to be gone
//!   ([`exists`]) before it re-creates it to publish tasks again.

use std::time::Duration;

use async_nats::jetstream::consumer::{pull, AckPolicy, PullConsumer};
use chrono::{DateTime, Utc};
use jetflow_protocol::{
    job::{HandlerSpec, JobSpec},
    Names,
};

use crate::{error::ResultExt, Bus, Result};

/// The longest a task of a built-in handler stays with an instance that
/// stopped answering before another instance gets it.
const MAX_BUILTIN_ACK_WAIT: Duration = Duration::from_secs(30);

/// A handler with no timeout of its own is given this one.
const DEFAULT_HANDLER_TIMEOUT: Duration = Duration::from_secs(30);

/// How long a task may go unacknowledged before the server hands it to
/// another migrate instance.
///
/// Built-in handlers send progress acks during long calls, so this only
/// bounds how long a crashed worker's item waits: the handler's timeout plus
/// a margin, at most 30 s. External workers ack tasks themselves and get
/// exactly the `ack_wait` the job asks for.
pub fn ack_wait(spec: &JobSpec) -> Duration {
    match &spec.handler {
        HandlerSpec::External(external) => external.ack_wait.get(),
        _ => {
            let timeout = spec
                .handler_timeout()
                .map(|t| t.get())
                .unwrap_or(DEFAULT_HANDLER_TIMEOUT);
            MAX_BUILTIN_ACK_WAIT.min(timeout + Duration::from_secs(5))
        }
    }
}

/// The consumer's configuration for `job` as `spec` and its live settings
/// say.
pub fn config(names: &Names, job: &str, spec: &JobSpec) -> pull::Config {
    pull::Config {
        durable_name: Some(names.task_consumer(job)),
        filter_subject: names.task_subject(job),
        ack_policy: AckPolicy::Explicit,
        ack_wait: ack_wait(spec),
        max_ack_pending: i64::from(spec.settings().concurrency),
        ..Default::default()
    }
}

/// Creates the job's task consumer, or updates it to `spec`'s settings.
pub async fn ensure(bus: &Bus, job: &str, spec: &JobSpec) -> Result<()> {
    bus.js
        .create_consumer_on_stream(config(&bus.names, job, spec), bus.names.tasks_stream())
        .await
        .ctx(format!(
            "creating task consumer {}",
            bus.names.task_consumer(job)
        ))?;
    Ok(())
}

/// The job's task consumer, to pull from.
pub async fn open(bus: &Bus, job: &str) -> Result<PullConsumer> {
    bus.js
        .get_consumer_from_stream(bus.names.task_consumer(job), bus.names.tasks_stream())
        .await
        .ctx("opening the job's task consumer")
}

/// Whether the job's task consumer exists.
pub async fn exists(bus: &Bus, job: &str) -> Result<bool> {
    match open(bus, job).await {
        Ok(_) => Ok(true),
        Err(err) if err.is_not_found() => Ok(false),
        Err(err) => Err(err),
    }
}

/// Pauses the job's task consumer for good: the server hands out none of
/// its tasks again. A consumer already gone is as good as paused.
pub async fn pause(bus: &Bus, job: &str) -> Result<()> {
    pause_until(bus, job, None).await
}

/// Pauses the job's task consumer until `until` (for good when `None`):
/// the server hands out none of its tasks before then, and resumes by
/// itself after. A consumer already gone is as good as paused.
pub async fn pause_until(bus: &Bus, job: &str, until: Option<DateTime<Utc>>) -> Result<()> {
    let forever = time::OffsetDateTime::now_utc() + time::Duration::days(3650);
    let until = until
        .and_then(|t| {
            time::OffsetDateTime::from_unix_timestamp_nanos(t.timestamp_nanos_opt()?.into()).ok()
        })
        .unwrap_or(forever);
    let stream = tasks_stream(bus).await?;
    match stream
        .pause_consumer(&bus.names.task_consumer(job), until)
        .await
        .ctx("pausing the job's tasks")
    {
        Err(err) if err.is_not_found() => Ok(()),
        other => other.map(|_| ()),
    }
}

/// Lets the server hand out the job's tasks again after [`pause_until`].
pub async fn resume(bus: &Bus, job: &str) -> Result<()> {
    let stream = tasks_stream(bus).await?;
    match stream
        .resume_consumer(&bus.names.task_consumer(job))
        .await
        .ctx("resuming the job's tasks")
    {
        Err(err) if err.is_not_found() => Ok(()),
        other => other.map(|_| ()),
    }
}

async fn tasks_stream(bus: &Bus) -> Result<async_nats::jetstream::stream::Stream> {
    bus.js
        .get_stream(bus.names.tasks_stream())
        .await
        .ctx("opening tasks stream")
}

/// Tasks of the job handed out and not yet acknowledged (none once its
/// consumer is gone).
pub async fn in_flight(bus: &Bus, job: &str) -> Result<usize> {
    match open(bus, job).await {
        Ok(consumer) => Ok(consumer.cached_info().num_ack_pending),
        Err(err) if err.is_not_found() => Ok(0),
        Err(err) => Err(err.with_context("reading the job's tasks in flight")),
    }
}

/// Deletes the job's task consumer; `false` when it was already gone.
pub async fn delete(bus: &Bus, job: &str) -> Result<bool> {
    match bus
        .js
        .delete_consumer_from_stream(bus.names.task_consumer(job), bus.names.tasks_stream())
        .await
        .ctx("deleting the job's task consumer")
    {
        Ok(_) => Ok(true),
        Err(err) if err.is_not_found() => Ok(false),
        Err(err) => Err(err),
    }
}

#[cfg(test)]
mod tests {
    use jetflow_protocol::job::parse_submission;

    use super::*;

    fn spec(handler: &str) -> JobSpec {
        let json =
            format!(r#"{{"source": {{"type": "ids", "ids": ["a"]}}, "handler": {handler}}}"#);
        parse_submission(None, json.as_bytes(), || "j1".to_string())
            .unwrap_or_else(|invalid| panic!("test spec is valid: {invalid:?}"))
    }

    #[test]
    fn built_in_handlers_get_their_timeout_plus_a_margin_at_most_30_s() {
        let http = r#"{"type": "http", "url": "http://x/$id""#;
        let quick = spec(&format!(r#"{http}, "timeout": "2s"}}"#));
        assert_eq!(ack_wait(&quick), Duration::from_secs(7));
        let slow = spec(&format!(r#"{http}, "timeout": "5m"}}"#));
        assert_eq!(ack_wait(&slow), Duration::from_secs(30));
        let default = spec(&format!("{http}}}"));
        assert_eq!(ack_wait(&default), Duration::from_secs(30));
    }

    #[test]
    fn external_workers_get_the_ack_wait_they_ask_for() {
        let external = spec(r#"{"type": "external", "ack_wait": "2m"}"#);
        assert_eq!(ack_wait(&external), Duration::from_secs(120));
    }

    #[test]
    fn the_config_bounds_concurrency_by_max_ack_pending() {
        let names = Names::default();
        let spec = spec(r#"{"type": "http", "url": "http://x/$id"}"#);
        let config = config(&names, "j1", &spec);
        assert_eq!(config.durable_name.as_deref(), Some("task_j1"));
        assert_eq!(config.filter_subject, "jetflow.task.j1");
        assert_eq!(
            config.max_ack_pending,
            i64::from(spec.settings().concurrency)
        );
        assert_eq!(config.ack_policy, AckPolicy::Explicit);
    }
}
