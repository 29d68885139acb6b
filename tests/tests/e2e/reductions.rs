//! Reductions (issue 14, part 1): a job's item outputs folded into answers
//! by the reducer, exactly once — with SIGKILLs of reduce and migrate in
//! the middle — including a reducer of the user's in Python. Each answer
//! is checked against the value this test computes from the items itself.

use std::collections::BTreeMap;

use jetflow_e2e::{cli, jobs, polyglot::ExampleWorker, ServiceProcesses, TestEnv};
use jetflow_protocol::job::JobStatus;
use serde_json::{json, Value};

const LANGS: [&str; 4] = ["en", "fr", "de", "es"];

/// What `examples/python/word_count.py` answers for an item, computed here
/// independently; `None` for an item without text (it fails).
struct Doc {
    id: String,
    text: Option<String>,
    lang: &'static str,
}

impl Doc {
    fn new(i: usize) -> Doc {
        let text = (i % 40 != 7).then(|| {
            let n = 1 + (i * 7) % 13;
            (0..n)
                .map(|j| {
                    let letter = char::from(b'a' + ((i + j) % 26) as u8);
                    letter.to_string().repeat((i * 3 + j) % 9 + 1)
                })
                .collect::<Vec<_>>()
                .join(" ")
        });
        Doc {
            id: format!("doc-{i:05}"),
            text,
            lang: LANGS[i % LANGS.len()],
        }
    }

    fn words(&self) -> Option<u64> {
        self.text
            .as_ref()
            .map(|t| t.split_whitespace().count() as u64)
    }

    /// Longest first, then alphabetical (as the worker and reducer say).
    fn longest(&self) -> Option<String> {
        let text = self.text.as_ref()?;
        text.split_whitespace()
            .min_by_key(|w| (std::cmp::Reverse(w.len()), w.to_string()))
            .map(str::to_string)
    }

    fn item(&self) -> Value {
        let mut data = json!({"lang": self.lang});
        if let Some(text) = &self.text {
            data["text"] = json!(text);
        }
        json!({"id": self.id, "data": data})
    }
}

fn job(id: &str, docs: &[Doc]) -> Value {
    json!({
        "id": id,
        "source": {"type": "items", "items": docs.iter().map(Doc::item).collect::<Vec<_>>()},
        "handler": {"type": "nats", "subject": "words.count", "timeout": "2s"},
        "batch": {"fetch_size": 50, "concurrency": 10, "max_retries": 2, "retry_backoff": "100ms"},
        "reduce": [
            {"name": "words", "op": "sum", "path": "output.words"},
            {"name": "langs", "op": "count_by", "path": "output.lang"},
            {"name": "sample", "op": "collect", "path": "output.words", "limit": 10},
            {"name": "fewest", "op": "min", "path": "output.words"},
            {"name": "most", "op": "max", "path": "output.words"},
            {"name": "mean", "op": "avg", "path": "output.words"},
            {"name": "errors", "op": "count_by", "path": "error", "on": "failed"},
            {"name": "items", "op": "count", "on": "any"},
            {"name": "totals", "op": "nats", "subject": "words.reduce"},
        ],
    })
}

/// The answers, computed from the items: what the job's `results` must hold.
struct Expected {
    words: u64,
    langs: BTreeMap<String, u64>,
    fewest: u64,
    most: u64,
    mean: f64,
    failed: u64,
    longest: String,
    succeeded: u64,
}

