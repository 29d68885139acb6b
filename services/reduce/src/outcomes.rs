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
    job::{ItemOutcome, ItemStatus, PreviousOutcome},
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

/// Drops from each `duplicates` fact the items whose outcome was counted
/// for that same batch: their task was the batch's own (a batch instance
/// that outlived its `ack_wait` raced its own redelivery), not a copy the
/// source gave twice. An item with no outcome yet stays; if its result
/// later counts for the batch, the fold takes it back out
/// (`fold::count_new`).
pub async fn drop_own_items(bus: &Bus, job: &str, facts: &mut [Fact]) -> Result<()> {
    for fact in facts {
        let Some(LedgerEntry::Duplicates { batch, items, .. }) = &mut fact.entry else {
            continue;
        };
        let mut kept = Vec::with_capacity(items.len());
        for id in items.drain(..) {
            let key = Names::item_outcome_key(job, &id);
            let outcome = bus.kv.items.get(&key).await.ctx("reading item outcome")?;
            let own = match outcome {
                Some(raw) => {
                    let outcome: ItemOutcome = codec::decode_as(codec::Format::Json, &raw)?;
                    outcome.batch == *batch
                }
                None => false,
            };
            if !own {
                kept.push(id);
            }
        }
        *items = kept;
    }
    Ok(())
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
        return Ok(match (existing.replaced, existing.previous) {
            (Some(_), Some(from)) => Count::Correction { from },
            // Replaced by a version that kept only the status: nothing
            // of the earlier outcome to take out of the reductions.
            (Some(status), None) => Count::Correction {
                from: Box::new(PreviousOutcome {
                    status,
                    error: None,
                    output: serde_json::Value::Null,
                    failed_step: None,
                    attempts: 0,
                    duration_ms: 0,
                }),
            },
            (None, _) => Count::New,
        });
    }
    if !result.replay && existing.batch != result.batch {
        return Ok(Count::Duplicate);
    }
    let replaces = result.replay
        && existing.status == ItemStatus::Failed
        && (existing.result_seq, existing.result_index) < (seq, index);
    if !replaces {
        return Ok(Count::No);
    }
    let from = Box::new(existing.as_previous());
    outcome.replaced = Some(existing.status);
    outcome.previous = Some(from.clone());
    bus.kv
        .items
        .update(&key, codec::to_json(&outcome), entry.revision)
        .await
        .ctx("replacing item outcome")?;
    Ok(Count::Correction { from })
}
