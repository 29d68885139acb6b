//! One task: decide whether it may run, run it, and settle it — retry
//! later, or record its outcome (and dead-letter a failure) — with the one
//! acknowledgement the worker then gives it.

use std::time::{Duration, Instant};

use async_nats::jetstream::{AckKind, Message};
use chrono::Utc;
use jetflow_protocol::{
    codec, headers,
    job::{HandlerSpec, ItemOutcome, ItemStatus},
    limits,
    messages::{dead_letter_msg_id, ItemResult, LedgerEntry, StepResume, TaskMessage},
    names::Names,
    Stage,
};
use jetflow_runtime::{DeadLetter, Error, ErrorKind, Result, ResultExt};
use serde_json::Value;

use crate::{
    breaker::Admission,
    context::{Ack, JobContext},
    decision::{decide, Decision},
    gate::Entry,
    handler::{self, steps::StepContext, Call, HandlerError, Trail},
    park::{park, Parking},
};

/// Decides and does what one delivery of a task calls for.
pub(crate) async fn process(ctx: &JobContext, msg: &Message, ack_wait: Duration) -> Result<Ack> {
    let delivery = Delivery::of(msg)?;
    let Some(task) = read_task(ctx, msg, &delivery).await? else {
        return Ok(Ack::Done);
    };
    tracing::Span::current().record("item", task.item.id.as_str());
    if already_done(ctx, &task, &delivery).await? {
        return Ok(Ack::Done);
    }
    if let Admission::Hold(wait) = ctx.breakers.admit(&ctx.target, Instant::now()) {
        tracing::debug!(job = %ctx.job, item = %task.item.id, ?wait, "breaker open; holding the task back");
        hold(ctx, msg, delivery.attempt - 1, delivery.seq).await?;
        ctx.activity.count("items_held", 1);
        ctx.metrics.item(&ctx.spec.kind, "held");
        return Ok(Ack::Done);
    }
    run_item(ctx, msg, &task, &delivery, ack_wait).await
}

/// The task in `msg`, or `None` after dead-lettering a message that is not
/// one of this job's tasks.
async fn read_task(
    ctx: &JobContext,
    msg: &Message,
    delivery: &Delivery,
) -> Result<Option<TaskMessage>> {
    let reason = match limits::oversized(msg.payload.len(), limits::MAX_TASK_BYTES) {
        Some(reason) => reason,
        None => match codec::decode::<TaskMessage>(msg.headers.as_ref(), &msg.payload) {
            Ok(task) if task.job == ctx.job => return Ok(Some(task)),
            Ok(task) => format!(
                "task names job {:?} but is on job {:?}'s subject",
                task.job, ctx.job
            ),
            Err(err) => err.to_string(),
        },
    };
    dead_letter(ctx, msg, None, &reason, delivery).await?;
    Ok(None)
}

/// Whether the item must not be called: it has an outcome
/// (docs/design.md, invariant 4) — unless this is a replay and that
/// outcome is a failure.
///
/// Only a task that may have run before can find an outcome: a redelivery,
/// a task held back and published again, one batch published again, or a
/// replay. A plain first delivery is a task whose item has never run
/// (batch's publishes de-duplicate by item, and on a batch's redelivery it
/// marks what it publishes), so it skips the read — a round trip per item.
async fn already_done(ctx: &JobContext, task: &TaskMessage, delivery: &Delivery) -> Result<bool> {
    if !delivery.may_have_run {
        return Ok(false);
    }
    let key = Names::item_outcome_key(&ctx.job, &task.item.id);
    let recorded = ctx
        .bus
        .kv
        .items
        .get(&key)
        .await
        .ctx("checking item outcome")?;
    let Some(raw) = recorded else {
        return Ok(false);
    };
    if delivery.replay.is_none() {
        tracing::debug!(job = %ctx.job, item = %task.item.id, "already has an outcome; not calling again");
        return Ok(true);
    }
    let outcome: ItemOutcome = codec::decode_as(codec::Format::Json, &raw)?;
    if outcome.status != ItemStatus::Succeeded {
        return Ok(false);
    }
    // Replayed twice and the first replay succeeded: report it so the job
    // stops waiting for the item, but do not call again.
    let result = ItemResult {
        batch: task.batch,
        id: task.item.id.clone(),
        status: ItemStatus::Succeeded,
        error: None,
        output: Value::Null,
        input: Value::Null,
        failed_step: None,
        messages: Vec::new(),
        attempts: 0,
        dead_lettered: false,
        replay: true,
        parked: false,
        duration_ms: 0,
        finished_at: Utc::now(),
    };
    publish_result(ctx, result, delivery.replay.as_deref()).await?;
    Ok(true)
}

