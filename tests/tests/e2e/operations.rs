//! docs/operations.md, performed: every `nats` command in the guide's `sh`
//! blocks is run — in order, against a live job — with the NATS protocol
//! exactly as the `nats` CLI does it (plain publishes without headers, KV
//! gets of JSON values, stream views, `$SRV` requests gathering every
//! reply), and its answer checked. A command this test does not know fails
//! it, so the guide cannot drift from what works.

use std::time::Duration;

use anyhow::{bail, ensure, Context as _};
use async_nats::jetstream::consumer::PullConsumer;
use futures::StreamExt;
use jetflow_devkit::{MockAgents, MockAgentsConfig};
use jetflow_e2e::{jobs, TestEnv};
use jetflow_runtime::{nats::scan::KvScan, nats::watch::KvWatch};
use serde_json::Value;

const JOB: &str = "migrate-v2-0001";
const WAIT: Duration = Duration::from_secs(60);

/// The `nats …` lines of the guide's `sh` code blocks, in order.
fn documented_commands() -> anyhow::Result<Vec<String>> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/operations.md");
    let text = std::fs::read_to_string(path).context("reading docs/operations.md")?;
    let mut in_sh = false;
    let mut commands = Vec::new();
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with("```") {
            in_sh = line == "```sh";
            continue;
        }
        if in_sh && line.starts_with("nats ") {
            commands.push(line.to_string());
        }
    }
    Ok(commands)
}

/// Splits a command line as a POSIX shell would, for the quoting the guide
/// uses; `"$(cat job.json)"` becomes the job file's text.
fn shell_words(line: &str, job_json: &str) -> anyhow::Result<Vec<String>> {
    let line = line.replace("\"$(cat job.json)\"", &format!("'{job_json}'"));
    let mut words = Vec::new();
    let mut word: Option<String> = None;
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            '\'' => {
                let w = word.get_or_insert_with(String::new);
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(c) => w.push(c),
                        None => bail!("unclosed quote in {line}"),
                    }
                }
            }
            c if c.is_whitespace() => words.extend(word.take()),
            c => word.get_or_insert_with(String::new).push(c),
        }
    }
    words.extend(word);
    Ok(words)
}

struct Operator<'a> {
    env: &'a TestEnv,
    /// Live `nats sub` subscriptions and what they received.
    subscriptions: Vec<(String, async_nats::Subscriber)>,
}

