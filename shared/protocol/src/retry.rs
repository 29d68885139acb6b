//! Retry delays: exponential backoff with jitter, computed from the attempt
//! number so that a retry can be a JetStream redelivery (`Nak` with delay)
//! rather than a timer held in memory.

use std::time::Duration;

use backoff::backoff::Backoff as _;

/// The delay before retry number `retry` (1 = the first retry): `initial *
/// 2^(retry-1)`, capped at `max`, then jittered by ±50% (and capped again).
pub fn retry_delay(retry: u32, initial: Duration, max: Duration) -> Duration {
    let exponent = retry.saturating_sub(1).min(30);
    let base = initial.saturating_mul(1u32 << exponent).min(max);
    let mut backoff = backoff::ExponentialBackoff {
        current_interval: base,
        initial_interval: initial,
        randomization_factor: 0.5,
        multiplier: 2.0,
        max_interval: max,
        max_elapsed_time: None,
        ..Default::default()
    };
    backoff.next_backoff().unwrap_or(base).min(max)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_exponentially_within_jitter_and_caps() {
        let initial = Duration::from_millis(100);
        let max = Duration::from_secs(5);
        for retry in 1..=12u32 {
            let base = (100u64 << (retry - 1).min(30)).min(5000) as f64;
            for _ in 0..50 {
                let d = retry_delay(retry, initial, max).as_millis() as f64;
                assert!(
                    d >= base * 0.5 - 1.0 && d <= (base * 1.5).min(5000.0) + 1.0,
                    "retry {retry}: {d} vs base {base}"
                );
            }
        }
    }

    #[test]
    fn jitter_spreads_delays() {
        let delays: std::collections::HashSet<_> = (0..20)
            .map(|_| retry_delay(3, Duration::from_millis(100), Duration::from_secs(10)))
            .collect();
        assert!(delays.len() > 5);
    }
}
