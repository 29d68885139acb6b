//! A job's numbers as people read them on the page: the split progress
//! bar, rate, ETA and age — pure, so what a page shows is tested here.

use chrono::{DateTime, Utc};

use super::index::JobSummary;
use crate::render;

/// A job's row and header numbers.
#[derive(Debug, Clone, PartialEq)]
pub struct JobView {
    pub id: String,
    pub kind: String,
    pub status: &'static str,
    /// `key=value` per label.
    pub labels: Vec<String>,
    pub total: String,
    pub succeeded: u64,
    pub failed: u64,
    pub skipped: u64,
    pub not_run: u64,
    pub bar: Bar,
    pub rate: String,
    pub eta: String,
    pub age: String,
    pub created: String,
}

/// Widths (percent of the bar) of each part of a job's items.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Bar {
    pub succeeded: String,
    pub failed: String,
    pub skipped: String,
    pub not_run: String,
    /// Done, as `42.0%`.
    pub done: String,
}

impl JobView {
    /// The view of `job` at `now`.
    pub fn of(job: &JobSummary, now: DateTime<Utc>) -> Self {
        let done = job.succeeded + job.failed + job.skipped + job.duplicates;
        let rate = job.rate.filter(|r| r.is_finite() && *r > 0.0);
        let remaining = job.total.saturating_sub(done + job.not_run);
        let eta = match (job.status.is_terminal(), rate) {
            (true, _) => "-".to_string(),
            (false, Some(rate)) if job.fetch_done => {
                render::duration(std::time::Duration::from_secs_f64(remaining as f64 / rate))
            }
            _ => "…".to_string(),
        };
        let since = job.started_at.unwrap_or(job.created_at);
        let end = job.finished_at.unwrap_or(now);
        Self {
            id: job.id.clone(),
            kind: job.kind.clone(),
            status: job.status.as_str(),
            labels: job.labels.iter().map(|(k, v)| format!("{k}={v}")).collect(),
            total: if job.fetch_done {
                job.total.to_string()
            } else {
                format!("{}+", job.total)
            },
            succeeded: job.succeeded,
            failed: job.failed,
            skipped: job.skipped + job.duplicates,
            not_run: job.not_run,
            bar: Bar::of(job),
            rate: rate.map_or("-".into(), |r| format!("{r:.0}/s")),
            eta,
            age: ago(end, since),
            created: job.created_at.format("%Y-%m-%d %H:%M:%S").to_string(),
        }
    }
}

impl Bar {
    fn of(job: &JobSummary) -> Self {
        let skipped = job.skipped + job.duplicates;
        let done = job.succeeded + job.failed + skipped;
        let whole = job.total.max(done + job.not_run);
        let pct = |n: u64| {
            if whole == 0 {
                0.0
            } else {
                n as f64 * 100.0 / whole as f64
            }
        };
        let width = |n: u64| format!("{:.2}%", pct(n));
        let done_pct = if whole == 0 && job.status.is_terminal() {
            100.0
        } else {
            pct(done)
        };
        Self {
            succeeded: width(job.succeeded),
            failed: width(job.failed),
            skipped: width(skipped),
            not_run: width(job.not_run),
            done: format!("{done_pct:.1}%"),
        }
    }
}

/// How long from `from` to `to`, for people (`3m05s`).
pub fn ago(to: DateTime<Utc>, from: DateTime<Utc>) -> String {
    render::duration(std::time::Duration::from_millis(
        (to - from).num_milliseconds().max(0) as u64,
    ))
}

#[cfg(test)]
mod tests {
    use jetflow_protocol::job::JobStatus;

    use super::*;

    fn job(status: JobStatus, total: u64, ok: u64, failed: u64, not_run: u64) -> JobSummary {
        let now = Utc::now();
        JobSummary {
            id: "j".into(),
            status,
            total,
            fetch_done: true,
            succeeded: ok,
            failed,
            not_run,
            created_at: now - chrono::Duration::seconds(100),
            started_at: Some(now - chrono::Duration::seconds(10)),
            rate: Some(ok as f64 / 10.0),
            ..JobSummary::default()
        }
    }

    #[test]
    fn the_bar_splits_the_items_by_outcome() {
        let view = JobView::of(&job(JobStatus::Cancelled, 200, 100, 20, 60), Utc::now());
        assert_eq!(view.bar.succeeded, "50.00%");
        assert_eq!(view.bar.failed, "10.00%");
        assert_eq!(view.bar.not_run, "30.00%");
        assert_eq!(view.bar.done, "60.0%");
        assert_eq!(view.eta, "-");
    }

    #[test]
    fn eta_is_what_remains_at_the_rate() {
        // 100 done in 10 s: 10/s; 400 left: 40 s.
        let view = JobView::of(&job(JobStatus::Processing, 500, 100, 0, 0), Utc::now());
        assert_eq!(view.rate, "10/s");
        assert_eq!(view.eta, "40s");
        assert_eq!(view.age, "10s");
    }

    #[test]
    fn a_job_still_fetching_has_no_eta_and_an_open_total() {
        let mut summary = job(JobStatus::Fetching, 50, 10, 0, 0);
        summary.fetch_done = false;
        let view = JobView::of(&summary, Utc::now());
        assert_eq!((view.total.as_str(), view.eta.as_str()), ("50+", "…"));
    }

    #[test]
    fn an_empty_finished_job_is_all_done() {
        let view = JobView::of(&job(JobStatus::Completed, 0, 0, 0, 0), Utc::now());
        assert_eq!(view.bar.done, "100.0%");
        assert_eq!(view.rate, "-");
    }
}
