//! The dashboard's actions: cancel, pause, resume, settings and retry
//! failed for a job; replay and purge for dead letters. Each is two
//! routes: a GET that shows what it will affect (how many items or
//! letters) with a confirm button, and the POST that does it, the same
//! request the CLI sends. With `--allow-actions` off both answer 403 and
//! no page draws a button; a POST without this process's form token is
//! refused too (another site cannot post a logged-in browser's form).

use std::collections::HashMap;

use axum::{
    extract::{Path, Query, State},
    response::{IntoResponse, Redirect, Response},
    routing::get,
    Form, Router,
};
use chrono::Utc;
use jetflow_protocol::{
    duration::HumanDuration,
    job::{ConfigChange, JobState, JobStatus},
    messages::{PauseRequest, ResumeRequest},
};

use super::{
    access, encode, job_href, lookup,
    ops_pages::{letters_of, LetterQuery},
    problem::{html, Problem},
    templates::{ActionLink, ConfirmPage, Field},
    App,
};
use crate::commands::{cancel, config, dlq, pause, retry_failed};

pub fn routes() -> Router<App> {
    Router::new()
        .route(
            "/jobs/{job}/actions/{action}",
            get(confirm_job).post(do_job),
        )
        .route(
            "/dlq/actions/{action}",
            get(confirm_letters).post(do_letters),
        )
}

/// A job action.
#[derive(Debug, Clone, Copy, PartialEq)]
enum JobAction {
    Cancel,
    Pause,
    Resume,
    Settings,
    RetryFailed,
}

impl JobAction {
    fn parse(name: &str) -> Result<Self, Problem> {
        Ok(match name {
            "cancel" => Self::Cancel,
            "pause" => Self::Pause,
            "resume" => Self::Resume,
            "settings" => Self::Settings,
            "retry-failed" => Self::RetryFailed,
            other => return Err(Problem::not_found(format!("no action {other:?}"))),
        })
    }

    fn name(self) -> &'static str {
        match self {
            Self::Cancel => "cancel",
            Self::Pause => "pause",
            Self::Resume => "resume",
            Self::Settings => "settings",
            Self::RetryFailed => "retry-failed",
        }
    }

    /// Whether it applies to a job in `state` (the buttons a page draws).
    fn applies(self, state: &JobState) -> bool {
        let status = state.status;
        match self {
            Self::Cancel => status.is_active() && status != JobStatus::Cancelling,
            Self::Pause => {
                status.is_active() && !matches!(status, JobStatus::Paused | JobStatus::Cancelling)
            }
            Self::Resume => status == JobStatus::Paused,
            Self::Settings => status.is_active() && status != JobStatus::Cancelling,
            Self::RetryFailed => status.is_terminal() && state.failed > 0,
        }
    }
}

const JOB_ACTIONS: [(JobAction, &str, bool); 5] = [
    (JobAction::Pause, "Pause…", false),
    (JobAction::Resume, "Resume…", false),
    (JobAction::Settings, "Settings…", false),
    (JobAction::RetryFailed, "Retry failed…", false),
    (JobAction::Cancel, "Cancel…", true),
];

/// The action buttons for a job in `state`.
pub fn for_job(state: &JobState) -> Vec<ActionLink> {
    JOB_ACTIONS
        .into_iter()
        .filter(|(action, _, _)| action.applies(state))
        .map(|(action, label, danger)| ActionLink {
            name: action.name(),
            label,
            href: format!("{}/actions/{}", job_href(&state.id), action.name()),
            danger,
        })
        .collect()
}

pub(super) fn allowed(app: &App) -> Result<(), Problem> {
    if app.options.allow_actions {
        Ok(())
    } else {
        Err(Problem::forbidden(
            "actions are off: start the dashboard with --allow-actions to use them",
        ))
    }
}

pub(super) fn form_token(app: &App, form: &HashMap<String, String>) -> Result<(), Problem> {
    match form.get("csrf") {
        Some(token) if access::same(token, &app.csrf) => Ok(()),
        _ => Err(Problem::forbidden(
            "this form is not from this dashboard (or it restarted): reload the page and try again",
        )),
    }
}

/// Items of the job not run yet (the source may still hold more).
fn remaining(state: &JobState) -> String {
    let left = state.total.saturating_sub(state.done() + state.not_run);
    if state.fetch_done {
        format!("{left} items")
    } else {
        format!("{left} items fetched so far, and the rest of the source,")
    }
}

