//! Folding a job's ledger into its state — pure, deterministic, no I/O.
//!
//! Folding the same entries (with the same `counted` answers, which come
//! from immutable outcome records) always gives the same state, which is
//! why a reducer may crash anywhere and simply fold again from its last
//! checkpoint (docs/exactly-once.md).

use chrono::{DateTime, Utc};
use jetflow_protocol::{
    job::{
        spec::RATIO_MIN_ITEMS, state::ERROR_SAMPLE_LEN, ConfigChange, ErrorSample, FailurePolicy,
        ItemStatus, JobState, JobStatus, OpenBatch, PreviousOutcome,
    },
    messages::{ItemResult, LedgerEntry},
};

use crate::facts::Count;

mod reductions;
#[cfg(test)]
mod tests;

use reductions::ItemView;

/// What a fold changed that the outside world must hear about.
#[derive(Debug, Default, PartialEq)]
pub struct Effects {
    /// Open batches whose counts changed (their records are rewritten).
    pub touched: Vec<u64>,
    /// Batches that finished, with their final counts.
    pub finished_batches: Vec<(u64, OpenBatch)>,
    /// The status the job ended with, if it ended.
    pub ended: Option<JobStatus>,
    /// The job began stopping: no new item may start.
    pub stopping: bool,
    /// Live settings changed: the task consumer must follow.
    pub reconfigured: bool,
    /// The job was paused or resumed, in ledger order (each one is an event).
    pub pauses: Vec<PauseChange>,
    /// Values for `nats` reductions, by reduction name, in ledger order:
    /// what the user's reducers fold before the checkpoint.
    pub user_outputs: Vec<(String, serde_json::Value)>,
}

/// A pause or resume the fold took in, at ledger sequence `seq`.
#[derive(Debug, Clone, PartialEq)]
pub struct PauseChange {
    /// The ledger entry's sequence: the event's de-duplication number.
    pub seq: u64,
    /// Paused (until when, if the pause is timed), or resumed (`None`).
    pub paused: Option<Option<DateTime<Utc>>>,
    /// Why, as the request said.
    pub reason: Option<String>,
}

/// Applies the ledger entry at stream sequence `seq`. `count` says whether
/// (and how) this entry counts: only the entry that created — or, for a
/// replay, replaced — its item's outcome record does; any other result for
/// the item is a duplicate. `None` is an entry that could not be read: it
/// only advances the checkpoint.
pub fn apply(
    state: &mut JobState,
    seq: u64,
    entry: Option<&LedgerEntry>,
    count: Count,
    effects: &mut Effects,
) {
    state.folded_seq = state.folded_seq.max(seq);
    if state.status.is_terminal() {
        return;
    }
    match entry {
        None => {}
        Some(LedgerEntry::Started { at }) => start(state, *at),
        Some(LedgerEntry::Fetched { batch, size, at }) => {
            fetched(state, *batch, *size, *at, effects)
        }
        Some(LedgerEntry::FetchDone { total, .. }) => fetch_done(state, *total),
        Some(LedgerEntry::FetchFailed { error, at }) => {
            stop(state, JobStatus::Failed, error.clone(), *at, effects);
        }
        Some(LedgerEntry::Cancel { reason, at }) => cancel(state, reason.clone(), *at, effects),
        Some(LedgerEntry::TimedOut { at }) => timed_out(state, *at, effects),
        Some(LedgerEntry::Config { change, .. }) => reconfigure(state, change, effects),
        Some(LedgerEntry::Drained { at }) => drained(state, *at, effects),
        Some(LedgerEntry::Dispatched { batch, at }) => dispatched(state, *batch, *at, effects),
        Some(LedgerEntry::Duplicates { batch, items, .. }) => {
            duplicates(state, *batch, items, effects)
        }
        Some(LedgerEntry::Replayed { items, .. }) => state.replaying.extend(items.iter().cloned()),
        Some(LedgerEntry::Parked { batch, first, .. }) => parked(state, *batch, *first),
        Some(LedgerEntry::Paused { until, reason, .. }) => {
            pause(state, seq, *until, reason.clone(), effects)
        }
        Some(LedgerEntry::Resumed { reason, .. }) => resume(state, seq, reason.clone(), effects),
        // Never here: `facts::flatten` turns these into `item` facts, each with its
        // own count. Only the checkpoint above applies.
        Some(LedgerEntry::Items { .. }) => {}
        Some(LedgerEntry::Item(result)) => item_result(state, result, count, effects),
    }
}

