use chrono::Utc;
use jetflow_protocol::{
    job::{parse_submission, ItemStatus, JobSpec, JobState, JobStatus, PreviousOutcome},
    messages::{ItemResult, LedgerEntry},
};

use super::{apply, settle, Effects};
use crate::facts::{flatten, Count};

/// A ledger entry to fold, and how it counts.
struct Step {
    entry: LedgerEntry,
    count: Count,
}

/// Folds `steps` as if they were the next entries on the job's ledger, then
/// settles, as the reducer does with one run of entries.
fn fold(state: &mut JobState, steps: &[Step]) -> Effects {
    let mut effects = Effects::default();
    let start = state.folded_seq;
    for (i, step) in steps.iter().enumerate() {
        apply(
            state,
            start + 1 + i as u64,
            Some(&step.entry),
            step.count.clone(),
            &mut effects,
        );
    }
    settle(state, Utc::now(), &mut effects);
    effects
}

/// A job with failure policy `policy` (and `max_failure_ratio` 0.5).
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

// Entries that are not item results: they never count.

fn entry(entry: LedgerEntry) -> Step {
    Step {
        entry,
        count: Count::No,
    }
}

fn started() -> Step {
    entry(LedgerEntry::Started { at: Utc::now() })
}

fn fetched(batch: u64, size: u64) -> Step {
    entry(LedgerEntry::Fetched {
        batch,
        size,
        at: Utc::now(),
    })
}

fn fetch_done(batches: u64, total: u64) -> Step {
    entry(LedgerEntry::FetchDone {
        batches,
        total,
        at: Utc::now(),
    })
}

fn fetch_failed(error: &str) -> Step {
    entry(LedgerEntry::FetchFailed {
        error: error.into(),
        at: Utc::now(),
    })
}

fn config(change: &str) -> Step {
    entry(LedgerEntry::Config {
        change: serde_json::from_str(change).unwrap(),
        at: Utc::now(),
    })
}

fn cancel() -> Step {
    entry(LedgerEntry::Cancel {
        reason: None,
        at: Utc::now(),
    })
}

fn timed_out() -> Step {
    entry(LedgerEntry::TimedOut { at: Utc::now() })
}

fn replayed(items: &[&str]) -> Step {
    entry(LedgerEntry::Replayed {
        items: items.iter().map(|item| item.to_string()).collect(),
        at: Utc::now(),
    })
}

fn drained() -> Step {
    entry(LedgerEntry::Drained { at: Utc::now() })
}

// Item results, and how the outcome records say they count.

/// Item `id` of `batch` succeeded on its second attempt.
fn succeeded(batch: u64, id: &str) -> ItemResult {
    item(batch, id, ItemStatus::Succeeded)
}

/// Item `id` of `batch` failed with "HTTP 422" on its second attempt and
/// was dead-lettered.
fn failed(batch: u64, id: &str) -> ItemResult {
    item(batch, id, ItemStatus::Failed)
}

fn item(batch: u64, id: &str, status: ItemStatus) -> ItemResult {
    let failed = status == ItemStatus::Failed;
    ItemResult {
        batch,
        id: id.into(),
        status,
        error: failed.then(|| "HTTP 422".to_string()),
        output: serde_json::Value::Null,
        input: serde_json::Value::Null,
        failed_step: None,
        messages: Vec::new(),
        attempts: 2,
        dead_lettered: failed,
        replay: false,
        parked: false,
        duration_ms: 1,
        finished_at: Utc::now(),
    }
}

/// The result that created its item's outcome record: it counts.
fn counted(result: ItemResult) -> Step {
    Step {
        entry: LedgerEntry::Item(result),
        count: Count::New,
    }
}

/// A second result for an item whose outcome record another created.
fn duplicate(result: ItemResult) -> Step {
    Step {
        entry: LedgerEntry::Item(result),
        count: Count::No,
    }
}

/// A replay's result that replaced an outcome of status `from`.
fn correction(result: ItemResult, from: ItemStatus) -> Step {
    Step {
        entry: LedgerEntry::Item(result),
        count: Count::Correction {
            from: Box::new(PreviousOutcome {
                status: from,
                error: (from == ItemStatus::Failed).then(|| "HTTP 422".to_string()),
                output: serde_json::Value::Null,
                failed_step: None,
                attempts: 1,
                duration_ms: 1,
            }),
        },
    }
}

