//! A `job` source: another job's item outcomes are this job's items, each
//! with its id and, as data, its output (or, with `"data": "input"`, the
//! data a failed item ran with).
//!
//! The outcomes are read straight from the items bucket's stream, through
//! one ordered consumer per pager: the last revision of each of the job's
//! keys (a replay's replacement, not the failure it replaced), in stream
//! order, streamed, so a job of a million items pages in flat memory. The
//! cursor is the stream sequence of the last record a page took; the other
//! job has ended before the first page (the pager waits for it), so its
//! records no longer change and a page asked for again after a crash is
//! the same page. A consumer opened at a cursor skips what came before it.

use std::time::Duration;

use async_nats::jetstream::{
    self,
    consumer::{
        pull::{Ordered, OrderedConfig},
        DeliverPolicy,
    },
    Message,
};
use futures::StreamExt;
use jetflow_protocol::{
    codec,
    job::{spec::JobSourceData, ItemOutcome, ItemStatus, OutcomeFilter},
    messages::Item,
};
use jetflow_runtime::Bus;
use serde_json::Value;
use tokio::sync::Mutex;

use super::{Page, SourceError};

/// How long a record may take to arrive before the page is retried.
const READ_TIMEOUT: Duration = Duration::from_secs(10);

/// Another job's outcomes, ready to page.
pub struct JobSource {
    js: jetstream::Context,
    stream: String,
    filter: String,
    job: String,
    status: OutcomeFilter,
    data: JobSourceData,
    reading: Mutex<Option<Reading>>,
}

/// The ordered consumer a pager reads through, and where it is.
struct Reading {
    messages: Ordered,
    /// Stream sequence of the last record taken (0: none yet).
    at: u64,
    /// Records after `at` that the consumer has not delivered; 0 at the end.
    left: u64,
    /// A consumer opened at a cursor starts over: the records up to this
    /// stream sequence were taken by the pages before it.
    skip_through: u64,
}

impl JobSource {
    /// The outcomes of `job` that `status` admits.
    pub fn new(bus: &Bus, job: &str, status: OutcomeFilter, data: JobSourceData) -> Self {
        let bucket = bus.names.items_bucket();
        JobSource {
            js: bus.js.clone(),
            stream: format!("KV_{bucket}"),
            filter: format!("$KV.{bucket}.{job}.>"),
            job: job.to_string(),
            status,
            data,
            reading: Mutex::new(None),
        }
    }

    /// The page after stream sequence `cursor` (`None`: from the start).
    pub async fn page(&self, cursor: Option<&str>, limit: u32) -> Result<Page, SourceError> {
        let after = match cursor {
            None => 0,
            Some(c) => c.parse::<u64>().map_err(|_| {
                SourceError::Refused(format!("job source {}: bad cursor {c:?}", self.job))
            })?,
        };
        let mut reading = self.reading.lock().await;
        if reading.as_ref().is_none_or(|r| r.at != after) {
            *reading = None;
            *reading = Some(self.open(after).await?);
        }
        let Some(r) = reading.as_mut() else {
            return Err(self.unavailable("no consumer"));
        };
        let mut items = Vec::new();
        while r.left > 0 && items.len() < limit as usize {
            let msg = match tokio::time::timeout(READ_TIMEOUT, r.messages.next()).await {
                Ok(Some(Ok(msg))) => msg,
                Ok(Some(Err(err))) => {
                    *reading = None;
                    return Err(self.unavailable(&err.to_string()));
                }
                Ok(None) | Err(_) => {
                    *reading = None;
                    return Err(self.unavailable("no record within 10s"));
                }
            };
            let info = msg.info().map_err(|e| self.unavailable(&e.to_string()))?;
            let (seq, left) = (info.stream_sequence, info.pending);
            r.left = left;
            if seq <= r.skip_through {
                continue;
            }
            r.at = seq;
            if let Some(item) = self.item(&msg)? {
                items.push(item);
            }
        }
        let next_cursor = (r.left > 0).then(|| r.at.to_string());
        Ok(Page { items, next_cursor })
    }

    /// An ordered consumer over the job's last records, positioned after
    /// stream sequence `after`.
    async fn open(&self, after: u64) -> Result<Reading, SourceError> {
        let stream = self
            .js
            .get_stream(&self.stream)
            .await
            .map_err(|e| self.unavailable(&e.to_string()))?;
        let mut consumer = stream
            .create_consumer(OrderedConfig {
                filter_subject: self.filter.clone(),
                deliver_policy: DeliverPolicy::LastPerSubject,
                ..Default::default()
            })
            .await
            .map_err(|e| self.unavailable(&e.to_string()))?;
        let left = consumer
            .info()
            .await
            .map_err(|e| self.unavailable(&e.to_string()))?
            .num_pending;
        let messages = consumer
            .messages()
            .await
            .map_err(|e| self.unavailable(&e.to_string()))?;
        Ok(Reading {
            messages,
            at: after,
            left,
            skip_through: after,
        })
    }

    /// The item a record makes, if `status` takes it; `None` for a record
    /// of another status or a deleted key.
    fn item(&self, msg: &Message) -> Result<Option<Item>, SourceError> {
        let deleted = msg
            .headers
            .as_ref()
            .and_then(|h| h.get("KV-Operation"))
            .is_some_and(|op| op.as_str() == "DEL" || op.as_str() == "PURGE");
        if deleted {
            return Ok(None);
        }
        let outcome: ItemOutcome =
            codec::decode_as(codec::Format::Json, &msg.payload).map_err(|e| {
                SourceError::Refused(format!(
                    "job source {}: an outcome record does not read: {e}",
                    self.job
                ))
            })?;
        if !self.status.admits(outcome.status) {
            return Ok(None);
        }
        let data = match (self.data, outcome.status) {
            (JobSourceData::Output, _) => outcome.output,
            (JobSourceData::Input, ItemStatus::Failed) => outcome.input,
            (JobSourceData::Input, ItemStatus::Succeeded) => Value::Null,
        };
        Ok(Some(Item {
            id: outcome.item,
            data,
            priority: None,
        }))
    }

    fn unavailable(&self, why: &str) -> SourceError {
        SourceError::Unavailable(format!("job source {}: {why}", self.job))
    }
}
