//! Connecting to NATS: the one place that turns [`NatsArgs`] into connect
//! options (credentials, TLS, inbox prefix) for every binary.
//!
//! A service waits for NATS rather than failing at start (it is often
//! started before the cluster is ready), saying why in every warning; once
//! connected, async-nats reconnects on its own for as long as the service
//! runs. The CLI gives up quickly instead ([`connect_within`]), and at once
//! when the server refuses it.

use std::time::{Duration, Instant};

use async_nats::{rustls, Client, ConnectErrorKind, ConnectOptions, ServerAddr};
use tokio_util::sync::CancellationToken;

use crate::{
    process::config::{NatsArgs, ServerUrl, Userinfo},
    Error, ErrorKind, Result,
};

/// Connects as `name` to the servers in `args`, retrying until connected or
/// `shutdown` is cancelled; every failed attempt is a warning with its
/// reason.
pub async fn connect(args: &NatsArgs, name: &str, shutdown: &CancellationToken) -> Result<Client> {
    connect_with(args, name, Patience::UntilShutdown(shutdown)).await
}

/// Connects as `name`, retrying quietly for at most `patience`; a server
/// that refuses the connection (credentials, TLS) ends it at once. The
/// error is the last attempt's, naming the servers and the reason.
pub async fn connect_within(args: &NatsArgs, name: &str, patience: Duration) -> Result<Client> {
    connect_with(args, name, Patience::For(patience)).await
}

/// How long to keep trying.
enum Patience<'a> {
    /// A service: until it shuts down, whatever the reason.
    UntilShutdown(&'a CancellationToken),
    /// A command: this long, and not at all once refused.
    For(Duration),
}

async fn connect_with(args: &NatsArgs, name: &str, patience: Patience<'_>) -> Result<Client> {
    let addrs = addresses(args)?;
    let started = Instant::now();
    let mut delay = Duration::from_millis(100);
    loop {
        let err = match attempt(args, name, &addrs).await {
            Ok(client) => return Ok(client),
            Err(err) => err,
        };
        match patience {
            Patience::UntilShutdown(shutdown) => {
                tracing::warn!(error = %err, "NATS not reachable yet; retrying");
                tokio::select! {
                    _ = shutdown.cancelled() => return Err(Error::Shutdown),
                    _ = tokio::time::sleep(delay) => {}
                }
                delay = (delay * 2).min(Duration::from_secs(5));
            }
            Patience::For(limit) => {
                if err.kind() != ErrorKind::Transient || started.elapsed() + delay >= limit {
                    return Err(err);
                }
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(1));
            }
        }
    }
}

/// The server addresses, without the credentials a URL may carry.
fn addresses(args: &NatsArgs) -> Result<Vec<ServerAddr>> {
    args.nats_url
        .iter()
        .map(|raw| {
            let url = ServerUrl::parse(raw).url;
            url.parse()
                .map_err(|_| Error::Config(format!("--nats-url: {url:?} is not a NATS URL")))
        })
        .collect()
}

async fn attempt(args: &NatsArgs, name: &str, addrs: &[ServerAddr]) -> Result<Client> {
    let options = options(args, name).await?;
    async_nats::connect_with_options(addrs.to_vec(), options)
        .await
        .map_err(|err| refused_or_unreachable(args, err))
}

/// The connect options `args` ask for.
pub async fn options(args: &NatsArgs, name: &str) -> Result<ConnectOptions> {
    let auth = &args.auth;
    let mut options = match &auth.creds {
        Some(path) => ConnectOptions::with_credentials_file(path)
            .await
            .map_err(|e| Error::Config(format!("--creds {}: {e}", path.display())))?,
        None => ConnectOptions::new(),
    };
    if let Some(path) = &auth.nkey {
        let seed = std::fs::read_to_string(path)
            .map_err(|e| Error::Config(format!("--nkey {}: {e}", path.display())))?;
        let seed = seed
            .lines()
            .map(str::trim)
            .find(|line| line.starts_with("SU"))
            .ok_or_else(|| {
                Error::Config(format!(
                    "--nkey {}: no user nkey seed (a line starting SU) in the file",
                    path.display()
                ))
            })?;
        options = options.nkey(seed.to_string());
    }
    if let (Some(user), Some(password)) = (&auth.user, &auth.password) {
        options = options.user_and_password(user.clone(), password.expose().to_string());
    }
    if let Some(token) = &auth.token {
        options = options.token(token.expose().to_string());
    }
    match args
        .nats_url
        .iter()
        .find_map(|u| ServerUrl::parse(u).userinfo)
    {
        Some(Userinfo::UserPassword(user, password)) => {
            options = options.user_and_password(user, password.expose().to_string());
        }
        Some(Userinfo::Token(token)) => options = options.token(token.expose().to_string()),
        None => {}
    }
    let tls_url = args.nats_url.iter().any(|u| u.trim().starts_with("tls://"));
    if auth.wants_tls() || tls_url {
        options = options.require_tls(true);
    }
    if let Some(ca) = &auth.tlsca {
        readable("--tlsca", ca)?;
        options = options.add_root_certificates(ca.clone());
    }
    if let (Some(cert), Some(key)) = (&auth.tlscert, &auth.tlskey) {
        readable("--tlscert", cert)?;
        readable("--tlskey", key)?;
        options = options.add_client_certificate(cert.clone(), key.clone());
    }
    if auth.tlsfirst {
        options = options.tls_first();
    }
    if let Some(prefix) = &auth.inbox_prefix {
        options = options.custom_inbox_prefix(prefix);
    }
    Ok(options
        .name(name)
        .event_callback(|event| async move { say_refusal(&event) })
        .connection_timeout(Duration::from_secs(3))
        .max_reconnects(None)
        // Tasks carry whole pages; leave room beyond the 64 KiB default.
        .client_capacity(8192)
        .subscription_capacity(65_536))
}

