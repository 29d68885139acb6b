//! Real nats-server processes for `jetflow dev` and the tests.
//!
//! - [`binary`] — finding the executable ([`nats_server_binary`]).
//! - [`NatsServer`]: one JetStream node in a temporary directory, with
//!   crash-style [`kill`](NatsServer::kill) and [`restart`](NatsServer::restart).
//! - [`NatsCluster`]: several clustered nodes.
//!
//! Readiness is always polled (client port accepts, `/healthz` answers 200);
//! nothing sleeps a fixed time hoping the server is up.

pub mod binary;
mod cluster;
mod config;
mod ports;
mod probe;
mod process;
mod readiness;
mod server;

#[cfg(test)]
mod tests;

pub use binary::{nats_server_binary, NATS_SERVER_ENV};
pub use cluster::NatsCluster;
pub use config::ServerOptions;
pub use server::NatsServer;
