//! Reading dead letters, as `nats stream view` would, and filtering them.

use std::time::Duration;

use anyhow::Context as _;
use async_nats::{
    jetstream::{
        consumer::{pull::OrderedConfig, DeliverPolicy},
        message::StreamMessage,
    },
    HeaderMap,
};
use bytes::Bytes;
use clap::Args;
use futures::StreamExt;
use jetflow_protocol::{codec, headers, Stage};
use jetflow_runtime::Bus;
use serde_json::{json, Value};

/// Which dead letters.
#[derive(Debug, Clone, Args)]
pub struct Filter {
    /// Only this job's.
    #[arg(long)]
    pub job: Option<String>,
    /// Only this stage's.
    #[arg(long, value_parser = crate::stage_arg::parser())]
    pub stage: Option<Stage>,
    /// Only those whose error contains this text.
    #[arg(long)]
    pub error: Option<String>,
}

impl Filter {
    pub(crate) fn subject(&self, bus: &Bus) -> String {
        bus.names.dlq_filter(self.stage, self.job.as_deref())
    }
}

/// One dead letter.
#[derive(Debug, Clone)]
pub struct DeadLetterView {
    pub seq: u64,
    pub headers: HeaderMap,
    pub payload: Bytes,
    pub time: String,
}

impl DeadLetterView {
    pub fn from_stream_message(message: StreamMessage) -> Self {
        Self {
            seq: message.sequence,
            headers: message.headers,
            payload: message.payload,
            time: message.time.to_string(),
        }
    }

    pub fn header(&self, name: &str) -> String {
        self.headers
            .get(name)
            .map(|v| v.as_str().to_string())
            .unwrap_or_default()
    }

    pub fn summary(&self) -> Value {
        json!({
            "seq": self.seq,
            "stage": self.header(headers::STAGE),
            "job": self.header(headers::JOB),
            "item": self.headers.get(headers::ITEM).map(|v| v.as_str()),
            "attempts": self.header(headers::ATTEMPTS).parse::<i64>().unwrap_or(0),
            "error": self.header(headers::ERROR),
            "original_subject": self.header(headers::ORIGINAL_SUBJECT),
            "time": self.time,
        })
    }

    pub fn detail(&self) -> Value {
        let mut detail = self.summary();
        let payload: Value = codec::decode(Some(&self.headers), &self.payload)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&self.payload).into_owned()));
        detail["payload"] = payload;
        detail
    }

    pub fn line(&self) -> String {
        format!(
            "{:>8}  {:<8} {:<24} {:<16} {:>3}  {}",
            self.seq,
            self.header(headers::STAGE),
            self.header(headers::JOB),
            self.header(headers::ITEM),
            self.header(headers::ATTEMPTS),
            jetflow_protocol::text::quote(&self.header(headers::ERROR), 100),
        )
    }
}

/// The dead letters matching `filter`, oldest first.
pub async fn read(bus: &Bus, filter: &Filter) -> anyhow::Result<Vec<DeadLetterView>> {
    let stream = bus
        .js
        .get_stream(bus.names.dlq_stream())
        .await
        .context("opening the DLQ")?;
    let consumer = stream
        .create_consumer(OrderedConfig {
            filter_subject: filter.subject(bus),
            deliver_policy: DeliverPolicy::All,
            ..Default::default()
        })
        .await
        .context("reading the DLQ")?;
    let mut messages = consumer.messages().await.context("reading the DLQ")?;
    let mut letters = Vec::new();
    // An empty selection delivers nothing: a quiet moment means the end.
    while let Ok(Some(message)) =
        tokio::time::timeout(Duration::from_millis(500), messages.next()).await
    {
        let message = message.context("reading the DLQ")?;
        let info = message.info().map_err(|e| anyhow::anyhow!("{e}"))?;
        let (seq, pending, time) = (
            info.stream_sequence,
            info.pending,
            info.published.to_string(),
        );
        let letter = DeadLetterView {
            seq,
            headers: message.headers.clone().unwrap_or_default(),
            payload: message.payload.clone(),
            time,
        };
        let wanted = filter
            .error
            .as_ref()
            .is_none_or(|text| letter.header(headers::ERROR).contains(text.as_str()));
        if wanted {
            letters.push(letter);
        }
        if pending == 0 {
            break;
        }
    }
    Ok(letters)
}
