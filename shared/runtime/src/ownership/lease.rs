//! Ownership of a job's sequential work (fetching its pages, folding its
//! ledger) by exactly one instance at a time, with failover.
//!
//! A lease is a key in the leases bucket, whose `max_age` is [`LEASE_TTL`]:
//! `create` acquires it (only when absent), `update` with the last revision
//! renews it, and a holder that dies simply stops renewing, so the key ages
//! out and another instance's `create` succeeds. Correctness never rests on
//! the lease alone — the reducer's writes are compare-and-swap — it just
//! keeps two instances from doing the same work.

use std::{future::Future, time::Duration};

use async_nats::jetstream::kv::{CreateErrorKind, Store, UpdateErrorKind};
use bytes::Bytes;
use tokio_util::sync::CancellationToken;

pub use crate::nats::provision::LEASE_TTL;
use crate::Bus;
use jetflow_protocol::{Names, Stage};

/// How often a holder renews: three times per TTL, so one slow renewal does
/// not lose the lease.
const RENEW_EVERY: Duration = Duration::from_secs(2);

/// A held lease.
pub struct Lease {
    kv: Store,
    key: String,
    owner: String,
    revision: u64,
}

impl Lease {
    /// Tries to take `key` for `owner`; `None` if someone holds it.
    pub async fn acquire(kv: &Store, key: &str, owner: &str) -> Option<Lease> {
        match kv.create(key, Bytes::from(owner.to_string())).await {
            Ok(revision) => Some(Lease {
                kv: kv.clone(),
                key: key.to_string(),
                owner: owner.to_string(),
                revision,
            }),
            Err(err) if err.kind() == CreateErrorKind::AlreadyExists => {
                tracing::trace!(key, "lease held elsewhere");
                None
            }
            Err(err) => {
                tracing::debug!(key, error = %err, "lease acquisition failed");
                None
            }
        }
    }

    /// Renews the lease; `false` once it is lost.
    pub async fn renew(&mut self) -> bool {
        match self
            .kv
            .update(&self.key, Bytes::from(self.owner.clone()), self.revision)
            .await
        {
            Ok(revision) => {
                self.revision = revision;
                true
            }
            Err(err) if err.kind() == UpdateErrorKind::WrongLastRevision => false,
            Err(err) => {
                // A timeout may hide a successful write; the next renewal's
                // revision check tells. Keep the lease until then.
                tracing::debug!(key = %self.key, error = %err, "lease renewal failed");
                true
            }
        }
    }

    /// Gives the lease up at once so another instance can take over.
    pub async fn release(self) {
        let _ = self
            .kv
            .delete_expect_revision(&self.key, Some(self.revision))
            .await;
    }
}

/// [`contend`] for the lease of `role` (`fetch`, `reduce`) over `job`.
pub async fn contend_for_job<F, Fut>(
    bus: &Bus,
    stage: Stage,
    job: &str,
    owner: &str,
    stop: CancellationToken,
    work: F,
) where
    F: FnMut(CancellationToken) -> Fut,
    Fut: Future<Output = Work>,
{
    let key = Names::job_lease_key(stage, job);
    contend(bus.kv.leases.clone(), key, owner.to_string(), stop, work).await
}

/// What a unit of leased work reports when it returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Work {
    /// Nothing more to do for this job: stop contending.
    Finished,
    /// Stopped early (error, lost lease): contend again.
    Interrupted,
}

/// Runs `work` for `key` on whichever instance holds the lease, for as long
/// as needed: acquire, run while renewing, and if the lease is lost or the
/// work is interrupted, contend again. Returns when the work reports
/// [`Work::Finished`] or `stop` is cancelled. `work` receives a token that
/// is cancelled when it must stop (lease lost, shutdown).
pub async fn contend<F, Fut>(
    kv: Store,
    key: String,
    owner: String,
    stop: CancellationToken,
    mut work: F,
) where
    F: FnMut(CancellationToken) -> Fut,
    Fut: Future<Output = Work>,
{
    while !stop.is_cancelled() {
        let Some(mut lease) = Lease::acquire(&kv, &key, &owner).await else {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep(RENEW_EVERY) => continue,
            }
        };
        tracing::debug!(key, "lease acquired");
        let token = stop.child_token();
        let fut = work(token.clone());
        tokio::pin!(fut);
        let mut renew = tokio::time::interval(RENEW_EVERY);
        renew.tick().await;
        let outcome = loop {
            tokio::select! {
                outcome = &mut fut => break outcome,
                _ = renew.tick(), if !token.is_cancelled() => {
                    if !lease.renew().await {
                        tracing::warn!(key, "lease lost; stopping this job's work here");
                        token.cancel();
                    }
                }
            }
        };
        lease.release().await;
        if outcome == Work::Finished {
            return;
        }
        // Interrupted: give the others a moment before contending again.
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(Duration::from_millis(250)) => {}
        }
    }
}
