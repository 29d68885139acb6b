//! Errors of jetflow's own plumbing, with their cause kept and a kind that
//! callers decide on: retry, treat as "someone else won", or give up.
//!
//! The kind of a NATS failure comes from async-nats's own error kinds and
//! JetStream's API error codes ([`Classify`]), never from message text.

use std::fmt;

use async_nats::jetstream::{
    self,
    consumer::{self, pull},
    context, kv, stream,
};
use jetflow_protocol::codec::DecodeError;

/// A boxed cause.
type Cause = Box<dyn std::error::Error + Send + Sync + 'static>;

/// An error talking to NATS or handling a message.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A NATS or JetStream operation failed; [`Error::kind`] says how.
    #[error("{context}: {source}")]
    Nats {
        /// What we were doing.
        context: String,
        /// How it failed.
        kind: ErrorKind,
        /// What NATS said.
        #[source]
        source: Cause,
    },
    /// A payload could not be decoded: permanent for that message.
    #[error(transparent)]
    Decode(#[from] DecodeError),
    /// A setting or argument is invalid; names the field.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// The service is shutting down.
    #[error("shutting down")]
    Shutdown,
}

/// How an operation failed, for callers that decide what to do next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// Someone else wrote first: a compare-and-swap lost (wrong last
    /// revision or sequence) or a create found the thing already there.
    /// Normal control flow for optimistic writers.
    Conflict,
    /// The stream, consumer, bucket, key or message does not exist.
    NotFound,
    /// Doing the same again later may succeed: a timeout, no responders, a
    /// lost connection, a cluster electing leaders.
    Transient,
    /// The server refused the request and will refuse it again: bad
    /// arguments, a limit, a config it cannot apply.
    Refused,
    /// Our own input is invalid: a payload that does not decode, a setting.
    Invalid,
    /// The service is shutting down.
    Shutdown,
}

impl Error {
    /// A NATS failure with no richer cause than a message (a stream that
    /// ended, a reply that did not come).
    pub fn nats(context: impl Into<String>, kind: ErrorKind, message: impl Into<String>) -> Self {
        Error::Nats {
            context: context.into(),
            kind,
            source: message.into().into(),
        }
    }

    /// A NATS failure whose cause comes boxed, with no kind of its own to
    /// read (the micro service API): transient.
    pub fn boxed(context: impl Into<String>, source: Cause) -> Self {
        Error::Nats {
            context: context.into(),
            kind: ErrorKind::Transient,
            source,
        }
    }

    /// Says what we were doing around what failed: `"<context>: <was>"`.
    pub fn with_context(self, context: impl Into<String>) -> Self {
        match self {
            Error::Nats {
                context: inner,
                kind,
                source,
            } => Error::Nats {
                context: format!("{}: {inner}", context.into()),
                kind,
                source,
            },
            other => other,
        }
    }

    /// How it failed.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::Nats { kind, .. } => *kind,
            Error::Decode(_) | Error::Config(_) => ErrorKind::Invalid,
            Error::Shutdown => ErrorKind::Shutdown,
        }
    }

    /// Whether doing the same thing again later may succeed.
    pub fn is_transient(&self) -> bool {
        self.kind() == ErrorKind::Transient
    }

    /// A lost compare-and-swap or a create of something that exists.
    pub fn is_conflict(&self) -> bool {
        self.kind() == ErrorKind::Conflict
    }

    /// The thing operated on does not exist.
    pub fn is_not_found(&self) -> bool {
        self.kind() == ErrorKind::NotFound
    }
}

/// `Result` with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Adds context to NATS errors: `kv.put(..).await.ctx("writing job state")?`.
pub trait ResultExt<T> {
    /// Wraps the error as [`Error::Nats`] with `context`, keeping it as the
    /// source and its [`Classify`] kind.
    fn ctx(self, context: impl Into<String>) -> Result<T>;
}

impl<T, E> ResultExt<T> for std::result::Result<T, E>
where
    E: Classify + std::error::Error + Send + Sync + 'static,
{
    fn ctx(self, context: impl Into<String>) -> Result<T> {
        self.map_err(|e| Error::Nats {
            context: context.into(),
            kind: e.error_kind(),
            source: Box::new(e),
        })
    }
}

/// The [`ErrorKind`] of an error from async-nats (or the few other
/// libraries the plumbing calls).
pub trait Classify {
    /// How it failed.
    fn error_kind(&self) -> ErrorKind;
}

