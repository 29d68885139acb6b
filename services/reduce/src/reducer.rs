//! Reducing one job, on the instance that holds its reduce lease.
//!
//! Reads the job's ledger in order from just after the checkpoint
//! (`folded_seq` in job state) with an ordered consumer, and for each run of
//! entries: record item outcomes (create-if-absent), fold, announce, then
//! checkpoint the state with compare-and-swap. See docs/exactly-once.md.

use std::time::{Duration, Instant};

use async_nats::jetstream::{
    consumer::{
        pull::{Ordered, OrderedConfig},
        DeliverPolicy,
    },
    kv::Operation,
    Message,
};
use chrono::Utc;
use futures::{FutureExt, StreamExt};
use jetflow_protocol::{
    codec,
    job::{JobState, JobStatus},
    limits,
    messages::LedgerEntry,
    Stage,
};
use jetflow_runtime::{
    nats::task_queue, ownership::lease::Work, process::trace, Bus, Error, ErrorKind, Result,
    ResultExt,
};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::{
    announce,
    facts::{self, Count, Fact},
    fold,
    job_metrics::JobMetrics,
    notify, outcomes, stopping, user_reducers,
};

/// Most ledger messages folded per checkpoint...
const MAX_CHUNK: usize = 1000;
/// ...and most bytes of them: an `items` entry holds up to a few hundred
/// results, each an outcome record to write in the same fold.
const MAX_CHUNK_BYTES: usize = 512 << 10;
/// Least time between two folds. A fold writes the whole job state, which
/// every service watching jobs then reads; folding whatever had arrived the
/// moment anything arrived made a busy job write its state hundreds of times
/// a second, a few results each. Waiting this long lets results gather
/// (their items are long acked: the wait holds nothing up but the tally).
const FOLD_EVERY: Duration = Duration::from_millis(20);
/// How often a stopping job's drain and an active job's timeout are checked.
const TICK: Duration = Duration::from_millis(250);
/// How often folded ledger entries are purged.
const PURGE_EVERY: Duration = Duration::from_secs(5);

/// Reduces `job` until it ends or `stop` is cancelled.
pub async fn reduce_job(
    bus: Bus,
    job: String,
    metrics: JobMetrics,
    stop: CancellationToken,
) -> Work {
    let mut reducer = match Reducer::open(bus, &job, metrics).await {
        Ok(Some(reducer)) => reducer,
        Ok(None) => return Work::Finished,
        Err(err) => {
            tracing::warn!(job, error = %err, "cannot start reducing; will retry");
            return Work::Interrupted;
        }
    };
    match reducer.run(&stop).await {
        Ok(work) => work,
        Err(err) => {
            match err.kind() {
                ErrorKind::Shutdown => {}
                // Someone else wrote the state since we read it (`jetflow
                // config`, `dlq replay` reopening the job, a reducer that
                // still held an expired lease): normal, not a fault.
                ErrorKind::Conflict => {
                    tracing::debug!(job, error = %err, "job state changed under the reducer; re-reading")
                }
                _ => {
                    tracing::warn!(job, error = %err, "reducing interrupted; will resume from the checkpoint")
                }
            }
            Work::Interrupted
        }
    }
}

struct Reducer {
    bus: Bus,
    metrics: JobMetrics,
    job: String,
    state: JobState,
    revision: u64,
    purged_through: u64,
    last_purge: Instant,
}

impl Reducer {
    async fn open(bus: Bus, job: &str, metrics: JobMetrics) -> Result<Option<Reducer>> {
        let entry = bus.kv.jobs.entry(job).await.ctx("reading job state")?;
        let Some(entry) = entry.filter(|e| e.operation == Operation::Put) else {
            return Ok(None);
        };
        let state: JobState = codec::decode_as(codec::Format::Json, &entry.value)?;
        if state.status.is_terminal() {
            return Ok(None);
        }
        Ok(Some(Reducer {
            bus,
            metrics,
            job: job.to_string(),
            revision: entry.revision,
            purged_through: 0,
            last_purge: Instant::now(),
            state,
        }))
    }

