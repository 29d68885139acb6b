//! One job's tasks on this instance: pull, run, and acknowledge each exactly
//! once — ack after the result is stored, nak with a backoff delay to retry,
//! dead-letter then ack to give up.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use async_nats::jetstream::{
    consumer::{pull, PullConsumer},
    AckKind, Message,
};
use futures::{FutureExt, StreamExt};
use jetflow_protocol::job::{ConfigChange, JobSpec, JobState};
use jetflow_runtime::{nats::task_queue, process::trace, Error, ErrorKind, Result, ResultExt};
use tokio::sync::watch;
use tokio_util::{sync::CancellationToken, task::TaskTracker};
use tracing::Instrument;

use crate::{
    context::{Ack, JobContext},
    item, limiter,
    slots::Permit,
};

/// Works on the job's tasks until `stop` (job ended or shutdown); lets
/// items in flight finish. A change of the job's live settings in `states`
/// applies to the items started after it.
pub(crate) async fn run(
    ctx: JobContext,
    mut states: watch::Receiver<JobState>,
    stop: CancellationToken,
) {
    // Shared, not cloned, by the item tasks: a context holds the bus with all
    // its buckets, and copying that per item showed up in profiles.
    let mut ctx = Arc::new(ctx);
    let _job = ctx.activity.job(&ctx.job);
    let in_flight = TaskTracker::new();
    while !stop.is_cancelled() {
        match consume(&ctx, &mut states, &stop, &in_flight).await {
            Ok(Some(spec)) => {
                let live = ConfigChange::current(&spec);
                tracing::info!(job = %ctx.job, ?live, "applying new live settings");
                ctx = Arc::new(ctx.reconfigured(&spec));
            }
            Ok(None) => {}
            Err(err) => {
                tracing::debug!(job = %ctx.job, error = %err, "task consumer not ready; retrying");
                tokio::select! {
                    _ = stop.cancelled() => break,
                    _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                }
            }
        }
    }
    in_flight.close();
    in_flight.wait().await;
}

/// The job's spec in `states` if its live settings differ from `ctx`'s.
/// Waits for a change; never returns if the supervisor is gone.
async fn settings_changed(ctx: &JobContext, states: &mut watch::Receiver<JobState>) -> JobSpec {
    let current = ConfigChange::current(&ctx.spec);
    loop {
        if states.changed().await.is_err() {
            std::future::pending::<()>().await;
        }
        let state = states.borrow_and_update();
        if ConfigChange::current(&state.spec) != current {
            return state.spec.clone();
        }
    }
}

/// Pulls and runs tasks until `stop` (`Ok(None)`), until the job's live
/// settings change (`Ok(Some(new spec))`) or until its calls' rate limits
/// come or go (`Ok(None)`, to be called again).
async fn consume(
    ctx: &Arc<JobContext>,
    states: &mut watch::Receiver<JobState>,
    stop: &CancellationToken,
    in_flight: &TaskTracker,
) -> Result<Option<JobSpec>> {
    let mut limits = ctx.targets.changes();
    if ctx.call_limits().is_empty() {
        consume_freely(ctx, states, &mut limits, stop, in_flight).await
    } else {
        consume_limited(ctx, states, &mut limits, stop, in_flight).await
    }
}

/// With no rate limit: pulls tasks as slots free up, handing back what was
/// pulled but not started when it returns.
async fn consume_freely(
    ctx: &Arc<JobContext>,
    states: &mut watch::Receiver<JobState>,
    limits: &mut watch::Receiver<u64>,
    stop: &CancellationToken,
    in_flight: &TaskTracker,
) -> Result<Option<JobSpec>> {
    let (mut messages, ack_wait) = pull_tasks(ctx).await?;
    loop {
        let next = tokio::select! {
            biased;
            _ = stop.cancelled() => {
                hand_back(&mut messages).await;
                return Ok(None);
            }
            spec = settings_changed(ctx, states) => {
                // Pulled with the old batch size and settings: let them go
                // back and pull again under the new ones.
                hand_back(&mut messages).await;
                return Ok(Some(spec));
            }
            _ = limits.changed() => {
                if ctx.call_limits().is_empty() {
                    continue;
                }
                hand_back(&mut messages).await;
                return Ok(None);
            }
            next = messages.next() => next,
        };
        match next {
            Some(Ok(msg)) => {
                let Some(permit) = slot_for(ctx, &msg, &mut messages, stop).await else {
                    return Ok(None);
                };
                spawn_item(ctx, msg, permit, stop, in_flight, ack_wait);
                pause_while_breaker_open(ctx, stop, ack_wait).await;
            }
            Some(Err(err)) => tracing::debug!(job = %ctx.job, error = %err, "error pulling tasks"),
            None => {
                return Err(Error::nats(
                    "pulling tasks",
                    ErrorKind::Transient,
                    "stream ended",
                ))
            }
        }
    }
}

