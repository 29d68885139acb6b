//! Looking a job up for a page: its state, or a 404 that names it.

use jetflow_protocol::job::JobState;
use jetflow_runtime::Bus;

use super::problem::Problem;
use crate::job_state;

/// The job's state, or a 404 naming it.
pub async fn load(bus: &Bus, job: &str) -> Result<JobState, Problem> {
    job_state::load(bus, job).await.map_err(|err| {
        let message = format!("{err:#}");
        if message.starts_with("no job") || message.starts_with("JOB:") {
            Problem::not_found(message)
        } else {
            Problem::from(err)
        }
    })
}
