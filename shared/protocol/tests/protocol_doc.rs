//! `docs/asyncapi.json` describes jetflow's wire protocol for machines (and
//! `docs/protocol.md` for people). This test fails when a wire type and the
//! document disagree, whichever side changed:
//!
//! - every example of a documented type reads as the Rust type (a renamed
//!   or retyped required field in the doc fails);
//! - a fully populated Rust value of each type (every `Option` set, every
//!   `Vec` non-empty, every enum variant somewhere) writes only properties
//!   the schema lists, with the JSON types it says, recursively (a field
//!   renamed or added in Rust fails);
//! - every property a schema requires is written by Rust, and removing it
//!   from a Rust value makes the value unreadable — while removing any
//!   property the schema does not require leaves it readable (`required`
//!   is exactly serde's: no `#[serde(default)]`, not an `Option`);
//! - every property a schema lists is written by some Rust value, and every
//!   component schema that describes a Rust type is reached (a property
//!   renamed or added in the doc alone fails);
//! - enums list exactly Rust's variants; channel addresses and the
//!   examples' subjects, consumer names and de-duplication ids are what
//!   `names.rs` makes.
//!
//! `node tools/asyncapi/validate.mjs` checks the same document against the
//! AsyncAPI specification and its examples against its schemas.
//!
//! A new field or variant on the Rust side stops this file compiling (the
//! samples are struct literals and the variant lists exhaustive matches):
//! add it to the sample, then to the doc.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Duration as ChronoDuration, TimeZone, Utc};
use jetflow_protocol::{
    duration::HumanDuration,
    headers,
    job::{
        reduction::Results, spec::JobSourceData, BatchRecord, BatchSettings, BatchStatus,
        ConfigChange, Dependency, ErrorGroup, ErrorGroups, ErrorSample, ExternalHandler,
        FailurePolicy, FetchCheckpoint, HandlerSpec, HttpHandler, HttpSource, InlineItem,
        InlineItemOrId, ItemId, ItemOutcome, ItemStatus, JobSpec, JobState, JobStatus, NatsHandler,
        Notify, OpenBatch, OutcomeFilter, Preset, PreviousOutcome, ReduceOp, Reduced, Reduction,
        SourceSpec, Step, StepCall,
    },
    messages::{
        BatchMessage, CancelRequest, EventKind, HandlerReply, HandlerRequest, Item, ItemResult,
        JobEvent, LedgerEntry, Notification, PageReply, PageRequest, PauseRequest, ReduceReply,
        ReduceRequest, ResumeRequest, StepOutput, StepResume, TaskMessage, TaskQueue,
    },
    names::item_key,
    status::{JobWork, StatusReport, Work},
    Names, Stage,
};
use serde::{de::DeserializeOwned, Serialize};
use serde_json::{json, Value};

// ---------------------------------------------------------------------------
// The document

const SCHEMAS: &str = "#/components/schemas/";

/// Component schemas that describe no Rust type of this crate: scalars
/// checked where they are used, headers, KV values that are not JSON, and
/// the NATS micro protocol's own replies.
const NOT_RUST_TYPES: &[&str] = &[
    "SubmitHeaders",
    "JsonHeaders",
    "BatchHeaders",
    "TaskHeaders",
    "LedgerHeaders",
    "EventHeaders",
    "DeadLetterHeaders",
    "HandlerRequestHeaders",
    "KvHeaders",
    "MicroPingResponse",
    "MicroEndpointStats",
    "MicroStatsResponse",
];

/// Properties a schema may list that no Rust value writes (aliases, or
/// fields only other writers set), as `(schema pointer, property)`.
const NEVER_WRITTEN: &[(&str, &str)] = &[];

#[derive(Clone)]
struct Doc {
    root: Value,
}

impl Doc {
    fn load() -> Self {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/asyncapi.json");
        let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path}: {e}"));
        let root = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"));
        Doc { root }
    }

    fn get(&self, pointer: &str) -> &Value {
        let inner = pointer.strip_prefix('#').unwrap_or(pointer);
        self.root
            .pointer(inner)
            .unwrap_or_else(|| panic!("docs/asyncapi.json has nothing at {pointer}"))
    }

    /// Follows `$ref`s: the schema and where it is.
    fn resolve<'a>(&'a self, schema: &'a Value, pointer: &str) -> (&'a Value, String) {
        let (mut schema, mut pointer) = (schema, pointer.to_string());
        while let Some(target) = schema.get("$ref").and_then(Value::as_str) {
            pointer = target.to_string();
            schema = self.get(target);
        }
        (schema, pointer)
    }

    fn schema_pointer(name: &str) -> String {
        format!("{SCHEMAS}{name}")
    }

    /// Every example payload of schema `name`: the schema's own `examples`
    /// and those of every message whose payload is that schema.
    fn examples(&self, name: &str) -> Vec<(String, Value)> {
        let pointer = Self::schema_pointer(name);
        let mut found = Vec::new();
        if let Some(own) = self.get(&pointer).get("examples").and_then(Value::as_array) {
            for (i, example) in own.iter().enumerate() {
                found.push((format!("{pointer}/examples/{i}"), example.clone()));
            }
        }
        let messages = self.root["components"]["messages"]
            .as_object()
            .expect("components.messages");
        for (id, message) in messages {
            if message["payload"].get("$ref").and_then(Value::as_str) != Some(pointer.as_str()) {
                continue;
            }
            for example in message["examples"].as_array().into_iter().flatten() {
                let label = format!(
                    "message {id} example {}",
                    example["name"].as_str().unwrap_or("?")
                );
                if let Some(payload) = example.get("payload") {
                    found.push((label, payload.clone()));
                }
            }
        }
        found
    }

    /// The `type` tags of a tagged union's branches.
    fn tags(&self, name: &str) -> BTreeSet<String> {
        let pointer = Self::schema_pointer(name);
        let (schema, _) = self.resolve(self.get(&pointer), &pointer);
        let branches = schema["oneOf"].as_array().expect("a oneOf");
        branches
            .iter()
            .map(|b| {
                let (b, at) = self.resolve(b, &pointer);
                b["properties"]["type"]["const"]
                    .as_str()
                    .unwrap_or_else(|| panic!("{at} has no `type` const"))
                    .to_string()
            })
            .collect()
    }

    fn enum_values(&self, name: &str) -> BTreeSet<String> {
        let schema = self.get(&Self::schema_pointer(name));
        schema["enum"]
            .as_array()
            .unwrap_or_else(|| panic!("{name} has no enum"))
            .iter()
            .map(|v| v.as_str().expect("string enum").to_string())
            .collect()
    }
}