#[test]
fn a_job_completes_when_every_batch_is_done_and_fetch_is_over() {
    let mut state = job("continue");
    let effects = fold(
        &mut state,
        &[
            started(),
            fetched(1, 2),
            counted(succeeded(1, "a")),
            counted(failed(1, "b")),
        ],
    );
    assert_eq!(effects.finished_batches.len(), 1);
    assert_eq!(state.batches_done, 1);
    assert_eq!(state.status, JobStatus::Fetching);
    assert_eq!(effects.ended, None);
    let effects = fold(&mut state, &[fetch_done(1, 2)]);
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
            fetched(1, 2),
            fetched(1, 2), // fetch repeated the page after a crash
            counted(succeeded(1, "a")),
            duplicate(succeeded(1, "a")), // a second result for item a
        ],
    );
    assert_eq!((state.batches, state.fetched, state.succeeded), (1, 2, 1));
    assert_eq!(state.open_batches[&1].done(), 1);
}

#[test]
fn an_items_entry_is_one_fact_per_result_under_its_sequence() {
    let (a, b) = (succeeded(1, "a"), failed(1, "b"));
    let facts = flatten(vec![
        (7, Some(fetched(1, 2).entry)),
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

    // Every item fact counts on its own.
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
    let steps = [
        fetched(1, 2),
        counted(succeeded(1, "a")),
        fetched(2, 1),
        counted(failed(2, "c")),
        counted(succeeded(1, "b")),
        fetch_done(2, 3),
    ];
    let mut whole = job("continue");
    fold(&mut whole, &steps);
    let mut split = job("continue");
    fold(&mut split, &steps[..3]);
    fold(&mut split, &steps[3..]);
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
fn fail_fast_stops_at_the_first_failure_and_counts_what_was_in_flight() {
    let mut state = job("fail_fast");
    let effects = fold(&mut state, &[fetched(1, 3), counted(failed(1, "a"))]);
    assert!(effects.stopping);
    assert_eq!(state.status, JobStatus::Cancelling);
    assert_eq!(state.ends_as, Some(JobStatus::Failed));
    assert!(state
        .reason
        .as_deref()
        .unwrap_or("")
        .contains("item a failed"));
    // An item that was already running finishes and counts.
    let effects = fold(&mut state, &[counted(succeeded(1, "b")), drained()]);
    assert_eq!(effects.ended, Some(JobStatus::Failed));
    assert_eq!((state.succeeded, state.failed, state.not_run), (1, 1, 1));
    // After the end nothing changes.
    fold(&mut state, &[counted(succeeded(1, "c"))]);
    assert_eq!(state.succeeded, 1);
}

#[test]
fn a_refused_source_fails_the_job_with_its_answer() {
    let mut state = job("continue");
    let effects = fold(&mut state, &[fetch_failed("HTTP 400: limit"), drained()]);
    assert_eq!(effects.ended, Some(JobStatus::Failed));
    assert_eq!(state.reason.as_deref(), Some("HTTP 400: limit"));
}

#[test]
fn a_source_that_failed_fails_the_job_even_when_a_fetch_done_follows() {
    // A pager restarted before the failure was folded finds its checkpoint
    // done and records the end of the source too (seen in CI, under load).
    let mut state = job("continue");
    let effects = fold(
        &mut state,
        &[fetch_failed("HTTP 400: limit"), fetch_done(0, 0)],
    );
    assert_eq!(effects.ended, Some(JobStatus::Failed));
    assert_eq!(state.status, JobStatus::Failed);
    assert_eq!(state.reason.as_deref(), Some("HTTP 400: limit"));
}

#[test]
fn a_config_change_lands_in_the_spec_and_an_invalid_one_is_ignored() {
    let mut state = job("continue");
    let effects = fold(
        &mut state,
        &[config(r#"{"concurrency": 20, "handler_timeout": "5s"}"#)],
    );
    assert!(effects.reconfigured);
    assert_eq!(state.spec.settings().concurrency, 20);
    assert_eq!(
        state.spec.handler_timeout().map(|t| t.get().as_secs()),
        Some(5)
    );
    let effects = fold(&mut state, &[config(r#"{"concurrency": 0}"#)]);
    assert!(!effects.reconfigured);
    assert_eq!(state.spec.settings().concurrency, 20);
}

#[test]
fn cancel_then_drain_ends_cancelled_with_exact_counts() {
    let mut state = job("continue");
    fold(&mut state, &[fetched(1, 4), counted(succeeded(1, "a"))]);
    let effects = fold(&mut state, &[cancel()]);
    assert!(effects.stopping && effects.ended.is_none());
    // A second reason to stop does not replace the first.
    fold(&mut state, &[timed_out()]);
    assert_eq!(state.ends_as, Some(JobStatus::Cancelled));
    let effects = fold(&mut state, &[counted(failed(1, "b")), drained()]);
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
    let mut steps = vec![fetched(1, 40)];
    // Judged from 20 finished items on: 15 ok and 5 failed is exactly 25%.
    steps.extend((0..15).map(|i| counted(succeeded(1, &format!("ok{i}")))));
    steps.extend((0..5).map(|i| counted(failed(1, &format!("bad{i}")))));
    let effects = fold(&mut state, &steps);
    assert!(!effects.stopping, "25% is not above 25%");
    let effects = fold(&mut state, &[counted(failed(1, "bad5"))]);
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
            fetched(1, 2),
            counted(succeeded(1, "a")),
            counted(failed(1, "b")),
            fetch_done(1, 2),
        ],
    );
    assert_eq!(
        (state.status, state.failed, state.dead_lettered),
        (JobStatus::Partial, 1, 1)
    );
    assert_eq!(state.error_groups.groups[0].items, ["b"]);
    // `jetflow dlq replay` reopens the job after recording the replay.
    state.status = JobStatus::Processing;
    let effects = fold(&mut state, &[replayed(&["b"])]);
    assert_eq!(effects.ended, None, "waits for the replayed item");
    let retried = ItemResult {
        replay: true,
        parked: false,
        ..succeeded(1, "b")
    };
    let effects = fold(
        &mut state,
        &[
            correction(retried.clone(), ItemStatus::Failed),
            // A duplicate of the replay's result changes nothing.
            duplicate(retried),
        ],
    );
    assert_eq!(effects.ended, Some(JobStatus::Completed));
    assert_eq!(
        (state.succeeded, state.failed, state.dead_lettered),
        (2, 0, 0)
    );
    assert!(state.error_groups.is_empty(), "{:?}", state.error_groups);
}

#[test]
fn failures_are_grouped_by_message_exactly_once() {
    let mut state = job("continue");
    let timeout = ItemResult {
        error: Some("timed out after 5s".into()),
        ..failed(1, "c")
    };
    fold(
        &mut state,
        &[
            fetched(1, 4),
            counted(failed(1, "a")),
            counted(failed(1, "b")),
            duplicate(failed(1, "b")),
            counted(timeout),
            counted(succeeded(1, "d")),
        ],
    );
    let groups: Vec<_> = state
        .error_groups
        .groups
        .iter()
        .map(|g| (g.error.as_str(), g.count, g.items.clone()))
        .collect();
    assert_eq!(
        groups,
        [
            ("HTTP 422", 2, vec!["a".to_string(), "b".to_string()]),
            ("timed out after 5s", 1, vec!["c".to_string()]),
        ]
    );
    assert_eq!(state.error_groups.total(), state.failed);
}

#[test]
fn an_empty_source_completes_at_once() {
    let mut state = job("continue");
    let effects = fold(&mut state, &[fetch_done(0, 0)]);
    assert_eq!(effects.ended, Some(JobStatus::Completed));
    assert_eq!(state.progress, 1.0);
}

/// A result for an item whose outcome another batch counted.
fn repeated_from_another_batch(result: ItemResult) -> Step {
    Step {
        entry: LedgerEntry::Item(result),
        count: Count::Duplicate,
    }
}

fn duplicates(batch: u64, items: &[&str]) -> Step {
    entry(LedgerEntry::Duplicates {
        batch,
        items: items.iter().map(|item| item.to_string()).collect(),
        at: Utc::now(),
    })
}

#[test]
fn items_a_source_gave_twice_count_once_as_duplicates_and_close_their_batches() {
    let mut state = job("continue");
    let effects = fold(
        &mut state,
        &[
            started(),
            fetched(1, 2),
            fetched(2, 3), // repeats "b" (its task was de-duplicated)
            fetched(3, 2), // repeats "c", whose task ran again
            counted(succeeded(1, "a")),
            counted(succeeded(1, "b")),
            duplicates(2, &["b"]),
            duplicates(2, &["b"]), // said again: no change
            counted(succeeded(2, "c")),
            counted(succeeded(2, "d")),
            repeated_from_another_batch(succeeded(3, "c")),
            repeated_from_another_batch(succeeded(3, "c")), // its result twice
            counted(failed(3, "e")),
            fetch_done(3, 7),
        ],
    );
    assert_eq!(effects.ended, Some(JobStatus::Partial));
    assert_eq!(
        (state.succeeded, state.failed, state.duplicates, state.total),
        (4, 1, 2, 7)
    );
    assert_eq!(state.batches_done, 3);
    assert_eq!(
        state.succeeded + state.failed + state.skipped + state.duplicates + state.not_run,
        state.total
    );
    assert_eq!(state.progress, 1.0);
}

#[test]
fn an_item_taken_for_a_duplicate_that_runs_as_its_batchs_own_counts_once() {
    let mut state = job("continue");
    fold(
        &mut state,
        &[
            started(),
            fetched(1, 2),
            duplicates(1, &["a"]), // its own task, raced by a second batch instance
            counted(succeeded(1, "a")),
            counted(succeeded(1, "b")),
            fetch_done(1, 2),
        ],
    );
    assert_eq!(state.status, JobStatus::Completed);
    assert_eq!((state.succeeded, state.duplicates, state.total), (2, 0, 2));
}
