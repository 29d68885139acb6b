//! Fanning one batch out into tasks.

use std::{collections::HashMap, future::IntoFuture, sync::Arc};

use async_nats::jetstream::{kv::Operation, message::PublishMessage, Message};
use chrono::Utc;
use futures::future::{join_all, try_join_all};
use jetflow_protocol::{
    codec,
    job::{HandlerSpec, JobState},
    limits,
    messages::{by_priority, BatchMessage, Item, LedgerEntry, TaskMessage},
    names::Names,
    Stage,
};
use jetflow_runtime::{
    nats::consume, process::activity::Activity, process::metrics::Metrics, process::trace, Bus,
    Result, ResultExt,
};
use tracing::Instrument;

/// What to do with a batch message.
enum Plan {
    /// Publish these tasks (in this format), then record the dispatch.
    Dispatch(BatchMessage, codec::Format, String),
    /// The job is stopping or has ended: drop the batch.
    Drop,
    /// Not a batch we can use: dead-letter it with this reason.
    DeadLetter { job: Option<String>, reason: String },
}

/// Handles one batch message, acknowledging it exactly once.
pub async fn handle(bus: &Bus, activity: &Arc<Activity>, metrics: &Metrics, msg: Message) {
    consume::settle(&msg, process(bus, activity, metrics, &msg).await, "page").await
}

async fn process(
    bus: &Bus,
    activity: &Arc<Activity>,
    metrics: &Metrics,
    msg: &Message,
) -> Result<()> {
    let delivered = msg.info().map(|i| i.delivered).unwrap_or(1);
    match plan(bus, msg).await? {
        Plan::Dispatch(batch, format, kind) => {
            let _working = activity.start(&batch.job, format!("batch {}", batch.batch));
            let span = tracing::info_span!("batch.dispatch", job = %batch.job, batch = batch.batch);
            let cx = trace::follow(&span, msg.headers.as_ref());
            let dispatching = dispatch(bus, batch, format, delivered > 1).instrument(span);
            let published = trace::carrying(cx, dispatching).await?;
            activity.count("batches_dispatched", 1);
            activity.count("tasks_published", published as u64);
            metrics.published(&kind, published as u64);
            Ok(())
        }
        Plan::Drop => Ok(()),
        Plan::DeadLetter { job, reason } => {
            bus.dead_letter_message(Stage::Batch, job.as_deref(), &reason, msg)
                .await
        }
    }
}

async fn plan(bus: &Bus, msg: &Message) -> Result<Plan> {
    let subject_job = msg.subject.as_str().rsplit('.').next().map(str::to_string);
    if let Some(reason) = limits::oversized(msg.payload.len(), limits::MAX_BATCH_BYTES) {
        return Ok(Plan::DeadLetter {
            job: subject_job,
            reason,
        });
    }
    let batch: BatchMessage = match codec::decode(msg.headers.as_ref(), &msg.payload) {
        Ok(batch) => batch,
        Err(err) => {
            return Ok(Plan::DeadLetter {
                job: subject_job,
                reason: err.to_string(),
            })
        }
    };
    if subject_job.as_deref() != Some(batch.job.as_str()) {
        return Ok(Plan::DeadLetter {
            job: subject_job,
            reason: format!(
                "batch names job {:?} but was published for another",
                batch.job
            ),
        });
    }
    let state = match bus
        .kv
        .jobs
        .entry(&batch.job)
        .await
        .ctx("reading job state")?
    {
        Some(entry) if entry.operation == Operation::Put => {
            codec::decode_as::<JobState>(codec::Format::Json, &entry.value)?
        }
        _ => {
            return Ok(Plan::DeadLetter {
                job: Some(batch.job.clone()),
                reason: format!("unknown job {:?}", batch.job),
            })
        }
    };
    if !state.status.is_active() {
        tracing::debug!(job = %batch.job, batch = batch.batch, status = %state.status, "job stopping or ended; dropping batch");
        return Ok(Plan::Drop);
    }
    // Tasks external workers pull are JSON, readable with any client;
    // migrate's own are MessagePack.
    let format = match state.spec.handler {
        HandlerSpec::External(_) => codec::Format::Json,
        _ => codec::Format::MsgPack,
    };
    Ok(Plan::Dispatch(batch, format, state.spec.kind))
}

