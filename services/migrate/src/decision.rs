//! What becomes of an item after one handler call — a pure function, so the
//! retry policy is tested without a server.

use std::time::Duration;

use jetflow_protocol::{job::Settings, retry::retry_delay};
use serde_json::Value;

use crate::handler::HandlerError;

/// The next step for a task.
#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    /// The item succeeded with this output.
    Succeeded(Value),
    /// The item failed for good; its task goes to the DLQ.
    Failed(String),
    /// Try again after `delay`, spending a retry.
    Retry {
        /// Delay before the next call.
        delay: Duration,
        /// The error that caused it.
        error: String,
    },
    /// The target asked to wait `delay` (`Retry-After`): try again then,
    /// spending no retry.
    Wait {
        /// What it asked for.
        delay: Duration,
        /// Its answer.
        error: String,
    },
}

/// Decides after call number `attempt` (1-based) of an item.
pub fn decide(result: Result<Value, HandlerError>, attempt: u32, settings: &Settings) -> Decision {
    match result {
        Ok(output) => Decision::Succeeded(output),
        Err(HandlerError::Permanent(error)) => Decision::Failed(error),
        Err(HandlerError::Throttled { error, after }) => Decision::Wait {
            delay: after,
            error,
        },
        Err(HandlerError::Transient(error)) if attempt > settings.max_retries => {
            Decision::Failed(format!("{error} (gave up after {attempt} attempts)"))
        }
        Err(HandlerError::Transient(error)) => Decision::Retry {
            delay: retry_delay(attempt, settings.retry_backoff, settings.max_backoff),
            error,
        },
    }
}

#[cfg(test)]
mod tests {
    use jetflow_protocol::job::Preset;

    use super::*;

    fn settings(max_retries: u32) -> Settings {
        Settings {
            max_retries,
            ..Preset::Balanced.settings()
        }
    }

    #[test]
    fn success_and_permanent_failure_are_final() {
        assert_eq!(
            decide(Ok(Value::Bool(true)), 1, &settings(3)),
            Decision::Succeeded(Value::Bool(true))
        );
        assert_eq!(
            decide(
                Err(HandlerError::Permanent("HTTP 422".into())),
                1,
                &settings(3)
            ),
            Decision::Failed("HTTP 422".into())
        );
    }

    #[test]
    fn transient_errors_retry_until_the_budget_is_spent() {
        let transient = || Err(HandlerError::Transient("HTTP 503".into()));
        for attempt in 1..=3 {
            assert!(matches!(
                decide(transient(), attempt, &settings(3)),
                Decision::Retry { .. }
            ));
        }
        match decide(transient(), 4, &settings(3)) {
            Decision::Failed(error) => {
                assert!(error.contains("HTTP 503") && error.contains("4 attempts"))
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            decide(transient(), 1, &settings(0)),
            Decision::Failed(_)
        ));
    }

    #[test]
    fn a_target_asking_for_time_is_waited_for_whatever_the_budget() {
        let throttled = || {
            Err(HandlerError::Throttled {
                error: "HTTP 429".into(),
                after: Duration::from_secs(2),
            })
        };
        for attempt in [1, 4, 50] {
            assert_eq!(
                decide(throttled(), attempt, &settings(0)),
                Decision::Wait {
                    delay: Duration::from_secs(2),
                    error: "HTTP 429".into()
                }
            );
        }
    }

    #[test]
    fn retry_delays_grow() {
        let s = settings(10);
        let delay = |attempt| match decide(Err(HandlerError::Transient("x".into())), attempt, &s) {
            Decision::Retry { delay, .. } => delay,
            other => panic!("{other:?}"),
        };
        // Jitter is ±50%, so attempt 4 (8x base) always exceeds attempt 1 (1x base).
        assert!(delay(4) > delay(1));
    }
}
