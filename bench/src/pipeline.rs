//! (b)-(e) jetflow end to end: one job of N agents through the four service
//! processes against the mock agents API over real HTTP, timed from the
//! submission to the job's final state, then checked for an exact tally.
//!
//! Each run gets its own namespace and fresh service processes, so a
//! service's peak memory (`VmHWM`) is that of this job alone; its streams
//! and buckets are deleted afterwards so later runs find a clean server.

use std::{
    collections::BTreeMap,
    path::PathBuf,
    time::{Duration, Instant},
};

use anyhow::{bail, Context as _};
use futures::StreamExt;
use jetflow_devkit::{MockAgents, MockAgentsConfig};
use jetflow_protocol::job::{JobState, JobStatus};
use jetflow_runtime::{nats::provision, Bus, NatsArgs};
use serde::Serialize;
use serde_json::json;
use tokio_util::sync::CancellationToken;

use crate::{
    cpu::cpu_seconds,
    services::{Binaries, ServiceProcesses},
};

/// The events that end a job (`<ns>.events.<job>.<event>`).
const END_EVENTS: [&str; 5] = ["completed", "partial", "failed", "cancelled", "rejected"];
/// CPU table keys besides the services.
pub const NATS_SERVER: &str = "nats-server";
/// The bench process: the mock agents API and the submitting client.
pub const BENCH: &str = "bench";
/// How often the job state is read for progress and as a fallback end signal.
const POLL_EVERY: Duration = Duration::from_secs(1);
/// How often progress is printed on long runs.
const PROGRESS_EVERY: Duration = Duration::from_secs(15);

/// One end-to-end run.
#[derive(Debug, Clone)]
pub struct Case {
    /// Short label: `b`, `c`, `b-1M`, `b-R3`.
    pub label: String,
    /// Agents in the mock, items in the job.
    pub items: usize,
    /// Delay inside every handler call.
    pub latency: Duration,
    /// The job's `batch` settings.
    pub settings: JobSettings,
}

/// The job's `batch` settings a run uses.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct JobSettings {
    /// Items per page.
    pub fetch_size: u32,
    /// Items in flight (the task consumer's `max_ack_pending`).
    pub concurrency: u32,
    /// Pages fetched ahead of the reducer.
    pub max_inflight_batches: u32,
}

/// Where a run happens.
pub struct Target<'a> {
    /// Client URLs of the nats-server(s).
    pub urls: &'a [String],
    /// Replicas of the namespace's streams and buckets.
    pub replicas: usize,
    /// The service binaries.
    pub binaries: &'a Binaries,
    /// Where service logs go.
    pub log_dir: PathBuf,
    /// The nats-server processes, whose CPU time is counted.
    pub server_pids: Vec<u32>,
}

/// What one run measured and what the tally check found.
#[derive(Debug, Clone, Serialize)]
pub struct PipelineResult {
    /// The case label.
    pub label: String,
    /// Items in the job.
    pub items: usize,
    /// Stream and bucket replicas.
    pub replicas: usize,
    /// Handler latency, ms.
    pub latency_ms: u64,
    /// The job's settings.
    pub settings: JobSettings,
    /// Submission to final state, seconds.
    pub seconds: f64,
    /// Items per second over that span.
    pub items_per_sec: f64,
    /// Submission to the mock's first migrate call, ms.
    pub first_call_ms: Option<f64>,
    /// The job's final status.
    pub status: String,
    /// Items the job counts as succeeded.
    pub succeeded: u64,
    /// Items the job counts as failed.
    pub failed: u64,
    /// Distinct agents the mock migrated.
    pub mock_migrated: u64,
    /// Migrate calls the mock received.
    pub mock_calls: u64,
    /// Whether status is completed and succeeded == items == mock_migrated.
    pub tally_ok: bool,
    /// CPU seconds each process used from submission to the end (all
    /// nats-server nodes together; the bench's own process runs the mock).
    pub cpu_seconds: BTreeMap<String, f64>,
    /// Peak RSS of each service process, MB.
    pub peak_rss_mb: BTreeMap<String, f64>,
}

