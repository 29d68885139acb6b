//! Running an item's handler.

pub mod http;

/// Why a handler call did not succeed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HandlerError {
    /// Worth retrying: 429, 5xx, timeouts, connection errors, listed statuses.
    #[error("{0}")]
    Transient(String),
    /// Not worth retrying: the target said no.
    #[error("{0}")]
    Permanent(String),
}
