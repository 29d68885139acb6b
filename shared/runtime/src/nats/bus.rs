//! [`Bus`]: one service's view of NATS — the client, JetStream, the names
//! of its namespace and the opened buckets — plus the few publishing helpers
//! every stage uses (events, ledger entries, dead letters).

use std::time::Duration;

use async_nats::{
    jetstream::{self, consumer::PullConsumer},
    Client, HeaderMap,
};
use bytes::Bytes;
use jetflow_protocol::{
    codec::{self, Format},
    headers,
    messages::{dead_letter_msg_id, JobEvent, LedgerEntry},
    names::Names,
    Stage,
};
use tokio_util::sync::CancellationToken;

use crate::{
    error::ResultExt,
    nats::{
        provision::{self, Buckets},
        stage_consumers::StageConsumer,
    },
    process::config::NatsArgs,
    Error, ErrorKind, Result,
};

/// Everything a stage needs to talk to jetflow's streams and buckets.
#[derive(Clone)]
pub struct Bus {
    /// The NATS connection.
    pub client: Client,
    /// JetStream on that connection.
    pub js: jetstream::Context,
    /// Names in this namespace.
    pub names: Names,
    /// The KV buckets.
    pub kv: Buckets,
    /// Whether this bus may create and update streams, buckets and stage
    /// consumers (`false` with `--no-provision`: it only opens them).
    pub provisions: bool,
}

impl Bus {
    /// Connects (waiting for NATS if needed) and provisions what is missing,
    /// or, with `--no-provision`, checks that it all exists.
    ///
    /// ```no_run
    /// # async fn f() -> jetflow_runtime::Result<()> {
    /// use jetflow_runtime::{Bus, NatsArgs};
    /// let shutdown = tokio_util::sync::CancellationToken::new();
    /// let bus = Bus::connect(&NatsArgs::new(["nats://127.0.0.1:4222"], "jetflow"), "example", &shutdown).await?;
    /// println!("{}", bus.names.submit_subject());
    /// # Ok(()) }
    /// ```
    pub async fn connect(args: &NatsArgs, name: &str, shutdown: &CancellationToken) -> Result<Bus> {
        args.validate()?;
        let client = crate::nats::connect::connect(args, name, shutdown).await?;
        Self::provision_over(client, args, Some(shutdown)).await
    }

    /// The bus over a connection made already (the CLI connects with less
    /// patience than a service), provisioning what is missing once (or,
    /// with `--no-provision`, checking it exists).
    pub async fn provisioned(client: Client, args: &NatsArgs) -> Result<Bus> {
        Self::provision_over(client, args, None).await
    }

    /// Provisions over `client` (binds, with `--no-provision`); with
    /// `patience`, transient failures are retried until it is cancelled.
    /// Services start with the cluster, and a fresh one is still electing
    /// leaders for the streams just created: its answers time out for a
    /// while.
    async fn provision_over(
        client: Client,
        args: &NatsArgs,
        patience: Option<&CancellationToken>,
    ) -> Result<Bus> {
        let names = args.validate()?;
        let js = context(&client);
        // Creating streams asks with less patience than publishing: a
        // cluster electing leaders drops requests, and a short wait retries
        // sooner (a time-out here is only ever retried).
        let setup = jetstream::ContextBuilder::new()
            .timeout(Duration::from_secs(3))
            .build(client.clone());
        let provisions = args.provisions();
        let replicas = replicas(args, &client);
        let mut delay = Duration::from_millis(250);
        let kv = loop {
            let attempt = if provisions {
                // Buckets are opened with the patient context they are
                // used with.
                match provision::provision(&setup, &names, replicas).await {
                    Ok(_) => provision::open(&js, &names).await,
                    Err(err) => Err(err),
                }
            } else {
                provision::bind(&js, &names).await
            };
            match (attempt, patience) {
                (Ok(kv), _) => break kv,
                (Err(err), Some(shutdown)) if err.is_transient() => {
                    if provisions {
                        tracing::warn!(error = %err, replicas, "JetStream cannot provision yet (a cluster electing leaders?); retrying");
                    } else {
                        tracing::warn!(error = %err, "JetStream cannot show the streams and buckets yet (a cluster electing leaders?); retrying");
                    }
                    tokio::select! {
                        _ = shutdown.cancelled() => return Err(Error::Shutdown),
                        _ = tokio::time::sleep(delay) => {}
                    }
                    delay = (delay * 2).min(Duration::from_secs(5));
                }
                (Err(err), _) => return Err(err),
            }
        };
        Ok(Bus {
            client,
            js,
            names,
            kv,
            provisions,
        })
    }

