//! `nats` sources: a page is a request `{"cursor", "limit", "job"}` on the
//! source's subject, answered by `{"items": [...], "next_cursor": ...}` (or
//! `{"error": ...}` to fail the job) from a process in any language.

use std::time::Duration;

use async_nats::{client::RequestErrorKind, Message, Request};
use jetflow_protocol::{
    codec,
    messages::{Item, PageReply, PageRequest},
    text::quote,
};

use super::{Page, SourceError};

/// A `nats` source of one job.
pub struct NatsSource {
    client: async_nats::Client,
    subject: String,
    timeout: Duration,
    job: String,
}

impl NatsSource {
    /// Pages `subject` for `job` over `client`.
    pub fn new(client: async_nats::Client, subject: String, timeout: Duration, job: &str) -> Self {
        Self {
            client,
            subject,
            timeout,
            job: job.to_string(),
        }
    }

    /// Requests the page at `cursor`.
    pub async fn page(&self, cursor: Option<&str>, limit: u32) -> Result<Page, SourceError> {
        let request = PageRequest {
            cursor: cursor.map(str::to_string),
            limit,
            job: self.job.clone(),
        };
        let reply = self
            .client
            .send_request(
                self.subject.clone(),
                Request::new()
                    .headers(codec::headers_for(codec::Format::Json))
                    .payload(codec::to_json(&request))
                    .timeout(Some(self.timeout)),
            )
            .await
            .map_err(|err| {
                let what = match err.kind() {
                    RequestErrorKind::TimedOut => format!("no reply within {:?}", self.timeout),
                    RequestErrorKind::NoResponders => "nothing serves this subject".into(),
                    _ => err.to_string(),
                };
                SourceError::Unavailable(format!("nats source {}: {what}", self.subject))
            })?;
        read_reply(&self.subject, &reply, limit)
    }
}

/// The page in `reply` to a request of up to `limit` items on `subject`; a
/// reply that is no page, an error, or too many items is a refusal.
fn read_reply(subject: &str, reply: &Message, limit: u32) -> Result<Page, SourceError> {
    let page: PageReply = codec::decode(reply.headers.as_ref(), &reply.payload).map_err(|e| {
        SourceError::Refused(format!(
            "nats source {subject}: the reply is not a page ({e}): {}",
            quote(&String::from_utf8_lossy(&reply.payload), 300)
        ))
    })?;
    if let Some(error) = page.error {
        return Err(SourceError::Refused(format!(
            "nats source {subject}: {error}"
        )));
    }
    if page.items.len() > limit as usize {
        return Err(SourceError::Refused(format!(
            "nats source {subject}: answered {} items for a limit of {limit}",
            page.items.len()
        )));
    }
    let items = page
        .items
        .into_iter()
        .map(|item| {
            let item = item.into_item();
            Item {
                id: item.id.as_string(),
                data: item.data,
                priority: item.priority,
            }
        })
        .collect();
    Ok(Page {
        items,
        next_cursor: page.next_cursor.filter(|c| !c.is_empty()),
    })
}
