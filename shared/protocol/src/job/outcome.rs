//! How an item ended: its status and its outcome record, created once by
//! the reducer.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// How an item ended.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum ItemStatus {
    /// The handler succeeded.
    Succeeded,
    /// The handler failed for good.
    Failed,
}

/// Which items' outcomes something takes: a reduction's `on`, a `job`
/// source's `status`.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum OutcomeFilter {
    /// Succeeded items.
    #[default]
    Succeeded,
    /// Failed items.
    Failed,
    /// Every item.
    Any,
}

impl OutcomeFilter {
    /// Whether an item that ended `status` is taken.
    pub fn admits(self, status: ItemStatus) -> bool {
        match self {
            OutcomeFilter::Succeeded => status == ItemStatus::Succeeded,
            OutcomeFilter::Failed => status == ItemStatus::Failed,
            OutcomeFilter::Any => true,
        }
    }

    /// Whether it is the default (`succeeded`), which a spec may leave out.
    pub fn is_default(&self) -> bool {
        *self == OutcomeFilter::Succeeded
    }
}

/// Item outcome, KV `<ns>_items` key `<job>.<item-key>`. Created once; the
/// `result_seq` tells the reducer which ledger message created it (see
/// docs/exactly-once.md).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ItemOutcome {
    /// Job id.
    pub job: String,
    /// Item id.
    pub item: String,
    /// Batch number.
    pub batch: u64,
    /// Outcome.
    pub status: ItemStatus,
    /// The last error, for failures.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// What the handler answered, if anything worth keeping.
    #[serde(default, skip_serializing_if = "Value::is_null")]
    pub output: Value,
    /// For a failed item: the data it ran with (what `retry-failed` and a
    /// `job` source with `"data": "input"` run it with again).
    #[serde(default, skip_serializing_if = "Value::is_null")]
    pub input: Value,
    /// For a `steps` handler that failed: the step that failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failed_step: Option<String>,
    /// For a `steps` handler: each finished step's output, in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub messages: Vec<StepOutput>,
    /// Handler calls made.
    pub attempts: u32,
    /// Duration of the last call in milliseconds.
    pub duration_ms: u64,
    /// When the item finished.
    pub finished_at: DateTime<Utc>,
    /// Stream sequence of the ledger message that created (or, for a
    /// replay, replaced) this record.
    pub result_seq: u64,
    /// Position of the result within that message, for an `items` entry
    /// that carries several (0 otherwise).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub result_index: u32,
    /// A replay replaced an earlier outcome of this status.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replaced: Option<ItemStatus>,
    /// The outcome the replay replaced: what the job's reductions take
    /// back out, also when a reducer recognises this record as its own
    /// after a crash.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous: Option<Box<PreviousOutcome>>,
}

/// An outcome a DLQ replay replaced: the fields a reduction's path can
/// name.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct PreviousOutcome {
    /// Its status.
    pub status: ItemStatus,
    /// Its error.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Its output.
    #[serde(default, skip_serializing_if = "Value::is_null")]
    pub output: Value,
    /// The step that failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failed_step: Option<String>,
    /// Handler calls made.
    pub attempts: u32,
    /// The last call's duration.
    pub duration_ms: u64,
}

impl ItemOutcome {
    /// What a replay that replaces this outcome keeps of it.
    pub fn as_previous(&self) -> PreviousOutcome {
        PreviousOutcome {
            status: self.status,
            error: self.error.clone(),
            output: self.output.clone(),
            failed_step: self.failed_step.clone(),
            attempts: self.attempts,
            duration_ms: self.duration_ms,
        }
    }
}

/// What one step of a `steps` handler answered.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct StepOutput {
    /// The step's name.
    pub step: String,
    /// Its output.
    #[serde(default)]
    pub output: Value,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}
