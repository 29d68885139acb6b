//! Requests to a running job.

use serde::{Deserialize, Serialize};

/// The body of a cancel request on `<ns>.jobs.cancel.<job>` (an empty body is fine).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct CancelRequest {
    /// Why, for the job's state and `cancelled` event.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}
