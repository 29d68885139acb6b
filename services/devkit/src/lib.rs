//! Development kit for jetflow: the pieces `jetflow dev` and the end-to-end
//! tests run locally instead of production infrastructure.
//!
//! - [`nats_server`] — real `nats-server` processes with JetStream — a single
//!   [`NatsServer`] or a [`NatsCluster`] — with crash-style kill and restart.
//!   [`nats_server_binary`] finds the executable installed by `make setup`.
//! - [`mock_agents`] — [`MockAgents`], an HTTP server standing in for the
//!   agents API a migration job calls, with paging, idempotency keys, injected
//!   latency and failures, and [`MockStats`] to check what the job did.
//! - [`redirector`] — [`Redirector`], an HTTP server that answers every
//!   request with a redirect, for clients that must not follow one.

pub mod mock_agents;
pub mod nats_server;
pub mod redirector;

pub use mock_agents::{MockAgents, MockAgentsConfig, MockStats};
pub use redirector::Redirector;

pub use nats_server::{nats_server_binary, NatsCluster, NatsServer, ServerOptions};
