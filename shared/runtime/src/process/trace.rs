//! W3C trace context (`traceparent`, `tracestate`) across NATS messages and
//! HTTP calls, so one job's spans in every service — and the calls to a
//! user's API or worker, in any language — share one trace.
//!
//! A job's context travels whether or not jetflow exports spans itself:
//! - Exporting (see [`crate::process::telemetry`]): every job gets a root
//!   span when it is accepted, a child of the submitter's `traceparent` if it
//!   sent one; fetch pages and reduce folds are its children, a batch's
//!   fan-out the child of its page, each item the child of its batch. What a
//!   span sends carries that span's context.
//! - Not exporting: there are no spans to speak of, so the submitter's
//!   context is passed through unchanged, as a W3C intermediary that does
//!   not participate does; the user's API and workers then join the
//!   submitter's trace as its children.
//!
//! Either way a message is handled *carrying* the context it came with
//! ([`follow`] gives it, [`carrying`] runs the work under it), so whatever
//! that work sends — tasks, ledger entries (grouped ones too), events, dead
//! letters, handler calls — carries it as well, with no parameter threaded
//! through. The job's context is kept in its state (`traceparent`) for the
//! work that starts from the state rather than from a message.

use std::{collections::HashMap, future::Future};

use async_nats::HeaderMap;
use opentelemetry::{
    context::{FutureExt, WithContext},
    propagation::{Extractor, Injector, TextMapPropagator},
    trace::TraceContextExt,
    Context,
};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// A trace context to carry (OpenTelemetry's): empty, or a remote one.
pub use opentelemetry::Context as TraceContext;

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

/// The format spoken on every hop: W3C trace context, whatever propagator
/// (if any) the process installed globally.
fn propagator() -> TraceContextPropagator {
    TraceContextPropagator::new()
}

/// What `span` sends: its own context when spans are exported (it has one),
/// otherwise the context the running work carries.
fn context_of(span: &tracing::Span) -> Context {
    let own = span.context();
    if own.has_active_span() {
        own
    } else {
        Context::current()
    }
}

/// Adds `span`'s trace context to `headers`.
pub fn inject(span: &tracing::Span, headers: &mut HeaderMap) {
    propagator().inject_context(&context_of(span), &mut Inject(headers));
}

/// Adds the trace context `cx` to `headers`.
pub fn inject_context(cx: &TraceContext, headers: &mut HeaderMap) {
    propagator().inject_context(cx, &mut Inject(headers));
}

/// The trace context in this process's environment: `TRACEPARENT` and
/// `TRACESTATE`, as OpenTelemetry's environment carrier names them (CI
/// systems and `otel-cli` set them), so a command run inside a traced
/// script joins its trace.
pub fn from_environment() -> TraceContext {
    let mut headers = HeaderMap::new();
    for (var, header) in [("TRACEPARENT", "traceparent"), ("TRACESTATE", "tracestate")] {
        if let Ok(value) = std::env::var(var) {
            headers.insert(header, value.trim());
        }
    }
    extract(Some(&headers))
}

/// Adds the current span's trace context to `headers`.
pub fn inject_current(headers: &mut HeaderMap) {
    inject(&tracing::Span::current(), headers);
}

/// The remote context in `headers`; empty if they carry none, or one that
/// is not valid W3C (which is ignored, as the W3C recommendation asks).
pub fn extract(headers: Option<&HeaderMap>) -> Context {
    match headers {
        Some(headers) => propagator().extract(&Extract(headers)),
        None => Context::new(),
    }
}

/// The remote context of a `traceparent` (as kept in a job's state).
pub fn remote(traceparent: Option<&str>) -> Context {
    let Some(tp) = traceparent else {
        return Context::new();
    };
    let mut headers = HeaderMap::new();
    headers.insert("traceparent", tp);
    extract(Some(&headers))
}

/// Makes `span` a child of the trace context in `headers`, if any, and
/// gives that context, for the work to run [`carrying`].
pub fn follow(span: &tracing::Span, headers: Option<&HeaderMap>) -> Context {
    adopt(span, extract(headers))
}

/// Makes `span` a child of `traceparent` (as kept in a job's state) and
/// gives its context, for the work to run [`carrying`].
pub fn follow_traceparent(span: &tracing::Span, traceparent: Option<&str>) -> Context {
    adopt(span, remote(traceparent))
}

fn adopt(span: &tracing::Span, cx: Context) -> Context {
    if cx.has_active_span() {
        let _ = span.set_parent(cx.clone());
    }
    cx
}

/// `work`, carrying `cx`: what it sends carries `cx` unless a span of its
/// own (when exporting) has a context to send instead.
pub fn carrying<F: Future>(cx: Context, work: F) -> WithContext<F> {
    work.with_context(cx)
}

/// Whether `cx` holds a trace context to carry.
pub fn is_traced(cx: &Context) -> bool {
    cx.has_active_span()
}

/// The W3C headers of `span`'s context (`traceparent`, `tracestate`), e.g.
/// for an HTTP call or to keep in the job's state; empty when untraced.
pub fn headers_of(span: &tracing::Span) -> HashMap<String, String> {
    let mut out = HashMap::new();
    propagator().inject_context(&context_of(span), &mut out);
    out
}

/// `span`'s `traceparent` (or the carried one), if there is one.
pub fn traceparent(span: &tracing::Span) -> Option<String> {
    headers_of(span).remove("traceparent")
}

#[cfg(test)]
mod tests {
    use super::*;

    const TP: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    fn sent_by(span: &tracing::Span) -> Option<String> {
        let mut headers = HeaderMap::new();
        inject(span, &mut headers);
        headers.get("traceparent").map(|v| v.as_str().to_string())
    }

    #[tokio::test]
    async fn carried_context_passes_through_unchanged_without_spans() {
        // No subscriber: spans are disabled, as with no exporter.
        let cx = remote(Some(TP));
        assert!(is_traced(&cx));
        let seen = carrying(cx, async { sent_by(&tracing::Span::current()) }).await;
        assert_eq!(seen.as_deref(), Some(TP));
        // Nothing is carried outside the work.
        assert_eq!(sent_by(&tracing::Span::current()), None);
    }

    #[tokio::test]
    async fn work_spawned_off_carries_nothing_unless_told() {
        let seen = carrying(remote(Some(TP)), async {
            tokio::spawn(async { sent_by(&tracing::Span::current()) }).await
        })
        .await;
        assert_eq!(seen.ok().flatten(), None);
    }

    #[test]
    fn an_invalid_traceparent_is_ignored() {
        for bad in [
            "",
            "garbage",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
        ] {
            assert!(!is_traced(&remote(Some(bad))), "{bad:?} was taken");
        }
        assert!(!is_traced(&remote(None)));
    }

    #[test]
    fn follow_reads_the_headers_of_a_message() {
        let mut headers = HeaderMap::new();
        headers.insert("traceparent", TP);
        let cx = follow(&tracing::Span::none(), Some(&headers));
        assert_eq!(
            cx.span().span_context().trace_id().to_string(),
            "4bf92f3577b34da6a3ce929d0e0e4736"
        );
        assert!(!is_traced(&follow(&tracing::Span::none(), None)));
    }
}
