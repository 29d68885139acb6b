//! End-to-end tests of the mock over real HTTP.

use std::collections::BTreeSet;
use std::time::Duration;

use anyhow::Context;
use serde_json::{json, Value};

use super::test_client::{get, post, Reply};
use super::*;

async fn start(config: MockAgentsConfig) -> anyhow::Result<MockAgents> {
    MockAgents::start(config).await
}

fn migrate_url(mock: &MockAgents, id: &str) -> String {
    mock.migrate_url_template().replace("{id}", id)
}

async fn migrate(mock: &MockAgents, id: &str, key: Option<&str>) -> anyhow::Result<Reply> {
    let headers: Vec<(&str, &str)> = key.map(|k| (IDEMPOTENCY_KEY, k)).into_iter().collect();
    let body = json!({ "template": "my-template:v2", "dryRun": false });
    post(&migrate_url(mock, id), &headers, &body).await
}

fn error_text(reply: &Reply) -> &str {
    reply.body["error"].as_str().unwrap_or_default()
}

#[tokio::test]
async fn paging_visits_every_agent_once() -> anyhow::Result<()> {
    let mock = start(MockAgentsConfig::default()).await?;
    let mut seen = BTreeSet::new();
    let mut cursor = String::new();
    let mut pages = 0;
    loop {
        let url = format!(
            "{}?organizationId=org-123&limit=50&cursor={cursor}",
            mock.agents_url()
        );
        let reply = get(&url).await?;
        assert_eq!(reply.status, 200, "{:?}", reply.body);
        pages += 1;
        let agents = reply.body["agents"].as_array().context("agents")?;
        assert!(agents.len() <= 50);
        for agent in agents {
            let id = agent["id"].as_str().context("id")?.to_owned();
            assert_eq!(agent["organizationId"], "org-123");
            assert_eq!(agent["template"], "my-template:v1");
            assert!(seen.insert(id.clone()), "{id} served twice");
        }
        match &reply.body["nextCursor"] {
            Value::Null => break,
            Value::String(next) => cursor = next.clone(),
            other => anyhow::bail!("bad nextCursor {other}"),
        }
        assert!(pages <= 20, "paging does not end");
    }
    assert_eq!(seen.len(), 1000);
    assert_eq!(seen.first().map(String::as_str), Some("agent-00001"));
    assert_eq!(seen.last().map(String::as_str), Some("agent-01000"));
    assert_eq!(pages, 20);
    assert_eq!(mock.stats().pages, 20);
    Ok(())
}

#[tokio::test]
async fn overlapping_pages_repeat_the_last_agents_of_the_page_before() -> anyhow::Result<()> {
    let mock = start(MockAgentsConfig {
        agents: 25,
        page_limit: 10,
        page_overlap: 3,
        ..MockAgentsConfig::default()
    })
    .await?;
    let (mut served, mut cursor, mut pages) = (Vec::new(), String::new(), 0);
    loop {
        let url = format!(
            "{}?organizationId=org-123&limit=10&cursor={cursor}",
            mock.agents_url()
        );
        let reply = get(&url).await?;
        pages += 1;
        for agent in reply.body["agents"].as_array().context("agents")? {
            served.push(agent["id"].as_str().context("id")?.to_owned());
        }
        match &reply.body["nextCursor"] {
            Value::String(next) => cursor = next.clone(),
            _ => break,
        }
        assert!(pages <= 10, "paging does not end");
    }
    let distinct: BTreeSet<&String> = served.iter().collect();
    assert_eq!(distinct.len(), 25, "every agent served");
    // Pages of 10 moving on by 7: 1-10, 8-17, 15-24, 22-25.
    assert_eq!(pages, 4);
    assert_eq!(served.len(), 25 + 3 * 3);
    assert_eq!(served[10], "agent-00008");
    let bad = MockAgentsConfig {
        page_overlap: 50,
        ..MockAgentsConfig::default()
    };
    assert!(MockAgents::start(bad).await.is_err());
    Ok(())
}

