//! One node of a 3-node R3 cluster killed mid-job: the job completes with an
//! exact tally. Its own test binary, so it runs alone: three servers plus the
//! services on two shared cores, beside the other end-to-end tests, left the
//! cluster without a bucket leader for minutes (seen in CI); alone it passes.

use jetflow_devkit::{MockAgents, NatsCluster};
use jetflow_e2e::{
    faults::{assert_exact, mock_config},
    jobs, ServiceProcesses,
};
use jetflow_runtime::{nats::provision, Bus, NatsArgs};
use serde_json::json;
use tokio_util::sync::CancellationToken;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_cluster_node_lost_mid_job_loses_nothing() -> anyhow::Result<()> {
    let mut cluster = tokio::task::spawn_blocking(|| NatsCluster::start(3)).await??;
    let mut nats = NatsArgs::new(cluster.urls(), &jetflow_e2e::unique_namespace("cluster"));
    nats.replicas = Some(3);
    let token = CancellationToken::new();
    let bus = Bus::connect(&nats, "jetflow-test", &token).await?;
    // With no --replicas at all, a namespace on a 3-node cluster is R3.
    let unset = NatsArgs::new(cluster.urls(), &jetflow_e2e::unique_namespace("unset"));
    let defaulted = Bus::connect(&unset, "jetflow-test", &token).await?;
    let info = defaulted
        .js
        .get_stream(defaulted.names.tasks_stream())
        .await?
        .get_info()
        .await?;
    assert_eq!(
        info.config.num_replicas, 3,
        "the cluster's size, by default"
    );
    // Gone again: every R3 asset is a raft group the node loss below must
    // re-elect, and two cores are slow at that.
    for config in provision::stream_configs(&defaulted.names, 3) {
        defaulted.js.delete_stream(&config.name).await?;
    }
    for config in provision::bucket_configs(&defaulted.names, 3) {
        defaulted.js.delete_key_value(&config.bucket).await?;
    }
    // A service started with --replicas 1 must not de-replicate anything.
    let mut careless = nats.clone();
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
    let _services = ServiceProcesses::start(&nats)?;
    let mock = MockAgents::start(mock_config(2000)).await?;
    let spec = jobs::agents_job("replicated", &mock, json!({"concurrency": 30}));
    jobs::submit_plain(&bus, spec.to_string().as_bytes()).await?;
    jobs::wait_for_state(&bus, "replicated", |s| s.succeeded >= 300).await?;

    cluster.kill(1);
    assert_exact(&bus, &mock, "replicated", 2000).await
}
