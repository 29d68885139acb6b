//! Watching KV keys. Every stage learns which jobs exist, and in what state,
//! by watching the jobs bucket: no service-to-service calls.
//!
//! We do not use async-nats's `Store::watch`: it creates a push consumer and
//! subscribes to its inbox only afterwards, so a value the server pushes in
//! between is lost, and nothing re-sends it until the key changes again (seen
//! here: a reducer that never learned of a job). A *pull* ordered consumer
//! has no such window — nothing is delivered before it asks.

use async_nats::jetstream::{
    self,
    consumer::{pull::OrderedConfig, DeliverPolicy},
    kv::Store,
};
use bytes::Bytes;
use futures::{stream::BoxStream, StreamExt};
use jetflow_protocol::{codec, job::JobState};

use crate::{error::ResultExt, Error, ErrorKind, Result};

/// One change to a key.
#[derive(Debug, Clone)]
pub struct KvChange {
    /// The key.
    pub key: String,
    /// Its revision (stream sequence).
    pub revision: u64,
    /// The new value; `None` when the key was deleted or purged.
    pub value: Option<Bytes>,
}

/// A watch that has heard nothing for this long subscribes again.
const RESUBSCRIBE_WHEN_IDLE: std::time::Duration = std::time::Duration::from_secs(5);

type Messages = BoxStream<'static, std::result::Result<jetstream::Message, String>>;

/// The latest value of every key matching a filter, then every change.
pub struct KvWatch {
    js: jetstream::Context,
    stream: String,
    prefix: String,
    filter: String,
    messages: Option<Messages>,
    last_revision: u64,
}

impl KvWatch {
    /// Watches keys of `kv` matching `key_filter` (`>` for all, or one key).
    pub fn new(js: &jetstream::Context, kv: &Store, key_filter: &str) -> Self {
        let prefix = format!("$KV.{}.", kv.name);
        Self {
            js: js.clone(),
            stream: format!("KV_{}", kv.name),
            filter: format!("{prefix}{key_filter}"),
            prefix,
            messages: None,
            last_revision: 0,
        }
    }

    /// The next change, or an error from which the next call recovers by
    /// re-subscribing after the last change seen.
    pub async fn next(&mut self) -> Result<KvChange> {
        loop {
            if self.messages.is_none() {
                // Owned arguments: a `&self` held across this await would make
                // the watch's futures need `Sync`, which boxed streams are not.
                let (js, stream, filter) =
                    (self.js.clone(), self.stream.clone(), self.filter.clone());
                self.messages = Some(subscribe(js, stream, filter, self.last_revision).await?);
            }
            let Some(messages) = self.messages.as_mut() else {
                continue;
            };
            let next = match tokio::time::timeout(RESUBSCRIBE_WHEN_IDLE, messages.next()).await {
                Ok(next) => next,
                Err(_) => {
                    // Quiet, or silently cut off: after a cluster node died, an
                    // ordered consumer was seen to deliver nothing more and
                    // report no error (fetch then waited forever for the
                    // reducer's progress). Subscribing again after the last
                    // change seen loses nothing and costs one consumer create.
                    self.messages = None;
                    continue;
                }
            };
            return match next {
                Some(Ok(msg)) => Ok(self.change(&msg)),
                Some(Err(err)) => {
                    self.messages = None;
                    Err(Error::nats(
                        format!("watching {}", self.filter),
                        ErrorKind::Transient,
                        err,
                    ))
                }
                None => {
                    self.messages = None;
                    Err(Error::nats(
                        format!("watching {}", self.filter),
                        ErrorKind::Transient,
                        "watch ended",
                    ))
                }
            };
        }
    }

    fn change(&mut self, msg: &jetstream::Message) -> KvChange {
        let change = kv_change(&self.prefix, msg);
        self.last_revision = self.last_revision.max(change.revision);
        change
    }
}

/// The change a message of a bucket's stream (subjects `prefix` + key) is.
pub(crate) fn kv_change(prefix: &str, msg: &jetstream::Message) -> KvChange {
    let revision = msg.info().map(|i| i.stream_sequence).unwrap_or(0);
    let key = msg
        .subject
        .as_str()
        .strip_prefix(prefix)
        .unwrap_or_default()
        .to_string();
    let deleted = msg
        .headers
        .as_ref()
        .and_then(|h| h.get("KV-Operation"))
        .is_some_and(|op| op.as_str() == "DEL" || op.as_str() == "PURGE");
    KvChange {
        key,
        revision,
        value: (!deleted).then(|| msg.payload.clone()),
    }
}

async fn subscribe(
    js: jetstream::Context,
    stream: String,
    filter: String,
    last_revision: u64,
) -> Result<Messages> {
    let stream = js.get_stream(&stream).await.ctx("opening bucket stream")?;
    let deliver_policy = match last_revision {
        0 => DeliverPolicy::LastPerSubject,
        seen => DeliverPolicy::ByStartSequence {
            start_sequence: seen + 1,
        },
    };
    let consumer = stream
        .create_consumer(OrderedConfig {
            filter_subject: filter.clone(),
            deliver_policy,
            ..Default::default()
        })
        .await
        .ctx(format!("watching {filter}"))?;
    let messages = consumer
        .messages()
        .await
        .ctx(format!("watching {filter}"))?;
    Ok(messages.map(|m| m.map_err(|e| e.to_string())).boxed())
}

/// A change to a job.
#[derive(Debug)]
pub enum JobUpdate {
    /// The job's state was written.
    State(Box<JobState>),
    /// The job's state was removed (garbage collected).
    Removed(String),
}

/// A resilient watch over every job's state.
pub struct JobWatch {
    inner: KvWatch,
}

impl JobWatch {
    /// Watches the jobs bucket `kv`, starting with the current state of every job.
    pub fn new(js: &jetstream::Context, kv: &Store) -> Self {
        Self {
            inner: KvWatch::new(js, kv, ">"),
        }
    }

    /// The next change. Never ends; errors are logged and the watch renewed.
    pub async fn next(&mut self) -> JobUpdate {
        loop {
            match self.inner.next().await {
                Ok(KvChange {
                    key, value: None, ..
                }) => return JobUpdate::Removed(key),
                Ok(KvChange {
                    key,
                    value: Some(value),
                    ..
                }) => match codec::decode_as::<JobState>(codec::Format::Json, &value) {
                    Ok(state) => return JobUpdate::State(Box::new(state)),
                    Err(err) => tracing::warn!(key, error = %err, "unreadable job state"),
                },
                Err(err) => {
                    tracing::warn!(error = %err, "job watch interrupted; resubscribing");
                    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
                }
            }
        }
    }
}
