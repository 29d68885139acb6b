//! The run's results: a table for people, JSON for machines, and each
//! target of the performance issue judged met, not met, or not measured.

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use chrono::{DateTime, Utc};
use jetflow_protocol::Stage;
use serde::Serialize;

use crate::{
    pipeline::{PipelineResult, BENCH, NATS_SERVER},
    raw_hop::HopResult,
    services::SERVICES,
};

/// Everything one run measured.
#[derive(Debug, Serialize)]
pub struct Report {
    /// When the run began.
    pub started_at: DateTime<Utc>,
    /// When it ended.
    pub finished_at: DateTime<Utc>,
    /// `full` or `smoke`.
    pub mode: String,
    /// Cargo profile of the bench and the services: `release` or `debug`.
    pub profile: String,
    /// The machine.
    pub machine: Machine,
    /// `nats-server --version`.
    pub nats_server_version: String,
    /// The single server's `sync_interval`.
    pub sync_interval: String,
    /// The cluster's `sync_interval`, when `--cluster` ran.
    pub cluster_sync_interval: Option<String>,
    /// Size of the task payload the raw hop carries, bytes.
    pub task_payload_bytes: usize,
    /// (a) raw hops, R1 and (with `--cluster`) R3.
    pub raw_hop: Vec<HopResult>,
    /// (b)-(e) end-to-end runs.
    pub pipelines: Vec<PipelineResult>,
    /// Each target, judged.
    pub targets: Vec<TargetCheck>,
    /// Whether every job ended with an exact tally.
    pub tally_ok: bool,
}

/// The machine the run used.
#[derive(Debug, Serialize)]
pub struct Machine {
    /// CPUs available to this process.
    pub cores: usize,
    /// `/proc/loadavg` when the run began: other work on a shared machine.
    pub load_avg_start: String,
    /// `/proc/loadavg` when it ended.
    pub load_avg_end: String,
}

/// One target of the issue.
#[derive(Debug, Serialize)]
pub struct TargetCheck {
    /// What is measured, and the goal.
    pub target: String,
    /// The measured value, formatted.
    pub measured: String,
    /// Met, not met, or `None` when this run did not measure it.
    pub met: Option<bool>,
}

/// `/proc/loadavg`'s first three fields.
pub fn load_avg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".into())
}

impl Report {
    fn hop(&self, replicas: usize) -> Option<&HopResult> {
        self.raw_hop.iter().find(|h| h.replicas == replicas)
    }

    fn pipeline(&self, label: &str) -> Option<&PipelineResult> {
        self.pipelines.iter().find(|p| p.label == label)
    }