/// After a run of entries: ends the job if every item has an outcome.
pub fn settle(state: &mut JobState, now: DateTime<Utc>, effects: &mut Effects) {
    let all_in = state.fetch_done
        && state.open_batches.is_empty()
        && state.batches_done >= state.batches
        && state.replaying.is_empty();
    if all_in && !state.status.is_terminal() {
        match (state.status, state.ends_as) {
            // Stopping, and nothing is left to drain: it ends as it was
            // told to. (A failed source can be followed by a `fetch_done`:
            // a pager restarted before the failure was folded finds its
            // checkpoint done. The job must still fail.)
            (JobStatus::Cancelling, Some(ends_as)) => {
                let reason = state.reason.clone();
                end(state, ends_as, reason, now, effects);
            }
            _ => {
                let status = if state.failed > 0 {
                    JobStatus::Partial
                } else {
                    JobStatus::Completed
                };
                end(state, status, None, now, effects);
            }
        }
    }
    state.update_progress();
    state.updated_at = now;
}

/// Fetch began paging (`started`, or a page fetched): the job leaves
/// `pending` (or `waiting`, its dependencies having ended).
fn start(state: &mut JobState, at: DateTime<Utc>) {
    state.started_at.get_or_insert(at);
    if matches!(state.status, JobStatus::Waiting | JobStatus::Pending) {
        state.status = JobStatus::Fetching;
    }
}

/// Fetch is publishing batch `batch` of `size` items: the batch opens.
fn fetched(state: &mut JobState, batch: u64, size: u64, at: DateTime<Utc>, effects: &mut Effects) {
    start(state, at);
    // Fetch numbers batches in order; a number seen before is a repeat
    // after a fetch crash.
    if batch > state.batches {
        state.batches = batch;
        state.fetched += size;
        state.total = state.total.max(state.fetched);
        let open = state.open_batches.entry(batch).or_default();
        open.size = size;
        open.fetched_at = Some(at);
        touch(effects, batch);
        close_if_done(state, batch, effects);
    }
}

/// Fetch has paged the whole source: the total is known.
fn fetch_done(state: &mut JobState, total: u64) {
    state.fetch_done = true;
    state.total = state.fetched.max(total);
    if matches!(state.status, JobStatus::Pending | JobStatus::Fetching) {
        state.status = JobStatus::Processing;
    }
}

/// Someone asked to cancel the job.
fn cancel(state: &mut JobState, reason: Option<String>, at: DateTime<Utc>, effects: &mut Effects) {
    let reason = reason.unwrap_or_else(|| "cancelled on request".into());
    stop(state, JobStatus::Cancelled, reason, at, effects);
}

/// The job's `timeout` passed: it stops and ends as failed.
fn timed_out(state: &mut JobState, at: DateTime<Utc>, effects: &mut Effects) {
    let limit = state
        .spec
        .timeout
        .map(|t| t.to_string())
        .unwrap_or_default();
    stop(
        state,
        JobStatus::Failed,
        format!("timeout of {limit} exceeded"),
        at,
        effects,
    );
}

/// An item of `batch` waits out a retry; the batch counts it once, however
/// often it is retried (`first`).
fn parked(state: &mut JobState, batch: u64, first: bool) {
    if let Some(open) = state.open_batches.get_mut(&batch) {
        if first {
            open.parked += 1;
        }
    }
}

/// Someone paused the job (again: the new end and reason replace the old).
/// A job that is stopping or has not been accepted as running stays as it is.
fn pause(
    state: &mut JobState,
    seq: u64,
    until: Option<DateTime<Utc>>,
    reason: Option<String>,
    effects: &mut Effects,
) {
    if !state.status.is_active() {
        return;
    }
    state.status = JobStatus::Paused;
    state.paused_until = until;
    state.pause_reason = reason.clone();
    effects.pauses.push(PauseChange {
        seq,
        paused: Some(until),
        reason,
    });
}

