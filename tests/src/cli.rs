//! Running the `jetflow` binary as a user would, against a test's NATS.

use std::{process::Output, time::Duration};

use anyhow::Context as _;
use jetflow_runtime::NatsArgs;

use crate::{processes::binary, shell};

/// How long a CLI command may take before the test gives up on it.
pub const CLI_DEADLINE: Duration = Duration::from_secs(60);

/// Runs `jetflow args…` with no NATS settings (e.g. `dev`), stdin closed,
/// stdout and stderr piped.
pub async fn run(args: &[&str], timeout: Duration) -> anyhow::Result<Output> {
    output(command(args)?, args, timeout).await
}

/// Runs `jetflow args…` against `nats` (through `NATS_URL` and
/// `JETFLOW_NAMESPACE`, as an operator's shell would).
pub async fn run_in(nats: &NatsArgs, args: &[&str], timeout: Duration) -> anyhow::Result<Output> {
    let mut command = command(args)?;
    command.envs(shell::env_of(nats));
    output(command, args, timeout).await
}

/// Runs `jetflow args…` against `nats` on a real pseudo-terminal (from
/// `script(1)`), within `timeout`; returns its exit code and what it drew.
pub async fn on_a_terminal(
    nats: &NatsArgs,
    args: &[&str],
    timeout: Duration,
) -> anyhow::Result<(Option<i32>, String)> {
    let command = std::iter::once(binary("jetflow")?.to_string_lossy().into_owned())
        .chain(args.iter().map(|a| a.to_string()))
        .collect::<Vec<_>>()
        .join(" ");
    let out = tokio::time::timeout(
        timeout,
        tokio::process::Command::new("script")
            .args(["-qfec", &command, "/dev/null"])
            .envs(shell::env_of(nats))
            .env("TERM", "xterm")
            .env("COLUMNS", "120")
            .stdin(std::process::Stdio::null())
            .kill_on_drop(true)
            .output(),
    )
    .await
    .context("script timed out")?
    .context("running script(1)")?;
    Ok((out.status.code(), text(&out.stdout)))
}

/// Runs `jetflow args…` with exactly `env` of the NATS settings (no
/// `NATS_*` from this process): for `nats` contexts, which fill in the rest.
pub async fn run_with_env(
    args: &[&str],
    env: &[(&str, String)],
    timeout: Duration,
) -> anyhow::Result<Output> {
    let mut command = command(args)?;
    for (name, _) in std::env::vars() {
        if name.starts_with("NATS_") {
            command.env_remove(name);
        }
    }
    command.envs(env.iter().map(|(k, v)| (*k, v.as_str())));
    output(command, args, timeout).await
}

fn command(args: &[&str]) -> anyhow::Result<tokio::process::Command> {
    let mut command = tokio::process::Command::new(binary("jetflow")?);
    command
        .args(args)
        .kill_on_drop(true)
        .stdin(std::process::Stdio::null());
    Ok(command)
}

async fn output(
    mut command: tokio::process::Command,
    args: &[&str],
    timeout: Duration,
) -> anyhow::Result<Output> {
    tokio::time::timeout(timeout, command.output())
        .await
        .with_context(|| format!("jetflow {args:?} did not finish within {timeout:?}"))?
        .context("running jetflow")
}

/// Runs `jetflow args…` against `nats`; fails unless it exits 0; returns stdout.
pub async fn ok(nats: &NatsArgs, args: &[&str]) -> anyhow::Result<String> {
    let out = run_in(nats, args, CLI_DEADLINE).await?;
    anyhow::ensure!(
        out.status.success(),
        "jetflow {args:?} exited {:?}\nstdout: {}\nstderr: {}",
        out.status.code(),
        text(&out.stdout),
        text(&out.stderr)
    );
    Ok(text(&out.stdout))
}

/// Output bytes as text.
pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// What [`run_measured`] saw.
#[derive(Debug)]
pub struct Measured {
    /// Exit code (`None` if killed by a signal).
    pub code: Option<i32>,
    /// Everything printed on stdout.
    pub stdout: Vec<u8>,
    /// Everything printed on stderr.
    pub stderr: Vec<u8>,
    /// The process's peak resident set size, in KiB (`ru_maxrss`).
    pub peak_rss_kib: i64,
}

/// Runs `jetflow args…` against `nats` to the end and reports its peak RSS,
/// from `wait4(2)` — exact, and unaffected by other processes. Blocking:
/// call it from `spawn_blocking`.
pub fn run_measured(nats: &NatsArgs, args: &[&str]) -> anyhow::Result<Measured> {
    use std::io::Read;
    let mut child = std::process::Command::new(binary("jetflow")?)
        .args(args)
        .envs(shell::env_of(nats))
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .context("starting jetflow")?;
    let drain = |pipe: Option<Box<dyn Read + Send>>| {
        std::thread::spawn(move || {
            let mut bytes = Vec::new();
            if let Some(mut pipe) = pipe {
                let _ = pipe.read_to_end(&mut bytes);
            }
            bytes
        })
    };
    let stdout = drain(
        child
            .stdout
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let stderr = drain(
        child
            .stderr
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let mut status = 0;
    // SAFETY: an all-zero rusage is a valid value for wait4 to overwrite.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: wait4 on our own unreaped child, with valid out-pointers.
    let pid = unsafe { libc::wait4(child.id() as libc::pid_t, &mut status, 0, &mut usage) };
    anyhow::ensure!(pid > 0, "wait4: {}", std::io::Error::last_os_error());
    let code = libc::WIFEXITED(status).then(|| libc::WEXITSTATUS(status));
    Ok(Measured {
        code,
        stdout: stdout.join().unwrap_or_default(),
        stderr: stderr.join().unwrap_or_default(),
        peak_rss_kib: usage.ru_maxrss,
    })
}
