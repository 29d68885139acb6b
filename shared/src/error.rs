//! Errors of jetflow's own plumbing, and whether retrying can help.

/// An error talking to NATS or handling a message.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A NATS or JetStream operation failed; usually transient (reconnects,
    /// timeouts, leader elections).
    #[error("{context}: {message}")]
    Nats {
        /// What we were doing.
        context: String,
        /// What NATS said.
        message: String,
    },
    /// A payload could not be decoded: permanent for that message.
    #[error(transparent)]
    Decode(#[from] crate::codec::DecodeError),
    /// A setting or argument is invalid; names the field.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// The service is shutting down.
    #[error("shutting down")]
    Shutdown,
}

impl Error {
    /// Whether doing the same thing again later may succeed.
    pub fn is_transient(&self) -> bool {
        matches!(self, Error::Nats { .. })
    }
}

/// `Result` with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Adds context to NATS errors: `kv.put(..).await.ctx("writing job state")?`.
pub trait ResultExt<T> {
    /// Wraps the error as [`Error::Nats`] with `context`.
    fn ctx(self, context: impl Into<String>) -> Result<T>;
}

impl<T, E: std::fmt::Display> ResultExt<T> for std::result::Result<T, E> {
    fn ctx(self, context: impl Into<String>) -> Result<T> {
        self.map_err(|e| Error::Nats {
            context: context.into(),
            message: e.to_string(),
        })
    }
}
