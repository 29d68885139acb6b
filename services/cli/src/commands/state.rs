//! `jetflow state JOB [NAME] [get|set V|incr [N]|append V|add V|cas OLD NEW]`:
//! a job's shared state, the JSON values its workers keep in the
//! `<ns>_state` bucket under `<job>.<name>`, read and changed with the same
//! atomic operations the worker helpers use (`jetflow_worker::state`).
//!
//! Values are JSON; a word that is not JSON is taken as a string, so
//! `add en` is `add '"en"'` (write `'"1"'` for the string "1").

use anyhow::{bail, Context as _};
use jetflow_protocol::names::{validate_job_id, validate_state_name};
use jetflow_runtime::{nats::scan::KvScan, NatsArgs};
use jetflow_worker::state::{SharedState, StateBucket};
use serde_json::{json, Value};

use crate::{connect, exit};

/// Arguments of `jetflow state`.
#[derive(Debug, clap::Args)]
pub struct StateArgs {
    /// The job id.
    pub job: String,
    /// A name of the job's state; without it, every name and its value.
    pub name: Option<String>,
    /// What to do with it: get (the default), set V, incr [N] (1), append
    /// V, add V (to a set), cas OLD NEW (null: not set). Exits 1 when a
    /// get finds nothing or a cas does not swap.
    #[arg(value_name = "OPERATION", num_args = 0..=3, allow_negative_numbers = true)]
    pub operation: Vec<String>,
    /// Print the answer as JSON.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub nats: NatsArgs,
}

/// One operation, its values parsed.
#[derive(Debug, Clone, PartialEq)]
enum Request {
    Get,
    Set(Value),
    Incr(i64),
    Append(Value),
    Add(Value),
    Cas(Value, Value),
}

/// Runs `jetflow state`.
pub async fn run(args: StateArgs) -> anyhow::Result<u8> {
    validate_job_id(&args.job).map_err(|e| anyhow::anyhow!("job {e}"))?;
    let request = match &args.name {
        Some(name) => {
            validate_state_name(name).map_err(|e| anyhow::anyhow!("state name {e}"))?;
            Some(parse(&args.operation)?)
        }
        None if args.operation.is_empty() => None,
        None => bail!("give a NAME before the operation"),
    };
    let (_client, js, names) = connect::bare(&args.nats).await?;
    let store = js
        .get_key_value(names.state_bucket())
        .await
        .with_context(|| format!("cannot open the bucket {}", names.state_bucket()))?;
    let state = StateBucket::from_store(store.clone()).job(&args.job)?;
    match (args.name, request) {
        (Some(name), Some(request)) => apply(&state, &name, request, args.json).await,
        _ => list(&js, &store, &args.job, args.json).await,
    }
}

/// Reads the operation words.
fn parse(words: &[String]) -> anyhow::Result<Request> {
    let words: Vec<&str> = words.iter().map(String::as_str).collect();
    Ok(match words.as_slice() {
        [] | ["get"] => Request::Get,
        ["set", v] => Request::Set(value(v)),
        ["incr"] => Request::Incr(1),
        ["incr", n] => Request::Incr(
            n.parse()
                .map_err(|_| anyhow::anyhow!("incr: {n:?} is not an integer"))?,
        ),
        ["append", v] => Request::Append(value(v)),
        ["add", v] => Request::Add(value(v)),
        ["cas", old, new] => Request::Cas(value(old), value(new)),
        [op @ ("get" | "set" | "incr" | "append" | "add" | "cas"), ..] => {
            bail!("{op}: {}", usage(op))
        }
        [other, ..] => bail!(
            "{other:?} is not an operation (get, set V, incr [N], append V, add V, cas OLD NEW)"
        ),
    })
}

fn usage(op: &str) -> &'static str {
    match op {
        "get" => "takes no value",
        "incr" => "takes one integer at most (incr 5)",
        "cas" => "takes two values (cas OLD NEW)",
        _ => "takes one value",
    }
}

/// A command-line value: JSON, or else the word as a string.
fn value(word: &str) -> Value {
    serde_json::from_str(word).unwrap_or_else(|_| Value::String(word.to_string()))
}

