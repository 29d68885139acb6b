//! Lifecycle events.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::job::{reduction::Results, TaskQueue};

/// Lifecycle events, on `<ns>.events.<job>.<event>` (JSON).
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    /// The job was valid and is queued.
    Accepted,
    /// The job was invalid; `reason` says why.
    Rejected,
    /// Fetching began.
    Started,
    /// A batch's items all have outcomes.
    BatchDone,
    /// Every item succeeded.
    Completed,
    /// Ended with failed items.
    Partial,
    /// The job failed.
    Failed,
    /// The job was cancelled.
    Cancelled,
    /// The job was paused.
    Paused,
    /// A paused job was resumed (on request, or its pause ended).
    Resumed,
}

impl EventKind {
    /// The last token of the event's subject.
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::Accepted => "accepted",
            EventKind::Rejected => "rejected",
            EventKind::Started => "started",
            EventKind::BatchDone => "batch_done",
            EventKind::Completed => "completed",
            EventKind::Partial => "partial",
            EventKind::Failed => "failed",
            EventKind::Cancelled => "cancelled",
            EventKind::Paused => "paused",
            EventKind::Resumed => "resumed",
        }
    }
}

/// A lifecycle event.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct JobEvent {
    /// Job id.
    pub job: String,
    /// What happened.
    pub event: EventKind,
    /// When.
    pub at: DateTime<Utc>,
    /// Why (rejected, failed, cancelled).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The batch (batch_done).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub batch: Option<u64>,
    /// Items in scope (the batch, or the job at its end).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total: Option<u64>,
    /// Succeeded items in scope.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub succeeded: Option<u64>,
    /// Failed items in scope.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failed: Option<u64>,
    /// Where the job's tasks wait (`accepted`, `started`): what external
    /// workers pull from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tasks: Option<TaskQueue>,
    /// The job's reductions (its end): as in its state's `results`.
    #[serde(default, skip_serializing_if = "Results::is_empty")]
    pub results: Results,
}

impl JobEvent {
    /// The de-duplication id of this event: one of each kind per job, or
    /// per `dedupe` number (a batch's `batch_done`).
    pub fn msg_id(&self, dedupe: Option<u64>) -> String {
        let kind = self.event.as_str();
        match dedupe {
            Some(n) => format!("{}:{kind}:{n}", self.job),
            None => format!("{}:{kind}", self.job),
        }
    }

    /// An event with no details.
    pub fn new(job: &str, event: EventKind) -> Self {
        Self {
            job: job.to_string(),
            event,
            at: Utc::now(),
            reason: None,
            batch: None,
            total: None,
            succeeded: None,
            failed: None,
            tasks: None,
            results: Results::new(),
        }
    }
}