fn expected(docs: &[Doc]) -> Expected {
    let counts: Vec<u64> = docs.iter().filter_map(Doc::words).collect();
    let mut langs = BTreeMap::new();
    for doc in docs.iter().filter(|d| d.text.is_some()) {
        *langs.entry(doc.lang.to_string()).or_insert(0) += 1;
    }
    let words: u64 = counts.iter().sum();
    let longest = docs
        .iter()
        .filter_map(Doc::longest)
        .min_by_key(|w| (std::cmp::Reverse(w.len()), w.clone()))
        .unwrap_or_default();
    Expected {
        words,
        langs,
        fewest: counts.iter().copied().min().unwrap_or(0),
        most: counts.iter().copied().max().unwrap_or(0),
        mean: words as f64 / counts.len() as f64,
        failed: (docs.len() - counts.len()) as u64,
        longest,
        succeeded: counts.len() as u64,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn reductions_equal_the_values_computed_from_the_items_through_sigkills() -> anyhow::Result<()>
{
    let env = TestEnv::bare("reductions").await?;
    let mut services = ServiceProcesses::start(&env.nats)?;
    let _mapper =
        ExampleWorker::python(&env.nats, "word_count.py", &[], &[("SLOW_MS", "15")]).await?;
    let _reducer = ExampleWorker::python(&env.nats, "word_reducer.py", &[], &[]).await?;
    let docs: Vec<Doc> = (0..2_000).map(Doc::new).collect();
    let want = expected(&docs);
    jobs::submit_plain(&env.bus, job("wc", &docs).to_string().as_bytes()).await?;

    // SIGKILL reduce, migrate, reduce, then both, as the tally grows.
    let index = |name: &str| {
        services
            .pids()
            .iter()
            .position(|(n, _)| n == name)
            .expect("a service")
    };
    let (migrate, reduce) = (index("jetflow-migrate"), index("jetflow-reduce"));
    for (at, victims) in [
        (200, vec![reduce]),
        (600, vec![migrate]),
        (1_000, vec![reduce]),
        (1_400, vec![migrate, reduce]),
    ] {
        let state =
            jobs::wait_for_state(&env.bus, "wc", |s| s.done() >= at || s.status.is_terminal())
                .await?;
        anyhow::ensure!(
            !state.status.is_terminal(),
            "the job ended before the kill at {at}"
        );
        for victim in victims {
            let name = services.kill_and_restart(victim)?;
            eprintln!("killed {name} at {} done", state.done());
        }
    }
    let state = jobs::wait_for_end(&env.bus, "wc").await?;
    assert_eq!(state.status, JobStatus::Partial, "{:?}", state.reason);
    assert_eq!(
        (state.succeeded, state.failed),
        (want.succeeded, want.failed)
    );

    let r = &state.results;
    assert_eq!(r["words"].value, json!(want.words), "{:?}", r["words"]);
    assert_eq!(r["words"].values, want.succeeded);
    assert_eq!(r["langs"].value, json!(want.langs));
    assert_eq!(r["fewest"].value, json!(want.fewest));
    assert_eq!(r["most"].value, json!(want.most));
    assert_eq!(r["mean"].value.as_f64(), Some(want.mean));
    assert_eq!(r["errors"].value, json!({"no text": want.failed}));
    assert_eq!(r["items"].value, json!(docs.len()));
    // `collect` keeps the first ten folded: each is one item's count.
    let sample = r["sample"].value.as_array().expect("a list");
    assert_eq!(sample.len(), 10);
    let counts: Vec<u64> = docs.iter().filter_map(Doc::words).collect();
    for value in sample {
        let n = value.as_u64().expect("a count");
        assert!(counts.contains(&n), "{n} is no item's word count");
    }
    assert_eq!(r["sample"].values, want.succeeded);
    // The Python reducer's accumulator: asked at least once per fold,
    // counted exactly once.
    assert_eq!(
        r["totals"].value,
        json!({"words": want.words, "items": want.succeeded, "longest": want.longest}),
        "{:?}",
        r["totals"]
    );
    assert!(r.values().all(|reduced| reduced.skipped_values == 0));

    // The same answers in the final event, `status` and `results --reduced`.
    let event = jobs::wait_for_event(&env.bus, "wc", "partial").await?;
    assert_eq!(event.results, state.results);
    let status = cli::ok(&env.nats, &["status", "wc"]).await?;
    assert!(
        status.contains(&format!(
            "words (sum): {}  [{} values]",
            want.words, want.succeeded
        )),
        "{status}"
    );
    let reduced: Value =
        serde_json::from_str(&cli::ok(&env.nats, &["results", "wc", "--reduced"]).await?)?;
    assert_eq!(reduced["words"]["value"], json!(want.words));
    assert_eq!(reduced["totals"]["value"]["items"], json!(want.succeeded));
    services.check_running()?;
    Ok(())
}

/// A user reducer that is not there holds the fold (the tally waits; no
/// output is lost), and once it comes the answers are exact.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_missing_user_reducer_holds_the_fold_until_it_comes() -> anyhow::Result<()> {
    let env = TestEnv::start("reducer-late").await?;
    let _mapper = ExampleWorker::python(&env.nats, "word_count.py", &[], &[]).await?;
    let docs: Vec<Doc> = (0..120).map(Doc::new).collect();
    let want = expected(&docs);
    let mut spec = job("late", &docs);
    spec["reduce"] = json!([
        {"name": "words", "op": "sum", "path": "output.words"},
        {"name": "totals", "op": "nats", "subject": "words.reduce", "timeout": "1s"},
    ]);
    jobs::submit_plain(&env.bus, spec.to_string().as_bytes()).await?;

    // Items run and get their outcome records, but no fold checkpoints.
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(60);
    while jobs::item_records(&env.bus, "late").await?.len() < docs.len() {
        anyhow::ensure!(
            tokio::time::Instant::now() < deadline,
            "the items did not run"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    let held = jobs::wait_for_state(&env.bus, "late", |_| true).await?;
    assert!(!held.status.is_terminal(), "{held:#?}");
    assert_eq!(
        held.succeeded + held.failed,
        0,
        "a fold went past the reducer"
    );

    let _reducer = ExampleWorker::python(&env.nats, "word_reducer.py", &[], &[]).await?;
    let state = jobs::wait_for_end(&env.bus, "late").await?;
    assert_eq!(state.results["words"].value, json!(want.words));
    assert_eq!(
        state.results["totals"].value,
        json!({"words": want.words, "items": want.succeeded, "longest": want.longest})
    );
    Ok(())
}

/// A user reducer that answers an error gives up: its reduction keeps the
/// error, the others and the job go on.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_user_reducer_that_refuses_gives_up_and_the_job_goes_on() -> anyhow::Result<()> {
    let env = TestEnv::start("reducer-refuses").await?;
    let _mapper = ExampleWorker::python(&env.nats, "word_count.py", &[], &[]).await?;
    let _reducer = ExampleWorker::python(&env.nats, "word_reducer.py", &[], &[]).await?;
    let docs: Vec<Doc> = (0..60).map(Doc::new).collect();
    let want = expected(&docs);
    let mut spec = job("refused", &docs);
    // The word reducer refuses outputs that are not word counts: these
    // are the `lang` strings.
    spec["reduce"] = json!([
        {"name": "words", "op": "sum", "path": "output.words"},
        {"name": "bad", "op": "nats", "subject": "words.reduce", "path": "output.lang"},
    ]);
    jobs::submit_plain(&env.bus, spec.to_string().as_bytes()).await?;
    let state = jobs::wait_for_end(&env.bus, "refused").await?;
    assert_eq!(state.status, JobStatus::Partial);
    assert_eq!(state.results["words"].value, json!(want.words));
    let bad = &state.results["bad"];
    assert!(
        bad.error
            .as_deref()
            .is_some_and(|e| e.contains("not a word count")),
        "{bad:?}"
    );
    assert_eq!(bad.values, 0);
    Ok(())
}

/// A bad reduction is refused at submit, naming its field.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_reduction_is_rejected_naming_the_field() -> anyhow::Result<()> {
    let env = TestEnv::start("reduce-bad").await?;
    let docs: Vec<Doc> = (0..3).map(Doc::new).collect();
    for (reduce, field) in [
        (json!([{"name": "w", "op": "sum"}]), "reduce[0].path"),
        (
            json!([{"name": "w", "op": "median", "path": "output.words"}]),
            "reduce[0].op",
        ),
        (
            json!([{"name": "w", "op": "sum", "path": "outputs.words"}]),
            "reduce[0].path",
        ),
        (json!([{"name": "w", "op": "nats"}]), "reduce[0].subject"),
    ] {
        let mut spec = job("bad", &docs);
        spec["id"] = json!(format!("bad-{}", field.replace(['[', ']', '.'], "-")));
        spec["reduce"] = reduce.clone();
        let id = spec["id"].as_str().unwrap_or_default().to_string();
        jobs::submit_plain(&env.bus, spec.to_string().as_bytes()).await?;
        let event = jobs::wait_for_event(&env.bus, &id, "rejected").await?;
        let reason = event.reason.unwrap_or_default();
        assert!(reason.starts_with(field), "{reduce}: {reason}");
    }
    Ok(())
}
