//! Paging one job, on the instance that holds its fetch lease.
//!
//! For each page: wait until fewer than `max_inflight_batches` of the job's
//! batches hold work and fewer than `max_parked` items wait out a retry
//! ([`Room::may_fetch`], from the job state the supervisor hands the pager as it
//! changes), read the page, append
//! `fetched` to the job's ledger, publish the batch, then checkpoint the
//! cursor ([`next_checkpoint`]). Every publish carries a de-duplication id,
//! so repeating a page after a crash adds nothing.

use std::{sync::Arc, time::Duration};

use async_nats::jetstream::kv::Operation;
use chrono::Utc;
use jetflow_protocol::{
    codec, headers,
    job::{after, FetchCheckpoint, JobSpec, JobState, JobStatus, Settings},
    messages::{BatchMessage, EventKind, Item, JobEvent, LedgerEntry, TaskQueue},
    retry::retry_delay,
};
use jetflow_runtime::{
    ownership::lease::Work,
    process::{activity::Activity, metrics::Metrics, trace},
    Bus, Error, Result, ResultExt,
};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::{
    checkpoint::next_checkpoint,
    dependencies::{self, Released},
    source::{Page, Source, SourceError},
};

/// Attempts at a page while the source is unavailable before the job fails.
const SOURCE_ATTEMPTS: u32 = 8;

/// Pages the job of `state` (its state as the supervisor sees it change)
/// until its source is exhausted, it fails, or `stop` is cancelled. An
/// `http` source requests its pages through `http`.
pub async fn page_job(
    bus: Bus,
    http: reqwest::Client,
    state: watch::Receiver<JobState>,
    activity: Arc<Activity>,
    metrics: Metrics,
    stop: CancellationToken,
) -> Work {
    let job = state.borrow().id.clone();
    let _paging = activity.job(&job);
    match Pager::open(&bus, http, state, activity.clone(), metrics).await {
        Ok(Some(mut pager)) => {
            // Everything the job's paging sends carries the job's context.
            let cx = trace::remote(pager.traceparent.as_deref());
            match trace::carrying(cx, pager.run(&stop)).await {
                Ok(work) => work,
                Err(Error::Shutdown) => Work::Interrupted,
                Err(err) => {
                    tracing::warn!(job, error = %err, "paging interrupted; will resume from the checkpoint");
                    Work::Interrupted
                }
            }
        }
        Ok(None) => Work::Finished,
        Err(err) => {
            tracing::warn!(job, error = %err, "cannot start paging; will retry");
            Work::Interrupted
        }
    }
}

struct Pager {
    bus: Bus,
    metrics: Metrics,
    /// The job's state, kept current by the supervisor.
    state: watch::Receiver<JobState>,
    /// The job's root span, to which each page's span belongs.
    traceparent: Option<String>,
    activity: Arc<Activity>,
    job: String,
    spec: JobSpec,
    source: Source,
    checkpoint: FetchCheckpoint,
    checkpoint_revision: u64,
}

impl Pager {
    /// Loads the job's spec and checkpoint; `None` if the job cannot be paged.
    async fn open(
        bus: &Bus,
        http: reqwest::Client,
        state: watch::Receiver<JobState>,
        activity: Arc<Activity>,
        metrics: Metrics,
    ) -> Result<Option<Pager>> {
        let (job, traceparent) = {
            let state = state.borrow();
            (state.id.clone(), state.traceparent.clone())
        };
        let Some(raw) = bus.kv.specs.get(&job).await.ctx("reading job spec")? else {
            tracing::error!(job, "job has state but no spec; cannot fetch it");
            return Ok(None);
        };
        let spec: JobSpec = codec::decode_as(codec::Format::Json, &raw)?;
        let (checkpoint, checkpoint_revision) = read_checkpoint(bus, &job).await?;
        let source = Source::new(&spec.source, &job, http, bus);
        Ok(Some(Pager {
            bus: bus.clone(),
            metrics,
            state,
            traceparent,
            activity,
            job,
            spec,
            source,
            checkpoint,
            checkpoint_revision,
        }))
    }

