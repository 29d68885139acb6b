//! The jobs page's list: which jobs a query selects, how many of each
//! status there are, and which page of them to draw — pure, over the
//! summaries the index keeps (never a bucket scan per request).
//!
//! The status chips count the jobs every other filter selects, so a chip
//! says how many jobs clicking it would show.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use jetflow_protocol::job::JobStatus;
use serde::Deserialize;

use super::index::JobSummary;

/// Jobs per page.
pub const PAGE_SIZE: usize = 50;

/// The jobs page's query string.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(default)]
pub struct Query {
    /// A status name, or `active` / `finished`.
    pub status: Option<String>,
    /// `KEY=VALUE`.
    pub label: Option<String>,
    /// The job's kind, exactly.
    pub kind: Option<String>,
    /// Created within this long: `1h`, `24h`, `7d`.
    pub since: Option<String>,
    /// Text the job id contains.
    pub q: Option<String>,
    /// From 1.
    pub page: Option<usize>,
}

/// What a query asks, checked.
#[derive(Debug, Clone, PartialEq)]
pub struct Selection {
    statuses: Option<Vec<JobStatus>>,
    label: Option<(String, String)>,
    kind: Option<String>,
    since: Option<DateTime<Utc>>,
    id_contains: Option<String>,
    page: usize,
}

/// One page of jobs.
#[derive(Debug, PartialEq)]
pub struct Listing<'a> {
    /// Jobs per status among those the other filters select, in lifecycle order.
    pub chips: Vec<(JobStatus, usize)>,
    /// Jobs the whole query selects.
    pub matching: usize,
    /// This page's jobs, newest first.
    pub rows: Vec<&'a JobSummary>,
    /// This page, from 1.
    pub page: usize,
    /// Pages in all (at least 1).
    pub pages: usize,
}

/// Every status, in the order of a job's life.
pub const STATUSES: [JobStatus; 10] = [
    JobStatus::Waiting,
    JobStatus::Pending,
    JobStatus::Fetching,
    JobStatus::Processing,
    JobStatus::Paused,
    JobStatus::Cancelling,
    JobStatus::Completed,
    JobStatus::Partial,
    JobStatus::Failed,
    JobStatus::Cancelled,
];

impl Query {
    /// Checks the query at `now`; the error names the parameter.
    pub fn select(&self, now: DateTime<Utc>) -> Result<Selection, String> {
        let statuses = match nonempty(&self.status) {
            None => None,
            Some("active") => Some(STATUSES.into_iter().filter(|s| s.is_active()).collect()),
            Some("finished") => Some(STATUSES.into_iter().filter(|s| s.is_terminal()).collect()),
            Some(name) => match STATUSES.into_iter().find(|s| s.as_str() == name) {
                Some(status) => Some(vec![status]),
                None => return Err(format!("status {name:?}: not a job status")),
            },
        };
        let label = match nonempty(&self.label) {
            None => None,
            Some(text) => match text.split_once('=') {
                Some((k, v)) if !k.is_empty() => Some((k.to_string(), v.to_string())),
                _ => return Err(format!("label {text:?}: expected KEY=VALUE")),
            },
        };
        let since = match nonempty(&self.since) {
            None => None,
            Some(text) => match humantime::parse_duration(text) {
                Ok(d) => chrono::Duration::from_std(d).ok().map(|d| now - d),
                Err(err) => return Err(format!("since {text:?}: {err}")),
            },
        };
        Ok(Selection {
            statuses,
            label,
            kind: nonempty(&self.kind).map(str::to_string),
            since,
            id_contains: nonempty(&self.q).map(str::to_string),
            page: self.page.unwrap_or(1).max(1),
        })
    }
}

fn nonempty(value: &Option<String>) -> Option<&str> {
    value.as_deref().map(str::trim).filter(|v| !v.is_empty())
}

impl Selection {
    /// Whether `job` passes every filter but the status one.
    fn others_pass(&self, job: &JobSummary) -> bool {
        self.label
            .as_ref()
            .is_none_or(|(k, v)| job.labels.get(k).is_some_and(|have| have == v))
            && self.kind.as_ref().is_none_or(|kind| &job.kind == kind)
            && self.since.is_none_or(|since| job.created_at >= since)
            && self
                .id_contains
                .as_ref()
                .is_none_or(|text| job.id.contains(text.as_str()))
    }

    fn status_passes(&self, job: &JobSummary) -> bool {
        self.statuses
            .as_ref()
            .is_none_or(|statuses| statuses.contains(&job.status))
    }
}

