//! `jetflow roles`: the least-privilege NATS rights of each part of jetflow
//! (fetch, batch, migrate, reduce, submitter, worker, viewer, admin) for a
//! namespace, as nats-server configuration, `nsc` commands or JSON. The
//! files in `deploy/nats/` are its output; no connection is needed.

use std::collections::BTreeMap;

use jetflow_protocol::Names;
use jetflow_runtime::security::{
    render,
    roles::{self, Role, Scope},
};

use crate::exit;

/// How to write the roles.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum Format {
    /// nats-server config variables, one per role, to `include`.
    Conf,
    /// A shell script of `nsc add user` commands (operator/JWT mode).
    Nsc,
    /// `{role: {publish, subscribe, allow_responses, inbox_prefix}}`.
    Json,
}

/// Arguments of `jetflow roles`.
#[derive(Debug, clap::Args)]
pub struct RolesArgs {
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Conf)]
    pub format: Format,
    /// Namespace of every subject, stream and bucket.
    #[arg(long, env = "JETFLOW_NAMESPACE", default_value = jetflow_protocol::names::DEFAULT_NAMESPACE)]
    pub namespace: String,
    /// A subject `nats` handlers are served on (repeatable; wildcards
    /// allowed): migrate may request it, `worker` may serve it.
    #[arg(long = "handler-subject")]
    pub handler_subjects: Vec<String>,
    /// A subject `nats` sources are served on (repeatable): fetch may
    /// request it.
    #[arg(long = "source-subject")]
    pub source_subjects: Vec<String>,
    /// An `external` job whose tasks `worker` may pull and whose results it
    /// may publish (repeatable).
    #[arg(long = "external-job")]
    pub external_jobs: Vec<String>,
    /// A subject of `nats` reductions or `notify` entries (repeatable;
    /// wildcards allowed): reduce may request and publish on it.
    #[arg(long = "reduce-subject")]
    pub reduce_subjects: Vec<String>,
    /// The account the `nsc` script adds users to.
    #[arg(long, default_value = "JETFLOW")]
    pub account: String,
}

pub async fn run(args: RolesArgs) -> anyhow::Result<u8> {
    let names = Names::new(&args.namespace).map_err(|e| anyhow::anyhow!("--namespace: {e}"))?;
    for job in &args.external_jobs {
        jetflow_protocol::names::validate_job_id(job)
            .map_err(|e| anyhow::anyhow!("--external-job: {e}"))?;
    }
    let scope = Scope {
        handler_subjects: args.handler_subjects,
        source_subjects: args.source_subjects,
        external_jobs: args.external_jobs,
        reduce_subjects: args.reduce_subjects,
    };
    match args.format {
        Format::Conf => print!("{}", render::server_conf(&names, &scope)),
        Format::Nsc => print!("{}", render::nsc_script(&names, &scope, &args.account)),
        Format::Json => {
            let all: BTreeMap<&str, serde_json::Value> = Role::ALL
                .into_iter()
                .map(|role| {
                    let p = roles::permissions(&names, role, &scope);
                    let value = serde_json::json!({
                        "publish": p.publish,
                        "subscribe": p.subscribe,
                        "allow_responses": p.responses,
                        "inbox_prefix": roles::inbox_prefix(&names, role),
                    });
                    (role.as_str(), value)
                })
                .collect();
            println!("{}", serde_json::to_string_pretty(&all)?);
        }
    }
    Ok(exit::OK)
}
