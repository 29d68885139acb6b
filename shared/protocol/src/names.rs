//! Every name jetflow puts on NATS — subjects, streams, consumers, KV buckets
//! and keys — derived from one namespace, so services, deploy files, the CLI
//! and tests agree by construction (see the contract table in the README).

use base64::Engine as _;

use crate::Stage;

/// The default namespace (`JETFLOW_NAMESPACE`).
pub const DEFAULT_NAMESPACE: &str = "jetflow";

/// Longest job id we accept: job ids appear in subjects, consumer names and KV keys.
pub const MAX_JOB_ID_LEN: usize = 100;

/// Longest item id kept verbatim in a KV key; longer ids are encoded.
const MAX_VERBATIM_ITEM_KEY: usize = 200;

/// Longest name of a job's shared state value (the `<name>` of its key
/// `<job>.<name>`).
pub const MAX_STATE_NAME_LEN: usize = 200;

/// Fetch's durable consumer on submissions (the same in every namespace:
/// consumers are named within their stream).
pub const FETCH_CONSUMER: &str = "fetch";
/// Fetch's durable consumer on cancel requests.
pub const CANCEL_CONSUMER: &str = "cancel";
/// Fetch's durable consumer on settings changes.
pub const CONFIG_CONSUMER: &str = "config";
/// Fetch's durable consumer on pause and resume requests (one consumer, so
/// the two are taken in the order they were made).
pub const PAUSE_CONSUMER: &str = "pause";
/// Batch's durable consumer on pages.
pub const BATCH_CONSUMER: &str = "batch";
/// Reduce's durable consumer on notifications to deliver.
pub const NOTIFY_CONSUMER: &str = "notify";

/// The queue group `nats` handler workers join, in every language, so each
/// request goes to one of them (and permissions can name it).
pub const WORKER_QUEUE_GROUP: &str = "jetflow-workers";

/// What every job's task consumer is named: `task_<job>`.
pub const TASK_CONSUMER_PREFIX: &str = "task_";

/// Target slot consumers are named `slots_<target key>`.
pub const SLOT_CONSUMER_PREFIX: &str = "slots_";

/// The priority group every slot pull request names (a prioritized
/// consumer serves requests of one group by their priority).
pub const SLOT_PRIORITY_GROUP: &str = "calls";

/// Names of everything jetflow creates under one namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Names {
    ns: String,
    upper: String,
}

impl Names {
    /// Builds the names for `namespace`, which must be a single subject token
    /// of letters, digits, `_` or `-`.
    pub fn new(namespace: &str) -> Result<Self, String> {
        if !is_token(namespace) || namespace.len() > 32 {
            return Err(format!(
                "namespace {namespace:?} must be 1-32 characters of letters, digits, '_' or '-'"
            ));
        }
        Ok(Self {
            ns: namespace.to_string(),
            upper: namespace.to_uppercase().replace('-', "_"),
        })
    }

    /// The namespace itself.
    pub fn namespace(&self) -> &str {
        &self.ns
    }

    // ---- subjects -------------------------------------------------------

    /// Where jobs are submitted: `<ns>.jobs.submit`.
    pub fn submit_subject(&self) -> String {
        format!("{}.jobs.submit", self.ns)
    }

    /// Where a job is cancelled: `<ns>.jobs.cancel.<job>`.
    pub fn cancel_subject(&self, job: &str) -> String {
        format!("{}.jobs.cancel.{job}", self.ns)
    }

    /// Where a running job's live settings are changed: `<ns>.jobs.config.<job>`.
    pub fn config_subject(&self, job: &str) -> String {
        format!("{}.jobs.config.{job}", self.ns)
    }

    /// One message per fetched page: `<ns>.batch.<job>`.
    pub fn batch_subject(&self, job: &str) -> String {
        format!("{}.batch.{job}", self.ns)
    }

    /// One message per item: `<ns>.task.<job>`.
    pub fn task_subject(&self, job: &str) -> String {
        format!("{}.task.{job}", self.ns)
    }

    /// Where one item's task waits out a retry's backoff, as a JetStream
    /// message schedule that fires into [`Names::task_subject`]:
    /// `<ns>.retry.<job>.<item key>`. One subject per item, so an item has
    /// at most one retry pending (a schedule replaces the one before it on
    /// its subject).
    pub fn retry_subject(&self, job: &str, item_id: &str) -> String {
        format!("{}.retry.{job}.{}", self.ns, item_key(item_id))
    }