/// Someone resumed the job, or its timed pause ended: it goes back to the
/// status its progress gives it. A job that is not paused stays as it is.
fn resume(state: &mut JobState, seq: u64, reason: Option<String>, effects: &mut Effects) {
    if state.status != JobStatus::Paused {
        return;
    }
    state.status = state.unpaused_status();
    state.paused_until = None;
    state.pause_reason = None;
    effects.pauses.push(PauseChange {
        seq,
        paused: None,
        reason,
    });
}

/// Live settings changed (`jetflow config`).
fn reconfigure(state: &mut JobState, change: &ConfigChange, effects: &mut Effects) {
    // Validated when requested; checked again so that no ledger entry,
    // however it got there, can set a value a job may not have.
    if change.validate().is_ok() && change.fits(&state.spec).is_ok() {
        change.apply(&mut state.spec);
        effects.reconfigured = true;
    }
}

/// A stopping job has no item in flight any more: it ends.
fn drained(state: &mut JobState, at: DateTime<Utc>, effects: &mut Effects) {
    if state.status == JobStatus::Cancelling {
        let ends_as = state.ends_as.unwrap_or(JobStatus::Cancelled);
        end(state, ends_as, state.reason.clone(), at, effects);
    }
}

/// The batch stage fanned `batch` out into tasks.
fn dispatched(state: &mut JobState, batch: u64, at: DateTime<Utc>, effects: &mut Effects) {
    if let Some(open) = state.open_batches.get_mut(&batch) {
        open.dispatched_at = Some(at);
        touch(effects, batch);
    }
}

/// An item's result, counted as `count` says.
fn item_result(state: &mut JobState, result: &ItemResult, count: Count, effects: &mut Effects) {
    if result.replay {
        state.replaying.remove(&result.id);
    }
    match count {
        Count::New => count_new(state, result, effects),
        Count::Correction { from } => correct(state, &from, result, effects),
        Count::Duplicate => duplicates(state, result.batch, [&result.id], effects),
        Count::No => {}
    }
}

/// Items of `batch` the source had given before: each counts once as a
/// duplicate, closing its place in the batch (again for the same item
/// and batch changes nothing).
fn duplicates<'a>(
    state: &mut JobState,
    batch: u64,
    items: impl IntoIterator<Item = &'a String>,
    effects: &mut Effects,
) {
    let Some(open) = state.open_batches.get_mut(&batch) else {
        return;
    };
    let before = open.duplicates.len();
    open.duplicates.extend(items.into_iter().cloned());
    state.duplicates += (open.duplicates.len() - before) as u64;
    touch(effects, batch);
    close_if_done(state, batch, effects);
}

/// The item's first outcome: into the job's tally, its batch's, and the
/// failure policy's judgement.
fn count_new(state: &mut JobState, result: &ItemResult, effects: &mut Effects) {
    add_to_tally(state, result);
    sample_error(state, result);
    group_error(state, result);
    reductions::add(state, &ItemView::of_result(result), effects);
    if let Some(open) = state.open_batches.get_mut(&result.batch) {
        if result.parked {
            open.parked = open.parked.saturating_sub(1);
        }
        // Taken for a copy the source gave twice, but it ran as the
        // batch's own (see `outcomes::drop_own_items`): one place, counted once.
        if open.duplicates.remove(&result.id) {
            state.duplicates = state.duplicates.saturating_sub(1);
        }
        match result.status {
            ItemStatus::Succeeded => open.succeeded += 1,
            ItemStatus::Failed => open.failed += 1,
        }
        touch(effects, result.batch);
        close_if_done(state, result.batch, effects);
    }
    if result.status == ItemStatus::Failed {
        if let Some(reason) = failure_policy_breach(state, result) {
            stop(
                state,
                JobStatus::Failed,
                reason,
                result.finished_at,
                effects,
            );
        }
    }
}

/// Adds `result` to the job's counts of outcomes, retries and dead letters.
fn add_to_tally(state: &mut JobState, result: &ItemResult) {
    match result.status {
        ItemStatus::Succeeded => state.succeeded += 1,
        ItemStatus::Failed => state.failed += 1,
    }
    state.retries += u64::from(result.attempts.saturating_sub(1));
    state.dead_lettered += u64::from(result.dead_lettered);
}

