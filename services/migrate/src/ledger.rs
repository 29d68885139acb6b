//! Item results onto the job's ledger, grouped.
//!
//! Every item's result must be stored before its task is acked
//! (docs/design.md, invariant 2), but storing each one as its own ledger
//! message made a stored write, a delivery and a decode per item on the
//! ledger alone. Instead each job has one writer: items hand it their
//! results and wait; it stores, as one `items` entry, whatever has gathered
//! while its previous groups were being stored, then tells each item that
//! its result is durable. When the job is quiet a group is one result and
//! costs no extra wait; when it is busy groups grow by themselves — group
//! commit, with no timer to tune.
//!
//! A group carries no de-duplication id. A result stored twice (a task
//! redelivered after a crash between store and ack) is told apart by the
//! reducer, which counts only the result that created the item's outcome
//! record.

use std::borrow::Borrow;

use bytes::Bytes;
use futures::{stream::FuturesUnordered, StreamExt};
use jetflow_protocol::{codec, messages::ItemResult};
use jetflow_runtime::{process::trace, Bus, Error, ErrorKind, Result, ResultExt};
use tokio::sync::{mpsc, oneshot};

/// Most results in one group.
const MAX_GROUP: usize = 256;
/// Groups stored at once; what arrives meanwhile forms the next ones.
const MAX_IN_FLIGHT: usize = 2;
/// A group encoding to more than this is split in two (outputs can be
/// large); well under the ledger's per-entry limit.
const MAX_GROUP_BYTES: usize = 256 << 10;

struct Pending {
    result: ItemResult,
    stored: oneshot::Sender<Result<()>>,
}

impl Borrow<ItemResult> for Pending {
    fn borrow(&self) -> &ItemResult {
        &self.result
    }
}

/// The handle items store their results through. Cloning shares the writer;
/// the writer stops once every handle is dropped and its last group stored.
#[derive(Clone)]
pub(crate) struct LedgerWriter {
    tx: mpsc::Sender<Pending>,
}

impl LedgerWriter {
    /// Starts `job`'s writer; its groups carry the job's trace context
    /// `job_trace` (a group holds many items' results, so no one item's).
    pub(crate) fn start(bus: Bus, job: String, job_trace: trace::TraceContext) -> Self {
        let (tx, rx) = mpsc::channel(MAX_GROUP * MAX_IN_FLIGHT);
        tokio::spawn(trace::carrying(job_trace, write_groups(bus, job, rx)));
        Self { tx }
    }

    /// Stores `result` on the ledger; returns once the stream has it.
    pub(crate) async fn store(&self, result: ItemResult) -> Result<()> {
        let (stored, done) = oneshot::channel();
        let gone = || {
            Error::nats(
                "storing item result",
                ErrorKind::Transient,
                "the job's ledger writer stopped",
            )
        };
        self.tx
            .send(Pending { result, stored })
            .await
            .map_err(|_| gone())?;
        done.await.map_err(|_| gone())?
    }
}

async fn write_groups(bus: Bus, job: String, mut rx: mpsc::Receiver<Pending>) {
    let mut in_flight = FuturesUnordered::new();
    let mut open = true;
    while open || !in_flight.is_empty() {
        tokio::select! {
            Some(()) = in_flight.next(), if !in_flight.is_empty() => {}
            first = rx.recv(), if open && in_flight.len() < MAX_IN_FLIGHT => {
                let Some(first) = first else {
                    open = false;
                    continue;
                };
                let mut group = vec![first];
                while group.len() < MAX_GROUP {
                    match rx.try_recv() {
                        Ok(next) => group.push(next),
                        Err(_) => break,
                    }
                }
                in_flight.push(store_group(&bus, &job, group));
            }
        }
    }
}

/// An `items` ledger entry, encoded from borrowed results so that a group
/// that turns out too large can be split without copying it.
#[derive(serde::Serialize)]
#[serde(tag = "type", rename = "items")]
struct ItemsEntry<'a> {
    results: Vec<&'a ItemResult>,
}

