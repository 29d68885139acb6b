//! The `jetflow` command as a user runs it.

use std::{process::Output, time::Duration};

use anyhow::Context as _;
use jetflow_devkit::{MockAgents, MockAgentsConfig};
use jetflow_e2e::{
    cli::{self, text},
    jobs, TestEnv,
};
use serde_json::json;

async fn jetflow(args: &[&str], timeout: Duration) -> anyhow::Result<Output> {
    cli::run(args, timeout).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn submit_wait_follows_a_job_to_its_end_and_status_shows_it() -> anyhow::Result<()> {
    let env = TestEnv::start("cli").await?;
    let mock = MockAgents::start(MockAgentsConfig {
        agents: 300,
        ..Default::default()
    })
    .await?;
    let dir = tempfile::tempdir()?;
    let file = dir.path().join("job.json");
    let mut job = jobs::agents_job("from-cli", &mock, json!({}));
    job.as_object_mut().map(|j| j.remove("id"));
    std::fs::write(&file, serde_json::to_vec_pretty(&job)?)?;

    let url = env.server.url();
    let ns = env.nats.namespace.clone();
    let file_arg = file.to_string_lossy().into_owned();
    let out = jetflow(
        &[
            "submit",
            &file_arg,
            "--wait",
            "--nats-url",
            &url,
            "--namespace",
            &ns,
        ],
        jobs::JOB_DEADLINE,
    )
    .await?;
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert_eq!(
        out.status.code(),
        Some(0),
        "stdout: {stdout}\nstderr: {stderr}"
    );
    assert!(stdout.contains("status    completed"), "{stdout}");
    assert!(
        stdout.contains("300 total, 300 succeeded, 0 failed"),
        "{stdout}"
    );
    // Piped, so plain progress lines instead of a bar, ending at 100%.
    assert!(
        stderr
            .lines()
            .any(|l| l.contains("completed") && l.ends_with("100.0%")),
        "{stderr}"
    );
    let id = stderr
        .lines()
        .find_map(|l| l.strip_prefix("submitted "))
        .context("submit printed no id")?
        .to_string();
    assert!(id.starts_with("job-"), "an id was assigned: {id}");

    let out = jetflow(
        &[
            "status",
            &id,
            "--json",
            "--nats-url",
            &url,
            "--namespace",
            &ns,
        ],
        Duration::from_secs(30),
    )
    .await?;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let shown: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    let stored = jobs::state_json(&env.bus, &id).await?.context("state")?;
    assert_eq!(shown, stored, "status --json is the KV value");

    let out = jetflow(
        &["status", &id, "--nats-url", &url, "--namespace", &ns],
        Duration::from_secs(30),
    )
    .await?;
    assert!(text(&out.stdout).contains("rate"), "{}", text(&out.stdout));
    env.stop_services().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn submit_names_the_bad_field_and_sends_nothing() -> anyhow::Result<()> {
    let env = TestEnv::bare("cli-bad").await?;
    let dir = tempfile::tempdir()?;
    let file = dir.path().join("bad.json");
    std::fs::write(
        &file,
        json!({"id": "bad", "source": {"type": "ids", "ids": ["a"]}, "handler": {"type": "http", "url": "http://x/{id}"},
               "batch": {"concurrency": 0}})
        .to_string(),
    )?;
    let out = jetflow(
        &[
            "submit",
            &file.to_string_lossy(),
            "--nats-url",
            &env.server.url(),
            "--namespace",
            &env.nats.namespace,
        ],
        Duration::from_secs(30),
    )
    .await?;
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("batch.concurrency"),
        "{}",
        text(&out.stderr)
    );
    let info = env
        .bus
        .js
        .get_stream(env.bus.names.jobs_stream())
        .await?
        .get_info()
        .await?;
    assert_eq!(info.state.messages, 0, "nothing was submitted");

    let out = jetflow(
        &[
            "status",
            "no-such-job",
            "--nats-url",
            &env.server.url(),
            "--namespace",
            &env.nats.namespace,
        ],
        Duration::from_secs(30),
    )
    .await?;
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("no job"));
    Ok(())
}

/// `make demo`, smaller: `jetflow dev --demo` with its own nats-server.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_runs_to_an_exact_tally() -> anyhow::Result<()> {
    let out = jetflow(&["dev", "--demo", "--agents", "2000"], jobs::JOB_DEADLINE).await?;
    let stdout = text(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "stdout: {stdout}\nstderr: {}",
        text(&out.stderr)
    );
    assert!(stdout.contains("tally checks out"), "{stdout}");
    assert!(stdout.contains("items     2000 total"), "{stdout}");
    Ok(())
}
