//! Jobs: the spec users submit, its validation, and the state jetflow keeps.

pub mod live;
pub mod spec;
pub mod state;
pub mod validate;

pub use live::ConfigChange;
pub use spec::{
    BatchSettings, FailurePolicy, HandlerSpec, HttpHandler, HttpSource, InlineItem, ItemId,
    JobSpec, Preset, Settings, SourceSpec,
};
pub use state::{
    BatchRecord, BatchStatus, ErrorSample, FetchCheckpoint, ItemOutcome, ItemStatus, JobState,
    JobStatus, OpenBatch,
};
pub use validate::{parse_submission, Invalid, Rejection};
