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
/// How often the job state is read for progress, the 95% mark, and as a
/// fallback end signal.
const POLL_EVERY: Duration = Duration::from_millis(100);
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
    /// How badly the mock behaves.
    pub faults: Faults,
    /// The handler's `rate_limit`, calls per second.
    pub rate_limit: Option<u32>,
    /// Jobs run at once, each of `items` on a mock of its own.
    pub copies: usize,
}

impl Case {
    /// A clean run of one job.
    pub fn clean(label: &str, items: usize, latency: Duration, settings: JobSettings) -> Self {
        Self {
            label: label.into(),
            items,
            latency,
            settings,
            faults: Faults::default(),
            rate_limit: None,
            copies: 1,
        }
    }
}

/// The mock's failures: the seed's failure mix is a 503 on 5% of calls and
/// a permanent 422 for one agent in 97.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Faults {
    /// Share of calls answered 503.
    pub transient_rate: f64,
    /// Share of agents always answered 422.
    pub permanent_rate: f64,
}

/// What the mock counted of a rate-limited job's calls.
#[derive(Debug, Clone, Serialize)]
pub struct RateSeen {
    /// The limit, calls per second.
    pub limit: u32,
    /// Calls in each whole second but the first and the last.
    pub per_second: Vec<u64>,
    /// The most in one of those seconds.
    pub max: u64,
    /// Their mean.
    pub mean: f64,
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
    /// Submission to 95% of the items done (within 0.1 s): the rate
    /// without the tail of the unluckiest items' retries.
    pub seconds_to_95: Option<f64>,
    /// Submission to the mock's first migrate call, ms.
    pub first_call_ms: Option<f64>,
    /// The job's final status.
    pub status: String,
    /// Items the job counts as succeeded.
    pub succeeded: u64,
    /// Items the job counts as failed.
    pub failed: u64,
    /// Retries the job counted.
    pub retries: u64,
    /// Agents the mock always refuses (their items must fail).
    pub mock_permanent: u64,
    /// Distinct agents the mock migrated.
    pub mock_migrated: u64,
    /// Migrate calls the mock received.
    pub mock_calls: u64,
    /// Whether the tally is exact: succeeded == items − refused ==
    /// mock_migrated, failed == refused, and the status says so
    /// (`completed`, or `partial` when some were refused).
    pub tally_ok: bool,
    /// How badly the mock behaved.
    pub faults: Faults,
    /// The calls per second the mock saw, for a rate-limited job.
    pub rate: Option<RateSeen>,
    /// Jobs that ran at once with this one (this one included).
    pub copies: usize,
    /// CPU seconds each process used from submission to the end (all
    /// nats-server nodes together; the bench's own process runs the mock).
    pub cpu_seconds: BTreeMap<String, f64>,
    /// Peak RSS of each service process, MB.
    pub peak_rss_mb: BTreeMap<String, f64>,
}

/// Runs `case` on `target`: one result per job (`case.copies` at once,
/// labelled `<label>#<n>` when more than one).
pub async fn run(target: &Target<'_>, case: &Case) -> anyhow::Result<Vec<PipelineResult>> {
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
    let copies = case.copies.max(1);
    let job_ids: Vec<String> = (1..=copies)
        .map(|n| format!("bench-{label_token}{n}-{suffix}"))
        .collect();

    let mut mocks = Vec::with_capacity(copies);
    for _ in 0..copies {
        mocks.push(
            MockAgents::start(MockAgentsConfig {
                agents: case.items,
                page_limit: (case.settings.fetch_size as usize).max(1),
                latency: case.latency,
                transient_rate: case.faults.transient_rate,
                permanent_rate: case.faults.permanent_rate,
                ..Default::default()
            })
            .await?,
        );
    }
    let bus = Bus::connect(&nats, "jetflow-bench", &CancellationToken::new()).await?;
    let mut services = ServiceProcesses::start(target.binaries, &nats, &target.log_dir)?;
    services.wait_ready(&bus).await?;

    let outcome = time_jobs(&bus, &mocks, &mut services, target, case, &job_ids).await;
    let peaks = services.peak_rss_kib();
    services.stop().await?;
    let timed = outcome?;
    let peaks: BTreeMap<String, f64> = peaks?
        .into_iter()
        .map(|(name, kib)| (name, crate::rss::mb(kib)))
        .collect();
    let mut results = Vec::with_capacity(copies);
    for (n, (mock, job)) in mocks.into_iter().zip(timed.jobs).enumerate() {
        let label = match copies {
            1 => case.label.clone(),
            _ => format!("{}#{}", case.label, n + 1),
        };
        results.push(result(
            case,
            target,
            label,
            &mock,
            job,
            &timed.cpu_seconds,
            &peaks,
        ));
        mock.stop().await;
    }
    delete_namespace(&bus, target.replicas).await;
    Ok(results)
}

