//! A job refused, with the field at fault; and the checks of a field that
//! more than one part of a spec shares.

use super::status::JobStatus;

/// A job that was refused, with the field at fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct Rejection {
    /// Dotted path of the offending field (`source.type`, `batch.fetch_size`).
    pub field: String,
    /// What is wrong with it.
    pub reason: String,
}

impl Rejection {
    pub(crate) fn new(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            reason: reason.into(),
        }
    }
}

/// A subject one can publish to: dot-separated tokens, no wildcards.
pub(crate) fn nats_subject(field: &str, subject: &str) -> Result<(), Rejection> {
    let ok = !subject.is_empty()
        && subject.split('.').all(|token| {
            !token.is_empty()
                && token != "*"
                && token != ">"
                && !token.chars().any(|c| c.is_whitespace())
        });
    if ok {
        Ok(())
    } else {
        Err(Rejection::new(
            field,
            format!("{subject:?} is not a subject one can publish to"),
        ))
    }
}

/// An `http://` or `https://` URL with a host.
pub(crate) fn http_url(field: &str, url: &str) -> Result<(), Rejection> {
    let rest = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"));
    match rest {
        Some(rest) if !rest.is_empty() && !rest.starts_with('/') => Ok(()),
        _ => Err(Rejection::new(
            field,
            format!("{url:?} is not an http:// or https:// URL"),
        )),
    }
}

/// A list of statuses a job ends in (an `after`'s or a `notify`'s `on`):
/// at least one, each an ended status.
pub(crate) fn ended_statuses(field: &str, statuses: &[JobStatus]) -> Result<(), Rejection> {
    if statuses.is_empty() {
        return Err(Rejection::new(field, "must name at least one status"));
    }
    match statuses.iter().find(|s| !s.is_terminal()) {
        Some(status) => Err(Rejection::new(
            field,
            format!(
                "{status} is not a status a job ends in (completed, partial, failed, cancelled)"
            ),
        )),
        None => Ok(()),
    }
}
