//! The job a user submits. Field names are the public contract (docs/protocol.md);
//! unknown fields are allowed and kept, so newer clients can talk to older
//! services.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{notify::Notify, outcome::OutcomeFilter, reduction::Reduction, status::JobStatus};
use crate::{duration::HumanDuration, rate::RateLimit, target};

/// A job as submitted on `<ns>.jobs.submit`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct JobSpec {
    /// Job id; assigned by jetflow when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// What kind of work this is (free text, used in metrics and listings).
    #[serde(default = "default_kind")]
    pub kind: String,
    /// Where the items come from.
    pub source: SourceSpec,
    /// What runs for each item.
    pub handler: HandlerSpec,
    /// Parameters passed to the handler (the HTTP body by default).
    #[serde(default, skip_serializing_if = "Value::is_null")]
    pub params: Value,
    /// Paging, concurrency and retry settings.
    #[serde(default)]
    pub batch: BatchSettings,
    /// `conservative`, `balanced` or `aggressive`: fills unset batch settings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preset: Option<Preset>,
    /// What a failed item does to the job.
    #[serde(default)]
    pub failure_policy: FailurePolicy,
    /// With `failure_policy: "max_failure_ratio"`: the job fails once more
    /// than this fraction of finished items failed (judged from
    /// [`RATIO_MIN_ITEMS`] finished items on).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_failure_ratio: Option<f64>,
    /// Higher runs first where a stage has a choice.
    #[serde(default)]
    pub priority: i32,
    /// Jobs this one waits for (`after`): it is held `waiting` until each
    /// has ended in one of the statuses it lists, and fails if one ends
    /// otherwise.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub after: Vec<Dependency>,
    /// What the job's item outputs are folded into (`results` in its state).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reduce: Vec<Reduction>,
    /// Where to tell that the job ended (its final event, at least once).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notify: Vec<Notify>,
    /// The job fails if it has not finished within this time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<HumanDuration>,
    /// Free-form tags such as `workflow_id`, `step_id`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// Fields this version does not know; kept as they came.
    #[serde(flatten)]
    pub extra: BTreeMap<String, Value>,
}

fn default_kind() -> String {
    "job".to_string()
}

/// A job another waits for.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Dependency {
    /// Its id.
    pub job: String,
    /// The statuses it may end in for the waiting job to run (default
    /// `["completed"]`).
    #[serde(default = "completed_only")]
    pub on: Vec<JobStatus>,
}

fn completed_only() -> Vec<JobStatus> {
    vec![JobStatus::Completed]
}

/// Where a job's items come from.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum SourceSpec {
    /// An HTTP API paged with a cursor.
    Http(HttpSource),
    /// A list of item ids given inline.
    Ids {
        /// The ids.
        ids: Vec<ItemId>,
    },
    /// Items with data given inline.
    Items {
        /// The items.
        items: Vec<InlineItem>,
    },
    /// Another job's item outcomes, once that job has ended: each item it
    /// ran (of `status`) with the same id, its `output` as data — or, with
    /// `"data": "input"`, the data a failed item ran with.
    Job {
        /// The job whose outcomes are the items.
        job: String,
        /// Which of its items (default: the succeeded ones).
        #[serde(default, skip_serializing_if = "OutcomeFilter::is_default")]
        status: OutcomeFilter,
        /// What becomes each item's data.
        #[serde(default, skip_serializing_if = "JobSourceData::is_default")]
        data: JobSourceData,
    },
    /// A NATS request-reply source (`{cursor, limit}` -> `{items, next_cursor}`).
    Nats {
        /// The subject to request pages on.
        subject: String,
        /// How long to wait for a page.
        #[serde(default = "d_source_timeout")]
        timeout: HumanDuration,
    },
}

impl SourceSpec {
    /// The `type` tag, for messages.
    pub fn type_name(&self) -> &'static str {
        match self {
            SourceSpec::Http(_) => "http",
            SourceSpec::Ids { .. } => "ids",
            SourceSpec::Items { .. } => "items",
            SourceSpec::Job { .. } => "job",
            SourceSpec::Nats { .. } => "nats",
        }
    }
}

/// What a `job` source makes each item's data.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum JobSourceData {
    /// The item's output in the other job.
    #[default]
    Output,
    /// The data a failed item ran with (null for a succeeded one).
    Input,
}

impl JobSourceData {
    fn is_default(&self) -> bool {
        *self == JobSourceData::Output
    }
}

