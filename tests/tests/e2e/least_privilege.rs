//! Every part of jetflow connected as its own least-privilege user (the
//! roles of `jetflow roles`, as in `deploy/nats/roles.conf`) on a server
//! provisioned once by `jetflow provision` as admin, every part bind-only:
//! a job with retries and dead letters, a cancel, a `nats` handler worker
//! and an `external` worker all run, and the server logs no permission
//! violation. Then what each role must not do, tried and refused.

use std::time::Duration;

use async_nats::jetstream::{self, consumer::PullConsumer, AckKind};
use futures::StreamExt;
use jetflow_devkit::{MockAgents, MockAgentsConfig};
use jetflow_e2e::{
    cli::{self, text},
    jobs,
    least_privilege::{self, Secured},
    TestEnv,
};
use jetflow_protocol::{job::JobStatus, Names};
use jetflow_runtime::{
    nats::connect,
    security::roles::{Role, Scope},
    NatsArgs,
};
use jetflow_worker::{state::StateBucket, WorkError};
use serde_json::json;
use tokio_util::sync::CancellationToken;

/// The roles' scope in a test namespace: handlers under `work.<ns>.>`, one
/// external job.
fn scope(namespace: &str) -> Scope {
    Scope {
        handler_subjects: vec![format!("work.{namespace}.>")],
        source_subjects: Vec::new(),
        external_jobs: vec!["lp-external".into()],
        reduce_subjects: Vec::new(),
    }
}

/// A least-privilege server for a fresh namespace, provisioned by
/// `jetflow provision` as admin, and a test env on it as admin, bind-only.
async fn provisioned(prefix: &str) -> anyhow::Result<(TestEnv, Secured)> {
    let namespace = jetflow_e2e::unique_namespace(prefix);
    let secured = least_privilege::start(&namespace, &scope(&namespace), |_, _| {}).await?;
    let admin = secured.user(Role::Admin);
    // Bind-only before provisioning: the CLI names what is missing.
    let out = cli::run_in(
        &secured.user(Role::Submitter),
        &["status", "x"],
        cli::CLI_DEADLINE,
    )
    .await?;
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("jetflow provision"),
        "{}",
        text(&out.stderr)
    );
    let provisioned = cli::ok(&admin, &["provision"]).await?;
    assert!(
        provisioned.contains("consumer  ") && provisioned.contains("created"),
        "{provisioned}"
    );
    let env = TestEnv::secured_on(secured.server.clone(), admin).await?;
    Ok((env, secured))
}

/// The four services, each as its own user.
fn start_stages(env: &TestEnv, secured: &Secured) {
    start_stages_as(env, |role| secured.user(role));
}

/// The four services, each connected with `user(its role)`.
fn start_stages_as(env: &TestEnv, user: impl Fn(Role) -> NatsArgs) {
    env.start_services_configured(
        jetflow_fetch::Config::new(user(Role::Fetch)),
        jetflow_batch::Config::new(user(Role::Batch)),
        jetflow_migrate::Config::new(user(Role::Migrate)),
        jetflow_reduce::Config::new(user(Role::Reduce)),
    );
}

