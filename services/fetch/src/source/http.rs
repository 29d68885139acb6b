//! An HTTP source paged with a cursor, as in docs/protocol.md's example job:
//! `GET url?<query>&<limit_param>=N[&<cursor_param>=C]` answering
//! `{"<items_field>": [...], "<next_cursor_field>": "..." | null}`.

use jetflow_protocol::{
    job,
    messages::Item,
    text::{error_chain, quote},
};
use reqwest::StatusCode;
use serde_json::Value;

use super::{Page, SourceError};

/// Longest part of an error body we quote.
const BODY_QUOTE: usize = 300;

/// The client every `http` source of the process pages through, so pages
/// reuse pooled connections. Redirects are not followed, as migrate's
/// handler client does not follow them: the job names the url it is to
/// read, and a 3xx fails the job naming where it pointed. Timeouts are the
/// source's own (`source.timeout`), set on each request.
pub fn client() -> reqwest::Result<reqwest::Client> {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
}

/// An HTTP source with its client.
pub struct HttpSource {
    spec: job::HttpSource,
    client: reqwest::Client,
}

impl HttpSource {
    /// A source for `spec`, using `client`'s connection pool.
    pub fn new(spec: job::HttpSource, client: reqwest::Client) -> Self {
        Self { spec, client }
    }

    /// Reads one page.
    pub async fn page(&self, cursor: Option<&str>, limit: u32) -> Result<Page, SourceError> {
        let spec = &self.spec;
        let mut query: Vec<(String, String)> = spec
            .query
            .iter()
            .map(|(k, v)| (k.clone(), query_value(v)))
            .collect();
        query.push((spec.limit_param.clone(), limit.to_string()));
        if let Some(cursor) = cursor {
            query.push((spec.cursor_param.clone(), cursor.to_string()));
        }
        let mut request = self
            .client
            .get(&spec.url)
            .query(&query)
            .timeout(spec.timeout.get());
        for (name, value) in &spec.headers {
            request = request.header(name, value);
        }
        let response = request.send().await.map_err(|e| {
            SourceError::Unavailable(format!("GET {}: {}", spec.url, error_chain(&e)))
        })?;
        let status = response.status();
        let location = status
            .is_redirection()
            .then(|| response.headers().get(reqwest::header::LOCATION))
            .flatten()
            .map(|value| String::from_utf8_lossy(value.as_bytes()).into_owned());
        let body = response
            .text()
            .await
            .map_err(|e| SourceError::Unavailable(format!("reading page: {e}")))?;
        if !status.is_success() {
            return Err(answer_error(
                spec,
                limit,
                status,
                location.as_deref(),
                &body,
            ));
        }
        parse_page(spec, &body)
    }
}

/// Why an answer with `status` (not a success) gives no page: 408, 429 and
/// 5xx are the source unavailable for now; anything else, a redirect to
/// `location` included, is a refusal naming the request's settings.
pub fn answer_error(
    spec: &job::HttpSource,
    limit: u32,
    status: StatusCode,
    location: Option<&str>,
    body: &str,
) -> SourceError {
    let text = match location {
        Some(location) => {
            format!("HTTP {status}: redirects are not followed; source.url points to {location:?}")
        }
        None => format!("HTTP {status}: {}", quote(body, BODY_QUOTE)),
    };
    let transient = status.is_server_error()
        || status == StatusCode::TOO_MANY_REQUESTS
        || status == StatusCode::REQUEST_TIMEOUT;
    if transient {
        SourceError::Unavailable(text)
    } else {
        SourceError::Refused(format!(
            "source refused the page request (batch.fetch_size={limit}, source.url={}): {text}",
            spec.url
        ))
    }
}

