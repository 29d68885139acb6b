//! Facts: what the reducer folds, and how each one counts.
//!
//! A fact is one thing the ledger says happened: a ledger entry, or one
//! result of an `items` entry (migrate stores results in groups, but each
//! item counts on its own). A fact is named by where it came from — the
//! stream sequence of its ledger message and its position in that message —
//! because that name is what an item outcome record is tagged with, and so
//! what tells a result that created its record from a duplicate
//! (docs/exactly-once.md).
//!
//! [`outcomes`](crate::outcomes) decides each fact's [`Count`] from the
//! outcome records; [`fold`](crate::fold) folds facts and counts into the
//! job's state. Both depend on this module, neither on the other.

use jetflow_protocol::{job::PreviousOutcome, messages::LedgerEntry};

/// One fact to fold: a ledger entry, or one result of an `items` entry.
#[derive(Debug)]
pub struct Fact {
    /// Stream sequence of the ledger message it came in.
    pub seq: u64,
    /// Its position in that message (0 but for the results of an `items` entry).
    pub index: u32,
    /// `None` for a message that could not be read.
    pub entry: Option<LedgerEntry>,
}

/// How a ledger entry counts toward the tally.
#[derive(Debug, Clone, PartialEq)]
pub enum Count {
    /// Not at all: not an item result, or a duplicate.
    No,
    /// The item's first outcome.
    New,
    /// A replay's outcome replacing an earlier one, `from`: its counts
    /// and what the reductions folded of it are taken back.
    Correction {
        /// The replaced outcome.
        from: Box<PreviousOutcome>,
    },
    /// A result for an item whose outcome was counted for another batch:
    /// the source gave it twice, and this copy ran too (its task came
    /// after the task stream's de-duplication window). It counts as a
    /// duplicate of its own batch.
    Duplicate,
}

/// The facts in decoded ledger messages, in order: an `items` entry
/// becomes one `item` fact per result, each counted on its own.
pub fn flatten(entries: Vec<(u64, Option<LedgerEntry>)>) -> Vec<Fact> {
    let mut facts = Vec::with_capacity(entries.len());
    for (seq, entry) in entries {
        match entry {
            Some(LedgerEntry::Items { results }) => {
                facts.extend(results.into_iter().enumerate().map(|(index, result)| Fact {
                    seq,
                    index: u32::try_from(index).unwrap_or(u32::MAX),
                    entry: Some(LedgerEntry::Item(result)),
                }));
            }
            entry => facts.push(Fact {
                seq,
                index: 0,
                entry,
            }),
        }
    }
    facts
}
