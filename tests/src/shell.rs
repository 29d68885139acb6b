//! The environment an operator's shell sets to reach a test's NATS, for the
//! binaries the tests start as processes (the CLI, the services).

use jetflow_runtime::NatsArgs;

/// The environment an operator's shell sets for `nats`: the URLs, the
/// namespace, and each credential and TLS setting as the `nats` CLI names it.
pub fn env_of(nats: &NatsArgs) -> Vec<(&'static str, String)> {
    let path = |p: &Option<std::path::PathBuf>| p.as_ref().map(|p| p.display().to_string());
    let auth = &nats.auth;
    let mut env = vec![
        ("NATS_URL", Some(nats.nats_url.join(","))),
        ("JETFLOW_NAMESPACE", Some(nats.namespace.clone())),
        ("JETFLOW_REPLICAS", nats.replicas.map(|r| r.to_string())),
        ("NATS_CREDS", path(&auth.creds)),
        ("NATS_NKEY", path(&auth.nkey)),
        ("NATS_USER", auth.user.clone()),
        (
            "NATS_PASSWORD",
            auth.password.as_ref().map(|s| s.expose().to_string()),
        ),
        (
            "NATS_TOKEN",
            auth.token.as_ref().map(|s| s.expose().to_string()),
        ),
        ("NATS_CA", path(&auth.tlsca)),
        ("NATS_CERT", path(&auth.tlscert)),
        ("NATS_KEY", path(&auth.tlskey)),
        ("NATS_INBOX_PREFIX", auth.inbox_prefix.clone()),
    ];
    if !nats.provisions() {
        env.push(("JETFLOW_PROVISION", Some("false".into())));
    }
    if auth.tlsfirst {
        env.push(("NATS_TLSFIRST", Some("true".into())));
    }
    env.into_iter()
        .filter_map(|(name, value)| value.map(|v| (name, v)))
        .collect()
}
