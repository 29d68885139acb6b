//! Reductions: what a job folds its items' outputs into (`"reduce": [...]`
//! in the spec), and the answers it keeps (`results` in the job state).
//!
//! The reducer folds each counted item result into every reduction that
//! applies to it, in the same fold and checkpoint as the tally, so an
//! output is folded exactly once (docs/exactly-once.md). What folding means
//! for each op is the reduce service's (`fold/reductions.rs`); this module
//! is the contract: the spec, its validation and the stored answers.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{
    outcome::{ItemStatus, OutcomeFilter},
    rejection::Rejection,
};
use crate::duration::HumanDuration;

/// The most reductions a job may have.
pub const MAX_REDUCTIONS: usize = 32;
/// The most values (or keys) a job's `collect`, `distinct` and `count_by`
/// reductions keep, together: the job state holds them and every fold
/// rewrites it.
pub const MAX_KEPT_VALUES: u32 = 1_000;
/// The default `limit` of a `collect`, `distinct` or `count_by`.
pub const DEFAULT_LIMIT: u32 = 100;
/// The largest value (as JSON) `collect` or `distinct` keeps, and the
/// longest `count_by` key; a larger one counts as skipped.
pub const MAX_KEPT_VALUE_BYTES: usize = 1024;
/// The largest accumulator a `nats` reducer may answer.
pub const MAX_ACC_BYTES: usize = 64 << 10;

/// One reduction: `{"name": "memories", "op": "sum", "path": "output.memories"}`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Reduction {
    /// Its name: the key of its answer under the job's `results`.
    pub name: String,
    /// What it computes.
    pub op: ReduceOp,
    /// Where the value is in each item: `output.<field>...`, `error`, `id`,
    /// `status`, `attempts`, `duration_ms` or `failed_step`. Required but
    /// for `count` (then: items) and `nats` (then: the whole output).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<ValuePath>,
    /// Which items it folds (default: the succeeded ones).
    #[serde(default, skip_serializing_if = "OutcomeFilter::is_default")]
    pub on: OutcomeFilter,
    /// `collect`, `distinct`, `count_by`: the most values (or keys) kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<u32>,
    /// `nats`: the subject of the user's reducer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    /// `nats`: how long to wait for the user's reducer (default 10s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<HumanDuration>,
    /// `nats`: the accumulator before the first output (default `null`).
    #[serde(default, skip_serializing_if = "Value::is_null")]
    pub init: Value,
}

impl Reduction {
    /// The `limit` in force for the ops that keep values.
    pub fn limit(&self) -> u32 {
        self.limit.unwrap_or(DEFAULT_LIMIT)
    }

    /// Whether it folds an item that ended `status`.
    pub fn applies_to(&self, status: ItemStatus) -> bool {
        self.on.admits(status)
    }

    /// The `nats` reducer's time to answer.
    pub fn timeout(&self) -> std::time::Duration {
        self.timeout
            .map(|t| t.get())
            .unwrap_or(std::time::Duration::from_secs(10))
    }

    /// Its answer before anything is folded in.
    pub fn initial(&self) -> Reduced {
        Reduced {
            op: self.op,
            value: match self.op {
                ReduceOp::Sum | ReduceOp::Count => Value::from(0),
                ReduceOp::CountBy => Value::Object(Default::default()),
                ReduceOp::Collect | ReduceOp::Distinct => Value::Array(Vec::new()),
                ReduceOp::Nats => self.init.clone(),
                ReduceOp::Min | ReduceOp::Max | ReduceOp::Avg => Value::Null,
            },
            values: 0,
            skipped_values: 0,
            sum: None,
            other: 0,
            error: None,
        }
    }
}

/// What a reduction computes.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum ReduceOp {
    /// The sum of the numbers at `path`.
    Sum,
    /// The least number at `path`.
    Min,
    /// The greatest number at `path`.
    Max,
    /// The mean of the numbers at `path`.
    Avg,
    /// Items that have a value at `path` (every item, without a path).
    Count,
    /// Items per value at `path`: up to `limit` keys, the rest under `other`.
    CountBy,
    /// The values at `path`, up to `limit`, in the order their items
    /// were folded (the order they finished, not the source's).
    Collect,
    /// The distinct values at `path`, up to `limit`, sorted by their JSON
    /// text; values beyond the limit are counted under `other`.
    Distinct,
    /// A reducer of the user's, on `subject`: asked with `{"acc",
    /// "outputs"}`, it answers `{"acc"}`.
    Nats,
}

