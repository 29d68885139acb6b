//! How a jetflow service runs; what it sends is `jetflow_protocol`'s.
//!
//! - [`nats`] — connecting, provisioning, the [`Bus`], durable consumers, the
//!   per-job [task queue](nats::task_queue), bucket scans and watches.
//! - [`ownership`] — per-job work owned by one instance at a time: leases and
//!   the supervisor.
//! - [`process`] — flags, `main`, signals, logs, traces, metrics, and the
//!   micro service reporting an instance's activity.
//! - [`ops`] — removing finished jobs (`jetflow gc`, retention) and
//!   dead-lettering strays.
//! - [`security`] — the least-privilege NATS rights of each part.
//! - [`error`] — one error type, with kinds callers match on.

pub mod error;
pub mod nats;
pub mod ops;
pub mod ownership;
pub mod process;
pub mod security;

pub use error::{Error, ErrorKind, Result, ResultExt};
pub use nats::bus::{Bus, DeadLetter};
pub use process::config::{LogArgs, LogFormat, MetricsArgs, NatsArgs, RuntimeArgs, ServiceArgs};

/// A short random id for a service instance (lease owner, logs).
pub fn instance_id() -> String {
    uuid::Uuid::new_v4().simple().to_string()[..12].to_string()
}