/// Reads a page answer; an unreadable answer is a refusal naming the field.
pub fn parse_page(spec: &job::HttpSource, body: &str) -> Result<Page, SourceError> {
    let answer: Value = serde_json::from_str(body).map_err(|e| {
        SourceError::Refused(format!(
            "source answer is not JSON ({e}): {}",
            quote(body, BODY_QUOTE)
        ))
    })?;
    let Some(list) = answer.get(&spec.items_field).and_then(Value::as_array) else {
        return Err(SourceError::Refused(format!(
            "source answer has no array `{}` (source.items_field): {}",
            spec.items_field,
            quote(body, BODY_QUOTE)
        )));
    };
    let items = list
        .iter()
        .enumerate()
        .map(|(i, data)| {
            let id = match data.get(&spec.id_field) {
                Some(Value::String(s)) if !s.is_empty() => s.clone(),
                Some(Value::Number(n)) => n.to_string(),
                _ => {
                    return Err(SourceError::Refused(format!(
                        "item {i} of the page has no `{}` (source.id_field)",
                        spec.id_field
                    )))
                }
            };
            Ok(Item {
                id,
                data: data.clone(),
                priority: None,
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let next_cursor = match answer.get(&spec.next_cursor_field) {
        Some(Value::String(s)) if !s.is_empty() => Some(s.clone()),
        Some(Value::Number(n)) => Some(n.to_string()),
        _ => None,
    };
    Ok(Page { items, next_cursor })
}

fn query_value(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> job::HttpSource {
        serde_json::from_value(serde_json::json!({
            "url": "http://x/agents", "items_field": "agents", "next_cursor_field": "nextCursor"
        }))
        .unwrap()
    }

    #[test]
    fn reads_items_and_cursor() {
        let page = parse_page(
            &spec(),
            r#"{"agents": [{"id": "a1", "n": 1}, {"id": 7}], "nextCursor": "a1"}"#,
        )
        .unwrap();
        assert_eq!(page.items.len(), 2);
        assert_eq!(page.items[1].id, "7");
        assert_eq!(page.items[0].data["n"], 1);
        assert_eq!(page.next_cursor.as_deref(), Some("a1"));
        let last = parse_page(&spec(), r#"{"agents": [], "nextCursor": null}"#).unwrap();
        assert_eq!(last.next_cursor, None);
    }

    #[test]
    fn a_redirect_is_refused_naming_the_status_and_location() {
        let err = answer_error(
            &spec(),
            50,
            StatusCode::FOUND,
            Some("http://elsewhere/agents"),
            "moved",
        );
        assert_eq!(
            err,
            SourceError::Refused(
                "source refused the page request (batch.fetch_size=50, source.url=http://x/agents): \
                 HTTP 302 Found: redirects are not followed; source.url points to \"http://elsewhere/agents\""
                    .into()
            )
        );
        let err = answer_error(
            &spec(),
            50,
            StatusCode::PERMANENT_REDIRECT,
            Some("/v2/agents"),
            "",
        );
        assert!(
            matches!(&err, SourceError::Refused(m) if m.contains("HTTP 308 Permanent Redirect") && m.contains("\"/v2/agents\""))
        );
    }

    #[test]
    fn other_failed_answers_are_refused_or_unavailable_as_before() {
        let err = answer_error(&spec(), 50, StatusCode::NOT_FOUND, None, "no such org");
        assert_eq!(
            err,
            SourceError::Refused(
                "source refused the page request (batch.fetch_size=50, source.url=http://x/agents): \
                 HTTP 404 Not Found: no such org"
                    .into()
            )
        );
        // A 3xx without a Location cannot point anywhere: quoted like a 4xx.
        let err = answer_error(&spec(), 50, StatusCode::NOT_MODIFIED, None, "");
        assert!(matches!(&err, SourceError::Refused(m) if m.contains("HTTP 304 Not Modified")));
        for status in [
            StatusCode::SERVICE_UNAVAILABLE,
            StatusCode::TOO_MANY_REQUESTS,
            StatusCode::REQUEST_TIMEOUT,
        ] {
            let err = answer_error(&spec(), 50, status, None, "busy");
            assert_eq!(
                err,
                SourceError::Unavailable(format!("HTTP {status}: busy"))
            );
        }
    }

    #[test]
    fn unreadable_answers_are_refusals_naming_the_setting() {
        let err = parse_page(&spec(), r#"{"items": []}"#).unwrap_err();
        assert!(matches!(&err, SourceError::Refused(m) if m.contains("source.items_field")));
        let err = parse_page(&spec(), r#"{"agents": [{"name": "x"}]}"#).unwrap_err();
        assert!(matches!(&err, SourceError::Refused(m) if m.contains("source.id_field")));
        assert!(parse_page(&spec(), "<html>").is_err());
    }
}