    /// Every pending retry of `job` (any job when `"*"`): `<ns>.retry.<job>.*`.
    pub fn retry_filter(&self, job: &str) -> String {
        format!("{}.retry.{job}.*", self.ns)
    }

    /// Where a job is paused: `<ns>.jobs.pause.<job>`.
    pub fn pause_subject(&self, job: &str) -> String {
        format!("{}.jobs.pause.{job}", self.ns)
    }

    /// Where a paused job is resumed: `<ns>.jobs.resume.<job>`.
    pub fn resume_subject(&self, job: &str) -> String {
        format!("{}.jobs.resume.{job}", self.ns)
    }

    /// The job's ledger of facts the reducer folds: `<ns>.result.<job>`.
    pub fn result_subject(&self, job: &str) -> String {
        format!("{}.result.{job}", self.ns)
    }

    /// A job's notifications of its end, waiting to be delivered:
    /// `<ns>.notify.<job>`.
    pub fn notify_subject(&self, job: &str) -> String {
        format!("{}.notify.{job}", self.ns)
    }

    /// A lifecycle event: `<ns>.events.<job>.<event>`.
    pub fn event_subject(&self, job: &str, event: &str) -> String {
        format!("{}.events.{job}.{event}", self.ns)
    }

    /// The counter of calls `scope` made in the window starting at
    /// `window_start` (ms since the epoch): `<ns>.rate.<scope>.<start>`,
    /// a NATS counter (`Nats-Incr`) in the rates stream.
    pub fn rate_subject(&self, scope: &RateScope, window_start: u64) -> String {
        format!("{}.rate.{}.{window_start}", self.ns, scope.tokens())
    }

    /// Every rate counter: `<ns>.rate.>`.
    pub fn rate_filter(&self) -> String {
        format!("{}.rate.>", self.ns)
    }

    /// The slots of `target`'s shared concurrency: `<ns>.slot.<target key>`,
    /// as many messages as calls may be in flight to it at once.
    pub fn slot_subject(&self, target: &str) -> String {
        format!("{}.slot.{}", self.ns, item_key(target))
    }

    /// Every target's slots: `<ns>.slot.*`.
    pub fn slot_filter(&self) -> String {
        format!("{}.slot.*", self.ns)
    }

    /// The micro service endpoint group of `stage`: `<ns>.svc.<stage>`.
    pub fn service_group(&self, stage: Stage) -> String {
        format!("{}.svc.{stage}", self.ns)
    }

    /// All events of one job: `<ns>.events.<job>.*`.
    pub fn job_events_filter(&self, job: &str) -> String {
        format!("{}.events.{job}.*", self.ns)
    }

    /// A dead letter of `stage` for `job`: `<ns>.dlq.<stage>.<job>`.
    pub fn dlq_subject(&self, stage: Stage, job: &str) -> String {
        format!("{}.dlq.{stage}.{job}", self.ns)
    }

    /// Dead letters of `stage` (any when `None`) for `job` (any when
    /// `None`): `<ns>.dlq.<stage|*>.<job|*>`.
    pub fn dlq_filter(&self, stage: Option<Stage>, job: Option<&str>) -> String {
        let stage = stage.map_or("*", Stage::as_str);
        format!("{}.dlq.{stage}.{}", self.ns, job.unwrap_or("*"))
    }

    // ---- streams --------------------------------------------------------

    fn stream(&self, name: &str) -> String {
        format!("{}_{name}", self.upper)
    }

    /// Submissions: `JETFLOW_JOBS`.
    pub fn jobs_stream(&self) -> String {
        self.stream("JOBS")
    }
    /// Pages waiting to be fanned out: `JETFLOW_BATCHES`.
    pub fn batches_stream(&self) -> String {
        self.stream("BATCHES")
    }
    /// Item tasks: `JETFLOW_TASKS`.
    pub fn tasks_stream(&self) -> String {
        self.stream("TASKS")
    }
    /// Per-job ledgers: `JETFLOW_RESULTS`.
    pub fn results_stream(&self) -> String {
        self.stream("RESULTS")
    }
    /// Lifecycle events: `JETFLOW_EVENTS`.
    pub fn events_stream(&self) -> String {
        self.stream("EVENTS")
    }
    /// Dead letters: `JETFLOW_DLQ`.
    pub fn dlq_stream(&self) -> String {
        self.stream("DLQ")
    }
    /// Rate-limit counters, one per scope and window: `JETFLOW_RATES`.
    pub fn rates_stream(&self) -> String {
        self.stream("RATES")
    }

