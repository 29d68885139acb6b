//! Requests to a running job.

use serde::{Deserialize, Serialize};

/// The body of a cancel request on `<ns>.jobs.cancel.<job>` (an empty body is fine).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct CancelRequest {
    /// Why, for the job's state and `cancelled` event.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// The body of a pause request on `<ns>.jobs.pause.<job>` (an empty body
/// pauses until a resume).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct PauseRequest {
    /// When the pause ends by itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until: Option<chrono::DateTime<chrono::Utc>>,
    /// How long the pause lasts (instead of `until`), e.g. `"2h"`.
    #[serde(default, rename = "for", skip_serializing_if = "Option::is_none")]
    pub for_: Option<crate::duration::HumanDuration>,
    /// Why, for the job's state and `paused` event.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

impl PauseRequest {
    /// When the pause ends, as of `now`; an error names a request that
    /// sets both `until` and `for`, or an end that has already passed.
    pub fn ends_at(
        &self,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Result<Option<chrono::DateTime<chrono::Utc>>, String> {
        match (self.until, self.for_) {
            (Some(_), Some(_)) => Err("give `until` or `for`, not both".into()),
            (Some(until), None) if until <= now => {
                Err(format!("`until` {until} has already passed"))
            }
            (Some(until), None) => Ok(Some(until)),
            (None, Some(span)) => chrono::Duration::from_std(span.get())
                .ok()
                .and_then(|span| now.checked_add_signed(span))
                .map(Some)
                .ok_or_else(|| format!("`for` {span} is too long")),
            (None, None) => Ok(None),
        }
    }
}

/// The body of a resume request on `<ns>.jobs.resume.<job>` (an empty body is fine).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct ResumeRequest {
    /// Why, for the `resumed` event.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

#[cfg(test)]
mod tests {
    use chrono::{Duration, TimeZone, Utc};

    use super::*;

    #[test]
    fn a_pause_ends_at_until_or_after_for_or_never() {
        let now = Utc.with_ymd_and_hms(2026, 12, 2, 6, 0, 0).unwrap();
        let body = |json: &str| serde_json::from_str::<PauseRequest>(json).unwrap();
        assert_eq!(body("{}").ends_at(now), Ok(None));
        assert_eq!(
            body(r#"{"for": "2h", "reason": "api maintenance"}"#).ends_at(now),
            Ok(Some(now + Duration::hours(2)))
        );
        assert_eq!(
            body(r#"{"until": "2026-12-02T07:30:00Z"}"#).ends_at(now),
            Ok(Some(now + Duration::minutes(90)))
        );
        assert!(body(r#"{"until": "2026-12-02T05:00:00Z"}"#)
            .ends_at(now)
            .unwrap_err()
            .contains("already passed"));
        assert!(body(r#"{"until": "2026-12-02T07:00:00Z", "for": "1h"}"#)
            .ends_at(now)
            .is_err());
    }
}