    /// Judges every target from the results.
    pub fn judge(&mut self) {
        let mut checks = Vec::new();
        let ratio = |p: Option<&PipelineResult>, h: Option<&HopResult>| {
            Some(p?.items_per_sec / h?.hops_per_sec)
        };
        let b_ratio = ratio(self.pipeline("b"), self.hop(1));
        checks.push(check(
            "(b)/(a) >= 0.20",
            b_ratio,
            |r| format!("{r:.3}"),
            |r| r >= 0.20,
        ));
        let b_rate = self.pipeline("b").map(|b| b.items_per_sec);
        checks.push(check(
            "(b) >= 10,000 items/s",
            b_rate,
            |r| format!("{r:.0}/s"),
            |r| r >= 10_000.0,
        ));
        let c_fraction = self.pipeline("c").map(|c| c.items_per_sec / ideal_rate(c));
        checks.push(check(
            "(c) >= 0.85 of ideal",
            c_fraction,
            |r| format!("{r:.3}"),
            |r| r >= 0.85,
        ));
        let peak_1m = self
            .pipeline("b-1M")
            .and_then(|p| p.peak_rss_mb.values().copied().reduce(f64::max));
        checks.push(check(
            "(d) every service < 100 MB at 1M",
            peak_1m,
            |r| format!("max {r:.1} MB"),
            |r| r < 100.0,
        ));
        let growth = match (self.pipeline("b"), self.pipeline("b-1M")) {
            (Some(small), Some(large)) => SERVICES
                .iter()
                .filter_map(|s| Some(large.peak_rss_mb.get(*s)? / small.peak_rss_mb.get(*s)? - 1.0))
                .reduce(f64::max),
            _ => None,
        };
        checks.push(check(
            "(d) 1M within 20% of 100k, per service",
            growth,
            |g| format!("max {:+.1}%", g * 100.0),
            |g| g <= 0.20,
        ));
        let first = self.pipeline("b").and_then(|b| b.first_call_ms);
        checks.push(check(
            "(e) submit to first call < 100 ms",
            first,
            |ms| format!("{ms:.0} ms"),
            |ms| ms < 100.0,
        ));
        let r3_ratio = ratio(self.pipeline("b-R3"), self.hop(3));
        checks.push(check(
            "R3 (b)/(a) >= 0.20",
            r3_ratio,
            |r| format!("{r:.3}"),
            |r| r >= 0.20,
        ));
        let mix = self.pipeline("f-mix").map(|p| p.items_per_sec);
        checks.push(check(
            "(f) failure mix, conc 10 >= 3,000 items/s",
            mix,
            |r| format!("{r:.0}/s"),
            |r| r >= 3_000.0,
        ));
        let rate_95 = |label: &str| {
            let p = self.pipeline(label)?;
            Some(0.95 * p.items as f64 / p.seconds_to_95?)
        };
        checks.push(check(
            "(f) failure mix, 95% of items at >= 3,000/s",
            rate_95("f-mix"),
            |r| format!("{r:.0}/s"),
            |r| r >= 3_000.0,
        ));
        checks.push(check(
            "(f) failure mix to 95% >= 0.5 of clean",
            rate_95("f-mix").zip(rate_95("f-clean")).map(|(m, c)| m / c),
            |r| format!("{r:.3}"),
            |r| r >= 0.5,
        ));
        let clean = self.pipeline("f-clean").map(|p| p.items_per_sec);
        checks.push(check(
            "(f) failure mix >= 0.5 of clean",
            mix.zip(clean).map(|(m, c)| m / c),
            |r| format!("{r:.3}"),
            |r| r >= 0.5,
        ));
        let wide = self.pipeline("f-mix-200").map(|p| p.items_per_sec);
        checks.push(check(
            "(f) failure mix, conc 200 > conc 10",
            wide.zip(mix).map(|(w, m)| w / m),
            |r| format!("{r:.2}x"),
            |r| r > 1.0,
        ));
        let rate = self.pipeline("g-rate").and_then(|p| p.rate.as_ref());
        checks.push(check(
            "(g) every whole second <= limit + 10%",
            rate.filter(|r| !r.per_second.is_empty())
                .map(|r| r.max as f64 / f64::from(r.limit)),
            |r| format!("max {:.0}%", r * 100.0),
            |r| r <= 1.10,
        ));
        checks.push(check(
            "(g) mean >= 85% of the limit",
            rate.filter(|r| !r.per_second.is_empty())
                .map(|r| r.mean / f64::from(r.limit)),
            |r| format!("{:.0}%", r * 100.0),
            |r| r >= 0.85,
        ));
        self.targets = checks;
        self.tally_ok = !self.pipelines.is_empty() && self.pipelines.iter().all(|p| p.tally_ok);
    }