    /// Targets' concurrency slots: `JETFLOW_SLOTS`.
    pub fn slots_stream(&self) -> String {
        self.stream("SLOTS")
    }

    /// Notifications of jobs' ends waiting to be delivered: `JETFLOW_NOTIFY`.
    pub fn notify_stream(&self) -> String {
        self.stream("NOTIFY")
    }

    /// Every stream, in the order they are provisioned.
    pub fn streams(&self) -> Vec<String> {
        vec![
            self.jobs_stream(),
            self.batches_stream(),
            self.tasks_stream(),
            self.results_stream(),
            self.events_stream(),
            self.dlq_stream(),
            self.rates_stream(),
            self.slots_stream(),
            self.notify_stream(),
        ]
    }

    // ---- consumers ------------------------------------------------------

    /// The fetch service's durable consumer on submissions.
    pub fn fetch_consumer(&self) -> String {
        FETCH_CONSUMER.to_string()
    }
    /// The fetch service's durable consumer on cancel requests.
    pub fn cancel_consumer(&self) -> String {
        CANCEL_CONSUMER.to_string()
    }
    /// Fetch's durable consumer on settings changes.
    pub fn config_consumer(&self) -> String {
        CONFIG_CONSUMER.to_string()
    }
    /// The fetch service's durable consumer on pause and resume requests.
    pub fn pause_consumer(&self) -> String {
        PAUSE_CONSUMER.to_string()
    }
    /// The batch service's durable consumer on pages.
    pub fn batch_consumer(&self) -> String {
        BATCH_CONSUMER.to_string()
    }
    /// The reduce service's durable consumer on notifications to deliver.
    pub fn notify_consumer(&self) -> String {
        NOTIFY_CONSUMER.to_string()
    }
    /// A job's own task consumer; its `max_ack_pending` is the job's concurrency.
    pub fn task_consumer(&self, job: &str) -> String {
        format!("{TASK_CONSUMER_PREFIX}{job}")
    }

    /// A target's slot consumer: its `max_ack_pending` is the target's
    /// concurrency; a call holds one unacknowledged slot message, and
    /// waiting calls are pull requests served by job priority.
    pub fn slot_consumer(&self, target: &str) -> String {
        format!("{SLOT_CONSUMER_PREFIX}{}", item_key(target))
    }

    // ---- KV buckets -----------------------------------------------------

    fn bucket(&self, name: &str) -> String {
        format!("{}_{name}", self.ns)
    }

    /// Job state, key `<job>`: `jetflow_jobs`.
    pub fn jobs_bucket(&self) -> String {
        self.bucket("jobs")
    }
    /// Batch records, key `<job>.<batch_no>`: `jetflow_batches`.
    pub fn batches_bucket(&self) -> String {
        self.bucket("batches")
    }
    /// Item outcomes, key `<job>.<item-key>`: `jetflow_items`.
    pub fn items_bucket(&self) -> String {
        self.bucket("items")
    }
    /// Shared job state for user code, key `<job>.<name>`: `jetflow_state`.
    pub fn state_bucket(&self) -> String {
        self.bucket("state")
    }
    /// Full job specs (with inline items), key `<job>`: `jetflow_specs`.
    pub fn specs_bucket(&self) -> String {
        self.bucket("specs")
    }
    /// Fetch cursor checkpoints, key `<job>`: `jetflow_checkpoints`.
    pub fn checkpoints_bucket(&self) -> String {
        self.bucket("checkpoints")
    }
    /// Ownership leases, keys `<role>.<job>`: `jetflow_leases`.
    pub fn leases_bucket(&self) -> String {
        self.bucket("leases")
    }
    /// Limits targets carry for every job, key the target's
    /// (`target::key`): `jetflow_limits`.
    pub fn limits_bucket(&self) -> String {
        self.bucket("limits")
    }

    /// Every bucket, in the order they are provisioned.
    pub fn buckets(&self) -> Vec<String> {
        vec![
            self.jobs_bucket(),
            self.batches_bucket(),
            self.items_bucket(),
            self.state_bucket(),
            self.specs_bucket(),
            self.checkpoints_bucket(),
            self.leases_bucket(),
            self.limits_bucket(),
        ]
    }

    // ---- keys -----------------------------------------------------------

    /// Key of a batch record.
    pub fn batch_key(job: &str, batch: u64) -> String {
        format!("{job}.{batch}")
    }

