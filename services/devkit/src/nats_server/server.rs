//! A single nats-server process owned by the caller.

use std::path::{Path, PathBuf};
use std::process::Child;
use std::time::Instant;

use anyhow::{bail, Context};
use tempfile::TempDir;

use super::binary::nats_server_binary;
use super::config::{NodeConfig, ServerOptions};
use super::ports::free_ports;
use super::probe::{http_get_status, tcp_accepts};
use super::process;
use super::readiness::{Health, NotReady, POLL_INTERVAL, READY_TIMEOUT};

/// Attempts at starting on freshly picked ports, covering the race between
/// releasing a free port and nats-server binding it.
pub(crate) const START_ATTEMPTS: usize = 3;

/// A running nats-server with JetStream, killed and cleaned up on drop.
///
/// Its configuration file, log and (unless a store directory was given) its
/// JetStream store live in a temporary directory that is removed on drop.
/// Starting blocks the calling thread until the server is ready.
#[derive(Debug)]
pub struct NatsServer {
    binary: PathBuf,
    config: NodeConfig,
    health: Health,
    config_path: PathBuf,
    log_path: PathBuf,
    child: Option<Child>,
    // Last field so it is dropped after `Drop::drop` has killed the process
    // that writes into it.
    _dir: TempDir,
}

impl NatsServer {
    /// Starts a single JetStream node on free ports with a fresh file store.
    pub fn start() -> anyhow::Result<Self> {
        Self::start_with(ServerOptions::default())
    }

    /// Starts a single JetStream node as described by `opts`.
    pub fn start_with(opts: ServerOptions) -> anyhow::Result<Self> {
        let binary = nats_server_binary()?;
        let mut last_error = None;
        for _ in 0..START_ATTEMPTS {
            let [client_port, monitor_port] = pick_ports(opts.port)?;
            let dir = tempfile::Builder::new()
                .prefix("jetflow-nats-")
                .tempdir()
                .context("creating temp dir for nats-server")?;
            let store_dir = match &opts.store_dir {
                Some(dir) => dir.clone(),
                None => dir.path().join("store"),
            };
            let config = NodeConfig {
                client_port,
                monitor_port,
                store_dir,
                sync_always: opts.sync_always,
                cluster: None,
                extra_config: opts.extra_config.clone(),
            };
            let mut server = Self::spawn(&binary, dir, config, Health::Standalone)?;
            match server.wait_ready(Instant::now() + READY_TIMEOUT) {
                Ok(()) => return Ok(server),
                // Most likely a port was taken in the meantime: try new ones.
                Err(err) if server.child_exited() => last_error = Some(err),
                Err(err) => return Err(err),
            }
        }
        Err(last_error.unwrap_or_else(|| anyhow::anyhow!("nats-server did not start")))
    }

    /// Writes the configuration into `dir` and starts the process, without
    /// waiting for it to become ready.
    pub(crate) fn spawn(
        binary: &Path,
        dir: TempDir,
        config: NodeConfig,
        health: Health,
    ) -> anyhow::Result<Self> {
        let config_path = dir.path().join("nats-server.conf");
        let log_path = dir.path().join("nats-server.log");
        std::fs::create_dir_all(&config.store_dir)
            .with_context(|| format!("creating store dir {}", config.store_dir.display()))?;
        std::fs::write(&config_path, config.render()?)
            .with_context(|| format!("writing {}", config_path.display()))?;
        let child = process::spawn(binary, &config_path, &log_path)?;
        Ok(Self {
            binary: binary.to_path_buf(),
            config,
            health,
            config_path,
            log_path,
            child: Some(child),
            _dir: dir,
        })
    }

    /// Client URL, `nats://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.config.client_port)
    }

    /// Client port.
    pub fn port(&self) -> u16 {
        self.config.client_port
    }

    /// HTTP monitoring port (`/healthz`, `/jsz`, `/varz`, ...).
    pub fn monitor_port(&self) -> u16 {
        self.config.monitor_port
    }

    /// JetStream store directory; it survives [`kill`](Self::kill) and
    /// [`restart`](Self::restart).
    pub fn store_dir(&self) -> &Path {
        &self.config.store_dir
    }

    /// File receiving the server's stdout and stderr, across restarts.
    pub fn log_path(&self) -> &Path {
        &self.log_path
    }

    /// PID of the running process, `None` after [`kill`](Self::kill).
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Kills the process with SIGKILL, as a crash would, and waits for it to
    /// exit. Does nothing if it is not running.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            process::kill(&mut child);
        }
    }

    /// Starts a new process with the same ports, configuration and store
    /// directory, killing the current one first if it still runs, and waits
    /// until it is ready.
    pub fn restart(&mut self) -> anyhow::Result<()> {
        self.kill();
        self.child = Some(process::spawn(
            &self.binary,
            &self.config_path,
            &self.log_path,
        )?);
        self.wait_ready(Instant::now() + READY_TIMEOUT)
    }

    /// One readiness probe: the client port accepts connections and the
    /// health endpoint answers 200.
    pub(crate) fn poll_ready(&mut self) -> Result<(), NotReady> {
        let child = self.child.as_mut().ok_or(NotReady::NotRunning)?;
        // A reaping error is treated like "still running": the probes below
        // or the deadline decide.
        if let Ok(Some(status)) = child.try_wait() {
            return Err(NotReady::Exited(status));
        }
        let healthy = tcp_accepts(self.config.client_port)
            && matches!(
                http_get_status(self.config.monitor_port, self.health.path()),
                Ok(200)
            );
        if healthy {
            Ok(())
        } else {
            Err(NotReady::Pending)
        }
    }

    /// Polls until ready, the process exits, or `deadline` passes.
    pub(crate) fn wait_ready(&mut self, deadline: Instant) -> anyhow::Result<()> {
        loop {
            match self.poll_ready() {
                Ok(()) => return Ok(()),
                Err(NotReady::Pending) if Instant::now() < deadline => {
                    std::thread::sleep(POLL_INTERVAL)
                }
                Err(reason) => return Err(self.not_ready_error(&reason)),
            }
        }
    }

    /// An error describing why the server is not ready, with its log tail.
    pub(crate) fn not_ready_error(&self, reason: &NotReady) -> anyhow::Error {
        let what = match reason {
            NotReady::Pending => format!(
                "not ready within {}s (GET {} on monitor port {})",
                READY_TIMEOUT.as_secs(),
                self.health.path(),
                self.config.monitor_port
            ),
            NotReady::Exited(status) => format!("exited during startup ({status})"),
            NotReady::NotRunning => "is not running".to_owned(),
        };
        anyhow::anyhow!(
            "nats-server on port {} {what}; log {}:\n{}",
            self.config.client_port,
            self.log_path.display(),
            process::log_tail(&self.log_path)
        )
    }

    /// True when the process has exited on its own (as opposed to still
    /// starting or having been killed by us).
    pub(crate) fn child_exited(&mut self) -> bool {
        matches!(self.child.as_mut().map(Child::try_wait), Some(Ok(Some(_))))
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The client port (fixed or free) and a free monitoring port.
fn pick_ports(fixed_client: Option<u16>) -> anyhow::Result<[u16; 2]> {
    // One spare so the fixed port can be filtered out if it happens to be free.
    let mut free = free_ports(3)?
        .into_iter()
        .filter(|&port| Some(port) != fixed_client);
    let (Some(first), Some(second)) = (free.next(), free.next()) else {
        bail!("could not find free ports");
    };
    Ok(match fixed_client {
        Some(client) => [client, first],
        None => [first, second],
    })
}
