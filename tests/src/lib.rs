//! The end-to-end test harness: a real nats-server per test, the four
//! services (in-process or as their own processes), a mock agents API over
//! real HTTP, a headless Chromium, and helpers that wait for conditions
//! with deadlines.

pub mod browser;
pub mod cli;
pub mod dashboard;
pub mod env;
pub mod faults;
pub mod jobs;
pub mod jwt;
pub mod least_privilege;
pub mod otlp;
pub mod pki;
pub mod polyglot;
pub mod processes;
pub mod shell;
pub mod webhook;

pub use env::TestEnv;
pub use processes::ServiceProcesses;

/// Fresh namespace per test, so tests never see each other's state.
pub fn unique_namespace(prefix: &str) -> String {
    format!("{prefix}-{}", &jetflow_runtime::instance_id()[..8])
}
