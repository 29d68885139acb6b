//! `jetflow dev [--demo]`: the whole of jetflow in one process.
//!
//! Starts a child nats-server on 4222 (on a free port when 4222 is taken,
//! saying which URL to give other commands), unless `--nats-url` is given,
//! and the four services in-process. With `--demo`, also a mock agents API and a
//! migration job over its agents, followed to the end with a progress bar.

use anyhow::Context as _;
use jetflow_devkit::{MockAgents, MockAgentsConfig, NatsServer, ServerOptions};
use jetflow_protocol::{
    job::{JobState, JobStatus},
    Stage,
};
use jetflow_runtime::NatsArgs;
use serde_json::json;
use tokio_util::{sync::CancellationToken, task::TaskTracker};

use crate::{
    commands::submit::{self, Verdict},
    connect, exit, progress,
};

/// Arguments of `jetflow dev`.
#[derive(Debug, clap::Args)]
pub struct DevArgs {
    /// Use this NATS (comma-separated for a cluster) instead of starting one.
    #[arg(long = "nats-url", env = "NATS_URL", value_delimiter = ',')]
    pub nats_url: Option<Vec<String>>,
    /// Namespace of every subject, stream and bucket.
    #[arg(long, env = "JETFLOW_NAMESPACE", default_value = jetflow_protocol::names::DEFAULT_NAMESPACE)]
    pub namespace: String,
    /// Run the demo: a mock agents API and a migration of all its agents, then exit.
    #[arg(long)]
    pub demo: bool,
    /// Agents in the demo's mock API.
    #[arg(long, default_value_t = 10_000)]
    pub agents: usize,
    /// The demo job's concurrency (items in flight).
    #[arg(long, default_value_t = 100)]
    pub concurrency: u32,
    /// Serve the dashboard (`jetflow ui`) here, on loopback; `off` for none.
    /// A free port is used when this one is taken.
    #[arg(long, default_value = crate::ui::DEFAULT_LISTEN)]
    pub ui: String,
    /// Let the dashboard act: cancel, pause, settings, retries, dead letters.
    #[arg(long)]
    pub ui_actions: bool,
}

pub async fn run(args: DevArgs) -> anyhow::Result<u8> {
    let server = match &args.nats_url {
        Some(_) => None,
        None => Some(start_nats().await?),
    };
    let urls = match (&args.nats_url, &server) {
        (Some(urls), _) => urls.clone(),
        (None, Some(server)) => vec![server.url()],
        (None, None) => anyhow::bail!("no NATS to use"),
    };
    let nats = NatsArgs::new(urls.clone(), &args.namespace);
    nats.validate()?;
    let shutdown = CancellationToken::new();
    jetflow_runtime::process::signals::install(shutdown.clone());
    let services = start_services(&nats, &shutdown);
    start_ui(&nats, &args, &shutdown).await?;

    let code = if args.demo {
        let result = demo(&nats, &args, &shutdown).await;
        shutdown.cancel();
        result?
    } else {
        eprintln!(
            "jetflow dev: NATS at {}, namespace {:?}",
            urls.join(","),
            args.namespace
        );
        eprintln!(
            "  submit a job:   jetflow submit job.json --wait --nats-url {}",
            urls[0]
        );
        eprintln!("  Ctrl-C to stop");
        shutdown.cancelled().await;
        exit::OK
    };
    services.wait().await;
    drop(server);
    Ok(code)
}

/// The port every NATS client tries first.
const DEFAULT_NATS_PORT: u16 = 4222;

/// A child nats-server on 4222, so the next command a user types (`jetflow
/// submit job.json`, `nats sub '>'`) finds it with no flags; on a free port
/// when 4222 is taken, saying which URL to use instead.
async fn start_nats() -> anyhow::Result<NatsServer> {
    let start = |port: Option<u16>| {
        tokio::task::spawn_blocking(move || {
            NatsServer::start_with(ServerOptions {
                port,
                ..ServerOptions::default()
            })
        })
    };
    let free = std::net::TcpListener::bind(("127.0.0.1", DEFAULT_NATS_PORT)).is_ok();
    if free {
        if let Ok(Ok(server)) = start(Some(DEFAULT_NATS_PORT)).await {
            return Ok(server);
        }
    }
    let server = start(None).await.context("starting nats-server")??;
    eprintln!(
        "jetflow dev: port {DEFAULT_NATS_PORT} is taken; NATS is at {url}: give other commands --nats-url {url} (or NATS_URL={url})",
        url = server.url()
    );
    Ok(server)
}

