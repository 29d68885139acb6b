//! Metrics: each service's Prometheus endpoint shows counters that match
//! the job's final tally exactly; a real Prometheus (Debian's, unpacked by
//! `make setup`) scrapes all four and sums the same numbers; the shipped
//! alert rules pass `promtool check rules`.

use std::{net::SocketAddr, path::PathBuf, process::Stdio, time::Duration};

use anyhow::{bail, Context as _};
use jetflow_devkit::{MockAgents, MockAgentsConfig};
use jetflow_e2e::{jobs, TestEnv};
use jetflow_protocol::job::{JobState, JobStatus};
use serde_json::json;

fn free_addr() -> anyhow::Result<SocketAddr> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?)
}

/// The value of the sample `name` whose labels include all of `labels`
/// (summed over the others), from Prometheus text.
fn sample(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let mut found = None;
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let Some((series, value)) = line.rsplit_once(' ') else {
            continue;
        };
        let (metric, label_text) = match series.split_once('{') {
            Some((m, rest)) => (m, rest.trim_end_matches('}')),
            None => (series, ""),
        };
        if metric != name {
            continue;
        }
        let all = labels
            .iter()
            .all(|(k, v)| label_text.contains(&format!("{k}=\"{v}\"")));
        if all {
            *found.get_or_insert(0.0) += value.parse::<f64>().unwrap_or(f64::NAN);
        }
    }
    found
}

async fn scrape(addr: SocketAddr) -> anyhow::Result<String> {
    let text = reqwest::get(format!("http://{addr}/metrics"))
        .await?
        .error_for_status()?
        .text()
        .await?;
    Ok(text)
}

