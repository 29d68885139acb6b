//! `jetflow workers`: every live service instance and what it is doing.
//!
//! An instance is listed when it answers a `$SRV.STATS` request within
//! `--wait` (1 s): a killed instance is gone from the next listing, since
//! the server drops a closed connection's subscriptions at once.

use std::time::Duration;

use chrono::{DateTime, Utc};
use jetflow_protocol::{duration::HumanDuration, Stage};
use jetflow_runtime::{process::activity::StatusReport, process::micro, NatsArgs};

use crate::{connect, exit, render};

/// Arguments of `jetflow workers`.
#[derive(Debug, clap::Args)]
pub struct WorkersArgs {
    /// Only instances of this stage.
    #[arg(long, value_parser = crate::stage_arg::parser())]
    pub stage: Option<Stage>,
    /// How long to wait for instances to answer.
    #[arg(long, default_value = "1s")]
    pub wait: HumanDuration,
    /// Print the instances' status reports as a JSON array.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub nats: NatsArgs,
}

pub async fn run(args: WorkersArgs) -> anyhow::Result<u8> {
    let bus = connect::existing(&args.nats).await?;
    let mut reports = micro::gather(&bus.client, bus.names.namespace(), args.wait.get()).await?;
    if let Some(stage) = &args.stage {
        reports.retain(|r| r.stage == stage.as_str());
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&reports)?);
    } else if reports.is_empty() {
        println!(
            "no jetflow instances answered in namespace {:?}",
            args.nats.namespace
        );
    } else {
        print!("{}", table(&reports));
    }
    Ok(exit::OK)
}

/// One line per instance, then what each has in flight.
pub fn table(reports: &[StatusReport]) -> String {
    let now = Utc::now();
    let mut rows = vec![[
        "STAGE".to_string(),
        "INSTANCE".into(),
        "UP".into(),
        "JOBS".into(),
        "IN FLIGHT".into(),
        "COUNTERS".into(),
    ]];
    let mut details = Vec::new();
    for r in reports {
        rows.push(row(r, now));
        details.extend(in_flight_lines(r, now));
    }
    let mut out = render::columns(&rows);
    if !details.is_empty() {
        out.push_str("in flight:\n");
        for line in details {
            out.push_str(&line);
            out.push('\n');
        }
    }
    out
}

/// How long before `now` `t` was, for people.
fn ago(now: DateTime<Utc>, t: DateTime<Utc>) -> String {
    render::duration(Duration::from_millis(
        (now - t).num_milliseconds().max(0) as u64
    ))
}

/// The instance's row: stage, instance, up for, jobs, in flight, counters.
fn row(r: &StatusReport, now: DateTime<Utc>) -> [String; 6] {
    let jobs: Vec<String> = r.jobs.iter().map(|j| j.job.clone()).collect();
    let counters: Vec<String> = r.counters.iter().map(|(k, v)| format!("{k}={v}")).collect();
    [
        r.stage.clone(),
        r.instance.clone(),
        ago(now, r.started_at),
        if jobs.is_empty() {
            "-".into()
        } else {
            jobs.join(",")
        },
        r.in_flight_count.to_string(),
        counters.join(" "),
    ]
}

/// The instance's work in flight, how much more it did not list, and its
/// breakers that are not closed.
fn in_flight_lines(r: &StatusReport, now: DateTime<Utc>) -> Vec<String> {
    let mut lines = Vec::new();
    for work in &r.in_flight {
        lines.push(format!(
            "  {} {}: {} {} for {}",
            r.stage,
            r.instance,
            work.job,
            work.what,
            ago(now, work.since)
        ));
    }
    if r.in_flight_count > r.in_flight.len() {
        lines.push(format!(
            "  {} {}: … and {} more",
            r.stage,
            r.instance,
            r.in_flight_count - r.in_flight.len()
        ));
    }
    for breaker in r.details["breakers"].as_array().into_iter().flatten() {
        if breaker["state"] != "closed" {
            lines.push(format!(
                "  {} {}: breaker {} {}",
                r.stage, r.instance, breaker["target"], breaker["state"]
            ));
        }
    }
    lines
}
