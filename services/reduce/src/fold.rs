//! Folding a job's ledger into its state — pure, deterministic, no I/O.
//!
//! Folding the same entries (with the same `counted` answers, which come
//! from immutable outcome records) always gives the same state, which is
//! why a reducer may crash anywhere and simply fold again from its last
//! checkpoint (docs/exactly-once.md).

use chrono::{DateTime, Utc};
use jetflow_protocol::{
    job::{
        spec::RATIO_MIN_ITEMS, state::ERROR_SAMPLE_LEN, ErrorSample, FailurePolicy, ItemStatus,
        JobState, JobStatus, OpenBatch,
    },
    messages::{ItemResult, LedgerEntry},
};

use crate::outcomes::Count;

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
}

/// One fact to fold: a ledger entry, or one result of an `items` entry.
#[derive(Debug)]
pub struct Fact {
    /// Stream sequence of the ledger message it came in.
    pub seq: u64,
    /// Its position in that message (0 but for the results of an `items` entry).
    pub index: u32,
    /// `None` for a message that could not be read.
    pub entry: Option<LedgerEntry>,
}

/// The facts in decoded ledger messages, in order: an `items` entry
/// becomes one `item` fact per result, each counted on its own.
pub fn flatten(entries: Vec<(u64, Option<LedgerEntry>)>) -> Vec<Fact> {
    let mut facts = Vec::with_capacity(entries.len());
    for (seq, entry) in entries {
        match entry {
            Some(LedgerEntry::Items { results }) => {
                facts.extend(results.into_iter().enumerate().map(|(index, result)| Fact {
                    seq,
                    index: u32::try_from(index).unwrap_or(u32::MAX),
                    entry: Some(LedgerEntry::Item(result)),
                }));
            }
            entry => facts.push(Fact {
                seq,
                index: 0,
                entry,
            }),
        }
    }
    facts
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
            stop(state, JobStatus::Failed, error.clone(), *at, effects);
        }
        Some(LedgerEntry::Cancel { reason, at }) => {
            let reason = reason
                .clone()
                .unwrap_or_else(|| "cancelled on request".into());
            stop(state, JobStatus::Cancelled, reason, *at, effects);
        }
        Some(LedgerEntry::TimedOut { at }) => {
            let limit = state
                .spec
                .timeout
                .map(|t| t.to_string())
                .unwrap_or_default();
            stop(
                state,
                JobStatus::Failed,
                format!("timeout of {limit} exceeded"),
                *at,
                effects,
            );
        }
        // Validated when requested; checked again so that no ledger entry,
        // however it got there, can set a value a job may not have.
        Some(LedgerEntry::Config { change, .. }) if change.validate().is_ok() => {
            change.apply(&mut state.spec);
            effects.reconfigured = true;
        }
        Some(LedgerEntry::Config { .. }) => {}
        Some(LedgerEntry::Drained { at }) if state.status == JobStatus::Cancelling => {
            let ends_as = state.ends_as.unwrap_or(JobStatus::Cancelled);
            end(state, ends_as, state.reason.clone(), *at, effects);
        }
        Some(LedgerEntry::Drained { .. }) => {}
        Some(LedgerEntry::Dispatched { batch, at }) => {
            if let Some(open) = state.open_batches.get_mut(batch) {
                open.dispatched_at = Some(*at);
                touch(effects, *batch);
            }
        }
        Some(LedgerEntry::Replayed { items, .. }) => state.replaying.extend(items.iter().cloned()),
        // Never here: `flatten` turns these into `item` facts, each with its
        // own count. Only the checkpoint above applies.
        Some(LedgerEntry::Items { .. }) => {}
        Some(LedgerEntry::Item(result)) => {
            if result.replay {
                state.replaying.remove(&result.id);
            }
            match count {
                Count::New => item(state, result, effects),
                Count::Correction { from } => correct(state, from, result),
                Count::No => {}
            }
        }
    }
}

