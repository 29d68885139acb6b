//! Serving a jetflow `nats` handler (or step) in Rust: the handler is a
//! function from the item's request to its output; this crate is the loop.
//! It depends on `jetflow-protocol` and async-nats alone.
//!
//! ```no_run
//! # async fn f(client: async_nats::Client) -> Result<(), jetflow_worker::ServeError> {
//! use jetflow_worker::WorkError;
//! let shutdown = tokio_util::sync::CancellationToken::new();
//! jetflow_worker::serve(client, "agents.ensure-thread", shutdown, |request| async move {
//!     let id = request.item.id;
//!     if id.is_empty() {
//!         return Err(WorkError::Failed("no id".into()));
//!     }
//!     Ok(serde_json::json!({ "thread": format!("thread-{id}") }))
//! })
//! .await
//! # }
//! ```
//!
//! Workers of one subject share the queue group [`QUEUE_GROUP`], so each
//! request goes to one of them; run as many as you like. Workers of one
//! job keep values together — counters, lists, sets — with [`state`].

pub mod state;

use std::future::Future;

use futures::StreamExt;
use jetflow_protocol::{
    codec,
    messages::{HandlerReply, HandlerRequest},
};
use serde_json::Value;
use tokio_util::{sync::CancellationToken, task::TaskTracker};

/// The queue group handler workers join (any name works; workers of other
/// languages in the examples use this one too).
pub const QUEUE_GROUP: &str = jetflow_protocol::names::WORKER_QUEUE_GROUP;

/// Why an item's work did not succeed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WorkError {
    /// Try again later (jetflow retries with backoff).
    #[error("{0}")]
    Retryable(String),
    /// Do not try again: the item fails with this error.
    #[error("{0}")]
    Failed(String),
}

/// Why serving stopped before it was asked to.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The subject could not be subscribed to.
    #[error("serving {subject}: {source}")]
    Subscribe {
        /// The subject.
        subject: String,
        /// What NATS said.
        #[source]
        source: async_nats::SubscribeError,
    },
}

/// Answers requests on `subject` with `handler` until `shutdown`; requests
/// in hand are finished first. Each request runs in its own task.
pub async fn serve<F, Fut>(
    client: async_nats::Client,
    subject: impl Into<String>,
    shutdown: CancellationToken,
    handler: F,
) -> Result<(), ServeError>
where
    F: Fn(HandlerRequest) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = std::result::Result<Value, WorkError>> + Send + 'static,
{
    let subject = subject.into();
    let mut requests = client
        .queue_subscribe(subject.clone(), QUEUE_GROUP.to_string())
        .await
        .map_err(|source| ServeError::Subscribe {
            subject: subject.clone(),
            source,
        })?;
    let tasks = TaskTracker::new();
    loop {
        let msg = tokio::select! {
            _ = shutdown.cancelled() => break,
            msg = requests.next() => msg,
        };
        let Some(msg) = msg else { break };
        let Some(reply_to) = msg.reply.clone() else {
            tracing::debug!(subject, "a request without a reply subject; ignored");
            continue;
        };
        let (client, handler) = (client.clone(), handler.clone());
        tasks.spawn(async move {
            let reply = match codec::decode::<HandlerRequest>(msg.headers.as_ref(), &msg.payload) {
                Ok(request) => match handler(request).await {
                    Ok(output) => HandlerReply::success(output),
                    Err(WorkError::Retryable(error)) => HandlerReply::failure(error, true),
                    Err(WorkError::Failed(error)) => HandlerReply::failure(error, false),
                },
                Err(err) => HandlerReply::failure(format!("not a handler request: {err}"), false),
            };
            if let Err(err) = client.publish(reply_to, codec::to_json(&reply)).await {
                tracing::warn!(error = %err, "cannot send a reply");
            }
        });
    }
    tasks.close();
    tasks.wait().await;
    Ok(())
}