fn start_services(nats: &NatsArgs, shutdown: &CancellationToken) -> TaskTracker {
    let tasks = TaskTracker::new();
    let report = |stage: Stage| {
        move |result: jetflow_runtime::Result<()>| {
            if let Err(err) = result {
                tracing::error!(service = stage.service_name(), error = %err, "service stopped");
            }
        }
    };
    let fetch = jetflow_fetch::Config::new(nats.clone());
    let batch = jetflow_batch::Config::new(nats.clone());
    let migrate = jetflow_migrate::Config::new(nats.clone());
    let reduce = jetflow_reduce::Config::new(nats.clone());
    let s = shutdown.clone();
    tasks.spawn(async move { report(Stage::Fetch)(jetflow_fetch::run(fetch, s).await) });
    let s = shutdown.clone();
    tasks.spawn(async move { report(Stage::Batch)(jetflow_batch::run(batch, s).await) });
    let s = shutdown.clone();
    tasks.spawn(async move { report(Stage::Migrate)(jetflow_migrate::run(migrate, s).await) });
    let s = shutdown.clone();
    tasks.spawn(async move { report(Stage::Reduce)(jetflow_reduce::run(reduce, s).await) });
    tasks.close();
    tasks
}

/// The dashboard, beside the services, until `shutdown`.
async fn start_ui(
    nats: &NatsArgs,
    args: &DevArgs,
    shutdown: &CancellationToken,
) -> anyhow::Result<()> {
    if args.ui == "off" {
        return Ok(());
    }
    let listen: std::net::SocketAddr = args.ui.parse().with_context(|| {
        format!(
            "--ui {:?}: expected an address like 127.0.0.1:8233, or off",
            args.ui
        )
    })?;
    if !listen.ip().is_loopback() {
        anyhow::bail!("--ui {listen}: jetflow dev serves the dashboard on loopback only (use jetflow ui --auth-token for more)");
    }
    let listener = match tokio::net::TcpListener::bind(listen).await {
        Ok(listener) => listener,
        Err(_) => tokio::net::TcpListener::bind((listen.ip(), 0))
            .await
            .context("--ui: cannot listen")?,
    };
    let bus = connect::provisioned(nats).await?;
    eprintln!(
        "jetflow dev: dashboard at http://{}/",
        listener.local_addr()?
    );
    let options = crate::ui::Options {
        allow_actions: args.ui_actions,
        ..Default::default()
    };
    let shutdown = shutdown.clone();
    tokio::spawn(async move {
        if let Err(err) = crate::ui::serve(bus, options, listener, shutdown).await {
            tracing::error!(error = %err, "dashboard stopped");
        }
    });
    Ok(())
}

async fn demo(nats: &NatsArgs, args: &DevArgs, shutdown: &CancellationToken) -> anyhow::Result<u8> {
    let mock = MockAgents::start(MockAgentsConfig {
        agents: args.agents,
        transient_rate: 0.02,
        permanent_rate: 0.002,
        latency: std::time::Duration::from_millis(2),
        ..Default::default()
    })
    .await?;
    let id = format!("demo-migrate-{}", jetflow_runtime::instance_id());
    let batch = json!({
        "concurrency": args.concurrency, "max_inflight_batches": 8,
        "retry_backoff": "100ms", "max_backoff": "2s"
    });
    let job = mock.migration_job(&id, batch);
    eprintln!(
        "demo: migrating {} agents of org-123 to my-template:v2 through a mock API at {}",
        args.agents,
        mock.base_url()
    );
    eprintln!(
        "      (2% of calls fail transiently and are retried; 0.2% of agents are incompatible)"
    );
    let bus = connect::provisioned(nats).await?;
    match submit::submit(&bus, &id, job).await? {
        Verdict::Accepted => eprintln!("job {id} accepted"),
        Verdict::Rejected(reason) => anyhow::bail!("the demo job was rejected: {reason}"),
    }
    let state = tokio::select! {
        state = progress::follow(&bus, &id) => state?,
        _ = shutdown.cancelled() => return Ok(exit::CANCELLED),
    };
    submit::print_final(&state, false);
    if !tally_checks_out(&state, &mock, args.agents) {
        return Ok(exit::FAILED);
    }
    mock.stop().await;
    Ok(match state.status {
        JobStatus::Completed | JobStatus::Partial => exit::OK,
        other => submit::exit_code(other),
    })
}

/// Prints what the mock API saw and whether the job's tally agrees with it
/// exactly (docs/design.md, invariant 1): the job's successes are the
/// distinct migrations the API saw, and its failures the agents the mock
/// made incompatible.
fn tally_checks_out(state: &JobState, mock: &MockAgents, agents: usize) -> bool {
    let seen = mock.stats();
    println!(
        "mock API: {} distinct agents migrated, {} calls, {} idempotent replays",
        seen.migrated, seen.calls, seen.idempotent_replays
    );
    let exact = state.succeeded == seen.migrated
        && state.succeeded + state.failed == agents as u64
        && state.failed == mock.permanent_failures().len() as u64;
    if exact {
        println!(
            "tally checks out: {} succeeded + {} failed = {} agents, and the API saw exactly {} migrations",
            state.succeeded, state.failed, agents, seen.migrated
        );
    } else {
        println!("TALLY MISMATCH: the job's counts and the mock's do not agree");
    }
    exact
}