async fn apply(
    state: &SharedState,
    name: &str,
    request: Request,
    json: bool,
) -> anyhow::Result<u8> {
    let job = state.job();
    let mut answer = json!({"job": job, "name": name});
    let (text, code) = match request {
        Request::Get => match state.get(name).await? {
            Some(value) => {
                answer["value"] = value.clone();
                (value.to_string(), exit::OK)
            }
            None => {
                answer["value"] = Value::Null;
                if !json {
                    eprintln!("{job} {name}: not set");
                }
                (String::new(), exit::FAILED)
            }
        },
        Request::Set(value) => {
            state.set(name, value.clone()).await?;
            answer["value"] = value.clone();
            (value.to_string(), exit::OK)
        }
        Request::Incr(by) => {
            let now = state.incr(name, by).await?;
            answer["value"] = now.into();
            (now.to_string(), exit::OK)
        }
        Request::Append(item) => {
            let len = state.append(name, item).await?;
            answer["length"] = len.into();
            (format!("length {len}"), exit::OK)
        }
        Request::Add(member) => {
            let added = state.add(name, member).await?;
            answer["added"] = added.into();
            let text = if added { "added" } else { "already in the set" };
            (text.to_string(), exit::OK)
        }
        Request::Cas(old, new) => {
            let swap = state.cas(name, &old, new).await?;
            answer["swapped"] = swap.swapped.into();
            answer["value"] = swap.current.clone();
            if swap.swapped {
                (format!("swapped: {}", swap.current), exit::OK)
            } else {
                (format!("not swapped: it is {}", swap.current), exit::FAILED)
            }
        }
    };
    if json {
        println!("{answer}");
    } else if !text.is_empty() {
        println!("{text}");
    }
    Ok(code)
}

/// Every name of the job's state with its value, by name.
async fn list(
    js: &async_nats::jetstream::Context,
    store: &async_nats::jetstream::kv::Store,
    job: &str,
    json: bool,
) -> anyhow::Result<u8> {
    let prefix = format!("{job}.");
    let mut values = serde_json::Map::new();
    let mut scan = KvScan::start(js, store, &format!("{job}.>"))
        .await
        .context("listing the job's state")?;
    while let Some(change) = scan.next().await.context("listing the job's state")? {
        let (Some(name), Some(bytes)) = (change.key.strip_prefix(&prefix), change.value) else {
            continue;
        };
        let value = serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| Value::String(format!("(not JSON: {} bytes)", bytes.len())));
        values.insert(name.to_string(), value);
    }
    let mut names: Vec<(&String, &Value)> = values.iter().collect();
    names.sort_by(|a, b| a.0.cmp(b.0));
    if json {
        println!("{}", Value::Object(values.clone()));
    } else if names.is_empty() {
        eprintln!("{job} has no shared state");
    } else {
        let width = names.iter().map(|(n, _)| n.len()).max().unwrap_or(0);
        for (name, value) in names {
            println!("{name:width$}  {value}");
        }
    }
    Ok(exit::OK)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(line: &str) -> Vec<String> {
        line.split_whitespace().map(str::to_string).collect()
    }

    #[test]
    fn operations_read_their_values_as_json_or_else_as_words() {
        assert_eq!(parse(&words("")).unwrap(), Request::Get);
        assert_eq!(parse(&words("incr")).unwrap(), Request::Incr(1));
        assert_eq!(parse(&words("incr -3")).unwrap(), Request::Incr(-3));
        assert_eq!(parse(&words("add en")).unwrap(), Request::Add(json!("en")));
        assert_eq!(parse(&words("add 1")).unwrap(), Request::Add(json!(1)));
        assert_eq!(
            parse(&words(r#"append {"a":1}"#)).unwrap(),
            Request::Append(json!({"a": 1}))
        );
        assert_eq!(
            parse(&words("cas null me")).unwrap(),
            Request::Cas(Value::Null, json!("me"))
        );
    }

    #[test]
    fn a_wrong_operation_says_what_it_takes() {
        let err = |line: &str| parse(&words(line)).unwrap_err().to_string();
        assert_eq!(err("incr x"), r#"incr: "x" is not an integer"#);
        assert_eq!(err("cas 1"), "cas: takes two values (cas OLD NEW)");
        assert!(err("push 1").contains("is not an operation"));
    }
}
