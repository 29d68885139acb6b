//! A job's page: its live tally, errors and reductions ([`render_live`],
//! re-sent by the live stream), the batch grid (its data fetched apart, so
//! the page stays small whatever the batch count), what is in flight now,
//! the timeline, dead letters, an item's outcome and the spec.

use std::time::Duration;

use anyhow::Context as _;
use askama::Template;
use async_nats::jetstream::consumer::{pull::OrderedConfig, DeliverPolicy};
use axum::{
    extract::{Path, Query, State},
    response::{Html, IntoResponse, Json},
};
use chrono::Utc;
use futures::StreamExt;
use jetflow_protocol::{
    codec,
    job::{BatchRecord, BatchStatus, ConfigChange, JobState},
    messages::{EventKind, JobEvent},
    names::Names,
};
use jetflow_runtime::{process::micro, Bus};
use serde::Deserialize;
use serde_json::json;

use super::{
    actions, encode,
    index::JobSummary,
    job_href,
    lookup::load,
    ops_pages::{letter_rows, letters_of},
    problem::{html, PageResult, Problem},
    templates::{ErrorRow, EventRow, InFlight, InFlightRow, JobLive, JobPage, Trace},
    view::{self, JobView},
    App,
};
use crate::{commands::config, commands::dlq::letters::Filter};

/// Dead letters listed on a job's page (the DLQ page has them all).
const LETTERS_SHOWN: usize = 20;
/// Events in the timeline: the newest.
const EVENTS_SHOWN: usize = 200;
/// How long the services get to say what they have in flight.
const STATS_WINDOW: Duration = Duration::from_millis(400);

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct PageQuery {
    /// An item whose outcome to show.
    item: Option<String>,
    /// What an action just did.
    done: Option<String>,
}

pub async fn page(
    State(app): State<App>,
    Path(job): Path<String>,
    Query(query): Query<PageQuery>,
) -> PageResult {
    let state = load(&app.bus, &job).await?;
    let now = Utc::now();
    let view = JobView::of(&JobSummary::of(&state, 0), now);
    let item = query
        .item
        .as_deref()
        .map(str::trim)
        .filter(|i| !i.is_empty());
    let item_outcome = match item {
        Some(item) => Some(outcome(&app.bus, &job, item).await?),
        None => None,
    };
    let filter = Filter {
        job: Some(job.clone()),
        stage: None,
        error: None,
    };
    let (letters, letters_count) = letters_of(&app.bus, &filter, LETTERS_SHOWN).await?;
    let mut frame = app.frame(format!("{job} · {}", state.status), "jobs");
    frame.flash = query.done;
    let href = job_href(&job);
    html(&JobPage {
        frame,
        trace: trace(&app, &state),
        live_url: format!("/live{href}"),
        live: render_live(&state, now, app.options.allow_actions)?,
        batches: state.batches,
        batches_url: format!("{href}/batches.json"),
        active: !state.status.is_terminal(),
        inflight_url: format!("{href}/inflight"),
        self_url: href.clone(),
        item_query: item.unwrap_or_default().to_string(),
        item_outcome,
        results_url: format!("{href}/results"),
        events: timeline(&app.bus, &job).await?,
        letters: letter_rows(&letters),
        letters_count,
        dlq_url: format!("/dlq?job={}", encode(&job)),
        spec: serde_json::to_string_pretty(&state.spec).unwrap_or_default(),
        job: view,
    })
}

