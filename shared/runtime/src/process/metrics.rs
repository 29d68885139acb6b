//! Metrics through OpenTelemetry, served as Prometheus text on
//! `--metrics-addr` (off by default: then every instrument is a no-op).
//!
//! The names are OpenTelemetry names; the Prometheus exporter turns dots
//! into underscores and adds `_total` to counters and the unit to
//! histograms (`jetflow.items` → `jetflow_items_total`). docs/observability.md
//! lists them with their meaning.

use std::{
    collections::BTreeMap,
    net::SocketAddr,
    sync::{Arc, Mutex},
};

use jetflow_protocol::Stage;
use opentelemetry::{
    metrics::{Counter, Histogram, Meter, MeterProvider as _},
    KeyValue,
};
use opentelemetry_sdk::metrics::SdkMeterProvider;
use tokio_util::sync::CancellationToken;

use crate::{
    process::probes::{self, Readiness},
    Error, Result,
};

/// Items that finished a handler call, by `job_kind` and `status`
/// (`succeeded`, `failed`, `retried`, `held`) — counted by migrate.
pub const ITEMS: &str = "jetflow.items";
/// Items dead-lettered, by `job_kind` — counted by migrate.
pub const ITEMS_DEAD_LETTERED: &str = "jetflow.items.dead_lettered";
/// Handler call duration in seconds, by `target`.
pub const HANDLER_DURATION: &str = "jetflow.handler.duration";
/// 1 while a target's circuit breaker is open (or half open), by `target`.
pub const BREAKER_OPEN: &str = "jetflow.breaker.open";
/// Items fetched from sources, by `job_kind` — counted by fetch.
pub const ITEMS_FETCHED: &str = "jetflow.items.fetched";
/// Tasks published, by `job_kind` — counted by batch.
pub const TASKS_PUBLISHED: &str = "jetflow.tasks.published";
/// Item outcomes folded into job tallies, exactly once per item, by
/// `job_kind` and `status` — counted by reduce.
pub const OUTCOMES: &str = "jetflow.outcomes";
/// Jobs that ended, by `status` — counted by reduce.
pub const JOBS_ENDED: &str = "jetflow.jobs.ended";
/// Batches fetched but not yet fully reduced, by `job` — reduce.
pub const BATCHES_IN_FLIGHT: &str = "jetflow.batches.in_flight";
/// Messages a stage's consumer has not been handed yet, by `stage` and `consumer`.
pub const CONSUMER_PENDING: &str = "jetflow.consumer.pending";
/// Messages handed out and not yet acknowledged, by `stage` and `consumer`.
pub const CONSUMER_ACK_PENDING: &str = "jetflow.consumer.ack_pending";
/// Rate-limit tokens taken (calls let through), by `scope` (`job:<job>`,
/// `step:<job>/<step>`, `target:<target>`) — counted by migrate.
pub const RATE_GRANTED: &str = "jetflow.rate.granted";
/// Takes of rate-limit tokens that came up short, each a wait until the
/// window ends, by `scope` — counted by migrate.
pub const RATE_HELD: &str = "jetflow.rate.held";
/// Seconds a call waited for one of its target's shared concurrency slots
/// (`jetflow limits set T concurrency=N`), by `target` — migrate.
pub const SLOT_WAIT: &str = "jetflow.slot.wait";
/// The numeric answer of a job's reduction (`sum`, `min`, `max`, `avg`,
/// `count`), by `job` and `reduction` — reduce.
pub const JOB_RESULT: &str = "jetflow.job.result";

/// Gauge values a stage sets; read when Prometheus scrapes.
type Gauges = Arc<Mutex<BTreeMap<Vec<(String, String)>, f64>>>;

/// One service's instruments.
#[derive(Clone)]
pub struct Metrics {
    meter: Meter,
    /// Whether anything reads these (a `--metrics-addr` is set).
    pub enabled: bool,
    /// See [`ITEMS`].
    pub items: Counter<u64>,
    /// See [`ITEMS_DEAD_LETTERED`].
    pub dead_lettered: Counter<u64>,
    /// See [`HANDLER_DURATION`].
    pub handler_duration: Histogram<f64>,
    /// See [`ITEMS_FETCHED`].
    pub items_fetched: Counter<u64>,
    /// See [`TASKS_PUBLISHED`].
    pub tasks_published: Counter<u64>,
    /// See [`OUTCOMES`].
    pub outcomes: Counter<u64>,
    /// See [`JOBS_ENDED`].
    pub jobs_ended: Counter<u64>,
    /// See [`RATE_GRANTED`].
    pub rate_granted: Counter<u64>,
    /// See [`RATE_HELD`].
    pub rate_held: Counter<u64>,
    /// See [`SLOT_WAIT`].
    pub slot_wait: Histogram<f64>,
    /// What `/readyz` answers; the stage says when it is up.
    pub readiness: Readiness,
}

