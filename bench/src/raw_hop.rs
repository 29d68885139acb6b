//! (a) The raw JetStream cost unit: one hop — pull a message from stream A,
//! publish it to stream B, ack it on A once B has stored it — pipelined the
//! way the services work: thousands of publishes and acks in flight, none
//! waited for alone. Every jetflow item costs a few of these, so the ratio
//! of jetflow's items/s to hops/s says how much of the raw speed it keeps.
//!
//! The payload is a real [`TaskMessage`] encoded as jetflow encodes it.

use std::{
    future::IntoFuture,
    time::{Duration, Instant},
};

use anyhow::{bail, Context as _};
use async_nats::{
    jetstream::{
        self,
        consumer::{pull, AckPolicy},
        stream::{self, RetentionPolicy, StorageType},
    },
    Subject,
};
use bytes::Bytes;
use futures::{stream::FuturesUnordered, StreamExt};
use jetflow_protocol::{
    codec,
    messages::{Item, TaskMessage},
};
use jetflow_runtime::NatsArgs;
use serde::Serialize;
use serde_json::json;
use tokio_util::sync::CancellationToken;

/// Hops (or preload publishes) in flight at once.
const WINDOW: usize = 4096;
/// Messages asked for per pull request.
const PULL_BATCH: usize = 500;
/// How long acks may take to reach the server after the last publish.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(60);

/// What one hop run measured.
#[derive(Debug, Clone, Serialize)]
pub struct HopResult {
    /// Stream replicas (1, or 3 on the cluster).
    pub replicas: usize,
    /// Messages hopped.
    pub messages: u64,
    /// Payload size, bytes.
    pub payload_bytes: usize,
    /// Pipelined publishes to A while preloading it, per second.
    pub publish_per_sec: f64,
    /// From the first pull to A being empty (every ack applied), seconds.
    pub hop_seconds: f64,
    /// Hops per second.
    pub hops_per_sec: f64,
}

/// A task of job `job` for agent number `n` of a mock with `agents` agents,
/// shaped exactly as batch publishes it (the item carries the agent's JSON
/// as the mock's page returns it), encoded as on the wire.
pub fn task_payload(job: &str, n: usize, agents: usize) -> Bytes {
    let width = agents.to_string().len().max(5);
    let id = format!("agent-{n:0width$}");
    let task = TaskMessage {
        job: job.to_string(),
        batch: (n as u64).div_ceil(500),
        item: Item {
            id: id.clone(),
            data: json!({
                "id": id, "name": format!("Agent {n}"),
                "organizationId": "org-123", "template": "my-template:v1"
            }),
            priority: None,
        },
        resume: None,
    };
    codec::to_msgpack(&task)
}

/// Runs `messages` hops over two fresh streams of `replicas` replicas on
/// the servers at `urls`, then deletes the streams.
pub async fn run(
    urls: &[String],
    replicas: usize,
    messages: u64,
    payload: Bytes,
) -> anyhow::Result<HopResult> {
    let nats = NatsArgs::new(urls.to_vec(), "bench");
    let client = jetflow_runtime::nats::connect::connect(
        &nats,
        "jetflow-bench-hop",
        &CancellationToken::new(),
    )
    .await?;
    // The services' JetStream settings (see `Bus::connect`).
    let js = jetstream::ContextBuilder::new()
        .timeout(Duration::from_secs(10))
        .max_ack_inflight(20_000)
        .backpressure_on_inflight(true)
        .build(client.clone());
    let id = &jetflow_runtime::instance_id()[..8];
    let (a, b) = (format!("BENCH_HOP_{id}_A"), format!("BENCH_HOP_{id}_B"));
    let subject_a = Subject::from(format!("bench.hop.{id}.a"));
    let subject_b = Subject::from(format!("bench.hop.{id}.b"));
    // A is a work queue like the task stream; B keeps by limits like a ledger.
    create_stream(&js, &a, &subject_a, RetentionPolicy::WorkQueue, replicas).await?;
    create_stream(&js, &b, &subject_b, RetentionPolicy::Limits, replicas).await?;

    let result = measure(&js, &a, &b, &subject_a, &subject_b, messages, &payload).await;
    for name in [&a, &b] {
        if let Err(err) = js.delete_stream(name).await {
            tracing::warn!(stream = %name, error = %err, "could not delete a hop stream");
        }
    }
    let (publish_secs, hop_secs) = result?;
    Ok(HopResult {
        replicas,
        messages,
        payload_bytes: payload.len(),
        publish_per_sec: messages as f64 / publish_secs,
        hop_seconds: hop_secs,
        hops_per_sec: messages as f64 / hop_secs,
    })
}