fn repo() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn metrics_match_the_tally_and_prometheus_scrapes_every_service() -> anyhow::Result<()> {
    let env = TestEnv::bare("metrics").await?;
    let addrs = [free_addr()?, free_addr()?, free_addr()?, free_addr()?];
    let nats = env.nats.clone();
    let mut fetch = jetflow_fetch::Config::new(nats.clone());
    fetch.service.metrics.metrics_addr = Some(addrs[0]);
    let mut batch = jetflow_batch::Config::new(nats.clone());
    batch.service.metrics.metrics_addr = Some(addrs[1]);
    let mut migrate = jetflow_migrate::Config::new(nats.clone());
    migrate.service.metrics.metrics_addr = Some(addrs[2]);
    let mut reduce = jetflow_reduce::Config::new(nats);
    reduce.service.metrics.metrics_addr = Some(addrs[3]);
    env.start_services_configured(fetch, batch, migrate, reduce);

    let mock = MockAgents::start(MockAgentsConfig {
        agents: 3000,
        latency: Duration::from_millis(20),
        transient_rate: 0.05,
        permanent_rate: 0.03,
        ..Default::default()
    })
    .await?;
    let spec = jobs::agents_job("measured", &mock, json!({"concurrency": 20}));
    jobs::submit_plain(&env.bus, spec.to_string().as_bytes()).await?;

    // During the job: counters are moving, the job's consumer and its
    // batches in flight are reported (gauges refresh every second).
    jobs::wait_for_state(&env.bus, "measured", |s| s.succeeded >= 300).await?;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let (migrate_now, reduce_now) = (scrape(addrs[2]).await?, scrape(addrs[3]).await?);
        let counted = sample(
            &migrate_now,
            "jetflow_items_total",
            &[("status", "succeeded")],
        );
        let consumer = sample(
            &migrate_now,
            "jetflow_consumer_pending",
            &[("consumer", "task_measured")],
        );
        let batches = sample(
            &reduce_now,
            "jetflow_batches_in_flight",
            &[("job", "measured")],
        );
        if counted.unwrap_or(0.0) >= 1.0 && consumer.is_some() && batches.is_some() {
            break;
        }
        anyhow::ensure!(
            tokio::time::Instant::now() < deadline,
            "mid-job scrape lacks counters or gauges: {migrate_now}\n{reduce_now}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    let state: JobState = jobs::wait_for_end(&env.bus, "measured").await?;
    assert_eq!(state.status, JobStatus::Partial);
    let kind = [("job_kind", "migrate-agents")];
    let exact = |text: &str, name: &str, labels: &[(&str, &str)], want: u64| {
        let got = sample(text, name, labels);
        assert_eq!(got, Some(want as f64), "{name}{labels:?}: {text}");
    };
    let fetch_text = scrape(addrs[0]).await?;
    exact(
        &fetch_text,
        "jetflow_items_fetched_total",
        &kind,
        state.total,
    );
    let batch_text = scrape(addrs[1]).await?;
    exact(
        &batch_text,
        "jetflow_tasks_published_total",
        &kind,
        state.total,
    );
    let migrate_text = scrape(addrs[2]).await?;
    exact(
        &migrate_text,
        "jetflow_items_total",
        &[("status", "succeeded")],
        state.succeeded,
    );
    exact(
        &migrate_text,
        "jetflow_items_total",
        &[("status", "failed")],
        state.failed,
    );
    exact(
        &migrate_text,
        "jetflow_items_total",
        &[("status", "retried")],
        state.retries,
    );
    exact(
        &migrate_text,
        "jetflow_items_dead_lettered_total",
        &kind,
        state.dead_lettered,
    );
    let calls = state.succeeded + state.failed + state.retries;
    exact(
        &migrate_text,
        "jetflow_handler_duration_seconds_count",
        &[],
        calls,
    );
    let reduce_text = scrape(addrs[3]).await?;
    exact(
        &reduce_text,
        "jetflow_outcomes_total",
        &[("status", "succeeded")],
        state.succeeded,
    );
    exact(
        &reduce_text,
        "jetflow_outcomes_total",
        &[("status", "failed")],
        state.failed,
    );
    exact(
        &reduce_text,
        "jetflow_jobs_ended_total",
        &[("status", "partial")],
        1,
    );

    prometheus_scrapes(&addrs, state.succeeded + state.failed).await?;
    env.stop_services().await?;
    Ok(())
}

/// Starts Prometheus scraping `addrs` every second and waits until it sees
/// all four targets up and `sum(jetflow_outcomes_total)` equal to `outcomes`.
async fn prometheus_scrapes(addrs: &[SocketAddr; 4], outcomes: u64) -> anyhow::Result<()> {
    let binary = repo().join(".tools/prometheus/usr/bin/prometheus");
    if !binary.exists() {
        bail!("{} not found: run `make setup`", binary.display());
    }
    let dir = tempfile::tempdir()?;
    let jobs = [
        "jetflow-fetch",
        "jetflow-batch",
        "jetflow-migrate",
        "jetflow-reduce",
    ];
    let mut config = String::from("global:\n  scrape_interval: 1s\nscrape_configs:\n");
    for (job, addr) in jobs.iter().zip(addrs) {
        config.push_str(&format!(
            "  - job_name: {job}\n    static_configs:\n      - targets: [\"{addr}\"]\n"
        ));
    }
    let config_path = dir.path().join("prometheus.yml");
    std::fs::write(&config_path, config)?;
    let web = free_addr()?;
    let mut prometheus = tokio::process::Command::new(&binary)
        .arg(format!("--config.file={}", config_path.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.path().join("data").display()
        ))
        .arg(format!("--web.listen-address={web}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .context("starting prometheus")?;
    let query = |q: &'static str| async move {
        let answer: serde_json::Value = reqwest::Client::new()
            .get(format!("http://{web}/api/v1/query"))
            .query(&[("query", q)])
            .send()
            .await?
            .json()
            .await?;
        anyhow::Ok(answer["data"]["result"].clone())
    };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let mut last = serde_json::Value::Null;
    loop {
        if let (Ok(up), Ok(sum)) = (
            query("up").await,
            query("sum(jetflow_outcomes_total)").await,
        ) {
            let all_up = up.as_array().is_some_and(|targets| {
                targets.len() == 4 && targets.iter().all(|t| t["value"][1] == "1")
            });
            let summed = sum[0]["value"][1]
                .as_str()
                .and_then(|v| v.parse::<f64>().ok());
            if all_up && summed == Some(outcomes as f64) {
                break;
            }
            last = json!({"up": up, "sum": sum});
        }
        if tokio::time::Instant::now() > deadline {
            bail!("prometheus never saw all four services with {outcomes} outcomes: {last}");
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    prometheus.kill().await?;

    let check = tokio::process::Command::new(repo().join(".tools/prometheus/usr/bin/promtool"))
        .args(["check", "rules"])
        .arg(repo().join("deploy/prometheus/alerts.yml"))
        .output()
        .await?;
    assert!(
        check.status.success(),
        "promtool rejected the alert rules: {}{}",
        String::from_utf8_lossy(&check.stdout),
        String::from_utf8_lossy(&check.stderr)
    );
    Ok(())
}

/// `GET <path>` on `addr`: the status code and body.
async fn probe(addr: SocketAddr, path: &str) -> anyhow::Result<(u16, String)> {
    let response = reqwest::get(format!("http://{addr}{path}")).await?;
    Ok((response.status().as_u16(), response.text().await?))
}

/// Polls `path` until it answers `code`.
async fn probe_until(addr: SocketAddr, path: &str, code: u16) -> anyhow::Result<String> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        match probe(addr, path).await {
            Ok((got, body)) if got == code => return Ok(body),
            other if tokio::time::Instant::now() > deadline => {
                bail!("{path} never answered {code}; last {other:?}")
            }
            _ => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

/// A stage waiting for NATS is alive and not ready; ready once connected
/// and bound; not ready again when the server goes.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn probes_say_alive_while_waiting_and_ready_only_while_connected() -> anyhow::Result<()> {
    let port = free_addr()?.port();
    let addr = free_addr()?;
    let nats = jetflow_runtime::NatsArgs::new(
        [format!("nats://127.0.0.1:{port}")],
        &jetflow_e2e::unique_namespace("probes"),
    );
    let mut config = jetflow_migrate::Config::new(nats);
    config.service.metrics.metrics_addr = Some(addr);
    let shutdown = tokio_util::sync::CancellationToken::new();
    let stage = tokio::spawn(jetflow_migrate::run(config, shutdown.clone()));

    assert_eq!(probe_until(addr, "/healthz", 200).await?, "alive\n");
    let (code, why) = probe(addr, "/readyz").await?;
    assert_eq!(code, 503);
    assert!(why.contains("starting"), "{why}");

    let options = jetflow_devkit::ServerOptions {
        port: Some(port),
        ..Default::default()
    };
    let mut server =
        tokio::task::spawn_blocking(move || jetflow_devkit::NatsServer::start_with(options))
            .await??;
    assert_eq!(probe_until(addr, "/readyz", 200).await?, "ready\n");

    server.kill();
    let why = probe_until(addr, "/readyz", 503).await?;
    assert!(why.contains("NATS connection"), "{why}");
    assert_eq!(probe(addr, "/healthz").await?.0, 200);
    shutdown.cancel();
    stage.await??;
    Ok(())
}