    /// Key of an item outcome record.
    pub fn item_outcome_key(job: &str, item_id: &str) -> String {
        format!("{job}.{}", item_key(item_id))
    }

    /// Key of a job's shared state value `name` (checked with
    /// [`validate_state_name`]): `<job>.<name>`.
    pub fn state_key(job: &str, name: &str) -> String {
        format!("{job}.{name}")
    }

    /// Key of a lease held by `role` (e.g. `fetch`, `reduce`) over `job`.
    pub fn lease_key(role: &str, job: &str) -> String {
        format!("{role}.{job}")
    }

    /// Key of the lease `stage` holds over `job` while it works on it.
    pub fn job_lease_key(stage: Stage, job: &str) -> String {
        Self::lease_key(stage.as_str(), job)
    }

    /// Key of the lease the one instance running automatic retention holds.
    pub fn retention_lease_key() -> String {
        Self::lease_key("gc", "all")
    }
}

impl Default for Names {
    fn default() -> Self {
        Self::new(DEFAULT_NAMESPACE).expect("the default namespace is a valid token")
    }
}

/// Whose calls a rate counter counts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RateScope {
    /// A job's handler calls (`job.<job>`).
    Job(String),
    /// One step's calls in a `steps` job (`step.<job>.<step>`).
    Step {
        /// The job.
        job: String,
        /// The step's name.
        step: String,
    },
    /// Every job's calls to a target (`target.<target key>`).
    Target(String),
}

impl RateScope {
    /// The scope's subject tokens.
    pub fn tokens(&self) -> String {
        match self {
            RateScope::Job(job) => format!("job.{job}"),
            RateScope::Step { job, step } => format!("step.{job}.{step}"),
            RateScope::Target(target) => format!("target.{}", item_key(target)),
        }
    }
}

/// True for a non-empty string of ASCII letters, digits, `_` and `-`:
/// safe as a subject token, a consumer name and a KV key segment.
pub fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// Checks a job id; the error says what a valid one looks like.
pub fn validate_job_id(id: &str) -> Result<(), String> {
    if is_token(id) && id.len() <= MAX_JOB_ID_LEN {
        Ok(())
    } else {
        Err(format!(
            "{id:?} must be 1-{MAX_JOB_ID_LEN} characters of letters, digits, '_' or '-'"
        ))
    }
}

/// Checks the name of a job's shared state value: 1-200 characters, parts
/// of ASCII letters, digits, `_`, `-` and `=` joined by single dots
/// (`processed`, `orgs.seen`). So `<job>.<name>` is a KV key of the job's
/// alone, with no wildcard, and `<job>.>` covers every name.
pub fn validate_state_name(name: &str) -> Result<(), String> {
    let part_ok = |part: &str| {
        !part.is_empty()
            && part
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'='))
    };
    if name.len() <= MAX_STATE_NAME_LEN && name.split('.').all(part_ok) {
        Ok(())
    } else {
        Err(format!(
            "{name:?} must be 1-{MAX_STATE_NAME_LEN} characters: letters, digits, '_', '-', '=', and single dots between them"
        ))
    }
}

/// The KV key segment for an item id: the id itself when it is a token (and
/// does not start with `=`), else `=` followed by its unpadded base64url
/// encoding. The mapping is injective, so two items never share a record.
pub fn item_key(id: &str) -> String {
    let verbatim = is_token(id) && id.len() <= MAX_VERBATIM_ITEM_KEY;
    if verbatim {
        id.to_string()
    } else {
        format!(
            "={}",
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(id.as_bytes())
        )
    }
}

