//! `jetflow jobs`: every job in the namespace, filtered by status and labels
//! (e.g. `--label workflow_id=wf-9`), read in one pass over the jobs bucket.

use anyhow::bail;
use chrono::{DateTime, Utc};
use jetflow_protocol::{
    codec,
    job::{JobState, JobStatus},
};
use jetflow_runtime::{nats::scan::KvScan, NatsArgs};
use serde::Serialize;

use crate::{connect, exit, render};

/// Arguments of `jetflow jobs`.
#[derive(Debug, clap::Args)]
pub struct JobsArgs {
    /// Only jobs with this status (repeatable): pending, fetching,
    /// processing, cancelling, completed, partial, failed, cancelled;
    /// or `active` / `finished`.
    #[arg(long)]
    pub status: Vec<String>,
    /// Only jobs with this label, as KEY=VALUE (repeatable; all must match).
    #[arg(long, value_name = "KEY=VALUE")]
    pub label: Vec<String>,
    /// Print the list as JSON.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub nats: NatsArgs,
}

/// One job in the list.
#[derive(Debug, Serialize)]
struct Row {
    id: String,
    kind: String,
    status: JobStatus,
    total: u64,
    succeeded: u64,
    failed: u64,
    progress: f64,
    created_at: DateTime<Utc>,
    #[serde(skip_serializing_if = "Option::is_none")]
    finished_at: Option<DateTime<Utc>>,
    labels: std::collections::BTreeMap<String, String>,
}

pub async fn run(args: JobsArgs) -> anyhow::Result<u8> {
    let statuses = parse_statuses(&args.status)?;
    let labels = args
        .label
        .iter()
        .map(|l| match l.split_once('=') {
            Some((k, v)) => Ok((k.to_string(), v.to_string())),
            None => bail!("--label {l:?}: expected KEY=VALUE"),
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let bus = connect::existing(&args.nats).await?;
    let mut scan = KvScan::start(&bus.js, &bus.kv.jobs, ">").await?;
    let mut rows = Vec::new();
    while let Some(change) = scan.next().await? {
        let Some(raw) = change.value else { continue };
        let Ok(state) = codec::decode_as::<JobState>(codec::Format::Json, &raw) else {
            tracing::warn!(key = change.key, "unreadable job state");
            continue;
        };
        let wanted = statuses.as_ref().is_none_or(|s| s.contains(&state.status))
            && labels
                .iter()
                .all(|(k, v)| state.spec.labels.get(k).is_some_and(|have| have == v));
        if wanted {
            rows.push(row(state));
        }
    }
    rows.sort_by_key(|r| std::cmp::Reverse(r.created_at));
    if args.json {
        println!("{}", serde_json::to_string_pretty(&rows)?);
    } else if rows.is_empty() {
        println!("no jobs");
    } else {
        print!("{}", table(&rows));
    }
    Ok(exit::OK)
}

fn parse_statuses(names: &[String]) -> anyhow::Result<Option<Vec<JobStatus>>> {
    use JobStatus::*;
    if names.is_empty() {
        return Ok(None);
    }
    let mut out = Vec::new();
    for name in names {
        match name.as_str() {
            "active" => out.extend([Waiting, Pending, Fetching, Processing, Paused, Cancelling]),
            "finished" => out.extend([Completed, Partial, Failed, Cancelled]),
            other => match serde_json::from_value(serde_json::Value::String(other.into())) {
                Ok(status) => out.push(status),
                Err(_) => bail!("--status {other:?}: not a job status"),
            },
        }
    }
    Ok(Some(out))
}

fn row(state: JobState) -> Row {
    let labels = state.spec.labels.clone();
    Row {
        id: state.id,
        kind: state.spec.kind,
        status: state.status,
        total: state.total,
        succeeded: state.succeeded,
        failed: state.failed,
        progress: state.progress,
        created_at: state.created_at,
        finished_at: state.finished_at,
        labels,
    }
}

fn table(rows: &[Row]) -> String {
    let mut lines = vec![[
        "JOB".to_string(),
        "STATUS".into(),
        "PROGRESS".into(),
        "SUCCEEDED".into(),
        "FAILED".into(),
        "CREATED".into(),
        "LABELS".into(),
    ]];
    for r in rows {
        let labels: Vec<String> = r.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
        lines.push([
            r.id.clone(),
            r.status.to_string(),
            format!("{:.1}%", r.progress * 100.0),
            format!("{}/{}", r.succeeded, r.total),
            r.failed.to_string(),
            r.created_at.format("%Y-%m-%d %H:%M:%S").to_string(),
            labels.join(","),
        ]);
    }
    render::columns(&lines)
}