/// Runs `case` on `target`.
pub async fn run(target: &Target<'_>, case: &Case) -> anyhow::Result<PipelineResult> {
    let label_token = case
        .label
        .to_ascii_lowercase()
        .replace(|c: char| !c.is_ascii_alphanumeric(), "");
    let suffix = &jetflow_runtime::instance_id()[..8];
    let mut nats = NatsArgs::new(
        target.urls.to_vec(),
        &format!("bench-{label_token}-{suffix}"),
    );
    nats.replicas = Some(target.replicas);
    let job_id = format!("bench-{label_token}-{suffix}");

    let mock = MockAgents::start(MockAgentsConfig {
        agents: case.items,
        page_limit: (case.settings.fetch_size as usize).max(1),
        latency: case.latency,
        ..Default::default()
    })
    .await?;
    let bus = Bus::connect(&nats, "jetflow-bench", &CancellationToken::new()).await?;
    let mut services = ServiceProcesses::start(target.binaries, &nats, &target.log_dir)?;
    services.wait_ready(&bus).await?;

    let outcome = time_job(&bus, &mock, &mut services, target, case, &job_id).await;
    let peaks = services.peak_rss_kib();
    services.stop().await?;
    let Timed {
        elapsed,
        first_call,
        state,
        cpu_seconds,
    } = outcome?;
    let peaks = peaks?;
    let seen = mock.stats();
    mock.stop().await;
    delete_namespace(&bus, target.replicas).await;

    let total = case.items as u64;
    Ok(PipelineResult {
        label: case.label.clone(),
        items: case.items,
        replicas: target.replicas,
        latency_ms: case.latency.as_millis() as u64,
        settings: case.settings,
        seconds: elapsed.as_secs_f64(),
        items_per_sec: total as f64 / elapsed.as_secs_f64(),
        first_call_ms: first_call.map(|d| d.as_secs_f64() * 1000.0),
        status: state.status.as_str().to_string(),
        succeeded: state.succeeded,
        failed: state.failed,
        mock_migrated: seen.migrated,
        mock_calls: seen.calls,
        tally_ok: state.status == JobStatus::Completed
            && state.succeeded == total
            && seen.migrated == total,
        cpu_seconds,
        peak_rss_mb: peaks
            .into_iter()
            .map(|(name, kib)| (name, crate::rss::mb(kib)))
            .collect(),
    })
}

/// What timing one job found.
struct Timed {
    /// Submission to the final state.
    elapsed: Duration,
    /// Submission to the first handler call.
    first_call: Option<Duration>,
    /// The final state.
    state: JobState,
    /// CPU seconds by process over `elapsed`.
    cpu_seconds: BTreeMap<String, f64>,
}

