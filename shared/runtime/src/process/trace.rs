//! W3C trace context (`traceparent`, `tracestate`) across NATS messages and
//! HTTP calls, so one job's spans in every service — and in a worker of
//! another language that honours the header — share one trace.
//!
//! Every job gets a root span when it is accepted; its `traceparent` is kept
//! in the job's state. Fetch pages and reduce folds are its children; a
//! batch's fan-out is the child of its page (through the batch message's
//! headers), and each item the child of its batch (through the task's).
//! With no exporter configured (see [`crate::process::telemetry`]) nothing is
//! injected and nothing is read.

use std::collections::HashMap;

use async_nats::HeaderMap;
use opentelemetry::propagation::{Extractor, Injector};
use tracing_opentelemetry::OpenTelemetrySpanExt;

struct Inject<'a>(&'a mut HeaderMap);

impl Injector for Inject<'_> {
    fn set(&mut self, key: &str, value: String) {
        self.0.insert(key, value.as_str());
    }
}

struct Extract<'a>(&'a HeaderMap);

impl Extractor for Extract<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(|v| v.as_str())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.iter().map(|(k, _)| k.as_ref()).collect()
    }
}

/// Adds `span`'s trace context to `headers`.
pub fn inject(span: &tracing::Span, headers: &mut HeaderMap) {
    let cx = span.context();
    opentelemetry::global::get_text_map_propagator(|p| p.inject_context(&cx, &mut Inject(headers)));
}

/// Adds the current span's trace context to `headers`.
pub fn inject_current(headers: &mut HeaderMap) {
    inject(&tracing::Span::current(), headers);
}

/// Makes `span` a child of the trace context in `headers`, if any.
pub fn follow(span: &tracing::Span, headers: Option<&HeaderMap>) {
    let Some(headers) = headers else { return };
    let cx = opentelemetry::global::get_text_map_propagator(|p| p.extract(&Extract(headers)));
    if opentelemetry::trace::TraceContextExt::has_active_span(&cx) {
        let _ = span.set_parent(cx);
    }
}

/// The W3C headers of `span`'s context (`traceparent`, `tracestate`), e.g.
/// for an HTTP call or to keep in the job's state; empty when not tracing.
pub fn headers_of(span: &tracing::Span) -> HashMap<String, String> {
    let cx = span.context();
    let mut out = HashMap::new();
    opentelemetry::global::get_text_map_propagator(|p| p.inject_context(&cx, &mut out));
    out
}

/// `span`'s `traceparent`, if it is traced.
pub fn traceparent(span: &tracing::Span) -> Option<String> {
    headers_of(span).remove("traceparent")
}

/// Makes `span` a child of `traceparent` (as kept in a job's state).
pub fn follow_traceparent(span: &tracing::Span, traceparent: Option<&str>) {
    if let Some(tp) = traceparent {
        let mut headers = HeaderMap::new();
        headers.insert("traceparent", tp);
        follow(span, Some(&headers));
    }
}
