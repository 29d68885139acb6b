//! An HTTP source paged with a cursor, exactly as SPEC.md's example:
//! `GET url?<query>&<limit_param>=N[&<cursor_param>=C]` answering
//! `{"<items_field>": [...], "<next_cursor_field>": "..." | null}`.

use jetflow_protocol::{
    job,
    messages::Item,
    text::{error_chain, quote},
};
use serde_json::Value;

use super::{Page, SourceError};

/// Longest part of an error body we quote.
const BODY_QUOTE: usize = 300;

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
        let body = response
            .text()
            .await
            .map_err(|e| SourceError::Unavailable(format!("reading page: {e}")))?;
        if !status.is_success() {
            let text = format!("HTTP {status}: {}", quote(&body, BODY_QUOTE));
            let transient = status.is_server_error()
                || status == reqwest::StatusCode::TOO_MANY_REQUESTS
                || status == reqwest::StatusCode::REQUEST_TIMEOUT;
            return Err(if transient {
                SourceError::Unavailable(text)
            } else {
                SourceError::Refused(format!(
                    "source refused the page request (batch.fetch_size={limit}, source.url={}): {text}",
                    spec.url
                ))
            });
        }
        parse_page(spec, &body)
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
    fn unreadable_answers_are_refusals_naming_the_setting() {
        let err = parse_page(&spec(), r#"{"items": []}"#).unwrap_err();
        assert!(matches!(&err, SourceError::Refused(m) if m.contains("source.items_field")));
        let err = parse_page(&spec(), r#"{"agents": [{"name": "x"}]}"#).unwrap_err();
        assert!(matches!(&err, SourceError::Refused(m) if m.contains("source.id_field")));
        assert!(parse_page(&spec(), "<html>").is_err());
    }
}
