//! `jetflow watch` and `submit --wait`: progress that reaches 100% and the
//! final tally — bars (job and active batches) on a terminal, plain lines
//! when piped. The terminal is a real pseudo-terminal, from `script(1)`.

use std::time::Duration;

use jetflow_devkit::{MockAgents, MockAgentsConfig};
use jetflow_e2e::{cli, jobs, TestEnv};
use serde_json::json;

/// Runs `jetflow args…` on a pseudo-terminal; returns what it drew there.
async fn on_a_terminal(env: &TestEnv, args: &[&str]) -> anyhow::Result<(Option<i32>, String)> {
    cli::on_a_terminal(&env.nats, args, jobs::JOB_DEADLINE).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn watch_draws_bars_on_a_terminal_and_lines_in_a_pipe_and_ends_with_the_tally(
) -> anyhow::Result<()> {
    let env = TestEnv::start("watch").await?;
    let mock = MockAgents::start(MockAgentsConfig {
        agents: 400,
        latency: Duration::from_millis(15),
        ..Default::default()
    })
    .await?;

    let spec = jobs::agents_job("on-tty", &mock, json!({"concurrency": 8}));
    jobs::submit_plain(&env.bus, spec.to_string().as_bytes()).await?;
    let (code, drawn) = on_a_terminal(&env, &["watch", "on-tty"]).await?;
    assert_eq!(code, Some(0), "{drawn}");
    assert!(
        drawn.contains("\x1b["),
        "bars redraw with escape codes: {drawn}"
    );
    assert!(
        drawn.contains("  batch "),
        "active batches get bars: {drawn}"
    );
    assert!(
        drawn.contains("400/400 100%"),
        "the bar reaches 100%: {drawn}"
    );
    assert!(
        drawn.contains("400 total, 400 succeeded, 0 failed"),
        "{drawn}"
    );

    // Piped: no escape codes, plain lines ending at 100%, then the tally.
    let spec = jobs::agents_job("piped", &mock, json!({"concurrency": 8}));
    jobs::submit_plain(&env.bus, spec.to_string().as_bytes()).await?;
    let out = cli::run_in(&env.nats, &["watch", "piped"], jobs::JOB_DEADLINE).await?;
    let (stdout, stderr) = (cli::text(&out.stdout), cli::text(&out.stderr));
    assert_eq!(out.status.code(), Some(0), "{stdout}{stderr}");
    assert!(
        !stderr.contains('\x1b') && !stdout.contains('\x1b'),
        "{stderr}"
    );
    let last = stderr.lines().last().unwrap_or_default();
    assert!(
        last.contains("completed") && last.ends_with("100.0%"),
        "{stderr}"
    );
    assert!(
        stdout.contains("400 total, 400 succeeded, 0 failed"),
        "{stdout}"
    );

    // submit --wait on a terminal draws the same bars.
    let dir = tempfile::tempdir()?;
    let file = dir.path().join("job.json");
    std::fs::write(
        &file,
        jobs::agents_job("submitted", &mock, json!({})).to_string(),
    )?;
    let (code, drawn) = on_a_terminal(&env, &["submit", &file.to_string_lossy(), "--wait"]).await?;
    assert_eq!(code, Some(0), "{drawn}");
    assert!(
        drawn.contains("400/400 100%") && drawn.contains("status    completed"),
        "{drawn}"
    );
    env.stop_services().await?;
    Ok(())
}
