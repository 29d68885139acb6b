//! The services as separate OS processes, built by `cargo build --bins`
//! (`make test` does it first).

use std::{
    path::{Path, PathBuf},
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

/// Running service processes, each writing its output to its own log
/// file; killed on drop (printing the logs' tails if the test failed).
pub struct ServiceProcesses {
    env: Vec<(String, String)>,
    children: Vec<Service>,
    logs: tempfile::TempDir,
}

struct Service {
    name: String,
    nats: NatsArgs,
    log: PathBuf,
    child: Child,
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
        Self::start_each(|_| nats.clone(), copies, env)
    }

    /// Starts `copies` processes of each stage, each stage connected with
    /// `nats_of(its binary name)` (its own user, say).
    pub fn start_each(
        nats_of: impl Fn(&str) -> NatsArgs,
        copies: usize,
        env: &[(&str, &str)],
    ) -> anyhow::Result<Self> {
        let env: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let mut services = Self {
            env,
            children: Vec::new(),
            logs: tempfile::tempdir().context("creating the services' log dir")?,
        };
        for copy in 0..copies {
            for name in SERVICES {
                let nats = nats_of(name);
                let log = services.logs.path().join(format!("{name}-{copy}.log"));
                let child = spawn(name, &nats, &services.env, &log)?;
                services.children.push(Service {
                    name: name.to_string(),
                    nats,
                    log,
                    child,
                });
            }
        }
        Ok(services)
    }

    /// How many processes run.
    pub fn len(&self) -> usize {
        self.children.len()
    }

    /// Everything every process has written so far.
    pub fn output(&self) -> String {
        self.children
            .iter()
            .map(|s| std::fs::read_to_string(&s.log).unwrap_or_default())
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// Whether none run.
    pub fn is_empty(&self) -> bool {
        self.children.is_empty()
    }

    /// Sends SIGKILL to process `index` (no chance to clean up), waits for
    /// it, and starts a fresh one of the same service; returns its name.
    pub fn kill_and_restart(&mut self, index: usize) -> anyhow::Result<String> {
        self.kill(index)?;
        let service = &mut self.children[index];
        service.child = spawn(&service.name, &service.nats, &self.env, &service.log)?;
        Ok(service.name.clone())
    }

    /// Sends SIGKILL to process `index` and waits for it, without a restart.
    /// Its slot stays in [`pids`](Self::pids) with the dead pid.
    pub fn kill(&mut self, index: usize) -> anyhow::Result<()> {
        let child = &mut self.children[index].child;
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
            .map(|s| (s.name.clone(), s.child.id()))
            .collect()
    }

    /// Fails if any process has exited.
    pub fn check_running(&mut self) -> anyhow::Result<()> {
        for service in &mut self.children {
            if let Some(status) = service.child.try_wait()? {
                bail!("{} exited: {status}", service.name);
            }
        }
        Ok(())
    }
}

fn spawn(
    name: &str,
    nats: &NatsArgs,
    env: &[(String, String)],
    log: &Path,
) -> anyhow::Result<Child> {
    let out = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .with_context(|| format!("opening {}", log.display()))?;
    // The caller's env last: it may set RUST_LOG too.
    Command::new(binary(name)?)
        .env(
            "RUST_LOG",
            std::env::var("RUST_LOG").unwrap_or_else(|_| "warn".into()),
        )
        .envs(crate::shell::env_of(nats))
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(out.try_clone()?)
        .stderr(out)
        .spawn()
        .with_context(|| format!("starting {name}"))
}

impl Drop for ServiceProcesses {
    fn drop(&mut self) {
        for service in &mut self.children {
            let _ = service.child.kill();
            let _ = service.child.wait();
        }
        if std::thread::panicking() {
            for service in &self.children {
                let text = std::fs::read_to_string(&service.log).unwrap_or_default();
                let tail: Vec<&str> = text.lines().rev().take(30).collect();
                eprintln!("--- {} (last lines)", service.name);
                for line in tail.iter().rev() {
                    eprintln!("{line}");
                }
            }
        }
    }
}
