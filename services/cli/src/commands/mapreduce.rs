//! `jetflow mapreduce`: a map-reduce job in one command.
//!
//! ```text
//! jetflow mapreduce --items docs.jsonl --map nats:words.count \
//!     --reduce sum:output.words --reduce count_by:output.lang --concurrency 50 --wait
//! ```
//!
//! The flags become an ordinary job (`--print` shows it, and it can be
//! submitted as it is): the items are the source, `--map` the handler,
//! each `--reduce` one of its reductions. With `--wait` the command follows
//! the job and prints its answers.

use std::path::PathBuf;

use anyhow::Context as _;
use jetflow_protocol::job::Invalid;
use jetflow_runtime::NatsArgs;
use serde_json::{json, Map, Value};

use crate::{
    commands::submit::{self, exit_code, print_final, Verdict},
    connect, exit, progress,
};

/// Arguments of `jetflow mapreduce`.
#[derive(Debug, clap::Args)]
pub struct MapReduceArgs {
    /// The items, as JSON Lines: `{"id", "data"}` objects, objects with an
    /// `id` (the rest is the data), or any other value (its line number is
    /// its id). `-` reads standard input.
    #[arg(long, conflicts_with_all = ["source_url", "source_job"])]
    pub items: Option<PathBuf>,
    /// The items from an HTTP source paged with a cursor (`items`,
    /// `next_cursor`, `cursor` and `limit`, as an `http` source's defaults).
    #[arg(long, conflicts_with = "source_job")]
    pub source_url: Option<String>,
    /// The items from another job's succeeded outcomes (their outputs).
    #[arg(long)]
    pub source_job: Option<String>,
    /// The map: `nats:SUBJECT` (a request per item to workers in any
    /// language) or `http:URL` (a POST per item; `{id}` in the URL is the
    /// item id).
    #[arg(long)]
    pub map: String,
    /// A reduction, `[NAME=]OP[:PATH[:LIMIT]]` (`sum:output.words`,
    /// `langs=count_by:output.lang:20`, `count`) or `[NAME=]nats:SUBJECT`.
    /// Repeat for several. NAME defaults to the op and the path's last part.
    #[arg(long = "reduce", required = true)] // not a stage: the flag
    pub reductions: Vec<String>,
    /// Items in flight at once.
    #[arg(long)]
    pub concurrency: Option<u32>,
    /// The job's id (default: one is made).
    #[arg(long)]
    pub id: Option<String>,
    /// Print the job this builds, and do nothing else.
    #[arg(long)]
    pub print: bool,
    /// Follow the job to its end, then print its answers.
    #[arg(long)]
    pub wait: bool,
    /// With `--wait`: print the answers (the job's `results`) as JSON.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub nats: NatsArgs,
}

pub async fn run(args: MapReduceArgs) -> anyhow::Result<u8> {
    let items = match &args.items {
        Some(path) => Some(items_from_lines(&read(path)?).map_err(anyhow::Error::msg)?),
        None => None,
    };
    let spec = match build(&args, items) {
        Ok(spec) => spec,
        Err(error) => {
            eprintln!("{error}");
            return Ok(exit::REJECTED);
        }
    };
    let (id, body) = match submit::prepare(&spec.to_string()) {
        Ok(prepared) => prepared,
        Err(Invalid::Rejected { rejection, .. }) => {
            eprintln!("rejected: {rejection}");
            return Ok(exit::REJECTED);
        }
        Err(Invalid::Undecodable(reason)) => {
            eprintln!("rejected: {reason}");
            return Ok(exit::REJECTED);
        }
    };
    if args.print {
        println!("{}", serde_json::to_string_pretty(&body)?);
        return Ok(exit::OK);
    }
    let bus = connect::provisioned(&args.nats).await?;
    match submit::submit(&bus, &id, body).await? {
        Verdict::Accepted => {}
        Verdict::Rejected(reason) => {
            eprintln!("rejected: {reason}");
            return Ok(exit::REJECTED);
        }
    }
    if !args.wait {
        println!("{id}");
        return Ok(exit::OK);
    }
    eprintln!("submitted {id}");
    let state = progress::follow(&bus, &id).await?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&state.results)?);
    } else {
        print_final(&state, false);
    }
    Ok(exit_code(state.status))
}

fn read(path: &PathBuf) -> anyhow::Result<String> {
    if path.as_os_str() == "-" {
        std::io::read_to_string(std::io::stdin()).context("reading standard input")
    } else {
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))
    }
}

/// The job the flags describe (`items`: those of `--items`, read), or the
/// flag that is wrong and why.
fn build(args: &MapReduceArgs, items: Option<Vec<Value>>) -> Result<Value, String> {
    let source = match (items, &args.source_url, &args.source_job) {
        (Some(items), _, _) => json!({"type": "items", "items": items}),
        (None, Some(url), _) => json!({"type": "http", "url": url}),
        (None, None, Some(job)) => json!({"type": "job", "job": job}),
        (None, None, None) => {
            return Err("--items, --source-url or --source-job: say where the items are".into())
        }
    };
    let handler = match args.map.split_once(':') {
        Some(("nats", subject)) => json!({"type": "nats", "subject": subject}),
        Some(("http", url)) => json!({"type": "http", "url": url}),
        _ => {
            return Err(format!(
                "--map {:?}: must be nats:SUBJECT or http:URL",
                args.map
            ))
        }
    };
    let reduce = args
        .reductions
        .iter()
        .map(|flag| reduction(flag))
        .collect::<Result<Vec<_>, _>>()?;
    let mut spec = Map::new();
    if let Some(id) = &args.id {
        spec.insert("id".into(), json!(id));
    }
    spec.insert("kind".into(), json!("mapreduce"));
    spec.insert("source".into(), source);
    spec.insert("handler".into(), handler);
    if let Some(n) = args.concurrency {
        spec.insert("batch".into(), json!({ "concurrency": n })); // not a stage: the spec field
    }
    spec.insert("reduce".into(), Value::Array(reduce)); // not a stage: the spec field
    Ok(Value::Object(spec))
}

