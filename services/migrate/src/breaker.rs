//! Circuit breakers, one per handler target (an HTTP host:port).
//!
//! Closed: calls flow; `threshold` consecutive transient failures open it.
//! Open: no calls for `cooldown`; tasks are held back (see the worker), not
//! failed and not charged a retry. Half-open: one probe call goes through; its
//! success closes the breaker, its failure opens it again for twice as long
//! (up to `max_cooldown`).
//!
//! Breakers are per migrate instance, in memory: each instance learns the
//! target's health from its own calls, which is enough to stop hammering a
//! target that is down.

use std::{
    collections::HashMap,
    sync::Mutex,
    time::{Duration, Instant},
};

use serde::Serialize;

/// Breaker settings.
#[derive(Debug, Clone, Copy)]
pub struct BreakerConfig {
    /// Consecutive transient failures that open a breaker.
    pub threshold: u32,
    /// How long a breaker stays open before a probe.
    pub cooldown: Duration,
    /// The longest cooldown after repeated failed probes.
    pub max_cooldown: Duration,
}

impl Default for BreakerConfig {
    fn default() -> Self {
        Self {
            threshold: 5,
            cooldown: Duration::from_secs(2),
            max_cooldown: Duration::from_secs(30),
        }
    }
}

/// Whether a call to a target may go ahead.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// Call.
    Call,
    /// Call: this is the half-open probe.
    Probe,
    /// Do not call; hold the task back for about this long.
    Hold(Duration),
}

/// One breaker's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Closed { failures: u32 },
    Open { until: Instant, cooldown: Duration },
    HalfOpen { cooldown: Duration },
}

/// A breaker's state as `stats` reports it.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct BreakerStatus {
    /// The target (host:port).
    pub target: String,
    /// `closed`, `open` or `half_open`.
    pub state: &'static str,
    /// Consecutive transient failures (closed).
    pub failures: u32,
    /// Milliseconds until the next probe (open).
    pub retry_in_ms: u64,
    /// Times it opened since the service started.
    pub opened: u64,
}

/// The breakers of one migrate instance.
pub struct Breakers {
    config: BreakerConfig,
    targets: Mutex<HashMap<String, (State, u64)>>,
}

impl Breakers {
    /// No breakers yet; each target gets one on first use.
    pub fn new(config: BreakerConfig) -> Self {
        Self {
            config,
            targets: Mutex::new(HashMap::new()),
        }
    }

    fn with<T>(&self, target: &str, f: impl FnOnce(&mut State, &mut u64) -> T) -> T {
        // The map only holds plain state: a poisoned lock is still usable.
        let mut targets = self.targets.lock().unwrap_or_else(|e| e.into_inner());
        // Look up before inserting: this runs several times per item, and
        // `entry` would allocate the key every time.
        if !targets.contains_key(target) {
            targets.insert(target.to_string(), (State::Closed { failures: 0 }, 0));
        }
        match targets.get_mut(target) {
            Some((state, opened)) => f(state, opened),
            None => unreachable!("the target was inserted just above"),
        }
    }

    /// Asks to call `target` now.
    pub fn admit(&self, target: &str, now: Instant) -> Admission {
        self.with(target, |state, _| match *state {
            State::Closed { .. } => Admission::Call,
            State::Open { until, cooldown } if now >= until => {
                *state = State::HalfOpen { cooldown };
                Admission::Probe
            }
            State::Open { until, .. } => Admission::Hold(until - now),
            // One probe at a time: the others wait for its verdict.
            State::HalfOpen { cooldown } => Admission::Hold(cooldown / 4),
        })
    }

    /// How long until `target` may be called, if it may not be now.
    pub fn blocked_for(&self, target: &str, now: Instant) -> Option<Duration> {
        self.with(target, |state, _| match *state {
            State::Open { until, .. } if now < until => Some(until - now),
            _ => None,
        })
    }

    /// Records a call that got an answer (success or a permanent failure:
    /// either way the target is up).
    pub fn succeeded(&self, target: &str) {
        self.with(target, |state, _| {
            if !matches!(state, State::Closed { failures: 0 }) {
                if !matches!(state, State::Closed { .. }) {
                    tracing::info!(target, "circuit breaker closed: target answers again");
                }
                *state = State::Closed { failures: 0 };
            }
        })
    }

    /// Records a transient failure.
    pub fn failed(&self, target: &str, now: Instant) {
        let config = self.config;
        self.with(target, |state, opened| match *state {
            State::Closed { failures } if failures + 1 >= config.threshold => {
                tracing::warn!(target, failures = failures + 1, cooldown = ?config.cooldown, "circuit breaker opened: holding tasks back");
                *opened += 1;
                *state = State::Open {
                    until: now + config.cooldown,
                    cooldown: config.cooldown,
                };
            }
            State::Closed { failures } => *state = State::Closed { failures: failures + 1 },
            State::HalfOpen { cooldown } => {
                let cooldown = (cooldown * 2).min(config.max_cooldown);
                tracing::warn!(target, ?cooldown, "circuit breaker probe failed; open again");
                *opened += 1;
                *state = State::Open {
                    until: now + cooldown,
                    cooldown,
                };
            }
            // Calls that started before it opened report late: no change.
            State::Open { .. } => {}
        })
    }

