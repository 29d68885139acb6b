//! Settings every jetflow binary shares: where NATS is and how to
//! authenticate to it, which namespace, how to log. Flags win over
//! `JETFLOW_*`/`NATS_*` env, which win over defaults.

use std::{fmt, path::PathBuf, str::FromStr};

use clap::{Args, ValueEnum};
use jetflow_protocol::names::Names;

use crate::{Error, Result};

/// Where NATS is and which namespace to use.
#[derive(Clone, Args)]
pub struct NatsArgs {
    /// NATS server URL; a comma-separated list for a cluster.
    #[arg(
        long = "nats-url",
        env = "NATS_URL",
        value_delimiter = ',',
        default_value = "nats://127.0.0.1:4222"
    )]
    pub nats_url: Vec<String>,
    /// Namespace of every subject, stream and bucket (dev, staging, prod, ...).
    #[arg(long, env = "JETFLOW_NAMESPACE", default_value = jetflow_protocol::names::DEFAULT_NAMESPACE)]
    pub namespace: String,
    /// Replicas of the streams and buckets jetflow creates; by default the
    /// cluster's size up to 3 (1 on a single server).
    #[arg(long, env = "JETFLOW_REPLICAS")]
    pub replicas: Option<usize>,
    /// Bind only: use the streams, buckets and stage consumers that exist
    /// and never create or change them (exit, naming what is missing), so
    /// the user needs no stream-admin rights; `jetflow provision` makes them.
    #[arg(long = "no-provision")]
    pub no_provision: bool,
    /// Whether to create and upgrade what is missing; `false` is
    /// `--no-provision`.
    #[arg(
        long = "provision",
        env = "JETFLOW_PROVISION",
        value_name = "BOOL",
        default_value_t = true,
        action = clap::ArgAction::Set,
        value_parser = clap::builder::BoolishValueParser::new()
    )]
    pub provision: bool,
    /// Credentials and TLS.
    #[command(flatten)]
    pub auth: AuthArgs,
}

/// How to authenticate to NATS and secure the connection, named as the
/// `nats` CLI names them (flag and env). A `nats://user:password@host` or
/// `nats://token@host` URL works too.
#[derive(Clone, Default, Args)]
pub struct AuthArgs {
    /// A credentials file (user JWT and nkey seed), as `nsc` writes them.
    #[arg(long, env = "NATS_CREDS")]
    pub creds: Option<PathBuf>,
    /// A file holding a user nkey seed.
    #[arg(long, env = "NATS_NKEY")]
    pub nkey: Option<PathBuf>,
    /// User name, with --password.
    #[arg(long, env = "NATS_USER")]
    pub user: Option<String>,
    /// Password of --user.
    #[arg(long, env = "NATS_PASSWORD", hide_env_values = true)]
    pub password: Option<Secret>,
    /// Authentication token.
    #[arg(long, env = "NATS_TOKEN", hide_env_values = true)]
    pub token: Option<Secret>,
    /// CA certificates (PEM) to verify the server with; turns TLS on.
    #[arg(long, env = "NATS_CA")]
    pub tlsca: Option<PathBuf>,
    /// Client certificate (PEM) for mutual TLS, with --tlskey.
    #[arg(long, env = "NATS_CERT")]
    pub tlscert: Option<PathBuf>,
    /// Private key (PEM) of --tlscert.
    #[arg(long, env = "NATS_KEY")]
    pub tlskey: Option<PathBuf>,
    /// TLS from the first byte, for servers with `handshake_first`.
    #[arg(long, env = "NATS_TLSFIRST")]
    pub tlsfirst: bool,
    /// Prefix of reply subjects (default `_INBOX`), so a user's permissions
    /// can name its own replies.
    #[arg(long, env = "NATS_INBOX_PREFIX")]
    pub inbox_prefix: Option<String>,
}

