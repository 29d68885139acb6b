//! `jetflow results JOB`: every item's outcome, streamed from the items
//! bucket as it is read — a million items in flat memory.
//!
//! `--format json` prints JSON Lines, each line exactly the record `nats kv
//! get <ns>_items <job>.<item>` shows; `--format csv` prints one row per item.

use std::io::Write;

use anyhow::Context as _;
use jetflow_protocol::{
    codec,
    job::{ItemOutcome, ItemStatus},
};
use jetflow_runtime::{nats::scan::KvScan, NatsArgs};

use crate::{connect, exit, job_state};

/// Output formats.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum Format {
    /// JSON Lines: one outcome record per line.
    Json,
    /// CSV with a header row.
    Csv,
}

/// Arguments of `jetflow results`.
#[derive(Debug, clap::Args)]
pub struct ResultsArgs {
    /// The job id.
    pub job: String,
    /// Only items that failed for good.
    #[arg(long)]
    pub failed: bool,
    /// The job's reductions instead (its `results`, as JSON), not its items.
    #[arg(long, conflicts_with = "failed")]
    pub reduced: bool,
    /// Output format.
    #[arg(long, value_enum, default_value = "json")]
    pub format: Format,
    #[command(flatten)]
    pub nats: NatsArgs,
}

/// The CSV columns.
const COLUMNS: [&str; 8] = [
    "item",
    "status",
    "batch", // not a stage: the item's batch number
    "attempts",
    "duration_ms",
    "finished_at",
    "error",
    "replaced",
];

pub async fn run(args: ResultsArgs) -> anyhow::Result<u8> {
    let bus = connect::existing(&args.nats).await?;
    let state = job_state::load(&bus, &args.job).await?;
    if args.reduced {
        println!("{}", serde_json::to_string_pretty(&state.results)?);
        return Ok(exit::OK);
    }
    let mut scan = KvScan::start(&bus.js, &bus.kv.items, &format!("{}.>", args.job)).await?;
    let stdout = std::io::stdout().lock();
    let mut out = Output::new(args.format, stdout)?;
    while let Some(change) = scan.next().await? {
        let Some(raw) = change.value else { continue };
        let outcome: ItemOutcome = codec::decode_as(codec::Format::Json, &raw)
            .with_context(|| format!("item record {}", change.key))?;
        if args.failed && outcome.status != ItemStatus::Failed {
            continue;
        }
        match out.write(&outcome, &raw) {
            Ok(()) => {}
            // `jetflow results … | head` closes the pipe: that is not an error.
            Err(err) if is_broken_pipe(&err) => return Ok(exit::OK),
            Err(err) => return Err(err),
        }
    }
    out.finish()?;
    Ok(exit::OK)
}

pub(crate) enum Output<W: Write> {
    Json(std::io::BufWriter<W>),
    Csv(Box<csv::Writer<W>>),
}

impl<W: Write> Output<W> {
    pub(crate) fn new(format: Format, w: W) -> anyhow::Result<Self> {
        Ok(match format {
            Format::Json => Output::Json(std::io::BufWriter::new(w)),
            Format::Csv => {
                let mut csv = csv::Writer::from_writer(w);
                csv.write_record(COLUMNS)?;
                Output::Csv(Box::new(csv))
            }
        })
    }

    pub(crate) fn write(&mut self, outcome: &ItemOutcome, raw: &[u8]) -> anyhow::Result<()> {
        match self {
            Output::Json(w) => {
                w.write_all(raw)?;
                w.write_all(b"\n")?;
            }
            Output::Csv(w) => w.write_record([
                outcome.item.as_str(),
                status_name(outcome.status),
                &outcome.batch.to_string(),
                &outcome.attempts.to_string(),
                &outcome.duration_ms.to_string(),
                &outcome.finished_at.to_rfc3339(),
                outcome.error.as_deref().unwrap_or(""),
                outcome.replaced.map(status_name).unwrap_or(""),
            ])?,
        }
        Ok(())
    }

    pub(crate) fn finish(self) -> anyhow::Result<()> {
        let flushed = match self {
            Output::Json(mut w) => w.flush().map_err(anyhow::Error::from),
            Output::Csv(mut w) => w.flush().map_err(anyhow::Error::from),
        };
        match flushed {
            Err(err) if is_broken_pipe(&err) => Ok(()),
            other => other,
        }
    }
}

fn status_name(status: ItemStatus) -> &'static str {
    match status {
        ItemStatus::Succeeded => "succeeded",
        ItemStatus::Failed => "failed",
    }
}

fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|e| {
        e.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
            || e.downcast_ref::<csv::Error>().is_some_and(|c| {
                matches!(c.kind(), csv::ErrorKind::Io(io) if io.kind() == std::io::ErrorKind::BrokenPipe)
            })
    })
}
