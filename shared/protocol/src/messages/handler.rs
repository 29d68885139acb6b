//! What `nats` handlers, steps and sources are sent and answer.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::work::Item;

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

/// What the reducer asks a `nats` reduction's subject (JSON): fold these
/// outputs into the accumulator. It may ask again with the same `acc` and
/// `outputs` after a crash (the answer is checkpointed with the fold), so
/// the reducer must be a function of the two.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ReduceRequest {
    /// Job id.
    pub job: String,
    /// The reduction's name.
    pub reduction: String,
    /// The accumulator so far (the reduction's `init` at first).
    pub acc: Value,
    /// The items' values (outputs, or what is at the reduction's `path`),
    /// in the order they were folded.
    pub outputs: Vec<Value>,
}

/// A `nats` reduction's answer: the new accumulator, or an error after
/// which the reduction folds nothing more (the job goes on).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ReduceReply {
    /// The accumulator with the outputs folded in (`null` is one; absent
    /// is none).
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub acc: Option<Value>,
    /// Set when the reducer gives up.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// A field that is there, even as `null`.
fn present<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Option<Value>, D::Error> {
    Value::deserialize(deserializer).map(Some)
}
