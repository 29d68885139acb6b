//! Job state for people.

use std::fmt::Write as _;

use jetflow_protocol::{
    job::{HandlerSpec, JobState},
    target::TargetLimits,
};

/// A multi-line summary: status, counts, progress, rate, ETA, the rate
/// limits its calls pass (`targets`: the limits of the targets it calls),
/// open batches, errors.
pub fn summary(state: &JobState, targets: &[TargetLimits]) -> String {
    let mut out = String::new();
    write_counts(&mut out, state);
    write_timing(&mut out, state);
    write_limits(&mut out, state, targets);
    write_results(&mut out, state);
    write_open_batches(&mut out, state);
    write_errors(&mut out, state);
    out
}

/// Id, status and reason, then the item, progress and batch counts.
fn write_counts(out: &mut String, state: &JobState) {
    let _ = writeln!(out, "job       {}  ({})", state.id, state.spec.kind);
    let _ = writeln!(out, "status    {}", state.status);
    if let Some(reason) = &state.reason {
        let _ = writeln!(out, "reason    {reason}");
    }
    if !state.spec.after.is_empty() {
        let after: Vec<String> = state
            .spec
            .after
            .iter()
            .map(|dep| {
                let on: Vec<&str> = dep.on.iter().map(|s| s.as_str()).collect();
                format!("{} ({})", dep.job, on.join(", "))
            })
            .collect();
        let _ = writeln!(out, "after     {}", after.join(", "));
    }
    if state.status == jetflow_protocol::job::JobStatus::Paused {
        let until = state
            .paused_until
            .map_or("until resumed".to_string(), |t| format!("until {t}"));
        let why = state.pause_reason.as_deref().unwrap_or("no reason given");
        let _ = writeln!(out, "paused    {until} ({why})");
    }
    let total = if state.fetch_done {
        state.total.to_string()
    } else {
        format!("{}+ (still fetching)", state.total)
    };
    let _ = write!(
        out,
        "items     {total} total, {} succeeded, {} failed, {} skipped",
        state.succeeded, state.failed, state.skipped
    );
    if state.duplicates > 0 {
        // Copies of items the source gave twice (overlapping pages).
        let _ = write!(out, ", {} duplicates", state.duplicates);
    }
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "progress  {:.1}%  retries {}  dead-lettered {}",
        state.progress * 100.0,
        state.retries,
        state.dead_lettered
    );
    let _ = writeln!(
        out,
        "batches   {} fetched, {} done, {} open; {} items waiting out a retry",
        state.batches,
        state.batches_done,
        state.open_batches.len(),
        state.parked()
    );
}

/// The rate (with an ETA while a fully fetched job runs) and, once ended,
/// how long it took.
fn write_timing(out: &mut String, state: &JobState) {
    if let Some(rate) = state.rate() {
        let _ = write!(out, "rate      {rate:.0} items/s");
        if !state.status.is_terminal() && state.fetch_done && rate > 0.0 {
            let left = state.total.saturating_sub(state.done()) as f64;
            let _ = write!(
                out,
                "  ETA {}",
                duration(std::time::Duration::from_secs_f64((left / rate).max(0.0)))
            );
        }
        let _ = writeln!(out);
    }
    if let (Some(start), Some(end)) = (state.started_at, state.finished_at) {
        let secs = (end - start).num_milliseconds() as f64 / 1000.0;
        let _ = writeln!(out, "took      {secs:.1}s");
    }
}

/// The job's own rate limits (the handler's, or each step's), then those
/// of the targets it calls, shared with every other job.
fn write_limits(out: &mut String, state: &JobState, targets: &[TargetLimits]) {
    let own: Vec<String> = match &state.spec.handler {
        HandlerSpec::Steps { steps } => steps
            .iter()
            .filter_map(|step| Some(format!("step {} {}", step.name, step.call.rate_limit()?)))
            .collect(),
        handler => handler
            .rate_limit()
            .map(|r| r.to_string())
            .into_iter()
            .collect(),
    };
    if !own.is_empty() {
        let _ = writeln!(out, "limit     {}", own.join(", "));
    }
    for limits in targets {
        let shared: Vec<String> = [
            limits.rate.map(|rate| rate.to_string()),
            limits.concurrency.map(|n| format!("concurrency {n}")),
        ]
        .into_iter()
        .flatten()
        .collect();
        if !shared.is_empty() {
            let _ = writeln!(
                out,
                "target    {} {} (shared by every job)",
                limits.target,
                shared.join(", ")
            );
        }
    }
}

