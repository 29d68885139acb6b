//! Talking to NATS: connecting, provisioning, the [`Bus`](bus::Bus) every
//! stage publishes through, durable consumers, the task queue, bucket scans
//! and watches.

pub mod bus;
pub mod connect;
pub mod consume;
pub mod provision;
pub mod scan;
pub mod stage_consumers;
pub mod task_queue;
pub mod watch;
