//! One job's tasks on this instance: pull, run, and acknowledge each exactly
//! once — ack after the result is stored, nak with a backoff delay to retry,
//! dead-letter then ack to give up.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use async_nats::jetstream::{consumer::PullConsumer, AckKind, Message};
use chrono::Utc;
use futures::{FutureExt, StreamExt};
use jetflow_shared::{
    codec, headers,
    job::{HandlerSpec, ItemOutcome, ItemStatus, JobSpec, JobState, Settings},
    limits,
    messages::{ItemResult, LedgerEntry, TaskMessage},
    names::{item_key, Names},
    Bus, DeadLetter, Error, Result, ResultExt,
};
use serde_json::Value;
use tokio::sync::Semaphore;
use tokio_util::{sync::CancellationToken, task::TaskTracker};

use crate::{
    breaker::{http_target, Admission, Breakers},
    decision::{decide, Decision},
    handler::{self, HandlerError},
};

/// What a job's worker needs, shared by its item tasks.
#[derive(Clone)]
pub struct JobContext {
    bus: Bus,
    http: reqwest::Client,
    slots: Arc<Semaphore>,
    breakers: Arc<Breakers>,
    /// The breaker key of the job's handler.
    target: String,
    job: String,
    spec: Arc<JobSpec>,
    settings: Settings,
}

impl JobContext {
    /// The context of `state`'s job; `slots` caps this instance's items in flight.
    pub fn new(
        bus: Bus,
        http: reqwest::Client,
        slots: Arc<Semaphore>,
        breakers: Arc<Breakers>,
        state: &JobState,
    ) -> Self {
        let target = match &state.spec.handler {
            HandlerSpec::Http(http) => http_target(&http.url),
            other => other.type_name().to_string(),
        };
        Self {
            bus,
            http,
            slots,
            breakers,
            target,
            job: state.id.clone(),
            settings: state.spec.settings(),
            spec: Arc::new(state.spec.clone()),
        }
    }
}

/// Works on the job's tasks until `stop` (job ended or shutdown); lets
/// items in flight finish.
pub async fn run(ctx: JobContext, stop: CancellationToken) {
    let in_flight = TaskTracker::new();
    while !stop.is_cancelled() {
        if let Err(err) = consume(&ctx, &stop, &in_flight).await {
            tracing::debug!(job = %ctx.job, error = %err, "task consumer not ready; retrying");
            tokio::select! {
                _ = stop.cancelled() => break,
                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            }
        }
    }
    in_flight.close();
    in_flight.wait().await;
}

async fn consume(
    ctx: &JobContext,
    stop: &CancellationToken,
    in_flight: &TaskTracker,
) -> Result<()> {
    let names = &ctx.bus.names;
    let consumer: PullConsumer = ctx
        .bus
        .js
        .get_consumer_from_stream(names.task_consumer(&ctx.job), names.tasks_stream())
        .await
        .ctx("opening the job's task consumer")?;
    let ack_wait = consumer.cached_info().config.ack_wait;
    let batch = (ctx.settings.concurrency as usize).clamp(1, 256);
    let mut messages = consumer
        .stream()
        .max_messages_per_batch(batch)
        .heartbeat(Duration::from_secs(5))
        .expires(Duration::from_secs(30))
        .messages()
        .await
        .ctx("pulling tasks")?;
    loop {
        let next = tokio::select! {
            biased;
            _ = stop.cancelled() => {
                hand_back(&mut messages).await;
                return Ok(());
            }
            next = messages.next() => next,
        };
        match next {
            Some(Ok(msg)) => {
                let permit = tokio::select! {
                    biased;
                    _ = stop.cancelled() => {
                        give_back(&msg).await;
                        hand_back(&mut messages).await;
                        return Ok(());
                    }
                    permit = ctx.slots.clone().acquire_owned() => permit,
                };
                let Ok(permit) = permit else { return Ok(()) };
                let (task_ctx, task_stop) = (ctx.clone(), stop.clone());
                in_flight.spawn(async move {
                    if task_stop.is_cancelled() {
                        give_back(&msg).await;
                    } else {
                        handle(&task_ctx, msg, ack_wait).await;
                    }
                    drop(permit);
                });
                // While the target's breaker is open, stop pulling: what is
                // pulled now would only be held back again.
                if let Some(wait) = ctx.breakers.blocked_for(&ctx.target, Instant::now()) {
                    tokio::select! {
                        _ = stop.cancelled() => {}
                        _ = tokio::time::sleep(wait.min(ack_wait / 3)) => {}
                    }
                }
            }
            Some(Err(err)) => tracing::debug!(job = %ctx.job, error = %err, "error pulling tasks"),
            None => {
                return Err(Error::Nats {
                    context: "pulling tasks".into(),
                    message: "stream ended".into(),
                })
            }
        }
    }
}