/// An HTTP source: `GET url?<query>&<limit_param>=<n>&<cursor_param>=<c>`,
/// answering a JSON object whose `items_field` lists the page's items and
/// whose `next_cursor_field` is the next cursor (absent, null or "" at the end).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct HttpSource {
    /// The page URL.
    pub url: String,
    /// Fixed query parameters.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub query: BTreeMap<String, Value>,
    /// Extra request headers.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, String>,
    /// Query parameter carrying the cursor.
    #[serde(default = "d_cursor")]
    pub cursor_param: String,
    /// Query parameter carrying the page size.
    #[serde(default = "d_limit")]
    pub limit_param: String,
    /// Field of the answer holding the items.
    #[serde(default = "d_items")]
    pub items_field: String,
    /// Field of an item holding its id.
    #[serde(default = "d_id")]
    pub id_field: String,
    /// Field of the answer holding the next cursor.
    #[serde(default = "d_next")]
    pub next_cursor_field: String,
    /// Timeout of one page request.
    #[serde(default = "d_source_timeout")]
    pub timeout: HumanDuration,
}

fn d_cursor() -> String {
    "cursor".into()
}
fn d_limit() -> String {
    "limit".into()
}
fn d_items() -> String {
    "items".into()
}
fn d_id() -> String {
    "id".into()
}
fn d_next() -> String {
    "next_cursor".into()
}
fn d_source_timeout() -> HumanDuration {
    HumanDuration::from_secs(30)
}

/// An item id as given by a user: a string, or a number we print as one.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(untagged)]
pub enum ItemId {
    /// A string id.
    Text(String),
    /// A numeric id.
    Number(serde_json::Number),
}

impl ItemId {
    /// The id as jetflow uses it everywhere.
    pub fn as_string(&self) -> String {
        match self {
            ItemId::Text(s) => s.clone(),
            ItemId::Number(n) => n.to_string(),
        }
    }
}

/// One inline item of an `items` source.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct InlineItem {
    /// The item id.
    pub id: ItemId,
    /// Data handed to the handler.
    #[serde(default, skip_serializing_if = "Value::is_null")]
    pub data: Value,
    /// Item priority (higher first where a stage has a choice).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<i32>,
}

/// An item as a source may give it: a bare id, or an object with `id`
/// (and `data`, `priority`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(untagged)]
pub enum InlineItemOrId {
    /// Just the id.
    Id(ItemId),
    /// The whole item.
    Item(InlineItem),
}

impl InlineItemOrId {
    /// As an inline item (a bare id has no data).
    pub fn into_item(self) -> InlineItem {
        match self {
            InlineItemOrId::Id(id) => InlineItem {
                id,
                data: Value::Null,
                priority: None,
            },
            InlineItemOrId::Item(item) => item,
        }
    }
}

/// What runs for each item.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum HandlerSpec {
    /// An HTTP call per item.
    Http(HttpHandler),
    /// A NATS request per item to workers in any language.
    Nats(NatsHandler),
    /// Tasks wait on the job's durable consumer; workers in any language
    /// pull them and publish results themselves.
    External(ExternalHandler),
    /// An ordered chain of steps, each seeing the previous one's output.
    Steps {
        /// The steps, in order.
        steps: Vec<Step>,
    },
}

impl HandlerSpec {
    /// The `type` tag, for messages.
    pub fn type_name(&self) -> &'static str {
        match self {
            HandlerSpec::Http(_) => "http",
            HandlerSpec::Nats(_) => "nats",
            HandlerSpec::External(_) => "external",
            HandlerSpec::Steps { .. } => "steps",
        }
    }

    /// The target a one-call handler calls (`None` for `external` and
    /// `steps`, whose steps each have their own).
    pub fn target(&self) -> Option<String> {
        match self {
            HandlerSpec::Http(http) => Some(target::http(&http.url)),
            HandlerSpec::Nats(nats) => Some(target::nats(&nats.subject)),
            HandlerSpec::External(_) | HandlerSpec::Steps { .. } => None,
        }
    }

    /// The rate limit of a one-call handler.
    pub fn rate_limit(&self) -> Option<RateLimit> {
        match self {
            HandlerSpec::Http(http) => http.rate_limit,
            HandlerSpec::Nats(nats) => nats.rate_limit,
            HandlerSpec::External(_) | HandlerSpec::Steps { .. } => None,
        }
    }
}

/// A NATS handler: one request per item on `subject`, served by workers in
/// a queue group; the reply says `{"ok": true, "output": …}` or
/// `{"ok": false, "error": …, "retryable": bool}` (see docs/protocol.md).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct NatsHandler {
    /// Subject the workers serve.
    pub subject: String,
    /// How long to wait for a reply.
    #[serde(default = "d_handler_timeout")]
    pub timeout: HumanDuration,
    /// Requests per period at most, across every migrate instance
    /// (`"50/s"`, `"3000/m"`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_limit: Option<RateLimit>,
}