/// The kind of a JetStream API error, by its error code.
pub fn api_error_kind(err: &jetstream::Error) -> ErrorKind {
    use jetstream::ErrorCode as C;
    match err.error_code() {
        C::STREAM_NOT_FOUND
        | C::CONSUMER_NOT_FOUND
        | C::CONSUMER_DOES_NOT_EXIST
        | C::NO_MESSAGE_FOUND
        | C::SEQUENCE_NOT_FOUND => ErrorKind::NotFound,
        C::STREAM_WRONG_LAST_SEQUENCE
        | C::STREAM_WRONG_LAST_SEQUENCE_CONSTANT
        | C::STREAM_WRONG_LAST_MESSAGE_ID
        | C::STREAM_NAME_EXIST
        | C::CONSUMER_NAME_EXIST
        | C::CONSUMER_ALREADY_EXISTS => ErrorKind::Conflict,
        C::CLUSTER_NOT_AVAILABLE
        | C::CLUSTER_NOT_LEADER
        | C::CLUSTER_NOT_ACTIVE
        | C::CLUSTER_NOT_ASSIGNED
        | C::CLUSTER_INCOMPLETE
        | C::CLUSTER_NO_PEERS
        | C::CLUSTER_SERVER_MEMBER_CHANGE_INFLIGHT => ErrorKind::Transient,
        _ => ErrorKind::Refused,
    }
}

/// Opening a bucket wraps whatever looking up its stream said as "cannot
/// get the bucket": a time-out too, which is transient, not "not found".
impl Classify for context::KeyValueError {
    fn error_kind(&self) -> ErrorKind {
        match self.kind() {
            context::KeyValueErrorKind::InvalidStoreName => ErrorKind::Invalid,
            context::KeyValueErrorKind::GetBucket => std::error::Error::source(self)
                .and_then(|source| source.downcast_ref::<context::GetStreamError>())
                .map_or(ErrorKind::NotFound, Classify::error_kind),
            _ => ErrorKind::Transient,
        }
    }
}

/// Implements [`Classify`] for `async_nats::error::Error<$kind>` by a match
/// on the kind; kinds not named are transient (timeouts, I/O, requests).
macro_rules! classify {
    ($($error:ty => |$k:ident| $body:expr;)*) => {$(
        impl Classify for $error {
            fn error_kind(&self) -> ErrorKind {
                let $k = self.kind();
                #[allow(unreachable_patterns, clippy::match_single_binding)]
                $body
            }
        }
    )*};
}

