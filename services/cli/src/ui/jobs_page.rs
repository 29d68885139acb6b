//! The jobs page: status chips with exact counts, filters, newest first,
//! paged. Drawn from the index; its listing part is what the live stream
//! re-sends when a job changes.

use askama::Template;
use axum::extract::{Query as QueryParams, State};
use chrono::Utc;

use super::{
    encode, job_href,
    listing::{self, Query},
    problem::{html, PageResult, Problem},
    templates::{Chip, JobRow, JobsForm, JobsListing, JobsPage},
    view::JobView,
    App,
};

/// The time filter's choices.
const SINCE: [(&str, &str); 5] = [
    ("", "any time"),
    ("1h", "last hour"),
    ("24h", "last 24 hours"),
    ("7d", "last 7 days"),
    ("30d", "last 30 days"),
];

pub async fn page(State(app): State<App>, QueryParams(query): QueryParams<Query>) -> PageResult {
    let (listing, error) = match render_listing(&app, &query) {
        Ok(listing) => (listing, None),
        Err(problem) => (String::new(), Some(problem.message)),
    };
    let text = |v: &Option<String>| v.clone().unwrap_or_default();
    html(&JobsPage {
        frame: app.frame("Jobs", "jobs"),
        form: JobsForm {
            q: text(&query.q),
            label: text(&query.label),
            kind: text(&query.kind),
            status: text(&query.status),
        },
        since_options: SINCE
            .iter()
            .map(|(value, name)| {
                (
                    *value,
                    *name,
                    query.since.as_deref().unwrap_or("") == *value,
                )
            })
            .collect(),
        error,
        live_url: format!("/live/jobs{}", query_string(&query)),
        listing,
    })
}

/// The chips, rows and pager of `query`, as HTML.
pub fn render_listing(app: &App, query: &Query) -> Result<String, Problem> {
    let now = Utc::now();
    let selection = query.select(now).map_err(Problem::bad_request)?;
    let fragment = app.index.read(|jobs| {
        let listing = listing::list(jobs.values(), &selection);
        let with_status = |status: Option<&str>| Query {
            status: status.map(str::to_string),
            page: None,
            ..query.clone()
        };
        let at_page = |page: usize| Query {
            page: Some(page),
            ..query.clone()
        };
        let current = query.status.as_deref().filter(|s| !s.is_empty());
        JobsListing {
            all_active: current.is_none(),
            all_href: format!("/{}", query_string(&with_status(None))),
            all_count: listing.chips.iter().map(|(_, n)| n).sum(),
            chips: listing
                .chips
                .iter()
                .map(|(status, count)| Chip {
                    status: status.as_str(),
                    count: *count,
                    href: format!("/{}", query_string(&with_status(Some(status.as_str())))),
                    on: current == Some(status.as_str()),
                })
                .collect(),
            rows: listing
                .rows
                .iter()
                .map(|job| JobRow {
                    view: JobView::of(job, now),
                    href: job_href(&job.id),
                })
                .collect(),
            matching: listing.matching,
            page: listing.page,
            pages: listing.pages,
            prev_href: (listing.page > 1)
                .then(|| format!("/{}", query_string(&at_page(listing.page - 1)))),
            next_href: (listing.page < listing.pages)
                .then(|| format!("/{}", query_string(&at_page(listing.page + 1)))),
        }
    });
    Ok(fragment.render()?)
}

/// `?a=b&…` of the query's set parameters (empty when none is set).
fn query_string(query: &Query) -> String {
    let page = query.page.map(|p| p.to_string());
    let pairs: Vec<String> = [
        ("status", query.status.as_ref()),
        ("label", query.label.as_ref()),
        ("kind", query.kind.as_ref()),
        ("since", query.since.as_ref()),
        ("q", query.q.as_ref()),
        ("page", page.as_ref()),
    ]
    .into_iter()
    .filter_map(|(name, value)| {
        value
            .filter(|v| !v.is_empty())
            .map(|v| format!("{name}={}", encode(v)))
    })
    .collect();
    if pairs.is_empty() {
        String::new()
    } else {
        format!("?{}", pairs.join("&"))
    }
}