fn escape(token: &str) -> String {
    token.replace('~', "~0").replace('/', "~1")
}

fn kind_of(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// Whether `value` has one of the JSON types `schema` allows (any, when it
/// names none).
fn type_fits(value: &Value, schema: &Value) -> bool {
    let kind = kind_of(value);
    let allowed: Vec<&str> = match &schema["type"] {
        Value::String(t) => vec![t.as_str()],
        Value::Array(ts) => ts.iter().filter_map(Value::as_str).collect(),
        _ => return true,
    };
    allowed
        .iter()
        .any(|t| *t == kind || (*t == "number" && kind == "integer"))
}

fn value_fits(value: &Value, schema: &Value) -> bool {
    if let Some(c) = schema.get("const") {
        if c != value {
            return false;
        }
    }
    if let Some(options) = schema.get("enum").and_then(Value::as_array) {
        if !options.contains(value) {
            return false;
        }
    }
    true
}

// ---------------------------------------------------------------------------
// The checker

/// One property a Rust value wrote, for the removal check.
struct Written {
    /// JSON pointer of the object holding it, inside the value.
    object: String,
    key: String,
    required: bool,
    schema: String,
    path: String,
}

struct Checker<'d> {
    doc: &'d Doc,
    errors: Vec<String>,
    /// Schema pointer -> properties some Rust value wrote there.
    written: BTreeMap<String, BTreeSet<String>>,
    /// Whether what is walked counts toward coverage (Rust values do,
    /// examples do not).
    record: bool,
}

impl<'d> Checker<'d> {
    fn new(doc: &'d Doc) -> Self {
        Checker {
            doc,
            errors: Vec::new(),
            written: BTreeMap::new(),
            record: true,
        }
    }

    /// The branches of a `oneOf`/`anyOf` that `value` fits.
    fn branches(&self, value: &Value, schema: &Value, pointer: &str) -> Vec<(Value, String)> {
        let list = schema
            .get("oneOf")
            .or_else(|| schema.get("anyOf"))
            .and_then(Value::as_array);
        let Some(list) = list else {
            return vec![(schema.clone(), pointer.to_string())];
        };
        let mut fits = Vec::new();
        for (i, branch) in list.iter().enumerate() {
            let key = if schema.get("oneOf").is_some() {
                "oneOf"
            } else {
                "anyOf"
            };
            let (branch, at) = self.doc.resolve(branch, &format!("{pointer}/{key}/{i}"));
            for (leaf, leaf_at) in self.branches(value, branch, &at) {
                if !type_fits(value, &leaf) || !value_fits(value, &leaf) {
                    continue;
                }
                let tag = leaf["properties"]["type"].get("const");
                if let (Some(tag), Value::Object(object)) = (tag, value) {
                    if object.get("type") != Some(tag) {
                        continue;
                    }
                }
                fits.push((leaf, leaf_at));
            }
        }
        fits
    }

    /// Checks `value` (found at `path`, JSON pointer `at` in its root)
    /// against `schema` (at `pointer`); returns the properties it wrote.
    fn walk(
        &mut self,
        value: &Value,
        schema: &Value,
        pointer: &str,
        path: &str,
        at: &str,
        written: &mut Vec<Written>,
    ) {
        let (schema, pointer) = self.doc.resolve(schema, pointer);
        if schema.get("oneOf").is_some() || schema.get("anyOf").is_some() {
            if self.record {
                self.written.entry(pointer.clone()).or_default();
            }
            let fits = self.branches(value, schema, &pointer);
            match fits.as_slice() {
                [(branch, branch_at)] => {
                    let (branch, branch_at) = (branch.clone(), branch_at.clone());
                    self.walk(value, &branch, &branch_at, path, at, written);
                }
                [] => self.errors.push(format!(
                    "{path}: no branch of {pointer} fits what is there: {}",
                    short(value)
                )),
                _ => self.errors.push(format!(
                    "{path}: several branches of {pointer} fit what is there: {}",
                    short(value)
                )),
            }
            return;
        }
        if !type_fits(value, schema) {
            self.errors.push(format!(
                "{path}: {} {}, but {pointer} says type {}",
                kind_of(value),
                short(value),
                schema["type"]
            ));
            return;
        }
        if !value_fits(value, schema) {
            self.errors.push(format!(
                "{path}: {} is not one of the values {pointer} allows",
                short(value)
            ));
        }
        match value {
            Value::Object(object) => {
                let properties = schema.get("properties").and_then(Value::as_object);
                let additional = schema.get("additionalProperties").filter(|a| a.is_object());
                if let Some(properties) = properties {
                    if self.record {
                        let seen = self.written.entry(pointer.clone()).or_default();
                        seen.extend(
                            object
                                .keys()
                                .filter(|k| properties.contains_key(*k))
                                .cloned(),
                        );
                    }
                    let required: BTreeSet<&str> = schema["required"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter_map(Value::as_str)
                        .collect();
                    for name in &required {
                        if !object.contains_key(*name) {
                            self.errors.push(format!(
                                "{path}: {pointer} requires `{name}`, which is not there"
                            ));
                        }
                    }
                    for (key, inner) in object {
                        let inner_path = format!("{path}.{key}");
                        let inner_at = format!("{at}/{}", escape(key));
                        if let Some(property) = properties.get(key) {
                            written.push(Written {
                                object: at.to_string(),
                                key: key.clone(),
                                required: required.contains(key.as_str()),
                                schema: pointer.clone(),
                                path: inner_path.clone(),
                            });
                            let property_at = format!("{pointer}/properties/{}", escape(key));
                            self.walk(
                                inner,
                                property,
                                &property_at,
                                &inner_path,
                                &inner_at,
                                written,
                            );
                        } else {
                            self.errors.push(format!(
                                "{inner_path}: `{key}` is written, but {pointer} has no such property"
                            ));
                        }
                    }
                } else if let Some(additional) = additional {
                    if self.record {
                        self.written.entry(pointer.clone()).or_default();
                    }
                    let additional_at = format!("{pointer}/additionalProperties");
                    for (key, inner) in object {
                        let inner_path = format!("{path}[{key:?}]");
                        let inner_at = format!("{at}/{}", escape(key));
                        self.walk(
                            inner,
                            additional,
                            &additional_at,
                            &inner_path,
                            &inner_at,
                            written,
                        );
                    }
                }
            }
            Value::Array(elements) => {
                if let Some(items) = schema.get("items") {
                    let items_at = format!("{pointer}/items");
                    for (i, inner) in elements.iter().enumerate() {
                        self.walk(
                            inner,
                            items,
                            &items_at,
                            &format!("{path}[{i}]"),
                            &format!("{at}/{i}"),
                            written,
                        );
                    }
                }
            }
            _ => {}
        }
    }

    /// Every property a visited schema lists must have been written by
    /// some Rust value; every component schema of a Rust type visited.
    fn coverage(&mut self) {
        for (pointer, seen) in &self.written {
            let schema = self.doc.get(pointer);
            let Some(properties) = schema.get("properties").and_then(Value::as_object) else {
                continue;
            };
            for name in properties.keys() {
                let excused = NEVER_WRITTEN.contains(&(pointer.as_str(), name.as_str()));
                if !seen.contains(name) && !excused {
                    self.errors.push(format!(
                        "{pointer} lists `{name}`, which no Rust value writes"
                    ));
                }
            }
        }
        let schemas = self.doc.root["components"]["schemas"]
            .as_object()
            .expect("components.schemas");
        for (name, schema) in schemas {
            let structured = schema.get("properties").is_some() || schema.get("oneOf").is_some();
            let pointer = Doc::schema_pointer(name);
            if structured
                && !NOT_RUST_TYPES.contains(&name.as_str())
                && !self.written.contains_key(&pointer)
            {
                self.errors.push(format!(
                    "{pointer} describes no Rust value this test writes: a type the doc has and Rust does not?"
                ));
            }
        }
    }
}

fn short(value: &Value) -> String {
    let text = value.to_string();
    match text.char_indices().nth(120) {
        Some((cut, _)) => format!("{}...", &text[..cut]),
        None => text,
    }
}

// ---------------------------------------------------------------------------
// Cases: a documented type, its schema, and fully populated Rust values

type Reader = Box<dyn Fn(&Value) -> Result<(), String>>;

struct Case {
    /// The Rust type.
    name: &'static str,
    /// Its component schema.
    schema: &'static str,
    samples: Vec<Value>,
    read: Reader,
}

fn case<T: Serialize + DeserializeOwned + 'static>(
    name: &'static str,
    schema: &'static str,
    samples: Vec<T>,
) -> Case {
    Case {
        name,
        schema,
        samples: samples
            .iter()
            .map(|s| serde_json::to_value(s).expect("wire types serialize"))
            .collect(),
        read: Box::new(|value: &Value| {
            serde_json::from_value::<T>(value.clone())
                .map(|_| ())
                .map_err(|e| e.to_string())
        }),
    }
}

