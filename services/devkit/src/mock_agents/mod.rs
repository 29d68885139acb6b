//! A mock of the agents API that migration jobs call.
//!
//! It serves `agent-00001..` of one organization and behaves like a real
//! service would, including its failures:
//!
//! - `GET /agents?organizationId=&cursor=&limit=`: cursor paging; `limit`
//!   above the page limit is a 400.
//! - `GET /agents/{id}`: one agent.
//! - `POST /agents/{id}/migrate`: 404 for unknown ids, replays for a repeated
//!   `Idempotency-Key`, then injected latency, 422 for permanently failing
//!   agents, 503 at the transient rate, else 200.
//! - `GET /stats`: [`MockStats`].
//! - `GET|POST /admin/faults`: read or change `transient_rate`,
//!   `permanent_rate`, `latency_ms` and `down` while running.
//!
//! [`MockAgents`] starts it and gives tests the same controls and counters.

mod catalog;
mod config;
mod faults;
mod job;
mod occupancy;
mod routes;
mod server;
mod state;
mod stats;

#[cfg(test)]
mod test_client;
#[cfg(test)]
mod tests;

pub use config::MockAgentsConfig;
pub use routes::IDEMPOTENCY_KEY;
pub use server::MockAgents;
pub use stats::MockStats;
