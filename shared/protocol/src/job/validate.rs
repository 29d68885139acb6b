//! Turning a submitted body into a job, or saying exactly why not.
//!
//! Two kinds of "no": a body that is not a job at all (not JSON or
//! MessagePack, not an object, an id we cannot use in a subject) is
//! [`Invalid::Undecodable`] and goes to the DLQ; a job with a bad field is
//! [`Invalid::Rejected`], announced on the job's `rejected` event.

use std::collections::HashSet;

use async_nats::HeaderMap;
use serde_json::Value;

pub use super::rejection::Rejection;
use super::rejection::{ended_statuses, http_url, nats_subject};
use super::spec::{
    Dependency, FailurePolicy, HandlerSpec, HttpHandler, JobSpec, NatsHandler, SourceSpec, StepCall,
};
use crate::{codec, names};

/// Why a submission did not become a job.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Invalid {
    /// Not a job at all: goes to the DLQ with this reason.
    #[error("not a job: {0}")]
    Undecodable(String),
    /// A job with a bad field: rejected under its id.
    #[error("job {id} rejected: {rejection}")]
    Rejected {
        /// The job id (given or assigned).
        id: String,
        /// What is wrong.
        rejection: Rejection,
    },
}

/// Limits that keep one job from hurting the others.
const MAX_FETCH_SIZE: u32 = 10_000;
pub(crate) const MAX_CONCURRENCY: u32 = 100_000;
pub(crate) const MAX_RETRIES: u32 = 100;
const MAX_INFLIGHT_BATCHES: u32 = 10_000;
/// Parked items fetch may run ahead of: a million small stored messages.
const MAX_PARKED: u32 = 1_000_000;

/// Parses and validates a submission. `new_id` is called for a job without
/// an id. On success the job has its id and fully resolved settings.
pub fn parse_submission(
    headers: Option<&HeaderMap>,
    payload: &[u8],
    new_id: impl FnOnce() -> String,
) -> Result<JobSpec, Invalid> {
    let value: Value =
        codec::decode(headers, payload).map_err(|e| Invalid::Undecodable(e.to_string()))?;
    let Value::Object(mut object) = value else {
        return Err(Invalid::Undecodable(
            "the body must be a JSON or MessagePack object".into(),
        ));
    };
    let id = match object.get("id") {
        None | Some(Value::Null) => new_id(),
        Some(Value::String(id)) => id.clone(),
        Some(other) => {
            return Err(Invalid::Undecodable(format!(
                "id: must be a string, got {other}"
            )))
        }
    };
    names::validate_job_id(&id).map_err(|e| Invalid::Undecodable(format!("id: {e}")))?;
    object.insert("id".into(), Value::String(id.clone()));

    let reject = |rejection| Invalid::Rejected {
        id: id.clone(),
        rejection,
    };
    let mut spec: JobSpec = serde_path_to_error::deserialize(Value::Object(object))
        .map_err(|e| reject(from_serde(e)))?;
    validate(&spec).map_err(reject)?;
    spec.fill_settings();
    Ok(spec)
}

fn from_serde(err: serde_path_to_error::Error<serde_json::Error>) -> Rejection {
    let mut field = err.path().to_string();
    let reason = err.inner().to_string();
    // Internally tagged enums report their tag's errors at the enum itself.
    let tag_error =
        reason.starts_with("unknown variant") || reason.contains("missing field `type`");
    if tag_error && !field.ends_with("type") {
        field = format!("{field}.type");
    }
    if field == "." {
        field = "job".into();
    }
    Rejection::new(field, reason)
}

