//! A job file pasted in, previewed: the dry run `jetflow submit --dry-run`
//! prints (services/cli/src/commands/dry_run.rs), on a page. It reads the
//! job's source (the first pages), so it is behind `--allow-actions` like
//! the actions: an open dashboard must not fetch URLs for anyone who asks.
//! Nothing is called and nothing is written to NATS until the user, having
//! read the preview, presses "Submit": that posts the previewed document
//! (with the id the preview gave it, so pressing twice submits one job) to
//! `/preview/submit`, which publishes it as `jetflow submit` does.

use std::collections::HashMap;

use axum::{
    extract::State,
    response::{IntoResponse, Redirect, Response},
    routing::{get, post},
    Form, Router,
};
use jetflow_protocol::job::{fields, parse_submission, Invalid, JobSpec};

use super::{
    actions::{allowed, form_token},
    encode, job_href,
    problem::{html, Problem},
    templates::PreviewPage,
    App,
};
use crate::commands::{dry_run, submit};

/// Handler requests shown, as the CLI's default `--requests`.
const REQUESTS: usize = 3;
/// Most pages one preview reads.
const MAX_PAGES: u32 = 20;

pub fn routes() -> Router<App> {
    Router::new()
        .route("/preview", get(form).post(run))
        .route("/preview/submit", post(submit_job))
}

/// What a pasted job is, before anything is read.
#[derive(Debug)]
enum Examined {
    /// A job the services would accept: its id (given one if it had
    /// none), the document to submit (the user's, with that id), and the
    /// fields it has that the job format does not (typos, most likely).
    Ready {
        id: String,
        body: serde_json::Value,
        spec: Box<JobSpec>,
        warnings: Vec<String>,
    },
    /// Not a job the services would accept: why.
    Rejected(String),
}

/// Checks `text` as `jetflow submit` does.
fn examine(text: &str) -> Examined {
    let (id, body) = match submit::prepare(text) {
        Ok(prepared) => prepared,
        Err(Invalid::Rejected { rejection, .. }) => {
            return Examined::Rejected(format!("rejected: {rejection}"))
        }
        Err(Invalid::Undecodable(reason)) => return Examined::Rejected(reason),
    };
    let warnings = fields::unknown(&body)
        .iter()
        .map(|field| field.to_string())
        .collect();
    match parse_submission(None, body.to_string().as_bytes(), || id.clone()) {
        Ok(spec) => Examined::Ready {
            id,
            body,
            spec: Box::new(spec),
            warnings,
        },
        Err(err) => Examined::Rejected(err.to_string()),
    }
}

/// The number of pages asked for: 1 unless a number from 1 to [`MAX_PAGES`].
fn pages_of(form: &HashMap<String, String>) -> u32 {
    form.get("pages")
        .and_then(|p| p.trim().parse::<u32>().ok())
        .unwrap_or(1)
        .clamp(1, MAX_PAGES)
}

fn page(app: &App, job_text: String, pages: u32) -> PreviewPage {
    PreviewPage {
        frame: app.frame("Preview a job", "preview"),
        csrf: app.csrf.to_string(),
        job_text,
        pages,
        max_pages: MAX_PAGES,
        warnings: Vec::new(),
        error: None,
        report: None,
        submit: None,
    }
}

async fn form(State(app): State<App>) -> Result<Response, Problem> {
    allowed(&app)?;
    Ok(html(&page(&app, String::new(), 1))?.into_response())
}

async fn run(
    State(app): State<App>,
    Form(form): Form<HashMap<String, String>>,
) -> Result<Response, Problem> {
    allowed(&app)?;
    form_token(&app, &form)?;
    let text = form.get("job").cloned().unwrap_or_default();
    let pages = pages_of(&form);
    let mut shown = page(&app, text.clone(), pages);
    match examine(&text) {
        Examined::Rejected(why) => shown.error = Some(why),
        Examined::Ready {
            id,
            body,
            spec,
            warnings,
        } => {
            shown.warnings = warnings;
            let reach = dry_run::Reach {
                sample_pages: pages,
                count: false,
                requests: REQUESTS,
            };
            match dry_run::preview(&spec, reach, Some(&app.bus)).await? {
                Ok(report) => {
                    shown.report = Some(report);
                    shown.submit = Some((id, body.to_string()));
                }
                Err(error) => shown.error = Some(format!("the source refused or failed: {error}")),
            }
        }
    }
    Ok(html(&shown)?.into_response())
}

/// Submits a previewed job and shows its page; a refusal (by this check
/// or by the fetch service) comes back to the preview with why.
async fn submit_job(
    State(app): State<App>,
    Form(form): Form<HashMap<String, String>>,
) -> Result<Response, Problem> {
    allowed(&app)?;
    form_token(&app, &form)?;
    let text = form.get("job").cloned().unwrap_or_default();
    let mut shown = page(&app, text.clone(), 1);
    let why = match examine(&text) {
        Examined::Rejected(why) => why,
        Examined::Ready { id, body, .. } => match submit::submit(&app.bus, &id, body).await? {
            submit::Verdict::Accepted => {
                let href = format!("{}?done={}", job_href(&id), encode("submitted"));
                return Ok(Redirect::to(&href).into_response());
            }
            submit::Verdict::Rejected(reason) => format!("rejected: {reason}"),
        },
    };
    shown.error = Some(why);
    Ok(html(&shown)?.into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(batch: &str) -> String {
        format!(
            r#"{{"id": "p-1", "source": {{"type": "ids", "ids": ["a", "b"]}},
               "handler": {{"type": "nats", "subject": "work.do"}}, "batch": {batch}}}"#
        )
    }

    #[test]
    fn a_typo_is_a_warning_and_the_job_is_still_ready() {
        match examine(&job(r#"{"concurency": 10}"#)) {
            Examined::Ready {
                id, spec, warnings, ..
            } => {
                assert_eq!(id, "p-1");
                assert_eq!(spec.id.as_deref(), Some("p-1"));
                assert_eq!(warnings.len(), 1, "{warnings:?}");
                assert!(warnings[0].contains("batch.concurency"), "{warnings:?}");
                assert!(warnings[0].contains("concurrency"), "{warnings:?}");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_job_without_an_id_is_given_one_to_submit_under() {
        let text = job("{}").replace(r#""id": "p-1", "#, "");
        let Examined::Ready { id, body, .. } = examine(&text) else {
            panic!("not ready");
        };
        assert!(id.starts_with("job-"), "{id}");
        assert_eq!(body["id"], id.as_str());
        // The document submitted keeps that id: examining it again gives
        // the same one, so a second press submits the same job.
        let Examined::Ready { id: again, .. } = examine(&body.to_string()) else {
            panic!("not ready");
        };
        assert_eq!(again, id);
    }

    #[test]
    fn a_bad_job_says_why() {
        match examine(&job(r#"{"concurrency": 0}"#)) {
            Examined::Rejected(why) => assert!(why.contains("concurrency"), "{why}"),
            other => panic!("{other:?}"),
        }
        match examine("not json") {
            Examined::Rejected(why) => assert!(!why.is_empty()),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn pages_are_bounded() {
        let form = |v: &str| HashMap::from([("pages".to_string(), v.to_string())]);
        assert_eq!(pages_of(&form("3")), 3);
        assert_eq!(pages_of(&form("0")), 1);
        assert_eq!(pages_of(&form("5000")), MAX_PAGES);
        assert_eq!(pages_of(&form("many")), 1);
        assert_eq!(pages_of(&HashMap::new()), 1);
    }
}