/// Stores one group (in parts, if it encodes too large) and answers its items.
async fn store_group(bus: &Bus, job: &str, group: Vec<Pending>) {
    for (payload, part) in encode_parts(group, MAX_GROUP_BYTES) {
        let outcome = store(bus, job, payload).await;
        for pending in part {
            // An item that gave up waiting (shutdown) no longer listens.
            let _ = pending.stored.send(match &outcome {
                Ok(()) => Ok(()),
                Err(err) => Err(Error::nats(
                    "storing item result",
                    err.kind(),
                    err.to_string(),
                )),
            });
        }
    }
}

/// `group` as `items` entries of at most `max_bytes` each (a single result
/// may exceed it alone), halving a part until it fits; in order.
fn encode_parts<T: Borrow<ItemResult>>(group: Vec<T>, max_bytes: usize) -> Vec<(Bytes, Vec<T>)> {
    let mut encoded = Vec::new();
    let mut parts = vec![group];
    while let Some(mut part) = parts.pop() {
        let payload = codec::to_msgpack(&ItemsEntry {
            results: part.iter().map(Borrow::borrow).collect(),
        });
        if payload.len() > max_bytes && part.len() > 1 {
            let second = part.split_off(part.len() / 2);
            parts.push(second);
            parts.push(part);
        } else {
            encoded.push((payload, part));
        }
    }
    encoded
}

async fn store(bus: &Bus, job: &str, payload: Bytes) -> Result<()> {
    bus.append_encoded_ledger(job, payload, None)
        .await?
        .await
        .ctx("storing item results")?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use jetflow_protocol::{job::ItemStatus, messages::LedgerEntry};

    use super::*;

    fn result(id: &str) -> ItemResult {
        ItemResult {
            batch: 3,
            id: id.into(),
            status: ItemStatus::Succeeded,
            error: None,
            output: serde_json::json!({"ok": id}),
            input: serde_json::Value::Null,
            failed_step: None,
            messages: Vec::new(),
            attempts: 1,
            dead_lettered: false,
            replay: false,
            parked: false,
            duration_ms: 2,
            finished_at: chrono::Utc::now(),
        }
    }

    #[test]
    fn a_group_reads_back_as_an_items_entry() {
        let (a, b) = (result("a"), result("b"));
        let payload = codec::to_msgpack(&ItemsEntry {
            results: vec![&a, &b],
        });
        let entry: LedgerEntry = codec::decode(None, &payload).unwrap();
        assert_eq!(
            entry,
            LedgerEntry::Items {
                results: vec![a, b]
            }
        );
    }

    #[test]
    fn a_group_too_large_is_stored_in_parts_that_fit_in_order() {
        let big = |id: &str| ItemResult {
            output: serde_json::json!("x".repeat(1000)),
            input: serde_json::Value::Null,
            ..result(id)
        };
        let group: Vec<ItemResult> = (0..10).map(|i| big(&format!("item-{i}"))).collect();
        let parts = encode_parts(group.clone(), 3000);
        assert!(
            parts.len() >= 4,
            "10 results of ~1 KB in parts of 3 KB: {}",
            parts.len()
        );
        let mut stored = Vec::new();
        for (payload, part) in parts {
            assert!(payload.len() <= 3000, "a part of {} bytes", payload.len());
            let entry: LedgerEntry = codec::decode(None, &payload).unwrap();
            assert_eq!(
                entry,
                LedgerEntry::Items {
                    results: part.clone()
                }
            );
            stored.extend(part);
        }
        assert_eq!(stored, group, "every result once, in order");

        // One result larger than the limit still goes, alone.
        let huge = ItemResult {
            output: serde_json::json!("y".repeat(5000)),
            input: serde_json::Value::Null,
            ..result("huge")
        };
        let parts = encode_parts(vec![result("a"), huge.clone()], 3000);
        let ids: Vec<Vec<String>> = parts
            .iter()
            .map(|(_, part)| part.iter().map(|r| r.id.clone()).collect())
            .collect();
        assert_eq!(ids, [vec!["a".to_string()], vec!["huge".to_string()]]);
    }
}
