//! The services as separate OS processes, built by `cargo build --bins`
//! (`make test` does it first).

use std::{
    path::PathBuf,
    process::{Child, Command, Stdio},
};

use anyhow::{bail, Context as _};
use jetflow_runtime::NatsArgs;

/// The binary names of the four stages.
pub const SERVICES: [&str; 4] = [
    "jetflow-fetch",
    "jetflow-batch",
    "jetflow-migrate",
    "jetflow-reduce",
];

/// Path of a workspace binary next to this test executable.
pub fn binary(name: &str) -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe().context("locating the test executable")?;
    // target/<profile>/deps/<test> -> target/<profile>/<name>
    let dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .context("test executable has no target dir")?;
    let path = dir.join(name);
    if !path.exists() {
        bail!(
            "{} not found: build the binaries first (`cargo build --workspace --bins`, which `make test` runs)",
            path.display()
        );
    }
    Ok(path)
}

/// Running service processes; killed on drop.
pub struct ServiceProcesses {
    nats: NatsArgs,
    env: Vec<(String, String)>,
    children: Vec<(String, Child)>,
}

impl ServiceProcesses {
    /// Starts one process of each stage against `nats`.
    pub fn start(nats: &NatsArgs) -> anyhow::Result<Self> {
        Self::start_copies(nats, 1)
    }

    /// Starts `copies` processes of each stage.
    pub fn start_copies(nats: &NatsArgs, copies: usize) -> anyhow::Result<Self> {
        Self::start_with_env(nats, copies, &[])
    }

    /// Starts `copies` processes of each stage with extra environment.
    pub fn start_with_env(
        nats: &NatsArgs,
        copies: usize,
        env: &[(&str, &str)],
    ) -> anyhow::Result<Self> {
        let env: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let mut children = Vec::new();
        for _ in 0..copies {
            for name in SERVICES {
                children.push((name.to_string(), spawn(name, nats, &env)?));
            }
        }
        Ok(Self {
            nats: nats.clone(),
            env,
            children,
        })
    }

    /// How many processes run.
    pub fn len(&self) -> usize {
        self.children.len()
    }

    /// Whether none run.
    pub fn is_empty(&self) -> bool {
        self.children.is_empty()
    }

    /// Sends SIGKILL to process `index` (no chance to clean up), waits for
    /// it, and starts a fresh one of the same service; returns its name.
    pub fn kill_and_restart(&mut self, index: usize) -> anyhow::Result<String> {
        self.kill(index)?;
        let name = self.children[index].0.clone();
        self.children[index].1 = spawn(&name, &self.nats, &self.env)?;
        Ok(name)
    }

    /// Sends SIGKILL to process `index` and waits for it, without a restart.
    /// Its slot stays in [`pids`](Self::pids) with the dead pid.
    pub fn kill(&mut self, index: usize) -> anyhow::Result<()> {
        let child = &mut self.children[index].1;
        // SAFETY: kill(2) on the pid of a child we own and have not reaped.
        let rc = unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGKILL) };
        if rc != 0 {
            bail!(
                "kill {} failed: {}",
                child.id(),
                std::io::Error::last_os_error()
            );
        }
        child.wait()?;
        Ok(())
    }

    /// The running processes' ids by service name.
    pub fn pids(&self) -> Vec<(String, u32)> {
        self.children
            .iter()
            .map(|(n, c)| (n.clone(), c.id()))
            .collect()
    }

    /// Fails if any process has exited.
    pub fn check_running(&mut self) -> anyhow::Result<()> {
        for (name, child) in &mut self.children {
            if let Some(status) = child.try_wait()? {
                bail!("{name} exited: {status}");
            }
        }
        Ok(())
    }
}

fn spawn(name: &str, nats: &NatsArgs, env: &[(String, String)]) -> anyhow::Result<Child> {
    Command::new(binary(name)?)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .envs(crate::shell::env_of(nats))
        .env(
            "RUST_LOG",
            std::env::var("RUST_LOG").unwrap_or_else(|_| "warn".into()),
        )
        .stdin(Stdio::null())
        .spawn()
        .with_context(|| format!("starting {name}"))
}

impl Drop for ServiceProcesses {
    fn drop(&mut self) {
        for (_, child) in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