/// Calls the handler and settles the item: retry later, or record its outcome.
async fn run_item(
    ctx: &JobContext,
    msg: &Message,
    task: &TaskMessage,
    delivery: &Delivery,
    ack_wait: Duration,
) -> Result<Ack> {
    let attempt = delivery.attempt;
    let _working = ctx.activity.start(&ctx.job, task.item.id.as_str());
    // A chain's steps each take their own target's slot (`handler::steps`).
    let slot = match &ctx.spec.handler {
        HandlerSpec::Steps { .. } => Entry::Free,
        // Most targets have no shared concurrency: no wait to keep alive.
        _ if ctx.targets.concurrency(&ctx.target).is_none() => Entry::Free,
        _ => with_progress(msg, ack_wait, ctx.enter(&ctx.target)).await,
    };
    if let Entry::Halted = slot {
        // Paused or stopping before the target had a slot: no call, and
        // the task goes back carrying only the calls it made before.
        hold(ctx, msg, attempt - 1, delivery.seq).await?;
        return Ok(Ack::Done);
    }
    let started = Instant::now();
    let (result, mut trail) = with_progress(msg, ack_wait, call(ctx, task, attempt)).await;
    drop(slot);
    let duration_ms = started.elapsed().as_millis() as u64;
    ctx.metrics
        .call(&ctx.target, started.elapsed().as_secs_f64());
    feed_breaker(ctx, &result);
    if let Some(retry) = trail.retry.take() {
        // A step of a chain waits out its own retry; the chain resumes there.
        let calls = if retry.called { attempt } else { attempt - 1 };
        let later = Later {
            calls,
            delay: retry.delay,
            error: &retry.error,
            resume: Some(retry.resume),
        };
        return retry_later(ctx, msg, task, delivery, later).await;
    }
    let (status, error, output) = match decide(result, attempt, &ctx.settings) {
        Decision::Retry { delay, error } => {
            let later = Later {
                calls: attempt,
                delay,
                error: &error,
                resume: None,
            };
            return retry_later(ctx, msg, task, delivery, later).await;
        }
        Decision::Wait { delay, error } => {
            // The target asked for time (`Retry-After`): its calls wait
            // that long here too, and the wait spends no retry.
            ctx.breakers.throttled(&ctx.target, delay, Instant::now());
            let later = Later {
                calls: attempt - 1,
                delay,
                error: &error,
                resume: None,
            };
            return retry_later(ctx, msg, task, delivery, later).await;
        }
        Decision::Succeeded(output) => (ItemStatus::Succeeded, None, output),
        Decision::Failed(error) => (ItemStatus::Failed, Some(error), Value::Null),
    };
    if let Some(error) = &error {
        // Before the result: an item that failed for good is always in the
        // DLQ once its failure is recorded.
        dead_letter(ctx, msg, Some(&task.item.id), error, delivery).await?;
        ctx.metrics.dead_letter(&ctx.spec.kind);
    }
    tracing::debug!(job = %ctx.job, item = %task.item.id, ?status, attempt, duration_ms, "item finished");
    let result = ItemResult {
        batch: task.batch,
        id: task.item.id.clone(),
        status,
        dead_lettered: error.is_some(),
        error,
        output,
        // Kept for a failure only: what a retry of it runs with.
        input: match status {
            ItemStatus::Failed => task.item.data.clone(),
            ItemStatus::Succeeded => Value::Null,
        },
        failed_step: trail.failed_step,
        messages: trail.messages,
        attempts: attempt,
        replay: delivery.replay.is_some(),
        parked: delivery.from_schedule,
        duration_ms,
        finished_at: Utc::now(),
    };
    publish_result(ctx, result, delivery.replay.as_deref()).await?;
    count_finished(ctx, status);
    Ok(Ack::Done)
}

