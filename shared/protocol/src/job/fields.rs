//! Fields a job spec does not have. Serde keeps unknown fields (a newer
//! client's, or a plugin's), so `"batch": {"concurency": 10}` — a typo —
//! was accepted and ran with the default. This names each field that is
//! not part of the job format inside an object whose shape is known, with
//! the field it most likely meant: `jetflow submit` warns, `--strict`
//! refuses. (Objects of the user's own — `params`, `labels`, a body
//! template, headers, item data — are not looked into.)

use serde_json::{Map, Value};

/// A field the job format does not have.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unknown {
    /// Its dotted path: `batch.concurency`.
    pub field: String,
    /// The known field it is closest to, if one is close.
    pub suggestion: Option<&'static str>,
}

impl std::fmt::Display for Unknown {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: not a field", self.field)?;
        if let Some(suggestion) = self.suggestion {
            write!(f, "; did you mean {suggestion}?")?;
        }
        Ok(())
    }
}

const JOB: &[&str] = &[
    "id",
    "kind",
    "source",
    "handler",
    "params",
    "batch",
    "preset",
    "failure_policy",
    "max_failure_ratio",
    "priority",
    "after",
    "reduce",
    "notify",
    "timeout",
    "labels",
];
const BATCH: &[&str] = &[
    "fetch_size",
    "concurrency",
    "max_retries",
    "max_inflight_batches",
    "retry_backoff",
    "max_backoff",
    "max_parked",
];
const HTTP_SOURCE: &[&str] = &[
    "type",
    "url",
    "query",
    "headers",
    "cursor_param",
    "limit_param",
    "items_field",
    "id_field",
    "next_cursor_field",
    "timeout",
];
const IDS_SOURCE: &[&str] = &["type", "ids"];
const ITEMS_SOURCE: &[&str] = &["type", "items"];
const NATS_SOURCE: &[&str] = &["type", "subject", "timeout"];
const JOB_SOURCE: &[&str] = &["type", "job", "status", "data"];
const HTTP_CALL: &[&str] = &[
    "type",
    "method",
    "url",
    "idempotency_header",
    "timeout",
    "headers",
    "body",
    "retry_on",
    "rate_limit",
];
const NATS_CALL: &[&str] = &["type", "subject", "timeout", "rate_limit"];
const EXTERNAL: &[&str] = &["type", "ack_wait"];
const STEPS: &[&str] = &["type", "steps"];
const STEP: &[&str] = &["name", "call", "max_retries", "retry_backoff"];

/// Every field of `body` (a submitted job) that the job format does not
/// have, in the order found.
pub fn unknown(body: &Value) -> Vec<Unknown> {
    let mut found = Vec::new();
    let Value::Object(job) = body else {
        return found;
    };
    check(&mut found, "", job, JOB);
    if let Some(Value::Object(batch)) = job.get("batch") {
        check(&mut found, "batch.", batch, BATCH);
    }
    if let Some(Value::Object(source)) = job.get("source") {
        let known = match source.get("type").and_then(Value::as_str) {
            Some("http") => HTTP_SOURCE,
            Some("ids") => IDS_SOURCE,
            Some("items") => ITEMS_SOURCE,
            Some("nats") => NATS_SOURCE,
            Some("job") => JOB_SOURCE,
            _ => &[],
        };
        check(&mut found, "source.", source, known);
    }
    if let Some(Value::Object(handler)) = job.get("handler") {
        check_call(&mut found, "handler.", handler, true);
        if let Some(Value::Array(steps)) = handler.get("steps") {
            for (i, step) in steps.iter().enumerate() {
                let Value::Object(step) = step else { continue };
                let at = format!("handler.steps[{i}].");
                check(&mut found, &at, step, STEP);
                if let Some(Value::Object(call)) = step.get("call") {
                    check_call(&mut found, &format!("{at}call."), call, false);
                }
            }
        }
    }
    found
}

/// A handler (or, not `top`, a step's call), by its `type`.
fn check_call(found: &mut Vec<Unknown>, at: &str, call: &Map<String, Value>, top: bool) {
    let known = match call.get("type").and_then(Value::as_str) {
        Some("http") => HTTP_CALL,
        Some("nats") => NATS_CALL,
        Some("external") if top => EXTERNAL,
        Some("steps") if top => STEPS,
        // An unknown type is an error of its own, named by validation.
        _ => &[],
    };
    check(found, at, call, known);
}

fn check(found: &mut Vec<Unknown>, at: &str, object: &Map<String, Value>, known: &[&'static str]) {
    if known.is_empty() {
        return;
    }
    for key in object.keys() {
        if !known.contains(&key.as_str()) {
            found.push(Unknown {
                field: format!("{at}{key}"),
                suggestion: closest(key, known),
            });
        }
    }
}

/// The known field within two edits of `key` (or sharing all but a few of
/// a long key's letters), the nearest first.
fn closest(key: &str, known: &[&'static str]) -> Option<&'static str> {
    known
        .iter()
        .map(|k| (edits(key, k), *k))
        .filter(|(d, k)| *d <= 2.max(k.len() / 4))
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k)
}

/// Levenshtein distance.
fn edits(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut previous = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let replaced = previous + usize::from(ca != *cb);
            previous = row[j + 1];
            row[j + 1] = replaced.min(row[j] + 1).min(previous + 1);
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn a_typo_is_named_with_what_it_meant() {
        let body = json!({
            "source": {"type": "http", "url": "http://x", "curser_param": "c"},
            "handler": {"type": "steps", "steps": [
                {"name": "a", "call": {"type": "nats", "subject": "s", "timout": "1s"}, "retries": 2},
            ]},
            "batch": {"concurency": 10},
            "labels": {"anything": "goes"},
            "params": {"concurency": "is the user's"},
            "prority": 3,
        });
        let found: Vec<String> = unknown(&body).iter().map(ToString::to_string).collect();
        assert_eq!(
            found,
            [
                "prority: not a field; did you mean priority?",
                "batch.concurency: not a field; did you mean concurrency?",
                "source.curser_param: not a field; did you mean cursor_param?",
                "handler.steps[0].retries: not a field",
                "handler.steps[0].call.timout: not a field; did you mean timeout?",
            ]
        );
    }

    #[test]
    fn a_known_job_has_none() {
        let body = json!({
            "id": "j", "source": {"type": "job", "job": "a", "status": "failed", "data": "input"},
            "handler": {"type": "http", "url": "http://x/{id}", "rate_limit": "5/s"},
            "batch": {"concurrency": 3, "max_parked": 9}, "reduce": [], "notify": [],
        });
        assert_eq!(unknown(&body), []);
        assert_eq!(edits("concurency", "concurrency"), 1);
        assert_eq!(closest("zzz", JOB), None);
    }
}