    /// The table, as printed at the end of a run.
    pub fn table(&self) -> String {
        let mut out = Vec::new();
        out.push(format!(
            "jetflow-bench {} ({} build), {} — {} cores, load avg {} at start, {} at end",
            self.mode,
            self.profile,
            self.started_at.format("%Y-%m-%d %H:%M UTC"),
            self.machine.cores,
            self.machine.load_avg_start,
            self.machine.load_avg_end
        ));
        let cluster = match &self.cluster_sync_interval {
            Some(s) => format!("; cluster sync_interval: {s}"),
            None => String::new(),
        };
        out.push(format!(
            "{}, sync_interval: {}{cluster}; task payload {} bytes",
            self.nats_server_version, self.sync_interval, self.task_payload_bytes
        ));
        out.push(String::new());
        out.push(format!(
            "{:<40} {:>9} {:>4} {:>9} {:>12}  {}",
            "case", "N", "R", "seconds", "rate", "ratio"
        ));
        for hop in &self.raw_hop {
            out.push(format!(
                "{:<40} {:>9} {:>4} {:>9.2} {:>10.0}/s  (pipelined publish: {:.0}/s)",
                "(a) raw hop: pull, publish, ack",
                hop.messages,
                format!("R{}", hop.replicas),
                hop.hop_seconds,
                hop.hops_per_sec,
                hop.publish_per_sec
            ));
        }
        for p in &self.pipelines {
            out.push(format!(
                "{:<40} {:>9} {:>4} {:>9.2} {:>10.0}/s  {}",
                describe(p),
                p.items,
                format!("R{}", p.replicas),
                p.seconds,
                p.items_per_sec,
                self.ratio_text(p)
            ));
        }
        out.extend(self.to_95_lines());
        out.extend(self.together_lines());
        out.push(String::new());
        out.push(format!(
            "{:<40} {:>14} {:>9} {:>9} {:>9} {:>9}",
            "peak RSS (VmHWM), MB",
            "first call",
            Stage::Fetch,
            Stage::Batch,
            Stage::Migrate,
            Stage::Reduce
        ));
        for p in &self.pipelines {
            let rss = |s: &str| {
                p.peak_rss_mb
                    .get(s)
                    .map(|v| format!("{v:.1}"))
                    .unwrap_or_else(|| "-".into())
            };
            out.push(format!(
                "{:<40} {:>14} {:>9} {:>9} {:>9} {:>9}",
                format!("[{}] N={}", p.label, p.items),
                p.first_call_ms
                    .map(|ms| format!("{ms:.0} ms"))
                    .unwrap_or_else(|| "-".into()),
                rss(SERVICES[0]),
                rss(SERVICES[1]),
                rss(SERVICES[2]),
                rss(SERVICES[3])
            ));
        }
        out.push(String::new());
        out.extend(self.cpu_lines());
        out.push(String::new());
        out.push("targets".into());
        for t in &self.targets {
            let verdict = match t.met {
                Some(true) => "met",
                Some(false) => "NOT met",
                None => "not measured in this run",
            };
            out.push(format!("  {:<42} {:>16}  {verdict}", t.target, t.measured));
        }
        out.join("\n")
    }

    /// (f): how long each seed-shaped job took to its 95% mark, and the
    /// rate to there — the job's pace without the tail its unluckiest
    /// items' retries add (an item failing three times waits its backoff
    /// three times, 1 + 2 + 4 s at the default, before the job can end).
    fn to_95_lines(&self) -> Vec<String> {
        let mut out = Vec::new();
        for p in self.pipelines.iter().filter(|p| p.label.starts_with('f')) {
            let Some(t95) = p.seconds_to_95 else {
                continue;
            };
            if out.is_empty() {
                out.push(String::new());
            }
            out.push(format!(
                "[{}] 95% of items in {t95:.2} s ({:.0} items/s); all in {:.2} s; {} retries",
                p.label,
                0.95 * p.items as f64 / t95,
                p.seconds,
                p.retries
            ));
        }
        out
    }

    /// (h): each of the jobs that ran at once, against (f)'s clean job
    /// alone (the same job on the same settings).
    fn together_lines(&self) -> Vec<String> {
        let alone = self.pipeline("f-clean");
        let together: Vec<&PipelineResult> =
            self.pipelines.iter().filter(|p| p.copies > 1).collect();
        let (Some(alone), false) = (alone, together.is_empty()) else {
            return Vec::new();
        };
        let mut out = vec![String::new()];
        for p in together {
            out.push(format!(
                "[{}] one of {} jobs at once: {:.2} s, alone {:.2} s ({:.2}x); {:.0} items/s, alone {:.0}",
                p.label,
                p.copies,
                p.seconds,
                alone.seconds,
                p.seconds / alone.seconds,
                p.items_per_sec,
                alone.items_per_sec
            ));
        }
        out
    }