fn t(seconds: i64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2025, 6, 1, 9, 30, 0).unwrap()
        + ChronoDuration::milliseconds(seconds * 1000 + 412)
}

fn d(text: &str) -> HumanDuration {
    text.parse().expect("a duration")
}

fn item() -> Item {
    Item {
        id: "agent-00007".into(),
        data: json!({"name": "Ada"}),
        priority: Some(2),
    }
}

fn inline_item() -> InlineItem {
    InlineItem {
        id: ItemId::Text("agent-1".into()),
        data: json!({"org": "org-123"}),
        priority: Some(5),
    }
}

fn http_handler() -> HttpHandler {
    HttpHandler {
        method: "PUT".into(),
        url: "http://127.0.0.1:8080/agents/{id}/migrate".into(),
        idempotency_header: "X-Idempotency-Key".into(),
        timeout: d("10s"),
        headers: BTreeMap::from([("Authorization".into(), "Bearer t".into())]),
        body: Some(json!({"agent": "$id", "data": "$data", "params": "$params"})),
        retry_on: vec![409, 423],
        rate_limit: Some("100/s".parse().expect("a rate")),
    }
}

fn nats_handler() -> NatsHandler {
    NatsHandler {
        subject: "agents.migrate".into(),
        timeout: d("30s"),
        rate_limit: Some("3000/m".parse().expect("a rate")),
    }
}

fn batch_settings() -> BatchSettings {
    BatchSettings {
        fetch_size: Some(50),
        concurrency: Some(10),
        max_retries: Some(3),
        max_inflight_batches: Some(4),
        retry_backoff: Some(d("1s")),
        max_backoff: Some(d("1m")),
        max_parked: Some(10_000),
    }
}

fn job_spec(source: SourceSpec, handler: HandlerSpec) -> JobSpec {
    JobSpec {
        id: Some("migrate-v2-0001".into()),
        kind: "migrate-agents".into(),
        source,
        handler,
        params: json!({"template": "my-template:v2"}),
        batch: batch_settings(),
        preset: Some(Preset::Conservative),
        failure_policy: FailurePolicy::MaxFailureRatio,
        max_failure_ratio: Some(0.1),
        priority: 5,
        after: vec![Dependency {
            job: "export-v1-0001".into(),
            on: vec![JobStatus::Completed, JobStatus::Partial],
        }],
        reduce: reductions(),
        notify: notifications(),
        timeout: Some(d("2h")),
        labels: BTreeMap::from([("workflow_id".into(), "wf-9".into())]),
        // Unknown fields are kept as they came; the doc allows them
        // (additionalProperties) and lists none.
        extra: BTreeMap::new(),
    }
}

fn notifications() -> Vec<Notify> {
    vec![
        Notify {
            url: Some("https://hooks.example.com/jobs".into()),
            subject: None,
            on: vec![JobStatus::Partial, JobStatus::Failed],
        },
        Notify {
            url: None,
            subject: Some("ops.jobs".into()),
            on: vec![JobStatus::Completed],
        },
    ]
}

/// Every op somewhere, every field set somewhere.
fn reductions() -> Vec<Reduction> {
    let plain = |name: &str, op, path: &str| Reduction {
        name: name.into(),
        op,
        path: Some(path.parse().expect("a path")),
        on: OutcomeFilter::Succeeded,
        limit: None,
        subject: None,
        timeout: None,
        init: Value::Null,
    };
    let mut all: Vec<Reduction> = reduce_ops()
        .into_iter()
        .filter(|op| !matches!(op, ReduceOp::CountBy | ReduceOp::Nats))
        .map(|op| plain(op.as_str(), op, "output.memories"))
        .collect();
    all.push(Reduction {
        on: OutcomeFilter::Failed,
        limit: Some(20),
        ..plain("errors", ReduceOp::CountBy, "error")
    });
    all.push(Reduction {
        on: OutcomeFilter::Any,
        subject: Some("reducers.words".into()),
        timeout: Some(d("5s")),
        init: json!({"n": 0}),
        ..plain("mine", ReduceOp::Nats, "output.words")
    });
    all
}

