//! `jetflow submit --dry-run JOB`: what a job would do, doing none of it.
//!
//! It pages the source read-only (the first `--sample` pages, or all of
//! them with `--count`) through fetch's own sources, prints how many items
//! there are, the first handler requests exactly as migrate would send them
//! (migrate's own request builders: same method, URL, idempotency key,
//! headers — secrets shown as `<redacted>` — and body), and how long the
//! job would take at its concurrency and rate limit. No handler is called,
//! and nothing is written to NATS: an `http` or inline source does not even
//! connect.

use std::time::Duration;

use anyhow::Context as _;
use jetflow_fetch::source::{self, Source};
use jetflow_migrate::handler::{http, nats, Call};
use jetflow_protocol::{
    job::{HandlerSpec, JobSpec, StepCall},
    messages::Item,
};
use jetflow_runtime::{Bus, NatsArgs};
use serde_json::Value;

use crate::{connect, exit};

/// How much of the source a dry run reads, and how many requests it shows.
#[derive(Debug, Clone, Copy)]
pub struct Reach {
    /// Pages to read, unless `count`.
    pub sample_pages: u32,
    /// Read every page, for an exact count.
    pub count: bool,
    /// Handler requests to print.
    pub requests: usize,
}

/// What paging found.
struct Paged {
    items: u64,
    pages: u32,
    exhausted: bool,
    first: Vec<Item>,
}

/// Prints the dry run of `spec`; the exit code.
pub async fn run(spec: &JobSpec, reach: Reach, nats_args: &NatsArgs) -> anyhow::Result<u8> {
    // A `nats` source is asked for pages (requests only); a `job` source
    // reads the other job's outcomes. Neither writes; the others do not
    // even connect.
    let http_client = source::http_client().context("building the HTTP client")?;
    let bus = match Source::without_nats(&spec.source, http_client) {
        Some(_) => None,
        None => Some(connect::existing(nats_args).await?),
    };
    match preview(spec, reach, bus.as_ref()).await? {
        Ok(report) => {
            print!("{report}");
            Ok(exit::OK)
        }
        Err(error) => {
            eprintln!("the source refused or failed: {error}");
            Ok(exit::FAILED)
        }
    }
}

/// The dry run's report of `spec` (as `run` prints it, and the dashboard
/// shows it), or why the source refused or failed. `bus` is what a source
/// that pages over NATS reads through; with none, such a source is an
/// error.
pub async fn preview(
    spec: &JobSpec,
    reach: Reach,
    bus: Option<&Bus>,
) -> anyhow::Result<Result<String, String>> {
    let http_client = source::http_client().context("building the HTTP client")?;
    let source = match (Source::without_nats(&spec.source, http_client.clone()), bus) {
        (Some(source), _) => source,
        (None, Some(bus)) => {
            let job = spec.id.as_deref().unwrap_or_default();
            Source::new(&spec.source, job, http_client, bus)
        }
        (None, None) => anyhow::bail!("a {} source needs NATS", spec.source.type_name()),
    };
    Ok(page(&source, spec, reach)
        .await
        .map(|paged| report(spec, &paged, reach.requests)))
}

async fn page(source: &Source, spec: &JobSpec, reach: Reach) -> Result<Paged, String> {
    let limit = spec.settings().fetch_size;
    let mut paged = Paged {
        items: 0,
        pages: 0,
        exhausted: false,
        first: Vec::new(),
    };
    let mut cursor: Option<String> = None;
    loop {
        let page = source
            .page(cursor.as_deref(), limit)
            .await
            .map_err(|e| e.to_string())?;
        paged.pages += 1;
        paged.items += page.items.len() as u64;
        let room = reach.requests.saturating_sub(paged.first.len());
        paged.first.extend(page.items.into_iter().take(room));
        match page.next_cursor {
            // The same cursor back: the source has nothing after it.
            Some(next) if cursor.as_deref() != Some(next.as_str()) => cursor = Some(next),
            _ => {
                paged.exhausted = true;
                return Ok(paged);
            }
        }
        if !reach.count && paged.pages >= reach.sample_pages {
            return Ok(paged);
        }
    }
}

/// The report: the count, the requests, the estimate.
fn report(spec: &JobSpec, paged: &Paged, requests: usize) -> String {
    let mut out = String::new();
    let job = spec.id.as_deref().unwrap_or_default();
    let count = if paged.exhausted {
        format!("{} items", paged.items)
    } else {
        format!(
            "at least {} items in the first {} page(s); --count reads them all",
            paged.items, paged.pages
        )
    };
    out.push_str(&format!(
        "dry run of {job}: nothing was sent to the handler, nothing written to NATS\nsource    {}: {count}\n",
        spec.source.type_name()
    ));
    let shown = paged.first.len().min(requests);
    if shown > 0 {
        out.push_str(&format!("the first {shown} handler requests:\n"));
    }
    for item in paged.first.iter().take(requests) {
        out.push_str(&request(spec, job, item));
    }
    out.push_str(&estimate(spec, paged.items, paged.exhausted));
    out
}