/// Under rate limits: takes tokens first, then pulls only as many tasks as
/// they allow, before the tokens' window ends — so an item held back by a
/// limit waits in the stream, holding no slot (`limiter`). Nothing is
/// pulled ahead, so there is nothing to hand back.
///
/// Tokens are only taken for work there is: not while the job is paused,
/// and once a pull came up short (the queue ran dry, or the job's
/// concurrency is full across instances) only as many as the task
/// consumer says are waiting and have room. Under a target's shared limit
/// a job waits into each window while higher-priority jobs with work take
/// first (`competition`).
async fn consume_limited(
    ctx: &Arc<JobContext>,
    states: &mut watch::Receiver<JobState>,
    limits: &mut watch::Receiver<u64>,
    stop: &CancellationToken,
    in_flight: &TaskTracker,
) -> Result<Option<JobSpec>> {
    let mut consumer = task_queue::open(&ctx.bus, &ctx.job).await?;
    let ack_wait = consumer.cached_info().config.ack_wait;
    let mut demand = Demand::new(ctx);
    let mut drained = false;
    loop {
        let call_limits = ctx.call_limits();
        if call_limits.is_empty() {
            return Ok(None);
        }
        let state = states.borrow().clone();
        if ConfigChange::current(&state.spec) != ConfigChange::current(&ctx.spec) {
            return Ok(Some(state.spec));
        }
        let waiting = if !state.status.runs_items() {
            0
        } else if drained {
            waiting_with_room(&mut consumer).await?
        } else {
            u32::MAX
        };
        if waiting == 0 {
            // Paused, or nothing to call: look again shortly.
            demand.set(&call_limits, false);
            tokio::select! {
                biased;
                _ = stop.cancelled() => return Ok(None),
                spec = settings_changed(ctx, states) => return Ok(Some(spec)),
                _ = limits.changed() => return Ok(None),
                _ = tokio::time::sleep(IDLE_LOOK) => {}
            }
            continue;
        }
        demand.set(&call_limits, true);
        let wait = demand.wait(&call_limits);
        if !wait.is_zero() {
            tokio::select! {
                _ = stop.cancelled() => return Ok(None),
                _ = tokio::time::sleep(wait) => {}
            }
        }
        let free = ctx.slots.available().max(1) as u32;
        let want = ctx.settings.concurrency.min(free).min(waiting);
        let grant = tokio::select! {
            biased;
            _ = stop.cancelled() => return Ok(None),
            spec = settings_changed(ctx, states) => return Ok(Some(spec)),
            _ = limits.changed() => return Ok(None),
            grant = ctx.limiter.take(&call_limits, want) => grant?,
        };
        let window_left = limiter::until(grant.until);
        if grant.calls > 0 && window_left >= MIN_PULL {
            let mut batch = consumer
                .batch()
                .max_messages(grant.calls as usize)
                .expires(window_left)
                .messages()
                .await
                .ctx("pulling tasks")?;
            let mut received = 0;
            // Short (at most the window): runs to its end; an item that
            // starts after `stop` is handed back by its task.
            while let Some(next) = batch.next().await {
                let msg = match next {
                    Ok(msg) => msg,
                    Err(err) => {
                        tracing::debug!(job = %ctx.job, error = %err, "error pulling tasks");
                        break;
                    }
                };
                received += 1;
                let permit = ctx.slots.acquire(ctx.spec.priority).await;
                spawn_item(ctx, msg, permit, stop, in_flight, ack_wait);
            }
            drained = received < grant.calls;
            pause_while_breaker_open(ctx, stop, ack_wait).await;
        }
        if let Some(at) = grant.retry_at {
            tokio::select! {
                _ = stop.cancelled() => return Ok(None),
                _ = tokio::time::sleep(limiter::until(at)) => {}
            }
        }
    }
}

/// How often a rate-limited job with no work (or paused) looks again.
const IDLE_LOOK: Duration = Duration::from_millis(100);

/// Tasks the job's consumer has waiting, as far as the job's concurrency
/// (its `max_ack_pending`, across instances) leaves room for them.
async fn waiting_with_room(consumer: &mut PullConsumer) -> Result<u32> {
    let info = consumer.info().await.ctx("reading the job's task queue")?;
    let room = info
        .config
        .max_ack_pending
        .saturating_sub(info.num_ack_pending as i64)
        .max(0) as u64;
    Ok(info.num_pending.min(room).min(u64::from(u32::MAX)) as u32)
}

/// Whether the job has work for the targets whose shared limits it
/// passes (`competition`); cleared when the worker stops pulling.
struct Demand<'a> {
    ctx: &'a JobContext,
    /// The targets it last said something of.
    targets: Vec<String>,
}

impl<'a> Demand<'a> {
    fn new(ctx: &'a JobContext) -> Self {
        Self {
            ctx,
            targets: Vec::new(),
        }
    }