    /// The target asked for time (`Retry-After`): no call to it until
    /// `wait` has passed, then one probe, as after a cooldown. An open
    /// breaker that already waits longer keeps its wait.
    pub fn throttled(&self, target: &str, wait: Duration, now: Instant) {
        let config = self.config;
        self.with(target, |state, _| {
            let until = now + wait;
            match *state {
                State::Open { until: already, .. } if already >= until => {}
                State::Open { cooldown, .. } | State::HalfOpen { cooldown } => {
                    *state = State::Open { until, cooldown }
                }
                State::Closed { .. } => {
                    tracing::info!(
                        target,
                        ?wait,
                        "target asked for time; holding its calls back"
                    );
                    *state = State::Open {
                        until,
                        cooldown: config.cooldown,
                    }
                }
            }
        })
    }

    /// Every breaker's state, for the service's stats.
    pub fn statuses(&self, now: Instant) -> Vec<BreakerStatus> {
        let targets = self.targets.lock().unwrap_or_else(|e| e.into_inner());
        let mut out: Vec<BreakerStatus> = targets
            .iter()
            .map(|(target, (state, opened))| {
                let (name, failures, retry_in) = match *state {
                    State::Closed { failures } => ("closed", failures, Duration::ZERO),
                    State::Open { until, .. } => ("open", 0, until.saturating_duration_since(now)),
                    State::HalfOpen { .. } => ("half_open", 0, Duration::ZERO),
                };
                BreakerStatus {
                    target: target.clone(),
                    state: name,
                    failures,
                    retry_in_ms: retry_in.as_millis() as u64,
                    opened: *opened,
                }
            })
            .collect();
        out.sort_by(|a, b| a.target.cmp(&b.target));
        out
    }
}

/// Keeps the [`BREAKER_OPEN`](jetflow_runtime::process::metrics::BREAKER_OPEN) gauge
/// up to date (1 while a target's breaker is not closed), until `shutdown`.
pub async fn export(
    breakers: std::sync::Arc<Breakers>,
    metrics: jetflow_runtime::process::metrics::Metrics,
    shutdown: tokio_util::sync::CancellationToken,
) {
    if !metrics.enabled {
        return;
    }
    let gauge = metrics.gauge(
        jetflow_runtime::process::metrics::BREAKER_OPEN,
        "1 while a target's circuit breaker is open or half open",
    );
    loop {
        for status in breakers.statuses(Instant::now()) {
            let open = if status.state == "closed" { 0.0 } else { 1.0 };
            gauge.set(&[("target", status.target.as_str())], open);
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn breakers() -> Breakers {
        Breakers::new(BreakerConfig {
            threshold: 3,
            cooldown: Duration::from_secs(1),
            max_cooldown: Duration::from_secs(4),
        })
    }

    #[test]
    fn a_target_that_asks_for_time_gets_it_then_one_probe() {
        let b = breakers();
        let t0 = Instant::now();
        b.throttled("h", Duration::from_secs(2), t0);
        assert_eq!(b.admit("h", t0), Admission::Hold(Duration::from_secs(2)));
        // A shorter ask does not cut the wait short.
        b.throttled("h", Duration::from_millis(500), t0);
        assert_eq!(b.blocked_for("h", t0), Some(Duration::from_secs(2)));
        let t2 = t0 + Duration::from_secs(2);
        assert_eq!(b.admit("h", t2), Admission::Probe);
        b.succeeded("h");
        assert_eq!(b.admit("h", t2), Admission::Call);
        assert_eq!(b.statuses(t2)[0].opened, 0, "throttling is not a failure");
    }

    #[test]
    fn opens_after_consecutive_failures_and_holds_calls() {
        let b = breakers();
        let t0 = Instant::now();
        b.failed("h", t0);
        b.failed("h", t0);
        b.succeeded("h"); // an answer resets the count
        b.failed("h", t0);
        b.failed("h", t0);
        assert_eq!(b.admit("h", t0), Admission::Call);
        b.failed("h", t0);
        assert_eq!(b.admit("h", t0), Admission::Hold(Duration::from_secs(1)));
        assert_eq!(b.blocked_for("h", t0), Some(Duration::from_secs(1)));
        assert_eq!(
            b.admit("other", t0),
            Admission::Call,
            "breakers are per target"
        );
        assert_eq!(b.statuses(t0)[0].state, "open");
    }

    #[test]
    fn half_open_lets_one_probe_through_and_closes_on_success() {
        let b = breakers();
        let t0 = Instant::now();
        (0..3).for_each(|_| b.failed("h", t0));
        let later = t0 + Duration::from_secs(1);
        assert_eq!(b.admit("h", later), Admission::Probe);
        assert!(
            matches!(b.admit("h", later), Admission::Hold(_)),
            "one probe at a time"
        );
        b.succeeded("h");
        assert_eq!(b.admit("h", later), Admission::Call);
        assert_eq!(b.statuses(later)[0].opened, 1);
    }

    #[test]
    fn a_failed_probe_opens_it_for_longer() {
        let b = breakers();
        let t0 = Instant::now();
        (0..3).for_each(|_| b.failed("h", t0));
        let t1 = t0 + Duration::from_secs(1);
        assert_eq!(b.admit("h", t1), Admission::Probe);
        b.failed("h", t1);
        assert_eq!(b.admit("h", t1), Admission::Hold(Duration::from_secs(2)));
        let t2 = t1 + Duration::from_secs(2);
        assert_eq!(b.admit("h", t2), Admission::Probe);
        b.failed("h", t2);
        b.failed("h", t2); // late reports while open change nothing
        assert_eq!(b.admit("h", t2), Admission::Hold(Duration::from_secs(4)));
    }
}
