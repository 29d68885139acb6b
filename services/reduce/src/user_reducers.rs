//! `nats` reductions: a reducer of the user's, in any language, folds the
//! job's outputs. The fold gathers each run's values (`Effects::user_outputs`);
//! this sends them, before the checkpoint, as `{"acc", "outputs"}` requests
//! and keeps the `acc` each answers.
//!
//! The new `acc` is checkpointed with the fold position, in the same write
//! as the tally. A reducer that crashes before that write folds the same
//! run again from the old `acc`, and asks the same question again: the
//! call is at least once, its effect on the answer exactly once, as long as
//! the user's reducer is a function of `acc` and `outputs`
//! (docs/exactly-once.md).
//!
//! A reducer that cannot be reached (no responders, no answer in time)
//! holds the fold: the job's tally waits for it, with a warning, rather than
//! lose its outputs. One that answers an error, or no `acc`, gives up: the
//! reduction keeps the error and folds nothing more; the job goes on.

use async_nats::{client::RequestErrorKind, Request};
use jetflow_protocol::{
    codec,
    job::{reduction::MAX_ACC_BYTES, JobState, ReduceOp},
    messages::{ReduceReply, ReduceRequest},
    text::quote,
};
use jetflow_runtime::{process::trace, Bus, Error, ErrorKind, Result};
use serde_json::Value;

/// Most outputs in one request...
const MAX_OUTPUTS: usize = 100;
/// ...and most bytes of them.
const MAX_OUTPUT_BYTES: usize = 256 << 10;

/// Folds `outputs` (reduction name, value; in ledger order) into `state`'s
/// `nats` reductions.
pub async fn fold(bus: &Bus, state: &mut JobState, outputs: &[(String, Value)]) -> Result<()> {
    let reductions: Vec<_> = state
        .spec
        .reduce
        .iter()
        .filter(|r| r.op == ReduceOp::Nats)
        .cloned()
        .collect();
    for reduction in reductions {
        let values: Vec<&Value> = outputs
            .iter()
            .filter(|(name, _)| *name == reduction.name)
            .map(|(_, value)| value)
            .collect();
        let Some(subject) = reduction.subject.as_deref() else {
            continue;
        };
        let Some(reduced) = state.results.get_mut(&reduction.name) else {
            continue;
        };
        for group in groups(&values) {
            if reduced.error.is_some() {
                break;
            }
            let request = ReduceRequest {
                job: state.id.clone(),
                reduction: reduction.name.clone(),
                acc: reduced.value.clone(),
                outputs: group.iter().map(|v| (*v).clone()).collect(),
            };
            match ask(bus, subject, reduction.timeout(), &request).await? {
                Ok(acc) => {
                    reduced.value = acc;
                    reduced.values += group.len() as u64;
                }
                Err(error) => {
                    tracing::warn!(job = %state.id, reduction = %reduction.name, subject, error, "user reducer gave up; the reduction folds nothing more");
                    reduced.error = Some(error);
                }
            }
        }
    }
    Ok(())
}

/// `values` in groups of at most [`MAX_OUTPUTS`] and about
/// [`MAX_OUTPUT_BYTES`] (a single larger value goes alone).
fn groups<'a>(values: &'a [&'a Value]) -> Vec<&'a [&'a Value]> {
    let mut groups = Vec::new();
    let (mut start, mut bytes) = (0, 0);
    for (i, value) in values.iter().enumerate() {
        let len = value.to_string().len();
        let full = i - start == MAX_OUTPUTS || (i > start && bytes + len > MAX_OUTPUT_BYTES);
        if full {
            groups.push(&values[start..i]);
            (start, bytes) = (i, 0);
        }
        bytes += len;
    }
    if start < values.len() {
        groups.push(&values[start..]);
    }
    groups
}

/// One request: the new accumulator, or why the reducer gave up (`Err`
/// inside). Not reaching it at all is a transient error.
async fn ask(
    bus: &Bus,
    subject: &str,
    timeout: std::time::Duration,
    request: &ReduceRequest,
) -> Result<std::result::Result<Value, String>> {
    // The user's reducer joins the job's trace (the fold carries it).
    let mut hdrs = codec::headers_for(codec::Format::Json);
    trace::inject_current(&mut hdrs);
    let reply = bus
        .client
        .send_request(
            subject.to_string(),
            Request::new()
                .headers(hdrs)
                .payload(codec::to_json(request))
                .timeout(Some(timeout)),
        )
        .await
        .map_err(|err| {
            let what = match err.kind() {
                RequestErrorKind::TimedOut => format!("no answer within {timeout:?}"),
                RequestErrorKind::NoResponders => "nothing serves this subject".into(),
                _ => err.to_string(),
            };
            Error::nats(
                format!("asking the user reducer on {subject}"),
                ErrorKind::Transient,
                what,
            )
        })?;
    Ok(judge(
        &reply.payload,
        codec::decode(reply.headers.as_ref(), &reply.payload),
    ))
}

/// What an answer means: the new `acc`, or why the reducer gave up.
fn judge<E: std::fmt::Display>(
    raw: &[u8],
    reply: std::result::Result<ReduceReply, E>,
) -> std::result::Result<Value, String> {
    let reply = reply.map_err(|e| {
        format!(
            "the answer is not a reduce reply ({e}): {}",
            quote(&String::from_utf8_lossy(raw), 200)
        )
    })?;
    if let Some(error) = reply.error {
        return Err(error);
    }
    let acc = reply
        .acc
        .ok_or_else(|| "the answer has no acc".to_string())?;
    let len = codec::to_json(&acc).len();
    if len > MAX_ACC_BYTES {
        return Err(format!(
            "the acc is {len} bytes, over the {MAX_ACC_BYTES} a job state keeps"
        ));
    }
    Ok(acc)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn outputs_go_in_bounded_groups_in_order() {
        let small: Vec<Value> = (0..250).map(|i| json!(i)).collect();
        let refs: Vec<&Value> = small.iter().collect();
        let sizes: Vec<usize> = groups(&refs).iter().map(|g| g.len()).collect();
        assert_eq!(sizes, [100, 100, 50]);
        assert_eq!(groups(&refs)[1][0], &json!(100));

        let big = json!("x".repeat(200 << 10));
        let refs = vec![&big, &big, &small[0]];
        let sizes: Vec<usize> = groups(&refs).iter().map(|g| g.len()).collect();
        assert_eq!(sizes, [1, 2]);
        assert!(groups(&[]).is_empty());
    }

    #[test]
    fn an_answer_is_an_acc_or_a_reason_to_give_up() {
        let parse = |text: &str| judge(text.as_bytes(), serde_json::from_str::<ReduceReply>(text));
        assert_eq!(parse(r#"{"acc": {"n": 3}}"#), Ok(json!({"n": 3})));
        assert_eq!(parse(r#"{"acc": null}"#), Ok(Value::Null));
        assert_eq!(parse(r#"{"error": "bad input"}"#), Err("bad input".into()));
        assert_eq!(parse("{}"), Err("the answer has no acc".into()));
        assert!(parse("not json")
            .unwrap_err()
            .contains("not a reduce reply"));
        let huge = format!(r#"{{"acc": "{}"}}"#, "x".repeat(MAX_ACC_BYTES));
        assert!(parse(&huge).unwrap_err().contains("over the"));
    }
}