/// Publishes the batch's tasks; returns how many it published.
async fn dispatch(
    bus: &Bus,
    batch: BatchMessage,
    format: codec::Format,
    redelivered: bool,
) -> Result<usize> {
    let (job, number) = (batch.job.clone(), batch.batch);
    let total = batch.items.len();
    let mut items = if redelivered {
        unfinished(bus, &job, batch.items).await?
    } else {
        batch.items
    };
    // Tasks run in the order they are published: a page's higher-priority
    // items first.
    by_priority(&mut items);
    let subject = bus.names.task_subject(&job);
    // Each item's span is a child of this batch's; a task published again
    // says so, for migrate to check whether its item finished meanwhile.
    let mut extra_headers = trace::headers_of(&tracing::Span::current());
    if redelivered {
        extra_headers.insert(
            jetflow_protocol::headers::REDISPATCHED.to_string(),
            "true".to_string(),
        );
    }
    // Publish every task, then wait for all acknowledgements together.
    let mut acks = Vec::with_capacity(items.len());
    let ids: Vec<String> = items.iter().map(|item| item.id.clone()).collect();
    for item in items {
        let task = task_message(&job, number, item, format, &extra_headers);
        acks.push(
            bus.js
                .send_publish(subject.clone(), task)
                .await
                .ctx("publishing task")?,
        );
    }
    let published = acks.len();
    let acks = try_join_all(acks.into_iter().map(IntoFuture::into_future))
        .await
        .ctx("storing tasks")?;
    // A first dispatch whose task was de-duplicated: the source gave the
    // item before (overlapping pages), and its task is already out. (On a
    // redelivery every task may be one of this batch's own: those are
    // left to migrate and the reducer.)
    let seen_before = duplicates(ids, acks.iter().map(|ack| ack.duplicate));
    if !redelivered && !seen_before.is_empty() {
        tracing::info!(job = %job, batch = number, items = ?seen_before, "the source gave these items before");
        let duplicates = LedgerEntry::Duplicates {
            batch: number,
            items: seen_before,
            at: Utc::now(),
        };
        bus.record_fact(&job, &duplicates, "recording duplicate items")
            .await?;
    }
    let dispatched = LedgerEntry::Dispatched {
        batch: number,
        at: Utc::now(),
    };
    bus.record_fact(&job, &dispatched, "recording dispatch")
        .await?;
    tracing::info!(job = %job, batch = number, items = total, published, "batch dispatched");
    Ok(published)
}

/// The ids whose publish the task stream answered as a duplicate.
fn duplicates(ids: Vec<String>, duplicate: impl Iterator<Item = bool>) -> Vec<String> {
    ids.into_iter()
        .zip(duplicate)
        .filter_map(|(id, duplicate)| duplicate.then_some(id))
        .collect()
}

/// `item`'s task in batch `number` of `job`, encoded as `format`, under its
/// de-duplication id and with `extra_headers`.
fn task_message(
    job: &str,
    number: u64,
    item: Item,
    format: codec::Format,
    extra_headers: &HashMap<String, String>,
) -> PublishMessage {
    let msg_id = TaskMessage::msg_id(job, &item.id);
    let task = TaskMessage {
        job: job.to_string(),
        batch: number,
        item,
        resume: None,
    };
    let (payload, content_type) = match format {
        codec::Format::Json => (codec::to_json(&task), codec::JSON),
        codec::Format::MsgPack => (codec::to_msgpack(&task), codec::MSGPACK),
    };
    let mut publish = PublishMessage::build()
        .payload(payload)
        .header(jetflow_protocol::headers::CONTENT_TYPE, content_type)
        .message_id(msg_id);
    for (name, value) in extra_headers {
        publish = publish.header(name.as_str(), value.as_str());
    }
    publish
}

/// On redelivery, the items of the batch that have no outcome yet.
async fn unfinished(bus: &Bus, job: &str, items: Vec<Item>) -> Result<Vec<Item>> {
    let checks = items
        .iter()
        .map(|item| bus.kv.items.get(Names::item_outcome_key(job, &item.id)));
    let outcomes = join_all(checks).await;
    let mut keep = Vec::new();
    for (item, outcome) in items.into_iter().zip(outcomes) {
        if outcome.ctx("checking item outcome")?.is_none() {
            keep.push(item);
        }
    }
    Ok(keep)
}