/// The part of the page that follows the job: status, the actions that
/// apply to it now, tally, progress, errors by message, reductions.
pub fn render_live(
    state: &JobState,
    now: chrono::DateTime<Utc>,
    allow_actions: bool,
) -> Result<String, Problem> {
    let view = JobView::of(&JobSummary::of(state, 0), now);
    let href = job_href(&state.id);
    let groups = state
        .error_groups
        .groups
        .iter()
        .map(|group| ErrorRow {
            count: group.count,
            error: group.error.clone(),
            example: group.example.clone(),
            items: group
                .items
                .iter()
                .map(|item| (item.clone(), format!("{href}?item={}", encode(item))))
                .collect(),
        })
        .collect();
    let live = ConfigChange::current(&state.spec);
    let names = [
        "concurrency",
        "max_retries",
        "handler_timeout",
        "rate_limit",
    ];
    let settings = names
        .into_iter()
        .zip(config::values(&live))
        .filter(|(_, value)| value != "-")
        .collect();
    let paused = (state.status == jetflow_protocol::job::JobStatus::Paused).then(|| {
        let until = state
            .paused_until
            .map_or("until resumed".to_string(), |t| format!("until {t}"));
        match &state.pause_reason {
            Some(why) => format!("{until}: {why}"),
            None => until,
        }
    });
    let live = JobLive {
        job: view,
        job_actions: if allow_actions {
            actions::for_job(state)
        } else {
            Vec::new()
        },
        reason: state.reason.clone(),
        paused,
        retries: state.retries,
        parked: state.parked(),
        dead_lettered: state.dead_lettered,
        batches: state.batches,
        batches_done: state.batches_done,
        settings,
        groups,
        other: state.error_groups.other,
        error_total: state.error_groups.total(),
        results: state
            .results
            .iter()
            .map(|(name, value)| {
                let text = serde_json::to_string_pretty(value).unwrap_or_default();
                (name.clone(), text)
            })
            .collect(),
    };
    Ok(live.render()?)
}

/// Every batch of the job as `[number, size, succeeded, failed, status]`,
/// status one letter (`p`ending, `r`unning, `c`ompleted, `x` with
/// failures): about 20 bytes a batch, drawn on one canvas.
pub async fn batches(
    State(app): State<App>,
    Path(job): Path<String>,
) -> Result<impl IntoResponse, Problem> {
    let state = load(&app.bus, &job).await?;
    let mut rows: std::collections::BTreeMap<u64, [serde_json::Value; 5]> = Default::default();
    let mut scan = jetflow_runtime::nats::scan::KvScan::start(
        &app.bus.js,
        &app.bus.kv.batches,
        &format!("{job}.>"),
    )
    .await
    .context("reading batch records")?;
    while let Some(change) = scan.next().await.context("reading batch records")? {
        let Some(raw) = change.value else { continue };
        let Ok(record) = codec::decode_as::<BatchRecord>(codec::Format::Json, &raw) else {
            continue;
        };
        let status = match record.status {
            BatchStatus::Pending => "p",
            BatchStatus::Processing => "r",
            BatchStatus::Completed => "c",
            BatchStatus::Partial => "x",
        };
        rows.insert(
            record.batch,
            [
                record.batch.into(),
                record.size.into(),
                record.succeeded.into(),
                record.failed.into(),
                status.into(),
            ],
        );
    }
    // The job state is fresher than a record for the batches still open.
    for (number, open) in &state.open_batches {
        let status = if open.dispatched_at.is_some() {
            "r"
        } else {
            "p"
        };
        rows.insert(
            *number,
            [
                (*number).into(),
                open.size.into(),
                open.succeeded.into(),
                open.failed.into(),
                status.into(),
            ],
        );
    }
    let batches: Vec<_> = rows.into_values().collect();
    Ok(Json(json!({ "job": job, "batches": batches })))
}

/// What the services have of this job in hand now, for how long.
pub async fn in_flight(State(app): State<App>, Path(job): Path<String>) -> PageResult {
    let reports = micro::gather(&app.bus.client, app.bus.names.namespace(), STATS_WINDOW)
        .await
        .context("asking the services")?;
    let now = Utc::now();
    let mut rows = Vec::new();
    let mut listed = 0;
    let mut counted = 0;
    for report in &reports {
        let mine: Vec<_> = report.in_flight.iter().filter(|w| w.job == job).collect();
        listed += mine.len();
        // A report lists at most a few of its works; its count is exact
        // but over all jobs, so only an instance on this job alone adds it.
        let only_this_job = report.jobs.iter().all(|j| j.job == job);
        counted += if only_this_job && !report.jobs.is_empty() {
            report.in_flight_count
        } else {
            mine.len()
        };
        rows.extend(mine.into_iter().map(|work| (work.since, report, work)));
    }
    // The longest in flight first: those are the ones to look at.
    rows.sort_by_key(|(since, _, _)| *since);
    let rows = rows
        .into_iter()
        .map(|(since, report, work)| InFlightRow {
            stage: report.stage.clone(),
            instance: report.instance.clone(),
            what: work.what.clone(),
            since: view::ago(now, since),
        })
        .collect();
    Ok(Html(
        InFlight {
            count: counted.max(listed),
            more: counted.saturating_sub(listed),
            rows,
        }
        .render()?,
    ))
}

