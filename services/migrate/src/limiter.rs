//! Rate limits, shared by every migrate instance: a call is made only with
//! a token, and tokens are taken by adding to the NATS counter of the
//! limit's current window (`Nats-Incr`, the rates stream). The total the
//! server answers says how many of the tokens asked for fit
//! ([`rate::granted`]); the rest are not spent (and not retried: what
//! was asked for too late counts against nothing but that window).
//!
//! Tokens are taken before a task is pulled (see `worker`), so an item held
//! back by a limit waits in the stream — holding no concurrency slot, and
//! spending no retry. A token is good until its window ends; a call must
//! start before then, or a limit could see two windows' calls at once.

use std::{
    collections::BTreeMap,
    sync::Mutex,
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use async_nats::HeaderMap;
use bytes::Bytes;
use jetflow_protocol::{
    job::Step,
    names::RateScope,
    rate::{self, RateLimit},
};
use jetflow_runtime::{process::metrics::Metrics, Bus, Error, ErrorKind, Result, ResultExt};
use serde::Serialize;

use crate::target_limits::Targets;

/// The header that makes a publish an increment of a counter.
const INCREMENT: &str = "Nats-Incr";

/// One limit a call passes.
#[derive(Debug, Clone)]
pub(crate) struct Limit {
    /// Whose calls it counts.
    pub scope: RateScope,
    /// The limit.
    pub rate: RateLimit,
}

/// The limits one call passes: its own (a handler's or a step's), then
/// the one its target carries for every job (`jetflow limits`).
pub(crate) fn for_call(own: Option<Limit>, target: &str, targets: &Targets) -> Vec<Limit> {
    let shared = targets.rate(target).map(|rate| Limit {
        scope: RateScope::Target(target.to_string()),
        rate,
    });
    own.into_iter().chain(shared).collect()
}

/// The limits a call of `step` in `job` passes.
pub(crate) fn for_step(job: &str, step: &Step, targets: &Targets) -> Vec<Limit> {
    let own = step.call.rate_limit().map(|rate| Limit {
        scope: RateScope::Step {
            job: job.to_string(),
            step: step.name.clone(),
        },
        rate,
    });
    for_call(own, &step.call.target(), targets)
}

/// The targets of those of `limits` that are shared by every job.
pub(crate) fn shared_targets(limits: &[Limit]) -> impl Iterator<Item = &str> {
    limits.iter().filter_map(shared_target)
}

/// The target of `limit` if it is a target's own, shared by every job.
pub(crate) fn shared_target(limit: &Limit) -> Option<&str> {
    match &limit.scope {
        RateScope::Target(target) => Some(target),
        _ => None,
    }
}

/// How long from now until `share` (0 to 1) of the way into the current
/// window of `rate` (zero if that point has passed).
pub(crate) fn into_window(rate: &RateLimit, share: f64) -> Duration {
    let window = rate.window();
    let now = unix_ms();
    let point = window.start(now) + (window.length.as_millis() as f64 * share) as u64;
    Duration::from_millis(point.saturating_sub(now))
}

/// What a take came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Grant {
    /// Calls that may start.
    pub calls: u32,
    /// When they must have started by: the end of the shortest window
    /// they were counted in.
    pub until: Instant,
    /// When to ask again if fewer than asked were granted: the end of the
    /// window that held them back (`None` when all were granted).
    pub retry_at: Option<Instant>,
}

/// This instance's rate-limit counters on NATS, and what it has taken.
pub(crate) struct Limiter {
    bus: Bus,
    metrics: Metrics,
    stats: Mutex<BTreeMap<String, LimitStats>>,
}

/// What this instance took under one limit, for status reports.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub(crate) struct LimitStats {
    /// The limit, as last used.
    pub rate: String,
    /// Tokens granted to this instance.
    pub granted: u64,
    /// Takes that came up short, each a wait until the window's end.
    pub held: u64,
}

impl Limiter {
    pub(crate) fn new(bus: Bus, metrics: Metrics) -> Self {
        Self {
            bus,
            metrics,
            stats: Mutex::default(),
        }
    }

    /// Takes up to `want` tokens from each of `limits` in turn (each
    /// granting at most what the one before did); with no limits, `want`.
    pub(crate) async fn take(&self, limits: &[Limit], want: u32) -> Result<Grant> {
        let (now, unix_ms) = (Instant::now(), unix_ms());
        let mut grant = Grant {
            calls: want,
            until: now + rate::MAX_WINDOW,
            retry_at: None,
        };
        for limit in limits {
            if grant.calls == 0 {
                break;
            }
            let window = limit.rate.window();
            let start = window.start(unix_ms);
            let ends = now + window.remaining(unix_ms);
            let asked = grant.calls.min(window.allowance);
            let subject = self.bus.names.rate_subject(&limit.scope, start);
            let total = self.add(subject, asked).await?;
            let got = rate::granted(asked, total, window.allowance);
            self.record(limit, got, got < grant.calls);
            if got < grant.calls {
                grant.retry_at = Some(grant.retry_at.map_or(ends, |at| at.max(ends)));
            }
            grant.calls = got;
            grant.until = grant.until.min(ends);
        }
        Ok(grant)
    }

    /// What this instance took under each limit, by scope.
    pub(crate) fn stats(&self) -> BTreeMap<String, LimitStats> {
        self.stats.lock().map(|s| s.clone()).unwrap_or_default()
    }

    /// Adds `n` to the counter on `subject`; the total after it.
    async fn add(&self, subject: String, n: u32) -> Result<u64> {
        let mut headers = HeaderMap::new();
        headers.insert(INCREMENT, format!("+{n}").as_str());
        let ack = self
            .bus
            .js
            .publish_with_headers(subject, headers, Bytes::new())
            .await
            .ctx("taking rate-limit tokens")?
            .await
            .ctx("taking rate-limit tokens")?;
        ack.value
            .as_deref()
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| {
                Error::nats(
                    "taking rate-limit tokens",
                    ErrorKind::Transient,
                    "the rates stream answered no counter value (it needs nats-server 2.12 or later)",
                )
            })
    }

    fn record(&self, limit: &Limit, granted: u32, held: bool) {
        let scope = scope_label(&limit.scope);
        self.metrics.rate(&scope, u64::from(granted), held);
        if let Ok(mut stats) = self.stats.lock() {
            let entry = stats.entry(scope).or_default();
            entry.rate = limit.rate.to_string();
            entry.granted += u64::from(granted);
            entry.held += u64::from(held);
        }
    }
}

/// How a scope is named in reports and metrics: `job:<job>`,
/// `step:<job>/<step>`, `target:<target>`.
pub(crate) fn scope_label(scope: &RateScope) -> String {
    match scope {
        RateScope::Job(job) => format!("job:{job}"),
        RateScope::Step { job, step } => format!("step:{job}/{step}"),
        RateScope::Target(target) => format!("target:{target}"),
    }
}

/// Milliseconds since the epoch: windows are aligned to the wall clock so
/// that every instance counts in the same ones (instances' clocks must
/// agree to well within a window; NTP's milliseconds do).
fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// How long until `at`, from now.
pub(crate) fn until(at: Instant) -> Duration {
    at.saturating_duration_since(Instant::now())
}
