//! The pages' templates (in `services/cli/templates/`, compiled into the
//! binary by askama, which escapes every value drawn into HTML) and the
//! values each is drawn from. Values are formatted before they get here,
//! so templates only place text.

use askama::Template;

use super::view::JobView;

/// What every page's frame shows.
pub struct Frame {
    pub title: String,
    pub nav: &'static str,
    pub namespace: String,
    pub actions: bool,
    pub flash: Option<String>,
}

macro_rules! framed {
    ($name:ident) => {
        impl std::ops::Deref for $name {
            type Target = Frame;
            fn deref(&self) -> &Frame {
                &self.frame
            }
        }
    };
}

#[derive(Template)]
#[template(path = "jobs.html")]
pub struct JobsPage {
    pub frame: Frame,
    pub form: JobsForm,
    pub since_options: Vec<(&'static str, &'static str, bool)>,
    pub error: Option<String>,
    pub live_url: String,
    pub listing: String,
}
framed!(JobsPage);

/// The jobs filter form, as the query gave it.
#[derive(Default)]
pub struct JobsForm {
    pub q: String,
    pub label: String,
    pub kind: String,
    pub status: String,
}

#[derive(Template)]
#[template(path = "jobs_listing.html")]
pub struct JobsListing {
    pub all_active: bool,
    pub all_href: String,
    pub all_count: usize,
    pub chips: Vec<Chip>,
    pub rows: Vec<JobRow>,
    pub matching: usize,
    pub page: usize,
    pub pages: usize,
    pub prev_href: Option<String>,
    pub next_href: Option<String>,
}

pub struct Chip {
    pub status: &'static str,
    pub count: usize,
    pub href: String,
    pub on: bool,
}

pub struct JobRow {
    pub view: JobView,
    pub href: String,
}

#[derive(Template)]
#[template(path = "job.html")]
pub struct JobPage {
    pub frame: Frame,
    pub job: JobView,
    pub trace: Option<Trace>,
    pub live_url: String,
    pub live: String,
    pub batches: u64,
    pub batches_url: String,
    pub active: bool,
    pub inflight_url: String,
    pub self_url: String,
    pub item_query: String,
    pub item_outcome: Option<String>,
    pub results_url: String,
    pub events: Vec<EventRow>,
    pub letters: Vec<LetterRow>,
    pub letters_count: usize,
    pub dlq_url: String,
    pub spec: String,
}
framed!(JobPage);

pub struct Trace {
    pub id: String,
    pub href: Option<String>,
}

pub struct ActionLink {
    pub name: &'static str,
    pub label: &'static str,
    pub href: String,
    pub danger: bool,
}

pub struct EventRow {
    pub at: String,
    pub kind: &'static str,
    pub detail: String,
}

#[derive(Template)]
#[template(path = "job_live.html")]
pub struct JobLive {
    pub job: JobView,
    /// The actions that apply now (none when actions are off).
    pub job_actions: Vec<ActionLink>,
    pub reason: Option<String>,
    pub paused: Option<String>,
    pub retries: u64,
    pub parked: u64,
    pub dead_lettered: u64,
    pub batches: u64,
    pub batches_done: u64,
    pub settings: Vec<(&'static str, String)>,
    pub groups: Vec<ErrorRow>,
    pub other: u64,
    pub error_total: u64,
    pub results: Vec<(String, String)>,
}

pub struct ErrorRow {
    pub count: u64,
    pub error: String,
    pub example: String,
    /// Sample items with the link to each one's outcome.
    pub items: Vec<(String, String)>,
}

pub struct LetterRow {
    pub seq: u64,
    pub time: String,
    pub stage: String,
    pub job: String,
    pub job_href: String,
    pub item: String,
    pub attempts: String,
    pub error: String,
    pub detail: String,
}

#[derive(Template)]
#[template(path = "inflight.html")]
pub struct InFlight {
    pub count: usize,
    pub rows: Vec<InFlightRow>,
    pub more: usize,
}

pub struct InFlightRow {
    pub stage: String,
    pub instance: String,
    pub what: String,
    pub since: String,
}

#[derive(Template)]
#[template(path = "workers.html")]
pub struct WorkersPage {
    pub frame: Frame,
    pub rows: Vec<WorkerRow>,
}
framed!(WorkersPage);

pub struct WorkerRow {
    pub stage: String,
    pub instance: String,
    pub up: String,
    pub jobs: Vec<(String, String)>,
    pub in_flight: usize,
    pub counters: String,
    pub details: Vec<String>,
}

#[derive(Template)]
#[template(path = "dlq.html")]
pub struct DlqPage {
    pub frame: Frame,
    pub form: DlqForm,
    pub stage_options: Vec<(&'static str, &'static str, bool)>,
    pub error: Option<String>,
    pub letters: Vec<LetterRow>,
    pub letters_count: usize,
    pub replay_href: String,
    pub purge_href: String,
}
framed!(DlqPage);

#[derive(Default)]
pub struct DlqForm {
    pub job: String,
    pub stage: String,
    pub error: String,
}

#[derive(Template)]
#[template(path = "health.html")]
pub struct HealthPage {
    pub frame: Frame,
    pub healthy: bool,
    pub problems: Vec<String>,
    pub report: String,
}
framed!(HealthPage);

#[derive(Template)]
#[template(path = "confirm.html")]
pub struct ConfirmPage {
    pub frame: Frame,
    pub heading: String,
    pub affects: Vec<String>,
    pub post_url: String,
    pub csrf: String,
    pub hidden: Vec<(&'static str, String)>,
    pub fields: Vec<Field>,
    pub button: &'static str,
    pub danger: bool,
    pub back_url: String,
}
framed!(ConfirmPage);

pub struct Field {
    pub name: &'static str,
    pub label: &'static str,
    pub value: String,
    pub placeholder: &'static str,
}

#[derive(Template)]
#[template(path = "preview.html")]
pub struct PreviewPage {
    pub frame: Frame,
    pub csrf: String,
    pub job_text: String,
    pub pages: u32,
    pub max_pages: u32,
    pub warnings: Vec<String>,
    pub error: Option<String>,
    pub report: Option<String>,
    /// The previewed job's id and the document to submit, once a preview
    /// has run.
    pub submit: Option<(String, String)>,
}
framed!(PreviewPage);

#[derive(Template)]
#[template(path = "error.html")]
pub struct ErrorPage {
    pub frame: Frame,
    pub heading: String,
    pub message: String,
}
framed!(ErrorPage);
