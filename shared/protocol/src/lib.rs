//! jetflow's wire contract: everything that crosses NATS, and nothing about
//! how a service moves it. Services, the CLI, workers and tests all read the
//! contract from here, so they agree by construction.
//!
//! - [`names`] — every subject, stream, consumer, bucket and key, derived from a namespace.
//! - [`stage`] — the four stages, as they are named on the wire.
//! - [`codec`] and [`headers`] — MessagePack on the wire, JSON accepted everywhere.
//! - [`job`] — the job spec users submit, its validation, and the state jetflow keeps.
//! - [`messages`] — batches, tasks, ledger entries and events between the stages,
//!   each with the de-duplication id (`Nats-Msg-Id`) it is published under.
//! - [`status`] — what a service instance reports about itself.
//! - [`limits`] — how large a message or a value may be.
//! - [`rate`] and [`target`] — rate limits and the windows they are counted in; the
//!   targets jobs call, and the limits a target carries for every job.
//! - [`duration`], [`retry`], [`text`] — human durations, backoff delays, bounded text.
//!
//! It depends on serde, the codecs and async-nats's header type only: a Rust
//! worker or tool built on it compiles no runtime, telemetry or HTTP server.

pub mod codec;
pub mod duration;
pub mod headers;
pub mod job;
pub mod limits;
pub mod messages;
pub mod names;
pub mod rate;
pub mod retry;
pub mod stage;
pub mod status;
pub mod target;
pub mod text;

pub use names::Names;
pub use stage::Stage;
