//! Folding a job's ledger into its state — pure, deterministic, no I/O.
//!
//! Folding the same entries (with the same `counted` answers, which come
//! from immutable outcome records) always gives the same state, which is
//! why a reducer may crash anywhere and simply fold again from its last
//! checkpoint (docs/exactly-once.md).

use chrono::{DateTime, Utc};
use jetflow_shared::{
    job::state::ERROR_SAMPLE_LEN,
    job::{ErrorSample, FailurePolicy, ItemStatus, JobState, JobStatus, OpenBatch},
    messages::{ItemResult, LedgerEntry},
};

/// What a fold changed that the outside world must hear about.
#[derive(Debug, Default, PartialEq)]
pub struct Effects {
    /// Open batches whose counts changed (their records are rewritten).
    pub touched: Vec<u64>,
    /// Batches that finished, with their final counts.
    pub finished_batches: Vec<(u64, OpenBatch)>,
    /// The status the job ended with, if it ended.
    pub ended: Option<JobStatus>,
}

/// Applies the ledger entry at stream sequence `seq`. `counted` says whether
/// this entry is the one that created its item's outcome record (only those
/// count; any other result for the item is a duplicate). `None` is an entry
/// that could not be read: it only advances the checkpoint.
pub fn apply(
    state: &mut JobState,
    seq: u64,
    entry: Option<&LedgerEntry>,
    counted: bool,
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
            start(state, *at);
            // Fetch numbers batches in order; a number seen before is a
            // repeat after a fetch crash.
            if *batch > state.batches {
                state.batches = *batch;
                state.fetched += size;
                state.total = state.total.max(state.fetched);
                let open = state.open_batches.entry(*batch).or_default();
                open.size = *size;
                open.fetched_at = Some(*at);
                touch(effects, *batch);
                close_if_done(state, *batch, effects);
            }
        }
        Some(LedgerEntry::FetchDone { total, .. }) => {
            state.fetch_done = true;
            state.total = state.fetched.max(*total);
            if matches!(state.status, JobStatus::Pending | JobStatus::Fetching) {
                state.status = JobStatus::Processing;
            }
        }
        Some(LedgerEntry::FetchFailed { error, at }) => {
            end(state, JobStatus::Failed, Some(error.clone()), *at, effects);
        }
        Some(LedgerEntry::Dispatched { batch, at }) => {
            if let Some(open) = state.open_batches.get_mut(batch) {
                open.dispatched_at = Some(*at);
                touch(effects, *batch);
            }
        }
        Some(LedgerEntry::Item(result)) if counted => item(state, result, effects),
        Some(LedgerEntry::Item(_)) => {}
    }
}

/// After a run of entries: ends the job if every item has an outcome.
pub fn settle(state: &mut JobState, now: DateTime<Utc>, effects: &mut Effects) {
    let all_in =
        state.fetch_done && state.open_batches.is_empty() && state.batches_done >= state.batches;
    if all_in && !state.status.is_terminal() {
        let status = if state.failed > 0 {
            JobStatus::Partial
        } else {
            JobStatus::Completed
        };
        end(state, status, None, now, effects);
    }
    state.update_progress();
    state.updated_at = now;
}

fn start(state: &mut JobState, at: DateTime<Utc>) {
    state.started_at.get_or_insert(at);
    if state.status == JobStatus::Pending {
        state.status = JobStatus::Fetching;
    }
}

fn item(state: &mut JobState, result: &ItemResult, effects: &mut Effects) {
    match result.status {
        ItemStatus::Succeeded => state.succeeded += 1,
        ItemStatus::Failed => state.failed += 1,
    }
    state.retries += u64::from(result.attempts.saturating_sub(1));
    state.dead_lettered += u64::from(result.dead_lettered);
    if let Some(error) = &result.error {
        if state.errors.len() == ERROR_SAMPLE_LEN {
            state.errors.remove(0);
        }
        state.errors.push(ErrorSample {
            item: result.id.clone(),
            error: error.clone(),
        });
    }
    if let Some(open) = state.open_batches.get_mut(&result.batch) {
        match result.status {
            ItemStatus::Succeeded => open.succeeded += 1,
            ItemStatus::Failed => open.failed += 1,
        }
        touch(effects, result.batch);
        close_if_done(state, result.batch, effects);
    }
    let fail_fast = state.spec.failure_policy == FailurePolicy::FailFast;
    if fail_fast && result.status == ItemStatus::Failed {
        let reason = format!(
            "failure_policy fail_fast: item {} failed: {}",
            result.id,
            result.error.as_deref().unwrap_or("unknown error")
        );
        end(
            state,
            JobStatus::Failed,
            Some(reason),
            result.finished_at,
            effects,
        );
    }
}

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

fn touch(effects: &mut Effects, batch: u64) {
    if !effects.touched.contains(&batch) {
        effects.touched.push(batch);
    }
}

fn end(
    state: &mut JobState,
    status: JobStatus,
    reason: Option<String>,
    at: DateTime<Utc>,
    effects: &mut Effects,
) {
    state.status = status;
    state.reason = reason;
    state.finished_at = Some(at);
    effects.ended = Some(status);
}

#[cfg(test)]
mod tests {
    use super::*;
    use jetflow_shared::job::{parse_submission, JobSpec};

