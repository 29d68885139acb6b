//! What the mock has been asked to do, for tests to check.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::Instant;

use serde::{Deserialize, Serialize};

use super::occupancy::Occupancy;

/// Snapshot of the mock's counters, as `GET /stats` returns it.
///
/// Every migrate call ends in exactly one of `successes`, `transient_errors`,
/// `permanent_errors`, `not_found` or `bad_requests`, so those add up to `calls`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MockStats {
    /// Migrate calls received.
    pub calls: u64,
    /// Distinct agents migrated successfully.
    pub migrated: u64,
    /// 200 answers to migrate calls, replays included.
    pub successes: u64,
    /// 200 answers replayed for an `Idempotency-Key` that already succeeded.
    pub idempotent_replays: u64,
    /// 503 answers (injected transient failures and the `down` switch).
    pub transient_errors: u64,
    /// 422 answers from agents that can never be migrated.
    pub permanent_errors: u64,
    /// 404 answers for unknown agent ids.
    pub not_found: u64,
    /// 400 answers for migrate bodies without a `template` string.
    pub bad_requests: u64,
    /// Pages served by `GET /agents`.
    pub pages: u64,
    /// Page requests answered 400 (bad limit, missing organization).
    #[serde(default)]
    pub refused_pages: u64,
    /// Migrate calls being handled right now.
    pub in_flight: u64,
    /// Most migrate calls handled at once since start or the last reset.
    pub max_in_flight: u64,
    /// 200 answers migrating an already migrated agent again, under a
    /// different idempotency key or none: work a correct job would not redo.
    pub duplicate_successes: u64,
}

/// Live counters, updated without taking the state lock.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub calls: AtomicU64,
    pub successes: AtomicU64,
    pub idempotent_replays: AtomicU64,
    pub transient_errors: AtomicU64,
    pub permanent_errors: AtomicU64,
    pub not_found: AtomicU64,
    pub bad_requests: AtomicU64,
    pub pages: AtomicU64,
    pub refused_pages: AtomicU64,
    pub in_flight: AtomicU64,
    pub max_in_flight: AtomicU64,
    pub duplicate_successes: AtomicU64,
    /// When the first migrate call arrived, for latency-to-first-work figures.
    pub first_call: OnceLock<Instant>,
    /// When the last [`RECENT_CALLS`] migrate calls arrived, oldest first.
    pub recent: std::sync::Mutex<std::collections::VecDeque<Instant>>,
    /// Migrate calls per whole second of the wall clock (seconds since the
    /// epoch), for rate-limit checks.
    pub per_second: std::sync::Mutex<std::collections::BTreeMap<u64, u64>>,
    /// Migrate calls by the trace id of their `traceparent` header (`""`
    /// for calls that had none), for trace-propagation checks.
    pub traces: std::sync::Mutex<std::collections::BTreeMap<String, u64>>,
    /// How long each number of calls has been in flight.
    pub occupancy: std::sync::Mutex<Occupancy>,
}

/// How many call arrival times the mock keeps.
pub const RECENT_CALLS: usize = 256;

/// Adds one to a counter. Relaxed: counters are independent tallies, not
/// synchronization.
pub(crate) fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

impl Counters {
    /// Counts a migrate call, remembering when the first one came.
    pub(crate) fn count_call(&self) {
        let now = Instant::now();
        self.first_call.get_or_init(|| now);
        bump(&self.calls);
        let mut recent = self.recent.lock().unwrap_or_else(|e| e.into_inner());
        if recent.len() == RECENT_CALLS {
            recent.pop_front();
        }
        recent.push_back(now);
        drop(recent);
        let second = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let mut per_second = self.per_second.lock().unwrap_or_else(|e| e.into_inner());
        *per_second.entry(second).or_default() += 1;
    }