impl fmt::Debug for AuthArgs {
    /// Says which settings are given, never their values: file paths of
    /// keys and credentials tell an attacker where to look.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let given = |set: bool| if set { "<given>" } else { "-" };
        f.debug_struct("AuthArgs")
            .field("creds", &given(self.creds.is_some()))
            .field("nkey", &given(self.nkey.is_some()))
            .field("user", &self.user)
            .field("password", &given(self.password.is_some()))
            .field("token", &given(self.token.is_some()))
            .field("tlsca", &self.tlsca)
            .field("tlscert", &self.tlscert)
            .field("tlskey", &given(self.tlskey.is_some()))
            .field("tlsfirst", &self.tlsfirst)
            .field("inbox_prefix", &self.inbox_prefix)
            .finish()
    }
}

impl AuthArgs {
    /// Whether any TLS setting asks for TLS.
    pub fn wants_tls(&self) -> bool {
        self.tlsca.is_some() || self.tlscert.is_some() || self.tlsfirst
    }

    /// Checks that the settings make one way to authenticate; the error
    /// names the flags.
    pub fn validate(&self) -> Result<()> {
        let ways: Vec<&str> = [
            (self.creds.is_some(), "--creds"),
            (self.nkey.is_some(), "--nkey"),
            (
                self.user.is_some() || self.password.is_some(),
                "--user/--password",
            ),
            (self.token.is_some(), "--token"),
        ]
        .into_iter()
        .filter_map(|(given, flag)| given.then_some(flag))
        .collect();
        if ways.len() > 1 {
            return Err(Error::Config(format!(
                "{}: give one way to authenticate",
                ways.join(" and ")
            )));
        }
        if self.user.is_some() != self.password.is_some() {
            return Err(Error::Config(
                "--user and --password: give both or neither".into(),
            ));
        }
        if self.tlscert.is_some() != self.tlskey.is_some() {
            return Err(Error::Config(
                "--tlscert and --tlskey: give both or neither".into(),
            ));
        }
        if let Some(prefix) = &self.inbox_prefix {
            if prefix.is_empty() || prefix.contains([' ', '*', '>']) || prefix.ends_with('.') {
                return Err(Error::Config(format!(
                    "--inbox-prefix: {prefix:?} is not a subject prefix"
                )));
            }
        }
        Ok(())
    }
}

/// A password or token: kept out of `Debug`, logs and error messages.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// The secret itself, for the one place that sends it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

impl FromStr for Secret {
    type Err = std::convert::Infallible;

    fn from_str(s: &str) -> std::result::Result<Self, Self::Err> {
        Ok(Secret(s.to_string()))
    }
}

impl From<&str> for Secret {
    fn from(s: &str) -> Self {
        Secret(s.to_string())
    }
}

/// A server URL split into the address and the credentials written in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerUrl {
    /// The URL without userinfo: safe to log.
    pub url: String,
    /// `user:password@` or `token@`, when the URL carries one.
    pub userinfo: Option<Userinfo>,
}

/// Credentials written into a URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Userinfo {
    /// `nats://user:password@host`.
    UserPassword(String, Secret),
    /// `nats://token@host`.
    Token(Secret),
}