impl Metrics {
    /// Instruments on `meter`.
    pub fn new(meter: Meter) -> Self {
        Self {
            items: meter
                .u64_counter(ITEMS)
                .with_description("Items that finished a handler call, by status")
                .build(),
            dead_lettered: meter
                .u64_counter(ITEMS_DEAD_LETTERED)
                .with_description("Items sent to the dead-letter queue")
                .build(),
            handler_duration: meter
                .f64_histogram(HANDLER_DURATION)
                .with_unit("s")
                .with_description("Duration of handler calls, by target")
                .with_boundaries(vec![
                    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
                ])
                .build(),
            items_fetched: meter
                .u64_counter(ITEMS_FETCHED)
                .with_description("Items read from sources")
                .build(),
            tasks_published: meter
                .u64_counter(TASKS_PUBLISHED)
                .with_description("Item tasks published by the batch stage")
                .build(),
            outcomes: meter
                .u64_counter(OUTCOMES)
                .with_description("Item outcomes counted into job tallies (exactly once per item)")
                .build(),
            jobs_ended: meter
                .u64_counter(JOBS_ENDED)
                .with_description("Jobs that ended, by status")
                .build(),
            rate_granted: meter
                .u64_counter(RATE_GRANTED)
                .with_description("Rate-limit tokens taken, by scope")
                .build(),
            rate_held: meter
                .u64_counter(RATE_HELD)
                .with_description("Takes of rate-limit tokens that came up short, by scope")
                .build(),
            slot_wait: meter
                .f64_histogram(SLOT_WAIT)
                .with_unit("s")
                .with_description("Time calls waited for a slot of their target, by target")
                .with_boundaries(vec![0.001, 0.01, 0.1, 0.5, 1.0, 5.0, 30.0, 120.0, 600.0])
                .build(),
            meter,
            enabled: true,
            readiness: Readiness::default(),
        }
    }

    /// Instruments that record nothing (no `--metrics-addr`).
    pub fn disabled() -> Self {
        // No global meter provider is ever installed: this one is a no-op.
        Self {
            enabled: false,
            ..Self::new(opentelemetry::global::meter("jetflow"))
        }
    }

    // The helpers below run per item: when nothing reads the instruments
    // they return before building any attribute (each is an allocation).

    /// `n` items of a `kind` job fetched.
    pub fn fetched(&self, kind: &str, n: u64) {
        if !self.enabled {
            return;
        }
        self.items_fetched
            .add(n, &[KeyValue::new("job_kind", kind.to_string())]);
    }

    /// `n` tasks of a `kind` job published.
    pub fn published(&self, kind: &str, n: u64) {
        if !self.enabled {
            return;
        }
        self.tasks_published
            .add(n, &[KeyValue::new("job_kind", kind.to_string())]);
    }

    /// An item of a `kind` job finished a call with `status`.
    pub fn item(&self, kind: &str, status: &'static str) {
        if !self.enabled {
            return;
        }
        self.items.add(
            1,
            &[
                KeyValue::new("job_kind", kind.to_string()),
                KeyValue::new("status", status),
            ],
        );
    }

    /// An item of a `kind` job was dead-lettered.
    pub fn dead_letter(&self, kind: &str) {
        if !self.enabled {
            return;
        }
        self.dead_lettered
            .add(1, &[KeyValue::new("job_kind", kind.to_string())]);
    }

    /// A handler call to `target` took `seconds`.
    pub fn call(&self, target: &str, seconds: f64) {
        if !self.enabled {
            return;
        }
        self.handler_duration
            .record(seconds, &[KeyValue::new("target", target.to_string())]);
    }

    /// `n` outcomes of `status` counted into a `kind` job's tally.
    pub fn counted(&self, kind: &str, status: &'static str, n: u64) {
        if self.enabled && n > 0 {
            self.outcomes.add(
                n,
                &[
                    KeyValue::new("job_kind", kind.to_string()),
                    KeyValue::new("status", status),
                ],
            );
        }
    }

    /// `granted` tokens taken under the limit of `scope`; `held` if the
    /// take came up short.
    pub fn rate(&self, scope: &str, granted: u64, held: bool) {
        if !self.enabled {
            return;
        }
        let scope = [KeyValue::new("scope", scope.to_string())];
        self.rate_granted.add(granted, &scope);
        if held {
            self.rate_held.add(1, &scope);
        }
    }

    /// A call waited `seconds` for a slot of `target`.
    pub fn slot_wait(&self, target: &str, seconds: f64) {
        if self.enabled {
            self.slot_wait
                .record(seconds, &[KeyValue::new("target", target.to_string())]);
        }
    }

    /// A job ended with `status`.
    pub fn ended(&self, status: &str) {
        if !self.enabled {
            return;
        }
        self.jobs_ended
            .add(1, &[KeyValue::new("status", status.to_string())]);
    }

    /// A gauge `name` whose values the stage sets with the returned handle.
    pub fn gauge(&self, name: &'static str, description: &'static str) -> Gauge {
        let values: Gauges = Arc::default();
        let read = values.clone();
        let _ = self
            .meter
            .f64_observable_gauge(name)
            .with_description(description)
            .with_callback(move |observer| {
                if let Ok(values) = read.lock() {
                    for (labels, value) in values.iter() {
                        let attrs: Vec<KeyValue> = labels
                            .iter()
                            .map(|(k, v)| KeyValue::new(k.clone(), v.clone()))
                            .collect();
                        observer.observe(*value, &attrs);
                    }
                }
            })
            .build();
        Gauge { values }
    }
}

