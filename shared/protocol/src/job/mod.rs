//! Jobs: the spec users submit, its validation, and the state jetflow keeps.

pub mod live;
pub mod spec;
pub mod state;
pub mod validate;

pub use live::ConfigChange;
pub use spec::{
    BatchSettings, ExternalHandler, FailurePolicy, HandlerSpec, HttpHandler, HttpSource,
    InlineItem, InlineItemOrId, ItemId, JobSpec, NatsHandler, Preset, Settings, SourceSpec, Step,
    StepCall,
};
pub use state::{
    BatchRecord, BatchStatus, ErrorSample, FetchCheckpoint, ItemOutcome, ItemStatus, JobState,
    JobStatus, OpenBatch,
};
pub use validate::{parse_submission, Invalid, Rejection};
