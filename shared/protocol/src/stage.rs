//! The four stages of the pipeline. A stage's name appears on the wire in
//! dead-letter subjects and headers (`<ns>.dlq.<stage>.<job>`,
//! `Jetflow-Stage`), in micro service names (`jetflow-<stage>`), in status
//! reports and in lease keys, so it is spelled in one place: here.

use std::{fmt, str::FromStr};

/// A stage of the pipeline.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Stage {
    /// Validates submissions and pages through sources.
    Fetch,
    /// Fans each page out into item tasks.
    Batch,
    /// Runs each item's handler.
    Migrate,
    /// Folds the ledger into tallies and finishes jobs.
    Reduce,
}

impl Stage {
    /// Every stage, in pipeline order.
    pub const ALL: [Stage; 4] = [Stage::Fetch, Stage::Batch, Stage::Migrate, Stage::Reduce];

    /// The name on the wire: `fetch`, `batch`, `migrate`, `reduce`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Stage::Fetch => "fetch",
            Stage::Batch => "batch",
            Stage::Migrate => "migrate",
            Stage::Reduce => "reduce",
        }
    }

    /// The micro service (and binary) name: `jetflow-<stage>`.
    pub const fn service_name(self) -> &'static str {
        match self {
            Stage::Fetch => "jetflow-fetch",
            Stage::Batch => "jetflow-batch",
            Stage::Migrate => "jetflow-migrate",
            Stage::Reduce => "jetflow-reduce",
        }
    }
}

impl fmt::Display for Stage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Stage {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Stage::ALL
            .into_iter()
            .find(|stage| stage.as_str() == s)
            .ok_or_else(|| format!("{s:?} is not a stage (fetch, batch, migrate or reduce)"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_unknown_names_are_refused() {
        for stage in Stage::ALL {
            assert_eq!(stage.as_str().parse::<Stage>(), Ok(stage));
            assert_eq!(stage.service_name(), format!("jetflow-{stage}"));
        }
        assert!("gc".parse::<Stage>().unwrap_err().contains("not a stage"));
    }
}
