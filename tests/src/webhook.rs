//! A webhook receiver for tests: an honest HTTP server that records every
//! POST (its `Idempotency-Key` and JSON body) and can be told to fail
//! (`fail_next`: answer 503) or be down (not started yet: nothing listens
//! on its port).

use std::{
    net::SocketAddr,
    sync::{
        atomic::{AtomicU32, Ordering},
        Arc, Mutex,
    },
};

use axum::{
    body::Bytes,
    extract::State,
    http::{HeaderMap, StatusCode},
    routing::post,
    Router,
};
use serde_json::Value;

/// One request the receiver got.
#[derive(Debug, Clone)]
pub struct Received {
    /// Its `Idempotency-Key` header.
    pub key: Option<String>,
    /// Its `traceparent` header.
    pub traceparent: Option<String>,
    /// Its path and query: `/hook?agent=a-1`.
    pub uri: String,
    /// Its body, as JSON (null if it was not JSON).
    pub body: Value,
    /// The status the receiver answered.
    pub answered: u16,
}

#[derive(Default)]
struct Shared {
    received: Mutex<Vec<Received>>,
    /// Requests still to answer with 503.
    failing: AtomicU32,
    /// Answer every request with this status, if set (0: no).
    always: AtomicU32,
}

/// A receiver, listening on `addr` once started.
pub struct Webhook {
    /// `http://127.0.0.1:<port>/hook`.
    pub url: String,
    addr: SocketAddr,
    shared: Arc<Shared>,
    server: Option<tokio::task::JoinHandle<()>>,
}

impl Webhook {
    /// Starts on a free port.
    pub async fn start() -> anyhow::Result<Self> {
        let mut hook = Self::down().await?;
        hook.come_up().await?;
        Ok(hook)
    }

    /// A receiver whose port is chosen but where nothing listens yet:
    /// calls are refused until [`come_up`](Self::come_up).
    pub async fn down() -> anyhow::Result<Self> {
        let probe = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = probe.local_addr()?;
        drop(probe);
        Ok(Self {
            url: format!("http://{addr}/hook"),
            addr,
            shared: Arc::default(),
            server: None,
        })
    }

    /// Starts listening on its port.
    pub async fn come_up(&mut self) -> anyhow::Result<()> {
        let app = Router::new()
            .route("/hook", post(receive))
            .with_state(self.shared.clone());
        let listener = tokio::net::TcpListener::bind(self.addr).await?;
        self.server = Some(tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        }));
        Ok(())
    }

    /// Answers the next `n` requests with 503.
    pub fn fail_next(&self, n: u32) {
        self.shared.failing.store(n, Ordering::SeqCst);
    }

    /// Answers every request with `status` from now on.
    pub fn always_answer(&self, status: u16) {
        self.shared
            .always
            .store(u32::from(status), Ordering::SeqCst);
    }

    /// Every request so far.
    pub fn received(&self) -> Vec<Received> {
        self.shared
            .received
            .lock()
            .map(|r| r.clone())
            .unwrap_or_default()
    }

    /// The requests answered 2xx so far.
    pub fn delivered(&self) -> Vec<Received> {
        self.received()
            .into_iter()
            .filter(|r| (200..300).contains(&r.answered))
            .collect()
    }
}

impl Drop for Webhook {
    fn drop(&mut self) {
        if let Some(server) = &self.server {
            server.abort();
        }
    }
}

async fn receive(
    State(shared): State<Arc<Shared>>,
    uri: axum::http::Uri,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    let always = shared.always.load(Ordering::SeqCst);
    let fail = shared
        .failing
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
        .is_ok();
    let status = match (always, fail) {
        (0, true) => StatusCode::SERVICE_UNAVAILABLE,
        (0, false) => StatusCode::OK,
        (code, _) => u16::try_from(code)
            .ok()
            .and_then(|c| StatusCode::from_u16(c).ok())
            .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
    };
    let received = Received {
        key: headers
            .get("Idempotency-Key")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string),
        traceparent: headers
            .get("traceparent")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string),
        uri: uri.to_string(),
        body: serde_json::from_slice(&body).unwrap_or(Value::Null),
        answered: status.as_u16(),
    };
    if let Ok(mut all) = shared.received.lock() {
        all.push(received);
    }
    status
}