async fn client(args: &NatsArgs, name: &str) -> anyhow::Result<async_nats::Client> {
    Ok(connect::connect(args, name, &CancellationToken::new()).await?)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_pipeline_runs_with_every_part_as_its_own_least_privilege_user() -> anyhow::Result<()> {
    let (env, secured) = provisioned("lp").await?;
    start_stages(&env, &secured);
    let result = pipeline(&env, &secured).await;
    let violations = secured.violations();
    assert!(
        violations.is_empty(),
        "permission violations ({result:?}):\n{}",
        violations.join("\n")
    );
    result
}

async fn pipeline(env: &TestEnv, secured: &Secured) -> anyhow::Result<()> {
    let ns = env.nats.namespace.clone();
    let submitter = secured.user(Role::Submitter);
    let worker = client(&secured.user(Role::Worker), "lp-worker").await?;
    let dir = tempfile::tempdir()?;
    let write = |name: &str, job: &serde_json::Value| -> anyhow::Result<String> {
        let file = dir.path().join(name);
        std::fs::write(&file, serde_json::to_vec(job)?)?;
        Ok(file.to_string_lossy().into_owned())
    };

    // An HTTP job with transient failures (retried) and permanent ones
    // (dead-lettered), submitted and waited for as the submitter.
    let mock = MockAgents::start(MockAgentsConfig {
        agents: 200,
        transient_rate: 0.1,
        permanent_rate: 0.03,
        seed: 3,
        ..Default::default()
    })
    .await?;
    // Its API carries limits for every job, set by the admin: a rate, and
    // 3 calls at once (slots migrate takes and keeps as its own user).
    let admin = secured.user(Role::Admin);
    let api = format!("127.0.0.1:{}", mock.port());
    cli::ok(
        &admin,
        &["limits", "set", &api, "rate=500/s", "concurrency=3"],
    )
    .await?;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let file = write(
        "http.json",
        &jobs::agents_job("lp-http", &mock, json!({"max_retries": 8})),
    )?;
    let out = cli::run_in(
        &submitter,
        &["submit", &file, "--wait"],
        Duration::from_secs(40),
    )
    .await?;
    assert_eq!(out.status.code(), Some(3), "partial: {}", text(&out.stderr));
    let state = jobs::wait_for_end(&env.bus, "lp-http").await?;
    let permanent = mock.permanent_failures().len() as u64;
    assert!(permanent > 0 && state.retries > 0, "{state:#?}");
    assert_eq!(
        (state.succeeded, state.failed),
        (200 - permanent, permanent)
    );
    assert!(mock.stats().max_in_flight <= 3, "{:?}", mock.stats());

    // A `nats` handler served by the worker user in its queue group,
    // counting its calls in the job's shared state.
    let stop = CancellationToken::new();
    let subject = format!("work.{ns}.echo");
    let names = Names::new(&ns).map_err(anyhow::Error::msg)?;
    let state = StateBucket::open(&jetstream::new(worker.clone()), &names).await?;
    let serving = tokio::spawn(jetflow_worker::serve(
        worker.clone(),
        subject.clone(),
        stop.clone(),
        move |request| {
            let state = state.clone();
            async move {
                let shared = state
                    .job(&request.job)
                    .map_err(|e| WorkError::Failed(e.to_string()))?;
                shared
                    .incr("calls", 1)
                    .await
                    .map_err(|e| WorkError::Retryable(e.to_string()))?;
                if request.item.id.ends_with('9') {
                    Err(WorkError::Failed("nines fail".into()))
                } else {
                    Ok(json!({"echo": request.item.id}))
                }
            }
        },
    ));
    let ids: Vec<String> = (0..50).map(|i| format!("n{i:02}")).collect();
    let file = write(
        "nats.json",
        &json!({"id": "lp-nats", "source": {"type": "ids", "ids": ids},
        "handler": {"type": "nats", "subject": subject}}),
    )?;
    cli::ok(&submitter, &["submit", &file]).await?;
    let state = jobs::wait_for_end(&env.bus, "lp-nats").await?;
    assert_eq!((state.succeeded, state.failed), (45, 5), "{state:#?}");
    // The worker user can use `jetflow state` too (with a cas).
    let worker_user = secured.user(Role::Worker);
    let calls = cli::ok(
        &worker_user,
        &["state", "lp-nats", "calls", "cas", "50", "0"],
    )
    .await?;
    assert_eq!(calls.trim(), "swapped: 0");

    // An external job worked by the worker user: pull, publish, ack.
    let ids: Vec<String> = (0..30).map(|i| format!("e{i:02}")).collect();
    let file = write(
        "external.json",
        &json!({"id": "lp-external", "source": {"type": "ids", "ids": ids},
        "handler": {"type": "external", "ack_wait": "5s"}}),
    )?;
    cli::ok(&submitter, &["submit", &file]).await?;
    jobs::wait_for_state(&env.bus, "lp-external", |s| s.tasks.is_some()).await?;
    let external = tokio::spawn(work_external(
        worker.clone(),
        Names::new(&ns).map_err(anyhow::Error::msg)?,
        "lp-external",
    ));
    let state = jobs::wait_for_end(&env.bus, "lp-external").await?;
    assert_eq!((state.status, state.succeeded), (JobStatus::Completed, 30));
    external.abort();

    // A cancel, by the submitter, mid-job.
    let slow = MockAgents::start(MockAgentsConfig {
        agents: 2000,
        latency: Duration::from_millis(20),
        ..Default::default()
    })
    .await?;
    let file = write(
        "slow.json",
        &jobs::agents_job("lp-cancel", &slow, json!({"concurrency": 5})),
    )?;
    cli::ok(&submitter, &["submit", &file]).await?;
    jobs::wait_for_state(&env.bus, "lp-cancel", |s| s.succeeded >= 20).await?;
    cli::ok(&submitter, &["cancel", "lp-cancel"]).await?;
    let state = jobs::wait_for_end(&env.bus, "lp-cancel").await?;
    assert_eq!(state.status, JobStatus::Cancelled);

    // The viewer sees it all.
    let viewer = secured.user(Role::Viewer);
    let status = cli::ok(&viewer, &["status", "lp-http"]).await?;
    assert!(status.contains("partial"), "{status}");
    let letters = cli::ok(&viewer, &["dlq", "ls", "--job", "lp-http"]).await?;
    assert!(letters.contains("422"), "{letters}");
    let listed = cli::ok(&viewer, &["jobs"]).await?;
    assert!(listed.contains("lp-cancel"), "{listed}");
    let workers = cli::ok(&viewer, &["workers"]).await?;
    assert!(workers.contains("migrate"), "{workers}");
    let shared = cli::ok(&viewer, &["state", "lp-nats", "--json"]).await?;
    assert_eq!(shared.trim(), r#"{"calls":0}"#);

    stop.cancel();
    serving.await??;
    env.stop_services().await
}

/// An external worker: binds to the job's task consumer, publishes each
/// task's result with its de-duplication id, then acks.
async fn work_external(
    client: async_nats::Client,
    names: Names,
    job: &'static str,
) -> anyhow::Result<()> {
    let js = jetstream::new(client);
    let consumer: PullConsumer = js
        .get_consumer_from_stream(names.task_consumer(job), names.tasks_stream())
        .await?;
    let mut tasks = consumer.messages().await?;
    while let Some(task) = tasks.next().await {
        let task = task.map_err(anyhow::Error::msg)?;
        let body: serde_json::Value = serde_json::from_slice(&task.payload)?;
        let id = body["item"]["id"].as_str().unwrap_or_default().to_string();
        let result = json!({"type": "item", "batch": body["batch"], "id": id, "status": "succeeded",
                            "output": {"done": true}, "attempts": 1});
        let mut headers = async_nats::HeaderMap::new();
        headers.insert("Nats-Msg-Id", format!("{job}:item:{id}").as_str());
        js.publish_with_headers(
            names.result_subject(job),
            headers,
            result.to_string().into(),
        )
        .await?
        .await?;
        task.ack_with(AckKind::Ack)
            .await
            .map_err(anyhow::Error::msg)?;
    }
    Ok(())
}

/// Waits up to 30 s for the server to log a violation by `user` on a
/// subject starting with `subject`; returns the line.
async fn violation(secured: &Secured, user: &str, subject: &str) -> anyhow::Result<String> {
    let by = format!("user:{user}\"");
    let on = format!("Subject \"{subject}");
    for _ in 0..300 {
        if let Some(line) = secured
            .violations()
            .into_iter()
            .find(|l| l.contains(&by) && l.contains(&on))
        {
            return Ok(line);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    anyhow::bail!(
        "no violation by {user} on {subject}*; logged:\n{}",
        secured.violations().join("\n")
    )
}

/// Each role is refused what it must not do, by the server.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn each_role_is_refused_what_it_must_not_do() -> anyhow::Result<()> {
    let (env, secured) = provisioned("deny").await?;
    let names = env.bus.names.clone();
    let short = |args: NatsArgs| async move {
        let client = client(&args, "denied").await?;
        let js = jetstream::ContextBuilder::new()
            .timeout(Duration::from_secs(2))
            .build(client.clone());
        anyhow::Ok((client, js))
    };

    // The worker cannot submit, cancel, or read another job's tasks.
    let (worker, js) = short(secured.user(Role::Worker)).await?;
    assert!(js
        .publish(names.submit_subject(), "{}".into())
        .await?
        .await
        .is_err());
    violation(&secured, "worker", &names.submit_subject()).await?;
    worker
        .publish(names.cancel_subject("lp-other"), "".into())
        .await?;
    worker.flush().await?;
    violation(&secured, "worker", &names.cancel_subject("lp-other")).await?;
    let other: Result<PullConsumer, _> = js
        .get_consumer_from_stream(names.task_consumer("lp-other"), names.tasks_stream())
        .await;
    assert!(other.is_err());
    violation(
        &secured,
        "worker",
        &format!(
            "$JS.API.CONSUMER.INFO.{}.task_lp-other",
            names.tasks_stream()
        ),
    )
    .await?;

    // The viewer cannot cancel, purge the DLQ or write a key: the CLI
    // commands fail, and so does a plain KV put.
    start_stages(&env, &secured);
    let job = json!({"id": "held", "source": {"type": "ids", "ids": ["a"]},
                     "handler": {"type": "external"}});
    jobs::submit_plain(&env.bus, job.to_string().as_bytes()).await?;
    jobs::wait_for_state(&env.bus, "held", |s| s.tasks.is_some()).await?;
    let viewer = secured.user(Role::Viewer);
    let out = cli::run_in(&viewer, &["cancel", "held"], cli::CLI_DEADLINE).await?;
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    violation(&secured, "viewer", &names.cancel_subject("held")).await?;
    env.bus
        .js
        .publish(
            names.dlq_subject(jetflow_protocol::Stage::Migrate, "j"),
            "letter".into(),
        )
        .await?
        .await?;
    let out = cli::run_in(&viewer, &["dlq", "purge"], cli::CLI_DEADLINE).await?;
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    violation(
        &secured,
        "viewer",
        &format!("$JS.API.STREAM.MSG.DELETE.{}", names.dlq_stream()),
    )
    .await?;
    let out = cli::ok(&secured.user(Role::Admin), &["dlq", "ls"]).await?;
    assert_eq!(out.lines().count(), 2, "the letter is still there: {out}");
    let (_viewer, js) = short(viewer).await?;
    let jobs = js.get_key_value(names.jobs_bucket()).await?;
    assert!(jobs.put("forged", "{}".into()).await.is_err());
    violation(
        &secured,
        "viewer",
        &format!("$KV.{}.forged", names.jobs_bucket()),
    )
    .await?;

    // A stage cannot delete a stream.
    let (_fetch, js) = short(secured.user(Role::Fetch)).await?;
    assert!(js.delete_stream(names.tasks_stream()).await.is_err());
    violation(
        &secured,
        "fetch",
        &format!("$JS.API.STREAM.DELETE.{}", names.tasks_stream()),
    )
    .await?;
    assert!(
        env.bus.js.get_stream(names.tasks_stream()).await.is_ok(),
        "still there"
    );
    env.stop_services().await
}

/// A right, named from the namespace's names.
type Right = fn(&Names) -> String;

/// Every right a stage is given is one it uses: without it, a job stalls
/// and the server logs the violation (which the pipeline test above
/// forbids). Shown for four rights of four stages.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_stage_without_one_of_its_rights_stalls_the_job() -> anyhow::Result<()> {
    let cases: [(Role, Right); 4] = [
        (Role::Fetch, |n| {
            format!("$JS.API.CONSUMER.CREATE.{}", n.tasks_stream())
        }),
        (Role::Batch, |n| n.task_subject("")),
        (Role::Migrate, |n| n.result_subject("")),
        (Role::Reduce, |n| format!("$KV.{}.", n.jobs_bucket())),
    ];
    for (role, right) in cases {
        let namespace = jetflow_e2e::unique_namespace("lpx");
        let names = Names::new(&namespace).map_err(anyhow::Error::msg)?;
        let taken = right(&names);
        let secured = least_privilege::start(&namespace, &scope(&namespace), |r, publish| {
            if r == role {
                publish.retain(|s| !s.starts_with(&taken));
            }
        })
        .await?;
        cli::ok(&secured.user(Role::Admin), &["provision"]).await?;
        let env = TestEnv::secured_on(secured.server.clone(), secured.user(Role::Admin)).await?;
        start_stages(&env, &secured);
        let mock = MockAgents::start(MockAgentsConfig {
            agents: 20,
            ..Default::default()
        })
        .await?;
        let job = jobs::agents_job("stalls", &mock, json!({}));
        jobs::submit_plain(&env.bus, job.to_string().as_bytes()).await?;
        let line = violation(&secured, role.as_str(), &taken).await?;
        tracing::info!(%role, line, "refused as expected");
        // Twenty items end in well under a second with every right; give
        // the stage time to have finished had it not needed this one.
        tokio::time::sleep(Duration::from_secs(3)).await;
        let state = jobs::state_json(&env.bus, "stalls").await?;
        let status = state
            .as_ref()
            .and_then(|s| s["status"].as_str().map(str::to_string));
        assert_ne!(
            status.as_deref(),
            Some("completed"),
            "{role} without {taken}: {state:?}"
        );
        env.stop_services().await?;
    }
    Ok(())
}

/// The same roles as user JWTs in operator mode (what `deploy/nats/nsc.sh`
/// makes with nsc, minted here): provisioned by the admin's creds, a job
/// runs with every part on its own `.creds`, and nothing is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_roles_as_user_jwts_run_a_job_in_operator_mode() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let operator = jetflow_e2e::jwt::Operator::new(dir.path())?;
    // A user JWT travels in the CONNECT line; the admin's, with every right
    // spelt out, is longer than the server's default 4 KB limit (found
    // here: "maximum control line exceeded").
    let options = jetflow_devkit::ServerOptions {
        extra_config: Some(format!(
            "{}\nmax_control_line: 64KB\n",
            operator.server_config()
        )),
        ..Default::default()
    };
    let server = std::sync::Arc::new(
        tokio::task::spawn_blocking(move || jetflow_devkit::NatsServer::start_with(options))
            .await??,
    );
    let namespace = jetflow_e2e::unique_namespace("jwt");
    let names = Names::new(&namespace).map_err(anyhow::Error::msg)?;
    let mut users = std::collections::BTreeMap::new();
    for role in Role::ALL {
        let creds = dir.path().join(format!("{role}.creds"));
        let rights =
            jetflow_runtime::security::roles::permissions(&names, role, &scope(&namespace));
        operator.user_creds(&creds, &format!("{namespace}-{role}"), &rights)?;
        let mut args = NatsArgs::new([server.url()], &namespace).bind_only();
        args.auth.creds = Some(creds);
        args.auth.inbox_prefix = Some(jetflow_runtime::security::roles::inbox_prefix(&names, role));
        users.insert(role, args);
    }
    cli::ok(&users[&Role::Admin], &["provision"]).await?;
    let env = TestEnv::secured_on(server.clone(), users[&Role::Admin].clone()).await?;
    start_stages_as(&env, |role| users[&role].clone());
    let mock = MockAgents::start(MockAgentsConfig {
        agents: 50,
        transient_rate: 0.1,
        seed: 5,
        ..Default::default()
    })
    .await?;
    let file = dir.path().join("job.json");
    std::fs::write(&file, jobs::agents_job("jwt", &mock, json!({})).to_string())?;
    let out = cli::ok(
        &users[&Role::Submitter],
        &["submit", &file.to_string_lossy(), "--wait"],
    )
    .await?;
    assert!(out.contains("completed"), "{out}");
    let status = cli::ok(&users[&Role::Viewer], &["status", "jwt"]).await?;
    assert!(status.contains("completed"), "{status}");
    env.stop_services().await?;
    let violations = least_privilege::violations(&server);
    assert!(violations.is_empty(), "{}", violations.join("\n"));
    Ok(())
}
