//! `jetflow ui` (issue 15) in a real headless Chromium: live counts that
//! end equal to the job state, errors grouped with exact counts, a page
//! that stays small at 20,000 batches, actions off (403, no button) and on
//! (pause and cancel by clicking stop the calls), and user text shown as
//! text. Screenshots go to target/screenshots/ for people to look at.

use std::time::{Duration, Instant};

use futures::{StreamExt, TryStreamExt};
use jetflow_devkit::{MockAgents, MockAgentsConfig};
use jetflow_e2e::{
    browser::{screenshot_dir, Browser},
    dashboard::Dashboard,
    jobs, TestEnv,
};
use jetflow_protocol::job::{JobState, JobStatus};
use serde_json::json;

const LIVE_WITHIN: Duration = Duration::from_secs(20);

/// A job slow enough to watch: every call takes `latency`.
async fn slow_mock(
    agents: usize,
    latency_ms: u64,
    permanent_rate: f64,
) -> anyhow::Result<MockAgents> {
    MockAgents::start(MockAgentsConfig {
        agents,
        latency: Duration::from_millis(latency_ms),
        transient_rate: 0.02,
        permanent_rate,
        ..Default::default()
    })
    .await
}

async fn count(browser: &Browser, name: &str) -> anyhow::Result<String> {
    browser.text(&format!("#tally [data-count={name}]")).await
}

fn number(text: &str) -> u64 {
    text.trim_end_matches('+').parse().unwrap_or(0)
}

/// Whether the page is still the one loaded (a reload would lose it).
async fn marked(browser: &Browser) -> anyhow::Result<bool> {
    Ok(browser.eval("return window.__jetflowMark === 7;").await? == json!(true))
}

