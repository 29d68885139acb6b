//! Running the `jetflow` binary as a user would, against a test's NATS.

use std::{process::Output, time::Duration};

use anyhow::Context as _;
use jetflow_shared::NatsArgs;

use crate::processes::binary;

/// How long a CLI command may take before the test gives up on it.
pub const CLI_DEADLINE: Duration = Duration::from_secs(60);

/// Runs `jetflow args…` with no NATS settings (e.g. `dev`), stdin closed,
/// stdout and stderr piped.
pub async fn run(args: &[&str], timeout: Duration) -> anyhow::Result<Output> {
    let mut command = tokio::process::Command::new(binary("jetflow")?);
    command
        .args(args)
        .kill_on_drop(true)
        .stdin(std::process::Stdio::null());
    tokio::time::timeout(timeout, command.output())
        .await
        .with_context(|| format!("jetflow {args:?} did not finish within {timeout:?}"))?
        .context("running jetflow")
}

/// Runs `jetflow args…` against `nats` (through `NATS_URL` and
/// `JETFLOW_NAMESPACE`, as an operator's shell would).
pub async fn run_in(nats: &NatsArgs, args: &[&str], timeout: Duration) -> anyhow::Result<Output> {
    let mut command = tokio::process::Command::new(binary("jetflow")?);
    command
        .args(args)
        .env("NATS_URL", nats.nats_url.join(","))
        .env("JETFLOW_NAMESPACE", &nats.namespace)
        .kill_on_drop(true)
        .stdin(std::process::Stdio::null());
    tokio::time::timeout(timeout, command.output())
        .await
        .with_context(|| format!("jetflow {args:?} did not finish within {timeout:?}"))?
        .context("running jetflow")
}

/// Runs `jetflow args…` against `nats`; fails unless it exits 0; returns stdout.
pub async fn ok(nats: &NatsArgs, args: &[&str]) -> anyhow::Result<String> {
    let out = run_in(nats, args, CLI_DEADLINE).await?;
    anyhow::ensure!(
        out.status.success(),
        "jetflow {args:?} exited {:?}\nstdout: {}\nstderr: {}",
        out.status.code(),
        text(&out.stdout),
        text(&out.stderr)
    );
    Ok(text(&out.stdout))
}

/// Output bytes as text.
pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}