/// Values of one gauge, by labels.
#[derive(Clone, Default)]
pub struct Gauge {
    values: Gauges,
}

impl Gauge {
    /// Sets the value for `labels`.
    pub fn set(&self, labels: &[(&str, &str)], value: f64) {
        if let Ok(mut values) = self.values.lock() {
            values.insert(key(labels), value);
        }
    }

    /// Forgets `labels` (a finished job's series).
    pub fn remove(&self, labels: &[(&str, &str)]) {
        if let Ok(mut values) = self.values.lock() {
            values.remove(&key(labels));
        }
    }

    /// Forgets every series with label `name` = `value` (all of a job's).
    pub fn remove_all(&self, name: &str, value: &str) {
        if let Ok(mut values) = self.values.lock() {
            values.retain(|labels, _| !labels.iter().any(|(k, v)| k == name && v == value));
        }
    }

    /// Keeps only the series `keep` says yes to.
    pub fn retain(&self, mut keep: impl FnMut(&[(String, String)]) -> bool) {
        if let Ok(mut values) = self.values.lock() {
            values.retain(|labels, _| keep(labels));
        }
    }
}

fn key(labels: &[(&str, &str)]) -> Vec<(String, String)> {
    labels
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// Starts the Prometheus endpoint (`GET /metrics`, and the
/// [probes](super::probes) `/healthz` and `/readyz`) on `addr` for
/// `service` and returns its instruments; with no address, instruments that
/// record nothing. Stages start it before they connect, so an orchestrator
/// sees them alive while they wait for NATS.
pub async fn serve(
    addr: Option<SocketAddr>,
    service: &str,
    shutdown: &CancellationToken,
) -> Result<Metrics> {
    let Some(addr) = addr else {
        return Ok(Metrics::disabled());
    };
    let registry = prometheus::Registry::new();
    let exporter = opentelemetry_prometheus::exporter()
        .with_registry(registry.clone())
        .without_target_info()
        .build()
        .map_err(|e| Error::Config(format!("--metrics-addr: {e}")))?;
    let provider = SdkMeterProvider::builder().with_reader(exporter).build();
    let meter = provider.meter("jetflow");
    let metrics = Metrics::new(meter);
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| Error::Config(format!("--metrics-addr {addr}: {e}")))?;
    let app = probes::routes(metrics.readiness.clone()).route(
        "/metrics",
        axum::routing::get(move || {
            let registry = registry.clone();
            async move {
                let mut text = String::new();
                let encoder = prometheus::TextEncoder::new();
                if let Err(err) = encoder.encode_utf8(&registry.gather(), &mut text) {
                    tracing::warn!(error = %err, "cannot encode metrics");
                }
                ([("content-type", "text/plain; version=0.0.4")], text)
            }
        }),
    );
    let stop = shutdown.clone();
    let service = service.to_string();
    tokio::spawn(async move {
        tracing::info!(%addr, service, "serving metrics");
        let served = axum::serve(listener, app)
            .with_graceful_shutdown(async move { stop.cancelled().await })
            .await;
        if let Err(err) = served {
            tracing::warn!(error = %err, "metrics endpoint stopped");
        }
        drop(provider);
    });
    Ok(metrics)
}

/// How often consumer gauges are refreshed.
const CONSUMER_POLL: std::time::Duration = std::time::Duration::from_secs(1);

/// Keeps [`CONSUMER_PENDING`] and [`CONSUMER_ACK_PENDING`] for `stage`'s
/// consumers on `stream` (those `wanted` names) up to date, until
/// `shutdown`. Does nothing when metrics are off.
pub async fn watch_consumers(
    bus: crate::Bus,
    metrics: Metrics,
    stage: Stage,
    stream: String,
    wanted: fn(&str) -> bool,
    shutdown: CancellationToken,
) {
    use futures::StreamExt;
    if !metrics.enabled {
        return;
    }
    let pending = metrics.gauge(
        CONSUMER_PENDING,
        "Messages not yet handed to the stage's consumers",
    );
    let ack_pending = metrics.gauge(
        CONSUMER_ACK_PENDING,
        "Messages handed out and not yet acknowledged",
    );
    loop {
        if let Ok(stream) = bus.js.get_stream(&stream).await {
            let mut seen = Vec::new();
            let mut consumers = stream.consumers();
            while let Some(Ok(info)) = consumers.next().await {
                if !wanted(&info.name) {
                    continue;
                }
                let labels = [("stage", stage.as_str()), ("consumer", info.name.as_str())];
                pending.set(&labels, info.num_pending as f64);
                ack_pending.set(&labels, info.num_ack_pending as f64);
                seen.push(info.name.clone());
            }
            let gone = |labels: &[(String, String)]| {
                labels
                    .iter()
                    .any(|(k, v)| k == "consumer" && seen.contains(v))
            };
            pending.retain(gone);
            ack_pending.retain(gone);
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(CONSUMER_POLL) => {}
        }
    }
}
