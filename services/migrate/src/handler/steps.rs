//! The `steps` handler: an ordered chain of `http` and `nats` calls for one
//! item, each seeing the previous one's output (`input`; `"$input"` in an
//! HTTP body template) — say, one step that creates a thread and one that
//! runs work on it.
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
    job::{Settings, Step, StepCall},
    messages::StepOutput,
    retry::retry_delay,
};
use serde_json::Value;

use super::{http, nats, Call, HandlerError, Trail};
use crate::breaker::{http_target, Admission, Breakers};

/// What a chain of steps goes through: the clients that call the targets,
/// their breakers, and the job's retry policy.
#[derive(Clone, Copy)]
pub struct StepContext<'a> {
    /// The client of `http` steps.
    pub http: &'a reqwest::Client,
    /// The client of `nats` steps.
    pub nats: &'a async_nats::Client,
    /// One breaker per step target.
    pub breakers: &'a Breakers,
    /// The job's settings: the retry policy of a step that sets none.
    pub settings: &'a Settings,
}

/// Runs `steps` for `call`'s item; the last step's output is the item's.
pub async fn run(
    ctx: StepContext<'_>,
    steps: &[Step],
    call: Call<'_>,
) -> (Result<Value, HandlerError>, Trail) {
    let mut trail = Trail::default();
    let mut input = Value::Null;
    for step in steps {
        let this = Call {
            step: Some(&step.name),
            input: &input,
            ..call
        };
        match run_step(ctx, step, &this).await {
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

/// Calls one step until it succeeds, fails for good, or runs out of retries;
/// waits, without spending a retry, while its target's breaker is open.
async fn run_step(ctx: StepContext<'_>, step: &Step, call: &Call<'_>) -> Result<Value, String> {
    let settings = ctx.settings;
    let max_retries = step.max_retries.unwrap_or(settings.max_retries);
    let first_delay = step
        .retry_backoff
        .map(|d| d.get())
        .unwrap_or(settings.retry_backoff);
    let target = target(&step.call);
    let mut tries = 0;
    loop {
        if let Admission::Hold(wait) = ctx.breakers.admit(&target, Instant::now()) {
            tokio::time::sleep(wait.min(Duration::from_secs(5))).await;
            continue;
        }
        tries += 1;
        let result = one(ctx, &step.call, call).await;
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
                return Err(format!("{error} (gave up after {tries} attempts)"));
            }
            Err(HandlerError::Permanent(error)) => return Err(error),
            Ok(output) => return Ok(output),
        }
    }
}

/// Makes one call of a step.
async fn one(
    ctx: StepContext<'_>,
    call: &StepCall,
    this: &Call<'_>,
) -> Result<Value, HandlerError> {
    match call {
        StepCall::Http(spec) => http::call(ctx.http, spec, this).await,
        StepCall::Nats(spec) => nats::call(ctx.nats, spec, this).await,
    }
}

/// The breaker key of a step's target.
pub fn target(call: &StepCall) -> String {
    match call {
        StepCall::Http(http) => http_target(&http.url),
        StepCall::Nats(nats) => format!("nats:{}", nats.subject),
    }
}