    async fn run(&mut self, stop: &CancellationToken) -> Result<Work> {
        if self.checkpoint.done {
            self.finish().await?;
            return Ok(Work::Finished);
        }
        if self.checkpoint.batches == 0 {
            // A job with an `after` waits for its dependencies before it
            // starts (once started, they are not asked again: they may be
            // gone by then).
            let waiting = self.state.borrow().status == JobStatus::Waiting;
            let deps: Vec<_> = after::waits_for(&self.spec)
                .into_iter()
                .map(|(_, dep)| dep)
                .collect();
            if waiting && !deps.is_empty() {
                match dependencies::wait(&self.bus, &deps, stop).await? {
                    Released::Go => {}
                    Released::Broken(reason) => {
                        self.fail(reason).await?;
                        return Ok(Work::Finished);
                    }
                }
            }
            self.start().await?;
        }
        let settings = self.spec.settings();
        let mut progress = ReducerProgress::new(self.state.clone());
        loop {
            let published = self.checkpoint.batches;
            match progress.wait_for_room(published, &settings, stop).await? {
                Gate::Open => {}
                Gate::JobEnded => return Ok(Work::Finished),
            }
            let span = tracing::info_span!("fetch.page", job = %self.job, batch = self.checkpoint.batches + 1);
            // The page's work already carries the job's context (`page_job`).
            let _ = trace::follow_traceparent(&span, self.traceparent.as_deref());
            let page = match self
                .read_page(settings.fetch_size, stop)
                .instrument(span.clone())
                .await?
            {
                Ok(page) => page,
                Err(error) => {
                    self.fail(error).await?;
                    return Ok(Work::Finished);
                }
            };
            let done = self.publish_page(page).instrument(span).await?;
            if done {
                self.finish().await?;
                return Ok(Work::Finished);
            }
        }
    }

    async fn start(&self) -> Result<()> {
        let entry = LedgerEntry::Started { at: Utc::now() };
        self.bus
            .record_fact(&self.job, &entry, "recording start")
            .await?;
        let mut started = JobEvent::new(&self.job, EventKind::Started);
        started.tasks = Some(TaskQueue::of(&self.bus.names, &self.job));
        self.bus.publish_event(&started, None).await?;
        tracing::info!(job = %self.job, "fetching started");
        Ok(())
    }

    /// Reads the next page, retrying while the source is unavailable. The
    /// inner `Err` is the reason the job must fail.
    async fn read_page(
        &self,
        limit: u32,
        stop: &CancellationToken,
    ) -> Result<std::result::Result<Page, String>> {
        let cursor = self.checkpoint.cursor.as_deref();
        let _reading = self.activity.start(
            &self.job,
            format!(
                "page {} (cursor {})",
                self.checkpoint.batches + 1,
                cursor.unwrap_or("start")
            ),
        );
        let mut attempt = 0;
        loop {
            attempt += 1;
            match self.source.page(cursor, limit).await {
                Ok(page) => return Ok(Ok(page)),
                Err(SourceError::Refused(reason)) => return Ok(Err(reason)),
                Err(SourceError::Unavailable(reason)) if attempt >= SOURCE_ATTEMPTS => {
                    return Ok(Err(format!(
                        "source unavailable after {attempt} attempts: {reason}"
                    )))
                }
                Err(SourceError::Unavailable(reason)) => {
                    let delay =
                        retry_delay(attempt, Duration::from_millis(500), Duration::from_secs(30));
                    tracing::warn!(job = %self.job, attempt, ?delay, reason, "source unavailable; retrying");
                    tokio::select! {
                        _ = stop.cancelled() => return Err(Error::Shutdown),
                        _ = tokio::time::sleep(delay) => {}
                    }
                }
            }
        }
    }

    /// Publishes one page as the next batch (unless it is empty) and
    /// checkpoints; true when the source is exhausted.
    async fn publish_page(&mut self, page: Page) -> Result<bool> {
        let next = next_checkpoint(&self.checkpoint, &page);
        if next.batches > self.checkpoint.batches {
            self.record_batch(next.batches, page.items).await?;
        }
        self.save_checkpoint(next).await?;
        Ok(self.checkpoint.done)
    }

    /// Appends `fetched` to the job's ledger, then publishes the batch.
    async fn record_batch(&self, batch: u64, items: Vec<Item>) -> Result<()> {
        let size = items.len() as u64;
        let fetched = LedgerEntry::Fetched {
            batch,
            size,
            at: Utc::now(),
        };
        self.bus
            .record_fact(&self.job, &fetched, "recording fetched batch")
            .await?;
        self.publish_batch(batch, items).await?;
        self.activity.count("pages_fetched", 1);
        self.activity.count("items_fetched", size);
        self.metrics.fetched(&self.spec.kind, size);
        tracing::info!(job = %self.job, batch, size, cursor = ?self.checkpoint.cursor, "batch fetched");
        Ok(())
    }

