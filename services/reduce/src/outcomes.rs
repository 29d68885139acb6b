//! Item outcome records: created once, by the reducer, and tagged with the
//! stream sequence of the ledger entry that created them.
//!
//! That tag is what lets a reducer that crashed between creating a record and
//! checkpointing recognise, on replay, that the record is its own (same
//! sequence: count it) rather than a duplicate result's (other sequence:
//! skip it).

use async_nats::jetstream::kv::{CreateErrorKind, Operation};
use futures::future::join_all;
use jetflow_shared::{
    codec,
    job::ItemOutcome,
    messages::{ItemResult, LedgerEntry},
    names::Names,
    Bus, Result, ResultExt,
};

/// For each entry, whether it counts: true exactly for item results whose
/// outcome record this entry created (now or before a crash).
pub async fn record(
    bus: &Bus,
    job: &str,
    entries: &[(u64, Option<LedgerEntry>)],
) -> Result<Vec<bool>> {
    let checks = entries.iter().map(|(seq, entry)| async move {
        match entry {
            Some(LedgerEntry::Item(result)) => create_or_recognise(bus, job, *seq, result).await,
            _ => Ok(false),
        }
    });
    join_all(checks).await.into_iter().collect()
}

async fn create_or_recognise(bus: &Bus, job: &str, seq: u64, result: &ItemResult) -> Result<bool> {
    let key = Names::item_outcome_key(job, &result.id);
    let outcome = ItemOutcome {
        job: job.to_string(),
        item: result.id.clone(),
        batch: result.batch,
        status: result.status,
        error: result.error.clone(),
        output: result.output.clone(),
        attempts: result.attempts,
        duration_ms: result.duration_ms,
        finished_at: result.finished_at,
        result_seq: seq,
    };
    match bus.kv.items.create(&key, codec::to_json(&outcome)).await {
        Ok(_) => Ok(true),
        Err(err) if err.kind() == CreateErrorKind::AlreadyExists => {
            let entry = bus.kv.items.entry(&key).await.ctx("reading item outcome")?;
            match entry {
                Some(entry) if entry.operation == Operation::Put => {
                    let existing: ItemOutcome =
                        codec::decode_as(codec::Format::Json, &entry.value)?;
                    Ok(existing.result_seq == seq)
                }
                // Deleted meanwhile (gc of a finished job): nothing to count.
                _ => Ok(false),
            }
        }
        Err(err) => Err(err).ctx("creating item outcome"),
    }
}