/// An external handler: workers pull the job's tasks from its durable
/// consumer and publish each item's result on the job's ledger.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ExternalHandler {
    /// How long a worker may hold a task without acking (or sending a
    /// progress ack) before the server redelivers it.
    #[serde(default = "d_handler_timeout")]
    pub ack_wait: HumanDuration,
}

/// One step of a `steps` handler.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Step {
    /// The step's name (recorded with a failure): letters, digits, `_`, `-`.
    pub name: String,
    /// What the step calls: `{"type": "http", …}` or `{"type": "nats", …}`.
    pub call: StepCall,
    /// Retries of a transient failure of this step, in place, before the
    /// item fails; the job's `batch.max_retries` when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_retries: Option<u32>,
    /// First delay between this step's retries (doubling, with jitter);
    /// the job's `batch.retry_backoff` when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_backoff: Option<HumanDuration>,
}

/// What a step calls.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum StepCall {
    /// An HTTP call.
    Http(HttpHandler),
    /// A NATS request.
    Nats(NatsHandler),
}

impl StepCall {
    /// The call's timeout.
    pub fn timeout(&self) -> HumanDuration {
        match self {
            StepCall::Http(http) => http.timeout,
            StepCall::Nats(nats) => nats.timeout,
        }
    }

    /// The target the step calls.
    pub fn target(&self) -> String {
        match self {
            StepCall::Http(http) => target::http(&http.url),
            StepCall::Nats(nats) => target::nats(&nats.subject),
        }
    }

    /// The step's own rate limit.
    pub fn rate_limit(&self) -> Option<RateLimit> {
        match self {
            StepCall::Http(http) => http.rate_limit,
            StepCall::Nats(nats) => nats.rate_limit,
        }
    }
}

/// An HTTP handler: `{id}` in the URL is the percent-encoded item id; the body
/// is `params` unless `body` is given. In `body`, the strings `"$id"`,
/// `"$data"` and `"$params"` are replaced by the item id, the item's data and
/// the job's params.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct HttpHandler {
    /// HTTP method.
    #[serde(default = "d_method")]
    pub method: String,
    /// URL template.
    pub url: String,
    /// Header carrying the idempotency key `<job>:<item>`.
    #[serde(default = "d_idem")]
    pub idempotency_header: String,
    /// Timeout of one call.
    #[serde(default = "d_handler_timeout")]
    pub timeout: HumanDuration,
    /// Extra request headers.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, String>,
    /// Body template; `params` when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<Value>,
    /// 4xx statuses to retry besides 408 and 429.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub retry_on: Vec<u16>,
    /// Calls per period at most, across every migrate instance (`"50/s"`,
    /// `"3000/m"`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_limit: Option<RateLimit>,
}

fn d_method() -> String {
    "POST".into()
}
fn d_idem() -> String {
    "Idempotency-Key".into()
}
fn d_handler_timeout() -> HumanDuration {
    HumanDuration::from_secs(30)
}

/// Paging, concurrency and retry settings. Unset fields come from the preset
/// (`balanced` when none is named); after acceptance every field is set.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct BatchSettings {
    /// Items per page asked of the source.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fetch_size: Option<u32>,
    /// Items in flight at once, across all migrate instances.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub concurrency: Option<u32>,
    /// Retries of a transient failure before the item fails.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_retries: Option<u32>,
    /// Pages fetched but not yet fully reduced, at most.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_inflight_batches: Option<u32>,
    /// First retry delay; doubles per attempt, with jitter.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_backoff: Option<HumanDuration>,
    /// Longest retry delay.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_backoff: Option<HumanDuration>,
    /// Items waiting out a retry that fetch runs ahead of, at most. Such
    /// items wait in the task stream, holding no concurrency slot, and a
    /// batch whose unfinished items all wait does not count against
    /// `max_inflight_batches`; past this many, fetch waits for them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_parked: Option<u32>,
}

/// Resolved settings: every value present.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Settings {
    /// See [`BatchSettings::fetch_size`].
    pub fetch_size: u32,
    /// See [`BatchSettings::concurrency`].
    pub concurrency: u32,
    /// See [`BatchSettings::max_retries`].
    pub max_retries: u32,
    /// See [`BatchSettings::max_inflight_batches`].
    pub max_inflight_batches: u32,
    /// See [`BatchSettings::retry_backoff`].
    pub retry_backoff: std::time::Duration,
    /// See [`BatchSettings::max_backoff`].
    pub max_backoff: std::time::Duration,
    /// See [`BatchSettings::max_parked`].
    pub max_parked: u32,
}

/// Parked items fetch runs ahead of unless told (each is one small stored
/// message in the task stream, nothing in any process's memory).
pub const DEFAULT_MAX_PARKED: u32 = 10_000;

