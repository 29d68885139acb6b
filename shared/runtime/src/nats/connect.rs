//! Connecting to NATS. A service waits for NATS rather than failing at start
//! (it is often started before the cluster is ready); once connected,
//! async-nats reconnects on its own for as long as the service runs.

use std::time::Duration;

use async_nats::{Client, ConnectOptions, ServerAddr};
use tokio_util::sync::CancellationToken;

use crate::{process::config::NatsArgs, Error, Result};

/// Connects as `name` to the servers in `args`, retrying until connected or
/// `shutdown` is cancelled.
pub async fn connect(args: &NatsArgs, name: &str, shutdown: &CancellationToken) -> Result<Client> {
    let addrs: Vec<ServerAddr> = args
        .nats_url
        .iter()
        .map(|u| {
            u.trim()
                .parse()
                .map_err(|_| Error::Config(format!("--nats-url: {u:?} is not a NATS URL")))
        })
        .collect::<Result<_>>()?;
    let mut delay = Duration::from_millis(100);
    loop {
        let options = ConnectOptions::new()
            .name(name)
            .connection_timeout(Duration::from_secs(3))
            .max_reconnects(None)
            // Tasks carry whole pages; leave room beyond the 64 KiB default.
            .client_capacity(8192)
            .subscription_capacity(65_536);
        match async_nats::connect_with_options(addrs.clone(), options).await {
            Ok(client) => return Ok(client),
            Err(err) => {
                tracing::warn!(error = %err, urls = ?args.nats_url, "NATS not reachable yet; retrying");
                tokio::select! {
                    _ = shutdown.cancelled() => return Err(Error::Shutdown),
                    _ = tokio::time::sleep(delay) => {}
                }
                delay = (delay * 2).min(Duration::from_secs(5));
            }
        }
    }
}
