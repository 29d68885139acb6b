//! docs/design.md, invariant 5: bad input never stops the pipeline. Malformed, oversized and
//! unknown-job messages on every stage's subject go to the DLQ with their
//! reason, while a valid job beside them completes exactly.

use std::time::Duration;

use jetflow_devkit::{MockAgents, MockAgentsConfig};
use jetflow_e2e::{jobs, TestEnv};
use jetflow_protocol::{
    codec,
    job::JobStatus,
    messages::{BatchMessage, Item, TaskMessage},
    Stage,
};
use serde_json::{json, Value};

const MALFORMED: &[u8] = b"\xc1\xc1 this is neither JSON nor MessagePack";

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn poison_on_every_subject_is_dead_lettered_and_the_valid_job_completes() -> anyhow::Result<()>
{
    let env = TestEnv::start("poison").await?;
    let bus = &env.bus;
    let names = &bus.names;
    let mock = MockAgents::start(MockAgentsConfig {
        agents: 1000,
        latency: Duration::from_millis(2),
        ..Default::default()
    })
    .await?;
    let spec = jobs::agents_job("valid", &mock, json!({}));
    jobs::submit_plain(bus, spec.to_string().as_bytes()).await?;
    jobs::wait_for_state(bus, "valid", |s| s.succeeded > 0).await?;

    let oversized = vec![b'x'; 5 << 20];
    let ghost_item = Item {
        id: "agent-00001".into(),
        data: Value::Null,
        priority: None,
    };
    let ghost_task = codec::to_msgpack(&TaskMessage {
        job: "ghost".into(),
        batch: 1,
        item: ghost_item.clone(),
        resume: None,
    });
    let ghost_batch = codec::to_msgpack(&BatchMessage {
        job: "ghost".into(),
        batch: 1,
        items: vec![ghost_item],
    });
    // (subject, payload, DLQ subject it must land on, words its reason must contain)
    let cases: Vec<(String, Vec<u8>, String, &str)> = vec![
        (
            names.submit_subject(),
            MALFORMED.to_vec(),
            names.dlq_subject(Stage::Fetch, "_"),
            "cannot decode",
        ),
        (
            names.submit_subject(),
            oversized.clone(),
            names.dlq_subject(Stage::Fetch, "_"),
            "oversized",
        ),
        (
            names.cancel_subject("ghost"),
            Vec::new(),
            names.dlq_subject(Stage::Fetch, "ghost"),
            "unknown job",
        ),
        (
            names.batch_subject("valid"),
            MALFORMED.to_vec(),
            names.dlq_subject(Stage::Batch, "valid"),
            "cannot decode",
        ),
        (
            names.batch_subject("valid"),
            oversized.clone(),
            names.dlq_subject(Stage::Batch, "valid"),
            "oversized",
        ),
        (
            names.batch_subject("ghost"),
            ghost_batch.to_vec(),
            names.dlq_subject(Stage::Batch, "ghost"),
            "unknown job",
        ),
        (
            names.task_subject("valid"),
            MALFORMED.to_vec(),
            names.dlq_subject(Stage::Migrate, "valid"),
            "cannot decode",
        ),
        (
            names.task_subject("valid"),
            oversized.clone(),
            names.dlq_subject(Stage::Migrate, "valid"),
            "oversized",
        ),
        (
            names.task_subject("ghost"),
            ghost_task.to_vec(),
            names.dlq_subject(Stage::Migrate, "ghost"),
            "unknown job",
        ),
        (
            names.result_subject("valid"),
            MALFORMED.to_vec(),
            names.dlq_subject(Stage::Reduce, "valid"),
            "cannot decode",
        ),
        (
            names.result_subject("valid"),
            oversized.clone(),
            names.dlq_subject(Stage::Reduce, "valid"),
            "oversized",
        ),
        (
            names.result_subject("ghost"),
            MALFORMED.to_vec(),
            names.dlq_subject(Stage::Reduce, "ghost"),
            "unknown job",
        ),
    ];
    for (subject, payload, _, _) in &cases {
        // Through JetStream, so each is surely stored before we look for it.
        bus.js
            .publish(subject.clone(), payload.clone().into())
            .await?
            .await?;
    }

    let state = jobs::wait_for_end(bus, "valid").await?;
    assert_eq!(state.status, JobStatus::Completed, "{state:#?}");
    assert_eq!((state.succeeded, state.total), (1000, 1000));
    assert_eq!(mock.stats().migrated, 1000);

    for (subject, payload, dlq_subject, reason) in &cases {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        loop {
            let letters = jobs::stream_messages(bus, &names.dlq_stream(), dlq_subject).await?;
            let found = letters.iter().any(|(_, headers, body)| {
                &body[..] == payload.as_slice()
                    && jobs::header(headers, "Jetflow-Original-Subject").as_deref()
                        == Some(subject.as_str())
                    && jobs::header(headers, "Jetflow-Error").is_some_and(|e| e.contains(reason))
            });
            if found {
                break;
            }
            anyhow::ensure!(
                tokio::time::Instant::now() < deadline,
                "no dead letter on {dlq_subject} for {subject} ({reason}); found {:?}",
                letters
                    .iter()
                    .map(|(_, h, _)| jobs::header(h, "Jetflow-Error"))
                    .collect::<Vec<_>>()
            );
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }
    // Operators clear what they have looked at.
    let out = tokio::process::Command::new(jetflow_e2e::processes::binary("jetflow")?)
        .args([
            "dlq",
            "purge",
            "--stage",
            "fetch",
            "--nats-url",
            &env.server.url(),
            "--namespace",
            &env.nats.namespace,
        ])
        .output()
        .await?;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(jobs::stream_messages(
        bus,
        &names.dlq_stream(),
        &names.dlq_subject(Stage::Fetch, "*")
    )
    .await?
    .is_empty());
    assert!(!jobs::stream_messages(
        bus,
        &names.dlq_stream(),
        &names.dlq_subject(Stage::Batch, "*")
    )
    .await?
    .is_empty());
    // Strays were moved, not copied.
    let tasks = bus
        .js
        .get_stream(names.tasks_stream())
        .await?
        .get_info()
        .await?;
    assert_eq!(tasks.state.messages, 0, "no task left behind");
    env.stop_services().await?;
    Ok(())
}
