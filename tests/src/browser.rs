//! [`Browser`]: a real headless Chromium driven over WebDriver, for tests of
//! what a person sees in a page.
//!
//! Debian's `chromedriver` (installed by `make setup`) runs as a child
//! process on a free port and starts Chromium itself. chromedriver leads its
//! own process group, which Chromium joins, so dropping the [`Browser`]
//! kills both by that id even when a test fails half-way. (Chromium's
//! crashpad handlers detach into sessions of their own; they exit by
//! themselves a moment after Chromium. Its `--disable-crashpad-for-testing`
//! is no way out: with it, Chromium 148's network service crashes on the
//! first navigation.)

use std::{
    fmt::Debug,
    os::unix::process::CommandExt as _,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::{bail, Context as _};
use fantoccini::{elements::Element, Client, ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;
use serde_json::{json, Value};

/// Debian's chromedriver, from the `chromium-driver` package.
pub const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
/// Debian's Chromium, from the `chromium` package.
pub const CHROMIUM: &str = "/usr/bin/chromium";

/// Chromium's flags besides `--user-data-dir`. Without the ones that turn
/// off background networking, component updates and sync, Chromium keeps
/// calling Google's servers, which a closed network answers only slowly.
const CHROMIUM_ARGS: [&str; 10] = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--window-size=1400,1000",
];

const POLL: Duration = Duration::from_millis(50);
/// Attempts at an element that went stale (its section was re-drawn).
const STALE_RETRIES: usize = 40;
const DRIVER_READY_WITHIN: Duration = Duration::from_secs(20);
/// The free port may be taken between choosing and binding it.
const DRIVER_START_ATTEMPTS: usize = 3;

/// `<workspace>/target/screenshots`, where tests leave their screenshots.
pub fn screenshot_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the tests crate sits inside the workspace")
        .join("target")
        .join("screenshots")
}

/// A headless Chromium session. Chromium and chromedriver are killed on
/// drop; [`close`](Self::close) ends the session properly first.
pub struct Browser {
    // Fields drop in order: the session, then the processes, then the
    // profile they were writing to.
    client: Client,
    driver: Driver,
    _dir: tempfile::TempDir,
}

impl Browser {
    /// Starts chromedriver and a fresh Chromium profile, and opens a session.
    pub async fn start() -> anyhow::Result<Self> {
        let dir = tempfile::tempdir().context("creating the browser's temp dir")?;
        let profile = dir.path().join("profile");
        let home = dir.path().join("home");
        std::fs::create_dir(&home).context("creating the browser's home")?;
        let driver = Driver::start(&dir.path().join("chromedriver.log"), &home).await?;
        let client = ClientBuilder::new(HttpConnector::new())
            .capabilities(capabilities(&profile))
            .connect(&driver.url)
            .await
            .with_context(|| {
                format!(
                    "opening a Chromium session; chromedriver's log ends:\n{}",
                    driver.log_tail()
                )
            })?;
        Ok(Self {
            client,
            driver,
            _dir: dir,
        })
    }

    /// Navigates to `url` and waits for the page to load.
    pub async fn goto(&self, url: &str) -> anyhow::Result<()> {
        self.client
            .goto(url)
            .await
            .with_context(|| format!("navigating to {url}"))
    }

    /// The visible text of the first element matching `css`.
    pub async fn text(&self, css: &str) -> anyhow::Result<String> {
        self.on_element(css, "reading the text of", async |e: Element| {
            e.text().await
        })
        .await
    }

    /// The visible text of every element matching `css`, in document order.
    pub async fn texts(&self, css: &str) -> anyhow::Result<Vec<String>> {
        let mut last = None;
        for _ in 0..STALE_RETRIES {
            match self.texts_once(css).await {
                Ok(texts) => return Ok(texts),
                Err(err) => last = Some(err),
            }
            tokio::time::sleep(POLL).await;
        }
        Err(last.unwrap_or_else(|| anyhow::anyhow!("reading `{css}`")))
    }

    async fn texts_once(&self, css: &str) -> anyhow::Result<Vec<String>> {
        let elements = self
            .client
            .find_all(Locator::Css(css))
            .await
            .with_context(|| format!("finding `{css}`"))?;
        let mut texts = Vec::with_capacity(elements.len());
        for element in elements {
            let text = element
                .text()
                .await
                .with_context(|| format!("reading the text of `{css}`"))?;
            texts.push(text);
        }
        Ok(texts)
    }

    /// Attribute `name` of the first element matching `css`.
    pub async fn attr(&self, css: &str, name: &str) -> anyhow::Result<Option<String>> {
        self.on_element(css, "reading an attribute of", async |e: Element| {
            e.attr(name).await
        })
        .await
    }

    /// Whether any element matches `css` now (no waiting).
    pub async fn exists(&self, css: &str) -> anyhow::Result<bool> {
        let found = self
            .client
            .find_all(Locator::Css(css))
            .await
            .with_context(|| format!("finding `{css}`"))?;
        Ok(!found.is_empty())
    }

