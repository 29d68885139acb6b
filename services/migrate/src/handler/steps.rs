//! The `steps` handler: an ordered chain of `http` and `nats` calls for one
//! item, each seeing the previous one's output (`input`; `"$input"` in an
//! HTTP body template) — say, one step that creates a thread and one that
//! runs work on it.
//!
//! Each step has its own timeout and retry policy. A transient failure is
//! retried up to the step's `max_retries`, through the same engine as an
//! item's retry (`park`): the chain stops, the task waits out the step's
//! backoff as a schedule holding no slot, and carries where the chain
//! resumes ([`StepResume`]: the step, its calls so far, the outputs before
//! it) — so neither a wait nor a crash while waiting repeats a finished
//! step. While the step's target has an open breaker, or the step's rate
//! limit (its own `rate_limit`, its target's `jetflow limits`) has no
//! token left in its window, the chain waits the same way without spending
//! a retry. A step whose target has a shared concurrency waits for one of
//! the target's slots before it calls, and hands it back after (`gate`).
//! A step that fails for good — or runs
//! out of retries — fails the item, whose outcome records the step, the
//! error, and every earlier step's output. A crash mid-call repeats that
//! step on redelivery: each step gets its own idempotency key
//! (`<job>:<item>:<step>`) so repeating one is safe for its target.

use std::time::{Duration, Instant};

use jetflow_protocol::{
    job::{Settings, Step, StepCall},
    messages::{StepOutput, StepResume},
    retry::retry_delay,
};
use serde_json::Value;

use super::{http, nats, Call, HandlerError, Trail};
use crate::{
    breaker::{Admission, Breakers},
    context::JobContext,
    gate::Entry,
    limiter::{self, Limiter},
    target_limits::Targets,
};

/// What a chain of steps goes through: the clients that call the targets,
/// their breakers, and the job's retry policy.
#[derive(Clone, Copy)]
pub struct StepContext<'a> {
    /// The job: its priority and state, for the steps' target slots.
    pub(crate) job: &'a JobContext,
    /// The client of `http` steps.
    pub http: &'a reqwest::Client,
    /// The client of `nats` steps.
    pub nats: &'a async_nats::Client,
    /// One breaker per step target.
    pub breakers: &'a Breakers,
    /// Where rate-limit tokens are taken.
    pub limiter: &'a Limiter,
    /// The limits of the steps' targets.
    pub targets: &'a Targets,
    /// The job's settings: the retry policy of a step that sets none.
    pub settings: &'a Settings,
}

/// A step to try again after `delay`, and where the chain resumes then.
#[derive(Debug, Clone, PartialEq)]
pub struct StepRetry {
    /// How long to wait.
    pub delay: Duration,
    /// What failed.
    pub error: String,
    /// Whether a call was made (a breaker hold makes none).
    pub called: bool,
    /// Where the chain resumes.
    pub resume: StepResume,
}

/// Runs `steps` for `call`'s item, from where `resume` says (the start when
/// `None`); the last step's output is the item's. A step to retry later
/// ends the run with `Trail::retry` set.
pub async fn run(
    ctx: StepContext<'_>,
    steps: &[Step],
    call: Call<'_>,
    resume: Option<&StepResume>,
) -> (Result<Value, HandlerError>, Trail) {
    let mut trail = Trail::default();
    let (first, mut tries) = match resume {
        Some(resume) => {
            trail.messages = resume.done.clone();
            (resume.step, resume.tries)
        }
        None => (0, 0),
    };
    let mut input = trail
        .messages
        .last()
        .map(|done| done.output.clone())
        .unwrap_or(Value::Null);
    for (index, step) in steps.iter().enumerate().skip(first) {
        let this = Call {
            step: Some(&step.name),
            input: &input,
            ..call
        };
        match run_step(ctx, step, index, &this, tries).await {
            StepRun::Succeeded(output) => {
                trail.messages.push(StepOutput {
                    step: step.name.clone(),
                    output: output.clone(),
                });
                input = output;
                tries = 0;
            }
            StepRun::Failed(error) => {
                trail.failed_step = Some(step.name.clone());
                let error = format!("step {}: {error}", step.name);
                return (Err(HandlerError::Permanent(error)), trail);
            }
            StepRun::Later {
                delay,
                tries,
                called,
                error,
            } => {
                let error = format!("step {}: {error}", step.name);
                trail.retry = Some(StepRetry {
                    delay,
                    error: error.clone(),
                    called,
                    resume: StepResume {
                        step: index,
                        tries,
                        done: trail.messages.clone(),
                    },
                });
                return (Err(HandlerError::Transient(error)), trail);
            }
        }
    }
    (Ok(input), trail)
}

