//! `jetflow health`: is everything jetflow needs there and moving?
//!
//! NATS reachable (round trip), every stream and bucket present (messages,
//! bytes), every durable consumer present with its lag (pending) and work
//! in hand (ack pending, redelivered), the service instances answering per
//! stage, any circuit breaker that is not closed, and every target's
//! limits (with its shared concurrency's slots in use and calls waiting).
//! Exits 1 when something is missing, so it can back a readiness probe.

use std::time::{Duration, Instant};

use async_nats::jetstream::Context;
use futures::StreamExt;
use jetflow_protocol::{names, target::TargetLimits, Names, Stage};
use jetflow_runtime::{
    nats::provision,
    process::{activity::StatusReport, micro},
    NatsArgs,
};
use serde::Serialize;

use crate::{connect, exit, render};

/// Arguments of `jetflow health`.
#[derive(Debug, clap::Args)]
pub struct HealthArgs {
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub nats: NatsArgs,
}

/// The health report (also `--json`'s shape).
#[derive(Debug, Default, Serialize)]
pub struct Health {
    pub healthy: bool,
    pub nats_rtt_ms: f64,
    pub streams: Vec<Thing>,
    pub consumers: Vec<Thing>,
    pub buckets: Vec<Thing>,
    pub instances: Vec<Thing>,
    pub breakers: Vec<Thing>,
    pub limits: Vec<Thing>,
    pub problems: Vec<String>,
}

/// One checked thing: its name and what was measured.
#[derive(Debug, Serialize)]
pub struct Thing {
    pub name: String,
    pub ok: bool,
    pub detail: String,
}

/// Runs every check, prints the report, and exits 1 if anything is missing.
pub async fn run(args: HealthArgs) -> anyhow::Result<u8> {
    let (client, js, names) = connect::bare(&args.nats).await?;
    let health = check(&client, &js, &names).await?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&health)?);
    } else {
        print!("{}", table(&health));
    }
    Ok(if health.healthy {
        exit::OK
    } else {
        exit::FAILED
    })
}

/// Runs every check (the dashboard's health page shows the same report).
pub async fn check(
    client: &async_nats::Client,
    js: &Context,
    names: &Names,
) -> anyhow::Result<Health> {
    let mut health = Health::default();

    let started = Instant::now();
    client.flush().await?;
    health.nats_rtt_ms = started.elapsed().as_secs_f64() * 1000.0;

    health.streams = check_streams(js, names).await;
    health.consumers = check_durable_consumers(js, names).await;
    health
        .consumers
        .extend(check_task_consumers(js, names).await);
    health.buckets = check_buckets(js, names).await;
    let reports = micro::gather(client, names.namespace(), Duration::from_secs(1)).await?;
    health.instances = check_instances(&reports);
    health.breakers = check_breakers(&reports);
    health.limits = check_limits(js, names).await;

    health.problems = problems(&health);
    health.healthy = health.problems.is_empty();
    Ok(health)
}

/// Every stream jetflow provisions: its messages, bytes, consumers and replicas.
async fn check_streams(js: &Context, names: &Names) -> Vec<Thing> {
    let mut things = Vec::new();
    for config in provision::stream_configs(names, 1) {
        let thing = match js.get_stream(&config.name).await {
            Ok(mut stream) => match stream.info().await {
                Ok(info) => Thing {
                    name: config.name.clone(),
                    ok: true,
                    detail: format!(
                        "{} messages, {} bytes, {} consumers, R{}",
                        info.state.messages,
                        info.state.bytes,
                        info.state.consumer_count,
                        info.config.num_replicas
                    ),
                },
                Err(err) => missing(&config.name, err),
            },
            Err(err) => missing(&config.name, err),
        };
        things.push(thing);
    }
    things
}

/// The stages' durable consumers, each with its lag and work in hand.
async fn check_durable_consumers(js: &Context, names: &Names) -> Vec<Thing> {
    let durable = [
        (names.jobs_stream(), names.fetch_consumer()),
        (names.jobs_stream(), names.cancel_consumer()),
        (names.jobs_stream(), names.config_consumer()),
        (names.jobs_stream(), names.pause_consumer()),
        (names.batches_stream(), names.batch_consumer()),
    ];
    let mut things = Vec::new();
    for (stream, consumer) in durable {
        things.push(consumer_health(js, &stream, &consumer).await);
    }
    things
}

/// Every job's task consumer: lag is the job's items not yet handed out.
async fn check_task_consumers(js: &Context, names: &Names) -> Vec<Thing> {
    let mut things = Vec::new();
    if let Ok(stream) = js.get_stream(names.tasks_stream()).await {
        let mut consumers = stream.consumers();
        while let Some(Ok(info)) = consumers.next().await {
            if info.name.starts_with(names::TASK_CONSUMER_PREFIX) {
                things.push(consumer_thing(&names.tasks_stream(), &info));
            }
        }
    }
    things
}

/// Every bucket jetflow provisions, with how many values it holds.
async fn check_buckets(js: &Context, names: &Names) -> Vec<Thing> {
    let mut things = Vec::new();
    for config in provision::bucket_configs(names, 1) {
        let thing = match js.get_key_value(&config.bucket).await {
            Ok(store) => match store.status().await {
                Ok(status) => Thing {
                    name: config.bucket.clone(),
                    ok: true,
                    detail: format!("{} values", status.values()),
                },
                Err(err) => missing(&config.bucket, err),
            },
            Err(err) => missing(&config.bucket, err),
        };
        things.push(thing);
    }
    things
}