/// Checks what serde cannot: ranges, URLs, duplicate ids, features this
/// version does not have.
pub fn validate(spec: &JobSpec) -> Result<(), Rejection> {
    validate_source(&spec.source)?;
    if let SourceSpec::Job { job, .. } = &spec.source {
        if spec.id.as_deref() == Some(job.as_str()) {
            return Err(Rejection::new(
                "source.job",
                "a job cannot read its own outcomes",
            ));
        }
    }
    validate_handler(&spec.handler)?;
    let s = spec.settings();
    in_range("batch.fetch_size", s.fetch_size, 1, MAX_FETCH_SIZE)?;
    in_range("batch.concurrency", s.concurrency, 1, MAX_CONCURRENCY)?;
    in_range("batch.max_retries", s.max_retries, 0, MAX_RETRIES)?;
    in_range(
        "batch.max_inflight_batches",
        s.max_inflight_batches,
        1,
        MAX_INFLIGHT_BATCHES,
    )?;
    in_range("batch.max_parked", s.max_parked, 0, MAX_PARKED)?;
    if s.retry_backoff.is_zero() {
        return Err(Rejection::new("batch.retry_backoff", "must be above zero"));
    }
    if s.max_backoff < s.retry_backoff {
        return Err(Rejection::new(
            "batch.max_backoff",
            "must not be below batch.retry_backoff",
        ));
    }
    if let Some(t) = spec.timeout {
        if t.get().is_zero() {
            return Err(Rejection::new("timeout", "must be above zero"));
        }
    }
    match (spec.failure_policy, spec.max_failure_ratio) {
        (FailurePolicy::MaxFailureRatio, None) => {
            return Err(Rejection::new(
                "max_failure_ratio",
                "is required with failure_policy \"max_failure_ratio\"",
            ))
        }
        (_, Some(r)) if !(r > 0.0 && r < 1.0) => {
            return Err(Rejection::new(
                "max_failure_ratio",
                format!("{r} is not between 0 and 1"),
            ))
        }
        _ => {}
    }
    validate_after(spec.id.as_deref(), &spec.after)?;
    super::reduction::validate(&spec.reduce)?;
    super::notify::validate(&spec.notify)?;
    if spec.kind.is_empty() || spec.kind.len() > 100 {
        return Err(Rejection::new("kind", "must be 1-100 characters"));
    }
    Ok(())
}

/// The most jobs one job may wait for.
pub const MAX_DEPENDENCIES: usize = 100;

/// Checks a job's `after` on its own (whether each dependency exists is
/// for intake to see): ids, no more than [`MAX_DEPENDENCIES`], not the job
/// itself (`id`), no repeats, and `on` ended statuses only.
fn validate_after(id: Option<&str>, after: &[Dependency]) -> Result<(), Rejection> {
    if after.len() > MAX_DEPENDENCIES {
        return Err(Rejection::new(
            "after",
            format!("at most {MAX_DEPENDENCIES} jobs"),
        ));
    }
    for (i, dep) in after.iter().enumerate() {
        let field = |name: &str| format!("after[{i}].{name}");
        names::validate_job_id(&dep.job).map_err(|e| Rejection::new(field("job"), e))?;
        if Some(dep.job.as_str()) == id {
            return Err(Rejection::new(field("job"), "a job cannot wait for itself"));
        }
        if after[..i].iter().any(|d| d.job == dep.job) {
            return Err(Rejection::new(
                field("job"),
                format!("{} is named twice", dep.job),
            ));
        }
        ended_statuses(&field("on"), &dep.on)?;
    }
    Ok(())
}

fn validate_source(source: &SourceSpec) -> Result<(), Rejection> {
    match source {
        SourceSpec::Http(http) => {
            http_url("source.url", &http.url)?;
            for (field, value) in [
                ("source.cursor_param", &http.cursor_param),
                ("source.limit_param", &http.limit_param),
                ("source.items_field", &http.items_field),
                ("source.id_field", &http.id_field),
                ("source.next_cursor_field", &http.next_cursor_field),
            ] {
                if value.is_empty() {
                    return Err(Rejection::new(field, "must not be empty"));
                }
            }
            positive("source.timeout", http.timeout.get())
        }
        SourceSpec::Ids { ids } => unique_ids("source.ids", ids.iter().map(|id| id.as_string())),
        SourceSpec::Items { items } => {
            unique_ids("source.items", items.iter().map(|item| item.id.as_string()))
        }
        SourceSpec::Nats { subject, timeout } => {
            nats_subject("source.subject", subject)?;
            positive("source.timeout", timeout.get())
        }
        SourceSpec::Job { job, .. } => {
            names::validate_job_id(job).map_err(|e| Rejection::new("source.job", e))
        }
    }
}