impl ReduceOp {
    /// Its name in a spec.
    pub fn as_str(self) -> &'static str {
        match self {
            ReduceOp::Sum => "sum",
            ReduceOp::Min => "min",
            ReduceOp::Max => "max",
            ReduceOp::Avg => "avg",
            ReduceOp::Count => "count",
            ReduceOp::CountBy => "count_by",
            ReduceOp::Collect => "collect",
            ReduceOp::Distinct => "distinct",
            ReduceOp::Nats => "nats",
        }
    }

    /// Whether it keeps values, bounded by a `limit`.
    pub fn keeps_values(self) -> bool {
        matches!(
            self,
            ReduceOp::CountBy | ReduceOp::Collect | ReduceOp::Distinct
        )
    }

    /// Whether a DLQ replay's correction takes an earlier item's value
    /// back out exactly; the others only add.
    pub fn subtracts(self) -> bool {
        matches!(
            self,
            ReduceOp::Sum | ReduceOp::Count | ReduceOp::CountBy | ReduceOp::Avg
        )
    }
}

/// Where a value is in an item's result: a root field, then (under
/// `output`) object keys and array indexes, dotted: `output.stats.words`,
/// `output.tags.0`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValuePath {
    /// The field of the result it starts at.
    pub root: PathRoot,
    /// Keys (or array indexes) under `output`.
    pub segments: Vec<String>,
}

/// The fields of an item's result a path may start at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PathRoot {
    /// The handler's output.
    Output,
    /// The error, for a failed item.
    Error,
    /// The item id.
    Id,
    /// `succeeded` or `failed`.
    Status,
    /// Handler calls made.
    Attempts,
    /// The last call's duration.
    DurationMs,
    /// The step that failed, for a `steps` handler.
    FailedStep,
}

impl PathRoot {
    const ALL: [(&'static str, PathRoot); 7] = [
        ("output", PathRoot::Output),
        ("error", PathRoot::Error),
        ("id", PathRoot::Id),
        ("status", PathRoot::Status),
        ("attempts", PathRoot::Attempts),
        ("duration_ms", PathRoot::DurationMs),
        ("failed_step", PathRoot::FailedStep),
    ];

    fn as_str(self) -> &'static str {
        PathRoot::ALL
            .iter()
            .find(|(_, root)| *root == self)
            .map(|(name, _)| *name)
            .unwrap_or("output")
    }
}

impl std::str::FromStr for ValuePath {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let mut parts = text.split('.');
        let first = parts.next().unwrap_or_default();
        let root = PathRoot::ALL
            .iter()
            .find(|(name, _)| *name == first)
            .map(|(_, root)| *root)
            .ok_or_else(|| {
                format!(
                    "{text:?} must start with one of {}",
                    PathRoot::ALL.map(|(name, _)| name).join(", ")
                )
            })?;
        let segments: Vec<String> = parts.map(str::to_string).collect();
        if segments.iter().any(String::is_empty) {
            return Err(format!("{text:?} has an empty part"));
        }
        if root != PathRoot::Output && !segments.is_empty() {
            return Err(format!("{text:?}: only output has fields under it"));
        }
        Ok(ValuePath { root, segments })
    }
}

impl std::fmt::Display for ValuePath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.root.as_str())?;
        for segment in &self.segments {
            write!(f, ".{segment}")?;
        }
        Ok(())
    }
}

