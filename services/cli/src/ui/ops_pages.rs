//! The pages about the system rather than a job: workers (every instance
//! and what it is doing), dead letters (filtered, with headers and
//! payload) and health (the report `jetflow health` prints).

use std::time::Duration;

use anyhow::Context as _;
use axum::extract::{Query, State};
use chrono::Utc;
use futures::TryStreamExt;
use jetflow_protocol::{headers, Stage};
use jetflow_runtime::{process::micro, Bus};
use serde::Deserialize;

use super::{
    encode, job_href,
    problem::{html, PageResult, Problem},
    templates::{DlqForm, DlqPage, HealthPage, LetterRow, WorkerRow, WorkersPage},
    view, App,
};
use crate::commands::{
    dlq::letters::{self, DeadLetterView, Filter},
    health,
};

/// Dead letters listed on the DLQ page: the newest.
const LETTERS_SHOWN: usize = 200;

pub async fn workers(State(app): State<App>) -> PageResult {
    let reports = micro::gather(
        &app.bus.client,
        app.bus.names.namespace(),
        Duration::from_secs(1),
    )
    .await
    .context("asking the services")?;
    let now = Utc::now();
    let rows = reports
        .iter()
        .map(|r| WorkerRow {
            stage: r.stage.clone(),
            instance: r.instance.clone(),
            up: view::ago(now, r.started_at),
            jobs: r
                .jobs
                .iter()
                .map(|j| (j.job.clone(), job_href(&j.job)))
                .collect(),
            in_flight: r.in_flight_count,
            counters: r
                .counters
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join(" "),
            details: r
                .in_flight
                .iter()
                .map(|w| format!("{} {} for {}", w.job, w.what, view::ago(now, w.since)))
                .chain(
                    r.details["breakers"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter(|b| b["state"] != "closed")
                        .map(|b| format!("breaker {} {}", b["target"], b["state"])),
                )
                .collect(),
        })
        .collect();
    html(&WorkersPage {
        frame: app.frame("Workers", "workers"),
        rows,
    })
}

/// The DLQ page's query (and the replay and purge actions' selection).
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(default)]
pub struct LetterQuery {
    pub job: Option<String>,
    pub stage: Option<String>,
    pub error: Option<String>,
}

impl LetterQuery {
    /// The filter it asks for; the error names the parameter.
    pub fn filter(&self) -> Result<Filter, String> {
        let set = |v: &Option<String>| v.clone().filter(|v| !v.trim().is_empty());
        let stage = match set(&self.stage) {
            None => None,
            Some(name) => match Stage::ALL.into_iter().find(|s| s.as_str() == name) {
                Some(stage) => Some(stage),
                None => return Err(format!("stage {name:?}: not a stage")),
            },
        };
        if let Some(job) = set(&self.job) {
            jetflow_protocol::names::validate_job_id(&job).map_err(|why| format!("job: {why}"))?;
        }
        Ok(Filter {
            job: set(&self.job),
            stage,
            error: set(&self.error),
        })
    }

    /// `job=…&stage=…&error=…` of the set parameters.
    pub fn query_string(&self) -> String {
        [
            ("job", &self.job),
            ("stage", &self.stage),
            ("error", &self.error),
        ]
        .into_iter()
        .filter_map(|(name, v)| {
            v.as_ref()
                .filter(|v| !v.is_empty())
                .map(|v| format!("{name}={}", encode(v)))
        })
        .collect::<Vec<_>>()
        .join("&")
    }
}

/// What an action just did, shown on the page it comes back to.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct Flash {
    done: Option<String>,
}

pub async fn dead_letters(
    State(app): State<App>,
    Query(query): Query<LetterQuery>,
    Query(flash): Query<Flash>,
) -> PageResult {
    let set = |v: &Option<String>| v.clone().unwrap_or_default();
    let form = DlqForm {
        job: set(&query.job),
        stage: set(&query.stage),
        error: set(&query.error),
    };
    let chosen = form.stage.as_str();
    let mut stage_options = vec![("", "any stage", chosen.is_empty())];
    stage_options.extend(
        Stage::ALL
            .iter()
            .map(|s| (s.as_str(), s.as_str(), s.as_str() == chosen)),
    );
    let (letters, count, error) = match query.filter() {
        Ok(filter) => {
            let (letters, count) = letters_of(&app.bus, &filter, LETTERS_SHOWN).await?;
            (letters, count, None)
        }
        Err(why) => (Vec::new(), 0, Some(why)),
    };
    let selection = query.query_string();
    let mut frame = app.frame("Dead letters", "dlq");
    frame.flash = flash.done;
    html(&DlqPage {
        frame,
        form,
        stage_options,
        error,
        letters: letter_rows(&letters),
        letters_count: count,
        replay_href: format!("/dlq/actions/replay?{selection}"),
        purge_href: format!("/dlq/actions/purge?{selection}"),
    })
}

/// The newest `shown` dead letters `filter` selects, newest first, and
/// how many it selects. The stream's per-subject counts answer first, so
/// a job without dead letters costs one request, not a read.
pub async fn letters_of(
    bus: &Bus,
    filter: &Filter,
    shown: usize,
) -> Result<(Vec<DeadLetterView>, usize), Problem> {
    let stream = bus
        .js
        .get_stream(bus.names.dlq_stream())
        .await
        .context("opening the DLQ")?;
    let counts: Vec<(String, usize)> = stream
        .info_with_subjects(filter.subject(bus))
        .await
        .context("counting dead letters")?
        .try_collect()
        .await
        .context("counting dead letters")?;
    if counts.iter().all(|(_, n)| *n == 0) {
        return Ok((Vec::new(), 0));
    }
    let mut all = letters::read(bus, filter).await?;
    let count = all.len();
    all.reverse();
    all.truncate(shown);
    Ok((all, count))
}

/// The letters as table rows (payload and headers in each row's details).
pub fn letter_rows(letters: &[DeadLetterView]) -> Vec<LetterRow> {
    letters
        .iter()
        .map(|l| {
            let job = l.header(headers::JOB);
            let mut detail = l.detail();
            let mut all_headers = serde_json::Map::new();
            for (name, values) in l.headers.iter() {
                let values: Vec<&str> = values.iter().map(|v| v.as_str()).collect();
                all_headers.insert(name.to_string(), values.join(", ").into());
            }
            detail["headers"] = all_headers.into();
            LetterRow {
                seq: l.seq,
                time: l.time.clone(),
                stage: l.header(headers::STAGE),
                job_href: job_href(&job),
                job,
                item: l.header(headers::ITEM),
                attempts: l.header(headers::ATTEMPTS),
                error: jetflow_protocol::text::quote(&l.header(headers::ERROR), 200),
                detail: serde_json::to_string_pretty(&detail).unwrap_or_default(),
            }
        })
        .collect()
}

pub async fn health(State(app): State<App>) -> PageResult {
    let bus = &app.bus;
    let report = health::check(&bus.client, &bus.js, &bus.names).await?;
    html(&HealthPage {
        frame: app.frame("Health", "health"),
        healthy: report.healthy,
        problems: report.problems.clone(),
        report: health::table(&report),
    })
}
