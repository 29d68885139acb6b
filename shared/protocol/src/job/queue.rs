//! Where a job's tasks wait, as events and job state announce it.

use serde::{Deserialize, Serialize};

use crate::Names;

/// Where a job's tasks wait: a durable pull consumer on the tasks stream.
/// For an `external` job, workers in any language pull from it, ack each
/// task once its result is on the job's ledger, and let the server
/// redeliver what they do not ack (docs/protocol.md).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct TaskQueue {
    /// The stream, `<NS>_TASKS`.
    pub stream: String,
    /// The durable consumer, `task_<job>`.
    pub consumer: String,
    /// The subject tasks are on, `<ns>.task.<job>`.
    pub subject: String,
    /// Where results go: the job's ledger, `<ns>.result.<job>`.
    pub results: String,
}

impl TaskQueue {
    /// The task queue of `job` under `names`.
    pub fn of(names: &Names, job: &str) -> Self {
        Self {
            stream: names.tasks_stream(),
            consumer: names.task_consumer(job),
            subject: names.task_subject(job),
            results: names.result_subject(job),
        }
    }
}