impl ServerUrl {
    /// Splits `raw` (`scheme://[userinfo@]host[:port]`); userinfo is
    /// percent-decoded.
    pub fn parse(raw: &str) -> ServerUrl {
        let raw = raw.trim();
        let (scheme, rest) = match raw.split_once("://") {
            Some((scheme, rest)) => (Some(scheme), rest),
            None => (None, raw),
        };
        let authority_end = rest.find('/').unwrap_or(rest.len());
        let Some(at) = rest[..authority_end].rfind('@') else {
            return ServerUrl {
                url: raw.to_string(),
                userinfo: None,
            };
        };
        let (userinfo, host) = (&rest[..at], &rest[at + 1..]);
        let url = match scheme {
            Some(scheme) => format!("{scheme}://{host}"),
            None => host.to_string(),
        };
        let decode = |s: &str| percent_decode(s);
        let userinfo = match userinfo.split_once(':') {
            Some((user, password)) => {
                Userinfo::UserPassword(decode(user), Secret(decode(password)))
            }
            None => Userinfo::Token(Secret(decode(userinfo))),
        };
        ServerUrl {
            url,
            userinfo: Some(userinfo),
        }
    }
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        match (
            bytes[i],
            bytes.get(i + 1).copied().and_then(hex),
            bytes.get(i + 2).copied().and_then(hex),
        ) {
            (b'%', Some(hi), Some(lo)) => {
                out.push((hi * 16 + lo) as u8);
                i += 3;
            }
            (b, _, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

impl fmt::Debug for NatsArgs {
    /// The URLs without the credentials a URL may carry.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NatsArgs")
            .field("nats_url", &self.display_urls())
            .field("namespace", &self.namespace)
            .field("replicas", &self.replicas)
            .field("provisions", &self.provisions())
            .field("auth", &self.auth)
            .finish()
    }
}

impl NatsArgs {
    /// Settings for `urls` and `namespace` with one replica.
    pub fn new(urls: impl IntoIterator<Item = impl Into<String>>, namespace: &str) -> Self {
        Self {
            nats_url: urls.into_iter().map(Into::into).collect(),
            namespace: namespace.to_string(),
            replicas: None,
            no_provision: false,
            provision: true,
            auth: AuthArgs::default(),
        }
    }

    /// Whether streams, buckets and stage consumers may be created and
    /// changed (not with `--no-provision` or `JETFLOW_PROVISION=false`).
    pub fn provisions(&self) -> bool {
        self.provision && !self.no_provision
    }

    /// The same settings, bind only.
    pub fn bind_only(mut self) -> Self {
        self.no_provision = true;
        self
    }

    /// The server URLs without any credentials written in them: what logs
    /// and messages show.
    pub fn display_urls(&self) -> String {
        self.nats_url
            .iter()
            .map(|u| ServerUrl::parse(u).url)
            .collect::<Vec<_>>()
            .join(",")
    }

    /// Checks the settings; the error names the flag.
    pub fn validate(&self) -> Result<Names> {
        if self.nats_url.iter().all(|u| u.trim().is_empty()) {
            return Err(Error::Config(
                "--nats-url: at least one URL is needed".into(),
            ));
        }
        let mut userinfo = None;
        for url in &self.nats_url {
            let server = ServerUrl::parse(url);
            if server.url.parse::<async_nats::ServerAddr>().is_err() {
                return Err(Error::Config(format!(
                    "--nats-url: {:?} is not a NATS URL",
                    server.url
                )));
            }
            match (&userinfo, server.userinfo) {
                (Some(seen), Some(this)) if *seen != this => {
                    return Err(Error::Config(
                        "--nats-url: the URLs carry different credentials".into(),
                    ))
                }
                (_, Some(this)) => userinfo = Some(this),
                _ => {}
            }
        }
        self.auth.validate()?;
        let other_way = self.auth.creds.is_some()
            || self.auth.nkey.is_some()
            || self.auth.user.is_some()
            || self.auth.token.is_some();
        if userinfo.is_some() && other_way {
            return Err(Error::Config(
                "--nats-url carries credentials, and another flag gives some: give one way to authenticate".into(),
            ));
        }
        if let Some(replicas) = self.replicas.filter(|r| !(1..=5).contains(r)) {
            return Err(Error::Config(format!(
                "--replicas: {replicas} is outside 1..=5"
            )));
        }
        Names::new(&self.namespace).map_err(|e| Error::Config(format!("--namespace: {e}")))
    }
}

/// How logs are written.
#[derive(Debug, Clone, Copy, Default, ValueEnum, PartialEq, Eq)]
pub enum LogFormat {
    /// Plain text for people.
    #[default]
    Text,
    /// One JSON object per line for machines.
    Json,
}

/// The flags every service takes: where NATS is, and the metrics endpoint.
#[derive(Debug, Clone, Args)]
pub struct ServiceArgs {
    /// NATS connection and namespace.
    #[command(flatten)]
    pub nats: NatsArgs,
    /// The metrics endpoint.
    #[command(flatten)]
    pub metrics: MetricsArgs,
}

impl ServiceArgs {
    /// Settings for `nats`, metrics off.
    pub fn new(nats: NatsArgs) -> Self {
        Self {
            nats,
            metrics: MetricsArgs::default(),
        }
    }
}

/// The metrics endpoint flag every service takes.
#[derive(Debug, Clone, Default, Args)]
pub struct MetricsArgs {
    /// Serve Prometheus metrics on this address (`GET /metrics`); off when unset.
    #[arg(long, env = "JETFLOW_METRICS_ADDR")]
    pub metrics_addr: Option<std::net::SocketAddr>,
}

/// How many threads a service runs its work on.
#[derive(Debug, Clone, Args)]
pub struct RuntimeArgs {
    /// Threads of the async runtime. A service spends its time waiting on
    /// NATS and HTTP, and every hand-off between threads costs a wake-up:
    /// on one thread each, the 2-core benchmark's latency-bound job ran
    /// 10-25% faster for 20-30% less CPU per item (docs/performance.md).
    /// Scale a stage by running more instances, or raise this for one
    /// large instance.
    #[arg(long, env = "JETFLOW_WORKER_THREADS", default_value_t = 1)]
    pub worker_threads: usize,
}

/// Logging flags.
#[derive(Debug, Clone, Args)]
pub struct LogArgs {
    /// Log format: text for people, json for machines.
    #[arg(
        long,
        env = "JETFLOW_LOG_FORMAT",
        value_enum,
        default_value_t = LogFormat::Text,
        global = true
    )]
    pub log_format: LogFormat,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn userinfo_leaves_the_url_and_is_decoded() {
        let server = ServerUrl::parse(" nats://jet%40flow:p%3Ass@host:4222 ");
        assert_eq!(server.url, "nats://host:4222");
        assert_eq!(
            server.userinfo,
            Some(Userinfo::UserPassword("jet@flow".into(), "p:ss".into()))
        );
        let token = ServerUrl::parse("tls://s3cret@host");
        assert_eq!(token.url, "tls://host");
        assert_eq!(token.userinfo, Some(Userinfo::Token("s3cret".into())));
        let plain = ServerUrl::parse("nats://host:4222/x@y");
        assert_eq!(
            (plain.url.as_str(), plain.userinfo),
            ("nats://host:4222/x@y", None)
        );
    }