/// Tasks already received but not started go back at once (rather than
/// after `ack_wait`), so a stopping job drains quickly and a shutting-down
/// instance's tasks go to another.
async fn hand_back<S>(messages: &mut S)
where
    S: futures::Stream<
            Item = std::result::Result<
                Message,
                async_nats::jetstream::consumer::pull::MessagesError,
            >,
        > + Unpin,
{
    while let Some(Some(Ok(msg))) = messages.next().now_or_never() {
        give_back(&msg).await;
    }
}

async fn give_back(msg: &Message) {
    if let Err(err) = msg.ack_with(AckKind::Nak(None)).await {
        tracing::debug!(error = %err, "cannot hand a task back");
    }
}

/// The one acknowledgement a task gets.
enum Ack {
    Done,
    Retry(Duration),
}

async fn handle(ctx: &JobContext, msg: Message, ack_wait: Duration) {
    let ack = match process(ctx, &msg, ack_wait).await {
        Ok(ack) => ack,
        Err(err) => {
            // Our own plumbing failed (NATS unavailable): try again shortly.
            tracing::warn!(job = %ctx.job, error = %err, "task not finished; will retry");
            Ack::Retry(Duration::from_secs(1))
        }
    };
    let kind = match ack {
        Ack::Done => AckKind::Ack,
        Ack::Retry(delay) => AckKind::Nak(Some(delay)),
    };
    if let Err(err) = msg.ack_with(kind).await {
        tracing::warn!(job = %ctx.job, error = %err, "cannot acknowledge task");
    }
}

async fn process(ctx: &JobContext, msg: &Message, ack_wait: Duration) -> Result<Ack> {
    let info = msg.info().map_err(|e| Error::Nats {
        context: "reading task metadata".into(),
        message: e.to_string(),
    })?;
    // Calls spent before this message (it may be a held task republished)
    // plus this message's deliveries.
    let attempt =
        calls_before(msg).saturating_add(u32::try_from(info.delivered).unwrap_or(u32::MAX).max(1));
    let dlq_id = format!("{}:{}", info.stream, info.stream_sequence);
    if let Some(reason) = limits::oversized(msg.payload.len(), limits::MAX_TASK_BYTES) {
        dead_letter(ctx, msg, None, &reason, attempt, &dlq_id).await?;
        return Ok(Ack::Done);
    }
    let task = match codec::decode::<TaskMessage>(msg.headers.as_ref(), &msg.payload) {
        Ok(task) if task.job == ctx.job => task,
        Ok(task) => {
            let reason = format!(
                "task names job {:?} but is on job {:?}'s subject",
                task.job, ctx.job
            );
            dead_letter(ctx, msg, None, &reason, attempt, &dlq_id).await?;
            return Ok(Ack::Done);
        }
        Err(err) => {
            dead_letter(ctx, msg, None, &err.to_string(), attempt, &dlq_id).await?;
            return Ok(Ack::Done);
        }
    };
    // A replayed task carries the dead letter it came from.
    let replay = msg
        .headers
        .as_ref()
        .and_then(|h| h.get(headers::REPLAY))
        .map(|v| v.as_str().to_string());
    let outcome_key = Names::item_outcome_key(&ctx.job, &task.item.id);
    let recorded = ctx
        .bus
        .kv
        .items
        .get(&outcome_key)
        .await
        .ctx("checking item outcome")?;
    match (&recorded, &replay) {
        (None, _) => {}
        (Some(_), None) => {
            tracing::debug!(job = %ctx.job, item = %task.item.id, "already has an outcome; not calling again");
            return Ok(Ack::Done);
        }
        (Some(raw), Some(_)) => {
            let outcome: ItemOutcome = codec::decode_as(codec::Format::Json, raw)?;
            if outcome.status == ItemStatus::Succeeded {
                // Replayed twice, and the first replay succeeded: report it so
                // the job stops waiting for this item, but do not call again.
                let result = ItemResult {
                    batch: task.batch,
                    id: task.item.id.clone(),
                    status: ItemStatus::Succeeded,
                    error: None,
                    output: Value::Null,
                    attempts: 0,
                    dead_lettered: false,
                    replay: true,
                    duration_ms: 0,
                    finished_at: Utc::now(),
                };
                publish_result(ctx, result, replay.as_deref()).await?;
                return Ok(Ack::Done);
            }
        }
    }

    if let Admission::Hold(wait) = ctx.breakers.admit(&ctx.target, Instant::now()) {
        tracing::debug!(job = %ctx.job, item = %task.item.id, ?wait, "breaker open; holding the task back");
        hold(ctx, msg, attempt - 1, info.stream_sequence).await?;
        return Ok(Ack::Done);
    }
    let started = Instant::now();
    let result = with_progress(msg, ack_wait, call(ctx, &task)).await;
    let duration_ms = started.elapsed().as_millis() as u64;
    match &result {
        Err(HandlerError::Transient(_)) => ctx.breakers.failed(&ctx.target, Instant::now()),
        Ok(_) | Err(HandlerError::Permanent(_)) => ctx.breakers.succeeded(&ctx.target),
    }
    let (status, error, output) = match decide(result, attempt, &ctx.settings) {
        Decision::Retry { delay, error } => {
            tracing::debug!(job = %ctx.job, item = %task.item.id, attempt, ?delay, error, "retrying item");
            return Ok(Ack::Retry(delay));
        }
        Decision::Succeeded(output) => (ItemStatus::Succeeded, None, output),
        Decision::Failed(error) => (ItemStatus::Failed, Some(error), Value::Null),
    };
    let dead_lettered = status == ItemStatus::Failed;
    if let Some(error) = &error {
        dead_letter(ctx, msg, Some(&task.item.id), error, attempt, &dlq_id).await?;
    }
    tracing::debug!(job = %ctx.job, item = %task.item.id, ?status, attempt, duration_ms, "item finished");
    let result = ItemResult {
        batch: task.batch,
        id: task.item.id.clone(),
        status,
        error,
        output,
        attempts: attempt,
        dead_lettered,
        replay: replay.is_some(),
        duration_ms,
        finished_at: Utc::now(),
    };
    publish_result(ctx, result, replay.as_deref()).await?;
    Ok(Ack::Done)
}

