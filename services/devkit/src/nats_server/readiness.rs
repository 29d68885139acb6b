//! What "ready" means for a nats-server, and how long to wait for it.

use std::time::Duration;

/// Upper bound on waiting for a server (or a whole cluster) to become ready.
pub(crate) const READY_TIMEOUT: Duration = Duration::from_secs(20);

/// Pause between readiness probes. Polling, not a fixed sleep: a server that is
/// ready after 30 ms is used after 30 ms.
pub(crate) const POLL_INTERVAL: Duration = Duration::from_millis(25);

/// Which health check a node must pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Health {
    /// A single node: JetStream is enabled.
    Standalone,
    /// A cluster member: plain `/healthz` answers 200 only once the node knows
    /// the JetStream meta leader and has caught up with its assets.
    Clustered,
}

impl Health {
    /// Monitoring path to GET; 200 means ready.
    pub(crate) fn path(self) -> &'static str {
        match self {
            Health::Standalone => "/healthz?js-enabled-only=true",
            Health::Clustered => "/healthz",
        }
    }
}

/// Result of one readiness probe that did not succeed.
#[derive(Debug)]
pub(crate) enum NotReady {
    /// Still starting; probe again.
    Pending,
    /// The process is gone, typically because a port was taken.
    Exited(std::process::ExitStatus),
    /// There is no process (it was killed).
    NotRunning,
}