#[tokio::test]
async fn bad_limits_are_rejected_and_unknown_org_is_empty() -> anyhow::Result<()> {
    let mock = start(MockAgentsConfig::default()).await?;
    let base = format!("{}?organizationId=org-123", mock.agents_url());

    let reply = get(&format!("{base}&limit=51")).await?;
    assert_eq!(reply.status, 400);
    assert_eq!(error_text(&reply), "limit must be at most 50");
    for bad in ["0", "ten", "-1"] {
        let reply = get(&format!("{base}&limit={bad}")).await?;
        assert_eq!(reply.status, 400, "limit={bad}");
        assert!(error_text(&reply).contains("limit"), "{:?}", reply.body);
    }
    let reply = get(&mock.agents_url()).await?;
    assert_eq!(reply.status, 400);
    assert_eq!(error_text(&reply), "organizationId is required");
    assert_eq!(mock.stats().pages, 0);

    let reply = get(&format!(
        "{}?organizationId=org-999&limit=10",
        mock.agents_url()
    ))
    .await?;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.body, json!({ "agents": [], "nextCursor": null }));
    Ok(())
}

#[tokio::test]
async fn permanent_failures_always_answer_422() -> anyhow::Result<()> {
    let mock = start(MockAgentsConfig {
        agents: 200,
        permanent_rate: 0.2,
        seed: 42,
        ..MockAgentsConfig::default()
    })
    .await?;
    let failing = mock.permanent_failures();
    assert!((15..=70).contains(&failing.len()), "{}", failing.len());
    for id in &failing {
        assert!(mock.is_permanent_failure(id));
        for _ in 0..3 {
            let reply = migrate(&mock, id, Some(&format!("k-{id}"))).await?;
            assert_eq!(reply.status, 422);
            assert_eq!(
                error_text(&reply),
                format!(
                    "agent {id} cannot use template my-template:v2: incompatible tool variables"
                )
            );
        }
    }
    let healthy = (1..=200)
        .map(|n| format!("agent-{n:05}"))
        .find(|id| !failing.contains(id))
        .context("a healthy agent")?;
    assert!(!mock.is_permanent_failure(&healthy));
    assert_eq!(migrate(&mock, &healthy, None).await?.status, 200);

    let stats = mock.stats();
    assert_eq!(stats.permanent_errors, 3 * failing.len() as u64);
    assert_eq!(mock.migrated_ids(), vec![healthy]);
    Ok(())
}

#[tokio::test]
async fn idempotent_replay_migrates_once() -> anyhow::Result<()> {
    let mock = start(MockAgentsConfig::default()).await?;
    let first = migrate(&mock, "agent-00007", Some("job-1:agent-00007")).await?;
    let second = migrate(&mock, "agent-00007", Some("job-1:agent-00007")).await?;
    assert_eq!(first.status, 200);
    assert_eq!(second.status, 200);
    assert_eq!(
        first.body,
        json!({ "id": "agent-00007", "template": "my-template:v2", "migrated": true })
    );
    assert_eq!(second.body, first.body);
    let stats = mock.stats();
    assert_eq!(
        (
            stats.migrated,
            stats.successes,
            stats.idempotent_replays,
            stats.duplicate_successes
        ),
        (1, 2, 1, 0)
    );

    // A different key is a new operation on an already migrated agent.
    assert_eq!(
        migrate(&mock, "agent-00007", Some("job-2")).await?.status,
        200
    );
    assert_eq!(migrate(&mock, "agent-00007", None).await?.status, 200);
    let stats = mock.stats();
    assert_eq!((stats.migrated, stats.duplicate_successes), (1, 2));
    assert_eq!(mock.migrated_ids(), vec!["agent-00007".to_owned()]);

    let agent = get(&format!("{}/agents/agent-00007", mock.base_url())).await?;
    assert_eq!(agent.status, 200);
    assert_eq!(agent.body["template"], "my-template:v2");
    Ok(())
}

#[tokio::test]
async fn transient_rate_one_always_answers_503() -> anyhow::Result<()> {
    let mock = start(MockAgentsConfig {
        transient_rate: 1.0,
        ..MockAgentsConfig::default()
    })
    .await?;
    for _ in 0..5 {
        let reply = migrate(&mock, "agent-00001", Some("k")).await?;
        assert_eq!(reply.status, 503);
        assert_eq!(error_text(&reply), "temporarily unavailable");
    }
    let stats = mock.stats();
    assert_eq!(
        (stats.transient_errors, stats.migrated, stats.successes),
        (5, 0, 0)
    );
    Ok(())
}

