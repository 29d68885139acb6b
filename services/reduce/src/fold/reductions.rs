//! Folding item outputs into the job's reductions — pure, like the rest of
//! the fold: the same counted results always give the same answers.
//!
//! An item is folded when its result counts (`Count::New`), in the same
//! checkpoint as the tally, so exactly once. A DLQ replay's correction
//! takes the replaced outcome back out of the ops that can subtract
//! (`sum`, `count`, `count_by`, `avg`); `min`, `max`, `collect` and
//! `distinct` only add. A `nats` reduction is folded by the user's reducer:
//! here its values are only gathered, for the reducer to send before the
//! checkpoint (`user_reducers`).

use std::borrow::Cow;

use jetflow_protocol::{
    job::{
        reduction::{PathRoot, Reduced, MAX_KEPT_VALUE_BYTES},
        ItemStatus, JobState, PreviousOutcome, ReduceOp, Reduction, ValuePath,
    },
    messages::ItemResult,
};
use serde_json::Value;

use super::Effects;

/// The fields of an item's outcome a path can name: of a result, or of
/// the outcome a replay replaced.
pub struct ItemView<'a> {
    pub id: &'a str,
    pub status: ItemStatus,
    pub error: Option<&'a str>,
    pub output: &'a Value,
    pub failed_step: Option<&'a str>,
    pub attempts: u32,
    pub duration_ms: u64,
}

impl<'a> ItemView<'a> {
    pub fn of_result(result: &'a ItemResult) -> Self {
        ItemView {
            id: &result.id,
            status: result.status,
            error: result.error.as_deref(),
            output: &result.output,
            failed_step: result.failed_step.as_deref(),
            attempts: result.attempts,
            duration_ms: result.duration_ms,
        }
    }

    pub fn of_previous(id: &'a str, previous: &'a PreviousOutcome) -> Self {
        ItemView {
            id,
            status: previous.status,
            error: previous.error.as_deref(),
            output: &previous.output,
            failed_step: previous.failed_step.as_deref(),
            attempts: previous.attempts,
            duration_ms: previous.duration_ms,
        }
    }

    /// The value at `path`; `None` if missing or null.
    fn at(&self, path: &ValuePath) -> Option<Cow<'a, Value>> {
        let value = match path.root {
            PathRoot::Output => {
                let mut value = self.output;
                for segment in &path.segments {
                    value = match value {
                        Value::Object(map) => map.get(segment)?,
                        Value::Array(list) => list.get(segment.parse::<usize>().ok()?)?,
                        _ => return None,
                    };
                }
                Cow::Borrowed(value)
            }
            PathRoot::Error => Cow::Owned(Value::from(self.error?)),
            PathRoot::Id => Cow::Owned(Value::from(self.id)),
            PathRoot::Status => Cow::Owned(Value::from(match self.status {
                ItemStatus::Succeeded => "succeeded",
                ItemStatus::Failed => "failed",
            })),
            PathRoot::Attempts => Cow::Owned(Value::from(self.attempts)),
            PathRoot::DurationMs => Cow::Owned(Value::from(self.duration_ms)),
            PathRoot::FailedStep => Cow::Owned(Value::from(self.failed_step?)),
        };
        (!value.is_null()).then_some(value)
    }
}

/// Folds a counted item into every reduction that applies to it.
pub fn add(state: &mut JobState, item: &ItemView, effects: &mut Effects) {
    let JobState { spec, results, .. } = state;
    for reduction in spec.reduce.iter().filter(|r| r.applies_to(item.status)) {
        let reduced = results
            .entry(reduction.name.clone())
            .or_insert_with(|| reduction.initial());
        if reduction.op == ReduceOp::Nats {
            gather(reduction, reduced, item, effects);
        } else {
            match reduction.path.as_ref().map(|path| item.at(path)) {
                Some(Some(value)) => fold_in(reduction, reduced, &value),
                Some(None) => reduced.skipped_values += 1,
                // `count` without a path: every item counts.
                None => fold_in(reduction, reduced, &Value::Null),
            }
        }
    }
}

/// Takes a replaced outcome back out of the reductions that can subtract
/// and that had folded it.
pub fn take_back(state: &mut JobState, item: &ItemView) {
    let JobState { spec, results, .. } = state;
    let applies = |r: &&Reduction| r.op.subtracts() && r.applies_to(item.status);
    for reduction in spec.reduce.iter().filter(applies) {
        let Some(reduced) = results.get_mut(&reduction.name) else {
            continue;
        };
        match reduction.path.as_ref().map(|path| item.at(path)) {
            Some(Some(value)) => fold_out(reduction, reduced, &value),
            Some(None) => reduced.skipped_values = reduced.skipped_values.saturating_sub(1),
            None => fold_out(reduction, reduced, &Value::Null),
        }
    }
}

/// Hands a `nats` reduction's value to the user's reducer (through
/// `effects`), unless that reducer gave up.
fn gather(reduction: &Reduction, reduced: &mut Reduced, item: &ItemView, effects: &mut Effects) {
    if reduced.error.is_some() {
        return;
    }
    let value = match &reduction.path {
        Some(path) => item.at(path).map(Cow::into_owned),
        None => Some(item.output.clone()),
    };
    match value {
        Some(value) => effects.user_outputs.push((reduction.name.clone(), value)),
        None => reduced.skipped_values += 1,
    }
}

