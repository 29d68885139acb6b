use chrono::Utc;
use jetflow_protocol::job::{parse_submission, ItemStatus, JobState, PreviousOutcome};
use serde_json::{json, Value};

use super::{add, take_back, ItemView};
use crate::fold::Effects;

/// A job with `reduce` set to `reductions`.
fn job(reductions: Value) -> JobState {
    let body = json!({
        "id": "j",
        "source": {"type": "ids", "ids": ["a"]},
        "handler": {"type": "nats", "subject": "work"},
        "reduce": reductions, // not a stage: the spec field
    });
    let spec = parse_submission(None, body.to_string().as_bytes(), || unreachable!())
        .expect("a valid job");
    JobState::new(&spec, Utc::now())
}

fn item(status: ItemStatus, output: Value, error: Option<&str>) -> PreviousOutcome {
    PreviousOutcome {
        status,
        error: error.map(str::to_string),
        output,
        failed_step: None,
        attempts: 2,
        duration_ms: 5,
    }
}

/// Folds `(id, outcome)` pairs in, as counted results.
fn fold(state: &mut JobState, items: &[(&str, PreviousOutcome)]) -> Effects {
    let mut effects = Effects::default();
    for (id, outcome) in items {
        add(state, &ItemView::of_previous(id, outcome), &mut effects);
    }
    effects
}

fn ok(id: &'static str, output: Value) -> (&'static str, PreviousOutcome) {
    (id, item(ItemStatus::Succeeded, output, None))
}

fn failed(id: &'static str, error: &str) -> (&'static str, PreviousOutcome) {
    (id, item(ItemStatus::Failed, Value::Null, Some(error)))
}

fn value(state: &JobState, name: &str) -> Value {
    state.results[name].value.clone()
}

#[test]
fn numbers_fold_into_sum_min_max_avg_and_count() {
    let mut state = job(json!([
        {"name": "sum", "op": "sum", "path": "output.words"},
        {"name": "min", "op": "min", "path": "output.words"},
        {"name": "max", "op": "max", "path": "output.words"},
        {"name": "avg", "op": "avg", "path": "output.words"},
        {"name": "with", "op": "count", "path": "output.words"},
        {"name": "all", "op": "count"},
    ]));
    fold(
        &mut state,
        &[
            ok("a", json!({"words": 3})),
            ok("b", json!({"words": 10})),
            ok("c", json!({"words": 2.5})),
            ok("d", json!({"words": "many"})), // the wrong type
            ok("e", json!({})),                // no value
            failed("f", "HTTP 422"),           // not a succeeded item
        ],
    );
    assert_eq!(value(&state, "sum"), json!(15.5));
    assert_eq!(value(&state, "min"), json!(2.5));
    assert_eq!(value(&state, "max"), json!(10));
    assert_eq!(value(&state, "avg"), json!(15.5 / 3.0));
    // `count` counts any value at the path, a string too.
    assert_eq!(value(&state, "with"), json!(4));
    assert_eq!(value(&state, "all"), json!(5));
    assert_eq!(state.results["sum"].values, 3);
    assert_eq!(state.results["sum"].skipped_values, 2);
    assert_eq!(state.results["with"].skipped_values, 1);
    assert_eq!(state.results["all"].skipped_values, 0);
}

#[test]
fn integer_sums_stay_integers() {
    let mut state = job(json!([{"name": "sum", "op": "sum", "path": "output.n"}]));
    fold(
        &mut state,
        &[ok("a", json!({"n": 2})), ok("b", json!({"n": 40}))],
    );
    assert_eq!(value(&state, "sum"), json!(42));
    assert!(value(&state, "sum").is_i64());
}

#[test]
fn count_by_keeps_limit_keys_and_counts_the_rest_as_other() {
    let mut state = job(json!([
        {"name": "langs", "op": "count_by", "path": "output.lang", "limit": 2},
        {"name": "errors", "op": "count_by", "path": "error", "on": "failed"},
    ]));
    fold(
        &mut state,
        &[
            ok("a", json!({"lang": "en"})),
            ok("b", json!({"lang": "fr"})),
            ok("c", json!({"lang": "en"})),
            ok("d", json!({"lang": "de"})),  // a third key: other
            ok("e", json!({"lang": ["x"]})), // not a key: skipped
            failed("f", "HTTP 422"),
            failed("g", "HTTP 422"),
            failed("h", "timeout"),
        ],
    );
    assert_eq!(value(&state, "langs"), json!({"en": 2, "fr": 1}));
    assert_eq!(state.results["langs"].other, 1);
    assert_eq!(state.results["langs"].values, 4);
    assert_eq!(state.results["langs"].skipped_values, 1);
    assert_eq!(
        value(&state, "errors"),
        json!({"HTTP 422": 2, "timeout": 1})
    );
}

