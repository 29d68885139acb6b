//! Workers in other languages, from examples/, as child processes: the
//! Python ones in the venv `make setup` creates (`.tools/py`), the Node one
//! with the modules `npm ci` installed (`examples/node/node_modules`).

use std::{path::PathBuf, process::Stdio, time::Duration};

use anyhow::{bail, Context as _};
use jetflow_runtime::NatsArgs;
use tokio::{
    io::{AsyncBufReadExt, BufReader, Lines},
    process::{Child, ChildStdout, Command},
};

fn repo() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
}

/// A running example worker; killed on drop.
pub struct ExampleWorker {
    child: Child,
    stdout: Lines<BufReader<ChildStdout>>,
    name: String,
}

impl ExampleWorker {
    /// Starts `examples/python/<script>` with `env` (plus `NATS_URL` and
    /// `JETFLOW_NAMESPACE`) and `args`; waits for its `ready:` line.
    pub async fn python(
        nats: &NatsArgs,
        script: &str,
        args: &[&str],
        env: &[(&str, &str)],
    ) -> anyhow::Result<Self> {
        let python = repo().join(".tools/py/bin/python");
        if !python.exists() {
            bail!(
                "{} not found: run `make setup` (it creates the examples' Python environment)",
                python.display()
            );
        }
        let mut command = Command::new(python);
        command
            .arg(repo().join("examples/python").join(script))
            .args(args);
        Self::start(command, nats, script, env).await
    }

    /// Starts `node examples/node/<script>` likewise.
    pub async fn node(nats: &NatsArgs, script: &str, env: &[(&str, &str)]) -> anyhow::Result<Self> {
        Self::node_with_args(nats, script, &[], env).await
    }

    /// Starts `node examples/node/<script> args…` likewise.
    pub async fn node_with_args(
        nats: &NatsArgs,
        script: &str,
        args: &[&str],
        env: &[(&str, &str)],
    ) -> anyhow::Result<Self> {
        let dir = repo().join("examples/node");
        if !dir.join("node_modules/nats").exists() {
            bail!("examples/node/node_modules not found: run `make setup` (npm ci)");
        }
        let mut command = Command::new("node");
        command.arg(dir.join(script)).args(args).current_dir(dir);
        Self::start(command, nats, script, env).await
    }

    async fn start(
        mut command: Command,
        nats: &NatsArgs,
        name: &str,
        env: &[(&str, &str)],
    ) -> anyhow::Result<Self> {
        command
            .env("NATS_URL", nats.nats_url.join(","))
            .env("JETFLOW_NAMESPACE", &nats.namespace)
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .kill_on_drop(true);
        let mut child = command
            .spawn()
            .with_context(|| format!("starting {name}"))?;
        let stdout = child.stdout.take().context("stdout")?;
        let mut worker = Self {
            child,
            stdout: BufReader::new(stdout).lines(),
            name: name.to_string(),
        };
        worker
            .wait_for_line("ready:", Duration::from_secs(30))
            .await?;
        Ok(worker)
    }

    /// Reads the worker's output until a line starting with `prefix`.
    pub async fn wait_for_line(
        &mut self,
        prefix: &str,
        within: Duration,
    ) -> anyhow::Result<String> {
        let name = self.name.clone();
        tokio::time::timeout(within, async {
            while let Some(line) = self.stdout.next_line().await? {
                if line.starts_with(prefix) {
                    return Ok(line);
                }
            }
            bail!("{name} exited before printing {prefix:?}")
        })
        .await
        .with_context(|| format!("{name} printed no {prefix:?} within {within:?}"))?
    }

    /// Waits for the worker to exit by itself; its exit status must be 0.
    /// Returns what it printed meanwhile.
    pub async fn finish(mut self, within: Duration) -> anyhow::Result<Vec<String>> {
        let mut printed = Vec::new();
        let name = self.name.clone();
        let read = async {
            while let Ok(Some(line)) = self.stdout.next_line().await {
                printed.push(line);
            }
            self.child.wait().await
        };
        let status = match tokio::time::timeout(within, read).await {
            Ok(status) => status?,
            Err(_) => bail!("{name} did not exit within {within:?}; it printed {printed:?}"),
        };
        anyhow::ensure!(status.success(), "{name} exited with {status}: {printed:?}");
        Ok(printed)
    }
}
