//! A job's lifecycle status: its own module, as the spec (a dependency's
//! `on`) and the state both name it.

use serde::{Deserialize, Serialize};

/// A job's lifecycle.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Hash)]
#[serde(rename_all = "snake_case")]
pub enum JobStatus {
    /// Accepted; waits for the jobs its `after` names to end before it
    /// fetches anything.
    Waiting,
    /// Accepted, nothing fetched yet.
    Pending,
    /// Pages are being fetched (and items processed).
    Fetching,
    /// All pages fetched; items still running.
    Processing,
    /// Every item succeeded.
    Completed,
    /// Finished with some items failed.
    Partial,
    /// The job itself failed (source refused, fail-fast, timeout).
    Failed,
    /// Paused on request: no page is fetched and no item starts until it
    /// is resumed (or its `paused_until` passes); items in flight finish.
    Paused,
    /// Cancel requested; in-flight items finishing.
    Cancelling,
    /// Cancelled.
    Cancelled,
}

impl JobStatus {
    /// Whether the job may still run items: not ended, not stopping
    /// (a paused job is active: it will run them once resumed).
    pub fn is_active(self) -> bool {
        !self.is_terminal() && self != JobStatus::Cancelling
    }

    /// Whether items of the job may start now: active and not paused.
    pub fn runs_items(self) -> bool {
        self.is_active() && self != JobStatus::Paused
    }

    /// Whether the job has ended.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            JobStatus::Completed | JobStatus::Partial | JobStatus::Failed | JobStatus::Cancelled
        )
    }

    /// The status as its contract word (also the name of the event).
    pub fn as_str(self) -> &'static str {
        match self {
            JobStatus::Waiting => "waiting",
            JobStatus::Pending => "pending",
            JobStatus::Fetching => "fetching",
            JobStatus::Processing => "processing",
            JobStatus::Completed => "completed",
            JobStatus::Partial => "partial",
            JobStatus::Failed => "failed",
            JobStatus::Paused => "paused",
            JobStatus::Cancelling => "cancelling",
            JobStatus::Cancelled => "cancelled",
        }
    }
}

impl std::fmt::Display for JobStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}