/// A call to make again later.
struct Later<'a> {
    /// Calls the item has spent (a wait the target asked for spends none).
    calls: u32,
    delay: Duration,
    error: &'a str,
    /// For a chain of steps: where it resumes.
    resume: Option<StepResume>,
}

/// Parks the item until the delay has passed (see `park`); a task that
/// cannot be parked (the stream does not allow schedules, NATS
/// unavailable) is retried by a delayed redelivery instead, which holds
/// its slot while it waits.
async fn retry_later(
    ctx: &JobContext,
    msg: &Message,
    task: &TaskMessage,
    delivery: &Delivery,
    later: Later<'_>,
) -> Result<Ack> {
    let Later {
        calls,
        delay,
        error,
        resume,
    } = later;
    ctx.activity.count("items_retried", 1);
    ctx.metrics.item(&ctx.spec.kind, "retried");
    tracing::debug!(job = %ctx.job, item = %task.item.id, calls, ?delay, error, "retrying item");
    let parking = Parking {
        msg,
        task,
        seq: delivery.seq,
        from_schedule: delivery.from_schedule,
        calls,
        delay,
        error,
        resume,
    };
    match park(ctx, parking).await {
        Ok(()) => Ok(Ack::Done),
        Err(err) => {
            tracing::warn!(job = %ctx.job, item = %task.item.id, error = %err, "cannot park the retry; redelivering it after its delay instead");
            Ok(Ack::Retry(delay))
        }
    }
}

/// Tells the target's breaker how the call went. A chain of steps keeps a
/// breaker per step target instead.
fn feed_breaker(ctx: &JobContext, result: &std::result::Result<Value, HandlerError>) {
    if !matches!(ctx.spec.handler, HandlerSpec::Steps { .. }) {
        match result {
            Err(HandlerError::Transient(_)) => ctx.breakers.failed(&ctx.target, Instant::now()),
            // Throttling is the target answering: `run_item` holds its calls back.
            Ok(_) | Err(HandlerError::Permanent(_) | HandlerError::Throttled { .. }) => {
                ctx.breakers.succeeded(&ctx.target)
            }
        }
    }
}

/// Counts an item whose outcome is stored, in the activity report and the metrics.
fn count_finished(ctx: &JobContext, status: ItemStatus) {
    let (counter, status) = match status {
        ItemStatus::Succeeded => ("items_succeeded", "succeeded"),
        ItemStatus::Failed => ("items_failed", "failed"),
    };
    ctx.activity.count(counter, 1);
    ctx.metrics.item(&ctx.spec.kind, status);
}

/// What the server and the headers say about one delivery of a task.
struct Delivery {
    /// Handler calls this delivery would be: calls spent before this message
    /// (a held task republished carries them) plus its deliveries.
    attempt: u32,
    /// Stream sequence of the message.
    seq: u64,
    /// De-duplication id of a dead letter made from it.
    dlq_id: String,
    /// The dead letter a replayed task came from.
    replay: Option<String>,
    /// Whether the item may have run before this delivery (see `already_done`).
    may_have_run: bool,
    /// Whether the task came from a retry schedule (the item was parked).
    from_schedule: bool,
}

impl Delivery {
    /// Reads the delivery of `msg` from its metadata and headers.
    fn of(msg: &Message) -> Result<Self> {
        let info = msg.info().map_err(|e| {
            Error::nats("reading task metadata", ErrorKind::Transient, e.to_string())
        })?;
        let header = |name| {
            msg.headers
                .as_ref()
                .and_then(|h| h.get(name))
                .map(|v| v.as_str().to_string())
        };
        let calls_before: u32 = header(headers::ATTEMPTS)
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        let delivered = u32::try_from(info.delivered).unwrap_or(u32::MAX).max(1);
        let replay = header(headers::REPLAY);
        let may_have_run = may_have_run(
            delivered,
            calls_before,
            replay.is_some(),
            header(headers::REDISPATCHED).is_some(),
        );
        Ok(Self {
            from_schedule: header(headers::SCHEDULER).is_some(),
            attempt: calls_before.saturating_add(delivered),
            seq: info.stream_sequence,
            dlq_id: dead_letter_msg_id(info.stream, info.stream_sequence),
            replay,
            may_have_run,
        })
    }
}

