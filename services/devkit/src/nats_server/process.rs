//! Spawning and killing a nats-server child process.

use std::fs::OpenOptions;
use std::io::Write as _;
use std::path::Path;
use std::process::{Child, Command, Stdio};

use anyhow::Context;

/// How many trailing log lines go into error messages.
const LOG_TAIL_LINES: usize = 40;

/// Starts `binary -c config`, appending its stdout and stderr to `log`.
///
/// Appending keeps the output of earlier runs, so a crash test that restarts
/// the server can still read why the previous process misbehaved.
pub(crate) fn spawn(binary: &Path, config: &Path, log: &Path) -> anyhow::Result<Child> {
    let mut log_file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .with_context(|| format!("opening log file {}", log.display()))?;
    writeln!(
        log_file,
        "=== jetflow-devkit: {} -c {} ===",
        binary.display(),
        config.display()
    )
    .with_context(|| format!("writing log file {}", log.display()))?;
    let stderr = log_file
        .try_clone()
        .context("duplicating log file handle")?;
    Command::new(binary)
        .arg("-c")
        .arg(config)
        .stdin(Stdio::null())
        .stdout(log_file)
        .stderr(stderr)
        .spawn()
        .with_context(|| format!("spawning {}", binary.display()))
}

/// Sends SIGKILL to the child and reaps it.
///
/// SIGKILL rather than SIGTERM because callers use this to simulate a crash:
/// the server must get no chance to flush or to say goodbye to its peers.
pub(crate) fn kill(child: &mut Child) {
    // Already reaped (std caches the status): its PID may belong to someone
    // else by now, so it must not be signalled.
    if let Ok(Some(_)) = child.try_wait() {
        return;
    }
    let pid = child.id();
    match libc::pid_t::try_from(pid) {
        // SAFETY: kill(2) has no memory-safety preconditions. The PID cannot
        // have been reused by an unrelated process: `try_wait` above found the
        // child unreaped, and nothing reaps it before the `wait` below.
        Ok(pid) => unsafe {
            libc::kill(pid, libc::SIGKILL);
        },
        // Unreachable on Linux (PIDs fit in pid_t); std's kill also sends SIGKILL.
        Err(_) => {
            let _ = child.kill();
        }
    }
    if let Err(err) = child.wait() {
        tracing::warn!(pid, %err, "waiting for killed nats-server");
    }
}

/// The last lines of the log, for error messages.
pub(crate) fn log_tail(log: &Path) -> String {
    match std::fs::read(log) {
        Ok(bytes) => {
            let text = String::from_utf8_lossy(&bytes);
            let lines: Vec<&str> = text.lines().collect();
            let start = lines.len().saturating_sub(LOG_TAIL_LINES);
            lines[start..].join("\n")
        }
        Err(err) => format!("(could not read {}: {err})", log.display()),
    }
}
