//! Watching job state. Every stage learns which jobs exist, and in what
//! state, by watching the jobs bucket: no service-to-service calls.

use async_nats::jetstream::kv::{Operation, Store, Watch};
use futures::StreamExt;

use crate::{codec, job::JobState};

/// A change to a job.
#[derive(Debug)]
pub enum JobUpdate {
    /// The job's state was written.
    State(Box<JobState>),
    /// The job's state was removed (garbage collected).
    Removed(String),
}

/// A resilient watch over every job: re-subscribes after errors from where
/// it left off.
pub struct JobWatch {
    kv: Store,
    watch: Option<Watch>,
    last_revision: u64,
}

impl JobWatch {
    /// Watches `kv` (the jobs bucket), starting with the current state of every job.
    pub fn new(kv: Store) -> Self {
        Self {
            kv,
            watch: None,
            last_revision: 0,
        }
    }

    /// The next change. Never ends; errors are logged and the watch renewed.
    pub async fn next(&mut self) -> JobUpdate {
        loop {
            if self.watch.is_none() {
                let watch = if self.last_revision == 0 {
                    self.kv.watch_all().await
                } else {
                    self.kv
                        .watch_all_from_revision(self.last_revision + 1)
                        .await
                };
                match watch {
                    Ok(w) => self.watch = Some(w),
                    Err(err) => {
                        tracing::warn!(error = %err, "cannot watch jobs; retrying");
                        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                        continue;
                    }
                }
            }
            let Some(watch) = self.watch.as_mut() else {
                continue;
            };
            match watch.next().await {
                Some(Ok(entry)) => {
                    self.last_revision = entry.revision;
                    match entry.operation {
                        Operation::Delete | Operation::Purge => {
                            return JobUpdate::Removed(entry.key)
                        }
                        Operation::Put => {
                            match codec::decode_as::<JobState>(codec::Format::Json, &entry.value) {
                                Ok(state) => return JobUpdate::State(Box::new(state)),
                                Err(err) => {
                                    tracing::warn!(key = %entry.key, error = %err, "unreadable job state")
                                }
                            }
                        }
                    }
                }
                Some(Err(err)) => {
                    tracing::warn!(error = %err, "job watch interrupted; resubscribing");
                    self.watch = None;
                }
                None => self.watch = None,
            }
        }
    }
}