impl Serialize for ValuePath {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for ValuePath {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// A reduction's answer so far, in the job state under `results.<name>`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Reduced {
    /// The op, so the answer reads on its own.
    pub op: ReduceOp,
    /// The answer: a number (`sum`, `min`, `max`, `avg`, `count`; `null`
    /// before any value), an object of counts (`count_by`), a list
    /// (`collect`, `distinct`) or the user's accumulator (`nats`).
    pub value: Value,
    /// Values folded in.
    #[serde(default)]
    pub values: u64,
    /// Items it applies to whose path was missing or of the wrong type (or,
    /// for the ops that keep values, larger than [`MAX_KEPT_VALUE_BYTES`]).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub skipped_values: u64,
    /// `avg`: the sum of the values.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sum: Option<f64>,
    /// `count_by`: items whose key came after `limit` keys; `distinct`:
    /// values not kept for the limit.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub other: u64,
    /// `nats`: why the user's reducer gave up (it folds nothing more).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// A job's answers, by reduction name.
pub type Results = BTreeMap<String, Reduced>;

/// Checks a job's `reduce`: names, the fields each op needs and allows, the
/// limits kept values add up to.
pub fn validate(reductions: &[Reduction]) -> Result<(), Rejection> {
    if reductions.len() > MAX_REDUCTIONS {
        return Err(Rejection::new(
            "reduce",
            format!("at most {MAX_REDUCTIONS} reductions"),
        ));
    }
    let mut kept = 0u64;
    for (i, r) in reductions.iter().enumerate() {
        let field = |name: &str| format!("reduce[{i}].{name}");
        let name_ok = !r.name.is_empty()
            && r.name.len() <= 64
            && r.name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
        if !name_ok {
            return Err(Rejection::new(
                field("name"),
                "must be 1-64 letters, digits, _ or -",
            ));
        }
        if reductions[..i].iter().any(|other| other.name == r.name) {
            return Err(Rejection::new(
                field("name"),
                format!("{} is named twice", r.name),
            ));
        }
        let path_optional = matches!(r.op, ReduceOp::Count | ReduceOp::Nats);
        if r.path.is_none() && !path_optional {
            return Err(Rejection::new(
                field("path"),
                format!("is required for {}", r.op.as_str()),
            ));
        }
        if r.op.keeps_values() {
            let limit = r.limit();
            if limit == 0 {
                return Err(Rejection::new(field("limit"), "must be above zero"));
            }
            kept += u64::from(limit);
        } else if r.limit.is_some() {
            return Err(Rejection::new(
                field("limit"),
                format!(
                    "applies to count_by, collect and distinct, not {}",
                    r.op.as_str()
                ),
            ));
        }
        if r.op == ReduceOp::Nats {
            let Some(subject) = &r.subject else {
                return Err(Rejection::new(field("subject"), "is required for nats"));
            };
            super::rejection::nats_subject(&field("subject"), subject)?;
            if r.timeout.is_some_and(|t| t.get().is_zero()) {
                return Err(Rejection::new(field("timeout"), "must be above zero"));
            }
            if crate::codec::to_json(&r.init).len() > MAX_ACC_BYTES {
                return Err(Rejection::new(
                    field("init"),
                    format!("is over {MAX_ACC_BYTES} bytes"),
                ));
            }
        } else {
            let stray = [
                ("subject", r.subject.is_some()),
                ("timeout", r.timeout.is_some()),
                ("init", !r.init.is_null()),
            ];
            if let Some((name, _)) = stray.iter().find(|(_, set)| *set) {
                return Err(Rejection::new(
                    field(name),
                    format!("applies to nats, not {}", r.op.as_str()),
                ));
            }
        }
    }
    if kept > u64::from(MAX_KEPT_VALUES) {
        return Err(Rejection::new(
            "reduce",
            format!("the limits of count_by, collect and distinct add up to {kept}, above {MAX_KEPT_VALUES} (the job state keeps them)"),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(json: Value) -> Vec<Reduction> {
        serde_json::from_value(json).expect("reductions")
    }

    #[test]
    fn paths_parse_and_print_back() {
        for text in [
            "output",
            "output.stats.words",
            "output.tags.0",
            "error",
            "id",
        ] {
            let path: ValuePath = text.parse().expect(text);
            assert_eq!(path.to_string(), text);
        }
        assert!("outputs.x".parse::<ValuePath>().is_err());
        assert!("output..x".parse::<ValuePath>().is_err());
        assert!("error.code".parse::<ValuePath>().is_err());
    }

    #[test]
    fn valid_reductions_pass() {
        let reductions = parse(serde_json::json!([
            {"name": "words", "op": "sum", "path": "output.words"},
            {"name": "items", "op": "count"},
            {"name": "langs", "op": "count_by", "path": "output.lang", "limit": 10},
            {"name": "errors", "op": "count_by", "path": "error", "on": "failed"},
            {"name": "mine", "op": "nats", "subject": "reducers.words", "init": {"n": 0}},
        ]));
        assert_eq!(validate(&reductions), Ok(()));
    }

    #[test]
    fn each_mistake_names_its_field() {
        let cases = [
            (
                serde_json::json!([{"name": "a", "op": "sum"}]),
                "reduce[0].path",
            ),
            (
                serde_json::json!([{"name": "a", "op": "count"}, {"name": "a", "op": "count"}]),
                "reduce[1].name",
            ),
            (
                serde_json::json!([{"name": "a b", "op": "count"}]),
                "reduce[0].name",
            ),
            (
                serde_json::json!([{"name": "a", "op": "sum", "path": "id", "limit": 3}]),
                "reduce[0].limit",
            ),
            (
                serde_json::json!([{"name": "a", "op": "nats"}]),
                "reduce[0].subject",
            ),
            (
                serde_json::json!([{"name": "a", "op": "nats", "subject": "x.*"}]),
                "reduce[0].subject",
            ),
            (
                serde_json::json!([{"name": "a", "op": "sum", "path": "id", "subject": "x"}]),
                "reduce[0].subject",
            ),
            (
                serde_json::json!([
                    {"name": "a", "op": "collect", "path": "id", "limit": 600},
                    {"name": "b", "op": "distinct", "path": "id", "limit": 600},
                ]),
                "reduce",
            ),
        ];
        for (json, field) in cases {
            let err = validate(&parse(json.clone())).expect_err(&json.to_string());
            assert_eq!(err.field, field, "{json}: {err}");
        }
    }

    #[test]
    fn applies_to_follows_on() {
        let r = |on| Reduction {
            on,
            ..parse(serde_json::json!([{"name": "a", "op": "count"}])).remove(0)
        };
        assert!(r(OutcomeFilter::Succeeded).applies_to(ItemStatus::Succeeded));
        assert!(!r(OutcomeFilter::Succeeded).applies_to(ItemStatus::Failed));
        assert!(r(OutcomeFilter::Failed).applies_to(ItemStatus::Failed));
        assert!(r(OutcomeFilter::Any).applies_to(ItemStatus::Failed));
    }
}
