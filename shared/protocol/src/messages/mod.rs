//! Messages that flow between the stages. Batches, tasks and ledger entries
//! travel as MessagePack (volume); events as JSON (people read them).
//!
//! Each message that exactly-once rests on is published with a
//! de-duplication id (`Nats-Msg-Id`), made by a function beside its type
//! here and nowhere else: the ids are part of the contract (docs/protocol.md)
//! and of the argument in docs/exactly-once.md.

mod control;
mod dead_letter;
mod events;
mod handler;
mod ledger;
mod notify;
mod work;

pub use control::{CancelRequest, PauseRequest, ResumeRequest};
pub use dead_letter::dead_letter_msg_id;
pub use events::{EventKind, JobEvent};
pub use handler::{
    HandlerReply, HandlerRequest, PageReply, PageRequest, ReduceReply, ReduceRequest,
};
// Job state carries these too; they are defined there and named here as
// well, where the messages that carry them are.
pub use crate::job::{StepOutput, TaskQueue};
pub use ledger::{ItemResult, LedgerEntry};
pub use notify::Notification;
pub use work::{by_priority, BatchMessage, Item, StepResume, TaskMessage};
