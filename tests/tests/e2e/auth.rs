//! Connecting to a secured NATS: every way it authenticates (user and
//! password, also as URL userinfo; token; nkey; a `.creds` file in operator
//! mode, its JWTs minted here) and TLS (a CA made here,
//! mutual TLS with `verify`, TLS first with `handshake_first`). Each runs a
//! job end to end through the four services and the CLI, all connected the
//! same way. A refused connection says why in one line, at once, and no
//! secret is in it.

use std::time::{Duration, Instant};

use jetflow_devkit::{MockAgents, MockAgentsConfig, NatsServer, ServerOptions};
use jetflow_e2e::{
    cli::{self, text},
    jobs,
    jwt::Operator,
    pki::Pki,
    TestEnv,
};
use jetflow_runtime::NatsArgs;
use serde_json::json;

const PASSWORD: &str = "pw-9f3c-never-logged";
const TOKEN: &str = "tok-51ab-never-logged";

/// A nats-server with `config` appended to its configuration.
async fn secured_server(config: String) -> anyhow::Result<NatsServer> {
    let options = ServerOptions {
        extra_config: Some(config),
        ..ServerOptions::default()
    };
    tokio::task::spawn_blocking(move || NatsServer::start_with(options)).await?
}

/// Settings for `url` in a fresh namespace.
fn args(url: String, prefix: &str) -> NatsArgs {
    NatsArgs::new([url], &jetflow_e2e::unique_namespace(prefix))
}

/// Runs a 60-item job through the in-process services and `jetflow submit
/// --wait`, all connected with `nats`, and checks its tally.
async fn a_job_runs(server: NatsServer, nats: NatsArgs) -> anyhow::Result<()> {
    let env = TestEnv::secured(server, nats).await?;
    env.start_services();
    let mock = MockAgents::start(MockAgentsConfig {
        agents: 60,
        ..Default::default()
    })
    .await?;
    let dir = tempfile::tempdir()?;
    let file = dir.path().join("job.json");
    let job = jobs::agents_job("secured", &mock, json!({}));
    std::fs::write(&file, serde_json::to_vec(&job)?)?;
    let stdout = cli::ok(&env.nats, &["submit", &file.to_string_lossy(), "--wait"]).await?;
    assert!(stdout.contains("status    completed"), "{stdout}");
    let state = jobs::wait_for_end(&env.bus, "secured").await?;
    assert_eq!((state.succeeded, state.failed), (60, 0), "{state:#?}");
    assert_eq!(mock.stats().migrated, 60);
    env.stop_services().await
}