    /// Records whether the job has work under `limits` now (and none for
    /// targets it no longer calls).
    fn set(&mut self, limits: &[limiter::Limit], has_work: bool) {
        let now: Vec<String> = limiter::shared_targets(limits)
            .map(str::to_string)
            .collect();
        for gone in self.targets.iter().filter(|t| !now.contains(t)) {
            self.ctx.competition.set(gone, &self.ctx.job, None);
        }
        let priority = has_work.then_some(self.ctx.spec.priority);
        for target in &now {
            self.ctx.competition.set(target, &self.ctx.job, priority);
        }
        self.targets = now;
    }

    /// How long to wait into the current window of the shared limits
    /// before taking: the longest any of them asks.
    fn wait(&self, limits: &[limiter::Limit]) -> Duration {
        limits
            .iter()
            .filter_map(|limit| {
                let target = limiter::shared_target(limit)?;
                let share = self.ctx.competition.wait(target, self.ctx.spec.priority);
                Some(limiter::into_window(&limit.rate, share))
            })
            .max()
            .unwrap_or_default()
    }
}

impl Drop for Demand<'_> {
    fn drop(&mut self) {
        self.set(&[], false);
    }
}

/// A pull shorter than this is not worth asking for: the tokens' window
/// ends before the tasks could arrive.
const MIN_PULL: Duration = Duration::from_millis(2);

/// Opens the job's task consumer and starts pulling, in batches of the
/// job's concurrency; also returns the consumer's `ack_wait`.
async fn pull_tasks(ctx: &JobContext) -> Result<(pull::Stream, Duration)> {
    let consumer = task_queue::open(&ctx.bus, &ctx.job).await?;
    let ack_wait = consumer.cached_info().config.ack_wait;
    let batch = (ctx.settings.concurrency as usize).clamp(1, 256);
    let messages = consumer
        .stream()
        .max_messages_per_batch(batch)
        .heartbeat(Duration::from_secs(5))
        .expires(Duration::from_secs(30))
        .messages()
        .await
        .ctx("pulling tasks")?;
    Ok((messages, ack_wait))
}

/// Waits for one of this instance's slots for `msg`, at the job's
/// priority (`slots`); `None` if `stop` comes first (after handing back
/// `msg` and the rest of what was pulled).
async fn slot_for(
    ctx: &JobContext,
    msg: &Message,
    messages: &mut pull::Stream,
    stop: &CancellationToken,
) -> Option<Permit> {
    tokio::select! {
        biased;
        _ = stop.cancelled() => {
            give_back(msg).await;
            hand_back(messages).await;
            None
        }
        permit = ctx.slots.acquire(ctx.spec.priority) => Some(permit),
    }
}

/// Runs `msg` on a task of its own that holds `permit` until the task is
/// acknowledged; one that only starts after `stop` is handed back instead.
fn spawn_item(
    ctx: &Arc<JobContext>,
    msg: Message,
    permit: Permit,
    stop: &CancellationToken,
    in_flight: &TaskTracker,
    ack_wait: Duration,
) {
    let (task_ctx, task_stop) = (ctx.clone(), stop.clone());
    in_flight.spawn(async move {
        if task_stop.is_cancelled() {
            give_back(&msg).await;
        } else {
            handle(&task_ctx, msg, ack_wait).await;
        }
        drop(permit);
    });
}

/// While the target's breaker is open, waits before pulling more (at most
/// a third of `ack_wait`, or until `stop`): what is pulled now would only
/// be held back again.
async fn pause_while_breaker_open(ctx: &JobContext, stop: &CancellationToken, ack_wait: Duration) {
    if let Some(wait) = ctx.breakers.blocked_for(&ctx.target, Instant::now()) {
        tokio::select! {
            _ = stop.cancelled() => {}
            _ = tokio::time::sleep(wait.min(ack_wait / 3)) => {}
        }
    }
}

/// Tasks already received but not started go back at once (rather than
/// after `ack_wait`), so a stopping job drains quickly and a shutting-down
/// instance's tasks go to another.
async fn hand_back(messages: &mut pull::Stream) {
    while let Some(Some(Ok(msg))) = messages.next().now_or_never() {
        give_back(&msg).await;
    }
}

/// Hands one task back at once, for this or another instance to run.
async fn give_back(msg: &Message) {
    if let Err(err) = msg.ack_with(AckKind::Nak(None)).await {
        tracing::debug!(error = %err, "cannot hand a task back");
    }
}

/// Processes one task and gives it its one acknowledgement.
async fn handle(ctx: &JobContext, msg: Message, ack_wait: Duration) {
    // Debug level: with no trace exporter nobody wants a span per item.
    let span = tracing::debug_span!("item", job = %ctx.job, item = tracing::field::Empty);
    // The task's context (the job's, or its batch span's when exporting);
    // a task published without one (by hand) runs in the job's.
    let mut cx = trace::follow(&span, msg.headers.as_ref());
    if !trace::is_traced(&cx) {
        let job_traceparent = ctx.states.borrow().traceparent.clone();
        cx = trace::follow_traceparent(&span, job_traceparent.as_deref());
    }
    let processed = trace::carrying(cx, item::process(ctx, &msg, ack_wait).instrument(span));
    let ack = match processed.await {
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
