//! `jetflow ui`: a web page to watch jobs, served from this binary.
//!
//! Server-rendered HTML (askama templates, escaped), a little plain JS and
//! CSS embedded in the binary; no database and no build step. It reads
//! NATS only: the jobs bucket through one watch ([`index`]), a job's state,
//! batch records, events and dead letters when its page is drawn, and the
//! services' `$SRV.STATS` answers. It never scans the items bucket to draw
//! a page (only a download of results reads it). Pages update themselves
//! over server-sent events ([`live`]); the actions ([`actions`]) are off
//! unless `--allow-actions`.

mod access;
mod actions;
mod downloads;
mod index;
mod job_page;
mod jobs_page;
mod listing;
mod live;
mod lookup;
mod ops_pages;
mod preview;
mod problem;
mod templates;
mod view;

use std::{net::SocketAddr, sync::Arc};

use anyhow::{bail, Context as _};
use axum::{
    extract::{Request, State},
    http::{header, HeaderValue, StatusCode},
    middleware::{self, Next},
    response::{IntoResponse, Response},
    routing::get,
    Router,
};
use jetflow_runtime::{Bus, NatsArgs};
use tokio_util::sync::CancellationToken;

use crate::{connect, exit};

pub use access::Verdict;

/// Where `jetflow ui` and `jetflow dev` listen unless told.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8233";

/// Arguments of `jetflow ui`.
#[derive(Debug, clap::Args)]
pub struct UiArgs {
    /// Address to serve on. Anything but loopback needs --auth-token.
    #[arg(long, default_value = DEFAULT_LISTEN)]
    pub listen: SocketAddr,
    /// A token every request must carry (`?token=` once, then a cookie; or
    /// `Authorization: Bearer`). At least 16 characters.
    #[arg(long, env = "JETFLOW_UI_TOKEN", hide_env_values = true)]
    pub auth_token: Option<String>,
    /// Draw and serve the actions: cancel, pause, resume, settings, retry
    /// failed, replay and purge dead letters. Off: their routes answer 403.
    #[arg(long)]
    pub allow_actions: bool,
    /// Link a job's trace id to this URL, `{trace_id}` replaced (e.g.
    /// `http://localhost:16686/trace/{trace_id}`).
    #[arg(long, value_name = "URL")]
    pub trace_url: Option<String>,
    #[command(flatten)]
    pub nats: NatsArgs,
}

/// How the dashboard behaves, whoever started it.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Actions are drawn and served.
    pub allow_actions: bool,
    /// The token requests must carry (`None`: open, loopback only).
    pub token: Option<String>,
    /// Trace link template.
    pub trace_url: Option<String>,
}

/// What every handler shares.
#[derive(Clone)]
struct App {
    bus: Bus,
    index: index::JobIndex,
    options: Arc<Options>,
    /// The form token every action's POST must carry.
    csrf: Arc<str>,
    shutdown: CancellationToken,
}

pub async fn run(args: UiArgs) -> anyhow::Result<u8> {
    let token = match access::judge(args.listen, args.auth_token.as_deref()) {
        Verdict::Refused(why) => bail!("{why}"),
        Verdict::Open => None,
        Verdict::Token(token) => Some(token),
    };
    let bus = connect::existing(&args.nats).await?;
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("--listen {}: cannot listen", args.listen))?;
    let shutdown = CancellationToken::new();
    jetflow_runtime::process::signals::install(shutdown.clone());
    let options = Options {
        allow_actions: args.allow_actions,
        token,
        trace_url: args.trace_url,
    };
    eprintln!(
        "jetflow ui: http://{}/ (namespace {:?}, actions {})",
        listener.local_addr()?,
        bus.names.namespace(),
        if options.allow_actions { "on" } else { "off" }
    );
    serve(bus, options, listener, shutdown).await?;
    Ok(exit::OK)
}

/// Serves the dashboard on `listener` until `shutdown`.
pub async fn serve(
    bus: Bus,
    options: Options,
    listener: tokio::net::TcpListener,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let index = index::JobIndex::default();
    tokio::spawn(index.clone().follow(bus.clone(), shutdown.clone()));
    let app = App {
        bus,
        index,
        options: Arc::new(options),
        csrf: uuid::Uuid::new_v4().simple().to_string().into(),
        shutdown: shutdown.clone(),
    };
    let router = routes(app);
    axum::serve(listener, router)
        .with_graceful_shutdown(shutdown.cancelled_owned())
        .await
        .context("serving the dashboard")
}

fn routes(app: App) -> Router {
    Router::new()
        .route("/", get(jobs_page::page))
        .route("/live/jobs", get(live::jobs))
        .route("/jobs/{job}", get(job_page::page))
        .route("/live/jobs/{job}", get(live::job))
        .route("/jobs/{job}/batches.json", get(job_page::batches))
        .route("/jobs/{job}/inflight", get(job_page::in_flight))
        .route("/jobs/{job}/results.csv", get(downloads::csv))
        .route("/jobs/{job}/results.jsonl", get(downloads::json_lines))
        .route("/workers", get(ops_pages::workers))
        .route("/dlq", get(ops_pages::dead_letters))
        .route("/health", get(ops_pages::health))
        .route("/assets/app.css", get(asset_css))
        .route("/assets/app.js", get(asset_js))
        .merge(actions::routes())
        .merge(preview::routes())
        .layer(middleware::from_fn_with_state(app.clone(), guard))
        .with_state(app)
}

/// Every request: the token (when one is set), then safe headers on the
/// answer. Pages may load only their own script and styles, so even text
/// that escaped escaping could not run.
async fn guard(State(app): State<App>, request: Request, next: Next) -> Response {
    let pass = access::check(
        app.options.token.as_deref(),
        request.headers(),
        request.uri().query(),
    );
    let mut response = match pass {
        access::Pass::Out => (
            StatusCode::UNAUTHORIZED,
            "a token is required: open the link with ?token=…\n",
        )
            .into_response(),
        access::Pass::In => next.run(request).await,
        access::Pass::InSetCookie => {
            let mut response = next.run(request).await;
            if let Some(token) = &app.options.token {
                if let Ok(cookie) = HeaderValue::from_str(&access::set_cookie(token)) {
                    response.headers_mut().append(header::SET_COOKIE, cookie);
                }
            }
            response
        }
    };
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; \
             img-src 'self' data:; frame-ancestors 'none'; form-action 'self'",
        ),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    // A token in a link must not leak to the sites a page links to.
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    response
}

async fn asset_css() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/css; charset=utf-8")],
        include_str!("assets/app.css"),
    )
}

async fn asset_js() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
        include_str!("assets/app.js"),
    )
}

impl App {
    /// The frame of a page titled `title` under nav entry `nav`.
    fn frame(&self, title: impl Into<String>, nav: &'static str) -> templates::Frame {
        templates::Frame {
            title: title.into(),
            nav,
            namespace: self.bus.names.namespace().to_string(),
            actions: self.options.allow_actions,
            flash: None,
        }
    }
}

/// What a URL's path segment or query value keeps as it is (RFC 3986's
/// unreserved characters); everything else is percent-encoded.
const COMPONENT: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// `value` percent-encoded for a URL's path segment or query value.
fn encode(value: &str) -> String {
    percent_encoding::utf8_percent_encode(value, COMPONENT).to_string()
}

/// The page of job `id`.
fn job_href(id: &str) -> String {
    format!("/jobs/{}", encode(id))
}