/// Stores an item's result on the job's ledger; waits for the stream's ack.
async fn publish_result(ctx: &JobContext, result: ItemResult, replay: Option<&str>) -> Result<()> {
    let key = item_key(&result.id);
    let msg_id = match replay {
        Some(dead_letter) => format!("{}:replay:{dead_letter}:{key}", ctx.job),
        None => format!("{}:item:{key}", ctx.job),
    };
    ctx.bus
        .append_ledger(&ctx.job, &LedgerEntry::Item(result), &msg_id)
        .await?
        .await
        .ctx("storing item result")?;
    Ok(())
}

async fn call(ctx: &JobContext, task: &TaskMessage) -> std::result::Result<Value, HandlerError> {
    match &ctx.spec.handler {
        HandlerSpec::Http(spec) => {
            handler::http::call(&ctx.http, spec, &ctx.job, &task.item, &ctx.spec.params).await
        }
        other => Err(HandlerError::Permanent(format!(
            "{:?} handlers are not supported by this version",
            other.type_name()
        ))),
    }
}

/// Handler calls already spent on this item before this message: set on a
/// task held back by an open breaker and published again.
fn calls_before(msg: &Message) -> u32 {
    msg.headers
        .as_ref()
        .and_then(|h| h.get(headers::ATTEMPTS))
        .and_then(|v| v.as_str().parse().ok())
        .unwrap_or(0)
}

/// Holds a task back while its target's breaker is open: publishes it again
/// carrying the calls spent so far (so holding costs no retry and no
/// concurrency slot), to be acked by the caller. The id makes a repeat after
/// a crash publish it once.
async fn hold(ctx: &JobContext, msg: &Message, calls: u32, seq: u64) -> Result<()> {
    let mut hdrs = async_nats::HeaderMap::new();
    if let Some(ct) = msg
        .headers
        .as_ref()
        .and_then(|h| h.get(headers::CONTENT_TYPE))
    {
        hdrs.insert(headers::CONTENT_TYPE, ct.clone());
    }
    hdrs.insert(headers::ATTEMPTS, calls.to_string().as_str());
    hdrs.insert(headers::MSG_ID, format!("{}:held:{seq}", ctx.job).as_str());
    ctx.bus
        .js
        .publish_with_headers(msg.subject.clone(), hdrs, msg.payload.clone())
        .await
        .ctx("holding the task back")?
        .await
        .ctx("storing the held task")?;
    Ok(())
}

/// Runs `work` while telling the server, every third of `ack_wait`, that the
/// task is still being worked on — so a long call is not redelivered mid-way.
async fn with_progress<T>(
    msg: &Message,
    ack_wait: Duration,
    work: impl std::future::Future<Output = T>,
) -> T {
    let every = (ack_wait / 3).max(Duration::from_millis(100));
    let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
    tokio::pin!(work);
    loop {
        tokio::select! {
            out = &mut work => return out,
            _ = ticker.tick() => {
                if let Err(err) = msg.ack_with(AckKind::Progress).await {
                    tracing::debug!(error = %err, "progress ack failed");
                }
            }
        }
    }
}

async fn dead_letter(
    ctx: &JobContext,
    msg: &Message,
    item: Option<&str>,
    error: &str,
    attempt: u32,
    msg_id: &str,
) -> Result<()> {
    ctx.bus
        .dead_letter(DeadLetter {
            stage: "migrate",
            job: Some(&ctx.job),
            item,
            error,
            attempts: i64::from(attempt),
            original_subject: msg.subject.as_str(),
            original_headers: msg.headers.as_ref(),
            payload: msg.payload.clone(),
            msg_id,
        })
        .await
}
