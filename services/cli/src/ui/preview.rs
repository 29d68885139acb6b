//! A job file pasted in, previewed: the dry run `jetflow submit --dry-run`
//! prints (services/cli/src/commands/dry_run.rs), on a page. It reads the
//! job's source (the first pages), so it is behind `--allow-actions` like
//! the actions: an open dashboard must not fetch URLs for anyone who asks.
//! Nothing is called and nothing is written to NATS; the page does not
//! submit the job.

use std::collections::HashMap;

use axum::{
    extract::State,
    response::{IntoResponse, Response},
    routing::get,
    Form, Router,
};
use jetflow_protocol::job::{fields, parse_submission, Invalid, JobSpec};

use super::{
    actions::{allowed, form_token},
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
    Router::new().route("/preview", get(form).post(run))
}

/// What a pasted job is, before anything is read.
#[derive(Debug)]
enum Examined {
    /// A job the services would accept, and the fields it has that the
    /// job format does not (typos, most likely).
    Ready {
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
        Examined::Ready { spec, warnings } => {
            shown.warnings = warnings;
            let reach = dry_run::Reach {
                sample_pages: pages,
                count: false,
                requests: REQUESTS,
            };
            match dry_run::preview(&spec, reach, Some(&app.bus)).await? {
                Ok(report) => shown.report = Some(report),
                Err(error) => shown.error = Some(format!("the source refused or failed: {error}")),
            }
        }
    }
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
            Examined::Ready { spec, warnings } => {
                assert_eq!(spec.id.as_deref(), Some("p-1"));
                assert_eq!(warnings.len(), 1, "{warnings:?}");
                assert!(warnings[0].contains("batch.concurency"), "{warnings:?}");
                assert!(warnings[0].contains("concurrency"), "{warnings:?}");
            }
            other => panic!("{other:?}"),
        }
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