fn validate_handler(handler: &HandlerSpec) -> Result<(), Rejection> {
    match handler {
        HandlerSpec::Http(http) => validate_http("handler", http),
        HandlerSpec::Nats(nats) => validate_nats("handler", nats),
        HandlerSpec::External(external) => positive("handler.ack_wait", external.ack_wait.get()),
        HandlerSpec::Steps { steps } => {
            if steps.is_empty() {
                return Err(Rejection::new(
                    "handler.steps",
                    "must list at least one step",
                ));
            }
            let mut names = HashSet::new();
            for (i, step) in steps.iter().enumerate() {
                let field = format!("handler.steps[{i}]");
                if !names::is_token(&step.name) {
                    return Err(Rejection::new(
                        format!("{field}.name"),
                        format!("{:?} must be letters, digits, '_' or '-'", step.name),
                    ));
                }
                if !names.insert(step.name.as_str()) {
                    return Err(Rejection::new(
                        format!("{field}.name"),
                        format!("{:?} names two steps", step.name),
                    ));
                }
                if let Some(retries) = step.max_retries {
                    in_range(&format!("{field}.max_retries"), retries, 0, MAX_RETRIES)?;
                }
                match &step.call {
                    StepCall::Http(http) => validate_http(&format!("{field}.call"), http)?,
                    StepCall::Nats(nats) => validate_nats(&format!("{field}.call"), nats)?,
                }
            }
            Ok(())
        }
    }
}

fn validate_http(at: &str, http: &HttpHandler) -> Result<(), Rejection> {
    http_url(&format!("{at}.url"), &http.url)?;
    let method = http.method.to_ascii_uppercase();
    if !["GET", "POST", "PUT", "PATCH", "DELETE"].contains(&method.as_str()) {
        return Err(Rejection::new(
            format!("{at}.method"),
            format!(
                "{:?} is not one of GET, POST, PUT, PATCH, DELETE",
                http.method
            ),
        ));
    }
    if http.idempotency_header.is_empty() {
        return Err(Rejection::new(
            format!("{at}.idempotency_header"),
            "must not be empty",
        ));
    }
    if let Some(code) = http.retry_on.iter().find(|c| !(100..=599).contains(*c)) {
        return Err(Rejection::new(
            format!("{at}.retry_on"),
            format!("{code} is not an HTTP status"),
        ));
    }
    positive(&format!("{at}.timeout"), http.timeout.get())
}

fn validate_nats(at: &str, nats: &NatsHandler) -> Result<(), Rejection> {
    nats_subject(&format!("{at}.subject"), &nats.subject)?;
    positive(&format!("{at}.timeout"), nats.timeout.get())
}

pub(crate) fn positive(field: &str, d: std::time::Duration) -> Result<(), Rejection> {
    if d.is_zero() {
        Err(Rejection::new(field, "must be above zero"))
    } else {
        Ok(())
    }
}

pub(crate) fn in_range(field: &str, value: u32, min: u32, max: u32) -> Result<(), Rejection> {
    if (min..=max).contains(&value) {
        Ok(())
    } else {
        Err(Rejection::new(
            field,
            format!("{value} is outside {min}..={max}"),
        ))
    }
}