/// Folds one value in (`Null` for a `count` without a path).
fn fold_in(reduction: &Reduction, reduced: &mut Reduced, value: &Value) {
    let folded = match reduction.op {
        ReduceOp::Count => {
            reduced.value = Value::from(reduced.values + 1);
            true
        }
        ReduceOp::Sum => number(value).is_some_and(|x| {
            reduced.value = number_value(number(&reduced.value).unwrap_or(0.0) + x);
            true
        }),
        ReduceOp::Avg => number(value).is_some_and(|x| {
            let sum = reduced.sum.unwrap_or(0.0) + x;
            reduced.sum = Some(sum);
            reduced.value = number_value(sum / (reduced.values + 1) as f64);
            true
        }),
        ReduceOp::Min | ReduceOp::Max => number(value).is_some_and(|x| {
            let keep = match (number(&reduced.value), reduction.op) {
                (None, _) => true,
                (Some(current), ReduceOp::Min) => x < current,
                (Some(current), _) => x > current,
            };
            if keep {
                reduced.value = value.clone();
            }
            true
        }),
        ReduceOp::CountBy => key(value).is_some_and(|key| {
            count_key(reduced, key, reduction.limit());
            true
        }),
        ReduceOp::Collect => {
            fits(value) && {
                if let Value::Array(list) = &mut reduced.value {
                    if list.len() < reduction.limit() as usize {
                        list.push(value.clone());
                    }
                }
                true
            }
        }
        ReduceOp::Distinct => {
            fits(value) && {
                keep_distinct(reduced, value, reduction.limit());
                true
            }
        }
        // Folded by the user's reducer (`gather`).
        ReduceOp::Nats => false,
    };
    if folded {
        reduced.values += 1;
    } else {
        reduced.skipped_values += 1;
    }
}

/// Takes one value back out (ops that subtract only).
fn fold_out(reduction: &Reduction, reduced: &mut Reduced, value: &Value) {
    let taken = match reduction.op {
        ReduceOp::Count => {
            reduced.value = Value::from(reduced.values.saturating_sub(1));
            true
        }
        ReduceOp::Sum => number(value).is_some_and(|x| {
            reduced.value = number_value(number(&reduced.value).unwrap_or(0.0) - x);
            true
        }),
        ReduceOp::Avg => number(value).is_some_and(|x| {
            let sum = reduced.sum.unwrap_or(0.0) - x;
            let left = reduced.values.saturating_sub(1);
            reduced.sum = Some(sum);
            reduced.value = if left == 0 {
                Value::Null
            } else {
                number_value(sum / left as f64)
            };
            true
        }),
        ReduceOp::CountBy => key(value).is_some_and(|key| {
            uncount_key(reduced, &key);
            true
        }),
        _ => false,
    };
    if taken {
        reduced.values = reduced.values.saturating_sub(1);
    } else {
        reduced.skipped_values = reduced.skipped_values.saturating_sub(1);
    }
}

/// A finite number, or `None` for anything else (counted as skipped).
fn number(value: &Value) -> Option<f64> {
    value.as_f64().filter(|x| x.is_finite())
}

/// `x` as JSON: an integer while it is one (sums of counts stay exact and
/// read as integers), a float otherwise.
fn number_value(x: f64) -> Value {
    const EXACT: f64 = 9_007_199_254_740_992.0; // 2^53
    if x.fract() == 0.0 && x.abs() < EXACT {
        Value::from(x as i64)
    } else {
        serde_json::Number::from_f64(x).map_or(Value::Null, Value::Number)
    }
}

/// A `count_by` key: a string as it is, a number or boolean as its JSON
/// text; objects, lists and over-long keys have none.
fn key(value: &Value) -> Option<String> {
    let key = match value {
        Value::String(s) => s.clone(),
        Value::Number(_) | Value::Bool(_) => value.to_string(),
        _ => return None,
    };
    (key.len() <= MAX_KEPT_VALUE_BYTES).then_some(key)
}

/// Whether `collect` or `distinct` may keep `value`.
fn fits(value: &Value) -> bool {
    value.to_string().len() <= MAX_KEPT_VALUE_BYTES
}

fn count_key(reduced: &mut Reduced, key: String, limit: u32) {
    let Value::Object(counts) = &mut reduced.value else {
        return;
    };
    let room = counts.len() < limit as usize;
    match counts.get_mut(&key) {
        Some(n) => *n = Value::from(n.as_u64().unwrap_or(0) + 1),
        None if room => {
            counts.insert(key, Value::from(1));
        }
        None => reduced.other += 1,
    }
}

fn uncount_key(reduced: &mut Reduced, key: &str) {
    let Value::Object(counts) = &mut reduced.value else {
        return;
    };
    match counts.get(key).and_then(Value::as_u64) {
        Some(n) if n > 1 => {
            counts.insert(key.to_string(), Value::from(n - 1));
        }
        // A key's last item: the key goes, which leaves room for the next.
        Some(_) => {
            counts.remove(key);
        }
        None => reduced.other = reduced.other.saturating_sub(1),
    }
}

/// Adds `value` to a `distinct` set kept sorted by JSON text; one that
/// would exceed `limit` counts under `other`.
fn keep_distinct(reduced: &mut Reduced, value: &Value, limit: u32) {
    let Value::Array(set) = &mut reduced.value else {
        return;
    };
    let text = value.to_string();
    match set.binary_search_by(|kept| kept.to_string().cmp(&text)) {
        Ok(_) => {}
        Err(at) if set.len() < limit as usize => set.insert(at, value.clone()),
        Err(_) => reduced.other += 1,
    }
}

#[cfg(test)]
mod tests;