/// The targets `state`'s job calls.
pub fn targets(state: &JobState) -> Vec<String> {
    match &state.spec.handler {
        HandlerSpec::Steps { steps } => {
            let mut targets: Vec<String> = steps.iter().map(|s| s.call.target()).collect();
            targets.dedup();
            targets
        }
        handler => handler.target().into_iter().collect(),
    }
}

/// The job's reductions: each answer, and what it left out.
fn write_results(out: &mut String, state: &JobState) {
    if state.results.is_empty() {
        return;
    }
    let _ = writeln!(out, "results:");
    for (name, reduced) in &state.results {
        let value = jetflow_protocol::text::quote(&reduced.value.to_string(), 200);
        let mut notes = vec![format!("{} values", reduced.values)];
        if reduced.skipped_values > 0 {
            notes.push(format!("{} skipped", reduced.skipped_values));
        }
        if reduced.other > 0 {
            notes.push(format!("{} other", reduced.other));
        }
        if let Some(error) = &reduced.error {
            notes.push(format!("gave up: {error}"));
        }
        let _ = writeln!(
            out,
            "  {name} ({}): {value}  [{}]",
            reduced.op.as_str(),
            notes.join(", ")
        );
    }
}

/// Up to ten open batches with how far each is.
fn write_open_batches(out: &mut String, state: &JobState) {
    for (batch, open) in state.open_batches.iter().take(10) {
        let _ = writeln!(
            out,
            "  batch {batch}: {}/{} done ({} failed, {} waiting out a retry)",
            open.done(),
            open.size,
            open.failed,
            open.parked_now()
        );
    }
}

/// The job's recent errors, one per item.
fn write_errors(out: &mut String, state: &JobState) {
    let groups = &state.error_groups;
    if !groups.is_empty() {
        let _ = writeln!(out, "errors:");
        for group in &groups.groups {
            let _ = writeln!(
                out,
                "  {:>7}  {}  (e.g. {})",
                group.count,
                jetflow_protocol::text::quote(&group.error, 100),
                group.items.join(", ")
            );
        }
        if groups.other > 0 {
            let _ = writeln!(out, "  {:>7}  other messages", groups.other);
        }
    }
    if !state.errors.is_empty() {
        let _ = writeln!(out, "recent errors:");
        for sample in &state.errors {
            let _ = writeln!(out, "  {}: {}", sample.item, sample.error);
        }
    }
}

/// One line for logs and non-terminal progress.
pub fn line(state: &JobState) -> String {
    format!(
        "{} {}: {}/{} done ({} ok, {} failed) {:.1}%",
        state.id,
        state.status,
        state.done(),
        state.total,
        state.succeeded,
        state.failed,
        state.progress * 100.0
    )
}

/// A duration for people: `42s`, `3m05s`, `2h10m`.
pub fn duration(d: std::time::Duration) -> String {
    let secs = d.as_secs_f64().round() as u64;
    match secs {
        0..=59 => format!("{secs}s"),
        60..=3599 => format!("{}m{:02}s", secs / 60, secs % 60),
        _ => format!("{}h{:02}m", secs / 3600, (secs % 3600) / 60),
    }
}

/// Left-aligned columns, two spaces apart; the first row is the header.
pub fn columns<const N: usize>(rows: &[[String; N]]) -> String {
    let mut widths = [0usize; N];
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for row in rows {
        let mut line = String::new();
        for (i, (cell, w)) in row.iter().zip(widths).enumerate() {
            if i + 1 == N {
                line.push_str(cell);
            } else {
                let _ = write!(line, "{cell:<w$}  ");
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}