    /// CPU seconds per process during each job, against what the cores
    /// could give over the job's wall time, and what that makes per item
    /// (all processes together): the figure a design change moves.
    fn cpu_lines(&self) -> Vec<String> {
        let columns = [
            NATS_SERVER,
            SERVICES[0],
            SERVICES[1],
            SERVICES[2],
            SERVICES[3],
            BENCH,
        ];
        let mut out = vec![format!(
            "{:<40} {:>11} {:>9} {:>9} {:>9} {:>9} {:>9} {:>16} {:>9}",
            "CPU seconds during the job",
            "nats-server",
            Stage::Fetch,
            Stage::Batch,
            Stage::Migrate,
            Stage::Reduce,
            "bench",
            "sum / available",
            "µs/item"
        )];
        for p in &self.pipelines {
            let cell = |name: &str| {
                p.cpu_seconds
                    .get(name)
                    .map(|v| format!("{v:.1}"))
                    .unwrap_or_else(|| "-".into())
            };
            let sum: f64 = p.cpu_seconds.values().sum();
            let available = p.seconds * self.machine.cores as f64;
            let per_item = sum * 1e6 / p.items.max(1) as f64;
            out.push(format!(
                "{:<40} {:>11} {:>9} {:>9} {:>9} {:>9} {:>9} {:>16} {:>9}",
                format!("[{}] N={}", p.label, p.items),
                cell(columns[0]),
                cell(columns[1]),
                cell(columns[2]),
                cell(columns[3]),
                cell(columns[4]),
                cell(columns[5]),
                format!("{sum:.1} / {available:.1}"),
                format!("{per_item:.0}")
            ));
        }
        out
    }

    fn ratio_text(&self, p: &PipelineResult) -> String {
        let clean = self.pipeline("f-clean").filter(|c| c.label != p.label);
        if let (Some(clean), true) = (clean, p.label.starts_with('f')) {
            return format!("{:.3} of [f-clean]", p.items_per_sec / clean.items_per_sec);
        }
        if let Some(rate) = &p.rate {
            return format!(
                "{:.3} of the limit",
                p.items_per_sec / f64::from(rate.limit)
            );
        }
        if p.latency_ms > 0 {
            let ideal = ideal_rate(p);
            return format!(
                "{:.3} of ideal {:.0}/s ({} / {} ms)",
                p.items_per_sec / ideal,
                ideal,
                p.settings.concurrency,
                p.latency_ms
            );
        }
        match self.hop(p.replicas) {
            Some(hop) => format!(
                "{:.3} of (a) R{}",
                p.items_per_sec / hop.hops_per_sec,
                p.replicas
            ),
            None => String::new(),
        }
    }

    /// Writes `<target>/bench/<timestamp>.json` and `latest.json` (a smoke
    /// run writes `-smoke` files instead, so CI never replaces the figures
    /// of a real run); returns the timestamped path.
    pub fn write(&self, target_dir: &Path) -> anyhow::Result<PathBuf> {
        let dir = target_dir.join("bench");
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let json = serde_json::to_vec_pretty(self).context("encoding the report")?;
        let suffix = if self.mode == "smoke" { "-smoke" } else { "" };
        let stamp = self.started_at.format("%Y%m%dT%H%M%SZ");
        let path = dir.join(format!("{stamp}{suffix}.json"));
        for file in [path.clone(), dir.join(format!("latest{suffix}.json"))] {
            std::fs::write(&file, &json).with_context(|| format!("writing {}", file.display()))?;
        }
        Ok(path)
    }
}

/// Items/s if every slot of `concurrency` were always busy for exactly the
/// handler's latency.
fn ideal_rate(p: &PipelineResult) -> f64 {
    f64::from(p.settings.concurrency) / (p.latency_ms as f64 / 1000.0)
}

fn describe(p: &PipelineResult) -> String {
    let conc = p.settings.concurrency;
    if let Some(rate) = &p.rate {
        return format!("[{}] limited to {}/s, conc {conc}", p.label, rate.limit);
    }
    if p.faults.transient_rate > 0.0 || p.faults.permanent_rate > 0.0 {
        return format!("[{}] failure mix, conc {conc}", p.label);
    }
    if p.copies > 1 {
        return format!("[{}] {} at once, conc {conc}", p.label, p.copies);
    }
    if p.label.starts_with('f') {
        return format!("[{}] seed job, clean, conc {conc}", p.label);
    }
    if p.latency_ms > 0 {
        format!(
            "[{}] jetflow, {} ms handler, conc {}",
            p.label, p.latency_ms, p.settings.concurrency
        )
    } else {
        format!("[{}] jetflow end to end, no latency", p.label)
    }
}

fn check(
    target: &str,
    measured: Option<f64>,
    show: impl Fn(f64) -> String,
    meets: impl Fn(f64) -> bool,
) -> TargetCheck {
    TargetCheck {
        target: target.to_string(),
        measured: measured.map(&show).unwrap_or_else(|| "-".into()),
        met: measured.map(meets),
    }
}
