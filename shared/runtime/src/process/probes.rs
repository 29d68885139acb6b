//! Liveness and readiness for an orchestrator, served beside `/metrics` on
//! `--metrics-addr`:
//!
//! - `GET /healthz` answers 200 while the process runs (its runtime
//!   answers requests). It says nothing about NATS: a stage waiting for an
//!   unreachable NATS is alive and must not be restarted for it.
//! - `GET /readyz` answers 200 once the stage has connected to NATS and
//!   found or made what it needs, and while that connection is up; 503 with
//!   the reason otherwise (still starting, or connection lost).
//!
//! The endpoint starts before the stage connects, so a probe sees a stage
//! that waits as alive and not ready.

use std::sync::{Arc, OnceLock};

use async_nats::{connection::State, Client};

/// Whether a stage is ready, shared between the stage and its endpoint.
#[derive(Clone, Default)]
pub struct Readiness {
    client: Arc<OnceLock<Client>>,
}

impl Readiness {
    /// The stage is up: ready while `client` stays connected.
    pub fn ready(&self, client: &Client) {
        let _ = self.client.set(client.clone());
    }

    /// 200 and `ready`, or 503 and why not.
    pub fn verdict(&self) -> (u16, &'static str) {
        judge(self.client.get().map(Client::connection_state))
    }
}

/// The answer for a stage whose connection is in `state` (`None`: not up
/// yet).
fn judge(state: Option<State>) -> (u16, &'static str) {
    match state {
        None => (503, "starting: connecting to NATS and binding streams\n"),
        Some(State::Connected) => (200, "ready\n"),
        Some(State::Pending) => (503, "NATS connection lost; reconnecting\n"),
        Some(State::Disconnected) => (503, "NATS connection closed\n"),
    }
}

/// `/healthz` and `/readyz` for `readiness`.
pub fn routes(readiness: Readiness) -> axum::Router {
    use axum::{http::StatusCode, routing::get};
    axum::Router::new()
        .route("/healthz", get(|| async { "alive\n" }))
        .route(
            "/readyz",
            get(move || {
                let (code, text) = readiness.verdict();
                async move {
                    let status =
                        StatusCode::from_u16(code).unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
                    (status, text)
                }
            }),
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ready_only_while_connected_after_starting() {
        assert_eq!(judge(None).0, 503);
        assert_eq!(judge(Some(State::Connected)), (200, "ready\n"));
        assert_eq!(judge(Some(State::Pending)).0, 503);
        assert_eq!(judge(Some(State::Disconnected)).0, 503);
        assert_eq!(Readiness::default().verdict().0, 503);
    }
}
