//! The browser harness itself: a real headless Chromium clicks, types,
//! sees dialogs open (and not open), reads escaped markup as text, and
//! takes a screenshot, against pages served over real HTTP.

use std::time::Duration;

use anyhow::Context as _;
use axum::{response::Html, routing::get, Router};
use jetflow_e2e::browser::{screenshot_dir, Browser};
use serde_json::json;

const CLICK_PAGE: &str = r#"<!doctype html>
<html><head><title>harness</title></head><body>
<h1>Browser harness</h1>
<ul><li class="item">one</li><li class="item">two</li></ul>
<input id="name" value="old">
<button id="go">Go</button>
<span id="status" data-state="idle">waiting</span>
<script>
  // Changed a moment later, as after a fetch, so the test has to wait.
  document.getElementById('go').addEventListener('click', () => setTimeout(() => {
    const status = document.getElementById('status');
    status.textContent = 'clicked ' + document.getElementById('name').value;
    status.dataset.state = 'done';
  }, 200));
</script>
</body></html>"#;

const ALERT_PAGE: &str = r#"<!doctype html>
<html><body><p>alerting</p><script>alert('x')</script></body></html>"#;

const ESCAPED_PAGE: &str = r#"<!doctype html>
<html><body><p id="escaped">&lt;script&gt;alert(1)&lt;/script&gt;</p></body></html>"#;

const WAIT: Duration = Duration::from_secs(10);

/// Serves the three pages on a free loopback port; gives the base URL.
async fn serve_pages() -> anyhow::Result<String> {
    let app = Router::new()
        .route("/", get(|| async { Html(CLICK_PAGE) }))
        .route("/alert", get(|| async { Html(ALERT_PAGE) }))
        .route("/escaped", get(|| async { Html(ESCAPED_PAGE) }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Ok(format!("http://{addr}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browser_harness_drives_a_real_chromium() -> anyhow::Result<()> {
    let base = serve_pages().await?;
    let browser = Browser::start().await?;

    browser.goto(&format!("{base}/")).await?;
    assert_eq!(browser.current_url().await?, format!("{base}/"));
    assert_eq!(browser.texts("li.item").await?, ["one", "two"]);
    assert!(browser.exists("#go").await?);
    assert!(!browser.exists("#missing").await?);
    assert_eq!(browser.text("#status").await?, "waiting");
    assert_eq!(
        browser.attr("#status", "data-state").await?.as_deref(),
        Some("idle")
    );

    browser.fill("#name", "ada").await?;
    assert_eq!(
        browser
            .eval("return document.getElementById('name').value")
            .await?,
        json!("ada")
    );
    browser.click("#go").await?;
    let status = browser
        .wait_text("#status", |t| t.starts_with("clicked"), WAIT)
        .await?;
    assert_eq!(status, "clicked ada");
    assert_eq!(
        browser.attr("#status", "data-state").await?.as_deref(),
        Some("done")
    );
    assert!(browser.source().await?.contains("Browser harness"));

    let shot = screenshot_dir().join("browser-harness.png");
    browser.screenshot(&shot).await?;
    let png = std::fs::read(&shot).with_context(|| format!("reading {}", shot.display()))?;
    assert!(
        png.starts_with(b"\x89PNG\r\n\x1a\n"),
        "{} is not a PNG",
        shot.display()
    );

    assert_eq!(browser.alert_text().await?, None, "no dialog before /alert");
    browser.goto(&format!("{base}/alert")).await?;
    let alert = browser
        .wait_for(
            "the alert on /alert",
            WAIT,
            async |b: &Browser| b.alert_text().await,
            Option::is_some,
        )
        .await?;
    assert_eq!(alert.as_deref(), Some("x"));
    browser.accept_alert().await?;
    assert_eq!(browser.alert_text().await?, None, "the alert was accepted");

    browser.goto(&format!("{base}/escaped")).await?;
    assert_eq!(
        browser.alert_text().await?,
        None,
        "escaped markup must not run"
    );
    assert_eq!(browser.text("#escaped").await?, "<script>alert(1)</script>");

    browser.close().await
}