/// How many instances of each stage answered; none is a failure.
fn check_instances(reports: &[StatusReport]) -> Vec<Thing> {
    Stage::ALL
        .into_iter()
        .map(|stage| {
            let count = reports.iter().filter(|r| r.stage == stage.as_str()).count();
            Thing {
                name: stage.to_string(),
                ok: count > 0,
                detail: format!("{count} instance(s)"),
            }
        })
        .collect()
}

/// Every circuit breaker the instances report; one not closed is not ok.
fn check_breakers(reports: &[StatusReport]) -> Vec<Thing> {
    let mut things = Vec::new();
    for report in reports {
        for breaker in report.details["breakers"].as_array().into_iter().flatten() {
            let state = breaker["state"].as_str().unwrap_or("?");
            things.push(Thing {
                name: format!(
                    "{} ({})",
                    breaker["target"].as_str().unwrap_or("?"),
                    report.instance
                ),
                ok: state == "closed",
                detail: state.to_string(),
            });
        }
    }
    things
}

/// Every target's limits, and how its shared concurrency is used: slots
/// in use and calls waiting (its slot consumer); a target whose slots
/// are missing is not ok.
async fn check_limits(js: &Context, names: &Names) -> Vec<Thing> {
    let Ok(bucket) = js.get_key_value(names.limits_bucket()).await else {
        return Vec::new();
    };
    let Ok(keys) = bucket.keys().await else {
        return Vec::new();
    };
    let mut keys: Vec<String> = keys.filter_map(|k| async { k.ok() }).collect().await;
    keys.sort();
    let mut things = Vec::new();
    for key in keys {
        let Ok(Some(value)) = bucket.get(&key).await else {
            continue;
        };
        let Ok(limits) = serde_json::from_slice::<TargetLimits>(&value) else {
            things.push(Thing {
                name: key,
                ok: false,
                detail: "unreadable limits record".into(),
            });
            continue;
        };
        let mut detail = Vec::new();
        if let Some(rate) = limits.rate {
            detail.push(format!("rate {rate}"));
        }
        let mut ok = true;
        if let Some(concurrency) = limits.concurrency {
            let usage = slot_usage(js, names, &limits.target).await;
            ok = usage.is_ok();
            detail.push(match usage {
                Ok((in_use, waiting)) => {
                    format!("concurrency {concurrency}: {in_use} in use, {waiting} waiting")
                }
                Err(err) => format!("concurrency {concurrency}: no slots ({err})"),
            });
        }
        things.push(Thing {
            name: limits.target,
            ok,
            detail: detail.join(", "),
        });
    }
    things
}

/// Slots of `target` in use, and calls waiting for one.
async fn slot_usage(js: &Context, names: &Names, target: &str) -> anyhow::Result<(usize, usize)> {
    let stream = js.get_stream(names.slots_stream()).await?;
    let mut consumer: async_nats::jetstream::consumer::PullConsumer = stream
        .get_consumer(&names.slot_consumer(target))
        .await
        .map_err(|e| anyhow::anyhow!(e))?;
    let info = consumer.info().await?;
    Ok((info.num_ack_pending, info.num_waiting))
}

/// One line per failed stream, consumer, bucket or stage (an open breaker
/// is shown but is no problem).
fn problems(health: &Health) -> Vec<String> {
    let groups = [
        ("stream", &health.streams),
        ("consumer", &health.consumers),
        ("bucket", &health.buckets),
        ("stage", &health.instances),
        ("limit", &health.limits),
    ];
    let mut problems = Vec::new();
    for (kind, things) in groups {
        for thing in things.iter().filter(|t| !t.ok) {
            problems.push(format!("{kind} {}: {}", thing.name, thing.detail));
        }
    }
    problems
}

fn missing(name: &str, err: impl std::fmt::Display) -> Thing {
    Thing {
        name: name.to_string(),
        ok: false,
        detail: format!("missing: {err}"),
    }
}

async fn consumer_health(js: &Context, stream: &str, consumer: &str) -> Thing {
    let info = async {
        let stream = js.get_stream(stream).await?;
        let mut consumer: async_nats::jetstream::consumer::PullConsumer = stream
            .get_consumer(consumer)
            .await
            .map_err(|e| anyhow::anyhow!(e))?;
        anyhow::Ok(consumer.info().await?.clone())
    };
    match info.await {
        Ok(info) => consumer_thing(stream, &info),
        Err(err) => Thing {
            name: format!("{stream} > {consumer}"),
            ok: false,
            detail: format!("missing (is its service running?): {err}"),
        },
    }
}

fn consumer_thing(stream: &str, info: &async_nats::jetstream::consumer::Info) -> Thing {
    let paused = if info.paused { ", paused" } else { "" };
    Thing {
        name: format!("{stream} > {}", info.name),
        ok: true,
        detail: format!(
            "{} pending, {} ack pending, {} redelivered{paused}",
            info.num_pending, info.num_ack_pending, info.num_redelivered
        ),
    }
}

pub fn table(h: &Health) -> String {
    let mut rows = vec![["".to_string(), "WHAT".into(), "STATE".into()]];
    rows.push([
        "ok".into(),
        "nats".into(),
        format!("reachable, round trip {:.1} ms", h.nats_rtt_ms),
    ]);
    for (kind, things) in [
        ("stream", &h.streams),
        ("consumer", &h.consumers),
        ("bucket", &h.buckets),
        ("stage", &h.instances),
        ("breaker", &h.breakers),
        ("limit", &h.limits),
    ] {
        for t in things {
            rows.push([
                if t.ok { "ok" } else { "FAIL" }.to_string(),
                format!("{kind} {}", t.name),
                t.detail.clone(),
            ]);
        }
    }
    let mut out = render::columns(&rows);
    out.push_str(if h.healthy {
        "healthy\n"
    } else {
        "UNHEALTHY\n"
    });
    out
}