classify! {
    kv::CreateError => |k| match k {
        kv::CreateErrorKind::AlreadyExists => ErrorKind::Conflict,
        kv::CreateErrorKind::InvalidKey => ErrorKind::Invalid,
        _ => ErrorKind::Transient,
    };
    kv::UpdateError => |k| match k {
        kv::UpdateErrorKind::WrongLastRevision => ErrorKind::Conflict,
        kv::UpdateErrorKind::InvalidKey => ErrorKind::Invalid,
        _ => ErrorKind::Transient,
    };
    kv::PutError => |k| match k {
        kv::PutErrorKind::InvalidKey => ErrorKind::Invalid,
        _ => ErrorKind::Transient,
    };
    kv::EntryError => |k| match k {
        kv::EntryErrorKind::InvalidKey => ErrorKind::Invalid,
        _ => ErrorKind::Transient,
    };
    kv::WatchError => |k| match k {
        kv::WatchErrorKind::InvalidKey => ErrorKind::Invalid,
        _ => ErrorKind::Transient,
    };
    kv::StatusError => |k| match k {
        kv::StatusErrorKind::JetStream(err) => api_error_kind(&err),
        _ => ErrorKind::Transient,
    };
    context::PublishError => |k| match k {
        context::PublishErrorKind::StreamNotFound => ErrorKind::NotFound,
        context::PublishErrorKind::WrongLastSequence
        | context::PublishErrorKind::WrongLastMessageId => ErrorKind::Conflict,
        context::PublishErrorKind::MaxPayloadExceeded => ErrorKind::Refused,
        _ => ErrorKind::Transient,
    };
    context::RequestError => |k| match k {
        context::RequestErrorKind::InvalidSubject => ErrorKind::Invalid,
        _ => ErrorKind::Transient,
    };
    context::CreateStreamError => |k| match k {
        context::CreateStreamErrorKind::JetStream(err) => api_error_kind(&err),
        context::CreateStreamErrorKind::NotFound => ErrorKind::NotFound,
        context::CreateStreamErrorKind::EmptyStreamName
        | context::CreateStreamErrorKind::InvalidStreamName
        | context::CreateStreamErrorKind::DomainAndExternalSet => ErrorKind::Invalid,
        _ => ErrorKind::Transient,
    };
    context::GetStreamError => |k| match k {
        context::GetStreamErrorKind::JetStream(err) => api_error_kind(&err),
        context::GetStreamErrorKind::EmptyName
        | context::GetStreamErrorKind::InvalidStreamName => ErrorKind::Invalid,
        _ => ErrorKind::Transient,
    };
    context::CreateKeyValueError => |k| match k {
        context::CreateKeyValueErrorKind::InvalidStoreName => ErrorKind::Invalid,
        context::CreateKeyValueErrorKind::BucketCreate => ErrorKind::Refused,
        _ => ErrorKind::Transient,
    };
    context::ConsumerInfoError => |k| match k {
        context::ConsumerInfoErrorKind::JetStream(err) => api_error_kind(&err),
        _ => ErrorKind::Transient,
    };
    stream::ConsumerError => |k| match k {
        stream::ConsumerErrorKind::JetStream(err) => api_error_kind(&err),
        stream::ConsumerErrorKind::InvalidName
        | stream::ConsumerErrorKind::InvalidConsumerType => ErrorKind::Invalid,
        _ => ErrorKind::Transient,
    };
    stream::DirectGetError => |k| match k {
        stream::DirectGetErrorKind::NotFound => ErrorKind::NotFound,
        stream::DirectGetErrorKind::InvalidSubject => ErrorKind::Invalid,
        _ => ErrorKind::Transient,
    };
    stream::DeleteMessageError => |k| match k {
        stream::DeleteMessageErrorKind::JetStream(err) => api_error_kind(&err),
        _ => ErrorKind::Transient,
    };
    stream::PurgeError => |k| match k {
        stream::PurgeErrorKind::JetStream(err) => api_error_kind(&err),
        _ => ErrorKind::Transient,
    };
    stream::LastRawMessageError => |k| match k {
        stream::LastRawMessageErrorKind::NoMessageFound => ErrorKind::NotFound,
        stream::LastRawMessageErrorKind::JetStream(err) => api_error_kind(&err),
        _ => ErrorKind::Transient,
    };
    consumer::StreamError => |_k| ErrorKind::Transient;
    pull::MessagesError => |k| match k {
        pull::MessagesErrorKind::ConsumerDeleted => ErrorKind::NotFound,
        pull::MessagesErrorKind::PushBasedConsumer
        | pull::MessagesErrorKind::RequestLimitExceeded => ErrorKind::Refused,
        _ => ErrorKind::Transient,
    };
    pull::BatchError => |_k| ErrorKind::Transient;
    pull::OrderedError => |_k| ErrorKind::Transient;
    async_nats::PublishError => |k| match k {
        async_nats::client::PublishErrorKind::MaxPayloadExceeded => ErrorKind::Refused,
        async_nats::client::PublishErrorKind::InvalidSubject => ErrorKind::Invalid,
        _ => ErrorKind::Transient,
    };
    async_nats::SubscribeError => |k| match k {
        async_nats::client::SubscribeErrorKind::InvalidSubject => ErrorKind::Invalid,
        _ => ErrorKind::Transient,
    };
    async_nats::RequestError => |k| match k {
        async_nats::client::RequestErrorKind::InvalidSubject => ErrorKind::Invalid,
        async_nats::client::RequestErrorKind::MaxPayloadExceeded => ErrorKind::Refused,
        _ => ErrorKind::Transient,
    };
    async_nats::client::FlushError => |_k| ErrorKind::Transient;
    async_nats::ConnectError => |k| match k {
        async_nats::ConnectErrorKind::ServerParse => ErrorKind::Invalid,
        async_nats::ConnectErrorKind::AuthorizationViolation
        | async_nats::ConnectErrorKind::Tls => ErrorKind::Refused,
        _ => ErrorKind::Transient,
    };
}

impl Classify for jetstream::Error {
    fn error_kind(&self) -> ErrorKind {
        api_error_kind(self)
    }
}

impl Classify for std::io::Error {
    fn error_kind(&self) -> ErrorKind {
        ErrorKind::Transient
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ErrorKind::Conflict => "conflict",
            ErrorKind::NotFound => "not found",
            ErrorKind::Transient => "transient",
            ErrorKind::Refused => "refused",
            ErrorKind::Invalid => "invalid",
            ErrorKind::Shutdown => "shutting down",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bucket_that_could_not_be_looked_up_in_time_is_transient_not_missing() {
        let timed_out = context::GetStreamError::new(context::GetStreamErrorKind::Request);
        let err =
            context::KeyValueError::with_source(context::KeyValueErrorKind::GetBucket, timed_out);
        assert_eq!(err.error_kind(), ErrorKind::Transient);
        let bare = context::KeyValueError::new(context::KeyValueErrorKind::GetBucket);
        assert_eq!(bare.error_kind(), ErrorKind::NotFound);
    }
}