    #[test]
    fn secrets_stay_out_of_debug_and_display_urls() {
        let mut args = NatsArgs::new(["nats://bob:hunter2@127.0.0.1:4222"], "ns");
        args.auth.token = Some("tok-123".into());
        let debug = format!("{args:?}");
        assert!(
            !debug.contains("tok-123") && debug.contains("<given>"),
            "{debug}"
        );
        assert!(!debug.contains("hunter2"), "{debug}");
        assert_eq!(args.display_urls(), "nats://127.0.0.1:4222");
        let creds = AuthArgs {
            creds: Some("/secret/place/user.creds".into()),
            ..AuthArgs::default()
        };
        assert!(!format!("{creds:?}").contains("/secret/place"));
    }

    #[test]
    fn one_way_to_authenticate_named_by_its_flags() {
        let mut args = NatsArgs::new(["nats://127.0.0.1:4222"], "ns");
        assert!(args.validate().is_ok());
        args.auth.user = Some("bob".into());
        let err = args.validate().unwrap_err().to_string();
        assert!(err.contains("--user and --password"), "{err}");
        args.auth.password = Some("pw".into());
        assert!(args.validate().is_ok());
        args.auth.token = Some("t".into());
        let err = args.validate().unwrap_err().to_string();
        assert!(err.contains("--user/--password and --token"), "{err}");

        let mut userinfo = NatsArgs::new(["nats://bob:pw@127.0.0.1:4222"], "ns");
        assert!(userinfo.validate().is_ok());
        userinfo.auth.token = Some("t".into());
        let err = userinfo.validate().unwrap_err().to_string();
        assert!(err.contains("--nats-url carries credentials"), "{err}");

        let mut tls = NatsArgs::new(["nats://127.0.0.1:4222"], "ns");
        tls.auth.tlscert = Some("c.pem".into());
        let err = tls.validate().unwrap_err().to_string();
        assert!(err.contains("--tlscert and --tlskey"), "{err}");
    }
}