/// Inverse of [`item_key`], for tools that list outcome records.
pub fn item_id_from_key(key: &str) -> Option<String> {
    match key.strip_prefix('=') {
        None => Some(key.to_string()),
        Some(encoded) => base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(encoded)
            .ok()
            .and_then(|bytes| String::from_utf8(bytes).ok()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_contract() {
        let n = Names::default();
        assert_eq!(n.submit_subject(), "jetflow.jobs.submit");
        assert_eq!(n.cancel_subject("j1"), "jetflow.jobs.cancel.j1");
        assert_eq!(n.config_subject("j1"), "jetflow.jobs.config.j1");
        assert_eq!(n.pause_subject("j1"), "jetflow.jobs.pause.j1");
        assert_eq!(n.resume_subject("j1"), "jetflow.jobs.resume.j1");
        assert_eq!(n.retry_subject("j1", "a-1"), "jetflow.retry.j1.a-1");
        assert_eq!(n.retry_filter("*"), "jetflow.retry.*.*");
        assert_eq!(
            n.event_subject("j1", "accepted"),
            "jetflow.events.j1.accepted"
        );
        assert_eq!(
            n.dlq_subject(Stage::Migrate, "j1"),
            "jetflow.dlq.migrate.j1"
        );
        assert_eq!(n.dlq_filter(None, Some("j1")), "jetflow.dlq.*.j1");
        assert_eq!(
            n.dlq_filter(Some(Stage::Batch), None),
            "jetflow.dlq.batch.*"
        );
        assert_eq!(n.service_group(Stage::Reduce), "jetflow.svc.reduce");
        assert_eq!(Names::job_lease_key(Stage::Fetch, "j1"), "fetch.j1");
        assert_eq!(Names::retention_lease_key(), "gc.all");
        assert_eq!(n.events_stream(), "JETFLOW_EVENTS");
        assert_eq!(n.dlq_stream(), "JETFLOW_DLQ");
        assert_eq!(n.jobs_bucket(), "jetflow_jobs");
        assert_eq!(n.items_bucket(), "jetflow_items");
        assert_eq!(Names::batch_key("j1", 7), "j1.7");
        assert_eq!(n.rates_stream(), "JETFLOW_RATES");
        assert_eq!(n.limits_bucket(), "jetflow_limits");
        assert_eq!(n.slots_stream(), "JETFLOW_SLOTS");
        assert_eq!(n.slot_subject("api:80"), "jetflow.slot.=YXBpOjgw");
        assert_eq!(n.slot_subject("localhost"), "jetflow.slot.localhost");
        assert_eq!(n.slot_consumer("api:80"), "slots_=YXBpOjgw");
        assert_eq!(
            n.rate_subject(&RateScope::Job("j1".into()), 1_700_000_000_100),
            "jetflow.rate.job.j1.1700000000100"
        );
        assert_eq!(
            n.rate_subject(
                &RateScope::Step {
                    job: "j1".into(),
                    step: "create".into()
                },
                5
            ),
            "jetflow.rate.step.j1.create.5"
        );
        assert_eq!(
            n.rate_subject(&RateScope::Target("api:80".into()), 5),
            "jetflow.rate.target.=YXBpOjgw.5"
        );
        assert_eq!(n.rate_filter(), "jetflow.rate.>");
    }

    #[test]
    fn namespaces_change_every_name() {
        let n = Names::new("staging-eu").unwrap();
        assert_eq!(n.submit_subject(), "staging-eu.jobs.submit");
        assert_eq!(n.tasks_stream(), "STAGING_EU_TASKS");
        assert_eq!(n.jobs_bucket(), "staging-eu_jobs");
        assert!(Names::new("a.b").is_err());
        assert!(Names::new("").is_err());
    }

    #[test]
    fn item_keys_are_verbatim_for_tokens_and_encoded_otherwise() {
        assert_eq!(item_key("agent-00042"), "agent-00042");
        let odd = ["a.b", "a b", "=x", "ünï", "*", ">", ""];
        let keys: Vec<String> = odd.iter().map(|id| item_key(id)).collect();
        for (id, key) in odd.iter().zip(&keys) {
            assert!(key.starts_with('='), "{id:?} -> {key}");
            assert!(!key.contains('.') && !key.contains(' '));
            assert_eq!(item_id_from_key(key).as_deref(), Some(*id));
        }
        // injective: an id that looks like an encoding is itself encoded
        assert_ne!(item_key(&keys[0]), keys[0]);
    }

    #[test]
    fn state_names_are_kv_key_parts_without_wildcards() {
        assert_eq!(Names::state_key("j1", "orgs.seen"), "j1.orgs.seen");
        for ok in ["processed", "orgs.seen", "a-b_c=d", "x"] {
            assert!(validate_state_name(ok).is_ok(), "{ok}");
        }
        let too_long = "x".repeat(MAX_STATE_NAME_LEN + 1);
        for bad in [
            "", ".a", "a.", "a..b", "a*", ">", "a b", "ü", "a/b", &too_long,
        ] {
            assert!(validate_state_name(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn job_ids_must_be_tokens() {
        assert!(validate_job_id("migrate-v2_0001").is_ok());
        assert!(validate_job_id("a.b").is_err());
        assert!(validate_job_id("").is_err());
        assert!(validate_job_id(&"x".repeat(101)).is_err());
    }
}