async fn mark(browser: &Browser) -> anyhow::Result<()> {
    browser
        .eval("window.__jetflowMark = 7; return true;")
        .await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_dashboard_follows_a_running_job_live_in_a_real_browser() -> anyhow::Result<()> {
    let env = TestEnv::start("ui-live").await?;
    let mock = slow_mock(4000, 8, 0.01).await?;
    let ui = Dashboard::start(&env.nats, &[])?;
    let browser = Browser::start().await?;
    let job = "ui-live-job";
    let spec = jobs::agents_job(job, &mock, json!({"concurrency": 4}));
    jobs::submit_plain(&env.bus, spec.to_string().as_bytes()).await?;
    jobs::wait_for_state(&env.bus, job, |s| s.succeeded > 0).await?;

    // The jobs page: the job's row moves without a reload.
    browser.goto(&ui.at("/")).await?;
    mark(&browser).await?;
    let row = format!("tr[data-job=\"{job}\"] td.num");
    let first = browser.text(&row).await?;
    let moved = browser
        .wait_text(&row, |now| now != first, LIVE_WITHIN)
        .await?;
    assert!(marked(&browser).await?, "the jobs page reloaded");
    println!("jobs page row moved: {first:?} -> {moved:?}");
    // Its status chip counts it.
    let status = browser
        .text(&format!("tr[data-job=\"{job}\"] .status"))
        .await?;
    let chip = browser
        .text(&format!(".chip[data-status=\"{status}\"] b"))
        .await?;
    assert_eq!(chip, "1", "the {status} chip");
    browser
        .screenshot(&screenshot_dir().join("dashboard-jobs.png"))
        .await?;

    // The job's page: counts move while it runs, with no reload.
    browser.goto(&ui.at(&format!("/jobs/{job}"))).await?;
    mark(&browser).await?;
    let before = number(&count(&browser, "succeeded").await?);
    browser
        .wait_for(
            "the succeeded count to move",
            LIVE_WITHIN,
            async |b: &Browser| count(b, "succeeded").await.map(|t| number(&t)),
            |now: &u64| *now > before,
        )
        .await?;
    assert!(marked(&browser).await?, "the job page reloaded");
    browser
        .screenshot(&screenshot_dir().join("dashboard-job-running.png"))
        .await?;

    // At the end the page says exactly what the job state says.
    let end = jobs::wait_for_end(&env.bus, job).await?;
    browser
        .wait_text("#status", |s| s == end.status.as_str(), LIVE_WITHIN)
        .await?;
    let shown = |name: &'static str| {
        let browser = &browser;
        async move { count(browser, name).await }
    };
    let state: JobState = end;
    for (name, want) in [
        ("succeeded", state.succeeded),
        ("failed", state.failed),
        ("retries", state.retries),
        ("dead_lettered", state.dead_lettered),
    ] {
        assert_eq!(number(&shown(name).await?), want, "{name} on the page");
    }
    assert_eq!(shown("total").await?, state.total.to_string());
    assert!(marked(&browser).await?, "the job page reloaded");
    let updates: u64 = browser
        .eval("return document.body.dataset.updates || '0';")
        .await?
        .as_str()
        .unwrap_or("0")
        .parse()?;
    println!("job page updates received: {updates}");
    assert!(updates >= 2, "only {updates} live updates");

    // The errors panel: the mock's failures, grouped, with their counts.
    let failures = mock.permanent_failures().len() as u64;
    assert!(failures > 0, "the mock made no agent incompatible");
    assert_eq!(state.failed, failures);
    let counts = browser.texts("#errors tr[data-error-count] td.num").await?;
    let texts = browser
        .texts("#errors tr[data-error-count] td.error-text")
        .await?;
    let total: u64 = counts.iter().map(|c| number(c)).sum();
    assert_eq!(total, failures, "errors panel {counts:?} {texts:?}");
    assert_eq!(texts.len(), state.error_groups.groups.len());
    assert!(
        texts
            .iter()
            .all(|t| t.contains("HTTP 422") && t.contains("agent-#")),
        "{texts:?}"
    );
    for (group, shown) in state.error_groups.groups.iter().zip(&counts) {
        assert_eq!(number(shown), group.count);
    }
    browser
        .screenshot(&screenshot_dir().join("dashboard-job.png"))
        .await?;

    // Actions are off: no button, and every action route answers 403.
    assert!(!browser.exists("[data-action]").await?);
    let http = reqwest::Client::new();
    for action in ["cancel", "pause", "resume", "settings", "retry-failed"] {
        let url = ui.at(&format!("/jobs/{job}/actions/{action}"));
        assert_eq!(http.get(&url).send().await?.status(), 403, "GET {action}");
        let post = http.post(&url).form(&[("csrf", "x")]).send().await?;
        assert_eq!(post.status(), 403, "POST {action}");
    }
    for action in ["dlq/actions/replay", "dlq/actions/purge", "preview"] {
        let url = ui.at(&format!("/{action}"));
        assert_eq!(http.get(&url).send().await?.status(), 403, "GET {action}");
        assert_eq!(
            http.post(&url)
                .form(&[("csrf", "x")])
                .send()
                .await?
                .status(),
            403
        );
    }
    browser.goto(&ui.at("/dlq")).await?;
    assert!(!browser.exists("[data-action]").await?);
    assert!(!browser.exists("#nav-preview").await?);
    assert_eq!(
        number(&browser.text("#letter-count").await?),
        state.dead_lettered
    );

    // Downloads stream the outcomes: one row per item, as the bucket has.
    let csv = http
        .get(ui.at(&format!("/jobs/{job}/results.csv")))
        .send()
        .await?
        .text()
        .await?;
    assert_eq!(csv.lines().count() as u64, 1 + state.total);
    let failed = http
        .get(ui.at(&format!("/jobs/{job}/results.jsonl?failed=1")))
        .send()
        .await?
        .text()
        .await?;
    assert_eq!(failed.lines().count() as u64, state.failed);
    browser.close().await?;
    Ok(())
}