    /// Clicks the first element matching `css`.
    pub async fn click(&self, css: &str) -> anyhow::Result<()> {
        self.on_element(css, "clicking", async |e: Element| e.click().await)
            .await
    }

    /// Finds `css` and runs `op` on it, again (found afresh) when the
    /// element went stale in between: live pages replace their sections
    /// as the job moves, so an element found a moment ago may be gone.
    async fn on_element<T>(
        &self,
        css: &str,
        doing: &str,
        op: impl AsyncFn(Element) -> Result<T, fantoccini::error::CmdError>,
    ) -> anyhow::Result<T> {
        let mut last = None;
        for _ in 0..STALE_RETRIES {
            match self.find(css).await {
                Ok(element) => match op(element).await {
                    Ok(value) => return Ok(value),
                    Err(err) => {
                        last = Some(anyhow::Error::new(err).context(format!("{doing} `{css}`")))
                    }
                },
                Err(err) => last = Some(err),
            }
            tokio::time::sleep(POLL).await;
        }
        Err(last.unwrap_or_else(|| anyhow::anyhow!("{doing} `{css}`")))
    }

    /// Replaces the value of the input matching `css` by typing `value`.
    pub async fn fill(&self, css: &str, value: &str) -> anyhow::Result<()> {
        let element = self.find(css).await?;
        element
            .clear()
            .await
            .with_context(|| format!("clearing `{css}`"))?;
        element
            .send_keys(value)
            .await
            .with_context(|| format!("typing into `{css}`"))
    }

    /// Runs `js` in the page and gives what it returns: the script needs
    /// an explicit `return` (`return document.title`).
    pub async fn eval(&self, js: &str) -> anyhow::Result<Value> {
        self.client
            .execute(js, Vec::new())
            .await
            .with_context(|| format!("running script {js:?}"))
    }

    /// The text of the JavaScript dialog (alert, confirm, prompt) open now,
    /// or `None` if there is none.
    pub async fn alert_text(&self) -> anyhow::Result<Option<String>> {
        match self.client.get_alert_text().await {
            Ok(text) => Ok(Some(text)),
            Err(err) if err.is_no_such_alert() => Ok(None),
            Err(err) => Err(err).context("reading the open dialog's text"),
        }
    }

    /// Accepts the open dialog (OK).
    pub async fn accept_alert(&self) -> anyhow::Result<()> {
        self.client
            .accept_alert()
            .await
            .context("accepting the open dialog")
    }

    /// Dismisses the open dialog (Cancel).
    pub async fn dismiss_alert(&self) -> anyhow::Result<()> {
        self.client
            .dismiss_alert()
            .await
            .context("dismissing the open dialog")
    }

    /// Saves a PNG of the viewport to `path`, creating its directory.
    pub async fn screenshot(&self, path: &Path) -> anyhow::Result<()> {
        let png = self
            .client
            .screenshot()
            .await
            .context("taking a screenshot")?;
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        std::fs::write(path, png).with_context(|| format!("writing {}", path.display()))
    }

    /// The page's current DOM, serialized.
    pub async fn source(&self) -> anyhow::Result<String> {
        self.client
            .source()
            .await
            .context("reading the page source")
    }

    /// The URL of the page shown now.
    pub async fn current_url(&self) -> anyhow::Result<String> {
        let url = self
            .client
            .current_url()
            .await
            .context("reading the current URL")?;
        Ok(url.into())
    }

