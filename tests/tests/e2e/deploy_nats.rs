//! The shipped NATS configs work as shipped: `deploy/nats/prod.conf` (with
//! its accounts.conf and roles.conf) run by a real nats-server — only its
//! ports, certificate paths and store moved into a temp dir — serves a job
//! run by every part as its own user over TLS after `jetflow provision`;
//! the three cluster node configs pass `nats-server -t`.

use std::{
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::Duration,
};

use anyhow::Context as _;
use jetflow_devkit::{nats_server_binary, MockAgents, MockAgentsConfig};
use jetflow_e2e::{cli, jobs, pki::Pki};
use jetflow_protocol::{job::JobStatus, Names};
use jetflow_runtime::{
    security::roles::{inbox_prefix, Role},
    Bus, NatsArgs,
};
use serde_json::json;
use tokio_util::{sync::CancellationToken, task::TaskTracker};

fn deploy() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../deploy/nats"))
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// The deploy directory copied into `dir`, each config's machine-specific
/// parts replaced by `moves`.
fn copy_deploy(dir: &Path, moves: &[(String, String)]) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir.join("cluster"))?;
    for name in [
        "prod.conf",
        "accounts.conf",
        "roles.conf",
        "cluster/nats-1.conf",
        "cluster/nats-2.conf",
        "cluster/nats-3.conf",
    ] {
        let mut text =
            std::fs::read_to_string(deploy().join(name)).with_context(|| name.to_string())?;
        for (from, to) in moves {
            text = text.replace(from, to);
        }
        std::fs::write(dir.join(name), text)?;
    }
    Ok(())
}

fn moves(pki: &Pki, store: &Path) -> Vec<(String, String)> {
    let show = |p: &Path| p.display().to_string();
    vec![
        ("/etc/nats/tls/server.crt".into(), show(&pki.server_cert)),
        ("/etc/nats/tls/server.key".into(), show(&pki.server_key)),
        ("/etc/nats/tls/ca.crt".into(), show(&pki.ca)),
        ("/var/lib/nats".into(), show(store)),
    ]
}

/// Every password accounts.conf reads from the environment.
fn passwords() -> Vec<(String, String)> {
    let mut env: Vec<(String, String)> = Role::ALL
        .iter()
        .map(|role| {
            (
                format!("JETFLOW_{}_PASSWORD", role.as_str().to_uppercase()),
                format!("pw-{role}-{}", jetflow_runtime::instance_id()),
            )
        })
        .collect();
    env.push(("NATS_SYS_PASSWORD".into(), "pw-sys".into()));
    env
}

/// A nats-server killed on drop.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_production_config_serves_every_role_over_tls() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let pki = Pki::new()?;
    let (port, http) = (free_port()?, free_port()?);
    let mut moved = moves(&pki, &dir.path().join("store"));
    moved.push(("0.0.0.0:4222".into(), format!("127.0.0.1:{port}")));
    moved.push(("127.0.0.1:8222".into(), format!("127.0.0.1:{http}")));
    copy_deploy(dir.path(), &moved)?;
    let env = passwords();
    let log = std::fs::File::create(dir.path().join("nats.log"))?;
    let child = Command::new(nats_server_binary()?)
        .arg("-c")
        .arg(dir.path().join("prod.conf"))
        .envs(env.iter().cloned())
        .stdout(Stdio::from(log.try_clone()?))
        .stderr(Stdio::from(log))
        .spawn()?;
    let _server = Server(child);
    wait_healthy(http, &dir.path().join("nats.log")).await?;

    let names = Names::default();
    let user = |role: Role| -> NatsArgs {
        let mut args =
            NatsArgs::new([format!("tls://127.0.0.1:{port}")], names.namespace()).bind_only();
        args.auth.user = Some(format!("jetflow-{role}"));
        let var = format!("JETFLOW_{}_PASSWORD", role.as_str().to_uppercase());
        let password = env
            .iter()
            .find(|(k, _)| *k == var)
            .map(|(_, v)| v.as_str())
            .unwrap_or_default();
        args.auth.password = Some(password.into());
        args.auth.tlsca = Some(pki.ca.clone());
        args.auth.inbox_prefix = Some(inbox_prefix(&names, role));
        args
    };
    let provisioned = cli::ok(&user(Role::Admin), &["provision"]).await?;
    assert!(provisioned.contains("created"), "{provisioned}");

    let shutdown = CancellationToken::new();
    let bus = Bus::connect(&user(Role::Admin), "jetflow-test", &shutdown).await?;
    let stages = TaskTracker::new();
    let s = shutdown.clone();
    stages.spawn(jetflow_fetch::run(
        jetflow_fetch::Config::new(user(Role::Fetch)),
        s,
    ));
    let s = shutdown.clone();
    stages.spawn(jetflow_batch::run(
        jetflow_batch::Config::new(user(Role::Batch)),
        s,
    ));
    let s = shutdown.clone();
    stages.spawn(jetflow_migrate::run(
        jetflow_migrate::Config::new(user(Role::Migrate)),
        s,
    ));
    let s = shutdown.clone();
    stages.spawn(jetflow_reduce::run(
        jetflow_reduce::Config::new(user(Role::Reduce)),
        s,
    ));
    stages.close();
    let mock = MockAgents::start(MockAgentsConfig {
        agents: 40,
        ..Default::default()
    })
    .await?;
    let file = dir.path().join("job.json");
    std::fs::write(
        &file,
        jobs::agents_job("prod", &mock, json!({})).to_string(),
    )?;
    let out = cli::ok(
        &user(Role::Submitter),
        &["submit", &file.to_string_lossy(), "--wait"],
    )
    .await?;
    assert!(out.contains("completed"), "{out}");
    let state = jobs::wait_for_end(&bus, "prod").await?;
    assert_eq!((state.status, state.succeeded), (JobStatus::Completed, 40));
    shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(60), stages.wait()).await?;
    let log = std::fs::read_to_string(dir.path().join("nats.log"))?;
    let violations: Vec<&str> = log.lines().filter(|l| l.contains("Violation")).collect();
    assert!(violations.is_empty(), "{}", violations.join("\n"));
    Ok(())
}

async fn wait_healthy(http: u16, log: &Path) -> anyhow::Result<()> {
    for _ in 0..100 {
        if let Ok(response) = reqwest::get(format!("http://127.0.0.1:{http}/healthz")).await {
            if response.status().is_success() {
                return Ok(());
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    anyhow::bail!(
        "nats-server did not start:\n{}",
        std::fs::read_to_string(log).unwrap_or_default()
    )
}

#[test]
fn the_cluster_node_configs_pass_the_servers_own_check() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let pki = Pki::new()?;
    copy_deploy(dir.path(), &moves(&pki, &dir.path().join("store")))?;
    for node in 1..=3 {
        let file = dir.path().join(format!("cluster/nats-{node}.conf"));
        let out = Command::new(nats_server_binary()?)
            .arg("-t")
            .arg("-c")
            .arg(&file)
            .envs(passwords())
            .output()?;
        let said = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(out.status.success(), "nats-{node}.conf: {said}");
        // And the check can fail: without the passwords it does.
        let out = Command::new(nats_server_binary()?)
            .arg("-t")
            .arg("-c")
            .arg(&file)
            .env_clear()
            .output()?;
        assert!(
            !out.status.success(),
            "nats-{node}.conf passed with no passwords set"
        );
    }
    Ok(())
}
