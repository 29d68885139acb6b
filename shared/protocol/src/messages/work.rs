//! The work itself: pages of items, and one task per item.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::{job::StepOutput, names::item_key};

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

/// Puts `items` in the order their tasks should run: higher `priority`
/// first, an item without one as priority 0, and items of equal priority
/// as they came (a stable sort).
pub fn by_priority(items: &mut [Item]) {
    items.sort_by_key(|item| std::cmp::Reverse(item.priority.unwrap_or(0)));
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

impl BatchMessage {
    /// The de-duplication id of batch `batch` of `job`: fetch publishes each
    /// page once, however often it is asked to after a crash.
    pub fn msg_id(job: &str, batch: u64) -> String {
        format!("{job}:batch:{batch}")
    }
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
    /// On a `steps` task waiting out a step's retry: where its chain
    /// resumes. Absent on every task batch publishes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resume: Option<StepResume>,
}

/// Where a chain of steps resumes after one of its steps waited out a
/// retry: a crash while it waits loses none of the steps already done.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct StepResume {
    /// Index of the step to run next (0-based).
    pub step: usize,
    /// Calls that step has made already.
    pub tries: u32,
    /// The outputs of the steps before it, in order.
    #[serde(default)]
    pub done: Vec<StepOutput>,
}

impl TaskMessage {
    /// The de-duplication id of `item`'s task in `job`: batch publishes an
    /// item's task once within the stream's duplicate window, however often
    /// its batch is redelivered.
    pub fn msg_id(job: &str, item_id: &str) -> String {
        format!("{job}:{}", item_key(item_id))
    }

    /// The id of a task migrate held back behind an open breaker and
    /// published again as `seq` (the original's stream sequence), so a
    /// crash between publishing and acking publishes it once.
    pub fn held_msg_id(job: &str, seq: u64) -> String {
        format!("{job}:held:{seq}")
    }

    /// The id of the retry migrate scheduled for the task it received as
    /// `seq`: a crash between scheduling and acking schedules it once.
    pub fn retry_msg_id(job: &str, seq: u64) -> String {
        format!("{job}:retry:{seq}")
    }

    /// The id of a dead-lettered task published again by `jetflow dlq
    /// replay`: `seq` is the dead letter's sequence in `dlq_stream`, so a
    /// replay repeated after a crash publishes each letter once.
    pub fn replay_msg_id(dlq_stream: &str, seq: u64) -> String {
        format!("replay:{dlq_stream}:{seq}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn items_go_higher_priority_first_and_equal_ones_as_they_came() {
        let item = |id: &str, priority| Item {
            id: id.into(),
            data: Value::Null,
            priority,
        };
        let mut items = vec![
            item("a", None),
            item("b", Some(-1)),
            item("c", Some(5)),
            item("d", None),
            item("e", Some(5)),
            item("f", Some(0)),
        ];
        by_priority(&mut items);
        let order: Vec<&str> = items.iter().map(|i| i.id.as_str()).collect();
        assert_eq!(order, ["c", "e", "a", "d", "f", "b"]);
    }
}