#[test]
fn collect_keeps_the_first_limit_values_in_fold_order() {
    let mut state = job(json!([
        {"name": "ids", "op": "collect", "path": "id", "limit": 2},
        {"name": "big", "op": "collect", "path": "output.blob"},
    ]));
    fold(
        &mut state,
        &[
            ok("c", json!({"blob": "x".repeat(2000)})),
            ok("a", json!({})),
            ok("b", json!({})),
        ],
    );
    assert_eq!(value(&state, "ids"), json!(["c", "a"]));
    assert_eq!(state.results["ids"].values, 3);
    // Over the size a kept value may have: skipped, not kept.
    assert_eq!(value(&state, "big"), json!([]));
    assert_eq!(state.results["big"].skipped_values, 3);
}

#[test]
fn distinct_is_a_sorted_bounded_set() {
    let mut state = job(json!([
        {"name": "tags", "op": "distinct", "path": "output.tag", "limit": 3},
    ]));
    fold(
        &mut state,
        &[
            ok("a", json!({"tag": "b"})),
            ok("b", json!({"tag": "a"})),
            ok("c", json!({"tag": "b"})),
            ok("d", json!({"tag": 7})),
            ok("e", json!({"tag": "z"})), // a fourth value: not kept
        ],
    );
    // By JSON text: `"a"` sorts before `7`.
    assert_eq!(value(&state, "tags"), json!(["a", "b", 7]));
    assert_eq!(state.results["tags"].other, 1);
}

#[test]
fn a_correction_takes_the_replaced_outcome_back_where_the_op_can() {
    let mut state = job(json!([
        {"name": "sum", "op": "sum", "path": "output.n"},
        {"name": "avg", "op": "avg", "path": "output.n"},
        {"name": "by", "op": "count_by", "path": "status", "on": "any"},
        {"name": "errors", "op": "count_by", "path": "error", "on": "failed"},
        {"name": "n", "op": "count", "on": "any"},
        {"name": "seen", "op": "collect", "path": "id", "on": "any"},
    ]));
    let first = failed("b", "HTTP 503");
    fold(&mut state, &[ok("a", json!({"n": 4})), first.clone()]);
    assert_eq!(value(&state, "errors"), json!({"HTTP 503": 1}));

    // The replay of b succeeds: its failure comes out, its success goes in.
    take_back(&mut state, &ItemView::of_previous("b", &first.1));
    fold(&mut state, &[ok("b", json!({"n": 2}))]);
    assert_eq!(value(&state, "sum"), json!(6));
    assert_eq!(value(&state, "avg"), json!(3));
    assert_eq!(value(&state, "by"), json!({"succeeded": 2}));
    assert_eq!(value(&state, "errors"), json!({}));
    assert_eq!(value(&state, "n"), json!(2));
    // `collect` only adds: b is in twice.
    assert_eq!(value(&state, "seen"), json!(["a", "b", "b"]));
}

#[test]
fn nats_values_are_gathered_for_the_users_reducer() {
    let mut state = job(json!([
        {"name": "whole", "op": "nats", "subject": "reducers.a"},
        {"name": "part", "op": "nats", "subject": "reducers.b", "path": "output.n", "init": 0},
    ]));
    assert_eq!(value(&state, "part"), json!(0));
    let effects = fold(
        &mut state,
        &[ok("a", json!({"n": 1})), ok("b", json!({"m": 2}))],
    );
    assert_eq!(
        effects.user_outputs,
        [
            ("whole".to_string(), json!({"n": 1})),
            ("part".to_string(), json!(1)),
            ("whole".to_string(), json!({"m": 2})),
        ]
    );
    assert_eq!(state.results["part"].skipped_values, 1);

    // A reducer that gave up is handed nothing more.
    state.results.get_mut("whole").expect("whole").error = Some("gave up".into());
    let effects = fold(&mut state, &[ok("c", json!({"n": 3}))]);
    assert_eq!(effects.user_outputs, [("part".to_string(), json!(3))]);
}
