//! `jetflow provision [--replicas N]`: creates every stream, bucket and
//! stage consumer of a namespace, or brings them up to date, for an admin;
//! services and the CLI can then run `--no-provision` as users with no
//! stream-admin rights. Running it again changes nothing that is current;
//! an existing stream never loses replicas.

use anyhow::Context as _;
use async_nats::jetstream::consumer::pull;
use jetflow_runtime::{
    nats::{bus, provision, stage_consumers},
    NatsArgs,
};

use crate::{connect, exit};

/// Arguments of `jetflow provision`.
#[derive(Debug, clap::Args)]
pub struct ProvisionArgs {
    /// Print what exists afterwards as JSON.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub nats: NatsArgs,
}

/// How long `jetflow provision` rides out a cluster electing leaders (run
/// from a Job next to a fresh cluster, it often is).
const PATIENCE: std::time::Duration = std::time::Duration::from_secs(60);

/// `op`, tried again on transient failures until [`PATIENCE`] is spent.
async fn patiently<T, F, Fut>(op: F) -> jetflow_runtime::Result<T>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = jetflow_runtime::Result<T>>,
{
    let deadline = tokio::time::Instant::now() + PATIENCE;
    let mut delay = std::time::Duration::from_millis(250);
    loop {
        match op().await {
            Err(err) if err.is_transient() && tokio::time::Instant::now() < deadline => {
                eprintln!("jetflow: {err}; trying again");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(std::time::Duration::from_secs(5));
            }
            other => return other,
        }
    }
}

/// One line of the report.
#[derive(Debug, serde::Serialize)]
struct Line {
    kind: &'static str,
    name: String,
    replicas: Option<usize>,
    created: bool,
    updated: bool,
}

pub async fn run(args: ProvisionArgs) -> anyhow::Result<u8> {
    let (client, js, names) = connect::bare(&args.nats).await?;
    let replicas = bus::replicas(&args.nats, &client);
    let report = patiently(|| provision::provision(&js, &names, replicas)).await?;
    let mut lines: Vec<Line> = report
        .into_iter()
        .map(|p| Line {
            kind: p.kind,
            name: p.name,
            replicas: Some(p.replicas),
            created: p.created,
            updated: p.updated,
        })
        .collect();
    for consumer in stage_consumers::all(&names) {
        let existed = js
            .get_consumer_from_stream::<pull::Config, _, _>(consumer.name(), &consumer.stream)
            .await
            .is_ok();
        js.create_consumer_on_stream(consumer.config.clone(), &consumer.stream)
            .await
            .with_context(|| {
                format!(
                    "creating consumer {} on {}",
                    consumer.name(),
                    consumer.stream
                )
            })?;
        lines.push(Line {
            kind: "consumer",
            name: format!("{}/{}", consumer.stream, consumer.name()),
            replicas: None,
            created: !existed,
            // Consumers are always written: cheap, and one request.
            updated: existed,
        });
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&lines)?);
        return Ok(exit::OK);
    }
    for line in &lines {
        let replicas = line.replicas.map(|r| format!("R{r}")).unwrap_or_default();
        let what = match (line.created, line.updated) {
            (true, _) => "created",
            (false, true) => "updated",
            (false, false) => "up to date",
        };
        println!("{:<9} {:<32} {:<3} {what}", line.kind, line.name, replicas);
    }
    let count = |f: fn(&Line) -> bool| lines.iter().filter(|l| f(l)).count();
    eprintln!(
        "namespace {:?}: {} created, {} updated, {} up to date",
        names.namespace(),
        count(|l| l.created),
        count(|l| l.updated),
        count(|l| !l.created && !l.updated)
    );
    Ok(exit::OK)
}