    fn job(policy: &str) -> JobState {
        let spec: JobSpec = parse_submission(
            None,
            format!(
                r#"{{"id": "j", "source": {{"type": "http", "url": "http://x/a"}},
                    "handler": {{"type": "http", "url": "http://x/{{id}}"}}, "failure_policy": "{policy}"}}"#
            )
            .as_bytes(),
            || unreachable!(),
        )
        .unwrap();
        JobState::new(&spec, Utc::now())
    }

    fn fetched(batch: u64, size: u64) -> LedgerEntry {
        LedgerEntry::Fetched {
            batch,
            size,
            at: Utc::now(),
        }
    }

    fn result(batch: u64, id: &str, ok: bool) -> LedgerEntry {
        LedgerEntry::Item(ItemResult {
            batch,
            id: id.into(),
            status: if ok {
                ItemStatus::Succeeded
            } else {
                ItemStatus::Failed
            },
            error: (!ok).then(|| "HTTP 422".to_string()),
            output: serde_json::Value::Null,
            attempts: 2,
            dead_lettered: !ok,
            duration_ms: 1,
            finished_at: Utc::now(),
        })
    }

    fn fold(state: &mut JobState, entries: &[(LedgerEntry, bool)]) -> Effects {
        let mut effects = Effects::default();
        let start = state.folded_seq;
        for (i, (entry, counted)) in entries.iter().enumerate() {
            apply(
                state,
                start + 1 + i as u64,
                Some(entry),
                *counted,
                &mut effects,
            );
        }
        settle(state, Utc::now(), &mut effects);
        effects
    }

    #[test]
    fn a_job_completes_when_every_batch_is_done_and_fetch_is_over() {
        let mut state = job("continue");
        let effects = fold(
            &mut state,
            &[
                (LedgerEntry::Started { at: Utc::now() }, false),
                (fetched(1, 2), false),
                (result(1, "a", true), true),
                (result(1, "b", false), true),
            ],
        );
        assert_eq!(effects.finished_batches.len(), 1);
        assert_eq!(state.batches_done, 1);
        assert_eq!(state.status, JobStatus::Fetching);
        assert_eq!(effects.ended, None);
        let effects = fold(
            &mut state,
            &[(
                LedgerEntry::FetchDone {
                    batches: 1,
                    total: 2,
                    at: Utc::now(),
                },
                false,
            )],
        );
        assert_eq!(effects.ended, Some(JobStatus::Partial));
        assert_eq!((state.succeeded, state.failed, state.total), (1, 1, 2));
        assert_eq!(state.retries, 2);
        assert_eq!(state.dead_lettered, 1);
        assert_eq!(state.progress, 1.0);
        assert_eq!(state.folded_seq, 5);
    }

    #[test]
    fn duplicates_do_not_count() {
        let mut state = job("continue");
        fold(
            &mut state,
            &[
                (fetched(1, 2), false),
                (fetched(1, 2), false), // fetch repeated the page after a crash
                (result(1, "a", true), true),
                (result(1, "a", true), false), // a second result for item a
            ],
        );
        assert_eq!((state.batches, state.fetched, state.succeeded), (1, 2, 1));
        assert_eq!(state.open_batches[&1].done(), 1);
    }

    #[test]
    fn refolding_from_a_checkpoint_gives_the_same_state() {
        let entries = [
            (fetched(1, 2), false),
            (result(1, "a", true), true),
            (fetched(2, 1), false),
            (result(2, "c", false), true),
            (result(1, "b", true), true),
            (
                LedgerEntry::FetchDone {
                    batches: 2,
                    total: 3,
                    at: Utc::now(),
                },
                false,
            ),
        ];
        let mut whole = job("continue");
        fold(&mut whole, &entries);
        let mut split = job("continue");
        fold(&mut split, &entries[..3]);
        fold(&mut split, &entries[3..]);
        assert_eq!(
            (
                whole.succeeded,
                whole.failed,
                whole.batches_done,
                whole.status
            ),
            (
                split.succeeded,
                split.failed,
                split.batches_done,
                split.status
            )
        );
        assert_eq!(whole.status, JobStatus::Partial);
    }

    #[test]
    fn fail_fast_ends_the_job_at_the_first_failure() {
        let mut state = job("fail_fast");
        let effects = fold(
            &mut state,
            &[(fetched(1, 3), false), (result(1, "a", false), true)],
        );
        assert_eq!(effects.ended, Some(JobStatus::Failed));
        assert!(state
            .reason
            .as_deref()
            .unwrap_or("")
            .contains("item a failed"));
        // Later results change nothing.
        fold(&mut state, &[(result(1, "b", true), true)]);
        assert_eq!(state.succeeded, 0);
    }

    #[test]
    fn a_refused_source_fails_the_job_with_its_answer() {
        let mut state = job("continue");
        let effects = fold(
            &mut state,
            &[(
                LedgerEntry::FetchFailed {
                    error: "HTTP 400: limit".into(),
                    at: Utc::now(),
                },
                false,
            )],
        );
        assert_eq!(effects.ended, Some(JobStatus::Failed));
        assert_eq!(state.reason.as_deref(), Some("HTTP 400: limit"));
    }

    #[test]
    fn an_empty_source_completes_at_once() {
        let mut state = job("continue");
        let effects = fold(
            &mut state,
            &[(
                LedgerEntry::FetchDone {
                    batches: 0,
                    total: 0,
                    at: Utc::now(),
                },
                false,
            )],
        );
        assert_eq!(effects.ended, Some(JobStatus::Completed));
        assert_eq!(state.progress, 1.0);
    }
}
