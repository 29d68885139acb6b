//! The largest message each stage accepts. Anything bigger is dead-lettered
//! with the reason rather than decoded: one bad publisher must not make a
//! stage spend its memory on a single message.

/// A job submission (inline `items` make these the largest).
pub const MAX_SUBMISSION_BYTES: usize = 4 << 20;
/// A page of items.
pub const MAX_BATCH_BYTES: usize = 4 << 20;
/// One item's task.
pub const MAX_TASK_BYTES: usize = 1 << 20;
/// One ledger entry.
pub const MAX_LEDGER_ENTRY_BYTES: usize = 1 << 20;
/// One value of a job's shared state, as JSON (`<ns>_state`): the
/// operations refuse to write a bigger one.
pub const MAX_STATE_VALUE_BYTES: usize = 64 << 10;

/// The reason for dead-lettering a payload of `len` bytes over `limit`, if it is.
pub fn oversized(len: usize, limit: usize) -> Option<String> {
    (len > limit).then(|| format!("oversized: {len} bytes, the limit is {limit}"))
}
