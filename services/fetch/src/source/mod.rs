//! Reading one page of a job's source.

pub mod http;
mod inline;
mod job;
mod nats;

use jetflow_protocol::{job::SourceSpec, messages::Item};
use jetflow_runtime::Bus;

pub use self::{
    http::{client as http_client, HttpSource},
    job::JobSource,
    nats::NatsSource,
};

/// One page of items.
#[derive(Debug, Clone, PartialEq)]
pub struct Page {
    /// The page's items.
    pub items: Vec<Item>,
    /// Cursor of the next page; `None` when this was the last.
    pub next_cursor: Option<String>,
}

/// Why a page could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SourceError {
    /// The source said no (a 4xx, a redirect, an answer we cannot read): retrying the
    /// same request cannot help, so the job fails with this text.
    #[error("{0}")]
    Refused(String),
    /// The source is unavailable for now (5xx, 429, timeout, connection).
    #[error("{0}")]
    Unavailable(String),
}

/// A job's source, ready to page.
pub enum Source {
    /// HTTP with a cursor.
    Http(HttpSource),
    /// Items given inline (`ids` or `items`), paged by offset.
    Inline(Vec<Item>),
    /// Pages requested over NATS.
    Nats(NatsSource),
    /// Another job's outcomes (boxed: it holds a consumer's stream).
    Job(Box<JobSource>),
}

impl Source {
    /// The source of `spec` for `job`.
    pub fn new(spec: &SourceSpec, job: &str, http: reqwest::Client, bus: &Bus) -> Source {
        match spec {
            SourceSpec::Http(source) => Source::Http(HttpSource::new(source.clone(), http)),
            SourceSpec::Ids { .. } | SourceSpec::Items { .. } => {
                Source::Inline(inline::items(spec))
            }
            SourceSpec::Nats { subject, timeout } => Source::Nats(NatsSource::new(
                bus.client.clone(),
                subject.clone(),
                timeout.get(),
                job,
            )),
            SourceSpec::Job {
                job: other,
                status,
                data,
            } => Source::Job(Box::new(JobSource::new(bus, other, *status, *data))),
        }
    }

    /// The source of `spec` if it needs no NATS connection to page (an
    /// `http` or inline source): what a dry run pages without connecting.
    pub fn without_nats(spec: &SourceSpec, http: reqwest::Client) -> Option<Source> {
        match spec {
            SourceSpec::Http(source) => Some(Source::Http(HttpSource::new(source.clone(), http))),
            SourceSpec::Ids { .. } | SourceSpec::Items { .. } => {
                Some(Source::Inline(inline::items(spec)))
            }
            SourceSpec::Nats { .. } | SourceSpec::Job { .. } => None,
        }
    }

    /// Reads the page at `cursor` (`None` = the first) of up to `limit` items.
    pub async fn page(&self, cursor: Option<&str>, limit: u32) -> Result<Page, SourceError> {
        match self {
            Source::Http(source) => source.page(cursor, limit).await,
            Source::Inline(items) => inline::page(items, cursor, limit),
            Source::Nats(source) => source.page(cursor, limit).await,
            Source::Job(source) => source.page(cursor, limit).await,
        }
    }
}
