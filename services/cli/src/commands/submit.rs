//! `jetflow submit FILE [--wait]`.

use std::{io::Read as _, path::PathBuf, time::Duration};

use anyhow::{bail, Context as _};
use futures::StreamExt;
use jetflow_protocol::{
    codec, headers,
    job::{fields, parse_submission, Invalid, JobSpec, JobState, JobStatus},
    messages::{EventKind, JobEvent},
};
use jetflow_runtime::{process::trace, Bus, NatsArgs};
use serde_json::Value;

use crate::{commands::dry_run, connect, exit, progress, render};

/// How long to wait for the fetch service to accept or reject a job.
const VERDICT_TIMEOUT: Duration = Duration::from_secs(30);

/// Arguments of `jetflow submit`.
///
/// A `TRACEPARENT` in the environment (W3C, as CI systems and `otel-cli`
/// set it) makes the job part of that trace: every message of the job and
/// every call it makes carries it.
#[derive(Debug, clap::Args)]
pub struct SubmitArgs {
    /// The job, as JSON; `-` reads standard input.
    pub file: PathBuf,
    /// Follow the job to its end, then print its final state.
    #[arg(long)]
    pub wait: bool,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
    /// Refuse a job with a field the job format does not have (a typo such
    /// as `batch.concurency`); without it, such a field is a warning.
    #[arg(long)]
    pub strict: bool,
    /// Show what the job would do, and do none of it: page the source
    /// read-only, print the item count, the first handler requests as they
    /// would be sent and an estimate. No handler call; nothing written.
    #[arg(long)]
    pub dry_run: bool,
    /// With --dry-run: pages of the source to read.
    #[arg(long, default_value_t = 1, requires = "dry_run")]
    pub sample: u32,
    /// With --dry-run: read every page, for an exact count.
    #[arg(long, requires = "dry_run")]
    pub count: bool,
    /// With --dry-run: handler requests to print.
    #[arg(long, default_value_t = 3, requires = "dry_run")]
    pub requests: usize,
    #[command(flatten)]
    pub nats: NatsArgs,
}

/// What the fetch service said.
pub enum Verdict {
    /// Accepted (or already there).
    Accepted,
    /// Rejected, with the reason.
    Rejected(String),
}

pub async fn run(args: SubmitArgs) -> anyhow::Result<u8> {
    let text = read(&args.file)?;
    let (id, body) = match prepare(&text) {
        Ok(prepared) => prepared,
        Err(Invalid::Rejected { rejection, .. }) => {
            eprintln!("rejected: {rejection}");
            return Ok(exit::REJECTED);
        }
        Err(Invalid::Undecodable(reason)) => {
            eprintln!("{}: {reason}", args.file.display());
            return Ok(exit::REJECTED);
        }
    };
    let unknown = fields::unknown(&body);
    for field in &unknown {
        eprintln!("warning: {field}");
    }
    if args.strict && !unknown.is_empty() {
        eprintln!(
            "rejected (--strict): {} field(s) not part of the job format",
            unknown.len()
        );
        return Ok(exit::REJECTED);
    }
    if args.dry_run {
        let spec = parse_submission(None, body.to_string().as_bytes(), || id.clone())
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        let reach = dry_run::Reach {
            sample_pages: args.sample.max(1),
            count: args.count,
            requests: args.requests,
        };
        return dry_run::run(&spec, reach, &args.nats).await;
    }
    let bus = connect::provisioned(&args.nats).await?;
    match submit(&bus, &id, body).await? {
        Verdict::Accepted => {}
        Verdict::Rejected(reason) => {
            eprintln!("rejected: {reason}");
            return Ok(exit::REJECTED);
        }
    }
    if !args.wait {
        if args.json {
            println!("{}", serde_json::json!({ "id": id }));
        } else {
            println!("{id}");
        }
        return Ok(exit::OK);
    }
    eprintln!("submitted {id}");
    let state = progress::follow(&bus, &id).await?;
    print_final(&state, args.json);
    Ok(exit_code(state.status))
}