fn reduce_ops() -> Vec<ReduceOp> {
    use ReduceOp as R;
    let ops = vec![
        R::Sum,
        R::Min,
        R::Max,
        R::Avg,
        R::Count,
        R::CountBy,
        R::Collect,
        R::Distinct,
        R::Nats,
    ];
    for op in &ops {
        match op {
            R::Sum
            | R::Min
            | R::Max
            | R::Avg
            | R::Count
            | R::CountBy
            | R::Collect
            | R::Distinct
            | R::Nats => {}
        }
    }
    ops
}

fn results() -> Results {
    let reduced = |op, value| Reduced {
        op,
        value,
        values: 4,
        skipped_values: 0,
        sum: None,
        other: 0,
        error: None,
    };
    Results::from([
        (
            "avg".to_string(),
            Reduced {
                sum: Some(10.0),
                skipped_values: 1,
                ..reduced(ReduceOp::Avg, json!(2.5))
            },
        ),
        (
            "errors".to_string(),
            Reduced {
                other: 3,
                ..reduced(ReduceOp::CountBy, json!({"HTTP 422": 1}))
            },
        ),
        (
            "mine".to_string(),
            Reduced {
                error: Some("outputs must be objects".into()),
                ..reduced(ReduceOp::Nats, json!({"n": 3}))
            },
        ),
    ])
}

/// One job per source and per handler kind.
fn job_specs() -> Vec<JobSpec> {
    let sources = vec![
        SourceSpec::Http(HttpSource {
            url: "http://127.0.0.1:8080/agents".into(),
            query: BTreeMap::from([("organizationId".into(), json!("org-123"))]),
            headers: BTreeMap::from([("Authorization".into(), "Bearer t".into())]),
            cursor_param: "cursor".into(),
            limit_param: "limit".into(),
            items_field: "agents".into(),
            id_field: "id".into(),
            next_cursor_field: "nextCursor".into(),
            timeout: d("30s"),
        }),
        SourceSpec::Ids {
            ids: vec![ItemId::Text("agent-1".into()), ItemId::Number(2.into())],
        },
        SourceSpec::Items {
            items: vec![inline_item()],
        },
        SourceSpec::Nats {
            subject: "agents.pages".into(),
            timeout: d("5s"),
        },
    ];
    let handlers = vec![
        HandlerSpec::Http(http_handler()),
        HandlerSpec::Nats(nats_handler()),
        HandlerSpec::External(ExternalHandler { ack_wait: d("30s") }),
        HandlerSpec::Steps {
            steps: vec![
                Step {
                    name: "ensure-thread".into(),
                    call: StepCall::Nats(nats_handler()),
                    max_retries: Some(2),
                    retry_backoff: Some(d("500ms")),
                },
                Step {
                    name: "execute".into(),
                    call: StepCall::Http(http_handler()),
                    max_retries: Some(1),
                    retry_backoff: Some(d("1s")),
                },
            ],
        },
    ];
    let mut specs: Vec<JobSpec> = sources
        .into_iter()
        .zip(handlers)
        .map(|(source, handler)| job_spec(source, handler))
        .collect();
    // A fifth source: another job's outcomes.
    let over_a_job = SourceSpec::Job {
        job: "migrate-v1-0001".into(),
        status: OutcomeFilter::Failed,
        data: JobSourceData::Input,
    };
    specs.push(job_spec(over_a_job, HandlerSpec::Nats(nats_handler())));
    specs
}

fn tasks() -> TaskQueue {
    TaskQueue::of(&Names::default(), "migrate-v2-0001")
}

fn item_result() -> ItemResult {
    ItemResult {
        batch: 3,
        id: "agent-00007".into(),
        status: ItemStatus::Failed,
        error: Some("step execute: HTTP 422".into()),
        output: json!({"partial": true}),
        input: json!({"name": "Ada"}),
        failed_step: Some("execute".into()),
        messages: vec![StepOutput {
            step: "ensure-thread".into(),
            output: json!({"thread": "t-1"}),
        }],
        attempts: 2,
        dead_lettered: true,
        replay: true,
        parked: true,
        duration_ms: 120,
        finished_at: t(5),
    }
}

fn final_event() -> JobEvent {
    JobEvent {
        job: "migrate-v2-0001".into(),
        event: EventKind::Partial,
        at: t(193),
        reason: None,
        batch: None,
        total: Some(10_000),
        succeeded: Some(9_997),
        failed: Some(3),
        tasks: None,
        results: Results::new(),
    }
}

fn config_change() -> ConfigChange {
    ConfigChange {
        concurrency: Some(20),
        max_retries: Some(5),
        handler_timeout: Some(d("10s")),
        rate_limit: Some("20/s".parse().expect("a rate")),
    }
}

/// Every ledger entry kind.
fn ledger_entries() -> Vec<LedgerEntry> {
    let all = vec![
        LedgerEntry::Started { at: t(0) },
        LedgerEntry::Fetched {
            batch: 3,
            size: 50,
            at: t(1),
        },
        LedgerEntry::FetchDone {
            batches: 200,
            total: 10_000,
            at: t(2),
        },
        LedgerEntry::FetchFailed {
            error: "HTTP 400".into(),
            at: t(2),
        },
        LedgerEntry::Dispatched { batch: 3, at: t(1) },
        LedgerEntry::Duplicates {
            batch: 4,
            items: vec!["agent-00151".into()],
            at: t(1),
        },
        LedgerEntry::Item(item_result()),
        LedgerEntry::Items {
            results: vec![item_result(), item_result()],
        },
        LedgerEntry::Cancel {
            reason: Some("operator asked".into()),
            at: t(3),
        },
        LedgerEntry::Config {
            change: config_change(),
            at: t(3),
        },
        LedgerEntry::TimedOut { at: t(4) },
        LedgerEntry::Replayed {
            items: vec!["agent-00412".into()],
            at: t(4),
        },
        LedgerEntry::Parked {
            batch: 3,
            id: "agent-00413".into(),
            first: true,
            until: t(6),
            error: "HTTP 503".into(),
        },
        LedgerEntry::Paused {
            until: Some(t(7)),
            reason: Some("api maintenance".into()),
            at: t(5),
        },
        LedgerEntry::Resumed {
            reason: Some("pause ended".into()),
            at: t(7),
        },
        LedgerEntry::Drained { at: t(5) },
    ];
    // A new kind of entry fails to compile here: add a sample above and a
    // branch to the doc's LedgerEntry.
    for entry in &all {
        match entry {
            LedgerEntry::Started { .. }
            | LedgerEntry::Fetched { .. }
            | LedgerEntry::FetchDone { .. }
            | LedgerEntry::FetchFailed { .. }
            | LedgerEntry::Dispatched { .. }
            | LedgerEntry::Duplicates { .. }
            | LedgerEntry::Item(_)
            | LedgerEntry::Items { .. }
            | LedgerEntry::Cancel { .. }
            | LedgerEntry::Config { .. }
            | LedgerEntry::TimedOut { .. }
            | LedgerEntry::Replayed { .. }
            | LedgerEntry::Parked { .. }
            | LedgerEntry::Paused { .. }
            | LedgerEntry::Resumed { .. }
            | LedgerEntry::Drained { .. } => {}
        }
    }
    all
}

