//! The `http` handler: one request per item, carrying the idempotency key
//! `<job>:<item>` so that a retried or repeated call is safe for the target.

use std::time::Duration;

use jetflow_protocol::{
    job::HttpHandler,
    messages::Item,
    text::{error_chain, quote},
};
use jetflow_runtime::process::trace;
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use reqwest::{Method, StatusCode};
use serde_json::Value;

use super::{Call, HandlerError};

/// Characters kept as they are in a path segment (RFC 3986 unreserved).
const PATH_SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// Answers longer than this are not kept as the item's output.
const MAX_OUTPUT: usize = 4096;
/// Longest part of an error body quoted in the item's error.
const MAX_ERROR_BODY: usize = 300;

/// The client every `http` handler call goes through. Redirects are not
/// followed: a handler is an action (POST by default), and following a
/// 301/302 would silently repeat it as a GET somewhere else. A 3xx fails
/// the item, naming where it pointed. (It also spares every call the
/// redirect layer's per-request URL bookkeeping.)
pub fn client() -> reqwest::Result<reqwest::Client> {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .pool_max_idle_per_host(256)
        .build()
}

/// The request a call makes, before it is sent: what `jetflow submit
/// --dry-run` prints, so a preview is exactly what migrate sends.
#[derive(Debug, Clone, PartialEq)]
pub struct Planned {
    /// The method, upper case.
    pub method: Method,
    /// The URL, `{id}` filled in.
    pub url: String,
    /// The idempotency header and the spec's headers, in the order sent
    /// (trace context is added when it is sent).
    pub headers: Vec<(String, String)>,
    /// The JSON body, if the request has one.
    pub body: Option<Value>,
}

/// The request `spec` makes for the item of `call`.
pub fn plan(spec: &HttpHandler, call: &Call<'_>) -> Result<Planned, HandlerError> {
    let item = call.item;
    let url = spec.url.replace(
        "{id}",
        &utf8_percent_encode(&item.id, PATH_SEGMENT).to_string(),
    );
    let method = Method::from_bytes(spec.method.to_ascii_uppercase().as_bytes())
        .map_err(|_| HandlerError::Permanent(format!("bad method {:?}", spec.method)))?;
    let body = match &spec.body {
        Some(template) => render(template, item, call.params, call.input),
        None => call.params.clone(),
    };
    let mut headers = vec![(spec.idempotency_header.clone(), call.idempotency_key())];
    headers.extend(spec.headers.iter().map(|(k, v)| (k.clone(), v.clone())));
    let body = (method != Method::GET && !body.is_null()).then_some(body);
    Ok(Planned {
        method,
        url,
        headers,
        body,
    })
}

/// Calls `spec` for the item of `call`.
pub async fn call(
    client: &reqwest::Client,
    spec: &HttpHandler,
    call: &Call<'_>,
) -> Result<Value, HandlerError> {
    let Planned {
        method,
        url,
        headers,
        body,
    } = plan(spec, call)?;
    let mut request = client
        .request(method.clone(), &url)
        .timeout(spec.timeout.get());
    for (name, value) in &headers {
        request = request.header(name, value);
    }
    for (name, value) in trace::headers_of(&tracing::Span::current()) {
        request = request.header(name, value);
    }
    if let Some(body) = &body {
        request = request.json(body);
    }
    let response = request.send().await.map_err(|e| {
        let what = if e.is_timeout() {
            format!("timed out after {}", spec.timeout)
        } else {
            error_chain(&e)
        };
        HandlerError::Transient(format!("{} {url}: {what}", method.as_str()))
    })?;
    let status = response.status();
    let location = status
        .is_redirection()
        .then(|| response.headers().get(reqwest::header::LOCATION))
        .flatten()
        .map(|value| String::from_utf8_lossy(value.as_bytes()).into_owned());
    let retry_after = matches!(
        status,
        StatusCode::TOO_MANY_REQUESTS | StatusCode::SERVICE_UNAVAILABLE
    )
    .then(|| response.headers().get(reqwest::header::RETRY_AFTER))
    .flatten()
    .and_then(|value| value.to_str().ok())
    .and_then(|value| retry_after_wait(value, chrono::Utc::now()));
    let text = response
        .text()
        .await
        .map_err(|e| HandlerError::Transient(format!("reading answer: {e}")))?;
    if status.is_success() {
        return Ok(output(&text));
    }
    let failure = failure(status, location, &text, &spec.retry_on);
    match (failure, retry_after) {
        (HandlerError::Transient(error), Some(after)) => {
            Err(HandlerError::Throttled { error, after })
        }
        (failure, _) => Err(failure),
    }
}

/// The longest `Retry-After` honoured: a target asking for more is waited
/// for this long, then asked again.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(3600);