/// Runs `jetflow status x` with `nats`; it must fail within a few seconds
/// with one line containing `want`, and without `secret`.
async fn refused(nats: &NatsArgs, want: &str, secret: Option<&str>) -> anyhow::Result<()> {
    let started = Instant::now();
    let out = cli::run_in(nats, &["status", "x"], cli::CLI_DEADLINE).await?;
    let took = started.elapsed();
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains(want), "want {want:?} in {stderr:?}");
    assert!(
        stderr.lines().filter(|l| !l.trim().is_empty()).count() == 1,
        "one line: {stderr:?}"
    );
    if let Some(secret) = secret {
        assert!(!stderr.contains(secret), "a secret in {stderr:?}");
    }
    // Refused at once, not after the CLI's patience for an unreachable server.
    assert!(took < Duration::from_secs(20), "took {took:?}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn user_and_password_by_flag_and_in_the_url() -> anyhow::Result<()> {
    let config =
        format!(r#"authorization {{ users: [ {{ user: "jetflow", password: "{PASSWORD}" }} ] }}"#);
    let server = secured_server(config.clone()).await?;
    let mut nats = args(server.url(), "userpw");
    nats.auth.user = Some("jetflow".into());
    nats.auth.password = Some(PASSWORD.into());

    let mut wrong = nats.clone();
    wrong.auth.password = Some("not-the-password".into());
    refused(&wrong, "authorization violation", Some("not-the-password")).await?;
    a_job_runs(server, nats).await?;

    let server = secured_server(config).await?;
    let url = server
        .url()
        .replace("nats://", &format!("nats://jetflow:{PASSWORD}@"));
    a_job_runs(server, args(url, "userinfo")).await
}

/// An operator's `nats` context (URL and credentials) is all the CLI needs:
/// the selected one, or one named with `--context`.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_nats_clis_context_gives_the_url_and_credentials() -> anyhow::Result<()> {
    let config =
        format!(r#"authorization {{ users: [ {{ user: "ops", password: "{PASSWORD}" }} ] }}"#);
    let server = secured_server(config).await?;
    let mut nats = args(server.url(), "context");
    nats.auth.user = Some("ops".into());
    nats.auth.password = Some(PASSWORD.into());
    let env = TestEnv::secured(server, nats).await?;
    env.start_services();
    let home = tempfile::tempdir()?;
    let contexts = home.path().join("nats/context");
    std::fs::create_dir_all(&contexts)?;
    let context = json!({"description": "ops", "url": env.server.url(), "user": "ops",
                         "password": PASSWORD, "token": "", "nsc": ""});
    std::fs::write(contexts.join("ops.json"), context.to_string())?;
    let job = json!({"id": "from-context", "source": {"type": "ids", "ids": ["a", "b"]},
                     "handler": {"type": "external"}});
    let file = home.path().join("job.json");
    std::fs::write(&file, job.to_string())?;
    let file = file.to_string_lossy().into_owned();
    let shell = [
        ("XDG_CONFIG_HOME", home.path().display().to_string()),
        ("JETFLOW_NAMESPACE", env.nats.namespace.clone()),
    ];

    // None selected, none named: no credentials.
    let mut bare = shell.to_vec();
    bare.push(("NATS_URL", env.server.url()));
    let out = cli::run_with_env(&["submit", &file], &bare, cli::CLI_DEADLINE).await?;
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("authorization violation"),
        "{}",
        text(&out.stderr)
    );
    // Named.
    let out = cli::run_with_env(
        &["submit", &file, "--context", "ops"],
        &shell,
        cli::CLI_DEADLINE,
    )
    .await?;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    // Selected.
    std::fs::write(home.path().join("nats/context.txt"), "ops\n")?;
    let out = cli::run_with_env(&["status", "from-context"], &shell, cli::CLI_DEADLINE).await?;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("from-context"),
        "{}",
        text(&out.stdout)
    );
    // A named context that does not exist says so.
    let out = cli::run_with_env(
        &["status", "from-context", "--context", "nope"],
        &shell,
        cli::CLI_DEADLINE,
    )
    .await?;
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("--context nope"),
        "{}",
        text(&out.stderr)
    );
    env.stop_services().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_token() -> anyhow::Result<()> {
    let server = secured_server(format!(r#"authorization {{ token: "{TOKEN}" }}"#)).await?;
    let mut nats = args(server.url(), "token");
    refused(&nats, "authorization violation", Some(TOKEN)).await?;
    nats.auth.token = Some(TOKEN.into());
    a_job_runs(server, nats).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_nkey() -> anyhow::Result<()> {
    let user = nkeys::KeyPair::new_user();
    let seed = user.seed()?;
    let dir = tempfile::tempdir()?;
    let seed_file = dir.path().join("user.nk");
    std::fs::write(&seed_file, format!("{seed}\n"))?;
    let config = format!(
        r#"authorization {{ users: [ {{ nkey: "{}" }} ] }}"#,
        user.public_key()
    );
    let server = secured_server(config).await?;
    let mut nats = args(server.url(), "nkey");
    let stranger = nkeys::KeyPair::new_user();
    let stranger_file = dir.path().join("stranger.nk");
    std::fs::write(&stranger_file, stranger.seed()?)?;
    nats.auth.nkey = Some(stranger_file);
    refused(&nats, "authorization violation", Some(&stranger.seed()?)).await?;
    nats.auth.nkey = Some(seed_file);
    a_job_runs(server, nats).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn creds_in_operator_mode() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let operator = Operator::new(dir.path())?;
    let server = secured_server(operator.server_config()).await?;
    let mut nats = args(server.url(), "creds");
    nats.auth.creds = Some(operator.stranger_creds.clone());
    refused(&nats, "authorization violation", None).await?;
    nats.auth.creds = Some(operator.creds.clone());
    a_job_runs(server, nats).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn tls_with_a_ca_made_here() -> anyhow::Result<()> {
    let pki = Pki::new()?;
    let server = secured_server(pki.server_tls(false, false)).await?;
    let mut nats = args(server.url(), "tls");
    // Without the CA, the server's certificate is from an unknown CA.
    nats.nats_url = vec![server.url().replace("nats://", "tls://")];
    refused(&nats, "unknown CA", None).await?;
    nats.auth.tlsca = Some(pki.ca.clone());
    a_job_runs(server, nats).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn mutual_tls_with_verify() -> anyhow::Result<()> {
    let pki = Pki::new()?;
    let server = secured_server(pki.server_tls(true, false)).await?;
    let mut nats = args(server.url(), "mtls");
    nats.auth.tlsca = Some(pki.ca.clone());
    refused(&nats, "client certificate", None).await?;
    nats.auth.tlscert = Some(pki.client_cert.clone());
    nats.auth.tlskey = Some(pki.client_key.clone());
    a_job_runs(server, nats).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn tls_first_against_handshake_first() -> anyhow::Result<()> {
    let pki = Pki::new()?;
    let server = secured_server(pki.server_tls(false, true)).await?;
    let mut nats = args(server.url(), "tlsfirst");
    nats.auth.tlsca = Some(pki.ca.clone());
    nats.auth.tlsfirst = true;
    a_job_runs(server, nats).await
}

/// A password given by env (the services), by flag and in a URL (the CLI)
/// reaches no output of any process, with debug logs on; a wrong one
/// neither.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn no_secret_reaches_any_output_even_with_debug_logs() -> anyhow::Result<()> {
    let config =
        format!(r#"authorization {{ users: [ {{ user: "jetflow", password: "{PASSWORD}" }} ] }}"#);
    let server = secured_server(config).await?;
    let mut nats = args(server.url(), "secrets");
    nats.auth.user = Some("jetflow".into());
    nats.auth.password = Some(PASSWORD.into());
    let env = TestEnv::secured(server, nats).await?;
    let debug = [("RUST_LOG", "debug")];
    let services = jetflow_e2e::ServiceProcesses::start_with_env(&env.nats, 1, &debug)?;
    let mock = MockAgents::start(MockAgentsConfig {
        agents: 30,
        ..Default::default()
    })
    .await?;
    let dir = tempfile::tempdir()?;
    let file = dir.path().join("job.json");
    std::fs::write(
        &file,
        jobs::agents_job("quiet", &mock, json!({})).to_string(),
    )?;
    let file = file.to_string_lossy().into_owned();

    let namespace = ("JETFLOW_NAMESPACE", env.nats.namespace.clone());
    let rust_log = ("RUST_LOG", "debug".to_string());
    let url = env.server.url();
    let in_url = url.replace("nats://", &format!("nats://jetflow:{PASSWORD}@"));
    let wrong = "wrong-7c1e-never-logged";
    let runs: [(Vec<&str>, Option<i32>); 3] = [
        (
            vec!["submit", &file, "--wait", "--nats-url", &in_url],
            Some(0),
        ),
        (
            vec![
                "status",
                "quiet",
                "--nats-url",
                &url,
                "--user",
                "jetflow",
                "--password",
                PASSWORD,
            ],
            Some(0),
        ),
        (
            vec![
                "status",
                "quiet",
                "--nats-url",
                &url,
                "--user",
                "jetflow",
                "--password",
                wrong,
            ],
            Some(1),
        ),
    ];
    let mut output = String::new();
    for (argv, code) in &runs {
        let env = [namespace.clone(), rust_log.clone()];
        let out = cli::run_with_env(argv, &env, jobs::JOB_DEADLINE).await?;
        assert_eq!(out.status.code(), *code, "{argv:?}: {}", text(&out.stderr));
        output.push_str(&text(&out.stdout));
        output.push_str(&text(&out.stderr));
    }
    let state = jobs::wait_for_end(&env.bus, "quiet").await?;
    assert_eq!(state.succeeded, 30);
    output.push_str(&services.output());
    // Debug logs were on: there is plenty a secret could have hidden in.
    assert!(output.contains("DEBUG"), "debug logs were written");
    for secret in [PASSWORD, wrong] {
        assert!(!output.contains(secret), "{secret} in the output");
    }
    drop(services);
    Ok(())
}
