//! Server-sent events that keep a page current: the jobs listing, or one
//! job's live section, re-rendered and sent when the index says something
//! changed — at most every [`COALESCE`], and only when the HTML differs,
//! so a busy job sends a few updates a second, not one per checkpoint.
//!
//! Each stream sends the current HTML at once (a change between drawing
//! the page and opening the stream is not lost), then waits. A closed tab
//! drops its stream, and with it everything it held: nothing polls.

use std::{convert::Infallible, time::Duration};

use axum::{
    extract::{Path, Query, State},
    response::sse::{Event, KeepAlive, Sse},
};
use chrono::Utc;
use futures::{stream, Stream};
use tokio::sync::watch;

use super::{job_page, jobs_page, listing, lookup, App};

/// The shortest time between two updates of one page.
pub const COALESCE: Duration = Duration::from_millis(250);

/// What a stream re-renders.
enum Subject {
    Listing(listing::Query),
    Job { id: String, revision: Option<u64> },
}

struct Follow {
    app: App,
    changes: watch::Receiver<u64>,
    subject: Subject,
    last: Option<String>,
    first: bool,
}

pub async fn jobs(
    State(app): State<App>,
    Query(query): Query<listing::Query>,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    sse(app, Subject::Listing(query))
}

pub async fn job(
    State(app): State<App>,
    Path(id): Path<String>,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    sse(app, Subject::Job { id, revision: None })
}

fn sse(app: App, subject: Subject) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let follow = Follow {
        changes: app.index.changes(),
        app,
        subject,
        last: None,
        first: true,
    };
    let updates = stream::unfold(follow, |mut follow| async move {
        let html = follow.next_update().await?;
        let event = Event::default().event("update").data(html);
        Some((Ok(event), follow))
    });
    Sse::new(updates).keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
}

impl Follow {
    /// The next HTML to send; `None` ends the stream (shutting down).
    async fn next_update(&mut self) -> Option<String> {
        loop {
            if !self.first {
                tokio::select! {
                    _ = self.app.shutdown.cancelled() => return None,
                    changed = self.changes.changed() => changed.ok()?,
                }
                // Let a burst of changes settle into one update.
                tokio::select! {
                    _ = self.app.shutdown.cancelled() => return None,
                    _ = tokio::time::sleep(COALESCE) => {}
                }
                self.changes.borrow_and_update();
            }
            self.first = false;
            let Some(html) = self.render().await else {
                continue;
            };
            if self.last.as_ref() != Some(&html) {
                self.last = Some(html.clone());
                return Some(html);
            }
        }
    }

    /// The subject's HTML now, if it changed since the last render.
    async fn render(&mut self) -> Option<String> {
        match &mut self.subject {
            // A bad query was told on the page itself.
            Subject::Listing(query) => jobs_page::render_listing(&self.app, query).ok(),
            Subject::Job { id, revision } => {
                let now = self.app.index.get(id).map(|s| s.revision);
                if now.is_some() && now == *revision {
                    return None;
                }
                let state = lookup::load(&self.app.bus, id).await.ok()?;
                *revision = now;
                job_page::render_live(&state, Utc::now(), self.app.options.allow_actions).ok()
            }
        }
    }
}
