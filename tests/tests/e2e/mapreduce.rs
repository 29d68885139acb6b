//! `jetflow mapreduce` (issue 14, part 5): the seed's one-liner — a word
//! count with the Python mapper of `examples/python` — on a real terminal
//! and piped, with totals equal to what the test counts itself.

use std::collections::BTreeMap;

use jetflow_e2e::{cli, jobs, polyglot::ExampleWorker, TestEnv};
use serde_json::{json, Value};

/// `n` documents as JSON Lines, and their word total and documents per language.
fn docs(n: usize) -> (String, u64, BTreeMap<String, u64>) {
    let langs = ["en", "fr", "de"];
    let mut lines = String::new();
    let (mut words, mut per_lang) = (0, BTreeMap::new());
    for i in 0..n {
        let k = 1 + (i * 5) % 11;
        let text: Vec<String> = (0..k).map(|j| format!("w{}", (i + j) % 17)).collect();
        let lang = langs[i % langs.len()];
        lines.push_str(&json!({"text": text.join(" "), "lang": lang}).to_string());
        lines.push('\n');
        words += k as u64;
        *per_lang.entry(lang.to_string()).or_insert(0) += 1;
    }
    (lines, words, per_lang)
}

fn one_liner<'a>(file: &'a str, id: &'a str) -> Vec<&'a str> {
    vec![
        "mapreduce",
        "--items",
        file,
        "--map",
        "nats:words.count",
        "--reduce",
        "sum:output.words",
        "--reduce",
        "count_by:output.lang",
        "--concurrency",
        "50",
        "--id",
        id,
        "--wait",
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_word_count_in_one_command_piped_and_on_a_terminal() -> anyhow::Result<()> {
    let env = TestEnv::start("mapreduce").await?;
    let _mapper = ExampleWorker::python(&env.nats, "word_count.py", &[], &[]).await?;
    let (lines, words, per_lang) = docs(1_500);
    let dir = tempfile::tempdir()?;
    let file = dir.path().join("docs.jsonl");
    std::fs::write(&file, &lines)?;
    let file = file.to_string_lossy().into_owned();

    // --print shows the job and sends nothing.
    let mut print = one_liner(&file, "printed");
    print.push("--print");
    let printed: Value = serde_json::from_str(&cli::ok(&env.nats, &print).await?)?;
    assert_eq!(
        printed["source"]["items"].as_array().map(Vec::len),
        Some(1_500)
    );
    assert_eq!(printed["items"], Value::Null);
    assert_eq!(
        printed["reduce"],
        json!([
            {"name": "sum_words", "op": "sum", "path": "output.words"},
            {"name": "count_by_lang", "op": "count_by", "path": "output.lang"},
        ])
    );
    assert!(jobs::state_json(&env.bus, "printed").await?.is_none());

    // Piped, with --json: the answers as JSON.
    let mut piped = one_liner(&file, "wc-piped");
    piped.push("--json");
    let out = cli::run_in(&env.nats, &piped, jobs::JOB_DEADLINE).await?;
    assert_eq!(out.status.code(), Some(0), "{}", cli::text(&out.stderr));
    let results: Value = serde_json::from_slice(&out.stdout)?;
    assert_eq!(results["sum_words"]["value"], json!(words));
    assert_eq!(results["count_by_lang"]["value"], json!(per_lang));

    // On a terminal: the progress, then the summary with the answers.
    let (code, drawn) =
        cli::on_a_terminal(&env.nats, &one_liner(&file, "wc-tty"), jobs::JOB_DEADLINE).await?;
    assert_eq!(code, Some(0), "{drawn}");
    assert!(
        drawn.contains(&format!("sum_words (sum): {words}  [1500 values]")),
        "{drawn}"
    );
    let langs = serde_json::to_string(&per_lang)?;
    assert!(
        drawn.contains(&format!("count_by_lang (count_by): {langs}")),
        "{drawn}"
    );

    // A bad flag is named, before anything is sent.
    let out = cli::run_in(
        &env.nats,
        &[
            "mapreduce",
            "--items",
            &file,
            "--map",
            "grpc:x",
            "--reduce",
            "count",
        ],
        cli::CLI_DEADLINE,
    )
    .await?;
    assert_eq!(out.status.code(), Some(2));
    assert!(cli::text(&out.stderr).contains("--map \"grpc:x\""));
    Ok(())
}