/// Keeps the last `ERROR_SAMPLE_LEN` errors, newest last.
fn sample_error(state: &mut JobState, result: &ItemResult) {
    if let Some(error) = &result.error {
        if state.errors.len() == ERROR_SAMPLE_LEN {
            state.errors.remove(0);
        }
        state.errors.push(ErrorSample {
            item: result.id.clone(),
            error: error.clone(),
        });
    }
}

/// What a failure without an error text is grouped under.
const UNKNOWN_ERROR: &str = "unknown error";

/// Counts a failure in its message's group.
fn group_error(state: &mut JobState, result: &ItemResult) {
    if result.status == ItemStatus::Failed {
        let error = result.error.as_deref().unwrap_or(UNKNOWN_ERROR);
        state.error_groups.add(error, &result.id);
    }
}

/// Whether the job's failure policy says this failure ends the job.
fn failure_policy_breach(state: &JobState, result: &ItemResult) -> Option<String> {
    let error = result.error.as_deref().unwrap_or(UNKNOWN_ERROR);
    match state.spec.failure_policy {
        FailurePolicy::Continue => None,
        FailurePolicy::FailFast => Some(format!(
            "failure_policy fail_fast: item {} failed: {error}",
            result.id
        )),
        FailurePolicy::MaxFailureRatio => {
            let limit = state.spec.max_failure_ratio.unwrap_or(1.0);
            let finished = state.succeeded + state.failed;
            let ratio = state.failed as f64 / finished.max(1) as f64;
            (finished >= RATIO_MIN_ITEMS && ratio > limit).then(|| {
                format!(
                    "{} of {finished} finished items failed ({:.1}%), above max_failure_ratio {limit}; last: item {}: {error}",
                    state.failed,
                    ratio * 100.0,
                    result.id
                )
            })
        }
    }
}

/// A replay replaced the outcome `from` with `result`'s.
fn correct(
    state: &mut JobState,
    from: &PreviousOutcome,
    result: &ItemResult,
    effects: &mut Effects,
) {
    reductions::take_back(state, &ItemView::of_previous(&result.id, from));
    reductions::add(state, &ItemView::of_result(result), effects);
    match from.status {
        ItemStatus::Succeeded => state.succeeded = state.succeeded.saturating_sub(1),
        ItemStatus::Failed => {
            state.failed = state.failed.saturating_sub(1);
            let error = from.error.as_deref().unwrap_or(UNKNOWN_ERROR);
            state.error_groups.remove(error, &result.id);
            // Its dead letter was taken out of the DLQ to be replayed.
            state.dead_lettered = state.dead_lettered.saturating_sub(1);
        }
    }
    add_to_tally(state, result);
    group_error(state, result);
}

/// Closes `batch` once every one of its items has an outcome.
fn close_if_done(state: &mut JobState, batch: u64, effects: &mut Effects) {
    let done = state
        .open_batches
        .get(&batch)
        .is_some_and(|open| open.size > 0 && open.done() >= open.size);
    if done {
        if let Some(open) = state.open_batches.remove(&batch) {
            state.batches_done += 1;
            effects.touched.retain(|b| *b != batch);
            effects.finished_batches.push((batch, open));
        }
    }
}

/// Marks `batch`'s record for rewriting.
fn touch(effects: &mut Effects, batch: u64) {
    if !effects.touched.contains(&batch) {
        effects.touched.push(batch);
    }
}

/// The job stops taking new work; it ends as `ends_as` once the items in
/// flight finish. The first reason to stop is the one that sticks.
fn stop(
    state: &mut JobState,
    ends_as: JobStatus,
    reason: String,
    at: DateTime<Utc>,
    effects: &mut Effects,
) {
    if state.status == JobStatus::Cancelling {
        return;
    }
    state.status = JobStatus::Cancelling;
    state.paused_until = None;
    state.pause_reason = None;
    state.ends_as = Some(ends_as);
    state.reason = Some(reason);
    state.stopping_since = Some(at);
    effects.stopping = true;
}

/// The job ends with `status`; items without an outcome count as not run.
fn end(
    state: &mut JobState,
    status: JobStatus,
    reason: Option<String>,
    at: DateTime<Utc>,
    effects: &mut Effects,
) {
    state.status = status;
    state.reason = reason;
    state.paused_until = None;
    state.pause_reason = None;
    state.finished_at = Some(at);
    state.ends_as = None;
    state.not_run = state.total.saturating_sub(state.done());
    effects.ended = Some(status);
}
