//! HTTP routes of the mock agents API.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, Query, State as AxumState};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};

use super::faults::FaultsUpdate;
use super::state::{Migration, State};
use super::stats::InFlight;

/// Header carrying the caller's idempotency key for a migrate call.
pub const IDEMPOTENCY_KEY: &str = "Idempotency-Key";

type Shared = AxumState<Arc<State>>;

/// All routes, sharing `state`.
pub(crate) fn router(state: Arc<State>) -> Router {
    Router::new()
        .route("/agents", get(list_agents))
        .route("/agents/{id}", get(get_agent))
        .route("/agents/{id}/migrate", post(migrate))
        .route("/stats", get(stats))
        .route("/admin/faults", get(get_faults).post(set_faults))
        .with_state(state)
}

fn error(status: StatusCode, message: impl Into<String>) -> Response {
    (status, Json(json!({ "error": message.into() }))).into_response()
}

#[derive(Debug, Deserialize)]
struct ListQuery {
    #[serde(rename = "organizationId")]
    organization_id: Option<String>,
    cursor: Option<String>,
    // Text, not a number, so a malformed limit gets this API's JSON error
    // rather than axum's plain-text rejection.
    limit: Option<String>,
}

async fn list_agents(AxumState(state): Shared, Query(query): Query<ListQuery>) -> Response {
    match state.page(
        query.organization_id.as_deref(),
        query.cursor.as_deref(),
        query.limit.as_deref(),
    ) {
        Ok(page) => Json(page).into_response(),
        Err(message) => error(StatusCode::BAD_REQUEST, message),
    }
}

async fn get_agent(AxumState(state): Shared, Path(id): Path<String>) -> Response {
    match state.agent(&id) {
        Some(agent) => Json(agent).into_response(),
        None => error(StatusCode::NOT_FOUND, format!("no agent {id}")),
    }
}

async fn migrate(
    AxumState(state): Shared,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    state.counters.count_call();
    state.counters.count_trace(
        headers
            .get("traceparent")
            .and_then(|value| value.to_str().ok()),
    );
    let _in_flight = InFlight::enter(&state.counters);
    let key = headers
        .get(IDEMPOTENCY_KEY)
        .and_then(|value| value.to_str().ok())
        .filter(|key| !key.is_empty());
    let outcome = decide_migration(&state, &id, key, &body).await;
    state.record(&outcome);
    migration_response(&id, outcome)
}

/// The migrate rules in order: cheap checks, body, latency, then the verdict.
async fn decide_migration(state: &State, id: &str, key: Option<&str>, body: &[u8]) -> Migration {
    let admitted = match state.admit(id, key) {
        Ok(admitted) => admitted,
        Err(early) => return early,
    };
    let template = match template_of(body) {
        Ok(template) => template,
        Err(message) => return Migration::BadRequest(message),
    };
    if !admitted.latency.is_zero() {
        tokio::time::sleep(admitted.latency).await;
    }
    state.decide(id, key, &template)
}

/// The `template` string of a migrate body.
fn template_of(body: &[u8]) -> Result<String, String> {
    let value: Value =
        serde_json::from_slice(body).map_err(|err| format!("body is not JSON: {err}"))?;
    value
        .get("template")
        .and_then(Value::as_str)
        .map(str::to_owned)
        .ok_or_else(|| "body must have a \"template\" string".to_owned())
}

fn migration_response(id: &str, outcome: Migration) -> Response {
    match outcome {
        Migration::Migrated(answer) | Migration::Replayed(answer) => Json(answer).into_response(),
        Migration::Unavailable => error(StatusCode::SERVICE_UNAVAILABLE, "temporarily unavailable"),
        Migration::Throttled(seconds) => {
            let mut response = error(StatusCode::TOO_MANY_REQUESTS, "slow down");
            response
                .headers_mut()
                .insert(axum::http::header::RETRY_AFTER, seconds.into());
            response
        }
        Migration::NotFound => error(StatusCode::NOT_FOUND, format!("no agent {id}")),
        Migration::Incompatible { template } => error(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!("agent {id} cannot use template {template}: incompatible tool variables"),
        ),
        Migration::BadRequest(message) => error(StatusCode::BAD_REQUEST, message),
    }
}

async fn stats(AxumState(state): Shared) -> Response {
    Json(state.stats()).into_response()
}

async fn get_faults(AxumState(state): Shared) -> Response {
    Json(state.faults()).into_response()
}

async fn set_faults(AxumState(state): Shared, body: Bytes) -> Response {
    let update: FaultsUpdate = match serde_json::from_slice(&body) {
        Ok(update) => update,
        Err(err) => return error(StatusCode::BAD_REQUEST, format!("bad faults body: {err}")),
    };
    match state.update_faults(&update) {
        Ok(view) => Json(view).into_response(),
        Err(err) => error(StatusCode::BAD_REQUEST, err.to_string()),
    }
}