    async fn publish_batch(&self, batch: u64, items: Vec<Item>) -> Result<()> {
        let message = BatchMessage {
            job: self.job.clone(),
            batch,
            items,
        };
        let mut hdrs = codec::headers_for(codec::Format::MsgPack);
        hdrs.insert(
            headers::MSG_ID,
            BatchMessage::msg_id(&self.job, batch).as_str(),
        );
        trace::inject_current(&mut hdrs);
        self.bus
            .js
            .publish_with_headers(
                self.bus.names.batch_subject(&self.job),
                hdrs,
                codec::to_msgpack(&message),
            )
            .await
            .ctx("publishing batch")?
            .await
            .ctx("storing batch")?;
        Ok(())
    }

    /// Compare-and-swap on our own last revision: if another instance paged
    /// this job meanwhile (a lease we thought we held), stop rather than fork.
    async fn save_checkpoint(&mut self, next: FetchCheckpoint) -> Result<()> {
        let value = codec::to_json(&next);
        let revision = if self.checkpoint_revision == 0 {
            self.bus
                .kv
                .checkpoints
                .create(&self.job, value)
                .await
                .ctx("creating checkpoint")?
        } else {
            self.bus
                .kv
                .checkpoints
                .update(&self.job, value, self.checkpoint_revision)
                .await
                .ctx("saving checkpoint")?
        };
        self.checkpoint = next;
        self.checkpoint_revision = revision;
        Ok(())
    }

    async fn finish(&self) -> Result<()> {
        let entry = LedgerEntry::FetchDone {
            batches: self.checkpoint.batches,
            total: self.checkpoint.fetched,
            at: Utc::now(),
        };
        self.bus
            .record_fact(&self.job, &entry, "recording end of source")
            .await?;
        tracing::info!(job = %self.job, batches = self.checkpoint.batches, items = self.checkpoint.fetched, "fetching done");
        Ok(())
    }

    async fn fail(&mut self, error: String) -> Result<()> {
        tracing::warn!(job = %self.job, error, "failing the job before it can fetch more");
        let entry = LedgerEntry::FetchFailed {
            error,
            at: Utc::now(),
        };
        self.bus
            .record_fact(&self.job, &entry, "recording source failure")
            .await?;
        // Nothing more to read: a pager started before the reducer has
        // folded the failure (the job still says `fetching`) must not ask
        // the source again.
        let mut next = self.checkpoint.clone();
        next.done = true;
        self.save_checkpoint(next).await
    }
}

/// The job's checkpoint and its revision; the default at revision 0 before
/// the first page.
async fn read_checkpoint(bus: &Bus, job: &str) -> Result<(FetchCheckpoint, u64)> {
    match bus
        .kv
        .checkpoints
        .entry(job)
        .await
        .ctx("reading checkpoint")?
    {
        Some(entry) if entry.operation == Operation::Put => Ok((
            codec::decode_as(codec::Format::Json, &entry.value)?,
            entry.revision,
        )),
        _ => Ok((FetchCheckpoint::default(), 0)),
    }
}

/// Whether fetch may publish another batch.
enum Gate {
    Open,
    JobEnded,
}

/// What the job state says about room for another batch.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
struct Room {
    /// Batches whose items all have outcomes.
    batches_done: u64,
    /// Open batches whose unfinished items all wait out a retry.
    only_parked: u64,
    /// Items waiting out a retry.
    parked: u64,
}

impl Room {
    fn of(state: &JobState) -> Self {
        Self {
            batches_done: state.batches_done,
            only_parked: state
                .open_batches
                .values()
                .filter(|batch| batch.only_parked())
                .count() as u64,
            parked: state.parked(),
        }
    }

    /// Whether fetch may publish another batch, `published` being out:
    /// fewer than `max_inflight_batches` of them hold work — unfinished,
    /// and not only waiting out retries (a batch whose open items are all
    /// parked holds no slot and waits only for time) — and fewer than
    /// `max_parked` items wait out a retry, which bounds how far parked
    /// items let fetch run ahead.
    fn may_fetch(&self, published: u64, settings: &Settings) -> bool {
        let unfinished = published.saturating_sub(self.batches_done);
        unfinished.saturating_sub(self.only_parked) < u64::from(settings.max_inflight_batches)
            && self.parked < u64::from(settings.max_parked)
    }
}

