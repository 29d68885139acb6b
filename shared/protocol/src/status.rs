//! What a service instance reports about itself: the contract of
//! `<ns>.svc.<stage>.status` and of the `data` of every endpoint in
//! `$SRV.STATS` replies (`jetflow workers`, `nats micro stats`).

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// How many in-flight entries a report lists (the count is always exact).
pub const REPORTED_IN_FLIGHT: usize = 50;

/// A piece of work in an instance's hands.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Work {
    /// The job it belongs to.
    pub job: String,
    /// What it is: an item id for migrate, `batch 3` for batch, a page for fetch.
    pub what: String,
    /// When it started.
    pub since: DateTime<Utc>,
}

/// A job an instance works on, and since when.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct JobWork {
    /// Job id.
    pub job: String,
    /// Since when this instance works on it.
    pub since: DateTime<Utc>,
}

/// The answer to a status request: the contract of `<ns>.svc.<stage>.status`
/// and of the `data` of every endpoint in `$SRV.STATS` replies.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct StatusReport {
    /// `fetch`, `batch`, `migrate` or `reduce`.
    pub stage: String,
    /// This instance's id (also the micro service id's metadata `instance`).
    pub instance: String,
    /// The jetflow namespace it serves.
    pub namespace: String,
    /// Software version.
    pub version: String,
    /// When the instance started.
    pub started_at: DateTime<Utc>,
    /// Jobs it currently works on.
    pub jobs: Vec<JobWork>,
    /// Work in its hands, oldest first, at most [`REPORTED_IN_FLIGHT`].
    pub in_flight: Vec<Work>,
    /// How much work is in its hands (all of it, not only what is listed).
    pub in_flight_count: usize,
    /// Counters since start (`items_succeeded`, `pages_fetched`, …).
    pub counters: BTreeMap<String, u64>,
    /// Stage-specific details (migrate: `breakers`).
    #[serde(default, skip_serializing_if = "serde_json::Value::is_null")]
    pub details: serde_json::Value,
}
