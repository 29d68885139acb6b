//! The NATS micro service `jetflow-migrate`: `nats micro ls|info|stats`
//! see every instance, and its stats carry this instance's circuit breakers.
//! `<ns>.svc.migrate.status` answers the same as JSON.

use std::{sync::Arc, time::Instant};

use async_nats::service::ServiceExt;
use futures::StreamExt;
use jetflow_shared::{Bus, Result, ResultExt};
use serde_json::json;
use tokio_util::sync::CancellationToken;

use crate::breaker::Breakers;

/// Registers the service and answers status requests until `shutdown`.
pub async fn serve(
    bus: Bus,
    instance: String,
    breakers: Arc<Breakers>,
    shutdown: CancellationToken,
) -> Result<()> {
    let report = {
        let (breakers, instance) = (breakers.clone(), instance.clone());
        move || json!({ "instance": instance, "breakers": breakers.statuses(Instant::now()) })
    };
    let stats = report.clone();
    let service = bus
        .client
        .service_builder()
        .description("jetflow migrate stage: runs each item's handler")
        .metadata([("instance".to_string(), instance.clone())].into())
        .stats_handler(move |_endpoint, _stats| stats())
        .start("jetflow-migrate", env!("CARGO_PKG_VERSION"))
        .await
        .ctx("registering the micro service")?;
    let group = service.group(format!("{}.svc.migrate", bus.names.namespace()));
    let mut status = group
        .endpoint("status")
        .await
        .ctx("adding the status endpoint")?;
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