/// The reducer's progress on one job, from the job's state as the
/// supervisor hands it on.
struct ReducerProgress {
    state: watch::Receiver<JobState>,
    room: Room,
}

impl ReducerProgress {
    fn new(state: watch::Receiver<JobState>) -> Self {
        Self {
            state,
            room: Room::default(),
        }
    }

    /// Waits until there is room for another batch ([`Room::may_fetch`]).
    async fn wait_for_room(
        &mut self,
        published: u64,
        settings: &Settings,
        stop: &CancellationToken,
    ) -> Result<Gate> {
        // A job that stops fetching (cancelled, failed, removed) reaches the
        // pager as `stop`, not as a state: the supervisor hands on only the
        // states of jobs still fetching. A lost lease cancels `stop` too.
        if stop.is_cancelled() {
            return Err(Error::Shutdown);
        }
        // Take in what the reducer wrote meanwhile without waiting: the
        // channel holds only the latest state, however far fetch ran ahead.
        if let Gate::JobEnded = self.take_latest() {
            return Ok(Gate::JobEnded);
        }
        while !self.room.may_fetch(published, settings) {
            tokio::select! {
                biased;
                _ = stop.cancelled() => return Err(Error::Shutdown),
                // The supervisor dropped its end: it is shutting down.
                changed = self.state.changed() => changed.map_err(|_| Error::Shutdown)?,
            }
            if let Gate::JobEnded = self.take_latest() {
                return Ok(Gate::JobEnded);
            }
        }
        Ok(Gate::Open)
    }

    /// Reads the latest state, marking it seen.
    fn take_latest(&mut self) -> Gate {
        let state = self.state.borrow_and_update();
        if !state.status.is_active() {
            return Gate::JobEnded;
        }
        self.room = Room::of(&state);
        Gate::Open
    }
}

#[cfg(test)]
mod tests {
    use jetflow_protocol::job::{JobState, OpenBatch, Preset, Settings};

    use super::Room;

    fn settings(max_inflight_batches: u32, max_parked: u32) -> Settings {
        Settings {
            max_inflight_batches,
            max_parked,
            ..Preset::Balanced.settings()
        }
    }

    fn batch(size: u64, done: u64, parked: u64) -> OpenBatch {
        OpenBatch {
            size,
            succeeded: done,
            parked,
            ..OpenBatch::default()
        }
    }

    fn state(open: &[OpenBatch]) -> JobState {
        let spec = jetflow_protocol::job::parse_submission(
            None,
            br#"{"id":"j","kind":"k","source":{"type":"ids","ids":["a"]},"handler":{"type":"nats","subject":"w"}}"#,
            || "j".into(),
        )
        .expect("a valid job");
        let mut state = JobState::new(&spec, chrono::Utc::now());
        for (n, open) in open.iter().enumerate() {
            state.open_batches.insert(n as u64 + 1, open.clone());
        }
        state
    }

    #[test]
    fn batches_holding_work_fill_the_window() {
        let s = settings(2, 100);
        let room = Room::of(&state(&[batch(50, 10, 0), batch(50, 0, 3)]));
        assert!(!room.may_fetch(2, &s), "two batches hold work");
        let room = Room::of(&state(&[batch(50, 10, 0)]));
        assert!(room.may_fetch(1, &s));
        assert!(
            !room.may_fetch(2, &s),
            "a published batch the reducer has not opened yet holds work"
        );
    }

    #[test]
    fn a_batch_only_waiting_out_retries_leaves_the_window() {
        let s = settings(2, 100);
        // 47 done, the other 3 parked: it holds no slot.
        let room = Room::of(&state(&[batch(50, 47, 3), batch(50, 0, 1)]));
        assert_eq!(room.only_parked, 1);
        assert_eq!(room.parked, 4);
        assert!(room.may_fetch(2, &s));
        // An overstated count (a retried call's result was not the one
        // counted) is still only as many as are unfinished.
        let room = Room::of(&state(&[batch(50, 49, 3)]));
        assert_eq!(room.parked, 1);
    }

    #[test]
    fn parked_items_have_their_own_bound() {
        let s = settings(100, 5);
        let room = Room::of(&state(&[batch(50, 45, 5)]));
        assert!(!room.may_fetch(1, &s), "5 parked items is the bound");
        let room = Room::of(&state(&[batch(50, 46, 4)]));
        assert!(room.may_fetch(1, &s));
    }
}
