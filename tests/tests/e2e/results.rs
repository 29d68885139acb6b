//! `jetflow results`: exactly the failed items with their errors, as CSV,
//! streamed — its peak memory does not grow with the job.

use std::collections::BTreeSet;

use anyhow::Context as _;
use futures::TryStreamExt;
use jetflow_devkit::{MockAgents, MockAgentsConfig};
use jetflow_e2e::{cli, jobs, TestEnv};
use jetflow_protocol::job::JobStatus;
use serde_json::json;
use tokio::io::AsyncBufReadExt;

async fn finished_job(env: &TestEnv, id: &str, mock: &MockAgents) -> anyhow::Result<()> {
    let spec = jobs::agents_job(
        id,
        mock,
        json!({"concurrency": 100, "max_inflight_batches": 16}),
    );
    jobs::submit_plain(&env.bus, spec.to_string().as_bytes()).await?;
    let state = jobs::wait_for_end(&env.bus, id).await?;
    anyhow::ensure!(
        matches!(state.status, JobStatus::Completed | JobStatus::Partial),
        "{id} ended {}",
        state.status
    );
    Ok(())
}

async fn measured(env: &TestEnv, args: &[&str]) -> anyhow::Result<cli::Measured> {
    let nats = env.nats.clone();
    let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    let out = tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        cli::run_measured(&nats, &args)
    })
    .await??;
    anyhow::ensure!(
        out.code == Some(0),
        "exit {:?}: {}",
        out.code,
        cli::text(&out.stderr)
    );
    Ok(out)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn results_lists_exactly_the_failed_items_and_streams_in_flat_memory() -> anyhow::Result<()> {
    let env = TestEnv::start("results").await?;
    let big = MockAgents::start(MockAgentsConfig {
        agents: 10_000,
        permanent_rate: 0.05,
        ..Default::default()
    })
    .await?;
    let small = MockAgents::start(MockAgentsConfig {
        agents: 100,
        ..Default::default()
    })
    .await?;
    finished_job(&env, "big", &big).await?;
    finished_job(&env, "small", &small).await?;

    let csv_out = measured(&env, &["results", "big", "--failed", "--format", "csv"]).await?;
    let mut reader = csv::Reader::from_reader(csv_out.stdout.as_slice());
    let headers = reader.headers()?.clone();
    let column = |name: &str| {
        headers
            .iter()
            .position(|h| h == name)
            .context(name.to_string())
    };
    let (item, status, error) = (column("item")?, column("status")?, column("error")?);
    let mut listed = BTreeSet::new();
    for row in reader.records() {
        let row = row?;
        assert_eq!(&row[status], "failed");
        assert!(row[error].contains("422"), "the error is listed: {row:?}");
        assert!(
            listed.insert(row[item].to_string()),
            "listed twice: {row:?}"
        );
    }
    let expected: BTreeSet<String> = big.permanent_failures().into_iter().collect();
    assert!(!expected.is_empty());
    assert_eq!(listed, expected, "exactly the items that failed");

    // Streamed: with its reader paused after the first line, the command
    // has pulled only a window of the records from the server — the rest
    // are still pending on its consumer, not in its memory.
    let mut paused = tokio::process::Command::new(jetflow_e2e::processes::binary("jetflow")?)
        .args(["results", "big"])
        .env("NATS_URL", env.nats.nats_url.join(","))
        .env("JETFLOW_NAMESPACE", &env.nats.namespace)
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()?;
    let mut lines = tokio::io::BufReader::new(paused.stdout.take().context("stdout")?).lines();
    let first = lines.next_line().await?.context("no first line")?;
    assert!(first.contains("\"job\":\"big\""), "{first}");
    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    let items_stream = format!("KV_{}", env.bus.names.items_bucket());
    let mut consumers = env.bus.js.get_stream(&items_stream).await?.consumers();
    // Earlier runs' consumers linger a few seconds, drained: take the most.
    let mut pending = None;
    while let Some(info) = consumers.try_next().await? {
        if info.config.filter_subject.ends_with(".big.>") {
            pending = pending.max(Some(info.num_pending));
        }
    }
    let pending = pending.context("the results command's consumer")?;
    assert!(
        pending > 5_000,
        "only {pending} of 10,000 records left on the server while the reader paused"
    );
    paused.kill().await?;

    // And its peak memory printing all 10,000 records is that of printing 100
    // (a loose bound: at this size allocator noise is a few MB).
    let all = measured(&env, &["results", "big"]).await?;
    let few = measured(&env, &["results", "small"]).await?;
    let lines_of = |out: &cli::Measured| {
        out.stdout
            .split(|b| *b == b'\n')
            .filter(|l| !l.is_empty())
            .count()
    };
    assert_eq!((lines_of(&all), lines_of(&few)), (10_000, 100));
    eprintln!(
        "results peak RSS: 10,000 items {} KiB, 100 items {} KiB",
        all.peak_rss_kib, few.peak_rss_kib
    );
    let growth = all.peak_rss_kib - few.peak_rss_kib;
    assert!(
        growth < 8 * 1024,
        "peak RSS grew {growth} KiB from 100 to 10,000 items"
    );
    env.stop_services().await?;
    Ok(())
}
