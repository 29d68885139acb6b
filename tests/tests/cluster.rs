//! jetflow on fresh 3-node clusters. Its own test binary, so it runs alone:
//! three servers plus the services on two shared cores, beside the other
//! end-to-end tests, left the cluster without a bucket leader for minutes
//! (seen in CI); alone it passes. The tests here take turns for the same
//! reason.
//!
//! - The four services started at the same moment against a freshly formed
//!   cluster (as an orchestrator starts them) all come up, ten times in a
//!   row, and make R3 streams without being told.
//! - With every part as its own least-privilege user, bind-only after
//!   `jetflow provision`, a job survives the loss of the node that leads the
//!   most streams, exactly; no permission is refused and no password is in
//!   any service's output.

use std::{collections::BTreeMap, time::Duration};

use anyhow::Context as _;
use jetflow_devkit::{MockAgents, NatsCluster};
use jetflow_e2e::{
    cli,
    faults::{assert_exact, mock_config},
    jobs, least_privilege, ServiceProcesses,
};
use jetflow_protocol::{Names, Stage};
use jetflow_runtime::{
    nats::connect,
    process::micro,
    security::roles::{Role, Scope},
    Bus, NatsArgs,
};
use serde_json::json;
use tokio::sync::Mutex;
use tokio_util::sync::CancellationToken;

/// Rounds of the fresh-cluster test (`JETFLOW_CLUSTER_ROUNDS`, 10).
fn rounds() -> usize {
    std::env::var("JETFLOW_CLUSTER_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10)
}

/// One cluster at a time.
static TURN: Mutex<()> = Mutex::const_new(());

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn four_services_started_at_once_come_up_on_ten_fresh_clusters() -> anyhow::Result<()> {
    let _turn = TURN.lock().await;
    for round in 1..=rounds() {
        let started = std::time::Instant::now();
        let cluster = tokio::task::spawn_blocking(|| NatsCluster::start(3)).await??;
        let formed = started.elapsed();
        // No --replicas: a cluster of three gets R3.
        let nats = NatsArgs::new(cluster.urls(), &jetflow_e2e::unique_namespace("fresh"));
        let mut services = ServiceProcesses::start(&nats)?;
        let client = connect::connect(&nats, "jetflow-test", &CancellationToken::new()).await?;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
        loop {
            services
                .check_running()
                .with_context(|| format!("round {round}:\n{}", services.output()))?;
            let reports =
                micro::gather(&client, &nats.namespace, Duration::from_millis(500)).await?;
            let up: std::collections::BTreeSet<String> =
                reports.into_iter().map(|r| r.stage).collect();
            if up.len() == Stage::ALL.len() {
                break;
            }
            anyhow::ensure!(
                tokio::time::Instant::now() < deadline,
                "round {round}: only {up:?} came up within 2 minutes:\n{}",
                services.output()
            );
        }
        let js = async_nats::jetstream::new(client);
        let names = Names::new(&nats.namespace).map_err(anyhow::Error::msg)?;
        let tasks = js
            .get_stream(names.tasks_stream())
            .await?
            .get_info()
            .await?;
        assert_eq!(
            tasks.config.num_replicas, 3,
            "round {round}: the cluster's size"
        );
        eprintln!(
            "round {round}: cluster formed in {formed:?}, all four services up {:?} later",
            started.elapsed() - formed
        );
        if std::env::var_os("JETFLOW_CLUSTER_SHOW").is_some() {
            eprintln!("{}", services.output());
        }
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn least_privilege_parts_lose_nothing_when_the_busiest_leader_dies() -> anyhow::Result<()> {
    let _turn = TURN.lock().await;
    let namespace = jetflow_e2e::unique_namespace("cluster");
    let roles = least_privilege::roles(&namespace, &Scope::default(), |_, _| {})?;
    let config = roles.config.clone();
    let mut cluster =
        tokio::task::spawn_blocking(move || NatsCluster::start_with(3, Some(config))).await??;
    let users = roles.at(&cluster.urls());
    let admin = users[&Role::Admin].clone();
    let provisioned = cli::ok(&admin, &["provision"]).await?;
    assert!(provisioned.contains(" R3 "), "{provisioned}");
    let token = CancellationToken::new();
    let bus = Bus::connect(&admin, "jetflow-test", &token).await?;

    // A service started with --replicas 1 (and the right to provision) must
    // not de-replicate anything.
    let mut careless = admin.clone();
    careless.no_provision = false;
    careless.replicas = Some(1);
    Bus::connect(&careless, "careless", &token).await?;
    for name in [
        bus.names.tasks_stream(),
        bus.names.results_stream(),
        format!("KV_{}", bus.names.items_bucket()),
    ] {
        let info = bus.js.get_stream(&name).await?.get_info().await?;
        assert_eq!(info.config.num_replicas, 3, "{name} is still replicated");
    }

    let services = ServiceProcesses::start_each(
        |binary| {
            let role: Role = binary
                .trim_start_matches("jetflow-")
                .parse()
                .expect("a stage binary");
            users[&role].clone()
        },
        1,
        // Info logs, so the secret grep below has text to search.
        &[("RUST_LOG", "info")],
    )?;
    let mock = MockAgents::start(mock_config(2000)).await?;
    let spec = jobs::agents_job("replicated", &mock, json!({"concurrency": 30}));
    jobs::submit_plain(&bus, spec.to_string().as_bytes()).await?;
    jobs::wait_for_state(&bus, "replicated", |s| s.succeeded >= 300).await?;

    let busiest = busiest_leader(&bus).await?;
    eprintln!("killing {busiest}, which leads the most streams");
    let index = busiest
        .trim_start_matches('n')
        .parse::<usize>()
        .context("a node name n1..n3")?
        - 1;
    cluster.kill(index);
    assert_exact(&bus, &mock, "replicated", 2000).await?;

    for i in 0..cluster.len() {
        let violations = least_privilege::violations(cluster.server(i));
        assert!(
            violations.is_empty(),
            "n{}: {}",
            i + 1,
            violations.join("\n")
        );
    }
    let output = services.output();
    assert!(
        output.contains("migrate ready"),
        "the services' logs were read"
    );
    for password in &roles.passwords {
        assert!(
            !output.contains(password.as_str()),
            "a password in the services' output"
        );
    }
    Ok(())
}

/// The server leading the most of the namespace's streams and buckets.
async fn busiest_leader(bus: &Bus) -> anyhow::Result<String> {
    let mut leads: BTreeMap<String, usize> = BTreeMap::new();
    let buckets = bus.names.buckets().into_iter().map(|b| format!("KV_{b}"));
    for stream in bus.names.streams().into_iter().chain(buckets) {
        let info = bus.js.get_stream(&stream).await?.get_info().await?;
        if let Some(leader) = info.cluster.and_then(|c| c.leader) {
            *leads.entry(leader).or_default() += 1;
        }
    }
    eprintln!("stream leaders: {leads:?}");
    leads
        .into_iter()
        .max_by_key(|(_, n)| *n)
        .map(|(node, _)| node)
        .context("no stream has a leader")
}