/// The server refused a publish or subscribe for lack of a permission: it
/// says so once, asynchronously, and the request itself then only times
/// out, so this is the one place the reason can be seen.
fn say_refusal(event: &async_nats::Event) {
    if let async_nats::Event::ServerError(err) = event {
        let text = err.to_string();
        if text.to_ascii_lowercase().contains("permissions violation") {
            tracing::warn!(
                error = %text,
                "NATS refused this user a subject it lacks the permission for (see `jetflow roles`)"
            );
        }
    }
}

/// A file given by `flag` must be there to read: said now, naming the
/// flag, rather than as a TLS failure later.
fn readable(flag: &str, path: &std::path::Path) -> Result<()> {
    std::fs::metadata(path)
        .map(|_| ())
        .map_err(|e| Error::Config(format!("{flag} {}: {e}", path.display())))
}

/// A failed connection as one line: the servers (without credentials) and
/// why, with async-nats's cause chain, and whether trying again can help.
fn refused_or_unreachable(args: &NatsArgs, err: async_nats::ConnectError) -> Error {
    let context = format!("connecting to {}", args.display_urls());
    // A failed TLS handshake reaches us as an I/O error around rustls's.
    if let Some(tls) = tls_error(&err) {
        return Error::nats(context, ErrorKind::Refused, describe_tls(tls));
    }
    let reason = match err.kind() {
        ConnectErrorKind::AuthorizationViolation => {
            "authorization violation: the server refused these credentials".to_string()
        }
        ConnectErrorKind::Authentication => {
            "cannot sign the server's nonce with this nkey or creds".to_string()
        }
        ConnectErrorKind::Tls => "TLS handshake failed".to_string(),
        ConnectErrorKind::TimedOut => "timed out".to_string(),
        ConnectErrorKind::Dns => "cannot resolve the host".to_string(),
        _ => "cannot connect".to_string(),
    };
    let kind = match err.kind() {
        ConnectErrorKind::AuthorizationViolation
        | ConnectErrorKind::Authentication
        | ConnectErrorKind::Tls => ErrorKind::Refused,
        ConnectErrorKind::ServerParse => ErrorKind::Invalid,
        _ => ErrorKind::Transient,
    };
    // The server's own words on a refusal add nothing to ours.
    let causes = match kind {
        ErrorKind::Refused => String::new(),
        _ => causes(&err),
    };
    Error::nats(context, kind, format!("{reason}{causes}"))
}

/// The rustls error somewhere in `err`'s causes (an `io::Error` hides its
/// inner error from `source()`, so each one is looked into).
fn tls_error<'a>(err: &'a (dyn std::error::Error + 'static)) -> Option<&'a rustls::Error> {
    let mut next = Some(err);
    while let Some(cause) = next {
        if let Some(tls) = cause.downcast_ref::<rustls::Error>() {
            return Some(tls);
        }
        if let Some(inner) = cause
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
        {
            if let Some(tls) = tls_error(inner) {
                return Some(tls);
            }
        }
        next = cause.source();
    }
    None
}

/// What a TLS failure means for the one fixing it.
fn describe_tls(err: &rustls::Error) -> String {
    use rustls::{AlertDescription, CertificateError};
    match err {
        rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer) => {
            "TLS: the server's certificate is signed by an unknown CA (give its CA with --tlsca)"
                .into()
        }
        rustls::Error::InvalidCertificate(cause) => {
            format!("TLS: the server's certificate is not valid here: {cause:?}")
        }
        rustls::Error::AlertReceived(AlertDescription::CertificateRequired) => {
            "TLS: the server requires a client certificate (--tlscert and --tlskey)".into()
        }
        rustls::Error::AlertReceived(
            alert @ (AlertDescription::BadCertificate
            | AlertDescription::UnknownCA
            | AlertDescription::CertificateUnknown),
        ) => format!("TLS: the server refused our client certificate ({alert:?})"),
        other => format!("TLS handshake failed: {other}"),
    }
}

/// `: cause: its cause…` of `err`'s sources.
fn causes(err: &dyn std::error::Error) -> String {
    let mut out = String::new();
    let mut source = err.source();
    while let Some(cause) = source {
        let text = cause.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = cause.source();
    }
    out
}
