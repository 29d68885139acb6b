//! Connecting from the CLI: fail fast with one clear line rather than wait
//! for NATS as the services do. A server that refuses the credentials or the
//! TLS handshake ends the command at once; one that cannot be reached, after
//! a few seconds.

use std::time::Duration;

use anyhow::Context as _;
use jetflow_protocol::Names;
use jetflow_runtime::{nats::connect::connect_within, Bus, NatsArgs};

/// How long the CLI tries to reach NATS.
const PATIENCE: Duration = Duration::from_secs(3);

/// The name the CLI's connections carry.
const CLIENT_NAME: &str = "jetflow-cli";

/// Connects and provisions (for commands that write, like `submit`).
pub async fn provisioned(args: &NatsArgs) -> anyhow::Result<Bus> {
    let client = client(args).await?;
    Bus::provisioned(client, args)
        .await
        .with_context(|| setting_up(args))
}

/// Connects to an existing namespace without creating anything.
pub async fn existing(args: &NatsArgs) -> anyhow::Result<Bus> {
    let client = client(args).await?;
    Bus::opened(client, args)
        .await
        .with_context(|| setting_up(args))
}

/// Just the connection, JetStream and the names: for `health`, which must
/// report missing streams and buckets rather than fail on them.
pub async fn bare(
    args: &NatsArgs,
) -> anyhow::Result<(async_nats::Client, async_nats::jetstream::Context, Names)> {
    let names = args.validate()?;
    let client = client(args).await?;
    let js = async_nats::jetstream::new(client.clone());
    Ok((client, js, names))
}

async fn client(args: &NatsArgs) -> anyhow::Result<async_nats::Client> {
    args.validate()?;
    Ok(connect_within(args, CLIENT_NAME, PATIENCE).await?)
}

fn setting_up(args: &NatsArgs) -> String {
    format!(
        "cannot use NATS at {} (namespace {:?})",
        args.display_urls(),
        args.namespace
    )
}
