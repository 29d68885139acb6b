//! Every stage registers as a NATS micro service `jetflow-<stage>`, so
//! `nats micro ls|info|stats` and `$SRV.PING|INFO|STATS` requests find each
//! running instance.
//!
//! - The stats of its one endpoint carry the instance's [`StatusReport`]
//!   (in the endpoint's `data`), so one `$SRV.STATS.jetflow-migrate` request
//!   gathers what every migrate instance is doing.
//! - `<ns>.svc.<stage>.status` answers the same report from one instance
//!   (it is a queue group, as micro endpoints are).
//! - Metadata `namespace` and `instance` tell instances of different
//!   namespaces on one NATS account apart.
//!
//! Liveness is the answer itself: an instance is listed while it answers.
//! A killed process's connection closes and the server drops its
//! subscriptions at once; a hung or cut-off one stops answering.

use std::sync::Arc;

use async_nats::service::ServiceExt;
use futures::StreamExt;
use jetflow_protocol::Stage;
use tokio_util::sync::CancellationToken;

use crate::{
    process::activity::{Activity, StatusReport},
    Bus, Error, Result, ResultExt,
};

/// Stage-specific details added to every report (migrate: its breakers).
pub type Details = Arc<dyn Fn() -> serde_json::Value + Send + Sync>;

/// Registers the instance and answers status requests until `shutdown`.
pub async fn serve(
    bus: Bus,
    activity: Arc<Activity>,
    details: Option<Details>,
    shutdown: CancellationToken,
) -> Result<()> {
    let report = {
        let activity = activity.clone();
        move || {
            let details = details.as_ref().map(|d| d()).unwrap_or_default();
            activity.report(details)
        }
    };
    let stats = report.clone();
    let stage = activity.stage();
    let service = bus
        .client
        .service_builder()
        .description(format!("jetflow {stage} stage"))
        .metadata(
            [
                ("namespace".to_string(), bus.names.namespace().to_string()),
                ("instance".to_string(), activity.instance().to_string()),
            ]
            .into(),
        )
        .stats_handler(move |_endpoint, _stats| serde_json::to_value(stats()).unwrap_or_default())
        .start(stage.service_name(), env!("CARGO_PKG_VERSION"))
        .await
        .map_err(|e| Error::boxed("registering the micro service", e))?;
    let mut status = service
        .endpoint_builder()
        .name("status")
        .add(format!("{}.status", bus.names.service_group(stage)))
        .await
        .map_err(|e| Error::boxed("adding the status endpoint", e))?;
    loop {
        let request = tokio::select! {
            biased;
            _ = shutdown.cancelled() => break,
            request = status.next() => request,
        };
        let Some(request) = request else { break };
        let body = serde_json::to_vec(&report()).unwrap_or_default();
        if let Err(err) = request.respond(Ok(body.into())).await {
            tracing::debug!(error = %err, "cannot answer a status request");
        }
    }
    let _ = service.stop().await;
    Ok(())
}

/// Starts [`serve`] in the background; logs if it stops with an error.
pub fn spawn(
    bus: &Bus,
    activity: &Arc<Activity>,
    details: Option<Details>,
    shutdown: &CancellationToken,
) -> tokio::task::JoinHandle<()> {
    let task = serve(bus.clone(), activity.clone(), details, shutdown.clone());
    tokio::spawn(async move {
        if let Err(err) = task.await {
            tracing::warn!(error = %err, "micro service stopped");
        }
    })
}

/// Asks every jetflow instance of `namespace` for its status, the way
/// `nats micro stats` does (a `$SRV.STATS` request, many replies), and
/// returns the reports that arrive within `window`, ordered by stage and
/// instance.
pub async fn gather(
    client: &async_nats::Client,
    namespace: &str,
    window: std::time::Duration,
) -> Result<Vec<StatusReport>> {
    let inbox = client.new_inbox();
    let mut replies = client
        .subscribe(inbox.clone())
        .await
        .ctx("subscribing for replies")?;
    client
        .publish_with_reply("$SRV.STATS", inbox, bytes::Bytes::new())
        .await
        .ctx("asking for service stats")?;
    client.flush().await.ctx("asking for service stats")?;
    let deadline = tokio::time::sleep(window);
    tokio::pin!(deadline);
    let mut reports = Vec::new();
    loop {
        let reply = tokio::select! {
            _ = &mut deadline => break,
            reply = replies.next() => reply,
        };
        let Some(reply) = reply else { break };
        // Other services share the account: take only our own, of this
        // namespace. (STATS replies carry no metadata, so the namespace is
        // read from the report itself.)
        let Ok(stats) = serde_json::from_slice::<serde_json::Value>(&reply.payload) else {
            continue;
        };
        if !stats["name"]
            .as_str()
            .is_some_and(|n| n.starts_with("jetflow-"))
        {
            continue;
        }
        let report: Option<StatusReport> = stats["endpoints"]
            .as_array()
            .into_iter()
            .flatten()
            .find_map(|e| serde_json::from_value(e["data"].clone()).ok());
        match report {
            Some(report) if report.namespace == namespace => reports.push(report),
            Some(_) => {}
            None => tracing::debug!(reply = %stats, "stats carry no status report"),
        }
    }
    reports.sort_by(|a, b| {
        stage_order(&a.stage)
            .cmp(&stage_order(&b.stage))
            .then_with(|| a.instance.cmp(&b.instance))
    });
    Ok(reports)
}

/// Pipeline order, for listings.
fn stage_order(stage: &str) -> usize {
    Stage::ALL
        .iter()
        .position(|s| s.as_str() == stage)
        .unwrap_or(usize::MAX)
}