impl Operator<'_> {
    /// The guide's names in this test's namespace.
    fn localize(&self, word: &str) -> String {
        let names = &self.env.bus.names;
        let ns = names.namespace();
        let stream_prefix = names.jobs_stream().trim_end_matches("JOBS").to_string();
        word.replace("JETFLOW_", &stream_prefix)
            .replace("jetflow_", &format!("{ns}_"))
            .replace("jetflow.", &format!("{ns}."))
    }

    async fn run(&mut self, line: &str, job_json: &str) -> anyhow::Result<()> {
        let words: Vec<String> = shell_words(line, job_json)?
            .iter()
            .map(|w| self.localize(w))
            .collect();
        let args: Vec<&str> = words.iter().skip(1).map(String::as_str).collect();
        match args.as_slice() {
            ["pub", subject, body] => self.publish(subject, body).await,
            ["req", subject, ""] if subject.starts_with("$SRV.") => {
                let replies = self.gather(subject).await?;
                ensure!(
                    replies.iter().any(|r| r["name"].as_str().is_some_and(|n| n.starts_with("jetflow-"))),
                    "no jetflow service answered {subject}: {replies:?}"
                );
                Ok(())
            }
            ["req", subject, ""] => {
                let reply = self.env.bus.client.request(subject.to_string(), "".into()).await?;
                let report: Value = serde_json::from_slice(&reply.payload)?;
                ensure!(report["stage"].is_string(), "not a status report: {report}");
                Ok(())
            }
            ["micro", "ls"] => {
                // The services were started a moment ago: list until all are up.
                let deadline = tokio::time::Instant::now() + WAIT;
                loop {
                    let replies = self.gather("$SRV.PING").await?;
                    let all_up = ["fetch", "batch", "migrate", "reduce"].iter().all(|stage| {
                        replies.iter().any(|r| r["name"] == format!("jetflow-{stage}").as_str())
                    });
                    if all_up {
                        return Ok(());
                    }
                    ensure!(
                        tokio::time::Instant::now() < deadline,
                        "micro ls never listed all four stages: {replies:?}"
                    );
                }
            }
            ["micro", "info", name] => {
                let replies = self.gather(&format!("$SRV.INFO.{name}")).await?;
                ensure!(
                    replies.iter().any(|r| r["endpoints"][0]["name"] == "status"
                        && r["metadata"]["namespace"] == self.env.bus.names.namespace()),
                    "{replies:?}"
                );
                Ok(())
            }
            ["micro", "stats", name] => {
                let replies = self.gather(&format!("$SRV.STATS.{name}")).await?;
                let stage = name.trim_start_matches("jetflow-");
                ensure!(
                    replies.iter().any(|r| r["endpoints"][0]["data"]["stage"] == stage),
                    "{replies:?}"
                );
                Ok(())
            }
            ["kv", "get", bucket, key] if bucket.ends_with("_limits") => {
                let value = self.kv_get(bucket, key).await?;
                let limits: jetflow_protocol::target::TargetLimits =
                    serde_json::from_value(value)?;
                ensure!(jetflow_protocol::target::key(&limits.target) == *key, "{limits:?}");
                ensure!(
                    limits.rate.is_some() || limits.concurrency.is_some(),
                    "{limits:?}"
                );
                Ok(())
            }
            ["kv", "get", bucket, key] => {
                let value = self.kv_get(bucket, key).await?;
                let field = if bucket.ends_with("_jobs") { "id" } else { "job" };
                ensure!(value[field] == JOB, "{bucket} {key}: {value}");
                Ok(())
            }
            ["kv", "put", bucket, key, value] => {
                let store = self.env.bus.js.get_key_value(*bucket).await?;
                store.put(*key, value.to_string().into()).await?;
                Ok(())
            }
            ["kv", "watch", bucket, key] => {
                let store = self.env.bus.js.get_key_value(*bucket).await?;
                let mut watch = KvWatch::new(&self.env.bus.js, &store, key);
                let change = tokio::time::timeout(Duration::from_secs(10), watch.next()).await??;
                let value: Value = serde_json::from_slice(&change.value.context("deleted")?)?;
                ensure!(value["id"] == JOB, "{value}");
                Ok(())
            }
            ["kv", "ls", bucket] => {
                let store = self.env.bus.js.get_key_value(*bucket).await?;
                let mut scan = KvScan::start(&self.env.bus.js, &store, ">").await?;
                let mut keys = 0;
                while scan.next().await?.is_some() {
                    keys += 1;
                }
                ensure!(keys > 0, "{bucket} lists no keys");
                Ok(())
            }
            ["stream", "view", stream, "--subject", subject] => self.view(stream, subject).await,
            ["stream", "info", stream] => {
                let mut stream = self.env.bus.js.get_stream(*stream).await?;
                ensure!(!stream.info().await?.config.subjects.is_empty());
                Ok(())
            }
            ["stream", "purge", stream, "--subject", subject, "-f"] => {
                let stream = self.env.bus.js.get_stream(*stream).await?;
                stream.purge().filter(*subject).await?;
                Ok(())
            }
            ["consumer", "info", stream, consumer] => {
                let stream = self.env.bus.js.get_stream(*stream).await?;
                // A target's slot consumer is made by migrate moments
                // after the limits record it follows.
                let mut tries = 0;
                let mut consumer: PullConsumer = loop {
                    match stream.get_consumer(consumer).await {
                        Ok(consumer) => break consumer,
                        Err(_) if tries < 20 => {
                            tries += 1;
                            tokio::time::sleep(Duration::from_millis(250)).await;
                        }
                        Err(err) => bail!("{consumer}: {err}"),
                    }
                };
                let info = consumer.info().await?;
                ensure!(info.config.max_ack_pending > 0);
                Ok(())
            }
            ["consumer", "ls", stream] => {
                let stream = self.env.bus.js.get_stream(*stream).await?;
                let mut names = stream.consumer_names();
                let mut count = 0;
                while let Some(name) = names.next().await {
                    name?;
                    count += 1;
                }
                ensure!(count > 0, "no consumers listed");
                Ok(())
            }
            ["sub", subject] => {
                let sub = self.env.bus.client.subscribe(subject.to_string()).await?;
                self.subscriptions.push((subject.to_string(), sub));
                Ok(())
            }
            _ => bail!(
                "docs/operations.md documents `{line}`, which this test does not know how to perform: teach it, or fix the guide"
            ),
        }
    }

    /// `nats pub`: a core publish with no headers; then what it must cause.
    async fn publish(&self, subject: &str, body: &str) -> anyhow::Result<()> {
        let bus = &self.env.bus;
        bus.client
            .publish(subject.to_string(), body.to_string().into())
            .await?;
        bus.client.flush().await?;
        if subject == bus.names.submit_subject() {
            jobs::wait_for_state(bus, JOB, |_| true).await?;
        } else if subject == bus.names.config_subject(JOB) {
            let wanted: Value = serde_json::from_str(body)?;
            if let Some(rate) = wanted["rate_limit"].as_str() {
                jobs::wait_for_state(bus, JOB, |s| {
                    s.spec
                        .handler
                        .rate_limit()
                        .map(|r| r.to_string())
                        .as_deref()
                        == Some(rate)
                })
                .await?;
            } else {
                let want = wanted["concurrency"].as_u64().context("a concurrency")?;
                jobs::wait_for_state(bus, JOB, |s| {
                    u64::from(s.spec.settings().concurrency) == want
                })
                .await?;
            }
        } else if subject == bus.names.pause_subject(JOB) {
            // `{"for": ...}` is a timed pause; an empty body lasts until resumed.
            let timed = body.contains("\"for\"");
            jobs::wait_for_state(bus, JOB, |s| {
                s.status == jetflow_protocol::job::JobStatus::Paused
                    && s.paused_until.is_some() == timed
            })
            .await?;
        } else if subject == bus.names.resume_subject(JOB) {
            jobs::wait_for_state(bus, JOB, |s| s.status.runs_items()).await?;
        } else if subject == bus.names.cancel_subject(JOB) {
            let state = jobs::wait_for_end(bus, JOB).await?;
            ensure!(state.status == jetflow_protocol::job::JobStatus::Cancelled);
        } else {
            bail!("the test does not know what publishing to {subject} should do");
        }
        Ok(())
    }

    /// A request with many replies, as `nats req`/`nats micro` gather them.
    async fn gather(&self, subject: &str) -> anyhow::Result<Vec<Value>> {
        let client = &self.env.bus.client;
        let inbox = client.new_inbox();
        let mut replies = client.subscribe(inbox.clone()).await?;
        client
            .publish_with_reply(subject.to_string(), inbox, "".into())
            .await?;
        client.flush().await?;
        let mut out = Vec::new();
        while let Ok(Some(reply)) =
            tokio::time::timeout(Duration::from_millis(750), replies.next()).await
        {
            // A no-responders status has no body: nothing answered (yet).
            if !reply.payload.is_empty() {
                out.push(serde_json::from_slice(&reply.payload)?);
            }
        }
        Ok(out)
    }

    /// `nats kv get`, retried until the key exists (an item finishes, a
    /// batch is fetched), as an operator would.
    async fn kv_get(&self, bucket: &str, key: &str) -> anyhow::Result<Value> {
        let store = self.env.bus.js.get_key_value(bucket).await?;
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            if let Some(raw) = store.get(key).await? {
                return serde_json::from_slice(&raw)
                    .with_context(|| format!("{bucket} {key} is not JSON"));
            }
            ensure!(
                tokio::time::Instant::now() < deadline,
                "{bucket} has no {key}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// `nats stream view`: waits for a first message; checks it reads.
    async fn view(&self, stream: &str, subject: &str) -> anyhow::Result<()> {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let messages = jobs::stream_messages(&self.env.bus, stream, subject).await?;
            if let Some((_, headers, payload)) = messages.first() {
                if stream == self.env.bus.names.dlq_stream() {
                    let error = jobs::header(headers, "Jetflow-Error");
                    ensure!(
                        error.is_some_and(|e| !e.is_empty()),
                        "a dead letter says why"
                    );
                } else {
                    let event: Value = serde_json::from_slice(payload)?;
                    ensure!(event["job"] == JOB, "{event}");
                }
                return Ok(());
            }
            ensure!(
                tokio::time::Instant::now() < deadline,
                "nothing in {stream} {subject}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_nats_command_in_the_operations_guide_works() -> anyhow::Result<()> {
    let commands = documented_commands()?;
    assert!(
        commands.len() >= 25,
        "the guide lost its nats commands: {commands:?}"
    );
    let env = TestEnv::start("ops").await?;
    let mock = MockAgents::start(MockAgentsConfig {
        agents: 3000,
        latency: Duration::from_millis(100),
        permanent_rate: 0.05,
        seed: 3,
        ..Default::default()
    })
    .await?;
    let mut job = jobs::agents_job(JOB, &mock, serde_json::json!({"concurrency": 4}));
    job["labels"] = serde_json::json!({"workflow_id": "wf-9"});
    let job_json = job.to_string();
    assert!(
        !job_json.contains('\''),
        "the job must survive shell quoting"
    );

    let mut operator = Operator {
        env: &env,
        subscriptions: Vec::new(),
    };
    for line in &commands {
        operator
            .run(line, &job_json)
            .await
            .with_context(|| format!("`{line}`"))?;
    }
    for (subject, sub) in &mut operator.subscriptions {
        let first = tokio::time::timeout(Duration::from_secs(1), sub.next()).await;
        ensure!(
            matches!(first, Ok(Some(_))),
            "`nats sub {subject}` saw nothing"
        );
    }
    // The guide's clean-up removed the (cancelled) job entirely.
    assert!(jobs::state_json(&env.bus, JOB).await?.is_none());
    env.stop_services().await?;
    Ok(())
}
