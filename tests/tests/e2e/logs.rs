//! Logs at three levels (docs/observability.md): job lifecycle and one line
//! per finished batch at info, one per item only at debug; text for people,
//! JSON (`--log-format json`) for machines.

use std::collections::BTreeSet;

use jetflow_e2e::{cli, jobs, processes::binary};

async fn demo(rust_log: &str, extra: &[&str]) -> anyhow::Result<String> {
    let out = tokio::time::timeout(
        jobs::JOB_DEADLINE,
        tokio::process::Command::new(binary("jetflow")?)
            .args(["dev", "--demo", "--agents", "300"])
            .args(extra)
            .env("RUST_LOG", rust_log)
            .stdin(std::process::Stdio::null())
            .kill_on_drop(true)
            .output(),
    )
    .await??;
    anyhow::ensure!(out.status.success(), "{}", cli::text(&out.stderr));
    Ok(cli::text(&out.stderr))
}

fn batch_numbers<'a>(lines: impl Iterator<Item = &'a str>) -> BTreeSet<u64> {
    lines
        .filter_map(|l| l.split("batch ").nth(1))
        .filter_map(|rest| rest.split(" completed: ").next())
        .filter_map(|n| n.parse().ok())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn info_logs_a_line_per_batch_and_the_total_and_items_only_at_debug() -> anyhow::Result<()> {
    let info = demo("info", &[]).await?;
    let batch_lines: Vec<&str> = info
        .lines()
        .filter(|l| l.contains(": batch ") && l.contains(" completed: "))
        .collect();
    assert_eq!(batch_lines.len(), 6, "one line per batch of 50: {info}");
    assert_eq!(
        batch_numbers(batch_lines.iter().copied()),
        (1..=6).collect()
    );
    let finals: Vec<&str> = info
        .lines()
        .filter(|l| l.contains("job completed: 300 items") || l.contains("job partial: 300 items"))
        .collect();
    assert_eq!(finals.len(), 1, "one final line with the totals: {info}");
    assert!(!info.contains("item finished"), "no per-item lines at info");

    let debug = demo("info,jetflow_migrate=debug", &[]).await?;
    let items = debug
        .lines()
        .filter(|l| l.contains("item finished"))
        .count();
    assert!(items >= 300, "one line per item at debug: {items}");

    let json = demo("info", &["--log-format", "json"]).await?;
    let mut batches = BTreeSet::new();
    for line in json.lines().filter(|l| l.starts_with('{')) {
        let record: serde_json::Value = serde_json::from_str(line)?;
        if let Some(batch) = record["fields"]["batch"].as_u64() {
            if record["fields"]["size"].is_u64() {
                batches.insert(batch);
            }
        }
    }
    assert_eq!(
        batches,
        (1..=6).collect(),
        "batch lines carry their fields as JSON"
    );
    Ok(())
}
