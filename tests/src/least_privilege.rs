//! A nats-server whose users are jetflow's least-privilege roles, exactly
//! as `jetflow roles` writes them (what `deploy/nats/roles.conf` holds), one
//! user per role with its own password and inbox prefix, and a way to read
//! the permission violations the server logged.

use std::{collections::BTreeMap, sync::Arc};

use jetflow_devkit::{NatsServer, ServerOptions};
use jetflow_protocol::Names;
use jetflow_runtime::{
    security::{
        render,
        roles::{inbox_prefix, Role, Scope},
    },
    NatsArgs,
};

/// The server and how each role connects to it.
pub struct Secured {
    /// The nats-server.
    pub server: Arc<NatsServer>,
    /// Each role's settings: its user, password, inbox prefix, bind-only.
    pub users: BTreeMap<Role, NatsArgs>,
    /// Every password, to grep logs for.
    pub passwords: Vec<String>,
}

impl Secured {
    /// `role`'s connection settings.
    pub fn user(&self, role: Role) -> NatsArgs {
        self.users[&role].clone()
    }

    /// The permission violations the server has logged so far, one line
    /// each (`Publish Violation - user "fetch" ..., Subject "..."`).
    pub fn violations(&self) -> Vec<String> {
        violations(&self.server)
    }
}

/// The violations `server` has logged.
pub fn violations(server: &NatsServer) -> Vec<String> {
    std::fs::read_to_string(server.log_path())
        .unwrap_or_default()
        .lines()
        .filter(|l| l.contains("Violation"))
        .map(str::to_string)
        .collect()
}

/// The server configuration of `namespace`'s roles for `scope` (each
/// role's publish rights passed through `edit` first, for tests that take
/// one away), and how each role connects.
pub struct Roles {
    /// Configuration to append to a nats-server's.
    pub config: String,
    /// Each role's settings, without server URLs.
    pub users: BTreeMap<Role, NatsArgs>,
    /// Every password.
    pub passwords: Vec<String>,
}

impl Roles {
    /// The roles' users, connecting to `urls`.
    pub fn at(&self, urls: &[String]) -> BTreeMap<Role, NatsArgs> {
        let mut users = self.users.clone();
        for args in users.values_mut() {
            args.nats_url = urls.to_vec();
        }
        users
    }
}

/// See [`Roles`].
pub fn roles(
    namespace: &str,
    scope: &Scope,
    edit: impl Fn(Role, &mut Vec<String>),
) -> anyhow::Result<Roles> {
    let names = Names::new(namespace).map_err(anyhow::Error::msg)?;
    let roles = edited(render::server_conf(&names, scope), &names, &edit);
    let mut users = BTreeMap::new();
    let mut entries = Vec::new();
    let mut passwords = Vec::new();
    for role in Role::ALL {
        let password = format!("pw-{role}-{}", jetflow_runtime::instance_id());
        entries.push(format!(
            "{{ user: \"{role}\", password: \"{password}\", permissions: ${} }}",
            render::variable(&names, role)
        ));
        let mut args = NatsArgs::new(Vec::<String>::new(), namespace).bind_only();
        args.auth.user = Some(role.to_string());
        args.auth.password = Some(password.as_str().into());
        args.auth.inbox_prefix = Some(inbox_prefix(&names, role));
        users.insert(role, args);
        passwords.push(password);
    }
    let config = format!(
        "{roles}\nauthorization {{ users: [\n  {}\n] }}\n",
        entries.join("\n  ")
    );
    Ok(Roles {
        config,
        users,
        passwords,
    })
}

/// Starts a nats-server with [`roles`].
pub async fn start(
    namespace: &str,
    scope: &Scope,
    edit: impl Fn(Role, &mut Vec<String>),
) -> anyhow::Result<Secured> {
    let roles = roles(namespace, scope, edit)?;
    let options = ServerOptions {
        extra_config: Some(roles.config.clone()),
        ..ServerOptions::default()
    };
    let server = tokio::task::spawn_blocking(move || NatsServer::start_with(options)).await??;
    Ok(Secured {
        users: roles.at(&[server.url()]),
        server: Arc::new(server),
        passwords: roles.passwords,
    })
}

/// `conf` with each role's publish list passed through `edit`: the
/// variable blocks are re-rendered from the edited lists.
fn edited(conf: String, names: &Names, edit: &impl Fn(Role, &mut Vec<String>)) -> String {
    let mut out = conf;
    for role in Role::ALL {
        let variable = render::variable(names, role);
        let start = format!("{variable} = {{\n  publish: {{ allow: [\n");
        let Some(from) = out.find(&start) else {
            continue;
        };
        let body_from = from + start.len();
        let Some(len) = out[body_from..].find("  ] }") else {
            continue;
        };
        let mut subjects: Vec<String> = out[body_from..body_from + len]
            .lines()
            .map(|l| l.trim().trim_matches('"').to_string())
            .filter(|l| !l.is_empty())
            .collect();
        edit(role, &mut subjects);
        let body: String = subjects
            .iter()
            .map(|s| format!("    {}\n", serde_json::to_string(s).unwrap_or_default()))
            .collect();
        out.replace_range(body_from..body_from + len, &body);
    }
    out
}