    async fn run(&mut self, stop: &CancellationToken) -> Result<Work> {
        let mut ledger = self.open_ledger().await?;
        let mut tick = tokio::time::interval(TICK);
        let mut last_fold = tokio::time::Instant::now() - FOLD_EVERY;
        loop {
            let first = tokio::select! {
                biased;
                _ = stop.cancelled() => return Err(Error::Shutdown),
                first = ledger.next() => first,
                _ = tick.tick() => {
                    self.append_due().await?;
                    continue;
                }
            };
            let Some(first) = first else {
                return Err(Error::nats(
                    "reading the job's ledger",
                    ErrorKind::Transient,
                    "ledger ended",
                ));
            };
            tokio::select! {
                biased;
                _ = stop.cancelled() => return Err(Error::Shutdown),
                _ = tokio::time::sleep_until(last_fold + FOLD_EVERY) => {}
            }
            last_fold = tokio::time::Instant::now();
            let messages = self.chunk(first, &mut ledger);
            if messages.is_empty() {
                continue;
            }
            let span =
                tracing::info_span!("reduce.fold", job = %self.job, entries = messages.len());
            let cx = trace::follow_traceparent(&span, self.state.traceparent.as_deref());
            if trace::carrying(cx, self.fold(messages).instrument(span)).await? {
                return Ok(Work::Finished);
            }
            self.purge_folded(false).await;
        }
    }

    /// The job's ledger, in order, from just after the checkpoint.
    async fn open_ledger(&self) -> Result<Ordered> {
        let stream = self
            .bus
            .js
            .get_stream(self.bus.names.results_stream())
            .await
            .ctx("opening the results stream")?;
        let deliver_policy = match self.state.folded_seq {
            0 => DeliverPolicy::All,
            seq => DeliverPolicy::ByStartSequence {
                start_sequence: seq + 1,
            },
        };
        let consumer = stream
            .create_consumer(OrderedConfig {
                filter_subject: self.bus.names.result_subject(&self.job),
                deliver_policy,
                ..Default::default()
            })
            .await
            .ctx("reading the job's ledger")?;
        consumer.messages().await.ctx("reading the job's ledger")
    }

    /// `first` and whatever else of the ledger has already arrived, up to
    /// the chunk limits.
    fn chunk<S, E>(&self, first: std::result::Result<Message, E>, ledger: &mut S) -> Vec<Message>
    where
        S: futures::Stream<Item = std::result::Result<Message, E>> + Unpin,
        E: std::fmt::Display,
    {
        let mut messages = Vec::new();
        let mut bytes = 0;
        let mut next = Some(first);
        while let Some(msg) = next.take() {
            match msg {
                Ok(msg) => {
                    bytes += msg.payload.len();
                    messages.push(msg);
                }
                Err(err) => tracing::debug!(job = %self.job, error = %err, "ledger read error"),
            }
            if messages.len() < MAX_CHUNK && bytes < MAX_CHUNK_BYTES {
                next = ledger.next().now_or_never().flatten();
            }
        }
        messages
    }

    /// Folds one run of ledger messages and checkpoints; true if the job ended.
    async fn fold(&mut self, messages: Vec<Message>) -> Result<bool> {
        let entries = self.read_entries(&messages).await?;
        if entries.is_empty() {
            return Ok(false);
        }
        let mut facts = facts::flatten(entries);
        outcomes::drop_own_items(&self.bus, &self.job, &mut facts).await?;
        let counts = outcomes::record(&self.bus, &self.job, &facts).await?;
        let (mut next, effects) = fold_facts(&self.state, &facts, counts);
        user_reducers::fold(&self.bus, &mut next, &effects.user_outputs).await?;
        announce::batches(&self.bus, &next, &effects).await?;
        announce::pauses(&self.bus, &next, &effects).await?;
        self.steer_tasks(&next, &effects).await?;
        if effects.ended.is_some() {
            // Before the checkpoint, so a crash in between publishes them
            // again (the same ids: the stream keeps one of each). After it,
            // a reducer would find the job ended and tell no one.
            notify::publish(&self.bus, &next).await?;
        }
        self.checkpoint(next).await?;
        if effects.ended.is_some() {
            self.finish().await?;
            return Ok(true);
        }
        Ok(false)
    }