/// Reads the job file or standard input.
fn read(file: &PathBuf) -> anyhow::Result<String> {
    if file.as_os_str() == "-" {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .context("reading standard input")?;
        Ok(text)
    } else {
        std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))
    }
}

/// Checks the job here first (same rules as the fetch service, so mistakes
/// are named before anything is sent) and gives it an id if it has none.
pub fn prepare(text: &str) -> Result<(String, Value), Invalid> {
    let new_id = || format!("job-{}", jetflow_runtime::instance_id());
    let spec = parse_submission(None, text.as_bytes(), new_id)?;
    let id = spec.id.clone().unwrap_or_default();
    // Send the user's document (with the id), not our normalised copy, so the
    // services see exactly what was written.
    let mut body: Value =
        serde_json::from_str(text).map_err(|e| Invalid::Undecodable(format!("not JSON: {e}")))?;
    if let Value::Object(map) = &mut body {
        map.insert("id".into(), Value::String(id.clone()));
    }
    Ok((id, body))
}

/// Publishes the job and waits for the fetch service's verdict.
pub async fn submit(bus: &Bus, id: &str, body: Value) -> anyhow::Result<Verdict> {
    let mut events = bus
        .client
        .subscribe(bus.names.job_events_filter(id))
        .await
        .context("subscribing to the job's events")?;
    let mut hdrs = codec::headers_for(codec::Format::Json);
    hdrs.insert(headers::MSG_ID, JobSpec::submission_msg_id(id).as_str());
    // The job joins the trace of whoever runs the command, when it has one.
    trace::inject_context(&trace::from_environment(), &mut hdrs);
    let ack = bus
        .js
        .publish_with_headers(bus.names.submit_subject(), hdrs, codec::to_json(&body))
        .await
        .context("publishing the job")?
        .await
        .context("storing the job")?;
    if ack.duplicate {
        // Submitted moments ago already: its verdict was announced then.
        return existing_verdict(bus, id).await;
    }
    let deadline = tokio::time::sleep(VERDICT_TIMEOUT);
    tokio::pin!(deadline);
    loop {
        tokio::select! {
            _ = &mut deadline => bail!(
                "no verdict on job {id} within {VERDICT_TIMEOUT:?}: is jetflow-fetch running in namespace {:?}?",
                bus.names.namespace()
            ),
            msg = events.next() => {
                let Some(msg) = msg else { bail!("event subscription ended") };
                let Ok(event) = codec::decode::<JobEvent>(msg.headers.as_ref(), &msg.payload) else {
                    continue;
                };
                match event.event {
                    EventKind::Accepted => return Ok(Verdict::Accepted),
                    EventKind::Rejected => {
                        return Ok(Verdict::Rejected(event.reason.unwrap_or_default()))
                    }
                    _ => {}
                }
            }
        }
    }
}

async fn existing_verdict(bus: &Bus, id: &str) -> anyhow::Result<Verdict> {
    for _ in 0..50 {
        if bus
            .kv
            .jobs
            .get(id)
            .await
            .context("reading job state")?
            .is_some()
        {
            return Ok(Verdict::Accepted);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Ok(Verdict::Rejected(format!(
        "job {id} was submitted moments ago and has no state: see `nats stream view {}`",
        bus.names.events_stream()
    )))
}

/// Prints a finished job.
pub fn print_final(state: &JobState, json: bool) {
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(state).unwrap_or_default()
        );
    } else {
        print!("{}", render::summary(state, &[]));
    }
}

/// The exit code for a job that ended with `status`.
pub fn exit_code(status: JobStatus) -> u8 {
    match status {
        JobStatus::Completed => exit::OK,
        JobStatus::Partial => exit::PARTIAL,
        JobStatus::Cancelled => exit::CANCELLED,
        _ => exit::FAILED,
    }
}
