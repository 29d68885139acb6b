//! How long the mock has had each number of calls in flight: a
//! time-weighted view of concurrency.
//!
//! A test that wants to know whether the target's slots were in use (for
//! example while retries wait) would otherwise sample `in_flight` and count
//! hits, and on a loaded machine the samples thin out. Time at a level does
//! not depend on how often anyone looks.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// The level now, since when, and the time spent at each level before.
#[derive(Debug, Default)]
pub(crate) struct Occupancy {
    level: u64,
    since: Option<Instant>,
    time_at: BTreeMap<u64, Duration>,
}

impl Occupancy {
    /// The number of calls in flight changed by `delta` at `now`.
    pub(crate) fn change(&mut self, delta: i64, now: Instant) {
        self.close(now);
        self.level = self.level.saturating_add_signed(delta);
    }

    /// Total time with at least `level` calls in flight, up to `now`.
    pub(crate) fn time_at_least(&self, level: u64, now: Instant) -> Duration {
        let before: Duration = self.time_at.range(level..).map(|(_, time)| *time).sum();
        let current = match self.since {
            Some(since) if self.level >= level => now.saturating_duration_since(since),
            _ => Duration::ZERO,
        };
        before + current
    }

    /// Books the time since the last change to the level it was at.
    fn close(&mut self, now: Instant) {
        if let Some(since) = self.since {
            *self.time_at.entry(self.level).or_default() += now.saturating_duration_since(since);
        }
        self.since = Some(now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_is_booked_to_the_level_it_was_spent_at() {
        let start = Instant::now();
        let at = |ms| start + Duration::from_millis(ms);
        let mut occupancy = Occupancy::default();
        occupancy.change(1, at(0));
        occupancy.change(1, at(100));
        occupancy.change(-1, at(250));
        occupancy.change(-1, at(300));
        // 0-100 ms at 1, 100-250 at 2, 250-300 at 1, then 0.
        assert_eq!(
            occupancy.time_at_least(2, at(1000)),
            Duration::from_millis(150)
        );
        assert_eq!(
            occupancy.time_at_least(1, at(1000)),
            Duration::from_millis(300)
        );
        assert_eq!(occupancy.time_at_least(3, at(1000)), Duration::ZERO);
    }

    #[test]
    fn the_current_level_counts_up_to_now() {
        let start = Instant::now();
        let mut occupancy = Occupancy::default();
        occupancy.change(1, start);
        let later = start + Duration::from_millis(40);
        assert_eq!(occupancy.time_at_least(1, later), Duration::from_millis(40));
        assert_eq!(occupancy.time_at_least(0, later), Duration::from_millis(40));
    }
}
