//! Priority under a target's shared rate limit: which jobs on this
//! instance have work for a rate-limited target, and so how far into each
//! of the limit's windows a job waits before it takes tokens. The
//! highest-priority jobs with work take at once; lower ones later in the
//! window, and get what the higher ones left. A window's tokens are never
//! held back for nobody: a job that waited still takes whatever is left.
//!
//! Every migrate instance runs a worker for every active job, and a job's
//! work is read from its task consumer (the same for every instance), so
//! each instance sees the same competitors without talking to the others.

use std::{
    collections::{BTreeMap, BTreeSet, HashMap},
    ops::Bound,
    sync::Mutex,
};

/// The latest point in a window a job waits to: the lowest priority takes
/// half-way through, leaving it half the window to pull and start.
const LATEST: f64 = 0.5;

/// The jobs with work for each rate-limited target, and their priorities.
#[derive(Default)]
pub(crate) struct Competition {
    demand: Mutex<HashMap<String, BTreeMap<String, i32>>>,
}

impl Competition {
    /// Records whether `job` has work for `target` now: `Some(priority)`
    /// while it has, `None` once it has not.
    pub(crate) fn set(&self, target: &str, job: &str, priority: Option<i32>) {
        let Ok(mut demand) = self.demand.lock() else {
            return;
        };
        match priority {
            Some(priority) => {
                demand
                    .entry(target.to_string())
                    .or_default()
                    .insert(job.to_string(), priority);
            }
            None => {
                if let Some(jobs) = demand.get_mut(target) {
                    jobs.remove(job);
                    if jobs.is_empty() {
                        demand.remove(target);
                    }
                }
            }
        }
    }

    /// How far into a window of `target`'s limit a job of `priority` waits
    /// before taking tokens, as a fraction of the window.
    pub(crate) fn wait(&self, target: &str, priority: i32) -> f64 {
        let Ok(demand) = self.demand.lock() else {
            return 0.0;
        };
        let others = demand
            .get(target)
            .into_iter()
            .flat_map(|jobs| jobs.values());
        wait_share(priority, others.copied())
    }
}

/// How far into a window a taker of `priority` waits, given the
/// priorities of every job with work for the same limit: 0 for the
/// highest, [`LATEST`] for the lowest, evenly between by rank among the
/// distinct priorities.
fn wait_share(priority: i32, competitors: impl IntoIterator<Item = i32>) -> f64 {
    let mut levels: BTreeSet<i32> = competitors.into_iter().collect();
    levels.insert(priority);
    let above = levels
        .range((Bound::Excluded(priority), Bound::Unbounded))
        .count();
    match levels.len() {
        1 => 0.0,
        n => LATEST * above as f64 / (n - 1) as f64,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_highest_priority_takes_first_and_lower_ones_later_in_the_window() {
        assert_eq!(wait_share(0, []), 0.0);
        assert_eq!(wait_share(0, [0, 0]), 0.0, "equal jobs take alike");
        assert_eq!(wait_share(3, [0, 3]), 0.0);
        assert_eq!(wait_share(0, [0, 3]), 0.5);
        assert_eq!(wait_share(1, [0, 1, 3]), 0.25);
        assert_eq!(wait_share(-2, [0, 1, 3]), 0.5);
        assert_eq!(wait_share(i32::MAX, [i32::MIN]), 0.0);
    }

    #[test]
    fn a_job_counts_only_while_it_has_work() {
        let competition = Competition::default();
        competition.set("api", "high", Some(3));
        competition.set("api", "low", Some(0));
        competition.set("other", "else", Some(9));
        assert_eq!(competition.wait("api", 0), 0.5);
        assert_eq!(competition.wait("api", 3), 0.0);
        competition.set("api", "high", None);
        assert_eq!(competition.wait("api", 0), 0.0);
        competition.set("api", "low", None);
        assert!(competition.demand.lock().unwrap().get("api").is_none());
    }
}
