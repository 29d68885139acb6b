//! `jetflow ui` as a child process against a test's NATS: started on a
//! port of its own choosing (`--listen 127.0.0.1:0`, the URL read from
//! what it prints), stopped by PID on drop.

use std::{
    io::{BufRead, BufReader},
    process::{Child, Command, Stdio},
    sync::{Arc, Mutex},
    time::Duration,
};

use anyhow::{bail, Context as _};
use jetflow_runtime::NatsArgs;

use crate::{processes::binary, shell};

/// A running dashboard.
pub struct Dashboard {
    /// `http://127.0.0.1:<port>` (no trailing slash).
    pub url: String,
    child: Child,
    output: Arc<Mutex<String>>,
}

impl Dashboard {
    /// Starts `jetflow ui` with `args` (e.g. `--allow-actions`).
    pub fn start(nats: &NatsArgs, args: &[&str]) -> anyhow::Result<Self> {
        let mut child = Command::new(binary("jetflow")?)
            .arg("ui")
            .args(["--listen", "127.0.0.1:0"])
            .args(args)
            .envs(shell::env_of(nats))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .context("starting jetflow ui")?;
        let stderr = child.stderr.take().context("jetflow ui's stderr")?;
        let output = Arc::new(Mutex::new(String::new()));
        let (found, url) = std::sync::mpsc::channel();
        let kept = output.clone();
        std::thread::spawn(move || {
            let mut found = Some(found);
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(rest) = line.split("http://").nth(1) {
                    if let Some(sender) = found.take() {
                        let address = rest.split('/').next().unwrap_or_default();
                        let _ = sender.send(format!("http://{address}"));
                    }
                }
                if let Ok(mut all) = kept.lock() {
                    all.push_str(&line);
                    all.push('\n');
                }
            }
        });
        match url.recv_timeout(Duration::from_secs(30)) {
            Ok(url) => Ok(Self { url, child, output }),
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                let said = output.lock().map(|o| o.clone()).unwrap_or_default();
                bail!("jetflow ui did not say where it listens within 30 s:\n{said}")
            }
        }
    }

    /// `url` + `path`.
    pub fn at(&self, path: &str) -> String {
        format!("{}{path}", self.url)
    }

    /// What it printed so far.
    pub fn output(&self) -> String {
        self.output.lock().map(|o| o.clone()).unwrap_or_default()
    }
}

impl Drop for Dashboard {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!("--- jetflow ui's output:\n{}", self.output());
        }
    }
}
