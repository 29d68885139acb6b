//! A job's end, to be told somewhere its `notify` names: published by the
//! reducer as the job ends, delivered (and retried) by reduce's notifier.

use serde::{Deserialize, Serialize};

use super::events::JobEvent;
use crate::job::Notify;

/// One notification to deliver, on `<ns>.notify.<job>` (JSON).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Notification {
    /// Job id.
    pub job: String,
    /// Which of the job's `notify` entries it is (from 0).
    pub index: u32,
    /// Where it goes.
    pub target: Notify,
    /// What is sent: the job's final event (its status, tally, reason and
    /// reductions).
    pub event: JobEvent,
}

impl Notification {
    /// The de-duplication id: one per job, entry and status the job ended
    /// in (`<job>:notify:<index>:<status>`), so a reducer that folds the
    /// job's end again after a crash adds no second notification.
    pub fn msg_id(&self) -> String {
        format!(
            "{}:notify:{}:{}",
            self.job,
            self.index,
            self.event.event.as_str()
        )
    }
}