/// What one job of `case` came to, checked against what `mock` saw.
fn result(
    case: &Case,
    target: &Target<'_>,
    label: String,
    mock: &MockAgents,
    job: TimedJob,
    cpu_seconds: &BTreeMap<String, f64>,
    peaks: &BTreeMap<String, f64>,
) -> PipelineResult {
    let TimedJob {
        elapsed,
        to_95,
        first_call,
        state,
    } = job;
    let seen = mock.stats();
    let total = case.items as u64;
    let refused = mock.permanent_failures().len() as u64;
    let status = if refused == 0 {
        JobStatus::Completed
    } else {
        JobStatus::Partial
    };
    let rate = case.rate_limit.map(|limit| {
        let mut per_second: Vec<u64> = mock
            .calls_per_second()
            .into_iter()
            .map(|(_, n)| n)
            .collect();
        per_second.pop();
        if !per_second.is_empty() {
            per_second.remove(0);
        }
        let max = per_second.iter().copied().max().unwrap_or(0);
        let mean = per_second.iter().sum::<u64>() as f64 / per_second.len().max(1) as f64;
        RateSeen {
            limit,
            per_second,
            max,
            mean,
        }
    });
    PipelineResult {
        label,
        items: case.items,
        replicas: target.replicas,
        latency_ms: case.latency.as_millis() as u64,
        settings: case.settings,
        seconds: elapsed.as_secs_f64(),
        items_per_sec: total as f64 / elapsed.as_secs_f64(),
        seconds_to_95: to_95.map(|d| d.as_secs_f64()),
        first_call_ms: first_call.map(|d| d.as_secs_f64() * 1000.0),
        status: state.status.as_str().to_string(),
        succeeded: state.succeeded,
        failed: state.failed,
        retries: state.retries,
        mock_permanent: refused,
        mock_migrated: seen.migrated,
        mock_calls: seen.calls,
        tally_ok: state.status == status
            && state.succeeded == total - refused
            && state.failed == refused
            && seen.migrated == total - refused,
        faults: case.faults,
        rate,
        copies: case.copies.max(1),
        cpu_seconds: cpu_seconds.clone(),
        peak_rss_mb: peaks.clone(),
    }
}

/// What timing the jobs of one run found.
struct Timed {
    /// Each job's, in the order they were submitted.
    jobs: Vec<TimedJob>,
    /// CPU seconds by process from the submissions to the last end.
    cpu_seconds: BTreeMap<String, f64>,
}

/// What timing one job found.
struct TimedJob {
    /// Submission to the final state.
    elapsed: Duration,
    /// Submission to 95% of the items done.
    to_95: Option<Duration>,
    /// Submission to the first handler call.
    first_call: Option<Duration>,
    /// The final state.
    state: JobState,
}

/// The job of `case` over `mock`, as a user would write it.
fn job_spec(case: &Case, mock: &MockAgents, job_id: &str) -> serde_json::Value {
    let s = case.settings;
    let mut job = mock.migration_job(
        job_id,
        json!({
            "fetch_size": s.fetch_size, "concurrency": s.concurrency,
            "max_inflight_batches": s.max_inflight_batches, "max_retries": 3
        }),
    );
    if let Some(limit) = case.rate_limit {
        job["handler"]["rate_limit"] = json!(format!("{limit}/s"));
    }
    job
}

