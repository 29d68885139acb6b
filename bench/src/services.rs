//! The four services as their own processes, the way they are deployed:
//! the binaries built next to this one (same cargo profile), started with
//! `NATS_URL` and `JETFLOW_NAMESPACE`, each logging to its own file.

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    process::Stdio,
    time::Duration,
};

use anyhow::{bail, Context as _};
use jetflow_protocol::Stage;
use jetflow_runtime::{Bus, NatsArgs};
use tokio::process::{Child, Command};

use crate::rss;

/// The binary names of the four stages, in pipeline order.
pub const SERVICES: [&str; 4] = [
    Stage::Fetch.service_name(),
    Stage::Batch.service_name(),
    Stage::Migrate.service_name(),
    Stage::Reduce.service_name(),
];

/// How long services get to connect, provision and subscribe.
const READY_TIMEOUT: Duration = Duration::from_secs(60);
/// How long services get to drain after SIGTERM before SIGKILL.
const STOP_GRACE: Duration = Duration::from_secs(30);

/// Where the service binaries are: the directory of this executable.
#[derive(Debug, Clone)]
pub struct Binaries {
    dir: PathBuf,
}

impl Binaries {
    /// Finds the four binaries next to the running bench, so a release bench
    /// runs release services and a debug one (the CI smoke) debug services.
    pub fn locate() -> anyhow::Result<Self> {
        let exe = std::env::current_exe().context("locating the bench executable")?;
        let dir = exe
            .parent()
            .context("the bench executable has no parent directory")?
            .to_path_buf();
        for name in SERVICES {
            let path = dir.join(name);
            if !path.is_file() {
                bail!(
                    "{} not found: build the services in the bench's profile first \
                     (`cargo build --release --workspace --bins`, which `make bench` runs; \
                     `cargo build --workspace --bins` for a debug bench)",
                    path.display()
                );
            }
        }
        Ok(Self { dir })
    }

    /// The cargo profile directory name: `release` or `debug`.
    pub fn profile(&self) -> String {
        self.dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    }

    /// The cargo target directory (parent of the profile directory).
    pub fn target_dir(&self) -> PathBuf {
        self.dir
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| self.dir.clone())
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }
}

/// One process of each stage; killed on drop if not stopped.
pub struct ServiceProcesses {
    children: Vec<(&'static str, Child)>,
}

impl ServiceProcesses {
    /// Starts the four services against `nats`, logs in `log_dir`.
    pub fn start(bins: &Binaries, nats: &NatsArgs, log_dir: &Path) -> anyhow::Result<Self> {
        std::fs::create_dir_all(log_dir)
            .with_context(|| format!("creating {}", log_dir.display()))?;
        let mut children = Vec::with_capacity(SERVICES.len());
        for name in SERVICES {
            let log_path = log_dir.join(format!("{}-{name}.log", nats.namespace));
            let log = std::fs::File::create(&log_path)
                .with_context(|| format!("creating {}", log_path.display()))?;
            let child = Command::new(bins.path(name))
                .env("NATS_URL", nats.nats_url.join(","))
                .env("JETFLOW_NAMESPACE", &nats.namespace)
                .env("JETFLOW_REPLICAS", nats.replicas.unwrap_or(1).to_string())
                // Info logs a line per batch: a cost the benchmark should
                // not add to what it measures.
                .env(
                    "RUST_LOG",
                    std::env::var("RUST_LOG").unwrap_or_else(|_| "warn".into()),
                )
                .stdin(Stdio::null())
                .stdout(log.try_clone().context("duplicating a log file handle")?)
                .stderr(log)
                .kill_on_drop(true)
                .spawn()
                .with_context(|| format!("starting {name}"))?;
            children.push((name, child));
        }
        Ok(Self { children })
    }

    /// Waits until every service has subscribed to what it needs, so that
    /// the time measured from a submission is not service start-up.
    pub async fn wait_ready(&mut self, bus: &Bus) -> anyhow::Result<()> {
        let deadline = tokio::time::Instant::now() + READY_TIMEOUT;
        while tokio::time::Instant::now() < deadline {
            self.check_running()?;
            if subscribed(bus).await {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        bail!("the services did not subscribe within {READY_TIMEOUT:?}; see their logs")
    }

    /// Fails if a service has exited.
    pub fn check_running(&mut self) -> anyhow::Result<()> {
        for (name, child) in &mut self.children {
            if let Some(status) = child.try_wait().context("checking a service")? {
                bail!("{name} exited during the benchmark: {status}");
            }
        }
        Ok(())
    }

    /// Each running service's pid.
    pub fn pids(&self) -> anyhow::Result<Vec<(&'static str, u32)>> {
        self.children
            .iter()
            .map(|(name, child)| {
                let pid = child.id().with_context(|| format!("{name} has no pid"))?;
                Ok((*name, pid))
            })
            .collect()
    }

    /// Each service's peak resident memory so far, in KiB, by name.
    pub fn peak_rss_kib(&self) -> anyhow::Result<BTreeMap<String, u64>> {
        let mut peaks = BTreeMap::new();
        for (name, pid) in self.pids()? {
            peaks.insert(name.to_string(), rss::peak_rss_kib(pid)?);
        }
        Ok(peaks)
    }

    /// SIGTERM, then SIGKILL for any service still running after the grace.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        for (name, child) in &self.children {
            let Some(pid) = child.id() else { continue };
            let pid = libc::pid_t::try_from(pid).with_context(|| format!("{name}'s pid"))?;
            // SAFETY: kill(2) on the pid of a child we own and have not reaped.
            unsafe { libc::kill(pid, libc::SIGTERM) };
        }
        for (name, child) in &mut self.children {
            match tokio::time::timeout(STOP_GRACE, child.wait()).await {
                Ok(status) => {
                    status.with_context(|| format!("waiting for {name}"))?;
                }
                Err(_) => {
                    tracing::warn!(service = *name, "did not stop within the grace; killing");
                    child
                        .kill()
                        .await
                        .with_context(|| format!("killing {name}"))?;
                }
            }
        }
        Ok(())
    }
}

/// Whether fetch and batch have their durable consumers and fetch, migrate
/// and reduce each watch the jobs bucket (three watchers).
async fn subscribed(bus: &Bus) -> bool {
    let names = &bus.names;
    let has_consumer = |stream: String, consumer: String| async move {
        match bus.js.get_stream(stream).await {
            Ok(stream) => stream.consumer_info(consumer).await.is_ok(),
            Err(_) => false,
        }
    };
    if !has_consumer(names.jobs_stream(), names.fetch_consumer()).await
        || !has_consumer(names.batches_stream(), names.batch_consumer()).await
    {
        return false;
    }
    match bus.js.get_stream(format!("KV_{}", bus.kv.jobs.name)).await {
        Ok(stream) => stream.cached_info().state.consumer_count >= 3,
        Err(_) => false,
    }
}
