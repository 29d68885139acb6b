//! A job's ledger: every fact the reducer folds, and how an item ended.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::job::StepOutput;
use crate::{
    job::{ItemOutcome, ItemStatus},
    names::item_key,
};

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
    /// For a failed item: the data it ran with, so that a job over this
    /// job's failures (`retry-failed`) runs it as it was.
    #[serde(default, skip_serializing_if = "Value::is_null")]
    pub input: Value,
    /// For a `steps` handler that failed: the step that failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failed_step: Option<String>,
    /// For a `steps` handler: each finished step's output, in order (the
    /// messages so far, for a failure to show how far it got).
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
    /// Whether the item had waited out a retry (a [`LedgerEntry::Parked`])
    /// before the call that gave this result: the reducer stops counting
    /// it as parked.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub parked: bool,
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
    /// Items of batch `batch` the source had given before (pages that
    /// overlap when the data shifts under a cursor): their tasks were not
    /// published again (the task stream de-duplicated them), so they count
    /// as `duplicates`, once, and close their places in the batch.
    Duplicates {
        /// Batch number.
        batch: u64,
        /// The items' ids.
        items: Vec<String>,
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
    /// An item's call failed and will be retried at `until`: its task
    /// waits in the task stream (a message schedule) holding no slot.
    /// Migrate records this before it schedules the retry.
    Parked {
        /// Batch number.
        batch: u64,
        /// Item id.
        id: String,
        /// Whether the item was not waiting out a retry already (its task
        /// did not come from one): only then does the batch count one more
        /// parked item.
        first: bool,
        /// When the retry is due.
        until: DateTime<Utc>,
        /// The error that is being retried.
        error: String,
    },
    /// Someone paused the job.
    Paused {
        /// When the pause ends by itself, if it does.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        until: Option<DateTime<Utc>>,
        /// Why, if they said.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
        /// When.
        at: DateTime<Utc>,
    },
    /// Someone resumed the job, or its timed pause ended.
    Resumed {
        /// Why, if known (`pause ended` for a timed pause).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
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

impl ItemResult {
    /// The id an external worker publishes `item`'s result under: one
    /// result per item within the duplicate window, however often its task
    /// is redelivered (docs/protocol.md).
    pub fn external_msg_id(job: &str, item_id: &str) -> String {
        format!("{job}:item:{}", item_key(item_id))
    }

    /// The id of the result of a replayed task (`jetflow dlq replay`):
    /// `dead_letter` is the replayed letter's sequence, so a repeat of the
    /// same replay stores the result once. Other results go in groups
    /// without an id; the outcome record's create-if-absent catches their
    /// duplicates (docs/exactly-once.md).
    pub fn replay_msg_id(job: &str, dead_letter: &str, item_id: &str) -> String {
        format!("{job}:replay:{dead_letter}:{}", item_key(item_id))
    }
}

impl LedgerEntry {
    /// The de-duplication id this entry is appended under, for the entries
    /// whose content says which fact they are. The others take theirs from
    /// what they answer: [`LedgerEntry::config_msg_id`],
    /// [`LedgerEntry::replayed_msg_id`], [`ItemResult::replay_msg_id`]; a
    /// group of results has none.
    pub fn msg_id(&self, job: &str) -> Option<String> {
        Some(match self {
            LedgerEntry::Started { .. } => format!("{job}:started"),
            LedgerEntry::Fetched { batch, .. } => format!("{job}:fetched:{batch}"),
            LedgerEntry::FetchDone { .. } => format!("{job}:fetch_done"),
            LedgerEntry::FetchFailed { .. } => format!("{job}:fetch_failed"),
            LedgerEntry::Dispatched { batch, .. } => format!("{job}:dispatched:{batch}"),
            LedgerEntry::Duplicates { batch, .. } => format!("{job}:duplicates:{batch}"),
            LedgerEntry::Cancel { .. } => format!("{job}:cancel"),
            LedgerEntry::TimedOut { .. } => format!("{job}:timeout"),
            LedgerEntry::Drained { .. } => format!("{job}:drained"),
            LedgerEntry::Item(_)
            | LedgerEntry::Items { .. }
            | LedgerEntry::Config { .. }
            | LedgerEntry::Replayed { .. }
            | LedgerEntry::Parked { .. }
            | LedgerEntry::Paused { .. }
            | LedgerEntry::Resumed { .. } => return None,
        })
    }

    /// The id of the settings change requested by message `request_seq` of
    /// the jobs stream: one entry per request, however often it is
    /// redelivered.
    pub fn config_msg_id(job: &str, request_seq: u64) -> String {
        format!("{job}:config:{request_seq}")
    }

    /// The id of the `parked` entry for the task migrate received as
    /// `task_seq`: a crash before the task is acked records it once.
    pub fn parked_msg_id(job: &str, task_seq: u64) -> String {
        format!("{job}:parked:{task_seq}")
    }

    /// The id of the pause or resume requested by message `request_seq` of
    /// the jobs stream (`kind`: `pause`, `resume`).
    pub fn pause_msg_id(job: &str, kind: &str, request_seq: u64) -> String {
        format!("{job}:{kind}:{request_seq}")
    }

    /// The id of the `resumed` entry that ends a pause timed to end at
    /// `until` (the reducer appends it; two owners append it once).
    pub fn pause_ended_msg_id(job: &str, until: DateTime<Utc>) -> String {
        format!("{job}:resume:at:{}", until.timestamp_millis())
    }

    /// The id of a `replayed` entry whose first dead letter is `first_seq`.
    pub fn replayed_msg_id(job: &str, first_seq: u64) -> String {
        format!("{job}:replayed:{first_seq}")
    }
}

// Beside the result it is made from: the job state types know nothing of
// the messages that carry them.
impl ItemOutcome {
    /// The outcome record `result` makes for `job`, tagged with where it
    /// stands on the ledger: entry `seq`, position `index` within it.
    ///
    /// Every field of the result is named here, so a field added to
    /// [`ItemResult`] does not compile until it
    /// is decided whether the record keeps it.
    pub fn from_result(job: &str, result: &ItemResult, seq: u64, index: u32) -> Self {
        let ItemResult {
            batch,
            id,
            status,
            error,
            output,
            input,
            failed_step,
            messages,
            attempts,
            // The DLQ holds the task; the record says how the item ended.
            dead_lettered: _,
            // Recorded as `replaced` when the replay replaces an outcome.
            replay: _,
            // Only the reducer's count of parked items needs it.
            parked: _,
            duration_ms,
            finished_at,
        } = result;
        Self {
            job: job.to_string(),
            item: id.clone(),
            batch: *batch,
            status: *status,
            error: error.clone(),
            output: output.clone(),
            input: input.clone(),
            failed_step: failed_step.clone(),
            messages: messages.clone(),
            attempts: *attempts,
            duration_ms: *duration_ms,
            finished_at: *finished_at,
            result_seq: seq,
            result_index: index,
            replaced: None,
            previous: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec;

    /// A failed `steps` item with every field set.
    fn failed_result() -> ItemResult {
        ItemResult {
            batch: 3,
            id: "agent-1".into(),
            status: ItemStatus::Failed,
            error: Some("HTTP 422".into()),
            output: serde_json::json!({"a": 1}),
            input: Value::Null,
            failed_step: Some("execute".into()),
            messages: vec![StepOutput {
                step: "ensure".into(),
                output: serde_json::json!({"thread": "t-1"}),
            }],
            attempts: 2,
            dead_lettered: true,
            replay: false,
            parked: true,
            duration_ms: 12,
            finished_at: Utc::now(),
        }
    }

    #[test]
    fn ledger_entries_round_trip_in_msgpack_and_json() {
        let entries = vec![
            LedgerEntry::Started { at: Utc::now() },
            LedgerEntry::Fetched {
                batch: 3,
                size: 50,
                at: Utc::now(),
            },
            LedgerEntry::Item(failed_result()),
            LedgerEntry::Parked {
                batch: 3,
                id: "agent-2".into(),
                first: true,
                until: Utc::now(),
                error: "HTTP 503".into(),
            },
            LedgerEntry::Paused {
                until: Some(Utc::now()),
                reason: Some("api maintenance".into()),
                at: Utc::now(),
            },
            LedgerEntry::Resumed {
                reason: None,
                at: Utc::now(),
            },
        ];
        for entry in entries {
            for format in [codec::Format::MsgPack, codec::Format::Json] {
                let bytes = codec::encode(format, &entry);
                let back: LedgerEntry = codec::decode(None, &bytes).unwrap();
                assert_eq!(back, entry);
            }
        }
    }

    #[test]
    fn entries_that_name_their_fact_carry_its_id() {
        let at = Utc::now();
        let id = |entry: LedgerEntry| entry.msg_id("j1");
        assert_eq!(
            id(LedgerEntry::Started { at }).as_deref(),
            Some("j1:started")
        );
        let fetched = LedgerEntry::Fetched {
            batch: 7,
            size: 1,
            at,
        };
        assert_eq!(id(fetched).as_deref(), Some("j1:fetched:7"));
        let dispatched = LedgerEntry::Dispatched { batch: 7, at };
        assert_eq!(id(dispatched).as_deref(), Some("j1:dispatched:7"));
        let duplicates = LedgerEntry::Duplicates {
            batch: 7,
            items: vec!["a".into()],
            at,
        };
        assert_eq!(id(duplicates).as_deref(), Some("j1:duplicates:7"));
        assert_eq!(
            id(LedgerEntry::Drained { at }).as_deref(),
            Some("j1:drained")
        );
        assert_eq!(
            id(LedgerEntry::TimedOut { at }).as_deref(),
            Some("j1:timeout")
        );
        let group = LedgerEntry::Items { results: vec![] };
        assert_eq!(id(group), None, "a group of results has no id");
        assert_eq!(LedgerEntry::config_msg_id("j1", 42), "j1:config:42");
        assert_eq!(
            ItemResult::replay_msg_id("j1", "9", "a.b"),
            "j1:replay:9:=YS5i",
            "item ids are keyed as in the outcome records"
        );
    }

    #[test]
    fn an_outcome_keeps_what_the_result_says_and_where_it_stands() {
        let result = failed_result();
        let outcome = ItemOutcome::from_result("j1", &result, 40, 7);
        assert_eq!(
            (outcome.job.as_str(), outcome.item.as_str(), outcome.batch),
            ("j1", "agent-1", 3)
        );
        assert_eq!(outcome.status, ItemStatus::Failed);
        assert_eq!(outcome.error, result.error);
        assert_eq!(outcome.output, result.output);
        assert_eq!(outcome.failed_step, result.failed_step);
        assert_eq!(outcome.messages, result.messages);
        assert_eq!((outcome.attempts, outcome.duration_ms), (2, 12));
        assert_eq!(outcome.finished_at, result.finished_at);
        assert_eq!((outcome.result_seq, outcome.result_index), (40, 7));
        assert_eq!(outcome.replaced, None);
    }
}
