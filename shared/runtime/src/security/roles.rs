//! Who may do what on NATS, as subjects: one role per jetflow part, each
//! with exactly the publish and subscribe rights that part uses, derived
//! from [`Names`] so that the deploy files cannot drift from the code
//! (`deploy/nats/roles.conf` is this module's output, and a test compares
//! them).
//!
//! JetStream is driven by requests to `$JS.API.<verb>.<stream>[...]`, so a
//! right to a verb on a named stream (or consumer) is a publish right. No
//! role has `$JS.API.>`; only `admin` may create, change or delete streams.
//! What each right is for is said beside it (docs/security.md has the
//! summary).

use jetflow_protocol::{Names, Stage};

use super::grants::Grants;
pub use super::grants::Permissions;

/// The parts of a jetflow deployment, each its own NATS user.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Role {
    /// The fetch stage.
    Fetch,
    /// The batch stage.
    Batch,
    /// The migrate stage.
    Migrate,
    /// The reduce stage (and retention).
    Reduce,
    /// Submits, cancels and reconfigures jobs; reads their state and events.
    Submitter,
    /// Serves `nats` handler subjects, works the tasks of named
    /// `external` jobs, and keeps jobs' shared state; nothing else.
    Worker,
    /// Reads everything (state, batches, items, events, dead letters, micro
    /// stats); changes nothing.
    Viewer,
    /// Everything in the namespace: creates and upgrades streams, buckets
    /// and stage consumers (`jetflow provision`), purges and replays dead
    /// letters, collects old jobs.
    Admin,
}

impl Role {
    /// Every role.
    pub const ALL: [Role; 8] = [
        Role::Fetch,
        Role::Batch,
        Role::Migrate,
        Role::Reduce,
        Role::Submitter,
        Role::Worker,
        Role::Viewer,
        Role::Admin,
    ];

    /// Its name: the user's name in the deploy files.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Submitter => "submitter",
            Role::Worker => "worker",
            Role::Viewer => "viewer",
            Role::Admin => "admin",
            // A stage's user is named as the stage.
            Role::Fetch | Role::Batch | Role::Migrate | Role::Reduce => {
                self.stage().map_or("", Stage::as_str)
            }
        }
    }

    /// The stage this role runs, if it is one.
    pub fn stage(self) -> Option<Stage> {
        match self {
            Role::Fetch => Some(Stage::Fetch),
            Role::Batch => Some(Stage::Batch),
            Role::Migrate => Some(Stage::Migrate),
            Role::Reduce => Some(Stage::Reduce),
            _ => None,
        }
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Role {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Role::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| {
                let all: Vec<&str> = Role::ALL.iter().map(|r| r.as_str()).collect();
                format!("{s:?} is not a role (one of {})", all.join(", "))
            })
    }
}

/// What the roles depend on beyond the namespace: the subjects of the
/// jobs' own `nats` handlers and sources, and the `external` jobs workers
/// may work.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Scope {
    /// Subjects `nats` handlers are served on (wildcards allowed): migrate
    /// requests them, `worker` serves them.
    pub handler_subjects: Vec<String>,
    /// Subjects `nats` sources are served on: fetch requests them.
    pub source_subjects: Vec<String>,
    /// Jobs whose tasks `worker` may pull and whose results it may publish.
    pub external_jobs: Vec<String>,
    /// Subjects of `nats` reductions and `notify` entries: reduce requests
    /// and publishes on them.
    pub reduce_subjects: Vec<String>,
}

/// The prefix of `role`'s reply subjects (`--inbox-prefix`): its own, so no
/// other user's `_INBOX.>` right reads its replies.
pub fn inbox_prefix(names: &Names, role: Role) -> String {
    format!("_INBOX_{}_{}", names.namespace(), role.as_str())
}