/// The number of calls the mock has seen settles: no call comes after.
async fn calls_stop(mock: &MockAgents) -> anyhow::Result<u64> {
    // Items in flight when the job stopped finish first.
    tokio::time::sleep(Duration::from_millis(800)).await;
    let settled = mock.stats().calls;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        mock.stats().calls,
        settled,
        "the mock saw calls after the job stopped"
    );
    Ok(settled)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn pause_and_cancel_by_clicking_stop_the_calls() -> anyhow::Result<()> {
    let env = TestEnv::start("ui-act").await?;
    let mock = slow_mock(20_000, 20, 0.0).await?;
    let ui = Dashboard::start(&env.nats, &["--allow-actions"])?;
    let browser = Browser::start().await?;
    let job = "ui-act-job";
    let spec = jobs::agents_job(job, &mock, json!({"concurrency": 2}));
    jobs::submit_plain(&env.bus, spec.to_string().as_bytes()).await?;
    jobs::wait_for_state(&env.bus, job, |s| s.succeeded > 0).await?;
    browser.goto(&ui.at(&format!("/jobs/{job}"))).await?;

    // Pause: the button leads to a page saying what it affects.
    browser.click("[data-action=pause]").await?;
    let affects = browser.text("#affects").await?;
    assert!(affects.contains("items"), "{affects}");
    browser
        .fill("input[name=reason]", "API maintenance")
        .await?;
    browser.click("#confirm").await?;
    browser
        .wait_text("#status", |s| s == "paused", LIVE_WITHIN)
        .await?;
    let paused_at = calls_stop(&mock).await?;
    let state = jobs::state_json(&env.bus, job).await?.unwrap_or_default();
    assert_eq!(state["pause_reason"], "API maintenance");
    browser
        .screenshot(&screenshot_dir().join("dashboard-paused.png"))
        .await?;

    // Resume, let it run, then cancel by clicking.
    browser.click("[data-action=resume]").await?;
    browser.click("#confirm").await?;
    jobs::wait_for_state(&env.bus, job, |s| {
        s.status != JobStatus::Paused && s.succeeded + s.failed > paused_at + 5
    })
    .await?;
    browser.click("[data-action=cancel]").await?;
    let affects = browser.text("#affects").await?;
    assert!(affects.contains("will not run"), "{affects}");
    browser.click("#confirm").await?;
    let end = jobs::wait_for_end(&env.bus, job).await?;
    assert_eq!(end.status, JobStatus::Cancelled);
    browser
        .wait_text("#status", |s| s == "cancelled", LIVE_WITHIN)
        .await?;
    let cancelled_at = calls_stop(&mock).await?;
    assert!(cancelled_at < 20_000, "the job ran to its end");
    assert!(end.not_run > 0);

    // A form without this dashboard's token is refused.
    let http = reqwest::Client::new();
    let forged = http
        .post(ui.at(&format!("/jobs/{job}-2/actions/cancel")))
        .form(&[("csrf", "forged")])
        .send()
        .await?;
    assert_eq!(forged.status(), 403);
    browser.close().await?;
    Ok(())
}

