//! Jobs: the spec users submit, its validation, and the state jetflow keeps
//! (of the job, its batches, each item's outcome, where its tasks wait).
//! The messages that carry these (`crate::messages`) build on this module,
//! never the other way round.

pub mod after;
pub mod error_groups;
pub mod fields;
pub mod live;
pub mod notify;
pub mod outcome;
pub mod queue;
pub mod reduction;
pub mod rejection;
pub mod spec;
pub mod state;
pub mod status;
pub mod validate;

pub use after::Dependency;
pub use error_groups::{ErrorGroup, ErrorGroups};
pub use live::ConfigChange;
pub use notify::Notify;
pub use outcome::{ItemOutcome, ItemStatus, OutcomeFilter, PreviousOutcome, StepOutput};
pub use queue::TaskQueue;
pub use reduction::{ReduceOp, Reduced, Reduction, ValuePath};
pub use rejection::Rejection;
pub use spec::{
    BatchSettings, ExternalHandler, FailurePolicy, HandlerSpec, HttpHandler, HttpSource,
    InlineItem, InlineItemOrId, ItemId, JobSpec, NatsHandler, Preset, Settings, SourceSpec, Step,
    StepCall,
};
pub use state::{
    BatchRecord, BatchStatus, ErrorSample, FetchCheckpoint, JobState, JobStatus, OpenBatch,
};
pub use validate::{parse_submission, Invalid};
