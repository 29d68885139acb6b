//! The roles written out for a server: as nats-server configuration
//! variables (`roles.conf`, included by a config that gives each role a
//! user), or as `nsc` commands for operator/JWT mode.

use std::fmt::Write as _;

use jetflow_protocol::Names;

use super::roles::{inbox_prefix, permissions, Permissions, Role, Scope};

/// The header every rendering starts with: where it came from, how to make
/// it again.
fn header(comment: &str, names: &Names, scope: &Scope, format: &str) -> String {
    let mut command = format!("jetflow roles --format {format}");
    if names.namespace() != jetflow_protocol::names::DEFAULT_NAMESPACE {
        let _ = write!(command, " --namespace {}", names.namespace());
    }
    for (flag, values) in [
        ("--handler-subject", &scope.handler_subjects),
        ("--source-subject", &scope.source_subjects),
        ("--external-job", &scope.external_jobs),
        ("--reduce-subject", &scope.reduce_subjects),
    ] {
        for value in values {
            let _ = write!(command, " {flag} '{value}'");
        }
    }
    format!(
        "{comment} jetflow's least-privilege roles for namespace {:?}.\n\
         {comment} Generated from the subject names in the code; do not edit. Made with:\n\
         {comment}   {command}\n",
        names.namespace()
    )
}

/// The variable a role's permissions are in: `JETFLOW_FETCH`.
pub fn variable(names: &Names, role: Role) -> String {
    format!(
        "{}_{}",
        names.namespace().to_uppercase().replace('-', "_"),
        role.as_str().to_uppercase()
    )
}

/// nats-server configuration defining one variable per role, e.g.
/// `JETFLOW_FETCH = { publish: ..., subscribe: ... }`, for a config to
/// `include` and use as `permissions: $JETFLOW_FETCH`.
pub fn server_conf(names: &Names, scope: &Scope) -> String {
    let mut out = header("#", names, scope, "conf");
    for role in Role::ALL {
        let p = permissions(names, role, scope);
        let _ = writeln!(
            out,
            "\n# {role}: connect with --inbox-prefix {}",
            inbox_prefix(names, role)
        );
        let _ = writeln!(out, "{} = {{", variable(names, role));
        list(&mut out, "publish", &p.publish);
        list(&mut out, "subscribe", &p.subscribe);
        if p.responses {
            let _ = writeln!(out, "  allow_responses: true");
        }
        let _ = writeln!(out, "}}");
    }
    out
}

fn list<'a>(out: &mut String, what: &str, subjects: impl IntoIterator<Item = &'a String>) {
    let _ = writeln!(out, "  {what}: {{ allow: [");
    for subject in subjects {
        // JSON quoting is valid in the NATS config syntax.
        let quoted = serde_json::to_string(subject).unwrap_or_default();
        let _ = writeln!(out, "    {quoted}");
    }
    let _ = writeln!(out, "  ] }}");
}

/// A shell script of `nsc` commands adding one user per role to `account`
/// (operator/JWT mode); `nsc generate creds` then writes their `.creds`.
pub fn nsc_script(names: &Names, scope: &Scope, account: &str) -> String {
    let mut out = String::from("#!/bin/sh\n");
    out.push_str(&header("#", names, scope, "nsc"));
    out.push_str(
        "# Run with an operator and account set up (nsc add operator / nsc add account).\n\
         # A user's JWT travels in its CONNECT line, and those of reduce, viewer and\n\
         # admin are longer than nats-server's default 4 KB: set\n\
         # `max_control_line: 64KB` in the server's config.\n\
         set -eu\n",
    );
    let _ = writeln!(out, "ACCOUNT=\"${{ACCOUNT:-{account}}}\"");
    for role in Role::ALL {
        let p = permissions(names, role, scope);
        let user = format!("{}-{}", names.namespace(), role.as_str());
        let _ = writeln!(
            out,
            "\n# {role}: connect with --inbox-prefix {}",
            inbox_prefix(names, role)
        );
        let _ = writeln!(out, "nsc add user --account \"$ACCOUNT\" --name {user} \\");
        nsc_flags(&mut out, &p);
    }
    out
}

fn nsc_flags(out: &mut String, p: &Permissions) {
    let mut flags: Vec<String> = Vec::new();
    for subject in &p.publish {
        flags.push(format!("--allow-pub '{subject}'"));
    }
    for subject in &p.subscribe {
        flags.push(format!("--allow-sub '{subject}'"));
    }
    if p.responses {
        flags.push("--allow-pub-response".to_string());
    }
    let last = flags.len().saturating_sub(1);
    for (i, flag) in flags.iter().enumerate() {
        let end = if i == last { "" } else { " \\" };
        let _ = writeln!(out, "  {flag}{end}");
    }
}

/// The scope the files in `deploy/nats/` are made for: the examples'
/// `agents.*` handler subjects and page source, and job ends told on
/// `ops.jobs`.
pub fn deploy_scope() -> Scope {
    Scope {
        handler_subjects: vec!["agents.>".into()],
        source_subjects: vec!["agents.pages".into()],
        external_jobs: Vec::new(),
        reduce_subjects: vec!["ops.jobs".into()],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The shipped files are this module's output, byte for byte: a change
    /// to a subject name or a role that is not regenerated fails here
    /// (regenerate with the command in each file's header).
    #[test]
    fn the_deploy_files_are_what_the_code_generates() {
        let names = Names::default();
        assert_eq!(
            include_str!("../../../../deploy/nats/roles.conf"),
            server_conf(&names, &deploy_scope()),
            "deploy/nats/roles.conf is stale"
        );
        assert_eq!(
            include_str!("../../../../deploy/nats/nsc.sh"),
            nsc_script(&names, &deploy_scope(), "JETFLOW"),
            "deploy/nats/nsc.sh is stale"
        );
    }

    #[test]
    fn the_conf_defines_a_variable_per_role_with_quoted_subjects() {
        let text = server_conf(&Names::default(), &Scope::default());
        for role in Role::ALL {
            assert!(text.contains(&format!("{} = {{", variable(&Names::default(), role))));
        }
        assert!(
            text.contains("\"$JS.API.STREAM.INFO.JETFLOW_JOBS\""),
            "{text}"
        );
        assert!(text.contains("jetflow roles --format conf"), "{text}");
    }

    #[test]
    fn the_nsc_script_adds_a_user_per_role() {
        let text = nsc_script(&Names::default(), &Scope::default(), "JETFLOW");
        assert_eq!(text.matches("nsc add user").count(), Role::ALL.len());
        assert!(text.contains("--name jetflow-reduce"), "{text}");
        assert!(text.contains("--allow-pub-response"), "{text}");
    }
}
