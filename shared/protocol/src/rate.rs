//! Rate limits (`"50/s"`, `"3000/m"`, `"5000/h"`) and the fixed windows
//! they are counted in.
//!
//! A limit is held by counting calls in short windows aligned to the wall
//! clock: every caller, on every migrate instance, adds what it takes to
//! one NATS counter per window (`<ns>.rate.<scope>.<window start>`,
//! `Nats-Incr`), and the total the server answers says whether the take
//! fit. The window is the shortest (from 100 ms, in steps of 100 ms, up to
//! a minute) in which the limit allows a whole number of calls, so calls
//! are spread over the second rather than spent at its start: `100/s` is
//! 10 per 100 ms, `3000/m` 5 per 100 ms, `3/s` 3 per second. A limit with
//! no such window (`7/h`) is counted per minute, rounded down (never over
//! the limit); one below one call a minute is refused.

use std::{fmt, str::FromStr, time::Duration};

use serde::{de, Deserialize, Deserializer, Serialize, Serializer};

/// The shortest window a limit is counted in.
const STEP_MS: u64 = 100;
/// The longest window a limit is counted in (the rates stream keeps a
/// window's counter for longer than this).
pub const MAX_WINDOW: Duration = Duration::from_secs(60);

/// At most `calls` calls per `per`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    /// Calls allowed per period.
    pub calls: u32,
    /// The period.
    pub per: Period,
}

/// The period of a [`RateLimit`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Period {
    /// `/s`
    Second,
    /// `/m`
    Minute,
    /// `/h`
    Hour,
}

impl Period {
    fn millis(self) -> u64 {
        match self {
            Period::Second => 1_000,
            Period::Minute => 60_000,
            Period::Hour => 3_600_000,
        }
    }

    fn suffix(self) -> &'static str {
        match self {
            Period::Second => "s",
            Period::Minute => "m",
            Period::Hour => "h",
        }
    }
}

/// A window a limit is counted in: at most `allowance` calls in each
/// `length`, the windows starting at multiples of `length` since the epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    /// How long each window lasts.
    pub length: Duration,
    /// Calls allowed in one window.
    pub allowance: u32,
}

impl RateLimit {
    /// The window this limit is counted in (see the module docs).
    pub fn window(self) -> Window {
        let period = self.per.millis();
        let calls = u64::from(self.calls);
        let exact = (1..=MAX_WINDOW.as_millis() as u64 / STEP_MS)
            .map(|steps| steps * STEP_MS)
            .find(|ms| (calls * ms) % period == 0 && calls * ms >= period);
        let length = exact.unwrap_or(MAX_WINDOW.as_millis() as u64);
        Window {
            length: Duration::from_millis(length),
            allowance: u32::try_from(calls * length / period).unwrap_or(u32::MAX),
        }
    }

    /// Calls per second, for reports.
    pub fn per_second(self) -> f64 {
        f64::from(self.calls) * 1_000.0 / self.per.millis() as f64
    }
}

impl Window {
    /// The start of the window holding `unix_ms`, in milliseconds since
    /// the epoch (the window's name on the wire).
    pub fn start(self, unix_ms: u64) -> u64 {
        let length = self.length.as_millis() as u64;
        unix_ms - unix_ms % length.max(1)
    }

    /// How long after `unix_ms` the window holding it ends.
    pub fn remaining(self, unix_ms: u64) -> Duration {
        let end = self.start(unix_ms) + self.length.as_millis() as u64;
        Duration::from_millis(end - unix_ms)
    }
}

/// How many of the `asked` calls a take was granted, when the window's
/// counter stood at `total` after adding them: takes are granted in the
/// order the server counted them, so a take wholly before the allowance
/// gets all it asked, one straddling it the part below, and any later one
/// nothing (what it added only makes later takes in the window fail too).
pub fn granted(asked: u32, total: u64, allowance: u32) -> u32 {
    let before = total.saturating_sub(u64::from(asked));
    let room = u64::from(allowance).saturating_sub(before);
    u32::try_from(room.min(u64::from(asked))).unwrap_or(0)
}

