//! Per-job work owned by one instance at a time: KV leases, and the
//! supervisor that starts and stops a job's task as ownership and the job's
//! state change.

pub mod lease;
pub mod supervisor;
