//! A JetStream cluster of nats-server processes on the loopback interface.

use std::time::Instant;

use anyhow::{bail, Context};

use super::binary::nats_server_binary;
use super::config::{ClusterConfig, NodeConfig};
use super::ports::free_ports;
use super::readiness::{Health, NotReady, POLL_INTERVAL, READY_TIMEOUT};
use super::server::{NatsServer, START_ATTEMPTS};

/// Name of every cluster started here.
const CLUSTER_NAME: &str = "jetflow-test";

/// `n` clustered JetStream nodes named `n1..nN`, all killed on drop.
///
/// Each node has its own store directory and routes to every other node.
/// Starting blocks until every node reports healthy, which implies a
/// JetStream meta leader has been elected.
#[derive(Debug)]
pub struct NatsCluster {
    nodes: Vec<NatsServer>,
}

impl NatsCluster {
    /// Starts an `n`-node cluster and waits until every node is healthy.
    pub fn start(n: usize) -> anyhow::Result<Self> {
        Self::start_with(n, None)
    }

    /// [`start`](Self::start), with `extra_config` appended to every node's
    /// configuration (users and permissions, say).
    pub fn start_with(n: usize, extra_config: Option<String>) -> anyhow::Result<Self> {
        if n == 0 {
            bail!("a cluster needs at least one node");
        }
        let binary = nats_server_binary()?;
        let mut last_error = None;
        for _ in 0..START_ATTEMPTS {
            let ports = free_ports(3 * n)?;
            let (client_ports, rest) = ports.split_at(n);
            let (monitor_ports, route_ports) = rest.split_at(n);
            let mut nodes = Vec::with_capacity(n);
            for i in 0..n {
                let dir = tempfile::Builder::new()
                    .prefix(&format!("jetflow-nats-n{}-", i + 1))
                    .tempdir()
                    .context("creating temp dir for nats-server")?;
                let config = NodeConfig {
                    client_port: client_ports[i],
                    monitor_port: monitor_ports[i],
                    store_dir: dir.path().join("store"),
                    sync_always: false,
                    extra_config: extra_config.clone(),
                    cluster: Some(ClusterConfig {
                        name: CLUSTER_NAME.to_owned(),
                        server_name: format!("n{}", i + 1),
                        port: route_ports[i],
                        peer_ports: route_ports
                            .iter()
                            .enumerate()
                            .filter(|&(j, _)| j != i)
                            .map(|(_, &port)| port)
                            .collect(),
                    }),
                };
                nodes.push(NatsServer::spawn(&binary, dir, config, Health::Clustered)?);
            }
            let mut cluster = Self { nodes };
            match cluster.wait_all_ready(Instant::now() + READY_TIMEOUT) {
                Ok(()) => return Ok(cluster),
                // A node lost a port race; start over on new ports. Dropping
                // `cluster` kills the nodes that did start.
                Err(err) if cluster.nodes.iter_mut().any(NatsServer::child_exited) => {
                    last_error = Some(err)
                }
                Err(err) => return Err(err),
            }
        }
        Err(last_error.unwrap_or_else(|| anyhow::anyhow!("nats cluster did not start")))
    }

    /// Polls every node each round, so a node that dies is noticed at once
    /// rather than after waiting out a healthy sibling.
    fn wait_all_ready(&mut self, deadline: Instant) -> anyhow::Result<()> {
        let mut ready = vec![false; self.nodes.len()];
        loop {
            for (node, ready) in self.nodes.iter_mut().zip(ready.iter_mut()) {
                if *ready {
                    continue;
                }
                match node.poll_ready() {
                    Ok(()) => *ready = true,
                    Err(NotReady::Pending) if Instant::now() < deadline => {}
                    Err(reason) => return Err(node.not_ready_error(&reason)),
                }
            }
            if ready.iter().all(|&r| r) {
                return Ok(());
            }
            std::thread::sleep(POLL_INTERVAL);
        }
    }

    /// Number of nodes.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// Always false: a cluster has at least one node.
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// Client URLs of all nodes, in node order.
    pub fn urls(&self) -> Vec<String> {
        self.nodes.iter().map(NatsServer::url).collect()
    }

    /// Node `i` (0-based; node `i` has server name `n{i+1}`).
    ///
    /// # Panics
    /// If `i >= self.len()`.
    pub fn server(&self, i: usize) -> &NatsServer {
        &self.nodes[i]
    }

    /// Kills node `i` with SIGKILL.
    ///
    /// # Panics
    /// If `i >= self.len()`.
    pub fn kill(&mut self, i: usize) {
        self.nodes[i].kill();
    }

    /// Restarts node `i` on its ports and store, and waits until it is healthy
    /// again, i.e. has rejoined the cluster and caught up.
    ///
    /// # Panics
    /// If `i >= self.len()`.
    pub fn restart(&mut self, i: usize) -> anyhow::Result<()> {
        self.nodes[i].restart()
    }
}
