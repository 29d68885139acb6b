//! Submitting jobs and reading back what jetflow recorded — the way an
//! operator with the `nats` CLI would: plain publishes, JSON from KV,
//! messages from streams.

use std::{collections::HashMap, time::Duration};

use anyhow::{bail, Context as _};
use async_nats::{
    jetstream::consumer::{pull::OrderedConfig, DeliverPolicy},
    HeaderMap,
};
use futures::StreamExt;
use jetflow_devkit::MockAgents;
use jetflow_protocol::{
    codec,
    job::{ItemOutcome, JobState},
    messages::JobEvent,
    names::item_id_from_key,
};
use jetflow_runtime::Bus;
use serde_json::{json, Value};

/// How long a test waits for a job before calling it stuck. Generous: the
/// machines are shared; tests assert behaviour, not speed.
pub const JOB_DEADLINE: Duration = Duration::from_secs(180);

/// The README's example job against `mock`, tuned for tests (short retry
/// delays), with `batch` settings merged in.
pub fn agents_job(id: &str, mock: &MockAgents, batch: Value) -> Value {
    let mut settings = json!({
        "concurrency": 20, "max_retries": 5, "retry_backoff": "20ms", "max_backoff": "200ms"
    });
    if let (Value::Object(base), Value::Object(extra)) = (&mut settings, batch) {
        base.extend(extra);
    }
    let mut job = mock.migration_job(id, settings);
    job["labels"] = json!({"workflow_id": "wf-test"});
    job
}

/// Publishes `body` to the submit subject as `nats pub` would: core NATS, no headers.
pub async fn submit_plain(bus: &Bus, body: &[u8]) -> anyhow::Result<()> {
    bus.client
        .publish(bus.names.submit_subject(), body.to_vec().into())
        .await
        .context("publishing the job")?;
    bus.client.flush().await.context("flushing")?;
    Ok(())
}

/// The job's state as `nats kv get <ns>_jobs <job>` shows it: raw JSON.
pub async fn state_json(bus: &Bus, job: &str) -> anyhow::Result<Option<Value>> {
    let raw = bus.kv.jobs.get(job).await.context("kv get")?;
    raw.map(|bytes| serde_json::from_slice(&bytes).context("job state is not JSON"))
        .transpose()
}

/// Waits until the job's state exists and ends; returns it.
pub async fn wait_for_end(bus: &Bus, job: &str) -> anyhow::Result<JobState> {
    wait_for_state(bus, job, |s| s.status.is_terminal()).await
}

/// Waits until the job ends, for up to `within`: for the few jobs that
/// are large on purpose, whose debug-build run on a busy machine can take
/// longer than [`JOB_DEADLINE`].
pub async fn wait_for_end_within(
    bus: &Bus,
    job: &str,
    within: Duration,
) -> anyhow::Result<JobState> {
    poll_state(bus, job, within, |s| s.status.is_terminal()).await
}

/// Polls the job's state until `done` holds or [`JOB_DEADLINE`] passes.
pub async fn wait_for_state(
    bus: &Bus,
    job: &str,
    done: impl Fn(&JobState) -> bool,
) -> anyhow::Result<JobState> {
    poll_state(bus, job, JOB_DEADLINE, done).await
}