fn job_state() -> JobState {
    JobState {
        id: "migrate-v2-0001".into(),
        status: JobStatus::Cancelling,
        total: 10_000,
        fetched: 10_000,
        fetch_done: true,
        batches: 200,
        batches_done: 198,
        succeeded: 9_950,
        failed: 3,
        skipped: 1,
        retries: 41,
        dead_lettered: 3,
        not_run: 0,
        duplicates: 1,
        ends_as: Some(JobStatus::Cancelled),
        stopping_since: Some(t(190)),
        paused_until: Some(t(200)),
        pause_reason: Some("API maintenance".into()),
        progress: 0.9954,
        created_at: t(0),
        started_at: Some(t(1)),
        updated_at: t(192),
        finished_at: Some(t(193)),
        reason: Some("operator asked".into()),
        errors: vec![ErrorSample {
            item: "agent-00412".into(),
            error: "HTTP 422".into(),
        }],
        error_groups: ErrorGroups {
            groups: vec![ErrorGroup {
                error: "HTTP 422: agent agent-# is incompatible".into(),
                example: "HTTP 422: agent agent-00097 is incompatible".into(),
                count: 3,
                items: vec![
                    "agent-00097".into(),
                    "agent-00194".into(),
                    "agent-00412".into(),
                ],
            }],
            other: 2,
        },
        results: results(),
        open_batches: BTreeMap::from([(
            199,
            OpenBatch {
                size: 50,
                succeeded: 40,
                failed: 1,
                parked: 2,
                fetched_at: Some(t(180)),
                dispatched_at: Some(t(181)),
                duplicates: BTreeSet::from(["agent-09951".to_string()]),
            },
        )]),
        replaying: BTreeSet::from(["agent-09977".to_string()]),
        folded_seq: 10_614,
        traceparent: Some("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".into()),
        tasks: Some(tasks()),
        spec: job_specs().remove(0),
    }
}

fn cases() -> Vec<Case> {
    vec![
        case("JobSpec", "JobSpec", job_specs()),
        case(
            "CancelRequest",
            "CancelRequest",
            vec![CancelRequest {
                reason: Some("operator asked".into()),
            }],
        ),
        case(
            "PauseRequest",
            "PauseRequest",
            vec![
                PauseRequest {
                    until: Some(t(200)),
                    for_: None,
                    reason: Some("API maintenance".into()),
                },
                PauseRequest {
                    until: None,
                    for_: Some(d("2h")),
                    reason: None,
                },
            ],
        ),
        case(
            "ResumeRequest",
            "ResumeRequest",
            vec![ResumeRequest {
                reason: Some("API is back".into()),
            }],
        ),
        case("ConfigChange", "ConfigChange", vec![config_change()]),
        case(
            "BatchMessage",
            "BatchMessage",
            vec![BatchMessage {
                job: "migrate-v2-0001".into(),
                batch: 3,
                items: vec![item()],
            }],
        ),
        case(
            "TaskMessage",
            "TaskMessage",
            vec![
                TaskMessage {
                    job: "migrate-v2-0001".into(),
                    batch: 3,
                    item: item(),
                    resume: None,
                },
                TaskMessage {
                    job: "migrate-v2-0001".into(),
                    batch: 3,
                    item: item(),
                    resume: Some(StepResume {
                        step: 1,
                        tries: 2,
                        done: vec![StepOutput {
                            step: "ensure-thread".into(),
                            output: json!({"thread": "t-1"}),
                        }],
                    }),
                },
            ],
        ),
        case(
            "LedgerEntry::Item(ItemResult)",
            "LedgerItem",
            vec![LedgerEntry::Item(item_result())],
        ),
        case("LedgerEntry", "LedgerEntry", ledger_entries()),
        case(
            "JobEvent",
            "JobEvent",
            vec![JobEvent {
                job: "migrate-v2-0001".into(),
                event: EventKind::BatchDone,
                at: t(4),
                reason: Some("operator asked".into()),
                batch: Some(3),
                total: Some(50),
                succeeded: Some(49),
                failed: Some(1),
                tasks: Some(tasks()),
                results: results(),
            }],
        ),
        case("TaskQueue", "TaskQueue", vec![tasks()]),
        case(
            "HandlerRequest",
            "HandlerRequest",
            vec![HandlerRequest {
                job: "migrate-v2-0001".into(),
                item: item(),
                params: json!({"template": "my-template:v2"}),
                attempt: 2,
                step: Some("execute".into()),
                input: json!({"thread": "t-1"}),
            }],
        ),
        case(
            "HandlerReply",
            "HandlerReply",
            vec![HandlerReply {
                ok: false,
                output: json!({"partial": true}),
                error: Some("rate limited".into()),
                retryable: true,
            }],
        ),
        case(
            "PageRequest",
            "PageRequest",
            vec![PageRequest {
                cursor: Some("c-150".into()),
                limit: 50,
                job: "reindex-7".into(),
            }],
        ),
        case(
            "PageReply",
            "PageReply",
            vec![PageReply {
                items: vec![
                    InlineItemOrId::Id(ItemId::Text("agent-151".into())),
                    InlineItemOrId::Id(ItemId::Number(152.into())),
                    InlineItemOrId::Item(inline_item()),
                ],
                next_cursor: Some("c-200".into()),
                error: Some("organization org-9 does not exist".into()),
            }],
        ),
        case(
            "ReduceRequest",
            "ReduceRequest",
            vec![ReduceRequest {
                job: "wordcount-1".into(),
                reduction: "longest".into(),
                acc: json!({"word": "a", "len": 1}),
                outputs: vec![json!({"words": 12, "longest": "jetstream"})],
            }],
        ),
        case(
            "ReduceReply",
            "ReduceReply",
            vec![ReduceReply {
                acc: Some(json!({"word": "jetstream", "len": 9})),
                error: Some("outputs must be objects".into()),
            }],
        ),
        case(
            "Notification",
            "Notification",
            vec![Notification {
                job: "migrate-v2-0001".into(),
                index: 1,
                target: notifications().remove(0),
                event: JobEvent {
                    results: results(),
                    ..final_event()
                },
            }],
        ),
        case("JobState", "JobState", vec![job_state()]),
        case(
            "BatchRecord",
            "BatchRecord",
            vec![BatchRecord {
                job: "migrate-v2-0001".into(),
                batch: 3,
                status: BatchStatus::Partial,
                size: 50,
                succeeded: 49,
                failed: 1,
                fetched_at: Some(t(1)),
                dispatched_at: Some(t(2)),
                finished_at: Some(t(5)),
            }],
        ),
        case(
            "ItemOutcome",
            "ItemOutcome",
            vec![ItemOutcome {
                job: "migrate-v2-0001".into(),
                item: "agent-00412".into(),
                batch: 9,
                status: ItemStatus::Succeeded,
                error: Some("HTTP 422".into()),
                output: json!({"migrated": true}),
                input: json!({"name": "Ada"}),
                failed_step: Some("execute".into()),
                messages: vec![StepOutput {
                    step: "ensure-thread".into(),
                    output: json!({"thread": "t-1"}),
                }],
                attempts: 1,
                duration_ms: 95,
                finished_at: t(9),
                result_seq: 10_702,
                result_index: 17,
                replaced: Some(ItemStatus::Failed),
                previous: Some(Box::new(PreviousOutcome {
                    status: ItemStatus::Failed,
                    error: Some("HTTP 422".into()),
                    output: json!({"partial": true}),
                    failed_step: Some("execute".into()),
                    attempts: 4,
                    duration_ms: 80,
                })),
            }],
        ),
        case(
            "FetchCheckpoint",
            "FetchCheckpoint",
            vec![FetchCheckpoint {
                cursor: Some("eyJvZmZzZXQiOjE1MH0".into()),
                batches: 3,
                fetched: 150,
                done: false,
            }],
        ),
        case(
            "StatusReport",
            "StatusReport",
            vec![StatusReport {
                stage: "migrate".into(),
                instance: "3f9c0e7a51b2".into(),
                namespace: "jetflow".into(),
                version: "0.1.0".into(),
                started_at: t(-3600),
                jobs: vec![JobWork {
                    job: "migrate-v2-0001".into(),
                    since: t(0),
                }],
                in_flight: vec![Work {
                    job: "migrate-v2-0001".into(),
                    what: "agent-00007".into(),
                    since: t(190),
                }],
                in_flight_count: 1,
                counters: BTreeMap::from([("items_succeeded".into(), 4_980)]),
                details: json!({"breakers": []}),
            }],
        ),
    ]
}

