//! `jetflow-bench`: how fast jetflow is, measured against what JetStream
//! itself does on the same machine, in one run on one nats-server:
//!
//! - (a) [`raw_hop`] — the raw cost unit: pull, publish, ack, pipelined.
//! - (b) [`pipeline`] — a job of N items through the four service processes
//!   against the mock agents API, items/s and its ratio to (a).
//! - (c) the same with a 20 ms handler at concurrency 200, against the ideal.
//! - (d) [`rss`] — each service's peak memory at N and (`--million`) at 1M.
//! - (e) submission to the first handler call.
//! - (f) the seed's job as a user runs it (pages of 50, 4 ahead,
//!   concurrency 10, default retries): clean, then with the failure mix
//!   (503 on 5% of calls, a permanent 422 for one agent in 97), then the
//!   failure mix at concurrency 200.
//! - (g) a rate-limited job: the calls per whole second against the limit.
//! - (h) two of (f)'s clean jobs at once: each one's time against alone.
//!
//! `--cluster` repeats (a) and (b) on a 3-node cluster with R3 streams;
//! `--smoke` is a small run for CI that checks tallies, not speed. Every job
//! must end with an exact tally — `succeeded == N −` the agents the mock
//! refuses `==` the mock's migrations, `failed ==` the refused — or the run
//! exits non-zero. [`report`] prints the table and writes the JSON.

mod cpu;
mod nats;
mod pipeline;
mod raw_hop;
mod report;
mod rss;
mod services;

use std::{process::ExitCode, time::Duration};

use clap::Parser;
use pipeline::{Case, Faults, JobSettings, PipelineResult, Target};
use report::{Machine, Report};
use services::Binaries;

/// Benchmarks jetflow against the raw JetStream hop on a local nats-server.
#[derive(Debug, Parser)]
#[command(name = "jetflow-bench")]
struct Args {
    /// Items in the end-to-end job without latency (b, d, e).
    #[arg(long, default_value_t = 100_000)]
    items: usize,
    /// Items in the 20 ms-latency job (c): 20,000 takes ~2 s at the ideal rate.
    #[arg(long, default_value_t = 20_000)]
    latency_items: usize,
    /// Messages through the raw hop (a).
    #[arg(long, default_value_t = 200_000)]
    hop_messages: u64,
    /// Also run (b) with 1,000,000 items, for (d)'s memory comparison.
    #[arg(long)]
    million: bool,
    /// Run the single server with `sync_interval: always` (fsync every write).
    #[arg(long)]
    sync_always: bool,
    /// Also run (a) and (b) on a 3-node cluster with R3 streams and buckets.
    #[arg(long)]
    cluster: bool,
    /// Small and quick, for CI: 2,000 items, 1,000 for (c), 5,000 hops.
    #[arg(long, conflicts_with = "million")]
    smoke: bool,
    /// The (b) job's concurrency (its task consumer's max_ack_pending).
    #[arg(long, default_value_t = 1000)]
    concurrency: u32,
    /// The jobs' page size (the mock's page limit is raised to match).
    #[arg(long, default_value_t = 500)]
    fetch_size: u32,
    /// The jobs' max_inflight_batches.
    #[arg(long, default_value_t = 16)]
    inflight_batches: u32,
    /// Items in each of the seed-shaped jobs (f) and (h).
    #[arg(long, default_value_t = 20_000)]
    mix_items: usize,
    /// Items in the rate-limited job (g).
    #[arg(long, default_value_t = 5_000)]
    rate_items: usize,
    /// The rate-limited job's limit (g), calls per second.
    #[arg(long, default_value_t = 1_000)]
    rate_limit: u32,
    /// Run only the cases whose labels start with one of these (comma
    /// separated, e.g. `f,g,h`); the raw hop always runs.
    #[arg(long, value_delimiter = ',')]
    only: Vec<String>,
}

/// (f)'s failure mix, from the issue: 5% of calls answer 503, one agent in
/// 97 always answers 422.
const FAILURE_MIX: Faults = Faults {
    transient_rate: 0.05,
    permanent_rate: 1.0 / 97.0,
};

/// The seed's job settings, as a user starts with: pages of 50, 4 ahead,
/// 10 in flight.
const SEED_SETTINGS: JobSettings = JobSettings {
    fetch_size: 50,
    concurrency: 10,
    max_inflight_batches: 4,
};

/// (c)'s handler latency and concurrency, from the issue.
const LATENCY: Duration = Duration::from_millis(20);
const LATENCY_CONCURRENCY: u32 = 200;