/// After a run of entries: ends the job if every item has an outcome.
pub fn settle(state: &mut JobState, now: DateTime<Utc>, effects: &mut Effects) {
    let all_in = state.fetch_done
        && state.open_batches.is_empty()
        && state.batches_done >= state.batches
        && state.replaying.is_empty();
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

/// Whether the job's failure policy says this failure ends the job.
fn failure_policy_breach(state: &JobState, result: &ItemResult) -> Option<String> {
    let error = result.error.as_deref().unwrap_or("unknown error");
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

/// A replay replaced an outcome of status `from` with `result`'s.
fn correct(state: &mut JobState, from: ItemStatus, result: &ItemResult) {
    match from {
        ItemStatus::Succeeded => state.succeeded = state.succeeded.saturating_sub(1),
        ItemStatus::Failed => {
            state.failed = state.failed.saturating_sub(1);
            // Its dead letter was taken out of the DLQ to be replayed.
            state.dead_lettered = state.dead_lettered.saturating_sub(1);
        }
    }
    match result.status {
        ItemStatus::Succeeded => state.succeeded += 1,
        ItemStatus::Failed => state.failed += 1,
    }
    state.retries += u64::from(result.attempts.saturating_sub(1));
    state.dead_lettered += u64::from(result.dead_lettered);
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
    state.ends_as = Some(ends_as);
    state.reason = Some(reason);
    state.stopping_since = Some(at);
    effects.stopping = true;
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
    state.ends_as = None;
    state.not_run = state.total.saturating_sub(state.done());
    effects.ended = Some(status);
}

#[cfg(test)]
mod tests {
    use super::*;
    use jetflow_protocol::job::{parse_submission, JobSpec};

    fn job(policy: &str) -> JobState {
        let spec: JobSpec = parse_submission(
            None,
            format!(
                r#"{{"id": "j", "source": {{"type": "http", "url": "http://x/a"}},
                    "handler": {{"type": "http", "url": "http://x/{{id}}"}}, "failure_policy": "{policy}",
                    "max_failure_ratio": 0.5}}"#
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
            failed_step: None,
            messages: Vec::new(),
            attempts: 2,
            dead_lettered: !ok,
            replay: false,
            duration_ms: 1,
            finished_at: Utc::now(),
        })
    }

    fn fold(state: &mut JobState, entries: &[(LedgerEntry, bool)]) -> Effects {
        let mut effects = Effects::default();
        let start = state.folded_seq;
        for (i, (entry, counted)) in entries.iter().enumerate() {
            let count = if *counted { Count::New } else { Count::No };
            apply(
                state,
                start + 1 + i as u64,
                Some(entry),
                count,
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
    fn an_items_entry_is_one_fact_per_result_under_its_sequence() {
        let LedgerEntry::Item(a) = result(1, "a", true) else {
            unreachable!()
        };
        let LedgerEntry::Item(b) = result(1, "b", false) else {
            unreachable!()
        };
        let facts = flatten(vec![
            (7, Some(fetched(1, 2))),
            (
                8,
                Some(LedgerEntry::Items {
                    results: vec![a.clone(), b.clone()],
                }),
            ),
            (9, None),
        ]);
        let keys: Vec<_> = facts.iter().map(|f| (f.seq, f.index)).collect();
        assert_eq!(keys, [(7, 0), (8, 0), (8, 1), (9, 0)]);
        assert_eq!(facts[1].entry, Some(LedgerEntry::Item(a)));
        assert_eq!(facts[2].entry, Some(LedgerEntry::Item(b)));

        let mut state = job("continue");
        let mut effects = Effects::default();
        for fact in &facts {
            let count = if matches!(fact.entry, Some(LedgerEntry::Item(_))) {
                Count::New
            } else {
                Count::No
            };
            apply(
                &mut state,
                fact.seq,
                fact.entry.as_ref(),
                count,
                &mut effects,
            );
        }
        assert_eq!(
            (state.succeeded, state.failed, state.batches_done),
            (1, 1, 1)
        );
        assert_eq!(state.folded_seq, 9);
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

    fn drained() -> LedgerEntry {
        LedgerEntry::Drained { at: Utc::now() }
    }

    #[test]
    fn fail_fast_stops_at_the_first_failure_and_counts_what_was_in_flight() {
        let mut state = job("fail_fast");
        let effects = fold(
            &mut state,
            &[(fetched(1, 3), false), (result(1, "a", false), true)],
        );
        assert!(effects.stopping);
        assert_eq!(state.status, JobStatus::Cancelling);
        assert_eq!(state.ends_as, Some(JobStatus::Failed));
        assert!(state
            .reason
            .as_deref()
            .unwrap_or("")
            .contains("item a failed"));
        // An item that was already running finishes and counts.
        let effects = fold(
            &mut state,
            &[(result(1, "b", true), true), (drained(), false)],
        );
        assert_eq!(effects.ended, Some(JobStatus::Failed));
        assert_eq!((state.succeeded, state.failed, state.not_run), (1, 1, 1));
        // After the end nothing changes.
        fold(&mut state, &[(result(1, "c", true), true)]);
        assert_eq!(state.succeeded, 1);
    }

    #[test]
    fn a_refused_source_fails_the_job_with_its_answer() {
        let mut state = job("continue");
        let refused = LedgerEntry::FetchFailed {
            error: "HTTP 400: limit".into(),
            at: Utc::now(),
        };
        let effects = fold(&mut state, &[(refused, false), (drained(), false)]);
        assert_eq!(effects.ended, Some(JobStatus::Failed));
        assert_eq!(state.reason.as_deref(), Some("HTTP 400: limit"));
    }

    #[test]
    fn a_config_change_lands_in_the_spec_and_an_invalid_one_is_ignored() {
        let mut state = job("continue");
        let change = |json: &str| LedgerEntry::Config {
            change: serde_json::from_str(json).unwrap(),
            at: Utc::now(),
        };
        let effects = fold(
            &mut state,
            &[(
                change(r#"{"concurrency": 20, "handler_timeout": "5s"}"#),
                false,
            )],
        );
        assert!(effects.reconfigured);
        assert_eq!(state.spec.settings().concurrency, 20);
        assert_eq!(
            state.spec.handler_timeout().map(|t| t.get().as_secs()),
            Some(5)
        );
        let effects = fold(&mut state, &[(change(r#"{"concurrency": 0}"#), false)]);
        assert!(!effects.reconfigured);
        assert_eq!(state.spec.settings().concurrency, 20);
    }

    #[test]
    fn cancel_then_drain_ends_cancelled_with_exact_counts() {
        let mut state = job("continue");
        fold(
            &mut state,
            &[(fetched(1, 4), false), (result(1, "a", true), true)],
        );
        let cancel = LedgerEntry::Cancel {
            reason: None,
            at: Utc::now(),
        };
        let effects = fold(&mut state, &[(cancel, false)]);
        assert!(effects.stopping && effects.ended.is_none());
        // A second reason to stop does not replace the first.
        fold(
            &mut state,
            &[(LedgerEntry::TimedOut { at: Utc::now() }, false)],
        );
        assert_eq!(state.ends_as, Some(JobStatus::Cancelled));
        let effects = fold(
            &mut state,
            &[(result(1, "b", false), true), (drained(), false)],
        );
        assert_eq!(effects.ended, Some(JobStatus::Cancelled));
        assert_eq!(
            (state.succeeded, state.failed, state.not_run, state.total),
            (1, 1, 2, 4)
        );
        assert_eq!(
            state.succeeded + state.failed + state.skipped + state.not_run,
            state.total
        );
    }

    #[test]
    fn a_failure_ratio_above_the_limit_stops_the_job() {
        let mut state = job("max_failure_ratio");
        state.spec.max_failure_ratio = Some(0.25);
        let mut entries = vec![(fetched(1, 40), false)];
        // Judged from 20 finished items on: 15 ok and 5 failed is exactly 25%.
        entries.extend((0..15).map(|i| (result(1, &format!("ok{i}"), true), true)));
        entries.extend((0..5).map(|i| (result(1, &format!("bad{i}"), false), true)));
        let effects = fold(&mut state, &entries);
        assert!(!effects.stopping, "25% is not above 25%");
        let effects = fold(&mut state, &[(result(1, "bad5", false), true)]);
        assert!(effects.stopping);
        assert!(state
            .reason
            .as_deref()
            .unwrap_or("")
            .contains("max_failure_ratio 0.25"));
    }

    #[test]
    fn a_replay_corrects_the_tally_and_the_job_waits_for_it() {
        let mut state = job("continue");
        fold(
            &mut state,
            &[
                (fetched(1, 2), false),
                (result(1, "a", true), true),
                (result(1, "b", false), true),
                (
                    LedgerEntry::FetchDone {
                        batches: 1,
                        total: 2,
                        at: Utc::now(),
                    },
                    false,
                ),
            ],
        );
        assert_eq!(
            (state.status, state.failed, state.dead_lettered),
            (JobStatus::Partial, 1, 1)
        );
        // `jetflow dlq replay` reopens the job after recording the replay.
        state.status = JobStatus::Processing;
        let replayed = LedgerEntry::Replayed {
            items: vec!["b".into()],
            at: Utc::now(),
        };
        let effects = fold(&mut state, &[(replayed, false)]);
        assert_eq!(effects.ended, None, "waits for the replayed item");
        let mut retried = result(1, "b", true);
        if let LedgerEntry::Item(r) = &mut retried {
            r.replay = true;
        }
        let mut effects = Effects::default();
        let seq = state.folded_seq + 1;
        apply(
            &mut state,
            seq,
            Some(&retried),
            Count::Correction {
                from: ItemStatus::Failed,
            },
            &mut effects,
        );
        // A duplicate of the replay's result changes nothing.
        apply(&mut state, seq + 1, Some(&retried), Count::No, &mut effects);
        settle(&mut state, Utc::now(), &mut effects);
        assert_eq!(effects.ended, Some(JobStatus::Completed));
        assert_eq!(
            (state.succeeded, state.failed, state.dead_lettered),
            (2, 0, 0)
        );
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
