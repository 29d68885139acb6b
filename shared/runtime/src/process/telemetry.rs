//! Logs and traces.
//!
//! Logs go to stderr, as text or JSON (`--log-format`), filtered by
//! `RUST_LOG` (default `info`). Traces are exported over OTLP/HTTP when the
//! standard `OTEL_EXPORTER_OTLP_ENDPOINT` (or `…_TRACES_ENDPOINT`) is set,
//! named by `OTEL_SERVICE_NAME` (default: the binary's name); with neither
//! set no OpenTelemetry layer is installed, so the spans jetflow creates at
//! debug level (one per item) cost nothing. Spans of jetflow's own crates go
//! to the exporter at debug level whatever `RUST_LOG` says.

use std::io::IsTerminal;

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::{propagation::TraceContextPropagator, trace::SdkTracerProvider, Resource};
use tracing_subscriber::{filter::Targets, fmt, layer::SubscriberExt, EnvFilter, Layer, Registry};

use crate::process::config::LogFormat;

/// Crates whose spans are exported.
const TRACED_CRATES: [&str; 6] = [
    "jetflow_runtime",
    "jetflow_fetch",
    "jetflow_batch",
    "jetflow_migrate",
    "jetflow_reduce",
    "jetflow",
];

type BoxedLayer = Box<dyn Layer<Registry> + Send + Sync>;

/// Keeps the trace exporter alive; flushes what it holds when dropped.
#[must_use = "dropping it stops exporting traces"]
pub struct Telemetry {
    provider: Option<SdkTracerProvider>,
}

impl Drop for Telemetry {
    fn drop(&mut self) {
        if let Some(provider) = self.provider.take() {
            if let Err(err) = provider.shutdown() {
                eprintln!("flushing traces: {err}");
            }
        }
    }
}

/// The stderr log layer in `format`, filtered by `RUST_LOG` (default `info`).
pub fn log_layer(format: LogFormat) -> BoxedLayer {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    match format {
        LogFormat::Text => fmt::layer()
            .with_ansi(std::io::stderr().is_terminal())
            .with_writer(std::io::stderr)
            .with_filter(filter)
            .boxed(),
        LogFormat::Json => fmt::layer()
            .json()
            .with_writer(std::io::stderr)
            .with_filter(filter)
            .boxed(),
    }
}

/// A subscriber with only the log layer, for tests that capture output.
pub fn subscriber(format: LogFormat) -> Box<dyn tracing::Subscriber + Send + Sync> {
    Box::new(Registry::default().with(log_layer(format)))
}

/// Whether the environment asks for traces to be exported.
pub fn tracing_requested() -> bool {
    [
        "OTEL_EXPORTER_OTLP_ENDPOINT",
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
    ]
    .iter()
    .any(|var| std::env::var_os(var).is_some_and(|v| !v.is_empty()))
}

/// Installs logging, and trace export if the environment asks for it, for
/// the process `service` (the default `service.name`). A second call only
/// returns an inert guard.
pub fn init(format: LogFormat, service: &str) -> Telemetry {
    let (otel, provider) = match tracing_requested().then(|| tracer_provider(service)) {
        Some(Ok(provider)) => {
            opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
            opentelemetry::global::set_tracer_provider(provider.clone());
            let targets = TRACED_CRATES.iter().fold(Targets::new(), |t, c| {
                t.with_target(*c, tracing::Level::DEBUG)
            });
            let layer = tracing_opentelemetry::layer()
                .with_tracer(provider.tracer("jetflow"))
                .with_filter(targets)
                .boxed();
            (Some(layer), Some(provider))
        }
        Some(Err(err)) => {
            eprintln!("{service}: not exporting traces: {err}");
            (None, None)
        }
        None => (None, None),
    };
    let subscriber = Registry::default().with(log_layer(format)).with(otel);
    if tracing::subscriber::set_global_default(subscriber).is_err() {
        return Telemetry { provider: None };
    }
    Telemetry { provider }
}

fn tracer_provider(service: &str) -> Result<SdkTracerProvider, String> {
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .build()
        .map_err(|e| e.to_string())?;
    let mut resource = Resource::builder();
    if std::env::var_os("OTEL_SERVICE_NAME").is_none() {
        resource = resource.with_service_name(service.to_string());
    }
    Ok(SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(resource.build())
        .build())
}