/// The item's outcome record, pretty, or a line saying there is none.
async fn outcome(bus: &Bus, job: &str, item: &str) -> Result<String, Problem> {
    let key = Names::item_outcome_key(job, item);
    let raw = bus
        .kv
        .items
        .get(key)
        .await
        .context("reading the item's outcome")?;
    Ok(match raw {
        Some(raw) => match serde_json::from_slice::<serde_json::Value>(&raw) {
            Ok(value) => serde_json::to_string_pretty(&value).unwrap_or_default(),
            Err(_) => String::from_utf8_lossy(&raw).into_owned(),
        },
        None => format!("item {item:?} has no outcome (yet) in job {job}"),
    })
}

/// The job's lifecycle events, newest last (batch events are left out:
/// the grid shows batches).
async fn timeline(bus: &Bus, job: &str) -> Result<Vec<EventRow>, Problem> {
    let kinds = [
        EventKind::Accepted,
        EventKind::Rejected,
        EventKind::Started,
        EventKind::Paused,
        EventKind::Resumed,
        EventKind::Completed,
        EventKind::Partial,
        EventKind::Failed,
        EventKind::Cancelled,
    ];
    let stream = bus
        .js
        .get_stream(bus.names.events_stream())
        .await
        .context("opening the events stream")?;
    let consumer = stream
        .create_consumer(OrderedConfig {
            filter_subjects: kinds
                .iter()
                .map(|k| bus.names.event_subject(job, k.as_str()))
                .collect(),
            deliver_policy: DeliverPolicy::All,
            ..Default::default()
        })
        .await
        .context("reading the job's events")?;
    let mut messages = consumer
        .messages()
        .await
        .context("reading the job's events")?;
    let mut rows = std::collections::VecDeque::new();
    // Nothing delivered for a moment: there is no (more) event.
    while let Ok(Some(message)) =
        tokio::time::timeout(Duration::from_millis(300), messages.next()).await
    {
        let message = message.context("reading the job's events")?;
        let pending = message.info().map(|i| i.pending).unwrap_or(0);
        if let Ok(event) = codec::decode::<JobEvent>(message.headers.as_ref(), &message.payload) {
            if rows.len() == EVENTS_SHOWN {
                rows.pop_front();
            }
            rows.push_back(event_row(&event));
        }
        if pending == 0 {
            break;
        }
    }
    Ok(rows.into())
}

fn event_row(event: &JobEvent) -> EventRow {
    let mut detail = Vec::new();
    if let (Some(total), Some(ok), Some(failed)) = (event.total, event.succeeded, event.failed) {
        detail.push(format!("{ok} succeeded, {failed} failed of {total}"));
    }
    if let Some(reason) = &event.reason {
        detail.push(reason.clone());
    }
    EventRow {
        at: event.at.format("%Y-%m-%d %H:%M:%S%.3f").to_string(),
        kind: event.event.as_str(),
        detail: detail.join(" · "),
    }
}

/// The job's trace id, linked when a trace URL is set.
fn trace(app: &App, state: &JobState) -> Option<Trace> {
    let id = state.traceparent.as_deref()?.split('-').nth(1)?.to_string();
    let href = app
        .options
        .trace_url
        .as_ref()
        .map(|url| url.replace("{trace_id}", &id));
    Some(Trace { id, href })
}
