//! The benchmark's smoke mode, as CI runs it: the debug `jetflow-bench`
//! with `--smoke` must finish and find every job's tally exact. Speed is
//! not asserted: CI machines are shared.

use std::{process::Stdio, time::Duration};

use anyhow::Context as _;
use jetflow_e2e::processes::binary;

/// Generous: a debug build on a busy two-core machine.
const SMOKE_TIMEOUT: Duration = Duration::from_secs(600);

#[tokio::test]
async fn bench_smoke_finishes_with_exact_tallies() -> anyhow::Result<()> {
    let bench = binary("jetflow-bench")?;
    let child = tokio::process::Command::new(&bench)
        .arg("--smoke")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("starting {}", bench.display()))?;
    let output = tokio::time::timeout(SMOKE_TIMEOUT, child.wait_with_output())
        .await
        .context("jetflow-bench --smoke did not finish in time")?
        .context("running jetflow-bench --smoke")?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "jetflow-bench --smoke failed ({}):\n{stdout}\n{stderr}",
        output.status
    );
    assert!(
        stdout.contains("tally check: OK"),
        "no tally check line:\n{stdout}\n{stderr}"
    );
    Ok(())
}