/// How long a `Retry-After` value (seconds, or an HTTP date) asks to wait
/// as of `now`; `None` for a value that is neither.
pub fn retry_after_wait(value: &str, now: chrono::DateTime<chrono::Utc>) -> Option<Duration> {
    let value = value.trim();
    let wait = match value.parse::<u64>() {
        Ok(seconds) => Duration::from_secs(seconds),
        Err(_) => {
            let at = chrono::DateTime::parse_from_rfc2822(value).ok()?;
            (at.with_timezone(&chrono::Utc) - now)
                .to_std()
                .unwrap_or(Duration::ZERO)
        }
    };
    Some(wait.min(MAX_RETRY_AFTER))
}

/// Why a call answered `status` (not a success) with `text` failed, and
/// whether it is worth retrying.
fn failure(
    status: StatusCode,
    location: Option<String>,
    text: &str,
    retry_on: &[u16],
) -> HandlerError {
    let error = match location {
        Some(location) => format!(
            "HTTP {status}: redirects are not followed; the handler url points to {location:?}"
        ),
        None => format!("HTTP {status}: {}", quote(text, MAX_ERROR_BODY)),
    };
    if is_transient(status, retry_on) {
        HandlerError::Transient(error)
    } else {
        HandlerError::Permanent(error)
    }
}

/// 408, 429 and 5xx are worth retrying, and whatever the job lists.
pub fn is_transient(status: StatusCode, retry_on: &[u16]) -> bool {
    status.is_server_error()
        || status == StatusCode::TOO_MANY_REQUESTS
        || status == StatusCode::REQUEST_TIMEOUT
        || retry_on.contains(&status.as_u16())
}

/// Replaces the strings `"$id"`, `"$data"`, `"$params"` and `"$input"` (a
/// previous step's output) anywhere in a body template.
pub fn render(template: &Value, item: &Item, params: &Value, input: &Value) -> Value {
    match template {
        Value::String(s) if s == "$id" => Value::String(item.id.clone()),
        Value::String(s) if s == "$data" => item.data.clone(),
        Value::String(s) if s == "$params" => params.clone(),
        Value::String(s) if s == "$input" => input.clone(),
        Value::Array(values) => Value::Array(
            values
                .iter()
                .map(|v| render(v, item, params, input))
                .collect(),
        ),
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| (k.clone(), render(v, item, params, input)))
                .collect(),
        ),
        other => other.clone(),
    }
}

fn output(text: &str) -> Value {
    if text.trim().is_empty() || text.len() > MAX_OUTPUT {
        return Value::Null;
    }
    serde_json::from_str(text).unwrap_or_else(|_| Value::String(text.to_string()))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn retry_after_is_seconds_or_a_date_and_capped() {
        use chrono::TimeZone;
        let now = chrono::Utc
            .with_ymd_and_hms(2015, 10, 21, 7, 27, 0)
            .unwrap();
        assert_eq!(retry_after_wait("2", now), Some(Duration::from_secs(2)));
        assert_eq!(
            retry_after_wait("Wed, 21 Oct 2015 07:28:00 GMT", now),
            Some(Duration::from_secs(60))
        );
        assert_eq!(
            retry_after_wait("Wed, 21 Oct 2015 07:00:00 GMT", now),
            Some(Duration::ZERO),
            "a date gone by asks for no wait"
        );
        assert_eq!(retry_after_wait("99999", now), Some(MAX_RETRY_AFTER));
        assert_eq!(retry_after_wait("soon", now), None);
    }

    #[test]
    fn classifies_statuses() {
        assert!(is_transient(StatusCode::SERVICE_UNAVAILABLE, &[]));
        assert!(is_transient(StatusCode::TOO_MANY_REQUESTS, &[]));
        assert!(!is_transient(StatusCode::UNPROCESSABLE_ENTITY, &[]));
        assert!(is_transient(StatusCode::CONFLICT, &[409]));
        assert!(!is_transient(StatusCode::NOT_FOUND, &[409]));
    }

    #[test]
    fn renders_body_templates() {
        let item = Item {
            id: "a/1".into(),
            data: json!({"x": 1}),
            priority: None,
        };
        let body = render(
            &json!({"agent": "$id", "data": "$data", "p": "$params", "keep": ["$idx", 2], "prev": "$input"}),
            &item,
            &json!({"template": "v2"}),
            &json!("thread-1"),
        );
        assert_eq!(
            body,
            json!({"agent": "a/1", "data": {"x": 1}, "p": {"template": "v2"}, "keep": ["$idx", 2], "prev": "thread-1"})
        );
    }

    #[test]
    fn encodes_ids_in_paths() {
        let encoded = utf8_percent_encode("a b/c?d", PATH_SEGMENT).to_string();
        assert_eq!(encoded, "a%20b%2Fc%3Fd");
    }
}
