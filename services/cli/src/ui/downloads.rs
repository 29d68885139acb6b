//! A job's results as CSV or JSON Lines, streamed: the items bucket is
//! read as the browser takes the file, in chunks, so a million outcomes
//! need no more memory than one chunk. The same rows `jetflow results`
//! writes.

use std::{
    io::Write,
    sync::{Arc, Mutex},
};

use axum::{
    body::Body,
    extract::{Path, Query, State},
    http::header,
    response::{IntoResponse, Response},
};
use bytes::Bytes;
use jetflow_protocol::{
    codec,
    job::{ItemOutcome, ItemStatus},
};
use jetflow_runtime::nats::scan::KvScan;
use serde::Deserialize;
use tokio::sync::mpsc;

use super::{lookup, problem::Problem, App};
use crate::commands::results::{Format, Output};

/// A chunk is sent once this much is written.
const CHUNK: usize = 64 * 1024;

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct DownloadQuery {
    /// Only items that failed for good (`1`).
    failed: Option<String>,
}

pub async fn csv(
    state: State<App>,
    job: Path<String>,
    query: Query<DownloadQuery>,
) -> Result<Response, Problem> {
    download(state, job, query, Format::Csv).await
}

pub async fn json_lines(
    state: State<App>,
    job: Path<String>,
    query: Query<DownloadQuery>,
) -> Result<Response, Problem> {
    download(state, job, query, Format::Json).await
}

async fn download(
    State(app): State<App>,
    Path(job): Path<String>,
    Query(query): Query<DownloadQuery>,
    format: Format,
) -> Result<Response, Problem> {
    // A missing job is a 404 now, not an empty file.
    lookup::load(&app.bus, &job).await?;
    let failed_only = query
        .failed
        .as_deref()
        .is_some_and(|v| v == "1" || v == "true");
    let (send, receive) = mpsc::channel::<Result<Bytes, std::io::Error>>(4);
    let (extension, content_type) = match format {
        Format::Csv => ("csv", "text/csv; charset=utf-8"),
        Format::Json => ("jsonl", "application/x-ndjson"),
    };
    let filename = format!("{job}-results.{extension}");
    tokio::spawn(async move {
        if let Err(err) = write_all(&app, &job, format, failed_only, &send).await {
            tracing::warn!(job, error = %err, "results download stopped");
            let _ = send.send(Err(std::io::Error::other(err.to_string()))).await;
        }
    });
    let body = Body::from_stream(chunks(receive));
    Ok((
        [
            (header::CONTENT_TYPE, content_type.to_string()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{}\"", filename.replace('"', "")),
            ),
        ],
        body,
    )
        .into_response())
}

/// The receiver as a stream of chunks.
fn chunks(
    receive: mpsc::Receiver<Result<Bytes, std::io::Error>>,
) -> impl futures::Stream<Item = Result<Bytes, std::io::Error>> {
    futures::stream::unfold(receive, |mut receive| async move {
        receive.recv().await.map(|chunk| (chunk, receive))
    })
}

/// Where `Output` writes: a buffer the sender drains chunk by chunk.
#[derive(Clone, Default)]
struct Buffer(Arc<Mutex<Vec<u8>>>);

impl Write for Buffer {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.lock().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Buffer {
    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<u8>> {
        match self.0.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    /// What was written, if at least `min` bytes.
    fn take(&self, min: usize) -> Option<Bytes> {
        let mut buffer = self.lock();
        (buffer.len() >= min && !buffer.is_empty())
            .then(|| Bytes::from(std::mem::take(&mut *buffer)))
    }
}

async fn write_all(
    app: &App,
    job: &str,
    format: Format,
    failed_only: bool,
    send: &mpsc::Sender<Result<Bytes, std::io::Error>>,
) -> anyhow::Result<()> {
    let buffer = Buffer::default();
    let mut out = Output::new(format, buffer.clone())?;
    let mut scan = KvScan::start(&app.bus.js, &app.bus.kv.items, &format!("{job}.>")).await?;
    while let Some(change) = scan.next().await? {
        let Some(raw) = change.value else { continue };
        let Ok(outcome) = codec::decode_as::<ItemOutcome>(codec::Format::Json, &raw) else {
            tracing::warn!(key = change.key, "unreadable item outcome");
            continue;
        };
        if failed_only && outcome.status != ItemStatus::Failed {
            continue;
        }
        out.write(&outcome, &raw)?;
        if let Some(chunk) = buffer.take(CHUNK) {
            if send.send(Ok(chunk)).await.is_err() {
                // The browser went away: stop reading.
                return Ok(());
            }
        }
    }
    out.finish()?;
    if let Some(chunk) = buffer.take(0) {
        let _ = send.send(Ok(chunk)).await;
    }
    Ok(())
}
