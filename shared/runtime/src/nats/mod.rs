//! Talking to NATS: connecting, provisioning, the [`Bus`](bus::Bus) every
//! stage publishes through, durable consumers, the task queue, targets'
//! slots, bucket scans and watches.

pub mod bus;
pub mod connect;
pub mod consume;
pub mod provision;
pub mod scan;
pub mod stage_consumers;
pub mod target_slots;
pub mod task_queue;
pub mod watch;
