//! `jetflow config get|set JOB`: a running job's live settings.
//!
//! `set` is what `nats pub <ns>.jobs.config.<job> '{"concurrency": 20}'`
//! does, then waits until the job's state shows the new values — the
//! reducer has applied them (the task consumer's `max_ack_pending` for
//! `concurrency`) by then, and migrate instances follow within moments.

use std::time::Duration;

use anyhow::{bail, Context as _};
use jetflow_protocol::{
    codec,
    job::{live::LIVE_SETTINGS, ConfigChange, JobState},
};
use jetflow_runtime::NatsArgs;

use crate::{connect, exit, job_state};

/// How long `set` waits to see its change in the job's state.
const APPLY_DEADLINE: Duration = Duration::from_secs(30);

/// Arguments of `jetflow config`.
#[derive(Debug, clap::Args)]
pub struct ConfigArgs {
    #[command(subcommand)]
    pub command: ConfigCommand,
}

#[derive(Debug, clap::Subcommand)]
pub enum ConfigCommand {
    /// Show a job's live settings (concurrency, max_retries, handler_timeout, rate_limit).
    Get {
        /// The job id.
        job: String,
        /// Print them as JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        nats: NatsArgs,
    },
    /// Change a running job's live settings, e.g. `concurrency=20`; takes
    /// effect without restarts.
    Set {
        /// The job id.
        job: String,
        /// NAME=VALUE pairs: concurrency=N, max_retries=N, handler_timeout=DURATION,
        /// rate_limit=N/s|N/m|N/h|none.
        #[arg(required = true, value_name = "NAME=VALUE")]
        settings: Vec<String>,
        /// Do not wait for the job's state to show the change.
        #[arg(long)]
        no_wait: bool,
        #[command(flatten)]
        nats: NatsArgs,
    },
}

/// Runs `config get` or `config set`.
pub async fn run(args: ConfigArgs) -> anyhow::Result<u8> {
    match args.command {
        ConfigCommand::Get { job, json, nats } => get(&nats, &job, json).await,
        ConfigCommand::Set {
            job,
            settings,
            no_wait,
            nats,
        } => set(&nats, &job, &settings, no_wait).await,
    }
}

/// `config get`: the job's live settings.
async fn get(nats: &NatsArgs, job: &str, json: bool) -> anyhow::Result<u8> {
    let bus = connect::existing(nats).await?;
    let state = job_state::load(&bus, job).await?;
    let live = ConfigChange::current(&state.spec);
    if json {
        println!("{}", serde_json::to_string_pretty(&live)?);
    } else {
        print!("{}", table(&live));
    }
    Ok(exit::OK)
}

/// `config set`: requests the change and, unless `no_wait`, prints each
/// setting it changed once the job carries it.
async fn set(nats: &NatsArgs, job: &str, settings: &[String], no_wait: bool) -> anyhow::Result<u8> {
    let change = ConfigChange::from_pairs(settings.iter().map(String::as_str))
        .and_then(|c| c.validate().map(|()| c))
        .map_err(|r| anyhow::anyhow!("{r}"))?;
    let bus = connect::existing(nats).await?;
    let before = request(&bus, job, &change).await?;
    if no_wait {
        eprintln!("settings change requested for {job}");
        return Ok(exit::OK);
    }
    let after = wait_applied(&bus, job, &change).await?;
    let (old, new) = (
        ConfigChange::current(&before.spec),
        ConfigChange::current(&after.spec),
    );
    for (name, old, new) in compare(&old, &new) {
        println!("{job}: {name} {old} -> {new}");
    }
    Ok(exit::OK)
}

/// Checks `change` against the running `job` and stores it (the
/// dashboard's settings form too); returns the state it was checked on.
pub(crate) async fn request(
    bus: &jetflow_runtime::Bus,
    job: &str,
    change: &ConfigChange,
) -> anyhow::Result<jetflow_protocol::job::JobState> {
    let before = job_state::load(bus, job).await?;
    if !before.status.is_active() {
        bail!(
            "job {job} is {}: live settings apply to running jobs",
            before.status
        );
    }
    change
        .fits(&before.spec)
        .map_err(|r| anyhow::anyhow!("{r}"))?;
    bus.js
        .publish_with_headers(
            bus.names.config_subject(job),
            codec::headers_for(codec::Format::Json),
            codec::to_json(change),
        )
        .await
        .context("publishing the settings change")?
        .await
        .context("storing the settings change")?;
    Ok(before)
}

/// Polls the job's state until it carries `change` (or the job ended).
async fn wait_applied(
    bus: &jetflow_runtime::Bus,
    job: &str,
    change: &ConfigChange,
) -> anyhow::Result<JobState> {
    let deadline = tokio::time::Instant::now() + APPLY_DEADLINE;
    loop {
        let state = job_state::load(bus, job).await?;
        let live = ConfigChange::current(&state.spec);
        let applied = change
            .concurrency
            .is_none_or(|c| live.concurrency == Some(c))
            && change
                .max_retries
                .is_none_or(|r| live.max_retries == Some(r))
            && change
                .handler_timeout
                .is_none_or(|t| live.handler_timeout == Some(t))
            && change.rate_limit.is_none_or(|r| live.rate_limit == Some(r));
        if applied {
            return Ok(state);
        }
        if !state.status.is_active() {
            bail!("job {job} is {} before the change applied", state.status);
        }
        if tokio::time::Instant::now() > deadline {
            bail!(
                "the change was requested but not applied within {APPLY_DEADLINE:?}: are the fetch and reduce services running?"
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

pub(crate) fn values(live: &ConfigChange) -> [String; 4] {
    let show = |v: Option<String>| v.unwrap_or_else(|| "-".into());
    [
        show(live.concurrency.map(|c| c.to_string())),
        show(live.max_retries.map(|r| r.to_string())),
        show(live.handler_timeout.map(|t| t.to_string())),
        show(live.rate_limit.map(|r| r.to_string())),
    ]
}

fn table(live: &ConfigChange) -> String {
    LIVE_SETTINGS
        .iter()
        .zip(values(live))
        .map(|(name, value)| format!("{name:<16} {value}\n"))
        .collect()
}

fn compare(old: &ConfigChange, new: &ConfigChange) -> Vec<(&'static str, String, String)> {
    LIVE_SETTINGS
        .iter()
        .zip(values(old).into_iter().zip(values(new)))
        .filter(|(_, (a, b))| a != b)
        .map(|(name, (a, b))| (*name, a, b))
        .collect()
}