/// Named bundles of settings: migration strategies from careful to fast.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum Preset {
    /// Small pages, few in flight, more retries: for critical migrations.
    Conservative,
    /// The defaults.
    #[default]
    Balanced,
    /// Bigger pages, more in flight, fewer retries: for dev and test.
    Aggressive,
}

impl Preset {
    /// The settings this preset stands for.
    pub fn settings(self) -> Settings {
        use std::time::Duration as D;
        match self {
            Preset::Conservative => Settings {
                fetch_size: 25,
                concurrency: 5,
                max_retries: 5,
                max_inflight_batches: 2,
                retry_backoff: D::from_secs(2),
                max_backoff: D::from_secs(120),
                max_parked: DEFAULT_MAX_PARKED,
            },
            Preset::Balanced => Settings {
                fetch_size: 50,
                concurrency: 10,
                max_retries: 3,
                max_inflight_batches: 4,
                retry_backoff: D::from_secs(1),
                max_backoff: D::from_secs(60),
                max_parked: DEFAULT_MAX_PARKED,
            },
            Preset::Aggressive => Settings {
                fetch_size: 50,
                concurrency: 50,
                max_retries: 1,
                max_inflight_batches: 16,
                retry_backoff: D::from_millis(250),
                max_backoff: D::from_secs(10),
                max_parked: DEFAULT_MAX_PARKED,
            },
        }
    }
}

/// What a failed item does to the job.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum FailurePolicy {
    /// Keep going; the job ends `partial` if any item failed.
    #[default]
    Continue,
    /// The first failed item fails the job.
    FailFast,
    /// The job fails when the share of failed items passes `max_failure_ratio`.
    MaxFailureRatio,
}

/// Finished items needed before `max_failure_ratio` is judged, so that the
/// first failure of a job does not make a ratio of 100%.
pub const RATIO_MIN_ITEMS: u64 = 20;

impl JobSpec {
    /// The de-duplication id a submission of job `id` is published under:
    /// the job id itself, so a submission repeated within the duplicate
    /// window is stored once.
    pub fn submission_msg_id(id: &str) -> String {
        id.to_string()
    }

    /// How long one handler call may take (for `steps`, the longest step;
    /// for `external`, how long a worker may hold a task).
    pub fn handler_timeout(&self) -> Option<HumanDuration> {
        match &self.handler {
            HandlerSpec::Http(http) => Some(http.timeout),
            HandlerSpec::Nats(nats) => Some(nats.timeout),
            HandlerSpec::External(external) => Some(external.ack_wait),
            HandlerSpec::Steps { steps } => steps.iter().map(|s| s.call.timeout()).max(),
        }
    }

    /// The resolved settings: explicit fields over the preset's.
    pub fn settings(&self) -> Settings {
        let p = self.preset.unwrap_or_default().settings();
        let b = &self.batch;
        Settings {
            fetch_size: b.fetch_size.unwrap_or(p.fetch_size),
            concurrency: b.concurrency.unwrap_or(p.concurrency),
            max_retries: b.max_retries.unwrap_or(p.max_retries),
            max_inflight_batches: b.max_inflight_batches.unwrap_or(p.max_inflight_batches),
            retry_backoff: b.retry_backoff.map(|d| d.get()).unwrap_or(p.retry_backoff),
            max_backoff: b.max_backoff.map(|d| d.get()).unwrap_or(p.max_backoff),
            max_parked: b.max_parked.unwrap_or(p.max_parked),
        }
    }

    /// Writes the resolved settings back into `batch`, so the stored spec says
    /// exactly what runs.
    pub fn fill_settings(&mut self) {
        let s = self.settings();
        self.batch = BatchSettings {
            fetch_size: Some(s.fetch_size),
            concurrency: Some(s.concurrency),
            max_retries: Some(s.max_retries),
            max_inflight_batches: Some(s.max_inflight_batches),
            retry_backoff: Some(HumanDuration(s.retry_backoff)),
            max_backoff: Some(HumanDuration(s.max_backoff)),
            max_parked: Some(s.max_parked),
        };
    }

    /// The number of items given inline, if the source is inline.
    pub fn inline_len(&self) -> Option<usize> {
        match &self.source {
            SourceSpec::Ids { ids } => Some(ids.len()),
            SourceSpec::Items { items } => Some(items.len()),
            _ => None,
        }
    }

    /// A copy without the inline item list — what job state carries, so a
    /// state update does not rewrite megabytes of items. The full spec stays
    /// in the specs bucket.
    pub fn summary(&self) -> JobSpec {
        let mut s = self.clone();
        match &mut s.source {
            SourceSpec::Ids { ids } => ids.clear(),
            SourceSpec::Items { items } => items.clear(),
            _ => {}
        }
        s
    }
}
