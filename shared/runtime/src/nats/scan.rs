//! Reading every key of a bucket once — the latest value of each, in stream
//! order — without loading them all: `jetflow results` streams a million
//! item outcomes this way in flat memory, and `jobs` and `gc` list jobs.
//!
//! A pull ordered consumer with `DeliverPolicy::LastPerSubject` (no
//! push-consumer window, see [`crate::nats::watch`]); the scan ends when the
//! server says nothing more is pending.

use std::time::Duration;

use async_nats::jetstream::{
    self,
    consumer::{pull::OrderedConfig, DeliverPolicy},
    kv::Store,
};
use futures::{stream::BoxStream, StreamExt};

use crate::{
    error::ResultExt,
    nats::watch::{kv_change, KvChange},
    Error, ErrorKind, Result,
};

/// How long a scan waits for the next message before calling it a failure.
const STALL: Duration = Duration::from_secs(15);

type Messages = BoxStream<'static, std::result::Result<jetstream::Message, String>>;

/// One pass over the latest values of the keys matching a filter.
pub struct KvScan {
    prefix: String,
    messages: Option<Messages>,
}

impl KvScan {
    /// Starts a pass over the keys of `kv` matching `key_filter` (`>` for all).
    pub async fn start(js: &jetstream::Context, kv: &Store, key_filter: &str) -> Result<Self> {
        let prefix = format!("$KV.{}.", kv.name);
        let filter = format!("{prefix}{key_filter}");
        let stream = js
            .get_stream(format!("KV_{}", kv.name))
            .await
            .ctx("opening bucket stream")?;
        let consumer = stream
            .create_consumer(OrderedConfig {
                filter_subject: filter.clone(),
                deliver_policy: DeliverPolicy::LastPerSubject,
                ..Default::default()
            })
            .await
            .ctx(format!("reading {filter}"))?;
        let messages = if consumer.cached_info().num_pending == 0 {
            None
        } else {
            let messages = consumer.messages().await.ctx(format!("reading {filter}"))?;
            Some(messages.map(|m| m.map_err(|e| e.to_string())).boxed())
        };
        Ok(Self { prefix, messages })
    }

    /// The next key's latest value (`value` is `None` for a deleted key),
    /// or `None` at the end of the pass.
    pub async fn next(&mut self) -> Result<Option<KvChange>> {
        let Some(messages) = self.messages.as_mut() else {
            return Ok(None);
        };
        let next = tokio::time::timeout(STALL, messages.next())
            .await
            .map_err(|_| {
                Error::nats(
                    "reading a bucket",
                    ErrorKind::Transient,
                    format!("no message for {STALL:?}"),
                )
            })?;
        let msg = match next {
            Some(Ok(msg)) => msg,
            Some(Err(err)) => {
                return Err(Error::nats("reading a bucket", ErrorKind::Transient, err))
            }
            None => return Ok(None),
        };
        if msg.info().map(|i| i.pending).unwrap_or(0) == 0 {
            self.messages = None;
        }
        Ok(Some(kv_change(&self.prefix, &msg)))
    }
}
