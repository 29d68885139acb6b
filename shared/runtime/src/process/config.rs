//! Settings every jetflow binary shares: where NATS is, which namespace, how
//! to log. Flags win over `JETFLOW_*`/`NATS_URL` env, which win over defaults.

use clap::{Args, ValueEnum};
use jetflow_protocol::names::Names;

use crate::{Error, Result};

/// Where NATS is and which namespace to use.
#[derive(Debug, Clone, Args)]
pub struct NatsArgs {
    /// NATS server URL; a comma-separated list for a cluster.
    #[arg(
        long = "nats-url",
        env = "NATS_URL",
        value_delimiter = ',',
        default_value = "nats://127.0.0.1:4222"
    )]
    pub nats_url: Vec<String>,
    /// Namespace of every subject, stream and bucket (dev, staging, prod, ...).
    #[arg(long, env = "JETFLOW_NAMESPACE", default_value = jetflow_protocol::names::DEFAULT_NAMESPACE)]
    pub namespace: String,
    /// Replicas of the streams and buckets jetflow creates (3 on a cluster).
    #[arg(long, env = "JETFLOW_REPLICAS", default_value_t = 1)]
    pub replicas: usize,
}

impl NatsArgs {
    /// Settings for `urls` and `namespace` with one replica.
    pub fn new(urls: impl IntoIterator<Item = impl Into<String>>, namespace: &str) -> Self {
        Self {
            nats_url: urls.into_iter().map(Into::into).collect(),
            namespace: namespace.to_string(),
            replicas: 1,
        }
    }

    /// Checks the settings; the error names the flag.
    pub fn validate(&self) -> Result<Names> {
        if self.nats_url.iter().all(|u| u.trim().is_empty()) {
            return Err(Error::Config(
                "--nats-url: at least one URL is needed".into(),
            ));
        }
        for url in &self.nats_url {
            if url.trim().parse::<async_nats::ServerAddr>().is_err() {
                return Err(Error::Config(format!(
                    "--nats-url: {url:?} is not a NATS URL"
                )));
            }
        }
        if !(1..=5).contains(&self.replicas) {
            return Err(Error::Config(format!(
                "--replicas: {} is outside 1..=5",
                self.replicas
            )));
        }
        Names::new(&self.namespace).map_err(|e| Error::Config(format!("--namespace: {e}")))
    }
}

/// How logs are written.
#[derive(Debug, Clone, Copy, Default, ValueEnum, PartialEq, Eq)]
pub enum LogFormat {
    /// Plain text for people.
    #[default]
    Text,
    /// One JSON object per line for machines.
    Json,
}

/// The flags every service takes: where NATS is, and the metrics endpoint.
#[derive(Debug, Clone, Args)]
pub struct ServiceArgs {
    /// NATS connection and namespace.
    #[command(flatten)]
    pub nats: NatsArgs,
    /// The metrics endpoint.
    #[command(flatten)]
    pub metrics: MetricsArgs,
}

impl ServiceArgs {
    /// Settings for `nats`, metrics off.
    pub fn new(nats: NatsArgs) -> Self {
        Self {
            nats,
            metrics: MetricsArgs::default(),
        }
    }
}

/// The metrics endpoint flag every service takes.
#[derive(Debug, Clone, Default, Args)]
pub struct MetricsArgs {
    /// Serve Prometheus metrics on this address (`GET /metrics`); off when unset.
    #[arg(long, env = "JETFLOW_METRICS_ADDR")]
    pub metrics_addr: Option<std::net::SocketAddr>,
}

/// How many threads a service runs its work on.
#[derive(Debug, Clone, Args)]
pub struct RuntimeArgs {
    /// Threads of the async runtime. A service spends its time waiting on
    /// NATS and HTTP, and every hand-off between threads costs a wake-up:
    /// on one thread each, the 2-core benchmark's latency-bound job ran
    /// 10-25% faster for 20-30% less CPU per item (docs/performance.md).
    /// Scale a stage by running more instances, or raise this for one
    /// large instance.
    #[arg(long, env = "JETFLOW_WORKER_THREADS", default_value_t = 1)]
    pub worker_threads: usize,
}

/// Logging flags.
#[derive(Debug, Clone, Args)]
pub struct LogArgs {
    /// Log format: text for people, json for machines.
    #[arg(
        long,
        env = "JETFLOW_LOG_FORMAT",
        value_enum,
        default_value_t = LogFormat::Text,
        global = true
    )]
    pub log_format: LogFormat,
}
