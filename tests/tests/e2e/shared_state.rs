//! Shared job state (`<ns>_state`, docs/protocol.md "Shared job state"):
//! 20 Python and Node worker processes hammering one counter and one set
//! lose nothing; cas loops of a Python, a Node and a Rust writer on one
//! value lose nothing; a `nats` handler keeps state with the Rust helper
//! and `jetflow gc` removes it with its job; `jetflow state` does each
//! operation.
//!
//! Every write in these is conditional on the revision read. A plain
//! read-then-`put` (what the helpers would be without the revision check)
//! loses updates as soon as two writers overlap: the counts would come out
//! short. The tests check that the writers did overlap (conflicts were
//! seen and retried), so they would catch that.

use std::time::Duration;

use jetflow_e2e::{cli, jobs, polyglot::ExampleWorker, TestEnv};
use jetflow_protocol::job::JobStatus;
use jetflow_worker::{
    state::{SharedState, StateBucket},
    WorkError,
};
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

fn shared_state(env: &TestEnv, job: &str) -> anyhow::Result<SharedState> {
    Ok(StateBucket::from_store(env.bus.kv.state.clone()).job(job)?)
}

/// The number after `label` in a hammer's `done:` line (`..., 17 conflicts, ...`).
fn count_before(line: &str, label: &str) -> u64 {
    line.split(", ")
        .find_map(|part| part.strip_suffix(label)?.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {label:?} in {line:?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn twenty_python_and_node_workers_count_and_collect_exactly() -> anyhow::Result<()> {
    const TIMES: u64 = 500;
    let env = TestEnv::bare("state-20").await?;
    let job = "hammered";
    let times = TIMES.to_string();
    let members: Vec<String> = (1..=10)
        .flat_map(|i| [format!("python-{i:02}"), format!("node-{i:02}")])
        .collect();
    // All twenty start at once, so their writes overlap.
    let starts = members.iter().map(|member| {
        let args = [job, times.as_str(), member.as_str()];
        let nats = env.nats.clone();
        async move {
            if member.starts_with("python") {
                ExampleWorker::python(&nats, "state_hammer.py", &args, &[]).await
            } else {
                ExampleWorker::node_with_args(&nats, "state_hammer.mjs", &args, &[]).await
            }
        }
    });
    let workers = futures::future::try_join_all(starts).await?;
    let finishing = workers
        .into_iter()
        .map(|worker| worker.finish(Duration::from_secs(240)));
    let printed = futures::future::try_join_all(finishing).await?;

    // Each hammer counts the writes another writer beat (then retried).
    let mut conflicts = 0;
    for lines in &printed {
        let done = lines
            .iter()
            .find(|l| l.starts_with("done: "))
            .ok_or_else(|| anyhow::anyhow!("a hammer printed no done line: {lines:?}"))?;
        assert!(done.contains("added True"), "{done}");
        conflicts += count_before(done, "conflicts");
    }
    println!("{conflicts} conflicts, retried");
    let state = shared_state(&env, job)?;
    assert_eq!(state.get("hits").await?, Some(json!(20 * TIMES)));
    let mut expected = members.clone();
    expected.sort();
    assert_eq!(
        state.get("members").await?,
        Some(json!(expected)),
        "the set holds each member once, sorted"
    );
    assert!(
        conflicts > 0,
        "the writers never overlapped, so this proved nothing"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn cas_from_python_node_and_rust_writers_never_loses_an_update() -> anyhow::Result<()> {
    const EACH: u64 = 300;
    let env = TestEnv::bare("state-cas").await?;
    let job = "cas-writers";
    let each = EACH.to_string();
    // A Python and a Node process, and a Rust task, each moving `swaps`
    // up by one EACH times with a cas loop: swap from the value last seen,
    // and on a miss go on from the value the miss answered.
    let (py_args, node_args) = ([job, "0", "py", &each], [job, "0", "node", &each]);
    let python = ExampleWorker::python(&env.nats, "state_hammer.py", &py_args, &[]);
    let node = ExampleWorker::node_with_args(&env.nats, "state_hammer.mjs", &node_args, &[]);
    let (python, node) = tokio::try_join!(python, node)?;
    let client = async_nats::connect(env.server.url()).await?;
    let js = async_nats::jetstream::new(client);
    let rust = StateBucket::open(&js, &env.bus.names).await?.job(job)?;
    let rust_writer = async {
        let mut misses = 0u64;
        let mut now = rust.get("swaps").await?.unwrap_or(Value::Null);
        for _ in 0..EACH {
            loop {
                let next = json!(now.as_u64().unwrap_or(0) + 1);
                let swap = rust.cas("swaps", &now, next).await?;
                now = swap.current;
                if swap.swapped {
                    break;
                }
                misses += 1;
            }
        }
        anyhow::Ok(misses)
    };
    let (rust_misses, python, node) = tokio::try_join!(
        rust_writer,
        python.finish(Duration::from_secs(120)),
        node.finish(Duration::from_secs(120))
    )?;
    let state = shared_state(&env, job)?;
    assert_eq!(state.get("swaps").await?, Some(json!(3 * EACH)));
    let misses = [python, node]
        .iter()
        .filter_map(|lines| lines.last())
        .map(|done| count_before(done, "cas misses"))
        .sum::<u64>()
        + rust_misses;
    println!("{misses} cas misses, taken up again");
    assert!(misses > 0, "the writers never collided");

    // A cas names the value it replaces: a stale OLD changes nothing and
    // answers what is there; null stands for "not set".
    let stale = state.cas("swaps", &json!(0), json!(-1)).await?;
    assert!(!stale.swapped);
    assert_eq!(stale.current, json!(3 * EACH));
    let created = state.cas("leader", &Value::Null, json!("a")).await?;
    assert!(created.swapped);
    assert!(!state.cas("leader", &Value::Null, json!("b")).await?.swapped);
    assert_eq!(state.get("leader").await?, Some(json!("a")));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_handler_keeps_state_and_gc_removes_it_with_the_job() -> anyhow::Result<()> {
    let env = TestEnv::start("state-gc").await?;
    let bucket = StateBucket::from_store(env.bus.kv.state.clone());
    let stop = CancellationToken::new();
    let handler_bucket = bucket.clone();
    let serving = tokio::spawn(jetflow_worker::serve(
        env.bus.client.clone(),
        "work.tally",
        stop.clone(),
        move |request| {
            let bucket = handler_bucket.clone();
            async move {
                let state = bucket
                    .job(&request.job)
                    .map_err(|e| WorkError::Failed(e.to_string()))?;
                let org = request.item.data["org"].clone();
                let retry =
                    |e: jetflow_worker::state::StateError| WorkError::Retryable(e.to_string());
                let calls = state.incr("calls", 1).await.map_err(retry)?;
                let new_org = state.add("orgs", org).await.map_err(retry)?;
                Ok(json!({"calls": calls, "new_org": new_org}))
            }
        },
    ));
    let items: Vec<Value> = (0..60)
        .map(|i| json!({"id": format!("a-{i:02}"), "data": {"org": format!("org-{}", i % 3)}}))
        .collect();
    let job = json!({
        "id": "tallied",
        "source": {"type": "items", "items": items},
        "handler": {"type": "nats", "subject": "work.tally"},
        "batch": {"concurrency": 20}
    });
    jobs::submit_plain(&env.bus, job.to_string().as_bytes()).await?;
    let end = jobs::wait_for_end(&env.bus, "tallied").await?;
    assert_eq!((end.status, end.succeeded), (JobStatus::Completed, 60));
    let state = bucket.job("tallied")?;
    // Calls, not items: a retried call counts again (none here).
    assert_eq!(state.get("calls").await?, Some(json!(60)));
    assert_eq!(
        state.get("orgs").await?,
        Some(json!(["org-0", "org-1", "org-2"]))
    );
    // Another job's state is not the collected job's.
    let other = bucket.job("still-running")?;
    other.set("x", json!(1)).await?;

    let listed: Value =
        serde_json::from_str(&cli::ok(&env.nats, &["state", "tallied", "--json"]).await?)?;
    assert_eq!(listed["calls"], 60);
    cli::ok(&env.nats, &["gc", "--older-than", "0s"]).await?;
    assert_eq!(state.get("calls").await?, None);
    assert_eq!(state.get("orgs").await?, None);
    let listed: Value =
        serde_json::from_str(&cli::ok(&env.nats, &["state", "tallied", "--json"]).await?)?;
    assert_eq!(listed, json!({}), "nothing of tallied's state is left");
    assert_eq!(other.get("x").await?, Some(json!(1)));
    // A collected job's names can be written again from nothing.
    assert_eq!(state.incr("calls", 2).await?, 2);

    stop.cancel();
    serving.await??;
    env.stop_services().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn jetflow_state_gets_sets_and_changes_values_atomically() -> anyhow::Result<()> {
    let env = TestEnv::bare("state-cli").await?;
    let run = |args: &'static [&'static str]| {
        let nats = env.nats.clone();
        async move {
            let mut all = vec!["state", "j1"];
            all.extend_from_slice(args);
            cli::run_in(&nats, &all, cli::CLI_DEADLINE).await
        }
    };
    let ok = |args: &'static [&'static str]| {
        let nats = env.nats.clone();
        async move {
            let mut all = vec!["state", "j1"];
            all.extend_from_slice(args);
            cli::ok(&nats, &all).await.map(|out| out.trim().to_string())
        }
    };
    assert_eq!(ok(&["hits", "incr"]).await?, "1");
    assert_eq!(ok(&["hits", "incr", "5"]).await?, "6");
    assert_eq!(ok(&["hits", "incr", "-2"]).await?, "4");
    assert_eq!(ok(&["hits"]).await?, "4");
    assert_eq!(ok(&["log", "append", r#"{"step":1}"#]).await?, "length 1");
    assert_eq!(ok(&["log", "append", "two"]).await?, "length 2");
    assert_eq!(ok(&["langs", "add", "en"]).await?, "added");
    assert_eq!(
        ok(&["langs", "add", r#""en""#]).await?,
        "already in the set"
    );
    assert_eq!(
        ok(&["langs", "add", "de", "--json"]).await?,
        r#"{"added":true,"job":"j1","name":"langs"}"#
    );
    assert_eq!(
        ok(&["leader", "cas", "null", "me"]).await?,
        r#"swapped: "me""#
    );
    assert_eq!(
        ok(&["mode", "set", r#"{"fast":true}"#]).await?,
        r#"{"fast":true}"#
    );

    let lost = run(&["leader", "cas", "null", "you"]).await?;
    assert_eq!(
        lost.status.code(),
        Some(1),
        "a cas that does not swap exits 1"
    );
    assert_eq!(cli::text(&lost.stdout).trim(), r#"not swapped: it is "me""#);
    let unset = run(&["nothing", "get"]).await?;
    assert_eq!(unset.status.code(), Some(1));
    assert!(cli::text(&unset.stderr).contains("j1 nothing: not set"));

    // A wrong kind says which operation, on which key, and why; nothing
    // is written.
    let wrong = run(&["langs", "incr"]).await?;
    assert_eq!(wrong.status.code(), Some(1));
    assert_eq!(
        cli::text(&wrong.stderr).trim(),
        "jetflow: incr j1.langs: the value is an array, not an integer"
    );
    let bad_name = run(&["a*b", "incr"]).await?;
    assert!(cli::text(&bad_name.stderr).contains("state name \"a*b\""));

    let listed: Value = serde_json::from_str(&ok(&["--json"]).await?)?;
    assert_eq!(
        listed,
        json!({"hits": 4, "langs": ["de", "en"], "leader": "me",
               "log": [{"step": 1}, "two"], "mode": {"fast": true}})
    );
    let table = ok(&[]).await?;
    assert!(table.contains("hits    4"), "{table}");
    // The same values through the helper, which any language's KV client
    // would read alike.
    let state = shared_state(&env, "j1")?;
    assert_eq!(state.get("langs").await?, Some(json!(["de", "en"])));
    let raw = env.bus.kv.state.get("j1.hits").await?;
    assert_eq!(
        raw.as_deref(),
        Some(&b"4"[..]),
        "a counter is a JSON number"
    );
    Ok(())
}