/// One item's request, as migrate would send it on the first attempt.
fn request(spec: &JobSpec, job: &str, item: &Item) -> String {
    let call = Call {
        job,
        item,
        params: &spec.params,
        attempt: 1,
        step: None,
        input: &Value::Null,
    };
    match &spec.handler {
        HandlerSpec::Http(handler) => http_request(handler, &call),
        HandlerSpec::Nats(handler) => nats_request(&handler.subject, &call),
        HandlerSpec::Steps { steps } => match steps.first() {
            Some(step) => {
                let call = Call {
                    step: Some(step.name.as_str()),
                    ..call
                };
                let first = match &step.call {
                    StepCall::Http(handler) => http_request(handler, &call),
                    StepCall::Nats(handler) => nats_request(&handler.subject, &call),
                };
                format!(
                    "  (step {}; the later steps take its output)\n{first}",
                    step.name
                )
            }
            None => String::new(),
        },
        HandlerSpec::External(_) => format!(
            "  item {}: an external job's tasks are pulled by its workers; no request is made\n",
            item.id
        ),
    }
}

fn http_request(handler: &jetflow_protocol::job::HttpHandler, call: &Call<'_>) -> String {
    match http::plan(handler, call) {
        Ok(planned) => {
            let mut out = format!("  {} {}\n", planned.method, planned.url);
            for (name, value) in &planned.headers {
                out.push_str(&format!("    {name}: {}\n", shown(name, value)));
            }
            if let Some(body) = &planned.body {
                out.push_str(&format!("    {body}\n"));
            }
            out
        }
        Err(err) => format!("  item {}: {err}\n", call.item.id),
    }
}

fn nats_request(subject: &str, call: &Call<'_>) -> String {
    let (request, headers) = nats::plan(call);
    let mut out = format!("  NATS request {subject}\n");
    // Sorted: a header map has no order of its own.
    let mut lines: Vec<(String, String)> = Vec::new();
    for (name, values) in headers.iter() {
        let name: &str = name.as_ref();
        for value in values {
            lines.push((name.to_string(), shown(name, value.as_str()).to_string()));
        }
    }
    lines.sort();
    for (name, value) in lines {
        out.push_str(&format!("    {name}: {value}\n"));
    }
    out.push_str(&format!(
        "    {}\n",
        serde_json::to_string(&request).unwrap_or_default()
    ));
    out
}

/// A header's value for the screen: a credential's is not shown.
fn shown<'a>(name: &str, value: &'a str) -> &'a str {
    let name = name.to_ascii_lowercase();
    let secret = [
        "authorization",
        "cookie",
        "token",
        "secret",
        "password",
        "api-key",
        "apikey",
    ]
    .iter()
    .any(|s| name.contains(s));
    if secret {
        "<redacted>"
    } else {
        value
    }
}

/// How long the job would take: the rate limit gives a floor; concurrency
/// divides the calls' latency, which only running tells.
fn estimate(spec: &JobSpec, items: u64, exact: bool) -> String {
    let at_least = if exact { "" } else { "at least " };
    let concurrency = spec.settings().concurrency.max(1);
    let mut out = format!(
        "estimate  {at_least}{items} calls at concurrency {concurrency}: {} if a call takes 100 ms, {} if it takes 1 s",
        crate::render::duration(Duration::from_secs_f64(items as f64 * 0.1 / f64::from(concurrency))),
        crate::render::duration(Duration::from_secs_f64(items as f64 / f64::from(concurrency))),
    );
    let rate = match &spec.handler {
        HandlerSpec::Steps { steps } => steps
            .iter()
            .filter_map(|s| s.call.rate_limit())
            .min_by(|a, b| a.per_second().total_cmp(&b.per_second())),
        _ => spec.handler.rate_limit(),
    };
    if let Some(rate) = rate {
        let floor = items as f64 / rate.per_second().max(f64::MIN_POSITIVE);
        out.push_str(&format!(
            "; its rate limit {rate} makes it {at_least}{}",
            crate::render::duration(Duration::from_secs_f64(floor))
        ));
    }
    out.push('\n');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_are_not_shown() {
        assert_eq!(shown("Authorization", "Bearer x"), "<redacted>");
        assert_eq!(shown("X-Api-Key", "k"), "<redacted>");
        assert_eq!(shown("Idempotency-Key", "j:a"), "j:a");
        assert_eq!(
            shown("Content-Type", "application/json"),
            "application/json"
        );
    }
}