    /// The entries of `messages` the checkpoint does not cover, by stream
    /// sequence. One too large or unreadable is dead-lettered and kept as
    /// `None`, so that its sequence is still checkpointed.
    async fn read_entries(&self, messages: &[Message]) -> Result<Vec<(u64, Option<LedgerEntry>)>> {
        let mut entries = Vec::with_capacity(messages.len());
        for msg in messages {
            let seq = msg.info().map(|i| i.stream_sequence).map_err(|e| {
                Error::nats(
                    "reading ledger metadata",
                    ErrorKind::Transient,
                    e.to_string(),
                )
            })?;
            if seq <= self.state.folded_seq {
                continue;
            }
            if let Some(reason) =
                limits::oversized(msg.payload.len(), limits::MAX_LEDGER_ENTRY_BYTES)
            {
                self.dead_letter(msg, &reason).await?;
                entries.push((seq, None));
                continue;
            }
            match codec::decode::<LedgerEntry>(msg.headers.as_ref(), &msg.payload) {
                Ok(entry) => entries.push((seq, Some(entry))),
                Err(err) => {
                    self.dead_letter(msg, &err.to_string()).await?;
                    entries.push((seq, None));
                }
            }
        }
        Ok(entries)
    }

    /// Makes the job's task consumer follow the fold: paused once the job
    /// stops, reconfigured when its live settings change.
    async fn steer_tasks(&self, next: &JobState, effects: &fold::Effects) -> Result<()> {
        if effects.stopping {
            // Before the state says `cancelling`: whoever sees that can rely
            // on no new task of the job being handed out.
            stopping::pause_tasks(&self.bus, &self.job).await?;
            tracing::info!(job = %self.job, reason = next.reason.as_deref().unwrap_or(""), "job stopping; letting items in flight finish");
        }
        if effects.reconfigured && next.status.is_active() {
            // Before the checkpoint, so a crash in between re-applies it.
            task_queue::ensure(&self.bus, &self.job, &next.spec).await?;
            let s = next.spec.settings();
            tracing::info!(job = %self.job, concurrency = s.concurrency, max_retries = s.max_retries, handler_timeout = ?next.spec.handler_timeout(), "live settings changed");
        }
        // A consumer brought up to date is not paused: pause it again.
        if !effects.pauses.is_empty() || (effects.reconfigured && next.status == JobStatus::Paused)
        {
            self.follow_pause(next).await?;
        }
        Ok(())
    }

    /// Pauses or resumes the job's task consumer as `next` says, before the
    /// state says so: whoever sees `paused` can rely on no task of the job
    /// being handed out. A timed pause is also the consumer's, so the
    /// server resumes handing out tasks at the end even before the reducer
    /// has appended `resumed`.
    async fn follow_pause(&self, next: &JobState) -> Result<()> {
        if next.status == JobStatus::Paused {
            task_queue::pause_until(&self.bus, &self.job, next.paused_until).await?;
            tracing::info!(job = %self.job, until = ?next.paused_until, reason = next.pause_reason.as_deref().unwrap_or(""), "job paused; items in flight finish");
        } else if next.status.runs_items() {
            task_queue::resume(&self.bus, &self.job).await?;
            tracing::info!(job = %self.job, "job resumed");
        }
        Ok(())
    }

