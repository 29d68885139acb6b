//! Replaying dead-lettered tasks.
//!
//! For each job: wait until a finished job's cleanup is over (its task
//! consumer is gone), give it a task consumer again, record the replay on
//! its ledger (so the reducer waits for these items), publish the tasks
//! again marked as replays, reopen the job if it had ended, and only then
//! delete the dead letters. A replayed item whose outcome was a failure runs
//! again; its new outcome replaces the old one and the tally is corrected
//! (docs/exactly-once.md).

use std::{collections::BTreeMap, future::IntoFuture, time::Duration};

use anyhow::{bail, Context as _};
use async_nats::jetstream::{kv::Operation, message::PublishMessage};
use chrono::Utc;
use futures::future::try_join_all;
use jetflow_protocol::{
    codec, headers,
    job::{JobState, JobStatus},
    messages::{LedgerEntry, TaskMessage},
    Stage,
};
use jetflow_runtime::{nats::task_queue, Bus};

use super::letters::{self, DeadLetterView, Filter};
use crate::exit;

/// Replays the item tasks among the dead letters `filter` selects, job by
/// job (or says what it would replay); other dead letters are left alone.
pub async fn run(bus: &Bus, filter: &Filter, dry_run: bool) -> anyhow::Result<u8> {
    let letters = letters::read(bus, filter).await?;
    let mut by_job: BTreeMap<String, Vec<DeadLetterView>> = BTreeMap::new();
    let mut other = 0;
    for letter in letters {
        let is_task = letter.header(headers::STAGE) == Stage::Migrate.as_str()
            && letter.headers.get(headers::ITEM).is_some();
        if is_task {
            by_job
                .entry(letter.header(headers::JOB))
                .or_default()
                .push(letter);
        } else {
            other += 1;
        }
    }
    if other > 0 {
        eprintln!("{other} dead letters are not item tasks (bad input, unknown jobs) and are left as they are");
    }
    for (job, letters) in &by_job {
        if dry_run {
            println!("would replay {} items of job {job}", letters.len());
            continue;
        }
        replay_job(bus, job, letters).await?;
        println!("replayed {} items of job {job}", letters.len());
    }
    Ok(exit::OK)
}

/// Replays `letters`, the dead-lettered tasks of `job`, in the order the
/// module describes.
async fn replay_job(bus: &Bus, job: &str, letters: &[DeadLetterView]) -> anyhow::Result<()> {
    let (state, _) = read_state(bus, job).await?;
    if state.status.is_terminal() {
        wait_for_cleanup(bus, job).await?;
    }
    task_queue::ensure(bus, job, &state.spec).await?;
    record_replay(bus, job, letters).await?;
    republish(bus, job, letters).await?;
    reopen(bus, job).await?;
    delete_letters(bus, letters).await
}

/// Appends `replayed` with the letters' items to the job's ledger, once
/// however often the same replay is run.
async fn record_replay(bus: &Bus, job: &str, letters: &[DeadLetterView]) -> anyhow::Result<()> {
    let items: Vec<String> = letters.iter().map(|l| l.header(headers::ITEM)).collect();
    let first = letters.first().map(|l| l.seq).unwrap_or_default();
    let replayed = LedgerEntry::Replayed {
        items,
        at: Utc::now(),
    };
    bus.append_ledger(job, &replayed, &LedgerEntry::replayed_msg_id(job, first))
        .await?
        .await
        .context("recording the replay")?;
    Ok(())
}

/// Publishes each letter's task again on the job's task subject, marked as
/// a replay of it, and waits until all are stored.
async fn republish(bus: &Bus, job: &str, letters: &[DeadLetterView]) -> anyhow::Result<()> {
    let mut acks = Vec::with_capacity(letters.len());
    for letter in letters {
        let mut publish = PublishMessage::build()
            .payload(letter.payload.clone())
            .header(headers::REPLAY, letter.seq.to_string())
            .message_id(TaskMessage::replay_msg_id(
                &bus.names.dlq_stream(),
                letter.seq,
            ));
        if let Some(ct) = letter.headers.get(headers::CONTENT_TYPE) {
            publish = publish.header(headers::CONTENT_TYPE, ct.as_str());
        }
        let subject = letter.header(headers::ORIGINAL_SUBJECT);
        if subject != bus.names.task_subject(job) {
            bail!(
                "dead letter {} was not a task of job {job} (subject {subject})",
                letter.seq
            );
        }
        acks.push(
            bus.js
                .send_publish(subject, publish)
                .await
                .context("publishing a task")?,
        );
    }
    try_join_all(acks.into_iter().map(IntoFuture::into_future))
        .await
        .context("storing tasks")?;
    Ok(())
}

/// Deletes the replayed dead letters from the DLQ.
async fn delete_letters(bus: &Bus, letters: &[DeadLetterView]) -> anyhow::Result<()> {
    let stream = bus
        .js
        .get_stream(bus.names.dlq_stream())
        .await
        .context("opening the DLQ")?;
    for letter in letters {
        stream
            .delete_message(letter.seq)
            .await
            .with_context(|| format!("deleting dead letter {}", letter.seq))?;
    }
    Ok(())
}

async fn read_state(bus: &Bus, job: &str) -> anyhow::Result<(JobState, u64)> {
    match bus.kv.jobs.entry(job).await.context("reading job state")? {
        Some(entry) if entry.operation == Operation::Put => Ok((
            codec::decode_as(codec::Format::Json, &entry.value)?,
            entry.revision,
        )),
        _ => bail!("no job {job:?}: its dead letters cannot be replayed"),
    }
}

/// A job that just ended may still be cleaning up (purging its tasks); its
/// task consumer is removed last.
async fn wait_for_cleanup(bus: &Bus, job: &str) -> anyhow::Result<()> {
    for _ in 0..100 {
        if !task_queue::exists(bus, job).await? {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    bail!("job {job} is still cleaning up after it ended; try again")
}

/// Puts an ended job back to `processing`, so the reducer folds the replay.
async fn reopen(bus: &Bus, job: &str) -> anyhow::Result<()> {
    for _ in 0..20 {
        let (mut state, revision) = read_state(bus, job).await?;
        if !state.status.is_terminal() {
            return Ok(());
        }
        state.status = JobStatus::Processing;
        state.finished_at = None;
        state.reason = None;
        state.ends_as = None;
        state.updated_at = Utc::now();
        match bus
            .kv
            .jobs
            .update(job, codec::to_json(&state), revision)
            .await
        {
            Ok(_) => return Ok(()),
            // Written meanwhile: read again.
            Err(err) => tracing::debug!(job, error = %err, "reopening raced; retrying"),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    bail!("could not reopen job {job}: its state keeps changing")
}