/// A NATS worker that fails every item with `error`.
async fn failing_worker(env: &TestEnv, subject: &str, error: &str) -> anyhow::Result<()> {
    let client = async_nats::connect(env.server.url()).await?;
    let mut requests = client.subscribe(subject.to_string()).await?;
    let reply = json!({"ok": false, "error": error, "retryable": false}).to_string();
    tokio::spawn(async move {
        while let Some(request) = requests.next().await {
            if let Some(to) = request.reply {
                let _ = client.publish(to, reply.clone().into()).await;
            }
        }
    });
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn labels_and_errors_with_markup_are_shown_as_text() -> anyhow::Result<()> {
    let env = TestEnv::start("ui-xss").await?;
    let evil = "<script>alert(1)</script>";
    failing_worker(&env, "xss.handler", evil).await?;
    let ui = Dashboard::start(&env.nats, &[])?;
    let browser = Browser::start().await?;
    let job = "ui-xss-job";
    let spec = json!({
        "id": job,
        "kind": "xss",
        "labels": {"team": evil},
        "source": {"type": "ids", "ids": ["a", "b", "c"]},
        "handler": {"type": "nats", "subject": "xss.handler", "timeout": "5s"},
    });
    jobs::submit_plain(&env.bus, spec.to_string().as_bytes()).await?;
    let end = jobs::wait_for_end(&env.bus, job).await?;
    assert_eq!(end.failed, 3);

    browser.goto(&ui.at("/")).await?;
    assert_eq!(browser.alert_text().await?, None, "a dialog opened");
    let labels = browser
        .texts(&format!("tr[data-job=\"{job}\"] .label"))
        .await?;
    assert_eq!(labels, [format!("team={evil}")]);
    browser.goto(&ui.at(&format!("/jobs/{job}"))).await?;
    assert_eq!(browser.alert_text().await?, None, "a dialog opened");
    let errors = browser.texts("#errors td.error-text").await?;
    assert_eq!(errors, [evil.to_string()]);
    let counts = browser.texts("#errors td.num").await?;
    assert_eq!(counts, ["3"]);
    assert!(browser.source().await?.contains("&lt;script&gt;"));
    // The dead letters page shows the same text as text.
    browser.goto(&ui.at(&format!("/dlq?job={job}"))).await?;
    assert_eq!(browser.alert_text().await?, None, "a dialog opened");
    browser
        .screenshot(&screenshot_dir().join("dashboard-escaping.png"))
        .await?;
    browser.close().await?;
    Ok(())
}

/// The page is drawn from the job state and its batches come apart, as
/// about 20 bytes each: a page of 20,000 batches stays under this.
const PAGE_LIMIT: usize = 64 * 1024;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_job_of_20000_batches_has_a_small_page_that_renders() -> anyhow::Result<()> {
    let env = TestEnv::start("ui-big").await?;
    let mock = MockAgents::start(MockAgentsConfig {
        agents: 20_000,
        page_limit: 1,
        ..Default::default()
    })
    .await?;
    let ui = Dashboard::start(&env.nats, &[])?;
    let job = "ui-big-job";
    let mut spec = jobs::agents_job(
        job,
        &mock,
        json!({"concurrency": 200, "fetch_size": 1, "max_inflight_batches": 400}),
    );
    // Ids given inline: fetch's pages are then not 20,000 calls to the mock.
    let ids: Vec<String> = (1..=20_000).map(|n| format!("agent-{n:05}")).collect();
    spec["source"] = json!({"type": "ids", "ids": ids});
    jobs::submit_plain(&env.bus, spec.to_string().as_bytes()).await?;
    let started = Instant::now();
    // 20,000 batches take about two minutes in a debug build here.
    let end = jobs::wait_for_end_within(&env.bus, job, Duration::from_secs(600)).await?;
    println!("20,000 one-item batches ran in {:?}", started.elapsed());
    assert_eq!(end.batches, 20_000);

    let http = reqwest::Client::new();
    let page = http
        .get(ui.at(&format!("/jobs/{job}")))
        .send()
        .await?
        .text()
        .await?;
    println!("job page of 20,000 batches: {} bytes of HTML", page.len());
    assert!(page.len() < PAGE_LIMIT, "{} bytes", page.len());

    let browser = Browser::start().await?;
    let opened = Instant::now();
    browser.goto(&ui.at(&format!("/jobs/{job}"))).await?;
    browser
        .wait_for(
            "the grid to draw every batch",
            Duration::from_secs(60),
            async |b: &Browser| b.attr("#grid", "data-drawn").await,
            |drawn: &Option<String>| drawn.as_deref() == Some("20000"),
        )
        .await?;
    println!(
        "job page with its 20,000-batch grid rendered in {:?}",
        opened.elapsed()
    );
    // A batch's counts on hover.
    browser
        .eval(
            "const c = document.getElementById('grid-canvas'); const r = c.getBoundingClientRect();\n\
             c.dispatchEvent(new MouseEvent('mousemove', {clientX: r.left + 2, clientY: r.top + 2, bubbles: true}));\n\
             return true;",
        )
        .await?;
    let tip = browser.text("#grid-tip").await?;
    assert_eq!(tip, "batch 1: 1 items, 1 succeeded, 0 failed (completed)");
    browser
        .screenshot(&screenshot_dir().join("dashboard-20000-batches.png"))
        .await?;
    browser.close().await?;
    Ok(())
}

/// The dry run of a pasted job file (acceptance 5's dashboard half): the
/// item count and the first requests as they would be sent, the typo
/// warned about, and nothing called or written.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_pasted_job_is_previewed_without_a_call_or_a_write() -> anyhow::Result<()> {
    let env = TestEnv::start("ui-preview").await?;
    let mock = MockAgents::start(MockAgentsConfig {
        agents: 120,
        ..Default::default()
    })
    .await?;
    let ui = Dashboard::start(&env.nats, &["--allow-actions"])?;
    let browser = Browser::start().await?;
    let job = "ui-preview-job";
    let mut spec = mock.migration_job(job, json!({"fetch_size": 50}));
    spec["batch"]["concurency"] = json!(10);
    browser.goto(&ui.at("/")).await?;
    browser.click("#nav-preview").await?;
    browser.fill("#job-text", &spec.to_string()).await?;
    browser.fill("input[name=pages]", "3").await?;
    browser.click("#preview").await?;
    let report = browser.text("#report").await?;
    assert!(report.contains("120 items"), "{report}");
    let first_call = mock.migrate_url_template().replace("{id}", "agent-00001");
    assert!(report.contains(&format!("POST {first_call}")), "{report}");
    assert!(report.contains("Idempotency-Key"), "{report}");
    let warnings = browser.text("#warnings").await?;
    assert!(
        warnings.contains("batch.concurency") && warnings.contains("did you mean concurrency"),
        "{warnings}"
    );
    // The pasted text stays, to edit and preview again.
    let kept = browser
        .eval("return document.getElementById('job-text').value")
        .await?;
    assert!(kept.as_str().unwrap_or_default().contains(job));
    browser
        .screenshot(&screenshot_dir().join("dashboard-preview.png"))
        .await?;

    // Paged (3 pages of 50), nothing called, nothing written.
    let stats = mock.stats();
    assert_eq!((stats.pages, stats.calls), (3, 0), "{stats:?}");
    assert!(env.bus.kv.jobs.get(job).await?.is_none());
    assert!(env.bus.kv.specs.get(job).await?.is_none());

    // Submit, having read it: the job's page, and the job runs exactly once
    // (a second press publishes the same id, which the stream drops).
    let submit_form = "form[action='/preview/submit']";
    let document = browser
        .attr(&format!("{submit_form} input[name=job]"), "value")
        .await?
        .unwrap_or_default();
    let csrf = browser
        .attr(&format!("{submit_form} input[name=csrf]"), "value")
        .await?
        .unwrap_or_default();
    browser.click("#submit-job").await?;
    let on_job_page = format!("/jobs/{job}");
    browser
        .wait_for(
            "the job's page",
            LIVE_WITHIN,
            async |b: &Browser| b.current_url().await,
            |url| url.contains(&on_job_page),
        )
        .await?;
    assert_eq!(browser.text("#flash").await?, "submitted");
    let end = jobs::wait_for_end(&env.bus, job).await?;
    assert_eq!((end.status, end.succeeded), (JobStatus::Completed, 120));
    let http = reqwest::Client::new();
    let again = http
        .post(ui.at("/preview/submit"))
        .form(&[("csrf", csrf), ("job", document)])
        .send()
        .await?;
    assert!(again.status().is_success(), "{again:?}");
    // Had the second press made a new job, its state would exist by now:
    // a new job's submit answers once fetch has accepted it.
    let jobs: Vec<String> = env.bus.kv.jobs.keys().await?.try_collect().await?;
    assert_eq!(jobs, [job], "submitted twice, one job");
    assert_eq!(mock.stats().calls, 120);

    // A job the services would refuse says why.
    browser.goto(&ui.at("/preview")).await?;
    browser
        .fill("#job-text", r#"{"source": {"type": "ids", "ids": []}}"#)
        .await?;
    browser.click("#preview").await?;
    let error = browser.text("#preview-error").await?;
    assert!(error.contains("rejected"), "{error}");
    browser.close().await?;
    Ok(())
}
