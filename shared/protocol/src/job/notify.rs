//! Notifications of a job's end: `"notify": [{"url": "https://...", "on":
//! ["partial", "failed"]}, {"subject": "ops.jobs"}]`. When the job ends in a
//! status a notification's `on` lists, its final event is sent there, at
//! least once, with the key `<job>:<status>` so a receiver can drop
//! repeats (docs/protocol.md). A notification never changes the job.

use serde::{Deserialize, Serialize};

use super::{
    rejection::{ended_statuses, http_url, nats_subject, Rejection},
    status::JobStatus,
};

/// The most notifications one job may have.
pub const MAX_NOTIFICATIONS: usize = 10;

/// Where a job's end is told.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Notify {
    /// An HTTP(S) endpoint: the final event is POSTed to it as JSON.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// A NATS subject: the final event is published on it as JSON.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    /// The statuses it is sent for (default: every one a job ends in).
    #[serde(default = "every_end")]
    pub on: Vec<JobStatus>,
}

fn every_end() -> Vec<JobStatus> {
    vec![
        JobStatus::Completed,
        JobStatus::Partial,
        JobStatus::Failed,
        JobStatus::Cancelled,
    ]
}

impl Notify {
    /// Where it goes, for messages and logs: the URL or the subject.
    pub fn target(&self) -> &str {
        self.url
            .as_deref()
            .or(self.subject.as_deref())
            .unwrap_or_default()
    }

    /// The key a receiver drops repeats by: `<job>:<status>`.
    pub fn idempotency_key(job: &str, status: &str) -> String {
        format!("{job}:{status}")
    }
}

/// Checks a job's `notify`: at most [`MAX_NOTIFICATIONS`], each a URL or a
/// subject (not both), `on` ended statuses.
pub fn validate(notify: &[Notify]) -> Result<(), Rejection> {
    if notify.len() > MAX_NOTIFICATIONS {
        return Err(Rejection::new(
            "notify",
            format!("at most {MAX_NOTIFICATIONS} notifications"),
        ));
    }
    for (i, n) in notify.iter().enumerate() {
        let field = |name: &str| format!("notify[{i}].{name}");
        match (&n.url, &n.subject) {
            (Some(url), None) => http_url(&field("url"), url)?,
            (None, Some(subject)) => nats_subject(&field("subject"), subject)?,
            _ => {
                return Err(Rejection::new(
                    format!("notify[{i}]"),
                    "needs a url or a subject (one of them)",
                ))
            }
        }
        ended_statuses(&field("on"), &n.on)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(json: serde_json::Value) -> Vec<Notify> {
        serde_json::from_value(json).expect("notifications")
    }

    #[test]
    fn a_url_or_a_subject_for_ended_statuses() {
        let ok = parse(serde_json::json!([
            {"url": "https://hooks.example.com/jobs", "on": ["partial", "failed"]},
            {"subject": "ops.jobs"},
        ]));
        assert_eq!(validate(&ok), Ok(()));
        assert_eq!(ok[1].on.len(), 4);
        assert_eq!(ok[0].target(), "https://hooks.example.com/jobs");
        let cases = [
            (serde_json::json!([{}]), "notify[0]"),
            (
                serde_json::json!([{"url": "http://a/x", "subject": "s"}]),
                "notify[0]",
            ),
            (serde_json::json!([{"url": "ftp://a"}]), "notify[0].url"),
            (
                serde_json::json!([{"subject": "ops.*"}]),
                "notify[0].subject",
            ),
            (
                serde_json::json!([{"subject": "s", "on": ["processing"]}]),
                "notify[0].on",
            ),
            (
                serde_json::json!([{"subject": "s", "on": []}]),
                "notify[0].on",
            ),
        ];
        for (json, field) in cases {
            let err = validate(&parse(json.clone())).expect_err(&json.to_string());
            assert_eq!(err.field, field, "{json}");
        }
        assert_eq!(
            Notify::idempotency_key("j1", JobStatus::Partial.as_str()),
            "j1:partial"
        );
    }
}
