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
    /// For a `steps` handler that failed: the step that failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failed_step: Option<String>,
    /// For a `steps` handler: each finished step's output, in order (the
    /// seeds' "messages so far").
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub messages: Vec<StepOutput>,
    /// Handler calls made (1 = no retry).
    #[serde(default = "one")]
    pub attempts: u32,
    /// Whether the item's task was sent to the DLQ.
    #[serde(default)]
    pub dead_lettered: bool,
    /// Whether this is the result of a replayed task (`jetflow dlq replay`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub replay: bool,
    /// Duration of the last call, ms.
    #[serde(default)]
    pub duration_ms: u64,
    /// When it finished.
    #[serde(default = "Utc::now")]
    pub finished_at: DateTime<Utc>,
}

fn one() -> u32 {
    1
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

/// The request a `nats` handler (or step) receives for one item (JSON).
/// Headers: `Jetflow-Job`, `Jetflow-Item`, `Idempotency-Key`
/// (`<job>:<item>`, or `<job>:<item>:<step>` for a step) and `traceparent`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct HandlerRequest {
    /// Job id.
    pub job: String,
    /// The item.
    pub item: Item,
    /// The job's `params`.
    #[serde(default)]
    pub params: Value,
    /// Which delivery of the item this is (1 = first).
    pub attempt: u32,
    /// The step, for a `steps` handler.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step: Option<String>,
    /// The previous step's output (null for a first step or a plain handler).
    #[serde(default)]
    pub input: Value,
}

/// A worker's reply to a [`HandlerRequest`] (JSON or MessagePack).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct HandlerReply {
    /// Whether the item's work succeeded.
    pub ok: bool,
    /// What it produced (kept in the item's outcome; passed to the next step).
    #[serde(default, skip_serializing_if = "Value::is_null")]
    pub output: Value,
    /// Why it failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Whether trying again may succeed (timeouts, rate limits).
    #[serde(default)]
    pub retryable: bool,
}

impl HandlerReply {
    /// A success with `output`.
    pub fn success(output: Value) -> Self {
        Self {
            ok: true,
            output,
            error: None,
            retryable: false,
        }
    }

    /// A failure; `retryable` says whether to try again.
    pub fn failure(error: impl Into<String>, retryable: bool) -> Self {
        Self {
            ok: false,
            output: Value::Null,
            error: Some(error.into()),
            retryable,
        }
    }
}

/// The page request of a `nats` source (JSON).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct PageRequest {
    /// The cursor the previous page returned; null for the first page.
    pub cursor: Option<String>,
    /// Items wanted at most.
    pub limit: u32,
    /// Job id, for sources serving several jobs.
    pub job: String,
}

/// A `nats` source's reply: a page, or an error that fails the job.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct PageReply {
    /// The page's items: ids, or `{"id", "data"}` objects.
    #[serde(default)]
    pub items: Vec<crate::job::InlineItemOrId>,
    /// The next cursor; absent, null or "" when this was the last page.
    #[serde(default)]
    pub next_cursor: Option<String>,
    /// Set when the source refuses: the job fails with this reason.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
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
    /// Several items finished: how migrate reports results, grouping what
    /// finished while its previous group was being stored, so that a busy
    /// job costs one stored write per group rather than one per item.
    Items {
        /// The results, each counted as if it were its own `item` entry.
        results: Vec<ItemResult>,
    },
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
    /// Where the job's tasks wait (`accepted`, `started`): what external
    /// workers pull from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tasks: Option<TaskQueue>,
}

/// Where a job's tasks wait: a durable pull consumer on the tasks stream.
/// For an `external` job, workers in any language pull from it, ack each
/// task once its result is on the job's ledger, and let the server
/// redeliver what they do not ack (docs/protocol.md).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct TaskQueue {
    /// The stream, `<NS>_TASKS`.
    pub stream: String,
    /// The durable consumer, `task_<job>`.
    pub consumer: String,
    /// The subject tasks are on, `<ns>.task.<job>`.
    pub subject: String,
    /// Where results go: the job's ledger, `<ns>.result.<job>`.
    pub results: String,
}

impl TaskQueue {
    /// The task queue of `job` under `names`.
    pub fn of(names: &crate::Names, job: &str) -> Self {
        Self {
            stream: names.tasks_stream(),
            consumer: names.task_consumer(job),
            subject: names.task_subject(job),
            results: names.result_subject(job),
        }
    }
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
            tasks: None,
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
                failed_step: Some("execute".into()),
                messages: vec![StepOutput {
                    step: "ensure".into(),
                    output: serde_json::json!({"thread": "t-1"}),
                }],
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