async fn create_stream(
    js: &jetstream::Context,
    name: &str,
    subject: &Subject,
    retention: RetentionPolicy,
    replicas: usize,
) -> anyhow::Result<()> {
    js.create_stream(stream::Config {
        name: name.to_string(),
        subjects: vec![subject.to_string()],
        retention,
        storage: StorageType::File,
        num_replicas: replicas,
        ..Default::default()
    })
    .await
    .with_context(|| format!("creating stream {name}"))?;
    Ok(())
}

/// Preloads A, then hops everything to B; returns both durations in seconds.
async fn measure(
    js: &jetstream::Context,
    a: &str,
    b: &str,
    subject_a: &Subject,
    subject_b: &Subject,
    messages: u64,
    payload: &Bytes,
) -> anyhow::Result<(f64, f64)> {
    let started = Instant::now();
    preload(js, subject_a, messages, payload).await?;
    let publish_secs = started.elapsed().as_secs_f64();

    let consumer = js
        .get_stream(a)
        .await
        .context("opening stream A")?
        .create_consumer(pull::Config {
            durable_name: Some("hop".into()),
            ack_policy: AckPolicy::Explicit,
            max_ack_pending: (WINDOW * 2) as i64,
            ..Default::default()
        })
        .await
        .context("creating the hop consumer")?;
    let started = Instant::now();
    hop(js, &consumer, subject_b, messages).await?;
    wait_until_empty(js, a).await?;
    let hop_secs = started.elapsed().as_secs_f64();

    let stored = js
        .get_stream(b)
        .await
        .context("opening stream B")?
        .cached_info()
        .state
        .messages;
    if stored != messages {
        bail!("stream B holds {stored} messages after {messages} hops");
    }
    Ok((publish_secs, hop_secs))
}

/// Publishes `messages` copies of `payload`, at most [`WINDOW`] unacknowledged.
async fn preload(
    js: &jetstream::Context,
    subject: &Subject,
    messages: u64,
    payload: &Bytes,
) -> anyhow::Result<()> {
    let mut acks = FuturesUnordered::new();
    for _ in 0..messages {
        let ack = js
            .publish(subject.clone(), payload.clone())
            .await
            .context("publishing to A")?;
        acks.push(ack.into_future());
        while acks.len() >= WINDOW {
            if let Some(ack) = acks.next().await {
                ack.context("storing in A")?;
            }
        }
    }
    while let Some(ack) = acks.next().await {
        ack.context("storing in A")?;
    }
    Ok(())
}

/// The hops themselves: each message's ack on A waits for its copy's
/// acknowledgement from B (as migrate acks a task only once its result is
/// stored), but the loop never waits for one hop before starting the next.
async fn hop(
    js: &jetstream::Context,
    consumer: &jetstream::consumer::PullConsumer,
    subject_b: &Subject,
    messages: u64,
) -> anyhow::Result<()> {
    let mut pulled = consumer
        .stream()
        .max_messages_per_batch(PULL_BATCH)
        .messages()
        .await
        .context("pulling from A")?;
    let mut in_flight = FuturesUnordered::new();
    let (mut received, mut done) = (0u64, 0u64);
    while done < messages {
        tokio::select! {
            Some(finished) = in_flight.next(), if !in_flight.is_empty() => {
                finished?;
                done += 1;
            }
            next = pulled.next(), if received < messages && in_flight.len() < WINDOW => {
                let msg = match next {
                    Some(Ok(msg)) => msg,
                    Some(Err(err)) => {
                        tracing::warn!(error = %err, "error pulling from A");
                        continue;
                    }
                    None => bail!("the pull from A ended after {received} messages"),
                };
                let stored = js
                    .publish(subject_b.clone(), msg.payload.clone())
                    .await
                    .context("publishing to B")?;
                in_flight.push(async move {
                    stored.await.context("storing in B")?;
                    msg.ack().await.map_err(|e| anyhow::anyhow!("acking on A: {e}"))
                });
                received += 1;
            }
            else => bail!("hop loop stalled at {done} of {messages}"),
        }
    }
    Ok(())
}

/// Acks are fire-and-forget: A (a work queue) is empty once the server has
/// applied every one of them.
async fn wait_until_empty(js: &jetstream::Context, a: &str) -> anyhow::Result<()> {
    let deadline = Instant::now() + DRAIN_TIMEOUT;
    loop {
        let left = js
            .get_stream(a)
            .await
            .context("opening stream A")?
            .cached_info()
            .state
            .messages;
        if left == 0 {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("{left} messages still in A {DRAIN_TIMEOUT:?} after the last hop");
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_payload_is_a_decodable_task_of_realistic_size() {
        let payload = task_payload("bench-b-0123abcd", 100_000, 100_000);
        let task: TaskMessage = codec::decode(None, &payload).expect("a task");
        assert_eq!(task.item.id, "agent-100000");
        assert_eq!(task.batch, 200);
        assert!((100..400).contains(&payload.len()), "{}", payload.len());
    }
}