async fn poll_state(
    bus: &Bus,
    job: &str,
    within: Duration,
    done: impl Fn(&JobState) -> bool,
) -> anyhow::Result<JobState> {
    let deadline = tokio::time::Instant::now() + within;
    let mut last = None;
    let mut last_error = None;
    while tokio::time::Instant::now() < deadline {
        // A read can fail for a moment (a cluster electing a new leader for
        // the bucket answers "no responders"): keep polling, as the services do.
        match state_json(bus, job).await {
            Ok(Some(value)) => {
                let state: JobState = serde_json::from_value(value)?;
                if done(&state) {
                    return Ok(state);
                }
                last = Some(state);
            }
            Ok(None) => {}
            Err(err) => last_error = Some(err),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    bail!(
        "job {job} did not reach the expected state within {within:?}; last error: {last_error:?}; last: {last:#?}"
    )
}

/// Every item outcome record of `job`, by item id. Transient errors (a
/// cluster electing a leader) are retried for up to a minute.
pub async fn item_records(bus: &Bus, job: &str) -> anyhow::Result<HashMap<String, ItemOutcome>> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        match read_item_records(bus, job).await {
            Ok(records) => return Ok(records),
            Err(err) if tokio::time::Instant::now() < deadline => {
                tracing::debug!(error = %err, "reading item records; retrying");
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            Err(err) => return Err(err),
        }
    }
}

/// Reads the items bucket's stream directly, with a pull consumer (async-nats'
/// `keys()` uses a push consumer, which can miss messages sent before it
/// subscribes), and stops once it has one record per key the stream lists.
async fn read_item_records(bus: &Bus, job: &str) -> anyhow::Result<HashMap<String, ItemOutcome>> {
    let bucket = bus.names.items_bucket();
    let prefix = format!("$KV.{bucket}.{job}.");
    let filter = format!("{prefix}>");
    let stream = bus
        .js
        .get_stream(format!("KV_{bucket}"))
        .await
        .context("opening the items stream")?;
    let mut subjects = stream
        .info_with_subjects(&filter)
        .await
        .context("listing item keys")?;
    let mut expected = 0;
    while let Some(subject) = subjects.next().await {
        subject.context("listing item keys")?;
        expected += 1;
    }
    let consumer = stream
        .create_consumer(OrderedConfig {
            filter_subject: filter,
            deliver_policy: DeliverPolicy::LastPerSubject,
            ..Default::default()
        })
        .await
        .context("reading item records")?;
    let mut messages = consumer.messages().await.context("reading item records")?;
    let mut records = HashMap::new();
    while records.len() < expected {
        let msg = tokio::time::timeout(Duration::from_secs(10), messages.next())
            .await
            .context("reading item records: timed out")?
            .context("reading item records: ended")??;
        let item_key = msg
            .subject
            .as_str()
            .strip_prefix(&prefix)
            .context("foreign subject")?;
        let outcome: ItemOutcome =
            serde_json::from_slice(&msg.payload).context("outcome is not JSON")?;
        let id = item_id_from_key(item_key).context("undecodable item key")?;
        if records.insert(id.clone(), outcome).is_some() {
            bail!("two records for item {id}");
        }
    }
    Ok(records)
}

/// Every message of a stream under `filter`, as `nats stream view` shows them.
pub async fn stream_messages(
    bus: &Bus,
    stream: &str,
    filter: &str,
) -> anyhow::Result<Vec<(String, Option<HeaderMap>, bytes::Bytes)>> {
    let stream = bus.js.get_stream(stream).await.context("opening stream")?;
    let consumer = stream
        .create_consumer(OrderedConfig {
            filter_subject: filter.to_string(),
            deliver_policy: DeliverPolicy::All,
            ..Default::default()
        })
        .await
        .context("creating a viewer")?;
    let mut messages = consumer.messages().await?;
    let mut out = Vec::new();
    while let Ok(Some(msg)) =
        tokio::time::timeout(Duration::from_millis(500), messages.next()).await
    {
        let msg = msg?;
        let pending = msg.info().map(|i| i.pending).unwrap_or(0);
        out.push((
            msg.subject.to_string(),
            msg.headers.clone(),
            msg.payload.clone(),
        ));
        if pending == 0 {
            break;
        }
    }
    Ok(out)
}

/// Waits for the job's `kind` event (stored in the events stream).
pub async fn wait_for_event(bus: &Bus, job: &str, kind: &str) -> anyhow::Result<JobEvent> {
    let subject = bus.names.event_subject(job, kind);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while tokio::time::Instant::now() < deadline {
        let found = stream_messages(bus, &bus.names.events_stream(), &subject).await?;
        if let Some((_, headers, payload)) = found.into_iter().next() {
            return Ok(codec::decode(headers.as_ref(), &payload)?);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    bail!("no {kind} event for job {job}")
}

/// A header's value, if present.
pub fn header(headers: &Option<HeaderMap>, name: &str) -> Option<String> {
    headers
        .as_ref()
        .and_then(|h| h.get(name))
        .map(|v| v.as_str().to_string())
}
