//! `jetflow retry-failed JOB`: a new job over the items that failed in an
//! old one, linked to it by the label `retry_of`.
//!
//! The failed items come from the old job's outcome records; their data
//! (what the handler saw) from the tasks in the dead-letter queue, where
//! every item that failed for good is kept. The new job is the old one's
//! spec with an `items` source, so it runs the same handler and settings.

use std::collections::BTreeMap;

use anyhow::{bail, Context as _};
use async_nats::jetstream::consumer::{pull::OrderedConfig, DeliverPolicy};
use futures::StreamExt;
use jetflow_protocol::{
    codec,
    job::{InlineItem, ItemId, ItemOutcome, ItemStatus, JobSpec, JobState, SourceSpec},
    messages::TaskMessage,
    Stage,
};
use jetflow_runtime::{nats::scan::KvScan, Bus, NatsArgs};
use serde_json::Value;

use crate::{
    commands::submit::{self, exit_code, print_final, Verdict},
    connect, exit, job_state, progress,
};

/// Arguments of `jetflow retry-failed`.
#[derive(Debug, clap::Args)]
pub struct RetryFailedArgs {
    /// The finished job whose failed items to run again.
    pub job: String,
    /// The new job's id (default `<job>-retry-<n>`).
    #[arg(long)]
    pub id: Option<String>,
    /// Follow the new job to its end, then print its final state.
    #[arg(long)]
    pub wait: bool,
    #[command(flatten)]
    pub nats: NatsArgs,
}

/// Submits a job over the failed items of `args.job`, and follows it with `--wait`.
pub async fn run(args: RetryFailedArgs) -> anyhow::Result<u8> {
    let bus = connect::provisioned(&args.nats).await?;
    let old = job_state::load(&bus, &args.job).await?;
    if !old.status.is_terminal() {
        bail!(
            "job {} is {}: retry its failed items once it has ended",
            old.id,
            old.status
        );
    }

    let mut failed = failed_items(&bus, &old.id).await?;
    if failed.is_empty() {
        eprintln!("job {} has no failed items", old.id);
        return Ok(exit::OK);
    }
    let with_data = fill_data_from_dlq(&bus, &old.id, &mut failed).await?;

    let id = match args.id {
        Some(id) => id,
        None => free_id(&bus, &old.id).await?,
    };
    let count = failed.len();
    let body = serde_json::to_value(retry_spec(&old, &id, failed))?;
    let size = body.to_string().len();
    let max = bus.client.server_info().max_payload;
    if size > max {
        bail!(
            "{count} failed items make a job of {size} bytes, over the server's max_payload of {max}"
        );
    }
    match submit::submit(&bus, &id, body).await? {
        Verdict::Accepted => {}
        Verdict::Rejected(reason) => {
            eprintln!("rejected: {reason}");
            return Ok(exit::REJECTED);
        }
    }
    eprintln!(
        "submitted {id}: {count} failed items of {} ({with_data} with their data from the DLQ)",
        old.id
    );
    if !args.wait {
        println!("{id}");
        return Ok(exit::OK);
    }
    let state = progress::follow(&bus, &id).await?;
    print_final(&state, false);
    Ok(exit_code(state.status))
}

/// The ids of `job`'s failed items, from its outcome records, each with no
/// data yet.
async fn failed_items(bus: &Bus, job: &str) -> anyhow::Result<BTreeMap<String, Value>> {
    let mut failed = BTreeMap::new();
    let mut scan = KvScan::start(&bus.js, &bus.kv.items, &format!("{job}.>")).await?;
    while let Some(change) = scan.next().await? {
        let Some(raw) = change.value else { continue };
        let outcome: ItemOutcome = codec::decode_as(codec::Format::Json, &raw)?;
        if outcome.status == ItemStatus::Failed {
            failed.insert(outcome.item, Value::Null);
        }
    }
    Ok(failed)
}

/// `old`'s spec as job `id` over the `failed` items, labelled `retry_of`.
fn retry_spec(old: &JobState, id: &str, failed: BTreeMap<String, Value>) -> JobSpec {
    let mut spec = old.spec.clone();
    spec.id = Some(id.to_string());
    spec.source = SourceSpec::Items {
        items: failed
            .into_iter()
            .map(|(id, data)| InlineItem {
                id: ItemId::Text(id),
                data,
                priority: None,
            })
            .collect(),
    };
    spec.labels.insert("retry_of".into(), old.id.clone());
    spec
}

/// Fills in each failed item's data from its dead-lettered task; returns
/// how many were found there.
async fn fill_data_from_dlq(
    bus: &Bus,
    job: &str,
    failed: &mut BTreeMap<String, Value>,
) -> anyhow::Result<usize> {
    let stream = bus.js.get_stream(bus.names.dlq_stream()).await?;
    let consumer = stream
        .create_consumer(OrderedConfig {
            filter_subject: bus.names.dlq_subject(Stage::Migrate, job),
            deliver_policy: DeliverPolicy::All,
            ..Default::default()
        })
        .await
        .context("reading the DLQ")?;
    if consumer.cached_info().num_pending == 0 {
        return Ok(0);
    }
    let mut messages = consumer.messages().await.context("reading the DLQ")?;
    let mut found = 0;
    while let Some(msg) = messages.next().await {
        let msg = msg.context("reading the DLQ")?;
        if let Ok(task) = codec::decode::<TaskMessage>(msg.headers.as_ref(), &msg.payload) {
            if let Some(data) = failed.get_mut(&task.item.id) {
                if data.is_null() && !task.item.data.is_null() {
                    *data = task.item.data;
                    found += 1;
                }
            }
        }
        if msg.info().map(|i| i.pending).unwrap_or(0) == 0 {
            break;
        }
    }
    Ok(found)
}

/// `<job>-retry-<n>` for the first n with no job of that id.
async fn free_id(bus: &Bus, job: &str) -> anyhow::Result<String> {
    let mut n = 1;
    loop {
        let id = format!("{job}-retry-{n}");
        if bus
            .kv
            .jobs
            .get(&id)
            .await
            .context("reading job state")?
            .is_none()
        {
            return Ok(id);
        }
        n += 1;
    }
}
