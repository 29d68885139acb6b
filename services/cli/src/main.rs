//! `jetflow`: run jetflow on a laptop, submit jobs, see how they are doing.

mod commands;
mod connect;
mod context;
mod job_state;
mod progress;
mod render;
mod stage_arg;
mod ui;

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use jetflow_runtime::LogArgs;

jetflow_runtime::use_mimalloc!();

/// jetflow: large batch jobs on NATS JetStream.
#[derive(Parser)]
#[command(name = "jetflow", version, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    #[command(flatten)]
    log: LogArgs,
    /// The `nats` CLI context to connect with (URL, credentials, TLS);
    /// without it, the selected one, if any. Flags and `NATS_*` env win.
    #[arg(long, env = "NATS_CONTEXT", global = true)]
    context: Option<String>,
}

#[derive(Subcommand)]
enum Command {
    /// Run all four services in this process, beside a child nats-server.
    Dev(commands::dev::DevArgs),
    /// Submit a job from a JSON file (`-` for stdin) and print its id.
    Submit(commands::submit::SubmitArgs),
    /// List jobs, filtered by status and label.
    Jobs(commands::jobs::JobsArgs),
    /// Show a job's state.
    Status(commands::status::StatusArgs),
    /// Follow a job live (bars for the job and its active batches) until it ends.
    Watch(commands::watch::WatchArgs),
    /// Every item's outcome, streamed (JSON Lines or CSV).
    Results(commands::results::ResultsArgs),
    /// Cancel a job: no new item starts, items in flight finish.
    Cancel(commands::cancel::CancelArgs),
    /// Pause a job: no page is fetched and no item starts until it is
    /// resumed (or the pause ends); items in flight finish.
    Pause(commands::pause::PauseArgs),
    /// Resume a paused job.
    Resume(commands::pause::ResumeArgs),
    /// A new job over the failed items of a finished one (label `retry_of`).
    RetryFailed(commands::retry_failed::RetryFailedArgs),
    /// A map-reduce job in one command: items, a map handler, reductions;
    /// `--wait` prints the answers.
    Mapreduce(commands::mapreduce::MapReduceArgs),
    /// Dead letters: list, show, replay, purge.
    Dlq(commands::dlq::DlqArgs),
    /// Remove jobs that finished long ago, with everything kept of them.
    Gc(commands::gc::GcArgs),
    /// Create or upgrade every stream, bucket and stage consumer (an
    /// admin's job; services can then run --no-provision).
    Provision(commands::provision::ProvisionArgs),
    /// The least-privilege NATS rights of each part, as nats-server config,
    /// nsc commands or JSON (deploy/nats/roles.conf is its output).
    Roles(commands::roles::RolesArgs),
    /// Is everything there and moving: NATS, streams, consumers (lag),
    /// buckets, instances, breakers. Exits 1 if not.
    Health(commands::health::HealthArgs),
    /// A running job's live settings: get, or set without restarts.
    Config(commands::config::ConfigArgs),
    /// Limits a target (an HTTP host, a NATS subject) carries for every
    /// job that calls it: set, get, ls, rm.
    Limits(commands::limits::LimitsArgs),
    /// A job's shared state (what its workers keep in `<ns>_state`): list, get, set, incr, append, add, cas.
    State(commands::state::StateArgs),
    /// Live service instances and what each is doing (listed if they
    /// answer within --wait, 1 s: a killed instance is gone at once).
    Workers(commands::workers::WorkersArgs),
    /// A web page to watch jobs (and, with --allow-actions, act on them).
    Ui(ui::UiArgs),
}

/// Exit codes scripts can rely on.
pub mod exit {
    /// The job completed, or the command succeeded.
    pub const OK: u8 = 0;
    /// An error, or the job failed.
    pub const FAILED: u8 = 1;
    /// The job was rejected.
    pub const REJECTED: u8 = 2;
    /// The job ended `partial`.
    pub const PARTIAL: u8 = 3;
    /// The job was cancelled.
    pub const CANCELLED: u8 = 4;
}

fn main() -> ExitCode {
    let cli = match with_context(Cli::parse()) {
        Ok(cli) => cli,
        Err(err) => {
            eprintln!("jetflow: {}", one_line(&err));
            return ExitCode::from(exit::FAILED);
        }
    };
    // Service logs would bury the demo's progress bar.
    let quiet_by_default = !matches!(&cli.command, Command::Dev(args) if !args.demo);
    let _telemetry = init_logging(&cli.log, quiet_by_default);
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("jetflow: cannot start the async runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Dev(args) => commands::dev::run(args).await,
            Command::Submit(args) => commands::submit::run(args).await,
            Command::Jobs(args) => commands::jobs::run(args).await,
            Command::Status(args) => commands::status::run(args).await,
            Command::Watch(args) => commands::watch::run(args).await,
            Command::Results(args) => commands::results::run(args).await,
            Command::Cancel(args) => commands::cancel::run(args).await,
            Command::Pause(args) => commands::pause::pause(args).await,
            Command::Resume(args) => commands::pause::resume(args).await,
            Command::RetryFailed(args) => commands::retry_failed::run(args).await,
            Command::Mapreduce(args) => commands::mapreduce::run(args).await,
            Command::Dlq(args) => commands::dlq::run(args).await,
            Command::Gc(args) => commands::gc::run(args).await,
            Command::Health(args) => commands::health::run(args).await,
            Command::Provision(args) => commands::provision::run(args).await,
            Command::Roles(args) => commands::roles::run(args).await,
            Command::Config(args) => commands::config::run(args).await,
            Command::Limits(args) => commands::limits::run(args).await,
            Command::Workers(args) => commands::workers::run(args).await,
            Command::Ui(args) => ui::run(args).await,
            Command::State(args) => commands::state::run(args).await,
        }
    });
    match result {
        Ok(code) => ExitCode::from(code),
        Err(err) => {
            eprintln!("jetflow: {}", one_line(&err));
            ExitCode::from(exit::FAILED)
        }
    }
}

/// The command line once a `nats` context has filled in what flags and env
/// leave out. `jetflow dev` starts its own NATS unless told otherwise, so
/// only a context named with `--context` applies to it.
fn with_context(cli: Cli) -> anyhow::Result<Cli> {
    let named = cli.context.as_deref();
    if named.is_none() && matches!(cli.command, Command::Dev(_)) {
        return Ok(cli);
    }
    let Some((_name, settings)) = context::settings(named)? else {
        return Ok(cli);
    };
    let mut applied = false;
    for (name, value) in settings {
        if std::env::var_os(name).is_none() {
            // Single-threaded still: no runtime has started.
            std::env::set_var(name, value);
            applied = true;
        }
    }
    Ok(if applied { Cli::parse() } else { cli })
}

/// `err` and its causes on one line, each cause once: jetflow's own errors
/// already say their cause in their message.
fn one_line(err: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in err.chain() {
        let text = cause.to_string();
        if line.contains(&text) {
            continue;
        }
        if !line.is_empty() {
            line.push_str(": ");
        }
        line.push_str(&text);
    }
    line
}

/// The services log at info in `jetflow dev`; the other commands only warn
/// unless `RUST_LOG` says otherwise, so their output stays readable.
fn init_logging(log: &LogArgs, quiet: bool) -> jetflow_runtime::process::telemetry::Telemetry {
    if quiet && std::env::var_os("RUST_LOG").is_none() {
        // async-nats logs a refused connection itself; the command says it
        // once, in its own error line.
        std::env::set_var("RUST_LOG", "warn,async_nats::connector=off");
    }
    jetflow_runtime::process::telemetry::init(log.log_format, "jetflow")
}
