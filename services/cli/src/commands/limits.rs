//! `jetflow limits set|get|ls|rm TARGET`: the limits a target carries for
//! every job that calls it — an HTTP host (`api.example.com:443`, or any
//! URL on it) or a NATS subject (`nats:agents.migrate`).
//!
//! A target's limits are one JSON record in the limits bucket under the
//! target's key, so `nats kv get|put <ns>_limits <key>` is the same thing;
//! every migrate instance watches the bucket and applies a change to the
//! calls it starts next, in every job.

use anyhow::{bail, Context as _};
use futures::TryStreamExt;
use jetflow_protocol::target::{self, TargetLimits};
use jetflow_runtime::{Bus, NatsArgs};

use crate::{connect, exit};

/// Arguments of `jetflow limits`.
#[derive(Debug, clap::Args)]
pub struct LimitsArgs {
    #[command(subcommand)]
    pub command: LimitsCommand,
}

#[derive(Debug, clap::Subcommand)]
pub enum LimitsCommand {
    /// Set a target's limits, shared by every job that calls it, e.g.
    /// `jetflow limits set api.example.com rate=100/s concurrency=20`; live.
    Set {
        /// A URL or host[:port] (an HTTP target), or nats:<subject>.
        target: String,
        /// NAME=VALUE pairs: rate=N/s|N/m|N/h|none, concurrency=N|none
        /// (calls in flight at once, across every job; a higher-priority
        /// job's calls get freed slots first).
        #[arg(required = true, value_name = "NAME=VALUE")]
        limits: Vec<String>,
        #[command(flatten)]
        nats: NatsArgs,
    },
    /// Show a target's limits (exit 1 when it has none).
    Get {
        /// A URL or host[:port], or nats:<subject>.
        target: String,
        /// Print them as JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        nats: NatsArgs,
    },
    /// List every target that carries limits.
    Ls {
        /// Print them as JSON lines.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        nats: NatsArgs,
    },
    /// Remove a target's limits.
    Rm {
        /// A URL or host[:port], or nats:<subject>.
        target: String,
        #[command(flatten)]
        nats: NatsArgs,
    },
}

/// Runs one `limits` subcommand.
pub async fn run(args: LimitsArgs) -> anyhow::Result<u8> {
    match args.command {
        LimitsCommand::Set {
            target,
            limits,
            nats,
        } => set(&nats, &target, &limits).await,
        LimitsCommand::Get { target, json, nats } => get(&nats, &target, json).await,
        LimitsCommand::Ls { json, nats } => ls(&nats, json).await,
        LimitsCommand::Rm { target, nats } => rm(&nats, &target).await,
    }
}

/// The target `arg` names, or why it names none.
fn target_of(arg: &str) -> anyhow::Result<String> {
    target::parse(arg).map_err(|e| anyhow::anyhow!("target: {e}"))
}

async fn set(nats: &NatsArgs, arg: &str, pairs: &[String]) -> anyhow::Result<u8> {
    let target = target_of(arg)?;
    let bus = connect::provisioned(nats).await?;
    let before = load(&bus, &target).await?.unwrap_or(TargetLimits {
        target: target.clone(),
        ..TargetLimits::default()
    });
    let after = before
        .with_pairs(pairs.iter().map(String::as_str))
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    bus.kv
        .limits
        .put(target::key(&target), serde_json::to_vec(&after)?.into())
        .await
        .with_context(|| format!("storing the limits of {target}"))?;
    println!("{}", line(&after));
    Ok(exit::OK)
}

async fn get(nats: &NatsArgs, arg: &str, json: bool) -> anyhow::Result<u8> {
    let target = target_of(arg)?;
    let bus = connect::existing(nats).await?;
    let Some(limits) = load(&bus, &target).await? else {
        eprintln!("{target} carries no limits");
        return Ok(exit::FAILED);
    };
    if json {
        println!("{}", serde_json::to_string_pretty(&limits)?);
    } else {
        println!("{}", line(&limits));
    }
    Ok(exit::OK)
}

async fn ls(nats: &NatsArgs, json: bool) -> anyhow::Result<u8> {
    let bus = connect::existing(nats).await?;
    let mut keys: Vec<String> = bus
        .kv
        .limits
        .keys()
        .await
        .context("listing target limits")?
        .try_collect()
        .await
        .context("listing target limits")?;
    keys.sort();
    for key in keys {
        let Some(value) = bus
            .kv
            .limits
            .get(&key)
            .await
            .context("reading target limits")?
        else {
            continue;
        };
        match serde_json::from_slice::<TargetLimits>(&value) {
            Ok(limits) if json => println!("{}", serde_json::to_string(&limits)?),
            Ok(limits) => println!("{}", line(&limits)),
            Err(err) => eprintln!("{key}: unreadable limits ({err})"),
        }
    }
    Ok(exit::OK)
}

async fn rm(nats: &NatsArgs, arg: &str) -> anyhow::Result<u8> {
    let target = target_of(arg)?;
    let bus = connect::existing(nats).await?;
    if load(&bus, &target).await?.is_none() {
        bail!("{target} carries no limits");
    }
    bus.kv
        .limits
        .delete(target::key(&target))
        .await
        .with_context(|| format!("removing the limits of {target}"))?;
    println!("{target}: no limits");
    Ok(exit::OK)
}

/// `target`'s limits record, if it has one.
async fn load(bus: &Bus, target: &str) -> anyhow::Result<Option<TargetLimits>> {
    let Some(value) = bus
        .kv
        .limits
        .get(target::key(target))
        .await
        .with_context(|| format!("reading the limits of {target}"))?
    else {
        return Ok(None);
    };
    let limits = serde_json::from_slice(&value)
        .with_context(|| format!("the limits record of {target} is unreadable"))?;
    Ok(Some(limits))
}

/// One target's limits on one line: `api:80  rate 100/s  concurrency 20`.
fn line(limits: &TargetLimits) -> String {
    let rate = limits.rate.map_or("-".to_string(), |r| r.to_string());
    let concurrency = limits
        .concurrency
        .map_or("-".to_string(), |n| n.to_string());
    format!("{}  rate {rate}  concurrency {concurrency}", limits.target)
}
