//! The `nats` CLI's contexts: an operator's saved connection settings (URL,
//! credentials, TLS), read so their existing setup just works.
//!
//! A context is `<config>/nats/context/<name>.json` (`<config>` is
//! `$XDG_CONFIG_HOME`, else `~/.config`); `<config>/nats/context.txt` names
//! the selected one. `--context NAME` / `NATS_CONTEXT` picks one by name,
//! else the selected one applies. Its settings fill in what neither a flag
//! nor the environment gives: they are set as the `NATS_*` variables the
//! flags read, before the command line is read again.

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use serde::Deserialize;

/// The fields of a context jetflow uses; others (`description`, `nsc`,
/// JetStream domains) are ignored.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct NatsContext {
    url: String,
    user: String,
    password: String,
    token: String,
    creds: String,
    nkey: String,
    cert: String,
    key: String,
    ca: String,
    inbox_prefix: String,
    tls_first: bool,
    jetstream_domain: String,
    nsc: String,
}

/// Where the `nats` CLI keeps its configuration.
fn config_dir() -> Option<PathBuf> {
    let base = match std::env::var_os("XDG_CONFIG_HOME") {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => PathBuf::from(std::env::var_os("HOME")?).join(".config"),
    };
    Some(base.join("nats"))
}

/// A context's settings as the `NATS_*` variables the flags read.
pub type Settings = Vec<(&'static str, String)>;

/// The context to apply: `named` if given (it must exist), else the
/// selected one, if any. Returns its name and the settings it gives.
pub fn settings(named: Option<&str>) -> anyhow::Result<Option<(String, Settings)>> {
    let Some(dir) = config_dir() else {
        return Ok(None);
    };
    let name = match named {
        Some(name) => name.to_string(),
        None => match std::fs::read_to_string(dir.join("context.txt")) {
            Ok(selected) if !selected.trim().is_empty() => selected.trim().to_string(),
            _ => return Ok(None),
        },
    };
    if name.contains(['/', '\\']) || name.starts_with('.') {
        anyhow::bail!("--context: {name:?} is not a context name");
    }
    let path = dir.join("context").join(format!("{name}.json"));
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("--context {name}: reading {}", path.display()))?;
    let context: NatsContext = serde_json::from_str(&text)
        .with_context(|| format!("--context {name}: {} is not a nats context", path.display()))?;
    if !context.nsc.is_empty() || !context.jetstream_domain.is_empty() {
        tracing::warn!(
            context = name,
            "the context's nsc and jetstream_domain settings are not used by jetflow"
        );
    }
    Ok(Some((name, to_env(&context))))
}

/// The `NATS_*` variables `context` sets, paths with `~` expanded.
fn to_env(context: &NatsContext) -> Settings {
    let path = |p: &str| expand_home(p).display().to_string();
    let fields: [(&'static str, Option<String>); 11] = [
        ("NATS_URL", some(&context.url)),
        ("NATS_USER", some(&context.user)),
        ("NATS_PASSWORD", some(&context.password)),
        ("NATS_TOKEN", some(&context.token)),
        ("NATS_CREDS", some(&context.creds).map(|p| path(&p))),
        ("NATS_NKEY", some(&context.nkey).map(|p| path(&p))),
        ("NATS_CERT", some(&context.cert).map(|p| path(&p))),
        ("NATS_KEY", some(&context.key).map(|p| path(&p))),
        ("NATS_CA", some(&context.ca).map(|p| path(&p))),
        ("NATS_INBOX_PREFIX", some(&context.inbox_prefix)),
        (
            "NATS_TLSFIRST",
            context.tls_first.then(|| "true".to_string()),
        ),
    ];
    fields
        .into_iter()
        .filter_map(|(name, value)| value.map(|v| (name, v)))
        .collect()
}

fn some(value: &str) -> Option<String> {
    (!value.trim().is_empty()).then(|| value.trim().to_string())
}

fn expand_home(path: &str) -> PathBuf {
    match (path.strip_prefix("~/"), std::env::var_os("HOME")) {
        (Some(rest), Some(home)) => Path::new(&home).join(rest),
        _ => PathBuf::from(path),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_context_gives_the_variables_the_flags_read() {
        let context: NatsContext = serde_json::from_str(
            r#"{"description": "prod", "url": "tls://a:4222,tls://b:4222", "user": "ops",
                "password": "pw", "ca": "/etc/nats/ca.pem", "tls_first": true, "token": "",
                "nsc": "", "windows_cert_store": ""}"#,
        )
        .unwrap();
        let env = to_env(&context);
        assert!(env.contains(&("NATS_URL", "tls://a:4222,tls://b:4222".into())));
        assert!(env.contains(&("NATS_USER", "ops".into())));
        assert!(env.contains(&("NATS_PASSWORD", "pw".into())));
        assert!(env.contains(&("NATS_CA", "/etc/nats/ca.pem".into())));
        assert!(env.contains(&("NATS_TLSFIRST", "true".into())));
        assert!(
            !env.iter().any(|(name, _)| *name == "NATS_TOKEN"),
            "empty fields set nothing"
        );
    }
}
