//! Rendering nats-server configuration files.

use std::fmt::Write as _;
use std::path::PathBuf;

use anyhow::Context;

/// Caller-facing knobs for [`NatsServer::start_with`](super::NatsServer::start_with).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ServerOptions {
    /// Client port to listen on; `None` picks a free one.
    pub port: Option<u16>,
    /// JetStream store directory; `None` uses a fresh temporary directory that
    /// is removed with the server. A given directory is left in place.
    pub store_dir: Option<PathBuf>,
    /// Fsync every write (`sync_interval: always`), for tests that must not
    /// lose acknowledged messages to a SIGKILL.
    pub sync_always: bool,
    /// Configuration appended verbatim: `authorization { … }`, `tls { … }`,
    /// accounts, for tests of how jetflow connects to a secured server.
    pub extra_config: Option<String>,
}

/// Cluster membership of one node.
#[derive(Debug, Clone)]
pub(crate) struct ClusterConfig {
    /// Cluster name shared by every node.
    pub name: String,
    /// This node's `server_name`, which JetStream needs to be stable across restarts.
    pub server_name: String,
    /// Port for route connections from the other nodes.
    pub port: u16,
    /// Route ports of the other nodes.
    pub peer_ports: Vec<u16>,
}

/// Everything that goes into one node's configuration file.
#[derive(Debug, Clone)]
pub(crate) struct NodeConfig {
    pub client_port: u16,
    pub monitor_port: u16,
    pub store_dir: PathBuf,
    pub sync_always: bool,
    pub cluster: Option<ClusterConfig>,
    pub extra_config: Option<String>,
}

/// Generous enough for tests and `jetflow dev`, small enough that JetStream
/// does not refuse to start on a machine with little free memory or disk.
const MAX_MEMORY_STORE: &str = "256MB";
const MAX_FILE_STORE: &str = "4GB";

impl NodeConfig {
    /// The configuration file text.
    pub(crate) fn render(&self) -> anyhow::Result<String> {
        let store_dir = self
            .store_dir
            .to_str()
            .with_context(|| format!("store dir {} is not UTF-8", self.store_dir.display()))?;
        // JSON string quoting is also valid quoting in the NATS config syntax,
        // so paths with spaces or quotes survive.
        let store_dir = serde_json::to_string(store_dir).context("quoting store dir")?;

        let mut text = String::new();
        // `write!` into a String cannot fail; the results are ignored for that reason.
        let _ = writeln!(text, "listen: \"127.0.0.1:{}\"", self.client_port);
        let _ = writeln!(text, "http: \"127.0.0.1:{}\"", self.monitor_port);
        let _ = writeln!(text, "max_payload: 8MB");
        let _ = writeln!(text, "jetstream {{");
        let _ = writeln!(text, "  store_dir: {store_dir}");
        let _ = writeln!(text, "  max_memory_store: {MAX_MEMORY_STORE}");
        let _ = writeln!(text, "  max_file_store: {MAX_FILE_STORE}");
        if self.sync_always {
            let _ = writeln!(text, "  sync_interval: always");
        }
        let _ = writeln!(text, "}}");
        if let Some(cluster) = &self.cluster {
            let _ = writeln!(text, "server_name: {}", cluster.server_name);
            let _ = writeln!(text, "cluster {{");
            let _ = writeln!(text, "  name: {}", cluster.name);
            let _ = writeln!(text, "  listen: \"127.0.0.1:{}\"", cluster.port);
            let _ = writeln!(text, "  routes: [");
            for peer in &cluster.peer_ports {
                let _ = writeln!(text, "    \"nats-route://127.0.0.1:{peer}\"");
            }
            let _ = writeln!(text, "  ]");
            let _ = writeln!(text, "}}");
        }
        if let Some(extra) = &self.extra_config {
            let _ = writeln!(text, "{extra}");
        }
        Ok(text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node() -> NodeConfig {
        NodeConfig {
            client_port: 4222,
            monitor_port: 8222,
            store_dir: PathBuf::from("/tmp/a \"b\""),
            sync_always: false,
            cluster: None,
            extra_config: None,
        }
    }

    #[test]
    fn standalone_config_has_ports_store_and_payload() {
        let text = node().render().expect("render");
        assert!(text.contains("listen: \"127.0.0.1:4222\""), "{text}");
        assert!(text.contains("http: \"127.0.0.1:8222\""), "{text}");
        assert!(text.contains("max_payload: 8MB"), "{text}");
        assert!(text.contains(r#"store_dir: "/tmp/a \"b\"""#), "{text}");
        assert!(!text.contains("sync_interval"), "{text}");
        assert!(!text.contains("cluster"), "{text}");
    }

    #[test]
    fn sync_always_and_cluster_are_rendered() {
        let mut config = node();
        config.sync_always = true;
        config.cluster = Some(ClusterConfig {
            name: "jetflow-test".into(),
            server_name: "n2".into(),
            port: 6223,
            peer_ports: vec![6222, 6224],
        });
        let text = config.render().expect("render");
        assert!(text.contains("sync_interval: always"), "{text}");
        assert!(text.contains("server_name: n2"), "{text}");
        assert!(text.contains("name: jetflow-test"), "{text}");
        assert!(text.contains("listen: \"127.0.0.1:6223\""), "{text}");
        assert!(text.contains("nats-route://127.0.0.1:6222"), "{text}");
        assert!(text.contains("nats-route://127.0.0.1:6224"), "{text}");
        assert!(!text.contains("nats-route://127.0.0.1:6223"), "{text}");
    }
}