fn unique_ids(field: &str, ids: impl Iterator<Item = String>) -> Result<(), Rejection> {
    let mut seen = HashSet::new();
    for (i, id) in ids.enumerate() {
        if id.is_empty() {
            return Err(Rejection::new(
                format!("{field}[{i}]"),
                "id must not be empty",
            ));
        }
        if !seen.insert(id.clone()) {
            return Err(Rejection::new(
                format!("{field}[{i}]"),
                format!("duplicate id {id:?}: each item must appear once"),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(json: &str) -> Result<JobSpec, Invalid> {
        parse_submission(None, json.as_bytes(), || "job-new".to_string())
    }

    fn rejected_field(json: &str) -> String {
        match parse(json) {
            Err(Invalid::Rejected { rejection, .. }) => rejection.field,
            other => panic!("expected a rejection, got {other:?}"),
        }
    }

    const HANDLER: &str = r#""handler": {"type": "http", "url": "http://x/agents/{id}/migrate"}"#;

    #[test]
    fn accepts_the_spec_example_and_fills_settings() {
        let job = parse(&format!(
            r#"{{"id": "j1", "source": {{"type": "ids", "ids": ["a", 2]}}, {HANDLER},
                "batch": {{"fetch_size": 10}}, "preset": "conservative", "extra_field": 1}}"#
        ))
        .unwrap();
        assert_eq!(job.id.as_deref(), Some("j1"));
        assert_eq!(job.batch.fetch_size, Some(10));
        assert_eq!(job.batch.concurrency, Some(5));
        assert!(job.extra.contains_key("extra_field"));
    }

    #[test]
    fn assigns_an_id() {
        let job = parse(&format!(
            r#"{{"source": {{"type": "ids", "ids": []}}, {HANDLER}}}"#
        ))
        .unwrap();
        assert_eq!(job.id.as_deref(), Some("job-new"));
    }

    #[test]
    fn rejections_name_the_field() {
        assert_eq!(
            rejected_field(&format!(r#"{{"source": {{"type": "ftp"}}, {HANDLER}}}"#)),
            "source.type"
        );
        assert_eq!(
            rejected_field(
                r#"{"source": {"type": "ids", "ids": []}, "handler": {"type": "http"}}"#
            ),
            "handler"
        );
        assert_eq!(
            rejected_field(&format!(
                r#"{{"source": {{"type": "ids", "ids": []}}, {HANDLER}, "batch": {{"concurrency": 0}}}}"#
            )),
            "batch.concurrency"
        );
        assert_eq!(
            rejected_field(&format!(
                r#"{{"source": {{"type": "ids", "ids": ["a", "a"]}}, {HANDLER}}}"#
            )),
            "source.ids[1]"
        );
        assert_eq!(
            rejected_field(&format!(
                r#"{{"source": {{"type": "http", "url": "ftp://x"}}, {HANDLER}}}"#
            )),
            "source.url"
        );
        assert_eq!(
            rejected_field(&format!(
                r#"{{"source": {{"type": "ids", "ids": []}}, {HANDLER}, "timeout": "soon"}}"#
            )),
            "timeout"
        );
    }

    #[test]
    fn missing_handler_url_is_named() {
        match parse(r#"{"source": {"type": "ids", "ids": []}, "handler": {"type": "http"}}"#) {
            Err(Invalid::Rejected { rejection, .. }) => {
                assert!(rejection.reason.contains("`url`"), "{rejection}")
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn non_jobs_are_undecodable() {
        assert!(matches!(parse("{not json"), Err(Invalid::Undecodable(_))));
        assert!(matches!(parse("[1, 2]"), Err(Invalid::Undecodable(_))));
        assert!(matches!(
            parse(r#"{"id": "a.b"}"#),
            Err(Invalid::Undecodable(reason)) if reason.starts_with("id:")
        ));
    }
}

#[cfg(test)]
mod after_tests {
    use super::*;
    use crate::job::JobStatus;

    fn dep(job: &str, on: &[JobStatus]) -> Dependency {
        Dependency {
            job: job.into(),
            on: on.to_vec(),
        }
    }

    #[test]
    fn after_names_other_jobs_once_with_ended_statuses() {
        let ok = [
            dep("a", &[JobStatus::Completed]),
            dep("b", &[JobStatus::Failed]),
        ];
        assert!(validate_after(Some("c"), &ok).is_ok());
        for (after, field, why) in [
            (
                vec![dep("c", &[JobStatus::Completed])],
                "after[0].job",
                "itself",
            ),
            (
                vec![dep("a b", &[JobStatus::Completed])],
                "after[0].job",
                "letters",
            ),
            (
                vec![
                    dep("a", &[JobStatus::Completed]),
                    dep("a", &[JobStatus::Failed]),
                ],
                "after[1].job",
                "twice",
            ),
            (vec![dep("a", &[])], "after[0].on", "at least one"),
            (
                vec![dep("a", &[JobStatus::Fetching])],
                "after[0].on",
                "fetching",
            ),
        ] {
            let err = validate_after(Some("c"), &after).unwrap_err().to_string();
            assert!(err.contains(field) && err.contains(why), "{err}");
        }
        let json = r#"{"job": "a"}"#;
        let parsed: Dependency = serde_json::from_str(json).unwrap();
        assert_eq!(parsed.on, vec![JobStatus::Completed]);
    }
}