// ---------------------------------------------------------------------------
// The checks

/// (a): every example of every case's schema reads as its Rust type, and
/// writes only properties its schema lists.
fn check_examples(doc: &Doc, cases: &[Case]) -> Vec<String> {
    let mut errors = Vec::new();
    for case in cases {
        let examples = doc.examples(case.schema);
        if examples.is_empty() {
            errors.push(format!(
                "{}{}: no example (give its message an `examples` entry)",
                SCHEMAS, case.schema
            ));
        }
        let pointer = Doc::schema_pointer(case.schema);
        for (label, payload) in examples {
            if let Err(err) = (case.read)(&payload) {
                errors.push(format!("{label} does not read as {}: {err}", case.name));
            }
            let mut checker = Checker::new(doc);
            checker.record = false;
            checker.walk(
                &payload,
                doc.get(&pointer),
                &pointer,
                &label,
                "",
                &mut Vec::new(),
            );
            errors.extend(checker.errors);
        }
    }
    errors
}

/// (b), (c), (d) and the exactness of `required`.
fn check_rust_values(doc: &Doc, cases: &[Case]) -> Vec<String> {
    let mut checker = Checker::new(doc);
    let mut errors = Vec::new();
    for case in cases {
        let pointer = Doc::schema_pointer(case.schema);
        for sample in &case.samples {
            if let Err(err) = (case.read)(sample) {
                errors.push(format!(
                    "{}: a Rust value does not read back: {err}",
                    case.name
                ));
            }
            let mut written = Vec::new();
            checker.walk(
                sample,
                doc.get(&pointer),
                &pointer,
                case.name,
                "",
                &mut written,
            );
            for w in written {
                let mut without = sample.clone();
                let object = without
                    .pointer_mut(&w.object)
                    .and_then(Value::as_object_mut)
                    .expect("walked objects exist");
                object.remove(&w.key);
                match ((case.read)(&without), w.required) {
                    (Ok(()), true) => errors.push(format!(
                        "{}: {} requires `{}`, but Rust reads a value without it (serde default or Option: not required)",
                        w.path, w.schema, w.key
                    )),
                    (Err(err), false) => errors.push(format!(
                        "{}: {} does not require `{}`, but Rust cannot read a value without it ({err})",
                        w.path, w.schema, w.key
                    )),
                    _ => {}
                }
            }
        }
    }
    checker.coverage();
    errors.extend(checker.errors);
    errors
}

fn report(what: &str, errors: &[String]) {
    assert!(
        errors.is_empty(),
        "docs/asyncapi.json and the Rust wire types disagree ({what}):\n  {}",
        errors.join("\n  ")
    );
}

#[test]
fn every_example_reads_as_its_rust_type() {
    report("examples", &check_examples(&Doc::load(), &cases()));
}

#[test]
fn rust_values_write_exactly_what_the_schemas_say() {
    report("schemas", &check_rust_values(&Doc::load(), &cases()));
}

/// The field lists `jetflow submit` warns by know every field a job has:
/// the samples set every one.
#[test]
fn every_field_of_a_job_is_known_to_the_typo_check() {
    for spec in job_specs() {
        let value = serde_json::to_value(&spec).unwrap();
        let unknown = jetflow_protocol::job::fields::unknown(&value);
        assert!(unknown.is_empty(), "{unknown:?} in {value}");
    }
}

