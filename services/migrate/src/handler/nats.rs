//! The `nats` handler: one request per item to a subject served by workers
//! in any language (a queue group), as in docs/protocol.md. The request is
//! JSON; the reply is `{"ok": true, "output": …}` or `{"ok": false,
//! "error": …, "retryable": bool}`, in JSON or MessagePack.

use async_nats::{
    client::{RequestError, RequestErrorKind},
    HeaderMap, Request,
};
use jetflow_protocol::{
    codec, headers,
    job::NatsHandler,
    messages::{HandlerReply, HandlerRequest},
    text::quote,
};
use jetflow_runtime::process::trace;
use serde_json::Value;

use super::{Call, HandlerError};

/// Longest part of an undecodable reply quoted in the item's error.
const MAX_QUOTED: usize = 300;

/// The request and headers a call sends (trace context is added when it
/// is sent): what `jetflow submit --dry-run` prints.
pub fn plan(call: &Call<'_>) -> (HandlerRequest, HeaderMap) {
    let request = HandlerRequest {
        job: call.job.to_string(),
        item: call.item.clone(),
        params: call.params.clone(),
        attempt: call.attempt,
        step: call.step.map(str::to_string),
        input: call.input.clone(),
    };
    let mut hdrs: HeaderMap = codec::headers_for(codec::Format::Json);
    hdrs.insert(headers::JOB, call.job);
    hdrs.insert(headers::ITEM, call.item.id.as_str());
    hdrs.insert(headers::IDEMPOTENCY_KEY, call.idempotency_key().as_str());
    (request, hdrs)
}

/// Sends `call`'s item to `spec.subject` and waits for the worker's reply.
pub async fn call(
    client: &async_nats::Client,
    spec: &NatsHandler,
    call: &Call<'_>,
) -> Result<Value, HandlerError> {
    let (request, mut hdrs) = plan(call);
    trace::inject_current(&mut hdrs);
    let reply = client
        .send_request(
            spec.subject.clone(),
            Request::new()
                .headers(hdrs)
                .payload(codec::to_json(&request))
                .timeout(Some(spec.timeout.get())),
        )
        .await
        .map_err(|err| request_error(spec, err))?;
    let reply: HandlerReply =
        codec::decode(reply.headers.as_ref(), &reply.payload).map_err(|e| {
            HandlerError::Permanent(format!(
                "nats {}: the reply is not a handler reply ({e}): {}",
                spec.subject,
                quote(&String::from_utf8_lossy(&reply.payload), MAX_QUOTED)
            ))
        })?;
    outcome(reply)
}

/// Why a request failed, and whether trying again may help.
fn request_error(spec: &NatsHandler, err: RequestError) -> HandlerError {
    match err.kind() {
        RequestErrorKind::TimedOut => HandlerError::Transient(format!(
            "nats {}: no reply within {}",
            spec.subject, spec.timeout
        )),
        RequestErrorKind::NoResponders => HandlerError::Transient(format!(
            "nats {}: no worker serves this subject",
            spec.subject
        )),
        // The item itself cannot be sent: trying again will not help.
        RequestErrorKind::MaxPayloadExceeded | RequestErrorKind::InvalidSubject => {
            HandlerError::Permanent(format!("nats {}: {err}", spec.subject))
        }
        _ => HandlerError::Transient(format!("nats {}: {err}", spec.subject)),
    }
}

/// The item's output from a worker's reply, or the failure it reports.
fn outcome(reply: HandlerReply) -> Result<Value, HandlerError> {
    match reply {
        HandlerReply {
            ok: true, output, ..
        } => Ok(output),
        HandlerReply {
            error, retryable, ..
        } => {
            let error = error.unwrap_or_else(|| "the worker said it failed".into());
            if retryable {
                Err(HandlerError::Transient(error))
            } else {
                Err(HandlerError::Permanent(error))
            }
        }
    }
}
