//! One job's tasks on this instance: pull, run, and acknowledge each exactly
//! once — ack after the result is stored, nak with a backoff delay to retry,
//! dead-letter then ack to give up.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use async_nats::jetstream::{AckKind, Message};
use futures::{FutureExt, StreamExt};
use jetflow_protocol::job::{ConfigChange, HandlerSpec, JobSpec, JobState, Settings};
use jetflow_runtime::{
    nats::task_queue, process::activity::Activity, process::metrics::Metrics, process::trace, Bus,
    Error, ErrorKind, Result, ResultExt,
};
use tokio::sync::{watch, Semaphore};
use tokio_util::{sync::CancellationToken, task::TaskTracker};
use tracing::Instrument;

use crate::{
    breaker::{http_target, Breakers},
    item,
    ledger::LedgerWriter,
};

/// What a job's worker needs, shared by its item tasks.
#[derive(Clone)]
pub struct JobContext {
    pub(crate) bus: Bus,
    pub(crate) http: reqwest::Client,
    pub(crate) slots: Arc<Semaphore>,
    pub(crate) breakers: Arc<Breakers>,
    pub(crate) activity: Arc<Activity>,
    pub(crate) metrics: Metrics,
    /// The breaker key of the job's handler.
    pub(crate) target: String,
    pub(crate) job: String,
    pub(crate) spec: Arc<JobSpec>,
    pub(crate) settings: Settings,
    /// Where the job's item results are stored, grouped.
    pub(crate) ledger: LedgerWriter,
}

impl JobContext {
    /// The context of `state`'s job; `slots` caps this instance's items in flight.
    pub fn new(
        bus: Bus,
        http: reqwest::Client,
        slots: Arc<Semaphore>,
        breakers: Arc<Breakers>,
        activity: Arc<Activity>,
        metrics: Metrics,
        state: &JobState,
    ) -> Self {
        let target = match &state.spec.handler {
            HandlerSpec::Http(http) => http_target(&http.url),
            HandlerSpec::Nats(nats) => format!("nats:{}", nats.subject),
            other => other.type_name().to_string(),
        };
        Self {
            ledger: LedgerWriter::start(bus.clone(), state.id.clone()),
            bus,
            http,
            slots,
            breakers,
            activity,
            metrics,
            target,
            job: state.id.clone(),
            settings: state.spec.settings(),
            spec: Arc::new(state.spec.clone()),
        }
    }

    /// The same context with the live settings of `spec`.
    fn reconfigured(&self, spec: &JobSpec) -> Self {
        Self {
            settings: spec.settings(),
            spec: Arc::new(spec.clone()),
            ..self.clone()
        }
    }
}

/// Works on the job's tasks until `stop` (job ended or shutdown); lets
/// items in flight finish. A change of the job's live settings in `states`
/// applies to the items started after it.
pub async fn run(ctx: JobContext, mut states: watch::Receiver<JobState>, stop: CancellationToken) {
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

/// Pulls and runs tasks until `stop` (`Ok(None)`) or until the job's live
/// settings change (`Ok(Some(new spec))`, after handing back what was
/// pulled but not started).
async fn consume(
    ctx: &Arc<JobContext>,
    states: &mut watch::Receiver<JobState>,
    stop: &CancellationToken,
    in_flight: &TaskTracker,
) -> Result<Option<JobSpec>> {
    let consumer = task_queue::open(&ctx.bus, &ctx.job).await?;
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
                return Ok(None);
            }
            spec = settings_changed(ctx, states) => {
                // Pulled with the old batch size and settings: let them go
                // back and pull again under the new ones.
                hand_back(&mut messages).await;
                return Ok(Some(spec));
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
                        return Ok(None);
                    }
                    permit = ctx.slots.clone().acquire_owned() => permit,
                };
                let Ok(permit) = permit else { return Ok(None) };
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
                return Err(Error::nats(
                    "pulling tasks",
                    ErrorKind::Transient,
                    "stream ended",
                ))
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
pub(crate) enum Ack {
    /// Ack: the task is done with (ran, held back, or dead-lettered).
    Done,
    /// Nak with this delay: try again later.
    Retry(Duration),
}

async fn handle(ctx: &JobContext, msg: Message, ack_wait: Duration) {
    // Debug level: with no trace exporter nobody wants a span per item.
    let span = tracing::debug_span!("item", job = %ctx.job, item = tracing::field::Empty);
    trace::follow(&span, msg.headers.as_ref());
    let ack = match item::process(ctx, &msg, ack_wait).instrument(span).await {
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