/// Submits every job (job `i` over `mocks[i]`), one right after the
/// other, and waits for them all to end.
async fn time_jobs(
    bus: &Bus,
    mocks: &[MockAgents],
    services: &mut ServiceProcesses,
    target: &Target<'_>,
    case: &Case,
    job_ids: &[String],
) -> anyhow::Result<Timed> {
    // Subscribed before submitting: no end event can be missed.
    let mut events = bus
        .client
        .subscribe(bus.names.event_subject("*", "*"))
        .await
        .context("subscribing to the jobs' events")?;
    bus.client.flush().await.context("flushing")?;

    let cpu_before = cpu_snapshot(services, &target.server_pids)?;
    let mut submitted = Vec::with_capacity(job_ids.len());
    for (mock, job_id) in mocks.iter().zip(job_ids) {
        let body = serde_json::to_vec(&job_spec(case, mock, job_id)).context("encoding the job")?;
        submitted.push(Instant::now());
        // As `nats pub` would: a plain publish to the submit subject.
        bus.client
            .publish(bus.names.submit_subject(), body.into())
            .await
            .context("submitting the job")?;
    }
    bus.client
        .flush()
        .await
        .context("flushing the submissions")?;
    let start = submitted[0];

    let deadline = start + job_deadline(case.items * job_ids.len());
    let mut ended: Vec<Option<Duration>> = vec![None; job_ids.len()];
    let mut to_95: Vec<Option<Duration>> = vec![None; job_ids.len()];
    let mark_95 = (case.items as u64 * 95).div_ceil(100);
    let mut poll = tokio::time::interval(POLL_EVERY);
    let mut last_progress = Instant::now();
    while ended.iter().any(Option::is_none) {
        tokio::select! {
            event = events.next() => {
                let Some(event) = event else { bail!("the event subscription ended") };
                let mut tokens = event.subject.as_str().rsplit('.');
                let kind = tokens.next().unwrap_or_default();
                let job = tokens.next().unwrap_or_default();
                if let Some(i) = job_ids.iter().position(|id| id == job) {
                    if END_EVENTS.contains(&kind) && ended[i].is_none() {
                        ended[i] = Some(submitted[i].elapsed());
                    }
                }
            }
            _ = poll.tick() => {
                services.check_running()?;
                for (i, job_id) in job_ids.iter().enumerate() {
                    if ended[i].is_some() {
                        continue;
                    }
                    let state = read_state(bus, job_id).await?;
                    if state.as_ref().is_some_and(|s| s.succeeded + s.failed >= mark_95) {
                        to_95[i].get_or_insert(submitted[i].elapsed());
                    }
                    // The state is written before the end event is published.
                    if state.as_ref().is_some_and(|s| s.status.is_terminal()) {
                        ended[i] = Some(submitted[i].elapsed());
                    } else if last_progress.elapsed() >= PROGRESS_EVERY {
                        if let Some(s) = &state {
                            let done = s.succeeded + s.failed;
                            eprintln!(
                                "  [{}] {job_id}: {done}/{} items after {:.0} s ({:.0}/s)",
                                case.label, case.items, start.elapsed().as_secs_f64(),
                                done as f64 / start.elapsed().as_secs_f64()
                            );
                        }
                    }
                    if Instant::now() > deadline {
                        bail!("job {job_id} did not end in time; last state: {state:?}");
                    }
                }
                if last_progress.elapsed() >= PROGRESS_EVERY {
                    last_progress = Instant::now();
                }
            }
        }
    }
    let cpu_after = cpu_snapshot(services, &target.server_pids)?;
    let mut jobs = Vec::with_capacity(job_ids.len());
    for (((mock, job_id), (elapsed, at)), to_95) in mocks
        .iter()
        .zip(job_ids)
        .zip(ended.into_iter().zip(submitted))
        .zip(to_95)
    {
        let state = read_state(bus, job_id)
            .await?
            .with_context(|| format!("job {job_id} ended but has no state"))?;
        let elapsed = elapsed.unwrap_or_default();
        jobs.push(TimedJob {
            to_95: Some(to_95.unwrap_or(elapsed).min(elapsed)),
            elapsed,
            first_call: mock
                .first_call_at()
                .map(|t| t.saturating_duration_since(at)),
            state,
        });
    }
    let cpu_seconds = cpu_after
        .into_iter()
        .map(|(name, after)| {
            let before = cpu_before.get(&name).copied().unwrap_or(0.0);
            (name, after - before)
        })
        .collect();
    Ok(Timed { jobs, cpu_seconds })
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
