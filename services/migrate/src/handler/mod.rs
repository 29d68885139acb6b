//! Running an item's handler: `http`, `nats`, or a chain of `steps`.

pub mod http;
pub mod nats;
pub(crate) mod steps;

use jetflow_protocol::messages::{Item, StepOutput};
use serde_json::Value;

/// Why a handler call did not succeed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HandlerError {
    /// Worth retrying: 429, 5xx, timeouts, connection errors, listed
    /// statuses, no worker answering, a worker saying `retryable`.
    #[error("{0}")]
    Transient(String),
    /// Not worth retrying: the target said no.
    #[error("{0}")]
    Permanent(String),
    /// The target asked for time (a 429 or 503 with `Retry-After`): call
    /// again once `after` has passed, without spending a retry.
    #[error("{error} (asked to wait {after:?})")]
    Throttled {
        /// The answer.
        error: String,
        /// How long it asked to wait.
        after: std::time::Duration,
    },
}

/// One call of a handler (or of one step) for one item.
#[derive(Debug, Clone, Copy)]
pub struct Call<'a> {
    /// Job id.
    pub job: &'a str,
    /// The item.
    pub item: &'a Item,
    /// The job's `params`.
    pub params: &'a Value,
    /// Which delivery of the item this is.
    pub attempt: u32,
    /// The step, for a `steps` handler.
    pub step: Option<&'a str>,
    /// The previous step's output.
    pub input: &'a Value,
}

impl Call<'_> {
    /// What the target de-duplicates by: `<job>:<item>`, or
    /// `<job>:<item>:<step>` for a step (each step is its own effect).
    pub fn idempotency_key(&self) -> String {
        match self.step {
            Some(step) => format!("{}:{}:{step}", self.job, self.item.id),
            None => format!("{}:{}", self.job, self.item.id),
        }
    }
}

/// What a `steps` handler did before it finished or failed.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Trail {
    /// The step that failed for good, if one did.
    pub failed_step: Option<String>,
    /// Each finished step's output, in order.
    pub messages: Vec<StepOutput>,
    /// A step that must be tried again later: where the chain resumes.
    pub retry: Option<steps::StepRetry>,
}