/// What one go at a step came to.
#[derive(Debug)]
enum StepRun {
    Succeeded(Value),
    Failed(String),
    /// Try again after `delay`, the step having made `tries` calls.
    Later {
        delay: Duration,
        tries: u32,
        called: bool,
        error: String,
    },
}

/// Calls one step once, `tries` calls having been made before: it
/// succeeds, fails for good (out of retries, or refused), or is to be
/// tried again later — after its backoff, after what the target asked for
/// (`Retry-After`, no retry spent), or once its breaker lets calls through
/// (no call made).
async fn run_step(
    ctx: StepContext<'_>,
    step: &Step,
    index: usize,
    call: &Call<'_>,
    tries: u32,
) -> StepRun {
    let settings = ctx.settings;
    let target = step.call.target();
    if let Admission::Hold(wait) = ctx.breakers.admit(&target, Instant::now()) {
        return StepRun::Later {
            delay: wait,
            tries,
            called: false,
            error: format!("circuit breaker of {target} open"),
        };
    }
    // The first step's tokens were taken before its task was pulled
    // (`worker`); a later step takes its own here.
    let held = match index {
        0 => None,
        _ => held_by_limits(ctx, step, call.job).await,
    };
    if let Some(wait) = held {
        return StepRun::Later {
            delay: wait,
            tries,
            called: false,
            error: format!("rate limit of step {}", step.name),
        };
    }
    let slot = ctx.job.enter(&target).await;
    if let Entry::Halted = slot {
        return StepRun::Later {
            delay: HALTED_RETRY,
            tries,
            called: false,
            error: format!("paused or stopped while waiting for a slot of {target}"),
        };
    }
    let tries = tries + 1;
    let result = one(ctx, &step.call, call).await;
    drop(slot);
    match &result {
        Err(HandlerError::Transient(_)) => ctx.breakers.failed(&target, Instant::now()),
        _ => ctx.breakers.succeeded(&target),
    }
    let max_retries = step.max_retries.unwrap_or(settings.max_retries);
    match result {
        Ok(output) => StepRun::Succeeded(output),
        Err(HandlerError::Permanent(error)) => StepRun::Failed(error),
        Err(HandlerError::Throttled { error, after }) => {
            ctx.breakers.throttled(&target, after, Instant::now());
            StepRun::Later {
                delay: after,
                tries: tries - 1,
                called: true,
                error,
            }
        }
        Err(HandlerError::Transient(error)) if tries <= max_retries => {
            let first_delay = step
                .retry_backoff
                .map(|d| d.get())
                .unwrap_or(settings.retry_backoff);
            let delay = retry_delay(tries, first_delay, settings.max_backoff);
            tracing::debug!(job = call.job, item = %call.item.id, step = %step.name, tries, ?delay, error, "retrying step");
            StepRun::Later {
                delay,
                tries,
                called: true,
                error,
            }
        }
        Err(HandlerError::Transient(error)) => {
            StepRun::Failed(format!("{error} (gave up after {tries} attempts)"))
        }
    }
}

/// How long the step must wait for its rate limits to let one call
/// through (`None`: it may call now, a token taken).
async fn held_by_limits(ctx: StepContext<'_>, step: &Step, job: &str) -> Option<Duration> {
    let limits = limiter::for_step(job, step, ctx.targets);
    if limits.is_empty() {
        return None;
    }
    match ctx.limiter.take(&limits, 1).await {
        Ok(grant) if grant.calls == 1 => None,
        Ok(grant) => Some(
            grant
                .retry_at
                .map_or(LIMIT_RETRY, limiter::until)
                .max(Duration::from_millis(1)),
        ),
        Err(err) => {
            tracing::debug!(job, step = %step.name, error = %err, "cannot take a rate-limit token");
            Some(LIMIT_RETRY)
        }
    }
}

/// How long a step waits when its tokens could not be counted at all.
const LIMIT_RETRY: Duration = Duration::from_secs(1);

/// When a chain whose job was paused or stopped while a step waited for
/// a target slot is due again (a paused job's task then waits in its
/// paused queue).
const HALTED_RETRY: Duration = Duration::from_secs(1);

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