impl FromStr for RateLimit {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = |why: &str| {
            format!("{s:?} is not a rate like \"50/s\", \"3000/m\" or \"5000/h\" ({why})")
        };
        let (calls, per) = s.trim().split_once('/').ok_or_else(|| bad("no '/'"))?;
        let calls: u32 = calls
            .trim()
            .parse()
            .map_err(|_| bad("calls must be a whole number"))?;
        let per = match per.trim() {
            "s" | "sec" | "second" => Period::Second,
            "m" | "min" | "minute" => Period::Minute,
            "h" | "hour" => Period::Hour,
            _ => return Err(bad("the period is s, m or h")),
        };
        if calls == 0 {
            return Err(bad("at least one call; leave the limit out for none"));
        }
        let limit = RateLimit { calls, per };
        if limit.window().allowance == 0 {
            return Err(bad("below one call a minute"));
        }
        Ok(limit)
    }
}

impl fmt::Display for RateLimit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.calls, self.per.suffix())
    }
}

impl Serialize for RateLimit {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for RateLimit {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn window(s: &str) -> (u64, u32) {
        let w = s.parse::<RateLimit>().unwrap().window();
        (w.length.as_millis() as u64, w.allowance)
    }

    #[test]
    fn a_limit_is_counted_in_the_shortest_window_with_a_whole_allowance() {
        assert_eq!(window("100/s"), (100, 10));
        assert_eq!(window("3000/m"), (100, 5));
        assert_eq!(window("20/s"), (100, 2));
        assert_eq!(window("5/s"), (200, 1));
        assert_eq!(window("3/s"), (1_000, 3));
        assert_eq!(window("50/m"), (1_200, 1));
        assert_eq!(window("5000/h"), (3_600, 5));
        // No whole allowance within a minute: per minute, rounded down.
        assert_eq!(window("61/h"), (60_000, 1));
        assert_eq!(window("130/h"), (60_000, 2));
    }

    #[test]
    fn a_window_never_allows_more_than_the_limit() {
        for calls in 1..=500 {
            for per in [Period::Second, Period::Minute, Period::Hour] {
                let limit = RateLimit { calls, per };
                let w = limit.window();
                let allowed = f64::from(w.allowance) / w.length.as_secs_f64();
                assert!(allowed <= limit.per_second() + 1e-9, "{limit}: {w:?}");
            }
        }
    }

    #[test]
    fn takes_are_granted_in_the_order_they_were_counted() {
        assert_eq!(granted(4, 4, 10), 4);
        assert_eq!(granted(4, 10, 10), 4);
        assert_eq!(granted(4, 12, 10), 2);
        assert_eq!(granted(4, 14, 10), 0);
        assert_eq!(granted(4, 40, 10), 0);
        assert_eq!(granted(0, 3, 10), 0);
    }

    #[test]
    fn windows_are_aligned_to_the_clock() {
        let w = Window {
            length: Duration::from_millis(100),
            allowance: 10,
        };
        assert_eq!(w.start(1_234_567), 1_234_500);
        assert_eq!(w.remaining(1_234_567), Duration::from_millis(33));
        assert_eq!(w.remaining(1_234_500), Duration::from_millis(100));
    }

    #[test]
    fn rates_parse_print_and_name_what_is_wrong() {
        let r: RateLimit = "50/s".parse().unwrap();
        assert_eq!(r.to_string(), "50/s");
        assert_eq!(
            " 3000 / m ".parse::<RateLimit>().unwrap().to_string(),
            "3000/m"
        );
        for (bad, why) in [
            ("50", "no '/'"),
            ("x/s", "whole number"),
            ("5/d", "s, m or h"),
            ("0/s", "at least one"),
            ("30/h", "below one call a minute"),
            ("7/h", "below one call a minute"),
        ] {
            let err = bad.parse::<RateLimit>().unwrap_err();
            assert!(err.contains(why), "{bad}: {err}");
        }
        let json: RateLimit = serde_json::from_str("\"20/s\"").unwrap();
        assert_eq!(serde_json::to_string(&json).unwrap(), "\"20/s\"");
    }
}
