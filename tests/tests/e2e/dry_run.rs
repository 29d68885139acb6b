//! `jetflow submit --dry-run` (issue 15, part 5): the count, the first
//! handler requests as migrate sends them, an estimate — with no handler
//! call and nothing written to NATS; and a field the job format does not
//! have is warned about (`--strict` refuses it).

use jetflow_devkit::{MockAgents, MockAgentsConfig};
use jetflow_e2e::{cli, jobs, webhook::Webhook, TestEnv};
use jetflow_runtime::Bus;
use serde_json::{json, Value};

/// Messages in every stream and keys in every bucket of the namespace.
async fn footprint(bus: &Bus) -> anyhow::Result<Vec<(String, u64)>> {
    let mut all = Vec::new();
    for name in bus.names.streams() {
        let mut stream = bus.js.get_stream(&name).await?;
        all.push((name, stream.info().await?.state.messages));
    }
    for bucket in bus.names.buckets() {
        let mut stream = bus.js.get_stream(format!("KV_{bucket}")).await?;
        all.push((bucket, stream.info().await?.state.messages));
    }
    Ok(all)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_dry_run_counts_shows_the_requests_and_touches_nothing() -> anyhow::Result<()> {
    let env = TestEnv::bare("dry-run").await?;
    let mock = MockAgents::start(MockAgentsConfig {
        agents: 730,
        ..Default::default()
    })
    .await?;
    let hook = Webhook::start().await?;
    let mut spec = jobs::agents_job("dry", &mock, json!({"concurrency": 10}));
    // Migrate's calls go to the webhook, to compare with the preview.
    spec["handler"] = json!({
        "type": "http",
        "url": format!("{}?agent={{id}}", hook.url),
        "headers": {"Authorization": "Bearer s3cret"},
        "body": {"agent": "$id", "template": "$params"},
        "rate_limit": "50/s",
    });
    spec["params"] = json!("v2");
    spec["batch"]["concurency"] = json!(10); // the typo a user made
    let dir = tempfile::tempdir()?;
    let file = dir.path().join("job.json");
    std::fs::write(&file, spec.to_string())?;
    let file = file.to_string_lossy().into_owned();

    let before = footprint(&env.bus).await?;
    let out = cli::run_in(
        &env.nats,
        &["submit", &file, "--dry-run", "--count", "--requests", "2"],
        cli::CLI_DEADLINE,
    )
    .await?;
    let (stdout, stderr) = (cli::text(&out.stdout), cli::text(&out.stderr));
    assert_eq!(out.status.code(), Some(0), "{stdout}{stderr}");
    assert!(
        stderr.contains("warning: batch.concurency: not a field; did you mean concurrency?"),
        "{stderr}"
    );
    assert!(stdout.contains("source    http: 730 items"), "{stdout}");
    assert!(stdout.contains("the first 2 handler requests:"), "{stdout}");
    assert!(stdout.contains("Authorization: <redacted>"), "{stdout}");
    assert!(!stdout.contains("s3cret"), "{stdout}");
    assert!(stdout.contains("rate limit 50/s makes it 15s"), "{stdout}");
    // The mock saw list calls only; nothing was written anywhere.
    let stats = mock.stats();
    assert_eq!((stats.calls, stats.pages), (0, 15));
    assert!(hook.received().is_empty());
    assert_eq!(footprint(&env.bus).await?, before);

    // --strict refuses the typo.
    let strict = cli::run_in(&env.nats, &["submit", &file, "--strict"], cli::CLI_DEADLINE).await?;
    assert_eq!(strict.status.code(), Some(2));
    assert!(jobs::state_json(&env.bus, "dry").await?.is_none());

    // The preview is what migrate sends: run the job, compare the first call.
    let lines: Vec<&str> = stdout.lines().collect();
    let post = lines
        .iter()
        .position(|l| l.trim_start().starts_with("POST "))
        .ok_or_else(|| anyhow::anyhow!("no request in {stdout}"))?;
    let url = lines[post].trim().trim_start_matches("POST ").to_string();
    let key = lines[post + 1]
        .trim()
        .trim_start_matches("Idempotency-Key: ");
    let body: Value = serde_json::from_str(lines[post + 3].trim())?;
    env.start_services();
    jobs::submit_plain(&env.bus, spec.to_string().as_bytes()).await?;
    jobs::wait_for_end(&env.bus, "dry").await?;
    let sent = hook
        .received()
        .into_iter()
        .find(|r| r.key.as_deref() == Some(key))
        .ok_or_else(|| anyhow::anyhow!("migrate never sent {key}"))?;
    assert!(
        url.ends_with(&sent.uri),
        "{url} previewed, {} sent",
        sent.uri
    );
    assert_eq!(sent.body, body);
    assert_eq!(body["template"], json!("v2"));
    env.stop_services().await?;
    Ok(())
}