#[test]
fn tagged_unions_and_enums_list_exactly_rusts_variants() {
    let doc = Doc::load();
    let tags = |values: Vec<Value>| -> BTreeSet<String> {
        values
            .iter()
            .map(|v| v["type"].as_str().expect("a type tag").to_string())
            .collect()
    };
    let specs: Vec<Value> = job_specs()
        .iter()
        .map(|s| serde_json::to_value(s).unwrap())
        .collect();
    // Exhaustive: a new source or handler kind fails to compile here.
    for spec in job_specs() {
        match spec.source {
            SourceSpec::Http(_)
            | SourceSpec::Ids { .. }
            | SourceSpec::Items { .. }
            | SourceSpec::Job { .. }
            | SourceSpec::Nats { .. } => {}
        }
        match spec.handler {
            HandlerSpec::Http(_)
            | HandlerSpec::Nats(_)
            | HandlerSpec::External(_)
            | HandlerSpec::Steps { .. } => {}
        }
    }
    let sources = tags(specs.iter().map(|s| s["source"].clone()).collect());
    let handlers = tags(specs.iter().map(|s| s["handler"].clone()).collect());
    let ledger = tags(
        ledger_entries()
            .iter()
            .map(|e| serde_json::to_value(e).unwrap())
            .collect(),
    );
    let mut errors = Vec::new();
    for (name, rust) in [
        ("SourceSpec", sources),
        ("HandlerSpec", handlers),
        ("LedgerEntry", ledger),
    ] {
        let documented = doc.tags(name);
        if documented != rust {
            errors.push(format!(
                "{SCHEMAS}{name}: the doc's `type`s {documented:?}, Rust's {rust:?}"
            ));
        }
    }

    fn words<T: Serialize>(values: &[T]) -> BTreeSet<String> {
        values
            .iter()
            .map(|v| {
                serde_json::to_value(v)
                    .unwrap()
                    .as_str()
                    .unwrap()
                    .to_string()
            })
            .collect()
    }
    use BatchStatus as B;
    use EventKind as E;
    use JobStatus as J;
    // Each list is checked exhaustive by the match after it.
    let job_statuses = [
        J::Waiting,
        J::Pending,
        J::Fetching,
        J::Processing,
        J::Completed,
        J::Partial,
        J::Failed,
        J::Paused,
        J::Cancelling,
        J::Cancelled,
    ];
    for s in job_statuses {
        match s {
            J::Waiting
            | J::Pending
            | J::Fetching
            | J::Processing
            | J::Completed
            | J::Partial
            | J::Failed
            | J::Paused
            | J::Cancelling
            | J::Cancelled => {}
        }
    }
    let batch_statuses = [B::Pending, B::Processing, B::Completed, B::Partial];
    for s in batch_statuses {
        match s {
            B::Pending | B::Processing | B::Completed | B::Partial => {}
        }
    }
    let item_statuses = [ItemStatus::Succeeded, ItemStatus::Failed];
    for s in item_statuses {
        match s {
            ItemStatus::Succeeded | ItemStatus::Failed => {}
        }
    }
    let events = [
        E::Accepted,
        E::Rejected,
        E::Started,
        E::BatchDone,
        E::Completed,
        E::Partial,
        E::Failed,
        E::Cancelled,
        E::Paused,
        E::Resumed,
    ];
    for e in events {
        match e {
            E::Accepted
            | E::Rejected
            | E::Started
            | E::BatchDone
            | E::Completed
            | E::Partial
            | E::Failed
            | E::Cancelled
            | E::Paused
            | E::Resumed => assert_eq!(json!(e.as_str()), serde_json::to_value(e).unwrap()),
        }
    }
    let presets = [Preset::Conservative, Preset::Balanced, Preset::Aggressive];
    for p in presets {
        match p {
            Preset::Conservative | Preset::Balanced | Preset::Aggressive => {}
        }
    }
    let policies = [
        FailurePolicy::Continue,
        FailurePolicy::FailFast,
        FailurePolicy::MaxFailureRatio,
    ];
    for p in policies {
        match p {
            FailurePolicy::Continue | FailurePolicy::FailFast | FailurePolicy::MaxFailureRatio => {}
        }
    }
    for (name, rust) in [
        ("JobStatus", words(&job_statuses)),
        ("BatchStatus", words(&batch_statuses)),
        ("ItemStatus", words(&item_statuses)),
        ("EventKind", words(&events)),
        ("Preset", words(&presets)),
        ("FailurePolicy", words(&policies)),
        ("ReduceOp", words(&reduce_ops())),
    ] {
        let documented = doc.enum_values(name);
        if documented != rust {
            errors.push(format!(
                "{SCHEMAS}{name}: the doc's values {documented:?}, Rust's {rust:?}"
            ));
        }
    }
    // The `events` channel's `{event}` parameter and the event kinds.
    let parameter = &doc.get("#/channels/events/parameters/event")["enum"];
    let documented: BTreeSet<String> = parameter
        .as_array()
        .expect("an enum")
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    if documented != words(&events) {
        errors.push(format!(
            "#/channels/events/parameters/event: {documented:?}, Rust's {:?}",
            words(&events)
        ));
    }
    report("variants", &errors);
}

