//! Jobs that wait for jobs: a job's `after` names jobs that must end
//! first, and in which statuses. The job is accepted and held `waiting`
//! (fetching nothing, calling nothing) until every one of them has ended;
//! if one ends in a status it does not list, the job fails with the reason.
//!
//! A dependency must exist when the job is submitted and cannot be the job
//! itself; since every dependency exists before the job that names it, the
//! jobs and their `after`s can form no cycle.

pub use super::spec::Dependency;
use super::{
    spec::{JobSpec, SourceSpec},
    status::JobStatus,
};

/// Every job `spec` waits for, with the field that names it: each of its
/// `after`, and a `job` source's job, which may end in any status (its
/// outcomes are the items, whatever they are).
pub fn waits_for(spec: &JobSpec) -> Vec<(String, Dependency)> {
    let mut all: Vec<(String, Dependency)> = spec
        .after
        .iter()
        .enumerate()
        .map(|(i, dep)| (format!("after[{i}].job"), dep.clone()))
        .collect();
    if let SourceSpec::Job { job, .. } = &spec.source {
        let ended = [
            JobStatus::Completed,
            JobStatus::Partial,
            JobStatus::Failed,
            JobStatus::Cancelled,
        ];
        let dep = Dependency {
            job: job.clone(),
            on: ended.to_vec(),
        };
        all.push(("source.job".to_string(), dep));
    }
    all
}

/// What one dependency says of the waiting job now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Wait {
    /// It has not ended yet.
    Pending,
    /// It ended in a status the job accepts.
    Met,
    /// It ended otherwise, or is gone: the job fails, for this reason.
    Broken(String),
}

/// What `dep` says, its state's status being `status` (`None`: it has no
/// state — removed after it ended).
pub fn verdict(dep: &Dependency, status: Option<JobStatus>) -> Wait {
    match status {
        None => Wait::Broken(format!("dependency {} is gone", dep.job)),
        Some(status) if !status.is_terminal() => Wait::Pending,
        Some(status) if dep.on.contains(&status) => Wait::Met,
        Some(status) => Wait::Broken(format!(
            "dependency {} ended {status} (after accepts {})",
            dep.job,
            names(&dep.on)
        )),
    }
}

fn names(statuses: &[JobStatus]) -> String {
    statuses
        .iter()
        .map(|s| s.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dep(job: &str, on: &[JobStatus]) -> Dependency {
        Dependency {
            job: job.into(),
            on: on.to_vec(),
        }
    }

    #[test]
    fn a_dependency_waits_until_it_ends_then_is_met_or_broken() {
        let d = dep("a", &[JobStatus::Completed, JobStatus::Partial]);
        assert_eq!(verdict(&d, Some(JobStatus::Fetching)), Wait::Pending);
        assert_eq!(verdict(&d, Some(JobStatus::Cancelling)), Wait::Pending);
        assert_eq!(verdict(&d, Some(JobStatus::Partial)), Wait::Met);
        assert_eq!(
            verdict(&d, Some(JobStatus::Failed)),
            Wait::Broken("dependency a ended failed (after accepts completed, partial)".into())
        );
        assert_eq!(
            verdict(&d, None),
            Wait::Broken("dependency a is gone".into())
        );
    }
}
