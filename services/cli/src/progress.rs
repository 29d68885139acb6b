//! Following a job to its end: a progress bar on a terminal, plain lines
//! when piped.

use std::{collections::BTreeMap, io::IsTerminal, time::Duration};

use anyhow::Context as _;
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use jetflow_protocol::{codec, job::JobState};
use jetflow_runtime::{nats::watch::KvWatch, Bus};

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

/// At most this many active batches get a bar of their own.
const BATCH_BARS: usize = 8;

/// Where progress goes: bars on a terminal, lines otherwise.
pub(crate) enum Display {
    Bars(Bars),
    Lines { last: std::time::Instant },
}

/// A bar for the job and one for each of its first open batches.
pub(crate) struct Bars {
    multi: MultiProgress,
    job: ProgressBar,
    batches: BTreeMap<u64, ProgressBar>,
}

impl Display {
    fn new() -> Self {
        if std::io::stderr().is_terminal() {
            Display::Bars(Bars::new(ProgressDrawTarget::stderr()))
        } else {
            Display::Lines {
                last: std::time::Instant::now() - Duration::from_secs(60),
            }
        }
    }

    fn show(&mut self, state: &JobState) {
        match self {
            Display::Bars(bars) => bars.show(state),
            Display::Lines { last } => {
                if last.elapsed() >= Duration::from_secs(2) || state.status.is_terminal() {
                    eprintln!("{}", render::line(state));
                    *last = std::time::Instant::now();
                }
            }
        }
    }

    fn finish(&mut self) {
        if let Display::Bars(bars) = self {
            bars.finish();
        }
    }
}

impl Bars {
    pub(crate) fn new(target: ProgressDrawTarget) -> Self {
        let multi = MultiProgress::with_draw_target(target);
        let job = multi.add(ProgressBar::new(0));
        job.set_style(style(
            "{spinner} [{elapsed_precise}] [{wide_bar}] {pos}/{len} {percent}% (ETA {eta}) {msg}",
        ));
        job.enable_steady_tick(Duration::from_millis(200));
        Self {
            multi,
            job,
            batches: BTreeMap::new(),
        }
    }

    pub(crate) fn show(&mut self, state: &JobState) {
        self.job.set_length(state.total.max(1));
        self.job.set_position(state.done());
        self.job.set_message(format!(
            "{} ok {} failed [{}]",
            state.succeeded, state.failed, state.status
        ));
        // Batches that closed lose their bar; the first open ones get one.
        self.batches.retain(|number, bar| {
            let open = state.open_batches.contains_key(number);
            if !open {
                bar.finish_and_clear();
            }
            open
        });
        for (number, open) in state.open_batches.iter().take(BATCH_BARS) {
            let bar = self.batches.entry(*number).or_insert_with(|| {
                let bar = self.multi.add(ProgressBar::new(0));
                bar.set_style(style("  batch {prefix:>5} [{bar:30}] {pos}/{len} {msg}"));
                bar.set_prefix(number.to_string());
                bar
            });
            bar.set_length(open.size.max(1));
            bar.set_position(open.done());
            bar.set_message(if open.failed > 0 {
                format!("{} failed", open.failed)
            } else {
                String::new()
            });
        }
    }

    pub(crate) fn finish(&mut self) {
        for (_, bar) in std::mem::take(&mut self.batches) {
            bar.finish_and_clear();
        }
        self.job.finish();
        // The bar's line is left as it is: what is printed next starts below.
        eprintln!();
    }
}

fn style(template: &str) -> ProgressStyle {
    ProgressStyle::with_template(template)
        .map(|s| s.progress_chars("=> "))
        .unwrap_or_else(|_| ProgressStyle::default_bar())
}
