//! Operator mode, made in the test: an operator, an account with JetStream
//! and a user, as signed JWTs (ed25519 nkeys, as `nsc` signs them), the
//! server configuration that trusts them, and the user's `.creds` file.

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine as _};
use nkeys::KeyPair;
use serde_json::{json, Value};

/// One operator with one account and one user.
pub struct Operator {
    operator_jwt: String,
    /// The system account JetStream needs in operator mode.
    system: KeyPair,
    system_jwt: String,
    account: KeyPair,
    account_jwt: String,
    /// The user's `.creds` file (its JWT and nkey seed).
    pub creds: PathBuf,
    /// Another user's creds, signed by an account the server does not know.
    pub stranger_creds: PathBuf,
}

impl Operator {
    /// Mints the keys and JWTs and writes the creds files into `dir`.
    pub fn new(dir: &Path) -> anyhow::Result<Operator> {
        let operator = KeyPair::new_operator();
        let operator_jwt = sign(
            &operator,
            &operator.public_key(),
            "jetflow-test",
            json!({"type": "operator", "version": 2}),
        )?;
        let system = KeyPair::new_account();
        let system_jwt = sign(
            &operator,
            &system.public_key(),
            "SYS",
            json!({"type": "account", "version": 2}),
        )?;
        let account = KeyPair::new_account();
        let account_jwt = sign(
            &operator,
            &account.public_key(),
            "jetflow",
            json!({
                "type": "account", "version": 2,
                "limits": {
                    "subs": -1, "data": -1, "payload": -1, "imports": -1, "exports": -1,
                    "wildcards": true, "conn": -1, "leaf": -1,
                    "mem_storage": -1, "disk_storage": -1, "streams": -1, "consumer": -1,
                    "max_ack_pending": -1, "mem_max_stream_bytes": -1,
                    "disk_max_stream_bytes": -1, "max_bytes_required": false
                }
            }),
        )?;
        let creds = dir.join("user.creds");
        write_creds(&creds, &account, &KeyPair::new_user())?;
        let stranger_creds = dir.join("stranger.creds");
        write_creds(
            &stranger_creds,
            &KeyPair::new_account(),
            &KeyPair::new_user(),
        )?;
        Ok(Operator {
            operator_jwt,
            system,
            system_jwt,
            account,
            account_jwt,
            creds,
            stranger_creds,
        })
    }

    /// The nats-server configuration of operator mode with this account
    /// preloaded.
    pub fn server_config(&self) -> String {
        format!(
            "operator: {}\nsystem_account: {}\nresolver: MEMORY\nresolver_preload: {{\n  {}: {}\n  {}: {}\n}}\n",
            self.operator_jwt,
            self.system.public_key(),
            self.system.public_key(),
            self.system_jwt,
            self.account.public_key(),
            self.account_jwt
        )
    }
}

impl Operator {
    /// A user of the account named `name` whose rights are `permissions`
    /// (as `nsc add user --allow-pub ... --allow-sub ... --allow-pub-response`
    /// makes them), as a `.creds` file at `path`.
    pub fn user_creds(
        &self,
        path: &Path,
        name: &str,
        permissions: &jetflow_runtime::security::roles::Permissions,
    ) -> anyhow::Result<()> {
        let mut claims = json!({
            "type": "user", "version": 2,
            "pub": {"allow": permissions.publish},
            "sub": {"allow": permissions.subscribe},
            "subs": -1, "data": -1, "payload": -1
        });
        if permissions.responses {
            claims["resp"] = json!({"max": 1, "ttl": 0});
        }
        write_user(path, &self.account, &KeyPair::new_user(), name, claims)
    }
}

/// A user of `account` with every right, as a `.creds` file at `path`.
fn write_creds(path: &Path, account: &KeyPair, user: &KeyPair) -> anyhow::Result<()> {
    let claims = json!({
        "type": "user", "version": 2, "pub": {}, "sub": {},
        "subs": -1, "data": -1, "payload": -1
    });
    write_user(path, account, user, "jetflow-user", claims)
}

/// A user of `account` with `claims`, as a `.creds` file at `path`.
fn write_user(
    path: &Path,
    account: &KeyPair,
    user: &KeyPair,
    name: &str,
    claims: Value,
) -> anyhow::Result<()> {
    let jwt = sign(account, &user.public_key(), name, claims)?;
    let seed = user.seed()?;
    let creds = format!(
        "-----BEGIN NATS USER JWT-----\n{jwt}\n------END NATS USER JWT------\n\n\
         ************************* IMPORTANT *************************\n\
         NKEY Seed printed below can be used to sign and prove identity.\n\n\
         -----BEGIN USER NKEY SEED-----\n{seed}\n------END USER NKEY SEED------\n"
    );
    std::fs::write(path, creds).with_context(|| format!("writing {}", path.display()))
}

/// A JWT of `subject` issued and signed by `issuer`, with `nats` claims.
fn sign(issuer: &KeyPair, subject: &str, name: &str, nats: Value) -> anyhow::Result<String> {
    let header = json!({"typ": "JWT", "alg": "ed25519-nkey"});
    let now = chrono::Utc::now().timestamp();
    let claims = json!({
        "jti": format!("{}{}", subject, now),
        "iat": now,
        "iss": issuer.public_key(),
        "name": name,
        "sub": subject,
        "nats": nats,
    });
    let signing_input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    );
    let signature = issuer.sign(signing_input.as_bytes())?;
    Ok(format!(
        "{signing_input}.{}",
        URL_SAFE_NO_PAD.encode(signature)
    ))
}