/// `role`'s rights in `names`' namespace.
pub fn permissions(names: &Names, role: Role, scope: &Scope) -> Permissions {
    let mut g = Grants::new(names, inbox_prefix(names, role));
    match role {
        Role::Fetch => fetch(&mut g, scope),
        Role::Batch => batch(&mut g),
        Role::Migrate => migrate(&mut g, scope),
        Role::Reduce => reduce(&mut g, scope),
        Role::Submitter => submitter(&mut g),
        Role::Worker => worker(&mut g, scope),
        Role::Viewer => viewer(&mut g),
        Role::Admin => admin(&mut g),
    }
    g.done()
}

fn fetch(g: &mut Grants, scope: &Scope) {
    let n = g.names.clone();
    g.stage(Stage::Fetch);
    for consumer in [
        n.fetch_consumer(),
        n.cancel_consumer(),
        n.config_consumer(),
        n.pause_consumer(),
    ] {
        g.pull(&n.jobs_stream(), &consumer);
    }
    // A job's task queue is made when fetch accepts it.
    g.write_task_queues();
    g.publish(n.batch_subject("*"));
    g.publish(n.result_subject("*"));
    g.events();
    for bucket in [n.jobs_bucket(), n.specs_bucket(), n.checkpoints_bucket()] {
        g.write_bucket(&bucket);
    }
    g.watch_bucket(&n.jobs_bucket());
    // A `job` source reads another job's outcomes.
    g.watch_bucket(&n.items_bucket());
    g.lease(Stage::Fetch.as_str());
    g.publish_all(&scope.source_subjects);
}

fn batch(g: &mut Grants) {
    let n = g.names.clone();
    g.stage(Stage::Batch);
    g.pull(&n.batches_stream(), &n.batch_consumer());
    g.publish(n.task_subject("*"));
    g.publish(n.result_subject("*"));
    g.events();
    g.read_bucket(&n.jobs_bucket());
    g.read_bucket(&n.specs_bucket());
    g.read_bucket(&n.items_bucket());
    g.write_bucket(&n.batches_bucket());
}

fn migrate(g: &mut Grants, scope: &Scope) {
    let n = g.names.clone();
    g.stage(Stage::Migrate);
    g.pull(&n.tasks_stream(), "*");
    // Held and replayed tasks go back on the job's task subject; retries
    // wait as message schedules on the retry subjects.
    g.publish(n.task_subject("*"));
    g.publish(n.retry_filter("*"));
    g.publish(n.result_subject("*"));
    g.events();
    g.watch_bucket(&n.jobs_bucket());
    g.read_bucket(&n.specs_bucket());
    g.read_bucket(&n.items_bucket());
    // Rate limits: calls are counted on the rate counters; targets'
    // limits are watched.
    g.publish(n.rate_filter());
    g.watch_bucket(&n.limits_bucket());
    // Targets' shared concurrency: calls take and hand back slots, and
    // every instance keeps each target's slots as its limits say.
    let slots = n.slots_stream();
    g.pull(&slots, "*");
    g.publish(n.slot_filter());
    g.publish(format!(
        "$JS.API.CONSUMER.CREATE.{slots}.*.{}",
        n.slot_filter()
    ));
    g.publish(format!("$JS.API.CONSUMER.DELETE.{slots}.*"));
    g.publish(format!("$JS.API.STREAM.PURGE.{slots}"));
    g.sweep(&n.tasks_stream());
    g.publish_all(&scope.handler_subjects);
}

