//! A page that could not be drawn: its status code and why, as a page.

use askama::Template;
use axum::{
    http::StatusCode,
    response::{Html, IntoResponse, Response},
};

use super::templates::{ErrorPage, Frame};

/// Why a request got no page.
#[derive(Debug)]
pub struct Problem {
    pub status: StatusCode,
    pub message: String,
}

impl Problem {
    pub fn not_found(message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::NOT_FOUND,
            message: message.into(),
        }
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            message: message.into(),
        }
    }

    pub fn forbidden(message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::FORBIDDEN,
            message: message.into(),
        }
    }
}

/// NATS or anything else failed: a 502, saying what.
impl From<anyhow::Error> for Problem {
    fn from(err: anyhow::Error) -> Self {
        Self {
            status: StatusCode::BAD_GATEWAY,
            message: format!("{err:#}"),
        }
    }
}

impl From<askama::Error> for Problem {
    fn from(err: askama::Error) -> Self {
        Self {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            message: format!("drawing the page: {err}"),
        }
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let heading = self
            .status
            .canonical_reason()
            .unwrap_or("Error")
            .to_string();
        let page = ErrorPage {
            frame: Frame {
                title: heading.clone(),
                nav: "",
                namespace: String::new(),
                actions: false,
                flash: None,
            },
            heading,
            message: self.message,
        };
        match page.render() {
            Ok(html) => (self.status, Html(html)).into_response(),
            Err(_) => (self.status, "error").into_response(),
        }
    }
}

/// A handler's answer: a page, or why not.
pub type PageResult = Result<Html<String>, Problem>;

/// Renders `template` as the answer.
pub fn html(template: &impl Template) -> PageResult {
    Ok(Html(template.render()?))
}
