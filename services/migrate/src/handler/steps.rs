//! The `steps` handler: an ordered chain of `http` and `nats` calls for one
//! item, each seeing the previous one's output (`input`; `"$input"` in an
//! HTTP body template) — the seeds' EnsureThread then ExecuteGraphton.
//!
//! Each step has its own timeout and retry policy: a transient failure is
//! retried in place, with backoff, up to the step's `max_retries`; while
//! the step's target has an open breaker, the step waits without spending
//! a retry. A step that fails for good — or runs out of retries — fails the
//! item, whose outcome records the step, the error, and every earlier
//! step's output. A crash mid-chain runs the chain again from the first
//! step on redelivery: each step gets its own idempotency key
//! (`<job>:<item>:<step>`) so repeating one is safe for its target.

use std::time::{Duration, Instant};

use jetflow_protocol::{
    job::{Step, StepCall},
    messages::StepOutput,
    retry::retry_delay,
};
use serde_json::Value;

use super::{http, nats, Call, HandlerError, Trail};
use crate::{
    breaker::{http_target, Admission},
    worker::JobContext,
};

/// Runs `steps` for `call`'s item; the last step's output is the item's.
pub async fn run(
    ctx: &JobContext,
    steps: &[Step],
    call: Call<'_>,
) -> (Result<Value, HandlerError>, Trail) {
    let settings = &ctx.settings;
    let mut trail = Trail::default();
    let mut input = Value::Null;
    for step in steps {
        let max_retries = step.max_retries.unwrap_or(settings.max_retries);
        let first_delay = step
            .retry_backoff
            .map(|d| d.get())
            .unwrap_or(settings.retry_backoff);
        let target = target(&step.call);
        let this = Call {
            step: Some(&step.name),
            input: &input,
            ..call
        };
        let mut tries = 0;
        let result = loop {
            if let Admission::Hold(wait) = ctx.breakers.admit(&target, Instant::now()) {
                tokio::time::sleep(wait.min(Duration::from_secs(5))).await;
                continue;
            }
            tries += 1;
            let result = one(ctx, &step.call, &this).await;
            match &result {
                Err(HandlerError::Transient(_)) => ctx.breakers.failed(&target, Instant::now()),
                _ => ctx.breakers.succeeded(&target),
            }
            match result {
                Err(HandlerError::Transient(error)) if tries <= max_retries => {
                    let delay = retry_delay(tries, first_delay, settings.max_backoff);
                    tracing::debug!(job = call.job, item = %call.item.id, step = %step.name, tries, ?delay, error, "retrying step");
                    tokio::time::sleep(delay).await;
                }
                Err(HandlerError::Transient(error)) => {
                    break Err(format!("{error} (gave up after {tries} attempts)"));
                }
                Err(HandlerError::Permanent(error)) => break Err(error),
                Ok(output) => break Ok(output),
            }
        };
        match result {
            Ok(output) => {
                trail.messages.push(StepOutput {
                    step: step.name.clone(),
                    output: output.clone(),
                });
                input = output;
            }
            Err(error) => {
                trail.failed_step = Some(step.name.clone());
                let error = format!("step {}: {error}", step.name);
                return (Err(HandlerError::Permanent(error)), trail);
            }
        }
    }
    (Ok(input), trail)
}

async fn one(ctx: &JobContext, call: &StepCall, this: &Call<'_>) -> Result<Value, HandlerError> {
    match call {
        StepCall::Http(spec) => http::call(&ctx.http, spec, this).await,
        StepCall::Nats(spec) => nats::call(&ctx.bus.client, spec, this).await,
    }
}

/// The breaker key of a step's target.
pub fn target(call: &StepCall) -> String {
    match call {
        StepCall::Http(http) => http_target(&http.url),
        StepCall::Nats(nats) => format!("nats:{}", nats.subject),
    }
}