#[test]
fn addresses_and_examples_use_the_names_rs_makes() {
    let doc = Doc::load();
    let n = Names::default();
    let job = "migrate-v2-0001";
    let odd_item = "doc 3/a";
    let expected = [
        ("jobsSubmit", n.submit_subject()),
        ("jobCancel", n.cancel_subject(job)),
        ("jobConfig", n.config_subject(job)),
        ("batches", n.batch_subject(job)),
        ("tasks", n.task_subject(job)),
        ("ledger", n.result_subject(job)),
        ("events", n.event_subject(job, "accepted")),
        ("deadLetters", n.dlq_subject(Stage::Migrate, job)),
        (
            "status",
            format!("{}.status", n.service_group(Stage::Migrate)),
        ),
        ("kvJobs", format!("$KV.{}.{job}", n.jobs_bucket())),
        (
            "kvBatches",
            format!("$KV.{}.{}", n.batches_bucket(), Names::batch_key(job, 3)),
        ),
        (
            "kvItems",
            format!(
                "$KV.{}.{}",
                n.items_bucket(),
                Names::item_outcome_key(job, odd_item)
            ),
        ),
        ("kvSpecs", format!("$KV.{}.{job}", n.specs_bucket())),
        (
            "kvCheckpoints",
            format!("$KV.{}.{job}", n.checkpoints_bucket()),
        ),
        (
            "kvLeases",
            format!(
                "$KV.{}.{}",
                n.leases_bucket(),
                Names::lease_key("fetch", job)
            ),
        ),
        (
            "kvState",
            format!(
                "$KV.{}.{}",
                n.state_bucket(),
                Names::state_key(job, "counter")
            ),
        ),
    ];
    let key = item_key(odd_item);
    let values = [
        ("{ns}", n.namespace()),
        ("{job}", job),
        ("{event}", "accepted"),
        ("{stage}", "migrate"),
        ("{batch}", "3"),
        ("{itemKey}", key.as_str()),
        ("{role}", "fetch"),
        ("{name}", "counter"),
    ];
    let mut errors = Vec::new();
    for (channel, want) in expected {
        let mut address = doc
            .get(&format!("#/channels/{channel}/address"))
            .as_str()
            .unwrap_or_else(|| panic!("channel {channel} has no address"))
            .to_string();
        for (parameter, value) in values {
            address = address.replace(parameter, value);
        }
        if address != want {
            errors.push(format!(
                "#/channels/{channel}: the address gives {address}, names.rs {want}"
            ));
        }
    }

    // Task queues in examples are what TaskQueue::of makes for their job.
    let mut queues = Vec::new();
    for name in ["JobEvent", "JobState", "TaskQueue"] {
        for (label, payload) in doc.examples(name) {
            let queue = if name == "TaskQueue" {
                Some(payload.clone())
            } else {
                payload.get("tasks").cloned()
            };
            if let Some(queue) = queue {
                // A queue alone names its job only in its consumer.
                let job = match name {
                    "TaskQueue" => queue["consumer"]
                        .as_str()
                        .and_then(|c| c.strip_prefix("task_")),
                    "JobState" => payload["id"].as_str(),
                    _ => payload["job"].as_str(),
                };
                queues.push((label, job.unwrap_or_default().to_string(), queue));
            }
        }
    }
    assert!(!queues.is_empty(), "no example shows a task queue");
    for (label, job, queue) in queues {
        let want = serde_json::to_value(TaskQueue::of(&n, &job)).unwrap();
        if queue != want {
            errors.push(format!("{label}: tasks {queue}, names.rs makes {want}"));
        }
    }

    // Item results' de-duplication ids are `<job>:item:<item-key>`.
    let results = doc.get("#/components/messages/ItemResult/examples");
    for example in results.as_array().expect("examples") {
        let Some(id) = example["headers"]["Nats-Msg-Id"].as_str() else {
            continue;
        };
        let item = example["payload"]["id"].as_str().expect("an item id");
        let job = id.split(':').next().unwrap_or_default();
        let want = ItemResult::external_msg_id(job, item);
        if id != want {
            errors.push(format!(
                "ItemResult example {}: Nats-Msg-Id {id}, want {want}",
                example["name"]
            ));
        }
    }

    // The header names headers.rs defines are the ones documented.
    let documented = |schema: &str, name: &str| {
        doc.get(&Doc::schema_pointer(schema))["properties"]
            .get(name)
            .is_some()
    };
    for name in [
        headers::JOB,
        headers::ITEM,
        headers::STAGE,
        headers::ERROR,
        headers::ATTEMPTS,
        headers::ORIGINAL_SUBJECT,
        headers::MSG_ID,
    ] {
        if !documented("DeadLetterHeaders", name) {
            errors.push(format!("DeadLetterHeaders lacks {name}"));
        }
    }
    for name in [
        headers::JOB,
        headers::ITEM,
        headers::IDEMPOTENCY_KEY,
        headers::CONTENT_TYPE,
    ] {
        if !documented("HandlerRequestHeaders", name) {
            errors.push(format!("HandlerRequestHeaders lacks {name}"));
        }
    }
    for name in [
        headers::ATTEMPTS,
        headers::REPLAY,
        headers::MSG_ID,
        headers::CONTENT_TYPE,
    ] {
        if !documented("TaskHeaders", name) {
            errors.push(format!("TaskHeaders lacks {name}"));
        }
    }
    report("names", &errors);
}

/// The checks above must fail when either side alone renames a field.
#[test]
fn a_rename_on_either_side_is_caught() {
    let doc = Doc::load();
    let has = |errors: &[String], needle: &str| errors.iter().any(|e| e.contains(needle));

    // Rust renames JobEvent.tasks (as `#[serde(rename = "task_queue")]`
    // would): the value writes a property the doc lacks, and the doc's
    // `tasks` is written by nothing.
    let mut renamed = cases();
    for case in renamed.iter_mut().filter(|c| c.name == "JobEvent") {
        for sample in &mut case.samples {
            let object = sample.as_object_mut().unwrap();
            let tasks = object.remove("tasks").unwrap();
            object.insert("task_queue".into(), tasks);
        }
    }
    let errors = check_rust_values(&doc, &renamed);
    assert!(has(&errors, "`task_queue` is written"), "{errors:#?}");
    assert!(has(&errors, "JobEvent lists `tasks`"), "{errors:#?}");

    // Rust renames a required field, TaskMessage.job: the doc's `required`
    // is no longer written.
    let mut renamed = cases();
    for case in renamed.iter_mut().filter(|c| c.name == "TaskMessage") {
        for sample in &mut case.samples {
            let object = sample.as_object_mut().unwrap();
            let job = object.remove("job").unwrap();
            object.insert("job_id".into(), job);
        }
    }
    let errors = check_rust_values(&doc, &renamed);
    assert!(has(&errors, "TaskMessage requires `job`"), "{errors:#?}");

    // The doc renames JobState.folded_seq: Rust writes what the doc lacks.
    let mut edited = doc.clone();
    let properties = edited
        .root
        .pointer_mut("/components/schemas/JobState/properties")
        .and_then(Value::as_object_mut)
        .unwrap();
    let folded = properties.remove("folded_seq").unwrap();
    properties.insert("checkpoint_seq".into(), folded);
    let errors = check_rust_values(&edited, &cases());
    assert!(has(&errors, "`folded_seq` is written"), "{errors:#?}");
    assert!(
        has(&errors, "JobState lists `checkpoint_seq`"),
        "{errors:#?}"
    );

    // The doc marks an optional field required, and a required one optional.
    let mut edited = doc.clone();
    let required = edited
        .root
        .pointer_mut("/components/schemas/ItemOutcome/required")
        .and_then(Value::as_array_mut)
        .unwrap();
    required.retain(|r| r != "result_seq");
    required.push(json!("error"));
    let errors = check_rust_values(&edited, &cases());
    assert!(has(&errors, "does not require `result_seq`"), "{errors:#?}");
    assert!(
        has(&errors, "requires `error`, but Rust reads"),
        "{errors:#?}"
    );

    // An example renames a required field: it no longer reads.
    let mut edited = doc.clone();
    let example = edited
        .root
        .pointer_mut("/components/messages/TaskMessage/examples/0/payload")
        .and_then(Value::as_object_mut)
        .unwrap();
    let batch = example.remove("batch").unwrap();
    example.insert("batch_no".into(), batch);
    let errors = check_examples(&edited, &cases());
    assert!(has(&errors, "missing field `batch`"), "{errors:#?}");
    assert!(has(&errors, "`batch_no` is written"), "{errors:#?}");
}
