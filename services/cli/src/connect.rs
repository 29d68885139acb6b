//! Connecting from the CLI: fail fast with a clear message rather than wait
//! for NATS as the services do.

use std::time::Duration;

use anyhow::Context as _;
use jetflow_protocol::Names;
use jetflow_runtime::{Bus, NatsArgs};
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

/// Just the connection, JetStream and the names: for `health`, which must
/// report missing streams and buckets rather than fail on them.
pub async fn bare(
    args: &NatsArgs,
) -> anyhow::Result<(async_nats::Client, async_nats::jetstream::Context, Names)> {
    let names = args.validate()?;
    let token = CancellationToken::new();
    let deadline = token.clone();
    let timer = tokio::spawn(async move {
        tokio::time::sleep(CONNECT_TIMEOUT).await;
        deadline.cancel();
    });
    let client = jetflow_runtime::nats::connect::connect(args, "jetflow-cli", &token).await;
    timer.abort();
    let client =
        client.with_context(|| format!("cannot reach NATS at {}", args.nats_url.join(",")))?;
    let js = async_nats::jetstream::new(client.clone());
    Ok((client, js, names))
}

async fn with_deadline<'a, F, Fut>(args: &'a NatsArgs, connect: F) -> anyhow::Result<Bus>
where
    F: FnOnce(CancellationToken) -> Fut,
    Fut: std::future::Future<Output = jetflow_runtime::Result<Bus>> + 'a,
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
