//! Messages that flow between the stages. Batches, tasks and ledger entries
//! travel as MessagePack (volume); events as JSON (people read them).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::job::ItemStatus;

/// One item of work.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Item {
    /// The item id.
    pub id: String,
    /// Data for the handler.
    #[serde(default, skip_serializing_if = "Value::is_null")]
    pub data: Value,
    /// Priority, where given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<i32>,
}

/// One page of items, on `<ns>.batch.<job>`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct BatchMessage {
    /// Job id.
    pub job: String,
    /// Batch number, from 1.
    pub batch: u64,
    /// The page's items.
    pub items: Vec<Item>,
}

/// One item to run, on `<ns>.task.<job>`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct TaskMessage {
    /// Job id.
    pub job: String,
    /// Batch number.
    pub batch: u64,
    /// The item.
    pub item: Item,
}

/// How an item ended, as migrate reports it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ItemResult {
    /// Batch number.
    pub batch: u64,
    /// Item id.
    pub id: String,
    /// Outcome.
    pub status: ItemStatus,
    /// Last error, for failures.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Handler output worth keeping.
    #[serde(default, skip_serializing_if = "Value::is_null")]
    pub output: Value,
    /// Handler calls made (1 = no retry).
    pub attempts: u32,
    /// Whether the item's task was sent to the DLQ.
    #[serde(default)]
    pub dead_lettered: bool,
    /// Whether this is the result of a replayed task (`jetflow dlq replay`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub replay: bool,
    /// Duration of the last call, ms.
    pub duration_ms: u64,
    /// When it finished.
    pub finished_at: DateTime<Utc>,
}

/// A fact about a job, on its ledger `<ns>.result.<job>`. The reducer folds
/// these in stream order; everything it knows about a job comes from here,
/// which is what makes its checkpoint a single stream sequence.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum LedgerEntry {
    /// Fetch began paging.
    Started {
        /// When.
        at: DateTime<Utc>,
    },
    /// Fetch is about to publish batch `batch` of `size` items.
    Fetched {
        /// Batch number (fetch numbers batches 1, 2, 3, ... in order).
        batch: u64,
        /// Items in it.
        size: u64,
        /// When.
        at: DateTime<Utc>,
    },
    /// The source is exhausted.
    FetchDone {
        /// Batches published in all.
        batches: u64,
        /// Items in all.
        total: u64,
        /// When.
        at: DateTime<Utc>,
    },
    /// The source refused or failed for good; the job fails.
    FetchFailed {
        /// The source's answer, with the setting at fault.
        error: String,
        /// When.
        at: DateTime<Utc>,
    },
    /// The batch stage fanned batch `batch` out into tasks.
    Dispatched {
        /// Batch number.
        batch: u64,
        /// When.
        at: DateTime<Utc>,
    },
    /// An item finished.
    Item(ItemResult),
    /// Someone asked to cancel the job.
    Cancel {
        /// Why, if they said.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
        /// When.
        at: DateTime<Utc>,
    },
    /// Someone changed the job's live settings.
    Config {
        /// What changed.
        change: crate::job::ConfigChange,
        /// When.
        at: DateTime<Utc>,
    },
    /// The job's `timeout` passed.
    TimedOut {
        /// When.
        at: DateTime<Utc>,
    },
    /// Items whose dead-lettered tasks were published again (`jetflow dlq
    /// replay`): the job waits for their new results.
    Replayed {
        /// The items.
        items: Vec<String>,
        /// When.
        at: DateTime<Utc>,
    },
    /// The job was stopping, and every item that had started has finished:
    /// the reducer observed no task of the job in flight any more.
    Drained {
        /// When.
        at: DateTime<Utc>,
    },
}

/// The body of a cancel request on `<ns>.jobs.cancel.<job>` (an empty body is fine).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct CancelRequest {
    /// Why, for the job's state and `cancelled` event.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

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
}

impl JobEvent {
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
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec;

    #[test]
    fn ledger_entries_round_trip_in_msgpack_and_json() {
        let entries = vec![
            LedgerEntry::Started { at: Utc::now() },
            LedgerEntry::Fetched {
                batch: 3,
                size: 50,
                at: Utc::now(),
            },
            LedgerEntry::Item(ItemResult {
                batch: 3,
                id: "agent-1".into(),
                status: ItemStatus::Failed,
                error: Some("HTTP 422".into()),
                output: serde_json::json!({"a": 1}),
                attempts: 2,
                dead_lettered: true,
                replay: false,
                duration_ms: 12,
                finished_at: Utc::now(),
            }),
        ];
        for entry in entries {
            for format in [codec::Format::MsgPack, codec::Format::Json] {
                let bytes = codec::encode(format, &entry);
                let back: LedgerEntry = codec::decode(None, &bytes).unwrap();
                assert_eq!(back, entry);
            }
        }
    }
}