/// Submits the job and waits for its end.
async fn time_job(
    bus: &Bus,
    mock: &MockAgents,
    services: &mut ServiceProcesses,
    target: &Target<'_>,
    case: &Case,
    job_id: &str,
) -> anyhow::Result<Timed> {
    let s = case.settings;
    let job = mock.migration_job(
        job_id,
        json!({
            "fetch_size": s.fetch_size, "concurrency": s.concurrency,
            "max_inflight_batches": s.max_inflight_batches, "max_retries": 3
        }),
    );
    let body = serde_json::to_vec(&job).context("encoding the job")?;
    // Subscribed before submitting: the end event cannot be missed.
    let mut events = bus
        .client
        .subscribe(bus.names.job_events_filter(job_id))
        .await
        .context("subscribing to the job's events")?;
    bus.client.flush().await.context("flushing")?;

    let cpu_before = cpu_snapshot(services, &target.server_pids)?;
    let submitted = Instant::now();
    // As `nats pub` would: a plain publish to the submit subject.
    bus.client
        .publish(bus.names.submit_subject(), body.into())
        .await
        .context("submitting the job")?;
    bus.client
        .flush()
        .await
        .context("flushing the submission")?;

    let deadline = submitted + job_deadline(case.items);
    let mut poll = tokio::time::interval(POLL_EVERY);
    let mut last_progress = Instant::now();
    let ended = loop {
        tokio::select! {
            event = events.next() => {
                let Some(event) = event else { bail!("the event subscription ended") };
                let kind = event.subject.as_str().rsplit('.').next().unwrap_or_default();
                if END_EVENTS.contains(&kind) {
                    break submitted.elapsed();
                }
            }
            _ = poll.tick() => {
                services.check_running()?;
                let state = read_state(bus, job_id).await?;
                // The state is written before the end event is published.
                if state.as_ref().is_some_and(|s| s.status.is_terminal()) {
                    break submitted.elapsed();
                }
                if last_progress.elapsed() >= PROGRESS_EVERY {
                    last_progress = Instant::now();
                    if let Some(s) = &state {
                        let done = s.succeeded + s.failed;
                        eprintln!(
                            "  [{}] {done}/{} items after {:.0} s ({:.0}/s)",
                            case.label, case.items, submitted.elapsed().as_secs_f64(),
                            done as f64 / submitted.elapsed().as_secs_f64()
                        );
                    }
                }
                if Instant::now() > deadline {
                    bail!("job {job_id} did not end within {:?}; last state: {state:?}", job_deadline(case.items));
                }
            }
        }
    };
    let cpu_after = cpu_snapshot(services, &target.server_pids)?;
    let first_call = mock
        .first_call_at()
        .map(|at| at.saturating_duration_since(submitted));
    let state = read_state(bus, job_id)
        .await?
        .with_context(|| format!("job {job_id} ended but has no state"))?;
    let cpu_seconds = cpu_after
        .into_iter()
        .map(|(name, after)| {
            let before = cpu_before.get(&name).copied().unwrap_or(0.0);
            (name, after - before)
        })
        .collect();
    Ok(Timed {
        elapsed: ended,
        first_call,
        state,
        cpu_seconds,
    })
}

/// CPU seconds used so far by every process that works on a job.
fn cpu_snapshot(
    services: &ServiceProcesses,
    server_pids: &[u32],
) -> anyhow::Result<BTreeMap<String, f64>> {
    let mut cpu = BTreeMap::new();
    for (name, pid) in services.pids()? {
        cpu.insert(name.to_string(), cpu_seconds(pid)?);
    }
    let mut server = 0.0;
    for pid in server_pids {
        server += cpu_seconds(*pid)?;
    }
    cpu.insert(NATS_SERVER.to_string(), server);
    cpu.insert(BENCH.to_string(), cpu_seconds(std::process::id())?);
    Ok(cpu)
}

/// Generous: a slow machine must fail the tally, not the clock.
fn job_deadline(items: usize) -> Duration {
    Duration::from_secs(300) + Duration::from_secs_f64(items as f64 / 200.0)
}

async fn read_state(bus: &Bus, job: &str) -> anyhow::Result<Option<JobState>> {
    let raw = bus.kv.jobs.get(job).await.context("reading job state")?;
    raw.map(|bytes| serde_json::from_slice(&bytes).context("job state is not JSON"))
        .transpose()
}

/// Deletes the run's streams and buckets; a failure only costs disk space.
async fn delete_namespace(bus: &Bus, replicas: usize) {
    for config in provision::stream_configs(&bus.names, replicas) {
        if let Err(err) = bus.js.delete_stream(&config.name).await {
            tracing::warn!(stream = %config.name, error = %err, "could not delete a stream");
        }
    }
    for config in provision::bucket_configs(&bus.names, replicas) {
        if let Err(err) = bus.js.delete_key_value(&config.bucket).await {
            tracing::warn!(bucket = %config.bucket, error = %err, "could not delete a bucket");
        }
    }
}
