//! Following a job to its end: a progress bar on a terminal, plain lines
//! when piped.

use std::{io::IsTerminal, time::Duration};

use anyhow::Context as _;
use indicatif::{ProgressBar, ProgressStyle};
use jetflow_shared::{codec, job::JobState, watch::KvWatch, Bus};

use crate::render;

/// Watches `job` until it ends and returns its final state.
pub async fn follow(bus: &Bus, job: &str) -> anyhow::Result<JobState> {
    let mut watch = KvWatch::new(&bus.js, &bus.kv.jobs, job);
    let mut display = Display::new();
    loop {
        let change = match tokio::time::timeout(Duration::from_secs(30), watch.next()).await {
            Ok(Ok(change)) => change,
            Ok(Err(err)) => {
                tracing::debug!(error = %err, "watch interrupted; resubscribing");
                continue;
            }
            Err(_) => {
                // Quiet for a while: re-read in case an update was missed.
                match bus.kv.jobs.get(job).await.context("reading job state")? {
                    Some(value) => {
                        let state: JobState = codec::decode_as(codec::Format::Json, &value)?;
                        display.show(&state);
                        if state.status.is_terminal() {
                            display.finish();
                            return Ok(state);
                        }
                    }
                    None => anyhow::bail!("job {job} not found"),
                }
                continue;
            }
        };
        let Some(value) = change.value else {
            anyhow::bail!("job {job} was removed");
        };
        let state: JobState = codec::decode_as(codec::Format::Json, &value)?;
        display.show(&state);
        if state.status.is_terminal() {
            display.finish();
            return Ok(state);
        }
    }
}

enum Display {
    Bar(ProgressBar),
    Lines { last: std::time::Instant },
}

impl Display {
    fn new() -> Self {
        if std::io::stderr().is_terminal() {
            let bar = ProgressBar::new(0);
            let style = ProgressStyle::with_template(
                "{spinner} [{elapsed_precise}] [{wide_bar}] {pos}/{len} ({per_sec}, ETA {eta}) {msg}",
            )
            .map(|s| s.progress_chars("=> "))
            .unwrap_or_else(|_| ProgressStyle::default_bar());
            bar.set_style(style);
            bar.enable_steady_tick(Duration::from_millis(200));
            Display::Bar(bar)
        } else {
            Display::Lines {
                last: std::time::Instant::now() - Duration::from_secs(60),
            }
        }
    }

    fn show(&mut self, state: &JobState) {
        match self {
            Display::Bar(bar) => {
                bar.set_length(state.total.max(1));
                bar.set_position(state.done());
                bar.set_message(format!(
                    "{} ok {} failed [{}]",
                    state.succeeded, state.failed, state.status
                ));
            }
            Display::Lines { last } => {
                if last.elapsed() >= Duration::from_secs(2) || state.status.is_terminal() {
                    eprintln!("{}", render::line(state));
                    *last = std::time::Instant::now();
                }
            }
        }
    }

    fn finish(&self) {
        if let Display::Bar(bar) = self {
            bar.finish();
        }
    }
}
