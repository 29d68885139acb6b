//! `jetflow gc --older-than D`: remove jobs that finished more than D ago —
//! state, batches, items, events, ledger and dead letters. Running jobs are
//! never touched. The reduce service does the same on its own every
//! `--gc-every` for jobs past `--retention` (7 days by default).

use jetflow_protocol::duration::HumanDuration;
use jetflow_runtime::{ops::gc, NatsArgs};

use crate::{connect, exit};

/// Arguments of `jetflow gc`.
#[derive(Debug, clap::Args)]
pub struct GcArgs {
    /// Remove jobs that finished at least this long ago (`0s` for all finished jobs).
    #[arg(long)]
    pub older_than: HumanDuration,
    /// Only list what would be removed.
    #[arg(long)]
    pub dry_run: bool,
    /// Print the removed (or, with --dry-run, removable) jobs as JSON.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub nats: NatsArgs,
}

pub async fn run(args: GcArgs) -> anyhow::Result<u8> {
    let bus = connect::existing(&args.nats).await?;
    let jobs = if args.dry_run {
        let age = chrono::Duration::from_std(args.older_than.get())?;
        gc::expired(&bus, chrono::Utc::now() - age).await?
    } else {
        gc::collect(&bus, args.older_than.get()).await?
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&jobs)?);
        return Ok(exit::OK);
    }
    let verb = if args.dry_run {
        "would remove"
    } else {
        "removed"
    };
    for job in &jobs {
        println!(
            "{verb} {} ({}, finished {})",
            job.job,
            job.status,
            job.finished_at.format("%Y-%m-%d %H:%M:%S UTC")
        );
    }
    eprintln!("{verb} {} finished job(s)", jobs.len());
    Ok(exit::OK)
}