    /// Makes sure a stage's durable consumers are there before it starts
    /// (created, or bind-only checked), riding out transient failures until
    /// `shutdown`: a missing consumer then ends the start with its name
    /// instead of a warning a second from the pull loop.
    pub async fn ensure_consumers(
        &self,
        consumers: &[StageConsumer],
        shutdown: &CancellationToken,
    ) -> Result<()> {
        for consumer in consumers {
            let mut delay = Duration::from_millis(250);
            loop {
                match self.durable(consumer).await {
                    Ok(_) => break,
                    Err(err) if err.is_transient() => {
                        tracing::warn!(error = %err, "JetStream cannot show the consumer yet; retrying");
                        tokio::select! {
                            _ = shutdown.cancelled() => return Err(Error::Shutdown),
                            _ = tokio::time::sleep(delay) => {}
                        }
                        delay = (delay * 2).min(Duration::from_secs(5));
                    }
                    Err(err) => return Err(err),
                }
            }
        }
        Ok(())
    }

    /// A stage's durable consumer: created or brought up to date, or with
    /// `--no-provision` opened as it is (an error names it when missing).
    pub async fn durable(&self, consumer: &StageConsumer) -> Result<PullConsumer> {
        let name = consumer.name();
        if self.provisions {
            return self
                .js
                .create_consumer_on_stream(consumer.config.clone(), &consumer.stream)
                .await
                .ctx(format!("creating consumer {name} on {}", consumer.stream));
        }
        match self
            .js
            .get_consumer_from_stream(name, &consumer.stream)
            .await
            .ctx(format!("opening consumer {name} on {}", consumer.stream))
        {
            Err(err) if err.is_not_found() => Err(provision::missing(&format!(
                "consumer {name} on stream {}",
                consumer.stream
            ))),
            other => other,
        }
    }

    /// Connects to an already provisioned namespace without creating
    /// anything, for tools that only read.
    pub async fn open(args: &NatsArgs, name: &str, shutdown: &CancellationToken) -> Result<Bus> {
        args.validate()?;
        let client = crate::nats::connect::connect(args, name, shutdown).await?;
        Self::opened(client, args).await
    }

    /// The bus over a connection made already, creating nothing.
    pub async fn opened(client: Client, args: &NatsArgs) -> Result<Bus> {
        let names = args.validate()?;
        let js = jetstream::new(client.clone());
        let kv = provision::open(&js, &names).await?;
        Ok(Bus {
            client,
            js,
            names,
            kv,
            provisions: false,
        })
    }

    /// Publishes a lifecycle event (JSON) and waits for the stream to have it.
    /// `dedupe` distinguishes repeated events of one kind (a batch number).
    pub async fn publish_event(&self, event: &JobEvent, dedupe: Option<u64>) -> Result<()> {
        let kind = event.event.as_str();
        let mut hdrs = codec::headers_for(Format::Json);
        hdrs.insert(headers::MSG_ID, event.msg_id(dedupe).as_str());
        crate::process::trace::inject_current(&mut hdrs);
        self.js
            .publish_with_headers(
                self.names.event_subject(&event.job, kind),
                hdrs,
                codec::to_json(event),
            )
            .await
            .ctx("publishing event")?
            .await
            .ctx("storing event")?;
        Ok(())
    }

    /// Records an entry that names its fact on `job`'s ledger, under the
    /// de-duplication id [`LedgerEntry::msg_id`] gives it, and waits for
    /// the stream to have it; an error says it was `what` that failed. An
    /// entry whose id comes from elsewhere goes through
    /// [`Bus::record_entry`].
    pub async fn record_fact(&self, job: &str, entry: &LedgerEntry, what: &str) -> Result<()> {
        let Some(msg_id) = entry.msg_id(job) else {
            return Err(Error::nats(
                what,
                ErrorKind::Invalid,
                "this entry has no id of its own; use record_entry",
            ));
        };
        self.record_entry(job, entry, &msg_id, what).await
    }

    /// Records `entry` on `job`'s ledger under de-duplication id `msg_id`
    /// (one the entry takes from what it answers: a request's sequence, a
    /// task's) and waits for the stream to have it; an error says it was
    /// `what` that failed.
    pub async fn record_entry(
        &self,
        job: &str,
        entry: &LedgerEntry,
        msg_id: &str,
        what: &str,
    ) -> Result<()> {
        self.append_ledger(job, entry, msg_id)
            .await?
            .await
            .ctx(what)?;
        Ok(())
    }

    /// Appends `entry` to `job`'s ledger with de-duplication id `msg_id`,
    /// returning the future of the stream's acknowledgement so callers can
    /// pipeline many publishes.
    pub async fn append_ledger(
        &self,
        job: &str,
        entry: &LedgerEntry,
        msg_id: &str,
    ) -> Result<jetstream::context::PublishAckFuture> {
        self.append_encoded_ledger(job, codec::to_msgpack(entry), Some(msg_id))
            .await
    }

