//! Sweeping strays: messages on a job's task or ledger subject for a job
//! that does not exist. No consumer filters such a subject, so without this
//! they would sit in the stream forever; instead they go to the DLQ with the
//! reason, and are deleted from where they were.
//!
//! Every migrate and reduce instance sweeps; two sweeping at once is
//! harmless (a dead letter's id is the stray's `<stream>:<seq>`, and deleting
//! twice deletes once).

use std::time::Duration;

use jetflow_protocol::{messages::dead_letter_msg_id, names, Stage};
use tokio_util::sync::CancellationToken;

use crate::{error::ResultExt, Bus, DeadLetter, Result};

/// How often to sweep.
pub const SWEEP_EVERY: Duration = Duration::from_secs(5);
/// Most strays moved per subject per sweep (the next sweep takes the rest).
const PER_SUBJECT: usize = 200;

/// Sweeps `stream`'s subjects matching `filter` (`<ns>.<kind>.*`, the
/// last token a job id) until `shutdown`, dead-lettering strays as `stage`.
pub async fn run(
    bus: Bus,
    stream: String,
    filter: String,
    stage: Stage,
    shutdown: CancellationToken,
) {
    let mut every = tokio::time::interval(SWEEP_EVERY);
    loop {
        tokio::select! {
            biased;
            _ = shutdown.cancelled() => return,
            _ = every.tick() => {}
        }
        if let Err(err) = sweep(&bus, &stream, &filter, stage).await {
            tracing::debug!(stream, error = %err, "sweep failed; next time");
        }
    }
}

/// One sweep; returns how many strays were moved.
pub async fn sweep(bus: &Bus, stream: &str, filter: &str, stage: Stage) -> Result<usize> {
    let handle = bus.js.get_stream(stream).await.ctx("opening stream")?;
    let info = handle
        .info_with_subjects(filter)
        .await
        .ctx("listing subjects")?;
    let subjects: Vec<String> = {
        use futures::StreamExt;
        let mut subjects = Vec::new();
        let mut info = info;
        while let Some(entry) = info.next().await {
            let (subject, _count) = entry.ctx("listing subjects")?;
            subjects.push(subject);
        }
        subjects
    };
    let mut moved = 0;
    for subject in subjects {
        let job = subject.rsplit('.').next().unwrap_or_default().to_string();
        if names::is_token(&job)
            && bus
                .kv
                .jobs
                .get(&job)
                .await
                .ctx("reading job state")?
                .is_some()
        {
            continue;
        }
        for _ in 0..PER_SUBJECT {
            let Ok(message) = handle.get_first_raw_message_by_subject(&subject, 0).await else {
                break;
            };
            let msg_id = dead_letter_msg_id(stream, message.sequence);
            bus.dead_letter(DeadLetter {
                stage,
                job: Some(&job),
                item: None,
                error: &format!("unknown job {job:?}"),
                attempts: 0,
                original_subject: &subject,
                original_headers: Some(&message.headers),
                payload: message.payload.clone(),
                msg_id: &msg_id,
            })
            .await?;
            let _ = handle.delete_message(message.sequence).await;
            moved += 1;
        }
    }
    Ok(moved)
}