/// The page of `jobs` that `selection` asks for.
pub fn list<'a>(
    jobs: impl IntoIterator<Item = &'a JobSummary>,
    selection: &Selection,
) -> Listing<'a> {
    let mut per_status: BTreeMap<&'static str, usize> = BTreeMap::new();
    let mut matching: Vec<&JobSummary> = Vec::new();
    for job in jobs {
        if !selection.others_pass(job) {
            continue;
        }
        *per_status.entry(job.status.as_str()).or_default() += 1;
        if selection.status_passes(job) {
            matching.push(job);
        }
    }
    matching.sort_by(|a, b| {
        b.created_at
            .cmp(&a.created_at)
            .then_with(|| a.id.cmp(&b.id))
    });
    let pages = matching.len().div_ceil(PAGE_SIZE).max(1);
    let page = selection.page.min(pages);
    let rows = matching
        .iter()
        .skip((page - 1) * PAGE_SIZE)
        .take(PAGE_SIZE)
        .copied()
        .collect();
    Listing {
        chips: STATUSES
            .into_iter()
            .filter_map(|s| per_status.get(s.as_str()).map(|n| (s, *n)))
            .collect(),
        matching: matching.len(),
        rows,
        page,
        pages,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(id: &str, status: JobStatus, minutes_ago: i64, labels: &[(&str, &str)]) -> JobSummary {
        let now = Utc::now();
        JobSummary {
            id: id.into(),
            kind: if id.starts_with("m") {
                "migrate".into()
            } else {
                "export".into()
            },
            status,
            labels: labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            created_at: now - chrono::Duration::minutes(minutes_ago),
            ..JobSummary::default()
        }
    }

    fn query(pairs: &[(&str, &str)]) -> Selection {
        let mut q = Query::default();
        for (k, v) in pairs {
            let v = Some(v.to_string());
            match *k {
                "status" => q.status = v,
                "label" => q.label = v,
                "kind" => q.kind = v,
                "since" => q.since = v,
                "q" => q.q = v,
                "page" => q.page = v.and_then(|v| v.parse().ok()),
                _ => unreachable!(),
            }
        }
        q.select(Utc::now()).expect("a valid query")
    }

    fn ids<'a>(listing: &Listing<'a>) -> Vec<&'a str> {
        listing.rows.iter().map(|j| j.id.as_str()).collect()
    }

    #[test]
    fn newest_first_with_exact_chip_counts() {
        let jobs = [
            job("m1", JobStatus::Completed, 30, &[]),
            job("m2", JobStatus::Processing, 10, &[]),
            job("e1", JobStatus::Failed, 20, &[]),
            job("m3", JobStatus::Processing, 5, &[]),
        ];
        let listing = list(&jobs, &query(&[]));
        assert_eq!(ids(&listing), ["m3", "m2", "e1", "m1"]);
        assert_eq!(
            listing.chips,
            [
                (JobStatus::Processing, 2),
                (JobStatus::Completed, 1),
                (JobStatus::Failed, 1)
            ]
        );
        // A status filter narrows the rows, not the chips.
        let listing = list(&jobs, &query(&[("status", "processing")]));
        assert_eq!(ids(&listing), ["m3", "m2"]);
        assert_eq!(listing.chips.len(), 3);
        let listing = list(&jobs, &query(&[("status", "finished")]));
        assert_eq!(ids(&listing), ["e1", "m1"]);
    }

    #[test]
    fn label_kind_time_and_id_filters_narrow_the_chips_too() {
        let jobs = [
            job("m1", JobStatus::Completed, 30, &[("team", "a")]),
            job("m2", JobStatus::Failed, 10, &[("team", "b")]),
            job("e1", JobStatus::Failed, 2000, &[("team", "a")]),
        ];
        let listing = list(&jobs, &query(&[("label", "team=a")]));
        assert_eq!(ids(&listing), ["m1", "e1"]);
        assert_eq!(
            listing.chips,
            [(JobStatus::Completed, 1), (JobStatus::Failed, 1)]
        );
        assert_eq!(ids(&list(&jobs, &query(&[("kind", "export")]))), ["e1"]);
        assert_eq!(ids(&list(&jobs, &query(&[("since", "1h")]))), ["m2", "m1"]);
        assert_eq!(ids(&list(&jobs, &query(&[("q", "2")]))), ["m2"]);
    }

    #[test]
    fn pages_hold_page_size_jobs_and_no_cap_applies() {
        let jobs: Vec<JobSummary> = (0..PAGE_SIZE * 40 + 7)
            .map(|n| job(&format!("m{n:05}"), JobStatus::Completed, n as i64, &[]))
            .collect();
        let first = list(&jobs, &query(&[]));
        assert_eq!((first.matching, first.pages), (PAGE_SIZE * 40 + 7, 41));
        assert_eq!(first.rows.len(), PAGE_SIZE);
        assert_eq!(first.rows[0].id, "m00000");
        let last = list(&jobs, &query(&[("page", "41")]));
        assert_eq!(last.rows.len(), 7);
        assert_eq!(last.rows[6].id, format!("m{:05}", PAGE_SIZE * 40 + 6));
        // A page past the end shows the last.
        assert_eq!(list(&jobs, &query(&[("page", "99")])).page, 41);
    }

    #[test]
    fn a_bad_parameter_is_named() {
        let bad = |q: Query| q.select(Utc::now()).expect_err("rejected");
        assert!(bad(Query {
            status: Some("done".into()),
            ..Query::default()
        })
        .starts_with("status \"done\""));
        assert!(bad(Query {
            label: Some("team".into()),
            ..Query::default()
        })
        .starts_with("label"));
        assert!(bad(Query {
            since: Some("soon".into()),
            ..Query::default()
        })
        .starts_with("since"));
    }
}