/// One `--reduce`: `[NAME=]OP[:PATH[:LIMIT]]`, or `[NAME=]nats:SUBJECT`.
fn reduction(flag: &str) -> Result<Value, String> {
    let bad = |why: &str| format!("--reduce {flag:?}: {why}");
    let (name, rest) = match flag.split_once('=') {
        Some((name, rest)) => (Some(name), rest),
        None => (None, flag),
    };
    let mut parts = rest.split(':');
    let op = parts.next().unwrap_or_default();
    if op.is_empty() {
        return Err(bad(
            "no op (sum, min, max, avg, count, count_by, collect, distinct, nats)",
        ));
    }
    let mut r = Map::new();
    r.insert("op".into(), json!(op));
    let second = parts.next();
    let label = if op == "nats" {
        let subject = second.ok_or_else(|| bad("nats needs a subject: nats:SUBJECT"))?;
        r.insert("subject".into(), json!(subject));
        subject.rsplit('.').next().unwrap_or(subject).to_string()
    } else {
        match second {
            Some(path) => {
                r.insert("path".into(), json!(path));
                format!("{op}_{}", path.rsplit('.').next().unwrap_or(path))
            }
            None => op.to_string(),
        }
    };
    if let Some(limit) = parts.next() {
        let limit: u32 = limit
            .parse()
            .map_err(|_| bad(&format!("{limit:?} is not a limit")))?;
        r.insert("limit".into(), json!(limit));
    }
    if parts.next().is_some() {
        return Err(bad("too many parts: [NAME=]OP[:PATH[:LIMIT]]"));
    }
    let name = name.map(str::to_string).unwrap_or(label);
    let mut out = Map::new();
    out.insert("name".into(), json!(name));
    out.extend(r);
    Ok(Value::Object(out))
}

/// JSON Lines as items; a line that is no JSON is named.
fn items_from_lines(text: &str) -> Result<Vec<Value>, String> {
    let mut items = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let value: Value =
            serde_json::from_str(line).map_err(|e| format!("--items line {}: {e}", i + 1))?;
        items.push(item(value, i + 1));
    }
    Ok(items)
}

/// The item a line makes: `{"id", "data"}` as it is, an object with an
/// `id` as that id and the rest as data, anything else as data under its
/// line number.
fn item(value: Value, line: usize) -> Value {
    match value {
        Value::Object(mut map) if map.contains_key("id") => {
            if map.contains_key("data") {
                return Value::Object(map);
            }
            let id = map.remove("id").unwrap_or_default();
            json!({"id": id, "data": map})
        }
        other => json!({"id": line.to_string(), "data": other}),
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: MapReduceArgs,
    }

    fn args(flags: &[&str]) -> MapReduceArgs {
        let mut argv = vec!["jetflow"];
        argv.extend_from_slice(flags);
        Cli::try_parse_from(argv).expect("flags").args
    }

    #[test]
    fn the_seeds_one_liner_builds_a_job_with_its_reductions() {
        let a = args(&[
            "--source-url",
            "http://x/docs",
            "--map",
            "nats:words.count",
            "--reduce",
            "sum:output.words",
            "--reduce",
            "langs=count_by:output.lang:20",
            "--reduce",
            "count",
            "--reduce",
            "nats:words.reduce",
            "--concurrency",
            "50",
            "--id",
            "wc",
        ]);
        let spec = build(&a, None).expect("a job");
        assert_eq!(
            spec,
            json!({
                "id": "wc",
                "kind": "mapreduce",
                "source": {"type": "http", "url": "http://x/docs"},
                "handler": {"type": "nats", "subject": "words.count"},
                "batch": {"concurrency": 50},
                "reduce": [
                    {"name": "sum_words", "op": "sum", "path": "output.words"},
                    {"name": "langs", "op": "count_by", "path": "output.lang", "limit": 20},
                    {"name": "count", "op": "count"},
                    {"name": "reduce", "op": "nats", "subject": "words.reduce"},
                ],
            })
        );
        // What it builds is a job the services accept.
        assert!(submit::prepare(&spec.to_string()).is_ok());
    }

    #[test]
    fn a_wrong_flag_is_named() {
        let a = args(&["--source-job", "j", "--map", "grpc:x", "--reduce", "count"]);
        assert!(build(&a, None).unwrap_err().starts_with("--map \"grpc:x\""));
        for (flag, says) in [
            ("sum:output.n:ten", "is not a limit"),
            ("nats", "nats needs a subject"),
            (":output.n", "no op"),
            ("collect:a:1:2", "too many parts"),
        ] {
            let err = reduction(flag).unwrap_err();
            assert!(err.contains(says), "{flag}: {err}");
        }
        let a = args(&["--map", "nats:x", "--reduce", "count"]);
        assert!(build(&a, None)
            .unwrap_err()
            .contains("say where the items are"));
    }

    #[test]
    fn lines_become_items() {
        let text = "{\"id\": \"a\", \"data\": {\"t\": 1}}\n\n{\"id\": 7, \"text\": \"hi\"}\n\"just text\"\n";
        assert_eq!(
            items_from_lines(text).expect("items"),
            [
                json!({"id": "a", "data": {"t": 1}}),
                json!({"id": 7, "data": {"text": "hi"}}),
                json!({"id": "4", "data": "just text"}),
            ]
        );
        assert_eq!(
            items_from_lines("{}\n{oops").unwrap_err().split(':').next(),
            Some("--items line 2")
        );
    }
}