    /// Calls `probe` until `done` holds for what it returns, and gives
    /// that. On timeout the error names `what` and the last value (or
    /// error) seen; probe errors count as "not yet", since an element
    /// that is about to appear is missing until it does.
    pub async fn wait_for<T: Debug>(
        &self,
        what: &str,
        timeout: Duration,
        mut probe: impl AsyncFnMut(&Browser) -> anyhow::Result<T>,
        done: impl Fn(&T) -> bool,
    ) -> anyhow::Result<T> {
        let deadline = Instant::now() + timeout;
        loop {
            let last = match probe(self).await {
                Ok(value) if done(&value) => return Ok(value),
                Ok(value) => format!("{value:?}"),
                Err(err) => format!("error: {err:#}"),
            };
            if Instant::now() >= deadline {
                bail!("timed out after {timeout:?} waiting for {what}; last seen: {last}");
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Waits until the text of `css` satisfies `pred`, and gives it.
    pub async fn wait_text(
        &self,
        css: &str,
        pred: impl Fn(&str) -> bool,
        timeout: Duration,
    ) -> anyhow::Result<String> {
        self.wait_for(
            &format!("the text of `{css}`"),
            timeout,
            async |browser: &Browser| browser.text(css).await,
            |text: &String| pred(text),
        )
        .await
    }

    /// Ends the session (Chromium quits), then stops chromedriver.
    pub async fn close(self) -> anyhow::Result<()> {
        let Self {
            client,
            driver,
            _dir,
        } = self;
        let closed = client.close().await.context("ending the browser session");
        drop(driver);
        closed
    }

    async fn find(&self, css: &str) -> anyhow::Result<Element> {
        self.client
            .find(Locator::Css(css))
            .await
            .with_context(|| format!("finding `{css}`"))
    }
}

fn capabilities(profile: &Path) -> fantoccini::wd::Capabilities {
    let mut args: Vec<String> = CHROMIUM_ARGS.iter().map(|a| a.to_string()).collect();
    args.push(format!("--user-data-dir={}", profile.display()));
    let caps = json!({
        "browserName": "chrome",
        "goog:chromeOptions": { "binary": CHROMIUM, "args": args },
        // Leave dialogs open: the default (dismiss and notify) would close
        // an alert before `alert_text` could see it.
        "unhandledPromptBehavior": "ignore",
        // A page that never loads fails the test in seconds, not 5 minutes.
        "timeouts": { "pageLoad": 30_000, "script": 30_000 },
    });
    match caps {
        Value::Object(map) => map,
        _ => unreachable!("a json! object literal is an object"),
    }
}

/// The chromedriver process, leading its own process group.
struct Driver {
    child: Child,
    /// `http://127.0.0.1:<port>`.
    url: String,
    log: PathBuf,
}

impl Driver {
    async fn start(log: &Path, home: &Path) -> anyhow::Result<Self> {
        let mut failures = Vec::new();
        for _ in 0..DRIVER_START_ATTEMPTS {
            let driver = Self::spawn(free_port()?, log, home)?;
            match driver.ready().await {
                Ok(()) => return Ok(driver),
                Err(err) => failures.push(format!("{err:#}")),
            }
        }
        bail!(
            "chromedriver did not start ({}); its log ends:\n{}",
            failures.join("; "),
            tail(log)
        )
    }

    fn spawn(port: u16, log: &Path, home: &Path) -> anyhow::Result<Self> {
        let out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .with_context(|| format!("opening {}", log.display()))?;
        let child = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            // Chromium keeps crash reports and caches under the home
            // directory, not the profile: a home of its own keeps the
            // machine's clean and parallel tests apart.
            .env("HOME", home)
            .env("XDG_CONFIG_HOME", home.join(".config"))
            .env("XDG_CACHE_HOME", home.join(".cache"))
            .stdin(Stdio::null())
            .stdout(out.try_clone()?)
            .stderr(out)
            .process_group(0)
            .spawn()
            .with_context(|| format!("starting {CHROMEDRIVER} (`make setup` installs it)"))?;
        Ok(Self {
            child,
            url: format!("http://127.0.0.1:{port}"),
            log: log.to_path_buf(),
        })
    }

    /// Polls chromedriver's `/status` until it says it is ready.
    async fn ready(&self) -> anyhow::Result<()> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(2))
            .build()?;
        let status = format!("{}/status", self.url);
        let deadline = Instant::now() + DRIVER_READY_WITHIN;
        loop {
            if let Ok(response) = http.get(&status).send().await {
                if let Ok(body) = response.json::<Value>().await {
                    if body["value"]["ready"] == json!(true) {
                        return Ok(());
                    }
                }
            }
            if self.exited() {
                bail!("chromedriver on {} exited", self.url);
            }
            if Instant::now() >= deadline {
                bail!(
                    "chromedriver on {} not ready within {DRIVER_READY_WITHIN:?}",
                    self.url
                );
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Whether the process has ended, without reaping it: the pid stays
    /// ours, so the group kill on drop cannot hit a recycled id.
    fn exited(&self) -> bool {
        // SAFETY: siginfo_t is plain data, valid all-zero.
        let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
        // SAFETY: waitid(2) on our own unreaped child, writing into `info`;
        // WNOWAIT leaves it unreaped.
        let rc = unsafe {
            libc::waitid(
                libc::P_PID,
                self.child.id(),
                &mut info,
                libc::WEXITED | libc::WNOHANG | libc::WNOWAIT,
            )
        };
        // SAFETY: si_pid is set by a successful waitid; 0 means still running.
        rc != 0 || unsafe { info.si_pid() } != 0
    }

    fn log_tail(&self) -> String {
        tail(&self.log)
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        // SAFETY: kill(2) on the process group our unreaped child leads:
        // chromedriver, Chromium and its helpers, nothing else.
        unsafe { libc::kill(-(self.child.id() as libc::pid_t), libc::SIGKILL) };
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!("--- chromedriver (last lines)\n{}", self.log_tail());
        }
    }
}

fn tail(log: &Path) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(30)..].join("\n")
}

fn free_port() -> anyhow::Result<u16> {
    let probe =
        std::net::TcpListener::bind("127.0.0.1:0").context("binding 127.0.0.1:0 for a port")?;
    Ok(probe.local_addr()?.port())
}
