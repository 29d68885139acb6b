//! The running mock and the handle tests hold.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::config::MockAgentsConfig;
use super::faults::FaultsUpdate;
use super::routes::router;
use super::state::State;
use super::stats::MockStats;

/// A running mock agents API on `127.0.0.1`, stopped on drop.
///
/// The handle reads and steers the same state the HTTP routes use, so a test
/// can inject faults mid-run and check exactly what a job did.
#[derive(Debug)]
pub struct MockAgents {
    state: Arc<State>,
    addr: SocketAddr,
    shutdown: CancellationToken,
    task: Option<JoinHandle<()>>,
}

impl MockAgents {
    /// Binds the port and starts serving on a spawned tokio task.
    ///
    /// Must be called inside a tokio runtime.
    pub async fn start(config: MockAgentsConfig) -> anyhow::Result<Self> {
        config.validate()?;
        let bind = SocketAddr::from((Ipv4Addr::LOCALHOST, config.port.unwrap_or(0)));
        let listener = tokio::net::TcpListener::bind(bind)
            .await
            .with_context(|| format!("binding mock agents API to {bind}"))?;
        let addr = listener
            .local_addr()
            .context("reading mock agents address")?;
        let state = Arc::new(State::new(&config));
        let shutdown = CancellationToken::new();
        let app = router(Arc::clone(&state));
        let stopped = shutdown.clone().cancelled_owned();
        let task = tokio::spawn(async move {
            if let Err(err) = axum::serve(listener, app)
                .with_graceful_shutdown(stopped)
                .await
            {
                tracing::error!(%err, "mock agents API stopped");
            }
        });
        tracing::debug!(%addr, agents = config.agents, "mock agents API listening");
        Ok(Self {
            state,
            addr,
            shutdown,
            task: Some(task),
        })
    }

    /// `http://127.0.0.1:PORT`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// URL of the agent listing, `{base}/agents`.
    pub fn agents_url(&self) -> String {
        format!("{}/agents", self.base_url())
    }

    /// Migrate URL with a literal `{id}` placeholder for the agent id.
    pub fn migrate_url_template(&self) -> String {
        format!("{}/agents/{{id}}/migrate", self.base_url())
    }

    /// The port served on.
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// Current counters, the same as `GET /stats`.
    pub fn stats(&self) -> MockStats {
        self.state.stats()
    }

    /// When the first migrate call arrived, if one has. Read without a lock,
    /// so a benchmark can take it right after a job ends.
    pub fn first_call_at(&self) -> Option<Instant> {
        self.state.counters.first_call.get().copied()
    }

    /// Ids of the agents migrated so far, sorted.
    pub fn migrated_ids(&self) -> Vec<String> {
        self.state.migrated_ids()
    }

    /// Whether migrating `id` always fails with 422 (at the current rate).
    pub fn is_permanent_failure(&self, id: &str) -> bool {
        self.state.is_permanent_failure(id)
    }

    /// All agents whose migration always fails with 422, sorted.
    pub fn permanent_failures(&self) -> Vec<String> {
        self.state.permanent_failures()
    }

    /// While `down`, every migrate call answers 503.
    pub fn set_down(&self, down: bool) {
        self.update(FaultsUpdate {
            down: Some(down),
            ..FaultsUpdate::default()
        });
    }

    /// Delay applied inside each migrate call from now on.
    pub fn set_latency(&self, latency: Duration) {
        self.update(FaultsUpdate {
            latency_ms: Some(u64::try_from(latency.as_millis()).unwrap_or(u64::MAX)),
            ..FaultsUpdate::default()
        });
    }

    /// Probability that a migrate call answers 503 from now on.
    pub fn set_transient_rate(&self, rate: f64) -> anyhow::Result<()> {
        self.state
            .update_faults(&FaultsUpdate {
                transient_rate: Some(rate),
                ..FaultsUpdate::default()
            })
            .map(drop)
    }

    /// Fraction of agents that answer 422 from now on.
    pub fn set_permanent_rate(&self, rate: f64) -> anyhow::Result<()> {
        self.state
            .update_faults(&FaultsUpdate {
                permanent_rate: Some(rate),
                ..FaultsUpdate::default()
            })
            .map(drop)
    }

    /// The next `calls` migrate calls answer 429 with `Retry-After: seconds`.
    pub fn throttle(&self, calls: u32, seconds: u64) {
        self.update(FaultsUpdate {
            throttle: Some(calls),
            retry_after_s: Some(seconds),
            ..FaultsUpdate::default()
        });
    }

    /// When the last migrate calls arrived (at most 256), oldest first.
    pub fn recent_calls(&self) -> Vec<Instant> {
        self.state.counters.recent_calls()
    }

    /// Migrate calls in each whole second of the wall clock (seconds since
    /// the epoch) that saw any, oldest first.
    pub fn calls_per_second(&self) -> Vec<(u64, u64)> {
        self.state.counters.calls_per_second()
    }

    /// Migrate calls by the trace id of their `traceparent` header; calls
    /// without one count under `""`.
    pub fn calls_by_trace(&self) -> std::collections::BTreeMap<String, u64> {
        self.state.counters.calls_by_trace()
    }

    /// Total time the mock has had at least `level` migrate calls in flight
    /// at once: concurrency weighted by time, which unlike samples of
    /// `in_flight` does not thin out on a loaded machine.
    pub fn time_with_calls_in_flight(&self, level: u64) -> Duration {
        self.state.counters.time_at_least(level)
    }

    /// Restarts `max_in_flight` from the number of calls in flight now.
    pub fn reset_max_in_flight(&self) {
        self.state.counters.reset_max_in_flight();
    }

    /// Stops accepting requests and waits for calls in progress to finish.
    pub async fn stop(mut self) {
        self.shutdown.cancel();
        if let Some(task) = self.task.take() {
            if let Err(err) = task.await {
                tracing::error!(%err, "mock agents API task failed");
            }
        }
    }

    /// Applies an update that carries no rates, so it cannot be invalid.
    fn update(&self, update: FaultsUpdate) {
        if let Err(err) = self.state.update_faults(&update) {
            tracing::error!(%err, "rejected fault update");
        }
    }
}

impl Drop for MockAgents {
    fn drop(&mut self) {
        // Cannot await here; the server task finishes on its own once cancelled.
        self.shutdown.cancel();
    }
}