/// The action named `name` and the state of `job`, when it applies to it.
async fn applicable(app: &App, job: &str, name: &str) -> Result<(JobAction, JobState), Problem> {
    let action = JobAction::parse(name)?;
    let state = lookup::load(&app.bus, job).await?;
    if !action.applies(&state) {
        return Err(Problem::bad_request(format!(
            "job {job} is {}: {} does not apply",
            state.status,
            action.name()
        )));
    }
    Ok((action, state))
}

async fn confirm_job(
    State(app): State<App>,
    Path((job, action)): Path<(String, String)>,
) -> Result<Response, Problem> {
    allowed(&app)?;
    let (action, state) = applicable(&app, &job, &action).await?;
    let (heading, affects, fields, button, danger) = match action {
        JobAction::Cancel => (
            format!("Cancel job {job}?"),
            vec![
                format!("{} will not run.", remaining(&state)),
                "Items in flight now finish; the job then ends cancelled. This cannot be undone."
                    .into(),
            ],
            vec![reason_field()],
            "Cancel the job",
            true,
        ),
        JobAction::Pause => (
            format!("Pause job {job}?"),
            vec![
                format!("No page is fetched and none of the {} starts until it is resumed.", remaining(&state)),
                "Items in flight now finish. Leave the duration empty to pause until resumed.".into(),
            ],
            vec![
                Field {
                    name: "for",
                    label: "for",
                    value: String::new(),
                    placeholder: "e.g. 30m, 2h",
                },
                reason_field(),
            ],
            "Pause the job",
            false,
        ),
        JobAction::Resume => (
            format!("Resume job {job}?"),
            vec![format!("The {} start again.", remaining(&state))],
            vec![reason_field()],
            "Resume the job",
            false,
        ),
        JobAction::Settings => {
            let live = ConfigChange::current(&state.spec);
            let values = config::values(&live);
            (
                format!("Change the settings of job {job}?"),
                vec![
                    format!("They apply to the {} still to run, on every migrate instance, without a restart.", remaining(&state)),
                    format!("Now: concurrency {}, rate_limit {}.", values[0], values[3]),
                ],
                vec![
                    Field {
                        name: "concurrency",
                        label: "concurrency",
                        value: live.concurrency.map(|c| c.to_string()).unwrap_or_default(),
                        placeholder: "calls in flight",
                    },
                    Field {
                        name: "rate_limit",
                        label: "rate_limit",
                        value: live.rate_limit.map(|r| r.to_string()).unwrap_or_default(),
                        placeholder: "e.g. 50/s, or none",
                    },
                ],
                "Apply",
                false,
            )
        }
        JobAction::RetryFailed => (
            format!("Retry the failed items of job {job}?"),
            vec![format!(
                "A new job runs the {} failed items again with this job's spec (label retry_of={job}).",
                state.failed
            )],
            Vec::new(),
            "Submit the retry job",
            false,
        ),
    };
    let href = job_href(&job);
    let page = ConfirmPage {
        frame: app.frame(heading.clone(), "jobs"),
        heading,
        affects,
        post_url: format!("{href}/actions/{}", action.name()),
        csrf: app.csrf.to_string(),
        hidden: Vec::new(),
        fields,
        button,
        danger,
        back_url: href,
    };
    Ok(html(&page)?.into_response())
}

fn reason_field() -> Field {
    Field {
        name: "reason",
        label: "reason",
        value: String::new(),
        placeholder: "optional, kept with the job",
    }
}