/// Whether a task's item may have run before: it was delivered before, held
/// back after calls (`calls_before`), replayed from the DLQ, or published
/// again by a redelivered batch. Anything else is a first run.
fn may_have_run(delivered: u32, calls_before: u32, replayed: bool, redispatched: bool) -> bool {
    delivered > 1 || calls_before > 0 || replayed || redispatched
}

/// Stores an item's result on the job's ledger; returns once it is stored.
/// A replay's result goes alone, with an id that makes a repeat of the same
/// replay store it once; every other result goes in a group.
async fn publish_result(ctx: &JobContext, result: ItemResult, replay: Option<&str>) -> Result<()> {
    let Some(dead_letter) = replay else {
        return ctx.ledger.store(result).await;
    };
    let msg_id = ItemResult::replay_msg_id(&ctx.job, dead_letter, &result.id);
    ctx.bus
        .record_entry(
            &ctx.job,
            &LedgerEntry::Item(result),
            &msg_id,
            "storing item result",
        )
        .await
}

/// Calls the job's handler for the task's item.
async fn call(
    ctx: &JobContext,
    task: &TaskMessage,
    attempt: u32,
) -> (std::result::Result<Value, HandlerError>, Trail) {
    let call = Call {
        job: &ctx.job,
        item: &task.item,
        params: &ctx.spec.params,
        attempt,
        step: None,
        input: &Value::Null,
    };
    let result = match &ctx.spec.handler {
        HandlerSpec::Http(spec) => handler::http::call(&ctx.http, spec, &call).await,
        HandlerSpec::Nats(spec) => handler::nats::call(&ctx.bus.client, spec, &call).await,
        HandlerSpec::Steps { steps } => {
            let through = StepContext {
                job: ctx,
                http: &ctx.http,
                nats: &ctx.bus.client,
                breakers: &ctx.breakers,
                limiter: &ctx.limiter,
                targets: &ctx.targets,
                settings: &ctx.settings,
            };
            return handler::steps::run(through, steps, call, task.resume.as_ref()).await;
        }
        // Never pulled by migrate: external workers take these tasks.
        HandlerSpec::External(_) => Err(HandlerError::Permanent(
            "external jobs are worked by external workers, not migrate".into(),
        )),
    };
    (result, Trail::default())
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
    hdrs.insert(
        headers::MSG_ID,
        TaskMessage::held_msg_id(&ctx.job, seq).as_str(),
    );
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

/// Copies the task's message to the DLQ with `error`; its id (from the
/// message's stream sequence) makes a repeat store it once.
async fn dead_letter(
    ctx: &JobContext,
    msg: &Message,
    item: Option<&str>,
    error: &str,
    delivery: &Delivery,
) -> Result<()> {
    ctx.bus
        .dead_letter(DeadLetter {
            stage: Stage::Migrate,
            job: Some(&ctx.job),
            item,
            error,
            attempts: i64::from(delivery.attempt),
            original_subject: msg.subject.as_str(),
            original_headers: msg.headers.as_ref(),
            payload: msg.payload.clone(),
            msg_id: &delivery.dlq_id,
        })
        .await
}

#[cfg(test)]
mod tests {
    use super::may_have_run;

    #[test]
    fn only_a_plain_first_delivery_skips_the_outcome_read() {
        assert!(!may_have_run(1, 0, false, false));
        assert!(may_have_run(2, 0, false, false), "redelivered");
        assert!(may_have_run(1, 3, false, false), "held back after calls");
        assert!(may_have_run(1, 0, true, false), "replayed");
        assert!(may_have_run(1, 0, false, true), "published again by batch");
    }
}
