//! `jetflow pause JOB [--for 2h | --until TIME] [--reason TEXT]` and
//! `jetflow resume JOB`: what `nats pub jetflow.jobs.pause.<job> '{"for":
//! "2h"}'` and `nats pub jetflow.jobs.resume.<job> ''` do, plus waiting
//! until the job's state says it took effect.

use std::time::Duration;

use anyhow::{bail, Context as _};
use chrono::{DateTime, Utc};
use jetflow_protocol::{
    codec,
    duration::HumanDuration,
    job::{JobState, JobStatus},
    messages::{PauseRequest, ResumeRequest},
};
use jetflow_runtime::{Bus, NatsArgs};
use serde::Serialize;

use crate::{connect, exit, job_state};

/// How long the CLI waits for the reducer to take a request in.
const TAKE_EFFECT_WITHIN: Duration = Duration::from_secs(15);

/// Arguments of `jetflow pause`.
#[derive(Debug, clap::Args)]
pub struct PauseArgs {
    /// The job id.
    pub job: String,
    /// End the pause by itself after this long (e.g. `30m`, `2h`).
    #[arg(long = "for", value_name = "DURATION", conflicts_with = "until")]
    pub for_: Option<HumanDuration>,
    /// End the pause by itself at this time (RFC 3339, e.g. `2026-12-02T18:00:00Z`).
    #[arg(long, value_name = "TIME")]
    pub until: Option<DateTime<Utc>>,
    /// Why, for the job's state and `paused` event.
    #[arg(long)]
    pub reason: Option<String>,
    #[command(flatten)]
    pub nats: NatsArgs,
}

/// Arguments of `jetflow resume`.
#[derive(Debug, clap::Args)]
pub struct ResumeArgs {
    /// The job id.
    pub job: String,
    /// Why, for the `resumed` event.
    #[arg(long)]
    pub reason: Option<String>,
    #[command(flatten)]
    pub nats: NatsArgs,
}

pub async fn pause(args: PauseArgs) -> anyhow::Result<u8> {
    let request = PauseRequest {
        until: args.until,
        for_: args.for_,
        reason: args.reason,
    };
    if let Err(reason) = request.ends_at(Utc::now()) {
        bail!("--until/--for: {reason}");
    }
    let bus = connect::existing(&args.nats).await?;
    let before = job_state::load(&bus, &args.job).await?;
    if !before.status.is_active() {
        bail!(
            "job {} is {}: only a running job can be paused",
            args.job,
            before.status
        );
    }
    let subject = bus.names.pause_subject(&args.job);
    send(&bus, subject, &request, "pause").await?;
    let state = taken_in(&bus, &args.job, |s| {
        s.status == JobStatus::Paused && s.pause_reason == request.reason
    })
    .await?;
    match state.paused_until {
        Some(until) => eprintln!("{} paused until {until}", args.job),
        None => eprintln!("{} paused until `jetflow resume {}`", args.job, args.job),
    }
    Ok(exit::OK)
}

pub async fn resume(args: ResumeArgs) -> anyhow::Result<u8> {
    let bus = connect::existing(&args.nats).await?;
    let before = job_state::load(&bus, &args.job).await?;
    if before.status != JobStatus::Paused {
        eprintln!(
            "{} is {}, not paused: nothing to resume",
            args.job, before.status
        );
        return Ok(exit::OK);
    }
    let request = ResumeRequest {
        reason: args.reason,
    };
    send(
        &bus,
        bus.names.resume_subject(&args.job),
        &request,
        "resume",
    )
    .await?;
    let state = taken_in(&bus, &args.job, |s| s.status != JobStatus::Paused).await?;
    eprintln!("{} resumed: {}", args.job, state.status);
    Ok(exit::OK)
}

/// Publishes `request` on `subject` and waits for the jobs stream to have it.
pub(crate) async fn send(
    bus: &Bus,
    subject: String,
    request: &impl Serialize,
    what: &str,
) -> anyhow::Result<()> {
    bus.js
        .publish_with_headers(
            subject,
            codec::headers_for(codec::Format::Json),
            codec::to_json(request),
        )
        .await
        .with_context(|| format!("publishing the {what} request"))?
        .await
        .with_context(|| format!("storing the {what} request"))?;
    Ok(())
}

/// The job's state once `done` says the request took effect (or the job
/// ended); an error if that takes longer than [`TAKE_EFFECT_WITHIN`].
async fn taken_in(
    bus: &Bus,
    job: &str,
    done: impl Fn(&JobState) -> bool,
) -> anyhow::Result<JobState> {
    let deadline = tokio::time::Instant::now() + TAKE_EFFECT_WITHIN;
    loop {
        let state = job_state::load(bus, job).await?;
        if done(&state) || state.status.is_terminal() {
            return Ok(state);
        }
        if tokio::time::Instant::now() >= deadline {
            bail!(
                "the request is stored, but job {job} is still {} after {TAKE_EFFECT_WITHIN:?}: \
                 are fetch and reduce running?",
                state.status
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
