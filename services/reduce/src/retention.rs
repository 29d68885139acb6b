//! Automatic retention: one reduce instance at a time (the holder of the
//! `gc.all` lease) removes jobs that finished more than `--retention` ago,
//! every `--gc-every`. Same removal as `jetflow gc`.

use std::time::Duration;

use jetflow_protocol::names::Names;
use jetflow_runtime::{ops::gc, ownership::lease, ownership::lease::Work, Bus};
use tokio_util::sync::CancellationToken;

/// Runs retention until `shutdown`.
pub async fn run(
    bus: Bus,
    owner: String,
    retention: Duration,
    every: Duration,
    shutdown: CancellationToken,
) {
    let key = Names::retention_lease_key();
    lease::contend(bus.kv.leases.clone(), key, owner, shutdown, |stop| {
        let bus = bus.clone();
        async move {
            loop {
                match gc::collect(&bus, retention).await {
                    Ok(removed) if !removed.is_empty() => {
                        tracing::info!(
                            removed = removed.len(),
                            ?retention,
                            "retention removed finished jobs"
                        )
                    }
                    Ok(_) => {}
                    Err(err) => {
                        tracing::warn!(error = %err, "retention run failed; will retry");
                        return Work::Interrupted;
                    }
                }
                tokio::select! {
                    _ = stop.cancelled() => return Work::Interrupted,
                    _ = tokio::time::sleep(every) => {}
                }
            }
        }
    })
    .await
}