    /// Appends a ledger entry already encoded as MessagePack, with a
    /// de-duplication id or (for an entry that has no natural one, like a
    /// group of item results) without.
    pub async fn append_encoded_ledger(
        &self,
        job: &str,
        payload: bytes::Bytes,
        msg_id: Option<&str>,
    ) -> Result<jetstream::context::PublishAckFuture> {
        let mut hdrs = codec::headers_for(Format::MsgPack);
        if let Some(msg_id) = msg_id {
            hdrs.insert(headers::MSG_ID, msg_id);
        }
        crate::process::trace::inject_current(&mut hdrs);
        self.js
            .publish_with_headers(self.names.result_subject(job), hdrs, payload)
            .await
            .ctx("publishing ledger entry")
    }

    /// Stores a dead letter: the original payload with headers saying what,
    /// where and why. `msg_id` makes a repeated dead-lettering (after a
    /// crash) store it once.
    pub async fn dead_letter(&self, letter: DeadLetter<'_>) -> Result<()> {
        let job = letter.job.unwrap_or("_");
        let mut hdrs = HeaderMap::new();
        if let Some(original) = letter.original_headers {
            if let Some(ct) = original.get(headers::CONTENT_TYPE) {
                hdrs.insert(headers::CONTENT_TYPE, ct.clone());
            }
        }
        hdrs.insert(headers::MSG_ID, letter.msg_id);
        hdrs.insert(headers::JOB, job);
        if let Some(item) = letter.item {
            hdrs.insert(headers::ITEM, item);
        }
        hdrs.insert(headers::STAGE, letter.stage.as_str());
        // Header values must be one line.
        let error: String = letter.error.replace(['\r', '\n'], " ");
        hdrs.insert(headers::ERROR, error.as_str());
        hdrs.insert(headers::ATTEMPTS, letter.attempts.to_string().as_str());
        hdrs.insert(headers::ORIGINAL_SUBJECT, letter.original_subject);
        crate::process::trace::inject_current(&mut hdrs);
        let subject_job = if jetflow_protocol::names::is_token(job) {
            job
        } else {
            "_"
        };
        self.js
            .publish_with_headers(
                self.names.dlq_subject(letter.stage, subject_job),
                hdrs,
                letter.payload,
            )
            .await
            .ctx("publishing dead letter")?
            .await
            .ctx("storing dead letter")?;
        // An item that failed is part of a job's normal life (its batch's
        // summary counts it); a message we could not even read is not.
        match letter.item {
            Some(item) => {
                tracing::debug!(stage = %letter.stage, job, item, error = %letter.error, "dead-lettered")
            }
            None => {
                tracing::warn!(stage = %letter.stage, job, error = %letter.error, "dead-lettered")
            }
        }
        Ok(())
    }
}

impl Bus {
    /// Dead-letters a JetStream message as it was received: its subject,
    /// headers and payload, its delivery count as the attempts, and its
    /// `<stream>:<seq>` as the de-duplication id (so doing it again after a
    /// crash stores it once).
    pub async fn dead_letter_message(
        &self,
        stage: Stage,
        job: Option<&str>,
        error: &str,
        msg: &jetstream::Message,
    ) -> Result<()> {
        let info = msg.info().ok();
        let msg_id = info
            .as_ref()
            .map(|i| dead_letter_msg_id(i.stream, i.stream_sequence))
            .unwrap_or_else(crate::instance_id);
        self.dead_letter(DeadLetter {
            stage,
            job,
            item: None,
            error,
            attempts: info.map(|i| i.delivered).unwrap_or(1),
            original_subject: msg.subject.as_str(),
            original_headers: msg.headers.as_ref(),
            payload: msg.payload.clone(),
            msg_id: &msg_id,
        })
        .await
    }
}

/// JetStream on `client`, publishing with many acknowledgements in flight.
fn context(client: &Client) -> jetstream::Context {
    jetstream::ContextBuilder::new()
        .timeout(Duration::from_secs(10))
        .max_ack_inflight(20_000)
        .backpressure_on_inflight(true)
        .build(client.clone())
}

/// The replicas to provision with: as asked, else the size of the cluster
/// `client` is connected to, up to 3 (a single server: 1). A cluster's size
/// is the client URLs its servers advertise, or the URLs given if more.
pub fn replicas(args: &NatsArgs, client: &Client) -> usize {
    args.replicas.unwrap_or_else(|| {
        let info = client.server_info();
        match info.cluster {
            Some(_) => info.connect_urls.len().max(args.nats_url.len()).clamp(1, 3),
            None => 1,
        }
    })
}

/// A message given up on, for [`Bus::dead_letter`].
pub struct DeadLetter<'a> {
    /// Stage giving up.
    pub stage: Stage,
    /// The job, if known.
    pub job: Option<&'a str>,
    /// The item, if any.
    pub item: Option<&'a str>,
    /// Why.
    pub error: &'a str,
    /// Deliveries so far.
    pub attempts: i64,
    /// Where it was published.
    pub original_subject: &'a str,
    /// Its headers, if any (the content type is kept).
    pub original_headers: Option<&'a HeaderMap>,
    /// The payload as received.
    pub payload: Bytes,
    /// De-duplication id, e.g. `<stream>:<seq>` of the original.
    pub msg_id: &'a str,
}