#[tokio::main]
async fn main() -> ExitCode {
    let mut args = Args::parse();
    if args.smoke {
        args.items = 2_000;
        args.latency_items = 1_000;
        args.hop_messages = 5_000;
        args.mix_items = 1_000;
        args.rate_items = 600;
        args.rate_limit = 200;
    }
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
    match run(&args).await {
        Ok(report) if report.tally_ok => ExitCode::SUCCESS,
        Ok(_) => ExitCode::FAILURE,
        Err(err) => {
            eprintln!("jetflow-bench: {err:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: &Args) -> anyhow::Result<Report> {
    let binaries = Binaries::locate()?;
    let mut report = Report {
        started_at: chrono::Utc::now(),
        finished_at: chrono::Utc::now(),
        mode: if args.smoke { "smoke" } else { "full" }.into(),
        profile: binaries.profile(),
        machine: Machine {
            cores: std::thread::available_parallelism().map_or(0, usize::from),
            load_avg_start: report::load_avg(),
            load_avg_end: String::new(),
        },
        nats_server_version: nats::server_version()?,
        sync_interval: nats::sync_interval(args.sync_always),
        cluster_sync_interval: args.cluster.then(|| nats::sync_interval(false)),
        task_payload_bytes: 0,
        raw_hop: Vec::new(),
        pipelines: Vec::new(),
        targets: Vec::new(),
        tally_ok: false,
    };
    let log_dir = binaries
        .target_dir()
        .join("bench")
        .join("logs")
        .join(report.started_at.format("%Y%m%dT%H%M%SZ").to_string());
    // A real task of the main job's size: ids are zero-padded to N's width.
    let payload = raw_hop::task_payload("bench-b-0123abcd", args.items, args.items);
    report.task_payload_bytes = payload.len();
    eprintln!(
        "jetflow-bench: {}, {}; service logs in {}",
        report.nats_server_version,
        report.sync_interval,
        log_dir.display()
    );

    let server = nats::start_single(args.sync_always).await?;
    let urls = vec![server.url()];
    eprintln!("(a) raw hop, {} messages, R1", args.hop_messages);
    report
        .raw_hop
        .push(raw_hop::run(&urls, 1, args.hop_messages, payload.clone()).await?);
    let single = Target {
        urls: &urls,
        replicas: 1,
        binaries: &binaries,
        log_dir: log_dir.clone(),
        server_pids: server.pid().into_iter().collect(),
    };
    let wanted = |case: &Case| {
        args.only.is_empty() || args.only.iter().any(|p| case.label.starts_with(p.as_str()))
    };
    for case in single_server_cases(args).into_iter().filter(wanted) {
        eprintln!("[{}] {} items", case.label, case.items);
        for result in pipeline::run(&single, &case).await? {
            print_tally(&result);
            report.pipelines.push(result);
        }
    }
    drop(server);

    if args.cluster {
        let cluster = nats::start_cluster().await?;
        let urls = cluster.urls();
        eprintln!("(a) raw hop, {} messages, R3", args.hop_messages);
        report
            .raw_hop
            .push(raw_hop::run(&urls, 3, args.hop_messages, payload).await?);
        let replicated = Target {
            urls: &urls,
            replicas: 3,
            binaries: &binaries,
            log_dir,
            server_pids: (0..cluster.len())
                .filter_map(|i| cluster.server(i).pid())
                .collect(),
        };
        let case = main_case(args, "b-R3", args.items);
        eprintln!("[{}] {} items", case.label, case.items);
        for result in pipeline::run(&replicated, &case).await? {
            print_tally(&result);
            report.pipelines.push(result);
        }
    }

    report.finished_at = chrono::Utc::now();
    report.machine.load_avg_end = report::load_avg();
    report.judge();
    println!("\n{}\n", report.table());
    let path = report.write(&binaries.target_dir())?;
    println!("JSON: {}", path.display());
    let jobs = report.pipelines.len();
    if report.tally_ok {
        println!("tally check: OK — {jobs} jobs ended with succeeded == N − refused == mock migrated, failed == refused");
    } else {
        println!("tally check: FAILED — see the [label] tally lines above");
    }
    Ok(report)
}

/// (b), (c), with `--million` (b) at 1M, then (f), (g) and (h) — all on
/// the single server.
fn single_server_cases(args: &Args) -> Vec<Case> {
    let mut cases = vec![
        main_case(args, "b", args.items),
        Case::clean(
            "c",
            args.latency_items,
            LATENCY,
            JobSettings {
                concurrency: LATENCY_CONCURRENCY,
                ..settings(args)
            },
        ),
    ];
    if args.million {
        cases.push(main_case(args, "b-1M", 1_000_000));
    }
    let seed = |label: &str, items: usize| Case::clean(label, items, Duration::ZERO, SEED_SETTINGS);
    cases.push(seed("f-clean", args.mix_items));
    cases.push(Case {
        faults: FAILURE_MIX,
        ..seed("f-mix", args.mix_items)
    });
    cases.push(Case {
        faults: FAILURE_MIX,
        settings: JobSettings {
            concurrency: LATENCY_CONCURRENCY,
            ..SEED_SETTINGS
        },
        ..seed("f-mix-200", args.mix_items)
    });
    cases.push(Case {
        rate_limit: Some(args.rate_limit),
        settings: JobSettings {
            concurrency: 50,
            ..SEED_SETTINGS
        },
        ..seed("g-rate", args.rate_items)
    });
    cases.push(Case {
        copies: 2,
        ..seed("h-two", args.mix_items)
    });
    cases
}

fn main_case(args: &Args, label: &str, items: usize) -> Case {
    Case::clean(label, items, Duration::ZERO, settings(args))
}

fn settings(args: &Args) -> JobSettings {
    JobSettings {
        fetch_size: args.fetch_size,
        concurrency: args.concurrency,
        max_inflight_batches: args.inflight_batches,
    }
}

/// One line per job, printed as soon as it ends.
fn print_tally(p: &PipelineResult) {
    let verdict = if p.tally_ok { "ok" } else { "MISMATCH" };
    println!(
        "[{}] tally {verdict}: status {}, succeeded {} (failed {}, mock refuses {}), N {}, mock migrated {} ({} calls, {} retries); {:.2} s, {:.0} items/s",
        p.label, p.status, p.succeeded, p.failed, p.mock_permanent, p.items, p.mock_migrated, p.mock_calls, p.retries, p.seconds, p.items_per_sec
    );
    if let Some(rate) = &p.rate {
        println!(
            "[{}] calls per whole second {:?}: max {}, mean {:.0}, limit {}",
            p.label, rate.per_second, rate.max, rate.mean, rate.limit
        );
    }
}
