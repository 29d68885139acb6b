//! A job as a source (issue 14, part 2): `{"type": "job", "job": A,
//! "status": ..., "data": ...}` runs over A's outcomes once A has ended —
//! exactly the items of the status asked for, ids kept, A's outputs (or a
//! failure's input) as data — streamed from the items bucket, so
//! `retry-failed` no longer inlines anything.

use std::collections::BTreeMap;

use jetflow_e2e::{jobs, TestEnv};
use jetflow_protocol::job::{ItemStatus, JobStatus};
use jetflow_worker::WorkError;
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

/// Serves `subject`: items whose data has `"fail": true` fail for good;
/// the others succeed with `{"from": <id>, "n": <data.n * 10>}` (the first
/// job) — or, on `echo`, with their data as it came.
fn serve(env: &TestEnv, subject: &'static str, stop: &CancellationToken) {
    let (client, stop) = (env.bus.client.clone(), stop.clone());
    tokio::spawn(jetflow_worker::serve(
        client,
        subject,
        stop,
        move |req| async move {
            let data = req.item.data;
            if subject == "echo" {
                return Ok(data);
            }
            if data["fail"] == json!(true) {
                return Err(WorkError::Failed("told to fail".into()));
            }
            let n = data["n"].as_u64().unwrap_or(0);
            Ok(json!({"from": req.item.id, "n": n * 10}))
        },
    ));
}

fn items(n: usize) -> Vec<Value> {
    (0..n)
        .map(|i| json!({"id": format!("it-{i:04}"), "data": {"n": i, "fail": i % 9 == 4}}))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_job_over_a_jobs_outcomes_runs_exactly_those_items_with_their_outputs(
) -> anyhow::Result<()> {
    let env = TestEnv::start("job-source").await?;
    let stop = CancellationToken::new();
    serve(&env, "first", &stop);
    serve(&env, "echo", &stop);
    let all = items(700);
    let a = json!({
        "id": "a",
        "source": {"type": "items", "items": all},
        "handler": {"type": "nats", "subject": "first"},
        "batch": {"concurrency": 5, "fetch_size": 40},
    });
    jobs::submit_plain(&env.bus, a.to_string().as_bytes()).await?;
    // Submitted while a runs: both wait for it to end.
    let over = |id: &str, source: Value| {
        json!({
            "id": id,
            "source": source,
            "handler": {"type": "nats", "subject": "echo"},
            "batch": {"fetch_size": 64},
        })
    };
    let b = over("b", json!({"type": "job", "job": "a"}));
    let c = over(
        "c",
        json!({"type": "job", "job": "a", "status": "failed", "data": "input"}),
    );
    let d = over("d", json!({"type": "job", "job": "a", "status": "any"}));
    for spec in [&b, &c, &d] {
        jobs::submit_plain(&env.bus, spec.to_string().as_bytes()).await?;
    }
    let waiting = jobs::wait_for_state(&env.bus, "b", |_| true).await?;
    let a_now = jobs::wait_for_state(&env.bus, "a", |_| true).await?;
    if !a_now.status.is_terminal() {
        assert_eq!(waiting.status, JobStatus::Waiting, "{waiting:#?}");
    }

    let a_end = jobs::wait_for_end(&env.bus, "a").await?;
    assert_eq!(a_end.status, JobStatus::Partial);
    let first = jobs::item_records(&env.bus, "a").await?;
    let (ok, failed): (BTreeMap<_, _>, BTreeMap<_, _>) = first
        .iter()
        .partition(|(_, o)| o.status == ItemStatus::Succeeded);
    assert_eq!(failed.len(), 78, "every 9th of 700 fails");

    for (job, expect) in [("b", &ok), ("c", &failed), ("d", &ok)] {
        let state = jobs::wait_for_end(&env.bus, job).await?;
        assert_eq!(state.status, JobStatus::Completed, "{job}: {state:#?}");
        let records = jobs::item_records(&env.bus, job).await?;
        let want = if job == "d" {
            first.len()
        } else {
            expect.len()
        };
        assert_eq!(records.len(), want, "{job}: one outcome per item of a");
        assert_eq!(state.total, want as u64, "{job}");
        for (id, outcome) in &records {
            let before = &first[id];
            // The echo handler answers the data it was given.
            let data_given = match (job, before.status) {
                ("c", _) => before.input.clone(),
                (_, ItemStatus::Succeeded) => before.output.clone(),
                (_, ItemStatus::Failed) => Value::Null,
            };
            assert_eq!(outcome.output, data_given, "{job}/{id}");
        }
    }
    // c ran the failed items with the data they had failed with.
    let c_records = jobs::item_records(&env.bus, "c").await?;
    let mut c_ids: Vec<&String> = c_records.keys().collect();
    c_ids.sort();
    assert_eq!(c_ids, failed.keys().copied().collect::<Vec<_>>());
    assert!(c_records
        .values()
        .all(|o| o.output["fail"] == json!(true) && o.output["n"].is_u64()));

    // A job over a job that does not exist, or over itself, is rejected.
    let e = over("e", json!({"type": "job", "job": "nope"}));
    jobs::submit_plain(&env.bus, e.to_string().as_bytes()).await?;
    let rejected = jobs::wait_for_event(&env.bus, "e", "rejected").await?;
    assert_eq!(
        rejected.reason.as_deref(),
        Some("source.job: there is no job nope")
    );
    let f = over("f", json!({"type": "job", "job": "f"}));
    jobs::submit_plain(&env.bus, f.to_string().as_bytes()).await?;
    let rejected = jobs::wait_for_event(&env.bus, "f", "rejected").await?;
    assert!(
        rejected
            .reason
            .as_deref()
            .is_some_and(|r| r.starts_with("source.job: a job cannot read its own outcomes")),
        "{rejected:?}"
    );
    stop.cancel();
    env.stop_services().await?;
    Ok(())
}
