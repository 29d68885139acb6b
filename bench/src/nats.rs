//! The nats-server(s) the run uses: the devkit's real processes, started
//! on free ports with temporary stores, and what the report says of them.

use anyhow::Context as _;
use jetflow_devkit::{nats_server_binary, NatsCluster, NatsServer, ServerOptions};

/// `nats-server --version` of the binary the devkit starts.
pub fn server_version() -> anyhow::Result<String> {
    let binary = nats_server_binary()?;
    let out = std::process::Command::new(&binary)
        .arg("--version")
        .output()
        .with_context(|| format!("running {} --version", binary.display()))?;
    let text = String::from_utf8_lossy(&out.stdout).trim().to_string();
    anyhow::ensure!(
        out.status.success() && !text.is_empty(),
        "{} --version failed: {}",
        binary.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(text)
}

/// How the report names a `sync_interval` setting.
pub fn sync_interval(always: bool) -> String {
    if always {
        "always (fsync every write)".into()
    } else {
        "default (fsync every 2 min)".into()
    }
}

/// A single JetStream server; `sync_always` makes it fsync every write.
pub async fn start_single(sync_always: bool) -> anyhow::Result<NatsServer> {
    tokio::task::spawn_blocking(move || {
        NatsServer::start_with(ServerOptions {
            sync_always,
            ..ServerOptions::default()
        })
    })
    .await
    .context("starting nats-server")?
}

/// A 3-node cluster (the devkit's cluster uses the default sync_interval).
pub async fn start_cluster() -> anyhow::Result<NatsCluster> {
    tokio::task::spawn_blocking(|| NatsCluster::start(3))
        .await
        .context("starting the nats cluster")?
}
