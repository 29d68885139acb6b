//! Item outcome records: created once, by the reducer, and tagged with the
//! stream sequence of the ledger entry that created them (and the result's
//! position in it, for an `items` entry).
//!
//! That tag is what lets a reducer that crashed between creating a record and
//! checkpointing recognise, on replay, that the record is its own (same
//! sequence and position: count it) rather than a duplicate result's (any
//! other: skip it).

use async_nats::jetstream::kv::{CreateErrorKind, Operation};
use futures::future::join_all;
use jetflow_protocol::{
    codec,
    job::{ItemOutcome, ItemStatus},
    messages::{ItemResult, LedgerEntry},
    names::Names,
};
use jetflow_runtime::{Bus, Result, ResultExt};

use crate::facts::{Count, Fact};

/// For each entry, how it counts: an item result counts exactly when this
/// entry created (or, for a replay, replaced) its item's outcome record —
/// now, or before a crash.
pub async fn record(bus: &Bus, job: &str, facts: &[Fact]) -> Result<Vec<Count>> {
    let checks = facts.iter().map(|fact| async move {
        match &fact.entry {
            Some(LedgerEntry::Item(result)) => {
                create_or_recognise(bus, job, (fact.seq, fact.index), result).await
            }
            _ => Ok(Count::No),
        }
    });
    join_all(checks).await.into_iter().collect()
}

async fn create_or_recognise(
    bus: &Bus,
    job: &str,
    (seq, index): (u64, u32),
    result: &ItemResult,
) -> Result<Count> {
    let key = Names::item_outcome_key(job, &result.id);
    let mut outcome = ItemOutcome::from_result(job, result, seq, index);
    match bus.kv.items.create(&key, codec::to_json(&outcome)).await {
        Ok(_) => return Ok(Count::New),
        Err(err) if err.kind() == CreateErrorKind::AlreadyExists => {}
        Err(err) => return Err(err).ctx("creating item outcome"),
    }
    let entry = bus.kv.items.entry(&key).await.ctx("reading item outcome")?;
    let Some(entry) = entry.filter(|e| e.operation == Operation::Put) else {
        // Deleted meanwhile (gc of a finished job): nothing to count.
        return Ok(Count::No);
    };
    let existing: ItemOutcome = codec::decode_as(codec::Format::Json, &entry.value)?;
    if (existing.result_seq, existing.result_index) == (seq, index) {
        // Ours, from before a crash.
        return Ok(match existing.replaced {
            Some(from) => Count::Correction { from },
            None => Count::New,
        });
    }
    let replaces = result.replay
        && existing.status == ItemStatus::Failed
        && (existing.result_seq, existing.result_index) < (seq, index);
    if !replaces {
        return Ok(Count::No);
    }
    outcome.replaced = Some(existing.status);
    bus.kv
        .items
        .update(&key, codec::to_json(&outcome), entry.revision)
        .await
        .ctx("replacing item outcome")?;
    Ok(Count::Correction {
        from: existing.status,
    })
}
