//! Header names jetflow reads and writes. Dead-letter headers are part of the
//! public contract: operators filter the DLQ by them with the `nats` CLI.

/// `Content-Type` of a payload: [`MSGPACK`](crate::codec::MSGPACK) or [`JSON`](crate::codec::JSON).
pub const CONTENT_TYPE: &str = "Content-Type";
/// JetStream de-duplication id.
pub const MSG_ID: &str = "Nats-Msg-Id";

/// The job a dead letter belongs to (`_` when it could not be read).
pub const JOB: &str = "Jetflow-Job";
/// The item a dead letter belongs to, when there is one.
pub const ITEM: &str = "Jetflow-Item";
/// The stage that dead-lettered the message: `fetch`, `batch`, `migrate`, `reduce`.
pub const STAGE: &str = "Jetflow-Stage";
/// Why the message was dead-lettered, in words.
pub const ERROR: &str = "Jetflow-Error";
/// How many times the message was delivered before it was given up.
pub const ATTEMPTS: &str = "Jetflow-Attempts";
/// On a task published again by `jetflow dlq replay`: the sequence of the
/// dead letter it came from. A replayed task runs even though its item has a
/// (failed) outcome.
pub const REPLAY: &str = "Jetflow-Replay";
/// On a task published again because its batch was delivered again (batch
/// crashed mid-dispatch): the item may have finished since, so migrate
/// checks for its outcome before calling. Plain first deliveries skip that
/// read, which is one round trip per item saved.
pub const REDISPATCHED: &str = "Jetflow-Redispatched";
/// JetStream message schedule (`@at <RFC 3339>`): the server publishes the
/// message to [`SCHEDULE_TARGET`] at that time and removes the schedule.
pub const SCHEDULE: &str = "Nats-Schedule";
/// Where a message schedule publishes its message.
pub const SCHEDULE_TARGET: &str = "Nats-Schedule-Target";
/// Set by the server on a message a schedule published: the schedule's
/// subject. On a task it means the task waited out a retry.
pub const SCHEDULER: &str = "Nats-Scheduler";
/// The subject the message was originally published to.
pub const ORIGINAL_SUBJECT: &str = "Jetflow-Original-Subject";
/// On a `nats` handler request: `<job>:<item>` (`<job>:<item>:<step>` for
/// a step), what a worker de-duplicates its effect by.
pub const IDEMPOTENCY_KEY: &str = "Idempotency-Key";