fn reduce(g: &mut Grants, scope: &Scope) {
    let n = g.names.clone();
    g.stage(Stage::Reduce);
    g.read_stream(&n.results_stream());
    // An ordered consumer reset after a node loss deletes the old one.
    g.publish(format!("$JS.API.CONSUMER.DELETE.{}.*", n.results_stream()));
    // Folded ledger entries, and a finished job's tasks and pages, go.
    for stream in [n.results_stream(), n.tasks_stream(), n.batches_stream()] {
        g.publish(format!("$JS.API.STREAM.PURGE.{stream}"));
    }
    // The task queue follows the job: resized, paused, deleted.
    let tasks = n.tasks_stream();
    g.write_task_queues();
    for verb in ["INFO", "PAUSE", "DELETE"] {
        g.publish(format!("$JS.API.CONSUMER.{verb}.{tasks}.*"));
    }
    // Facts only the reducer knows (the job stopping) go on the ledger too.
    g.publish(n.result_subject("*"));
    g.events();
    for bucket in [n.jobs_bucket(), n.batches_bucket(), n.items_bucket()] {
        g.write_bucket(&bucket);
        g.watch_bucket(&bucket);
    }
    g.lease(Stage::Reduce.as_str());
    g.sweep(&n.results_stream());
    // Jobs' ends to notify: published as a job ends, delivered from the
    // stream, and sent to users' reducers and notification subjects.
    g.publish(n.notify_subject("*"));
    g.pull(&n.notify_stream(), &n.notify_consumer());
    g.publish_all(&scope.reduce_subjects);
    retention(g);
}

/// Removing finished jobs, which the reducer does on its own.
fn retention(g: &mut Grants) {
    let n = g.names.clone();
    g.lease("gc");
    for bucket in [
        n.jobs_bucket(),
        n.batches_bucket(),
        n.items_bucket(),
        n.state_bucket(),
        n.specs_bucket(),
        n.checkpoints_bucket(),
    ] {
        g.write_bucket(&bucket);
        g.watch_bucket(&bucket);
        g.publish(format!("$JS.API.STREAM.PURGE.KV_{bucket}"));
    }
    for stream in [n.events_stream(), n.dlq_stream()] {
        g.publish(format!("$JS.API.STREAM.PURGE.{stream}"));
    }
}

fn submitter(g: &mut Grants) {
    let n = g.names.clone();
    g.bind();
    g.publish(n.submit_subject());
    g.publish(n.cancel_subject("*"));
    g.publish(n.config_subject("*"));
    g.read_bucket(&n.jobs_bucket());
    g.watch_bucket(&n.jobs_bucket());
    g.read_bucket(&n.batches_bucket());
    g.watch_bucket(&n.batches_bucket());
    g.subscribe(n.event_subject("*", "*"));
    g.read_stream(&n.events_stream());
}

fn worker(g: &mut Grants, scope: &Scope) {
    let n = g.names.clone();
    g.inbox();
    for subject in &scope.handler_subjects {
        g.subscribe(format!(
            "{subject} {}",
            jetflow_protocol::names::WORKER_QUEUE_GROUP
        ));
    }
    g.responses();
    // Shared job state: reading values and writing them at a revision
    // (any job's: a handler serves whichever jobs call it).
    g.write_bucket(&n.state_bucket());
    for job in &scope.external_jobs {
        g.pull(&n.tasks_stream(), &n.task_consumer(job));
        g.publish(n.result_subject(job));
        g.read_key(&n.jobs_bucket(), job);
    }
}

fn viewer(g: &mut Grants) {
    let n = g.names.clone();
    g.bind();
    for bucket in n.buckets() {
        g.read_bucket(&bucket);
        g.watch_bucket(&bucket);
    }
    // Work-queue streams are seen through their consumers: reading them
    // through a consumer of its own would take their messages.
    for stream in n.streams() {
        g.publish(format!("$JS.API.CONSUMER.INFO.{stream}.*"));
        g.publish(format!("$JS.API.CONSUMER.LIST.{stream}"));
    }
    for stream in [n.results_stream(), n.events_stream(), n.dlq_stream()] {
        g.read_stream(&stream);
    }
    g.subscribe(n.event_subject("*", "*"));
    g.publish("$JS.API.INFO".to_string());
    // `jetflow workers` and `nats micro ls|info|stats`.
    for verb in ["PING", "INFO", "STATS"] {
        g.publish(format!("$SRV.{verb}"));
        g.publish(format!("$SRV.{verb}.>"));
    }
    for stage in Stage::ALL {
        g.publish(format!("{}.*", n.service_group(stage)));
    }
}