    /// Counts a migrate call under the trace id of `traceparent`.
    pub(crate) fn count_trace(&self, traceparent: Option<&str>) {
        let trace_id = traceparent
            .and_then(|tp| tp.split('-').nth(1))
            .unwrap_or_default()
            .to_string();
        let mut traces = self.traces.lock().unwrap_or_else(|e| e.into_inner());
        *traces.entry(trace_id).or_default() += 1;
    }

    /// Migrate calls by trace id (`""`: none).
    pub(crate) fn calls_by_trace(&self) -> std::collections::BTreeMap<String, u64> {
        self.traces
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Migrate calls in each whole second of the wall clock that saw any,
    /// oldest first.
    pub(crate) fn calls_per_second(&self) -> Vec<(u64, u64)> {
        let per_second = self.per_second.lock().unwrap_or_else(|e| e.into_inner());
        per_second.iter().map(|(s, n)| (*s, *n)).collect()
    }

    /// When the last calls arrived, oldest first.
    pub(crate) fn recent_calls(&self) -> Vec<Instant> {
        let recent = self.recent.lock().unwrap_or_else(|e| e.into_inner());
        recent.iter().copied().collect()
    }

    /// Snapshot; `migrated` comes from the state, which owns that set.
    pub(crate) fn snapshot(&self, migrated: u64) -> MockStats {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        MockStats {
            calls: get(&self.calls),
            migrated,
            successes: get(&self.successes),
            idempotent_replays: get(&self.idempotent_replays),
            transient_errors: get(&self.transient_errors),
            permanent_errors: get(&self.permanent_errors),
            not_found: get(&self.not_found),
            bad_requests: get(&self.bad_requests),
            pages: get(&self.pages),
            refused_pages: get(&self.refused_pages),
            in_flight: get(&self.in_flight),
            max_in_flight: get(&self.max_in_flight),
            duplicate_successes: get(&self.duplicate_successes),
        }
    }

    /// Total time with at least `level` migrate calls in flight.
    pub(crate) fn time_at_least(&self, level: u64) -> std::time::Duration {
        self.occupancy_lock().time_at_least(level, Instant::now())
    }

    fn occupancy_lock(&self) -> std::sync::MutexGuard<'_, Occupancy> {
        self.occupancy.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Restarts the high-water mark from the calls in flight now.
    pub(crate) fn reset_max_in_flight(&self) {
        let now = self.in_flight.load(Ordering::SeqCst);
        self.max_in_flight.store(now, Ordering::SeqCst);
    }
}

/// Counts one migrate call as in flight for as long as it lives.
///
/// A guard rather than paired increments because axum drops the handler future
/// when a client disconnects mid-call; the decrement must happen then too.
pub(crate) struct InFlight<'a>(&'a Counters);

impl<'a> InFlight<'a> {
    pub(crate) fn enter(counters: &'a Counters) -> Self {
        let now = counters.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        counters.max_in_flight.fetch_max(now, Ordering::SeqCst);
        counters.occupancy_lock().change(1, Instant::now());
        Self(counters)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::SeqCst);
        self.0.occupancy_lock().change(-1, Instant::now());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn in_flight_guard_tracks_high_water_mark() {
        let counters = Counters::default();
        {
            let _a = InFlight::enter(&counters);
            let _b = InFlight::enter(&counters);
            assert_eq!(counters.snapshot(0).in_flight, 2);
        }
        let stats = counters.snapshot(0);
        assert_eq!((stats.in_flight, stats.max_in_flight), (0, 2));
        assert!(counters.time_at_least(2) > std::time::Duration::ZERO);
        assert_eq!(counters.time_at_least(3), std::time::Duration::ZERO);
        counters.reset_max_in_flight();
        assert_eq!(counters.snapshot(0).max_in_flight, 0);
    }

    #[test]
    fn first_call_is_kept_across_later_calls() {
        let counters = Counters::default();
        assert!(counters.first_call.get().is_none());
        counters.count_call();
        let first = counters.first_call.get().copied();
        counters.count_call();
        assert_eq!(counters.first_call.get().copied(), first);
        assert_eq!(counters.snapshot(0).calls, 2);
    }
}
