//! [`TestEnv`]: a nats-server and, optionally, the services in-process.

use std::{sync::Arc, time::Duration};

use anyhow::Context as _;
use jetflow_devkit::NatsServer;
use jetflow_runtime::{Bus, NatsArgs};
use tokio_util::{sync::CancellationToken, task::TaskTracker};

/// One test's world.
pub struct TestEnv {
    /// The nats-server (killed when the last env using it drops).
    pub server: Arc<NatsServer>,
    /// Connection settings for this test's namespace.
    pub nats: NatsArgs,
    /// A client-side view of the namespace (provisioned).
    pub bus: Bus,
    shutdown: CancellationToken,
    services: TaskTracker,
}

impl TestEnv {
    /// A nats-server and a provisioned namespace, no services.
    pub async fn bare(prefix: &str) -> anyhow::Result<TestEnv> {
        init_logging();
        let server = Arc::new(tokio::task::spawn_blocking(NatsServer::start).await??);
        Self::on(server, prefix).await
    }

    /// Another namespace on this env's nats-server, no services.
    pub async fn beside(&self, prefix: &str) -> anyhow::Result<TestEnv> {
        Self::on(self.server.clone(), prefix).await
    }

    async fn on(server: Arc<NatsServer>, prefix: &str) -> anyhow::Result<TestEnv> {
        let nats = NatsArgs::new([server.url()], &crate::unique_namespace(prefix));
        Self::connected(server, nats).await
    }

    /// `server` (secured: credentials, TLS) reached with `nats`, no services.
    pub async fn secured(server: NatsServer, nats: NatsArgs) -> anyhow::Result<TestEnv> {
        init_logging();
        Self::connected(Arc::new(server), nats).await
    }

    /// A shared secured server reached with `nats`, no services.
    pub async fn secured_on(server: Arc<NatsServer>, nats: NatsArgs) -> anyhow::Result<TestEnv> {
        init_logging();
        Self::connected(server, nats).await
    }

    async fn connected(server: Arc<NatsServer>, nats: NatsArgs) -> anyhow::Result<TestEnv> {
        let shutdown = CancellationToken::new();
        let bus = Bus::connect(&nats, "jetflow-test", &shutdown)
            .await
            .context("connecting the test client")?;
        Ok(TestEnv {
            server,
            nats,
            bus,
            shutdown,
            services: TaskTracker::new(),
        })
    }

    /// A nats-server with all four services running in this process.
    pub async fn start(prefix: &str) -> anyhow::Result<TestEnv> {
        let env = Self::bare(prefix).await?;
        env.start_services();
        Ok(env)
    }

    /// Starts the four services in-process.
    pub fn start_services(&self) {
        self.start_services_with(jetflow_reduce::Config::new(self.nats.clone()));
    }

    /// Starts the four services in-process, reduce with `reduce`'s settings.
    pub fn start_services_with(&self, reduce: jetflow_reduce::Config) {
        let nats = self.nats.clone();
        self.start_services_configured(
            jetflow_fetch::Config::new(nats.clone()),
            jetflow_batch::Config::new(nats.clone()),
            jetflow_migrate::Config::new(nats),
            reduce,
        );
    }

    /// Starts the four services in-process with these settings.
    pub fn start_services_configured(
        &self,
        fetch: jetflow_fetch::Config,
        batch: jetflow_batch::Config,
        migrate: jetflow_migrate::Config,
        reduce: jetflow_reduce::Config,
    ) {
        let s = self.shutdown.clone();
        self.services
            .spawn(async move { expect_clean("fetch", jetflow_fetch::run(fetch, s).await) });
        let s = self.shutdown.clone();
        self.services
            .spawn(async move { expect_clean("batch", jetflow_batch::run(batch, s).await) });
        let s = self.shutdown.clone();
        self.services
            .spawn(async move { expect_clean("migrate", jetflow_migrate::run(migrate, s).await) });
        let s = self.shutdown.clone();
        self.services
            .spawn(async move { expect_clean("reduce", jetflow_reduce::run(reduce, s).await) });
    }

    /// Stops in-process services and waits for them (a clean shutdown is
    /// part of what is tested).
    pub async fn stop_services(&self) -> anyhow::Result<()> {
        self.shutdown.cancel();
        self.services.close();
        tokio::time::timeout(Duration::from_secs(60), self.services.wait())
            .await
            .context("services did not shut down within 60 s")
    }
}

impl Drop for TestEnv {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// Service logs in test output, at `RUST_LOG` (default `warn`).
fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_test_writer()
        .with_ansi(false)
        .try_init();
}

fn expect_clean(name: &str, result: jetflow_runtime::Result<()>) {
    if let Err(err) = result {
        panic!("service {name} failed: {err}");
    }
}