/// Everything within the namespace, nothing outside it.
fn admin(g: &mut Grants) {
    let n = g.names.clone();
    viewer(g);
    g.publish(format!("{}.>", n.namespace()));
    let kv_streams = n.buckets().into_iter().map(|b| format!("KV_{b}"));
    for stream in n.streams().into_iter().chain(kv_streams) {
        g.publish(format!("$JS.API.STREAM.*.{stream}"));
        g.publish(format!("$JS.API.STREAM.MSG.*.{stream}"));
        g.publish(format!("$JS.API.CONSUMER.*.{stream}"));
        g.publish(format!("$JS.API.CONSUMER.*.{stream}.>"));
        g.publish(format!("$JS.API.CONSUMER.MSG.NEXT.{stream}.*"));
        g.publish(format!("$JS.API.DIRECT.GET.{stream}"));
        g.publish(format!("$JS.API.DIRECT.GET.{stream}.>"));
        g.publish(format!("$JS.ACK.{stream}.>"));
        g.publish(format!("$JS.ACK.*.*.{stream}.>"));
        g.publish(format!("$JS.FC.{stream}.>"));
    }
    for bucket in n.buckets() {
        g.publish(format!("$KV.{bucket}.>"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all_rights(p: &Permissions) -> impl Iterator<Item = &String> {
        p.publish.iter().chain(&p.subscribe)
    }

    #[test]
    fn no_role_but_admin_may_change_streams_and_none_has_the_whole_api() {
        let names = Names::default();
        for role in Role::ALL {
            let p = permissions(&names, role, &Scope::default());
            for right in all_rights(&p) {
                assert!(
                    !right.starts_with("$JS.API.>") && right != ">",
                    "{role}: {right}"
                );
                if role != Role::Admin {
                    for verb in ["CREATE", "UPDATE", "DELETE."] {
                        assert!(
                            !right.starts_with(&format!("$JS.API.STREAM.{verb}")),
                            "{role}: {right}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn a_stage_acks_in_both_forms_and_hears_only_its_own_inbox() {
        let names = Names::default();
        let p = permissions(&names, Role::Migrate, &Scope::default());
        assert!(p.publish.contains("$JS.ACK.JETFLOW_TASKS.*.>"));
        assert!(p.publish.contains("$JS.ACK.*.*.JETFLOW_TASKS.*.>"));
        assert!(p.subscribe.contains("_INBOX_jetflow_migrate.>"));
        assert!(!p.subscribe.iter().any(|s| s.starts_with("_INBOX.")));
    }

    #[test]
    fn a_worker_is_scoped_to_its_subjects_and_jobs() {
        let names = Names::default();
        let scope = Scope {
            handler_subjects: vec!["agents.>".into()],
            external_jobs: vec!["ext-1".into()],
            ..Scope::default()
        };
        let p = permissions(&names, Role::Worker, &scope);
        assert!(p.subscribe.contains("agents.> jetflow-workers"));
        assert!(p
            .publish
            .contains("$JS.API.CONSUMER.MSG.NEXT.JETFLOW_TASKS.task_ext-1"));
        assert!(p.publish.contains("jetflow.result.ext-1"));
        assert!(!p
            .publish
            .iter()
            .any(|s| s.contains("jobs.submit") || s.contains("task_*")));
        // Of the buckets, it writes the shared job state alone.
        let kv: Vec<&String> = p.publish.iter().filter(|s| s.starts_with("$KV.")).collect();
        assert_eq!(kv, ["$KV.jetflow_state.>"]);
        assert!(p
            .publish
            .contains("$JS.API.DIRECT.GET.KV_jetflow_state.$KV.jetflow_state.>"));
    }

    #[test]
    fn the_viewer_writes_nothing() {
        let names = Names::default();
        let p = permissions(&names, Role::Viewer, &Scope::default());
        for right in &p.publish {
            assert!(!right.starts_with("$KV."), "{right}");
            assert!(
                !right.contains("PURGE") && !right.contains("DELETE.KV"),
                "{right}"
            );
            assert!(!right.starts_with("jetflow.jobs."), "{right}");
        }
    }
}
