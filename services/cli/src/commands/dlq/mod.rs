//! `jetflow dlq ls|show|replay|purge`: the dead-letter stream, filtered by
//! job, stage and error text. Each is also doable with the `nats` CLI
//! (`nats stream view JETFLOW_DLQ`, `nats stream get JETFLOW_DLQ SEQ`,
//! `nats stream rmm JETFLOW_DLQ SEQ`); replay also puts the job back to work.

pub(crate) mod letters;
pub(crate) mod replay;

use anyhow::Context as _;
use clap::{Args, Subcommand};
use jetflow_runtime::NatsArgs;

use self::letters::{DeadLetterView, Filter};
use crate::{connect, exit};

/// Arguments of `jetflow dlq`.
#[derive(Debug, Args)]
pub struct DlqArgs {
    #[command(subcommand)]
    pub command: DlqCommand,
}

/// What to do with dead letters.
#[derive(Debug, Subcommand)]
pub enum DlqCommand {
    /// List dead letters (oldest first).
    Ls {
        #[command(flatten)]
        filter: Filter,
        /// One JSON object per line.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        nats: NatsArgs,
    },
    /// Show one dead letter: its headers and payload.
    Show {
        /// Its stream sequence (from `ls`).
        seq: u64,
        #[command(flatten)]
        nats: NatsArgs,
    },
    /// Run the items of dead-lettered tasks again; the job's tally and
    /// status are corrected by their new outcomes.
    Replay {
        #[command(flatten)]
        filter: Filter,
        /// Say what would be replayed, and do nothing.
        #[arg(long)]
        dry_run: bool,
        #[command(flatten)]
        nats: NatsArgs,
    },
    /// Delete dead letters.
    Purge {
        #[command(flatten)]
        filter: Filter,
        #[command(flatten)]
        nats: NatsArgs,
    },
}

/// Runs one `dlq` subcommand.
pub async fn run(args: DlqArgs) -> anyhow::Result<u8> {
    match args.command {
        DlqCommand::Ls { filter, json, nats } => ls(&nats, &filter, json).await,
        DlqCommand::Show { seq, nats } => show(&nats, seq).await,
        DlqCommand::Replay {
            filter,
            dry_run,
            nats,
        } => {
            let bus = connect::provisioned(&nats).await?;
            replay::run(&bus, &filter, dry_run).await
        }
        DlqCommand::Purge { filter, nats } => purge(&nats, &filter).await,
    }
}

/// `dlq ls`: a table (or JSON lines) of the dead letters `filter` selects.
async fn ls(nats: &NatsArgs, filter: &Filter, json: bool) -> anyhow::Result<u8> {
    let bus = connect::existing(nats).await?;
    let letters = letters::read(&bus, filter).await?;
    if !json {
        println!(
            "{:>8}  {:<8} {:<24} {:<16} {:>3}  ERROR",
            "SEQ", "STAGE", "JOB", "ITEM", "TRY"
        );
    }
    for letter in &letters {
        if json {
            println!("{}", serde_json::to_string(&letter.summary())?);
        } else {
            println!("{}", letter.line());
        }
    }
    if !json {
        eprintln!("{} dead letters", letters.len());
    }
    Ok(exit::OK)
}

/// `dlq show SEQ`: one dead letter's headers and payload, as JSON.
async fn show(nats: &NatsArgs, seq: u64) -> anyhow::Result<u8> {
    let bus = connect::existing(nats).await?;
    let stream = bus
        .js
        .get_stream(bus.names.dlq_stream())
        .await
        .context("opening the DLQ")?;
    let message = stream
        .get_raw_message(seq)
        .await
        .with_context(|| format!("no dead letter {seq}"))?;
    let letter = DeadLetterView::from_stream_message(message);
    println!("{}", serde_json::to_string_pretty(&letter.detail())?);
    Ok(exit::OK)
}

/// `dlq purge`: deletes the dead letters `filter` selects.
async fn purge(nats: &NatsArgs, filter: &Filter) -> anyhow::Result<u8> {
    let bus = connect::existing(nats).await?;
    let purged = purge_letters(&bus, filter).await?;
    eprintln!("purged {purged} dead letters");
    Ok(exit::OK)
}

/// Deletes the dead letters `filter` selects; how many (the dashboard's
/// purge too).
pub(crate) async fn purge_letters(
    bus: &jetflow_runtime::Bus,
    filter: &Filter,
) -> anyhow::Result<usize> {
    let letters = letters::read(bus, filter).await?;
    let stream = bus
        .js
        .get_stream(bus.names.dlq_stream())
        .await
        .context("opening the DLQ")?;
    for letter in &letters {
        stream
            .delete_message(letter.seq)
            .await
            .with_context(|| format!("deleting dead letter {}", letter.seq))?;
    }
    Ok(letters.len())
}
