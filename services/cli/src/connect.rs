//! Connecting from the CLI: fail fast with a clear message rather than wait
//! for NATS as the services do.

use std::time::Duration;

use anyhow::Context as _;
use jetflow_shared::{Bus, NatsArgs};
use tokio_util::sync::CancellationToken;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Connects and provisions (for commands that write, like `submit`).
pub async fn provisioned(args: &NatsArgs) -> anyhow::Result<Bus> {
    with_deadline(args, |token| async move {
        Bus::connect(args, "jetflow-cli", &token).await
    })
    .await
}

/// Connects to an existing namespace without creating anything.
pub async fn existing(args: &NatsArgs) -> anyhow::Result<Bus> {
    with_deadline(args, |token| async move {
        Bus::open(args, "jetflow-cli", &token).await
    })
    .await
}

async fn with_deadline<'a, F, Fut>(args: &'a NatsArgs, connect: F) -> anyhow::Result<Bus>
where
    F: FnOnce(CancellationToken) -> Fut,
    Fut: std::future::Future<Output = jetflow_shared::Result<Bus>> + 'a,
{
    let token = CancellationToken::new();
    let deadline = token.clone();
    let timer = tokio::spawn(async move {
        tokio::time::sleep(CONNECT_TIMEOUT).await;
        deadline.cancel();
    });
    let result = connect(token).await;
    timer.abort();
    result.with_context(|| {
        format!(
            "cannot use NATS at {} (namespace {:?})",
            args.nats_url.join(","),
            args.namespace
        )
    })
}
