//! The library every jetflow service uses.
//!
//! - [`names`] — every subject, stream, bucket and key, derived from a namespace.
//! - [`codec`] and [`headers`] — MessagePack on the wire, JSON accepted everywhere.
//! - [`job`] — the job spec users submit, its validation, and the state jetflow keeps.
//! - [`messages`] — batches, tasks, ledger entries and events between the stages.
//! - [`config`], [`connect`], [`provision`], [`bus`] — getting a service onto NATS.
//! - [`consume`] — durable work-queue consumers that ack each message exactly once.
//! - [`scan`] — one pass over a bucket's keys, in flat memory.
//! - [`lease`], [`watch`], [`supervisor`] — per-job work, owned by one instance at a time.
//! - [`limits`], [`janitor`] — poison input: size limits, strays for unknown jobs.
//! - [`retry`] — backoff delays for durable retries.
//! - [`activity`], [`micro`] — what an instance is doing, served as a NATS micro service.
//! - [`gc`] — removing finished jobs (`jetflow gc`, automatic retention).
//! - [`worker`] — serving a `nats` handler in Rust: the handler is a function.
//! - [`metrics`] — OpenTelemetry instruments, served as Prometheus text.
//! - [`telemetry`], [`trace`] — logs, trace export, W3C trace context across messages.

pub mod activity;
pub mod bus;
pub mod codec;
pub mod config;
pub mod connect;
pub mod consume;
pub mod duration;
pub mod error;
pub mod gc;
pub mod headers;
pub mod janitor;
pub mod job;
pub mod lease;
pub mod limits;
pub mod messages;
pub mod metrics;
pub mod micro;
pub mod names;
pub mod provision;
pub mod retry;
pub mod scan;
pub mod service;
pub mod signals;
pub mod supervisor;
pub mod telemetry;
pub mod text;
pub mod trace;
pub mod watch;
pub mod worker;

pub use bus::{Bus, DeadLetter};
pub use config::{LogArgs, LogFormat, MetricsArgs, NatsArgs, RuntimeArgs};
pub use error::{Error, Result, ResultExt};
pub use names::Names;

/// A short random id for a service instance (lease owner, logs).
pub fn instance_id() -> String {
    uuid::Uuid::new_v4().simple().to_string()[..12].to_string()
}