#[tokio::test]
async fn transient_failures_follow_the_seed() -> anyhow::Result<()> {
    let mut runs = Vec::new();
    for _ in 0..2 {
        let mock = start(MockAgentsConfig {
            transient_rate: 0.5,
            seed: 9,
            ..MockAgentsConfig::default()
        })
        .await?;
        let mut statuses = Vec::new();
        for n in 1..=40 {
            statuses.push(migrate(&mock, &format!("agent-{n:05}"), None).await?.status);
        }
        runs.push(statuses);
    }
    assert_eq!(runs[0], runs[1]);
    assert!(
        runs[0].contains(&200) && runs[0].contains(&503),
        "{:?}",
        runs[0]
    );
    Ok(())
}

#[tokio::test]
async fn down_switch_via_handle_and_admin_endpoint() -> anyhow::Result<()> {
    let mock = start(MockAgentsConfig::default()).await?;
    mock.set_down(true);
    assert_eq!(migrate(&mock, "agent-00001", None).await?.status, 503);
    mock.set_down(false);
    assert_eq!(migrate(&mock, "agent-00001", None).await?.status, 200);

    let admin = format!("{}/admin/faults", mock.base_url());
    let reply = post(&admin, &[], &json!({ "down": true })).await?;
    assert_eq!((reply.status, &reply.body["down"]), (200, &json!(true)));
    assert_eq!(migrate(&mock, "agent-00002", None).await?.status, 503);
    post(&admin, &[], &json!({ "down": false })).await?;
    assert_eq!(migrate(&mock, "agent-00002", None).await?.status, 200);

    let reply = post(&admin, &[], &json!({ "transient_rate": 1.5 })).await?;
    assert_eq!(reply.status, 400);
    let reply = post(&admin, &[], &json!({ "bogus": 1 })).await?;
    assert_eq!(reply.status, 400);
    let reply = post(
        &admin,
        &[],
        &json!({ "transient_rate": 1.0, "latency_ms": 5 }),
    )
    .await?;
    assert_eq!(reply.status, 200);
    assert_eq!(get(&admin).await?.body["latency_ms"], 5);
    assert_eq!(migrate(&mock, "agent-00003", None).await?.status, 503);
    Ok(())
}

#[tokio::test]
async fn concurrent_calls_under_latency_are_counted_in_flight() -> anyhow::Result<()> {
    let mock = start(MockAgentsConfig::default()).await?;
    mock.set_latency(Duration::from_millis(300));
    let (a, b) = tokio::join!(
        migrate(&mock, "agent-00001", None),
        migrate(&mock, "agent-00002", None)
    );
    assert_eq!((a?.status, b?.status), (200, 200));
    let stats = mock.stats();
    assert!(stats.max_in_flight >= 2, "{stats:?}");
    assert_eq!(stats.in_flight, 0);
    mock.reset_max_in_flight();
    assert_eq!(mock.stats().max_in_flight, 0);
    Ok(())
}

#[tokio::test]
async fn unknown_agents_and_bad_bodies() -> anyhow::Result<()> {
    let mock = start(MockAgentsConfig {
        agents: 10,
        ..MockAgentsConfig::default()
    })
    .await?;
    let reply = migrate(&mock, "agent-00011", None).await?;
    assert_eq!(reply.status, 404);
    assert_eq!(error_text(&reply), "no agent agent-00011");
    let reply = get(&format!("{}/agents/agent-00011", mock.base_url())).await?;
    assert_eq!(reply.status, 404);

    let reply = post(
        &migrate_url(&mock, "agent-00001"),
        &[],
        &json!({ "other": 1 }),
    )
    .await?;
    assert_eq!(reply.status, 400);

    let over_http: MockStats =
        serde_json::from_value(get(&format!("{}/stats", mock.base_url())).await?.body)?;
    assert_eq!(over_http, mock.stats());
    assert_eq!(
        (over_http.calls, over_http.not_found, over_http.bad_requests),
        (2, 1, 1)
    );
    Ok(())
}

#[tokio::test]
async fn stop_closes_the_port() -> anyhow::Result<()> {
    let mock = start(MockAgentsConfig::default()).await?;
    let stats_url = format!("{}/stats", mock.base_url());
    assert_eq!(get(&stats_url).await?.status, 200);
    mock.stop().await;
    assert!(get(&stats_url).await.is_err());
    Ok(())
}