    /// Appends `drained` or `timed_out` to the ledger when due; the fold
    /// acts on it when it comes round, like any other entry.
    async fn append_due(&self) -> Result<()> {
        if let Some((entry, msg_id)) = stopping::due_entry(&self.bus, &self.state).await? {
            self.bus
                .record_entry(&self.job, &entry, &msg_id, "appending to the ledger")
                .await?;
        }
        Ok(())
    }

    /// Writes job state if nobody else has since we read it; a conflict
    /// ends this run, and the next re-reads the state and the ledger from
    /// the checkpoint.
    async fn checkpoint(&mut self, next: JobState) -> Result<()> {
        let value = codec::to_json(&next);
        self.revision = self
            .bus
            .kv
            .jobs
            .update(&self.job, value, self.revision)
            .await
            .ctx(format!("checkpointing job {}", self.job))?;
        // Counted only once a fold is checkpointed: a fold repeated after a
        // crash counts in the process that checkpoints it.
        self.metrics.checkpointed(&self.state, &next);
        self.state = next;
        Ok(())
    }

    async fn finish(&mut self) -> Result<()> {
        // After the checkpoint: whoever sees the final event can read the
        // ended state.
        announce::ended(&self.bus, &self.state).await?;
        self.metrics.ended(&self.state);
        let names = self.bus.names.clone();
        // Tasks and pages left (a stopped job's) are done with. The task
        // consumer goes last: `jetflow dlq replay` waits for it to be gone
        // before it publishes tasks again, so none of those can be purged.
        if let Ok(tasks) = self.bus.js.get_stream(names.tasks_stream()).await {
            // Retries still waiting first: one due now would add a task.
            let _ = tasks.purge().filter(names.retry_filter(&self.job)).await;
            let _ = tasks.purge().filter(names.task_subject(&self.job)).await;
        }
        if let Ok(batches) = self.bus.js.get_stream(names.batches_stream()).await {
            let _ = batches.purge().filter(names.batch_subject(&self.job)).await;
        }
        self.purge_folded(true).await;
        match task_queue::delete(&self.bus, &self.job).await {
            Ok(true) => {}
            Ok(false) => tracing::debug!(job = %self.job, "task consumer already gone"),
            Err(err) => {
                tracing::warn!(job = %self.job, error = %err, "cannot delete the task consumer")
            }
        }
        Ok(())
    }

    /// Drops ledger entries the checkpoint covers, so the results stream
    /// stays as small as the work in flight.
    async fn purge_folded(&mut self, now: bool) {
        let due = now || self.last_purge.elapsed() >= PURGE_EVERY;
        if !due || self.state.folded_seq <= self.purged_through {
            return;
        }
        self.last_purge = Instant::now();
        let Ok(stream) = self
            .bus
            .js
            .get_stream(self.bus.names.results_stream())
            .await
        else {
            return;
        };
        let purge = stream
            .purge()
            .filter(self.bus.names.result_subject(&self.job))
            .sequence(self.state.folded_seq + 1)
            .await;
        match purge {
            Ok(_) => self.purged_through = self.state.folded_seq,
            Err(err) => tracing::debug!(job = %self.job, error = %err, "ledger purge failed"),
        }
    }

    async fn dead_letter(&self, msg: &Message, reason: &str) -> Result<()> {
        self.bus
            .dead_letter_message(Stage::Reduce, Some(&self.job), reason, msg)
            .await
    }
}

/// `state` with `facts` folded in, counted as `counts` says, and settled.
fn fold_facts(state: &JobState, facts: &[Fact], counts: Vec<Count>) -> (JobState, fold::Effects) {
    let mut next = state.clone();
    let mut effects = fold::Effects::default();
    for (fact, count) in facts.iter().zip(counts) {
        fold::apply(
            &mut next,
            fact.seq,
            fact.entry.as_ref(),
            count,
            &mut effects,
        );
    }
    fold::settle(&mut next, Utc::now(), &mut effects);
    (next, effects)
}
