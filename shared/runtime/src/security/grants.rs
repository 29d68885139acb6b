//! What a right to do one thing is in subjects: pulling from a consumer,
//! watching or writing a bucket, answering as a micro service. The roles
//! ([`super::roles`]) are made of these.

use std::collections::BTreeSet;

use jetflow_protocol::{Names, Stage};

/// One role's rights.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Permissions {
    /// Subjects it may publish to.
    pub publish: BTreeSet<String>,
    /// Subjects it may subscribe to (`subject queue` restricts the group).
    pub subscribe: BTreeSet<String>,
    /// Whether it may answer requests it received (micro services do).
    pub responses: bool,
}

/// Rights being gathered for one role.
pub(super) struct Grants {
    pub(super) names: Names,
    inbox: String,
    permissions: Permissions,
}

impl Grants {
    /// Rights in `names`' namespace for a user whose replies come to
    /// `inbox`.
    pub(super) fn new(names: &Names, inbox: String) -> Self {
        Self {
            names: names.clone(),
            inbox,
            permissions: Permissions::default(),
        }
    }

    pub(super) fn done(self) -> Permissions {
        self.permissions
    }

    pub(super) fn publish(&mut self, subject: String) {
        self.permissions.publish.insert(subject);
    }

    pub(super) fn publish_all(&mut self, subjects: &[String]) {
        for subject in subjects {
            self.publish(subject.clone());
        }
    }

    pub(super) fn subscribe(&mut self, subject: String) {
        self.permissions.subscribe.insert(subject);
    }

    pub(super) fn responses(&mut self) {
        self.permissions.responses = true;
    }

    /// Replies to its own requests (JetStream API answers, publish acks,
    /// watch deliveries) come to its own inbox.
    pub(super) fn inbox(&mut self) {
        let inbox = format!("{}.>", self.inbox);
        self.subscribe(inbox);
    }

    /// Looking up every stream and bucket, as every part does at start
    /// (a bind-only check), without touching their messages.
    pub(super) fn bind(&mut self) {
        self.inbox();
        let n = self.names.clone();
        for stream in n.streams() {
            self.publish(format!("$JS.API.STREAM.INFO.{stream}"));
        }
        for bucket in n.buckets() {
            self.publish(format!("$JS.API.STREAM.INFO.KV_{bucket}"));
        }
    }

    /// What every stage does: bind, answer as a micro service, write its
    /// own dead letters.
    pub(super) fn stage(&mut self, stage: Stage) {
        self.bind();
        let name = stage.service_name();
        for verb in ["PING", "INFO", "STATS"] {
            self.subscribe(format!("$SRV.{verb}"));
            self.subscribe(format!("$SRV.{verb}.{name}"));
            self.subscribe(format!("$SRV.{verb}.{name}.*"));
        }
        self.subscribe(format!("{}.*", self.names.service_group(stage)));
        self.responses();
        self.publish(self.names.dlq_subject(stage, "*"));
    }

    /// Pulling from `consumer` (`*`: any) on `stream` and acknowledging,
    /// in both forms of the ack subject (nats-server 2.15 makes
    /// `$JS.ACK.<domain>.<account>.<stream>...` the default).
    pub(super) fn pull(&mut self, stream: &str, consumer: &str) {
        self.inbox();
        self.publish(format!("$JS.API.CONSUMER.INFO.{stream}.{consumer}"));
        self.publish(format!("$JS.API.CONSUMER.MSG.NEXT.{stream}.{consumer}"));
        self.publish(format!("$JS.ACK.{stream}.{consumer}.>"));
        self.publish(format!("$JS.ACK.*.*.{stream}.{consumer}.>"));
    }

    /// Reading a stream's messages in order through an ordered consumer
    /// (the server names it and asks for flow control).
    pub(super) fn read_stream(&mut self, stream: &str) {
        self.inbox();
        self.publish(format!("$JS.API.STREAM.INFO.{stream}"));
        self.publish(format!("$JS.API.CONSUMER.CREATE.{stream}"));
        self.publish(format!("$JS.API.CONSUMER.CREATE.{stream}.>"));
        self.publish(format!("$JS.API.CONSUMER.MSG.NEXT.{stream}.*"));
        // An ordered consumer checks on itself after a reconnect.
        self.publish(format!("$JS.API.CONSUMER.INFO.{stream}.*"));
        self.publish(format!("$JS.FC.{stream}.>"));
        self.publish(format!("$JS.API.DIRECT.GET.{stream}"));
        self.publish(format!("$JS.API.DIRECT.GET.{stream}.>"));
        self.publish(format!("$JS.API.STREAM.MSG.GET.{stream}"));
    }

    /// Getting keys of `bucket`.
    pub(super) fn read_bucket(&mut self, bucket: &str) {
        self.read_key(bucket, ">");
    }

    /// Getting one key of `bucket` (`>`: any).
    pub(super) fn read_key(&mut self, bucket: &str, key: &str) {
        self.inbox();
        self.publish(format!("$JS.API.STREAM.INFO.KV_{bucket}"));
        self.publish(format!("$JS.API.DIRECT.GET.KV_{bucket}"));
        self.publish(format!("$JS.API.DIRECT.GET.KV_{bucket}.$KV.{bucket}.{key}"));
    }

    /// Watching and listing `bucket`'s keys.
    pub(super) fn watch_bucket(&mut self, bucket: &str) {
        self.read_bucket(bucket);
        self.read_stream(&format!("KV_{bucket}"));
    }

    /// Putting, creating, updating and deleting keys of `bucket`.
    pub(super) fn write_bucket(&mut self, bucket: &str) {
        self.read_bucket(bucket);
        self.publish(format!("$KV.{bucket}.>"));
    }

    /// Creating and updating jobs' task queues: consumers of the tasks
    /// stream (any name; NATS cannot match `task_*`) filtering a task
    /// subject.
    pub(super) fn write_task_queues(&mut self) {
        let n = self.names.clone();
        self.publish(format!(
            "$JS.API.CONSUMER.CREATE.{}.*.{}",
            n.tasks_stream(),
            n.task_subject("*")
        ));
    }

    /// Holding leases of `role` (`<role>.<job>` keys).
    pub(super) fn lease(&mut self, role: &str) {
        let bucket = self.names.leases_bucket();
        self.read_bucket(&bucket);
        self.publish(format!("$KV.{bucket}.{role}.>"));
    }

    /// Publishing lifecycle events.
    pub(super) fn events(&mut self) {
        self.publish(self.names.event_subject("*", "*"));
    }

    /// Moving strays of `stream` to the DLQ ([`crate::ops::janitor`]).
    pub(super) fn sweep(&mut self, stream: &str) {
        self.read_stream(stream);
        self.publish(format!("$JS.API.STREAM.MSG.DELETE.{stream}"));
    }
}