async fn do_job(
    State(app): State<App>,
    Path((job, action)): Path<(String, String)>,
    Form(form): Form<HashMap<String, String>>,
) -> Result<Response, Problem> {
    allowed(&app)?;
    form_token(&app, &form)?;
    let (action, state) = applicable(&app, &job, &action).await?;
    let text = |name: &str| {
        form.get(name)
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty())
    };
    let bus = &app.bus;
    let done = match action {
        JobAction::Cancel => {
            cancel::request(bus, &job, text("reason")).await?;
            "cancel requested: items in flight finish, then the job ends".to_string()
        }
        JobAction::Pause => {
            let for_ = match text("for") {
                Some(d) => Some(
                    d.parse::<HumanDuration>()
                        .map_err(|e| Problem::bad_request(format!("for {d:?}: {e}")))?,
                ),
                None => None,
            };
            let request = PauseRequest {
                until: None,
                for_,
                reason: text("reason"),
            };
            request
                .ends_at(Utc::now())
                .map_err(|why| Problem::bad_request(format!("for: {why}")))?;
            pause::send(bus, bus.names.pause_subject(&job), &request, "pause").await?;
            "pause requested".to_string()
        }
        JobAction::Resume => {
            let request = ResumeRequest {
                reason: text("reason"),
            };
            pause::send(bus, bus.names.resume_subject(&job), &request, "resume").await?;
            "resume requested".to_string()
        }
        JobAction::Settings => {
            let pairs: Vec<String> = ["concurrency", "rate_limit"]
                .into_iter()
                .filter_map(|name| text(name).map(|v| format!("{name}={v}")))
                .collect();
            let change = ConfigChange::from_pairs(pairs.iter().map(String::as_str))
                .and_then(|c| c.validate().map(|()| c))
                .map_err(|why| Problem::bad_request(why.to_string()))?;
            config::request(bus, &job, &change)
                .await
                .map_err(|e| Problem::bad_request(format!("{e:#}")))?;
            format!("settings change requested: {}", pairs.join(", "))
        }
        JobAction::RetryFailed => match retry_failed::submit_retry(bus, &state, None).await? {
            Ok(id) => {
                let href = format!(
                    "{}?done={}",
                    job_href(&id),
                    encode("submitted as a retry job")
                );
                return Ok(Redirect::to(&href).into_response());
            }
            Err(reason) => return Err(Problem::bad_request(format!("rejected: {reason}"))),
        },
    };
    let href = format!("{}?done={}", job_href(&job), encode(&done));
    Ok(Redirect::to(&href).into_response())
}

/// A dead-letter action.
fn letter_action(name: &str) -> Result<&'static str, Problem> {
    match name {
        "replay" => Ok("replay"),
        "purge" => Ok("purge"),
        other => Err(Problem::not_found(format!("no action {other:?}"))),
    }
}

async fn confirm_letters(
    State(app): State<App>,
    Path(action): Path<String>,
    Query(query): Query<LetterQuery>,
) -> Result<Response, Problem> {
    allowed(&app)?;
    let action = letter_action(&action)?;
    let filter = query.filter().map_err(Problem::bad_request)?;
    let (_, count) = letters_of(&app.bus, &filter, 0).await?;
    let selection = query.query_string();
    let (heading, affects, danger) = if action == "replay" {
        (
            format!("Replay {count} dead letters?"),
            vec![
                format!("The {count} dead letters this filter selects: the item tasks among them run again (their jobs reopen until the new outcomes are in); other letters are left."),
            ],
            false,
        )
    } else {
        (
            format!("Purge {count} dead letters?"),
            vec![format!(
                "The {count} dead letters this filter selects are deleted. This cannot be undone."
            )],
            true,
        )
    };
    let hidden = [
        ("job", &query.job),
        ("stage", &query.stage),
        ("error", &query.error),
    ]
    .into_iter()
    .filter_map(|(name, v)| v.clone().filter(|v| !v.is_empty()).map(|v| (name, v)))
    .collect();
    let page = ConfirmPage {
        frame: app.frame(heading.clone(), "dlq"),
        heading,
        affects,
        post_url: format!("/dlq/actions/{action}"),
        csrf: app.csrf.to_string(),
        hidden,
        fields: Vec::new(),
        button: if action == "replay" {
            "Replay"
        } else {
            "Purge"
        },
        danger,
        back_url: format!("/dlq?{selection}"),
    };
    Ok(html(&page)?.into_response())
}

async fn do_letters(
    State(app): State<App>,
    Path(action): Path<String>,
    Form(form): Form<HashMap<String, String>>,
) -> Result<Response, Problem> {
    allowed(&app)?;
    form_token(&app, &form)?;
    let action = letter_action(&action)?;
    let query = LetterQuery {
        job: form.get("job").cloned(),
        stage: form.get("stage").cloned(),
        error: form.get("error").cloned(),
    };
    let filter = query.filter().map_err(Problem::bad_request)?;
    let done = if action == "replay" {
        dlq::replay::run(&app.bus, &filter, false).await?;
        "replayed the selected item tasks".to_string()
    } else {
        let purged = dlq::purge_letters(&app.bus, &filter).await?;
        format!("purged {purged} dead letters")
    };
    let href = format!("/dlq?{}&done={}", query.query_string(), encode(&done));
    Ok(Redirect::to(&href).into_response())
}
