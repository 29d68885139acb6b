//! [`Redirector`]: an HTTP server that answers every request with
//! `302 Found` to `<base>/elsewhere` on itself and counts what it gets, so a
//! test can show a client reports the redirect and does not follow it.

use std::{
    net::{Ipv4Addr, SocketAddr},
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc,
    },
};

use anyhow::Context;
use axum::{
    http::{header, StatusCode},
    response::IntoResponse,
    Router,
};
use tokio::task::JoinHandle;

/// A running redirecting server on `127.0.0.1`, stopped on drop.
#[derive(Debug)]
pub struct Redirector {
    addr: SocketAddr,
    requests: Arc<AtomicUsize>,
    task: JoinHandle<()>,
}

impl Redirector {
    /// Binds a free port and starts serving. Must be called inside a tokio
    /// runtime.
    pub async fn start() -> anyhow::Result<Self> {
        let listener = tokio::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .await
            .context("binding the redirecting server")?;
        let addr = listener.local_addr().context("reading its address")?;
        let requests = Arc::new(AtomicUsize::new(0));
        let (seen, location) = (requests.clone(), format!("http://{addr}/elsewhere"));
        let app = Router::new().fallback(move || {
            let (seen, location) = (seen.clone(), location.clone());
            async move {
                seen.fetch_add(1, Ordering::SeqCst);
                (StatusCode::FOUND, [(header::LOCATION, location)]).into_response()
            }
        });
        let task = tokio::spawn(async move {
            if let Err(err) = axum::serve(listener, app).await {
                tracing::warn!(error = %err, "redirecting server stopped");
            }
        });
        Ok(Self {
            addr,
            requests,
            task,
        })
    }

    /// `http://127.0.0.1:<port>`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Where every answer points: `<base>/elsewhere`.
    pub fn location(&self) -> String {
        format!("{}/elsewhere", self.base_url())
    }

    /// Requests answered so far (a followed redirect adds one).
    pub fn requests(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }
}

impl Drop for Redirector {
    fn drop(&mut self) {
        self.task.abort();
    }
}
