//! The deployment files name only what the binaries read. Every binary,
//! flag and environment variable in `deploy/k8s` and `deploy/systemd` is
//! looked up in the `--help` of the binary that gets it (clap lists each
//! variable as `[env: NAME=...]`), and what must agree is compared: probes
//! and the metrics port, credential settings and what provides the file,
//! inbox prefixes and roles, stages and bind-only mode.

use std::{
    collections::{btree_map::Entry, BTreeMap, BTreeSet},
    net::SocketAddr,
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{ensure, Context as _};
use jetflow_e2e::processes::{binary, SERVICES};
use jetflow_protocol::{names::DEFAULT_NAMESPACE, Names};
use jetflow_runtime::security::roles::{inbox_prefix, Role};
use serde::Deserialize as _;
use serde_yaml_ng::Value;

/// What the image and the units may run.
const BINARIES: [&str; 5] = [
    "jetflow",
    "jetflow-fetch",
    "jetflow-batch",
    "jetflow-migrate",
    "jetflow-reduce",
];

/// Settings whose value is a file the process reads: (flag, variable).
const FILE_SETTINGS: [(&str, &str); 5] = [
    ("--creds", "NATS_CREDS"),
    ("--tlsca", "NATS_CA"),
    ("--nkey", "NATS_NKEY"),
    ("--tlscert", "NATS_CERT"),
    ("--tlskey", "NATS_KEY"),
];

fn repo() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
}

/// A deployment file: its path from the repository root, for messages, and
/// its text.
#[derive(Clone)]
struct File {
    path: String,
    text: String,
}

/// The `*.ext` files of the repository's folder `dir`, by name.
fn files(dir: &str, ext: &str) -> anyhow::Result<Vec<File>> {
    let full = repo().join(dir);
    let mut files = Vec::new();
    for entry in std::fs::read_dir(&full).with_context(|| format!("listing {dir}"))? {
        let path = entry.with_context(|| format!("listing {dir}"))?.path();
        if path.extension().is_none_or(|e| e != ext) {
            continue;
        }
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .with_context(|| format!("{}: name is not UTF-8", path.display()))?;
        let text =
            std::fs::read_to_string(&path).with_context(|| format!("reading {dir}/{name}"))?;
        files.push(File {
            path: format!("{dir}/{name}"),
            text,
        });
    }
    files.sort_by(|a, b| a.path.cmp(&b.path));
    ensure!(!files.is_empty(), "no *.{ext} files in {dir}");
    Ok(files)
}

/// `files` with `from` replaced by `to` in the one named `name`; fails if
/// that file does not contain `from` (the test that uses it is then stale).
fn misspelt(files: &[File], name: &str, from: &str, to: &str) -> anyhow::Result<Vec<File>> {
    let mut files = files.to_vec();
    let file = files
        .iter_mut()
        .find(|f| f.path.ends_with(&format!("/{name}")))
        .with_context(|| format!("no file {name}"))?;
    ensure!(
        file.text.contains(from),
        "{} no longer contains {from:?}",
        file.path
    );
    file.text = file.text.replacen(from, to, 1);
    Ok(files)
}

/// One program a deployment file starts.
struct Invocation {
    /// The file and the container or unit, for messages.
    origin: String,
    binary: String,
    subcommand: Option<String>,
    /// The arguments after the binary.
    args: Vec<String>,
    /// `--flag` (without `=value`) and `-f` arguments.
    flags: Vec<String>,
    /// Variable names and values; `None` where the value is not in the
    /// files (a Secret's).
    env: BTreeMap<String, Option<String>>,
}

impl Invocation {
    /// From a command line; the binary is the first word's file name.
    fn new(origin: String, argv: &[String], env: BTreeMap<String, Option<String>>) -> Option<Self> {
        let (first, rest) = argv.split_first()?;
        let binary = Path::new(first).file_name()?.to_str()?.to_string();
        let flags = rest
            .iter()
            .filter(|a| a.starts_with('-') && a.len() > 1)
            .map(|a| a.split('=').next().unwrap_or(a).to_string())
            .collect();
        let subcommand = (binary == "jetflow")
            .then(|| rest.iter().find(|a| !a.starts_with('-')).cloned())
            .flatten();
        Some(Invocation {
            origin,
            args: rest.to_vec(),
            binary,
            subcommand,
            flags,
            env,
        })
    }

    /// How the help is asked for: `jetflow provision`, `jetflow-fetch`.
    fn shown(&self) -> String {
        match &self.subcommand {
            Some(sub) => format!("{} {sub}", self.binary),
            None => self.binary.clone(),
        }
    }

    /// The NATS user it runs as: its stage's, or admin for `jetflow provision`.
    fn role(&self) -> Option<Role> {
        match (self.binary.as_str(), self.subcommand.as_deref()) {
            ("jetflow", Some("provision")) => Some(Role::Admin),
            (binary, _) => binary.strip_prefix("jetflow-")?.parse().ok(),
        }
    }

    /// A setting, from its flag (which wins) or its variable. `None`: not
    /// given; `Some(None)`: given, but from a Secret.
    fn setting(&self, flag: &str, var: &str) -> Option<Option<&str>> {
        let mut args = self.args.iter();
        let mut found = None;
        while let Some(arg) = args.next() {
            if arg == flag {
                found = args.next().map(String::as_str);
            } else if let Some(value) = arg.strip_prefix(flag).and_then(|r| r.strip_prefix('=')) {
                found = Some(value);
            }
        }
        match found {
            Some(value) => Some(Some(value)),
            None => self.env.get(var).map(Option::as_deref),
        }
    }

    /// The metrics address it is given, if any.
    fn metrics_addr(&self, problems: &mut Vec<String>) -> Option<SocketAddr> {
        let raw = self
            .setting("--metrics-addr", "JETFLOW_METRICS_ADDR")
            .flatten()?;
        match raw.parse() {
            Ok(addr) => Some(addr),
            Err(e) => {
                problems.push(format!(
                    "{}: JETFLOW_METRICS_ADDR={raw:?} is not an address: {e}",
                    self.origin
                ));
                None
            }
        }
    }
}

/// `--help` texts by command, each run once; `Err` holds why a command
/// has none (an unknown subcommand).
#[derive(Default)]
struct Helps(BTreeMap<String, Result<String, String>>);

impl Helps {
    fn of(&mut self, inv: &Invocation) -> anyhow::Result<Result<&str, &str>> {
        let help = match self.0.entry(inv.shown()) {
            Entry::Occupied(e) => e.into_mut(),
            Entry::Vacant(e) => {
                let out = Command::new(binary(&inv.binary)?)
                    .args(inv.subcommand.as_deref())
                    .arg("--help")
                    .output()
                    .with_context(|| format!("running `{} --help`", e.key()))?;
                let text = if out.status.success() {
                    Ok(String::from_utf8(out.stdout)
                        .with_context(|| format!("`{} --help` is not UTF-8", e.key()))?)
                } else {
                    let stderr = String::from_utf8_lossy(&out.stderr);
                    Err(stderr.lines().next().unwrap_or("").to_string())
                };
                e.insert(text)
            }
        };
        Ok(help.as_deref().map_err(String::as_str))
    }
}

/// Whether `help` names `flag` as a whole word (`--provision` is not in
/// `--no-provision`).
fn mentions_flag(help: &str, flag: &str) -> bool {
    let word = |c: char| c.is_alphanumeric() || c == '-' || c == '_';
    help.match_indices(flag).any(|(at, _)| {
        !help[..at].chars().next_back().is_some_and(word)
            && !help[at + flag.len()..].chars().next().is_some_and(word)
    })
}

/// Whether `help` lists an argument read from `name`: `[env: NAME=...]`,
/// or `[env: NAME]` for the ones that hide their values.
fn reads_env(help: &str, name: &str) -> bool {
    help.contains(&format!("[env: {name}=")) || help.contains(&format!("[env: {name}]"))
}

/// What every invocation, in whichever file, must get right.
fn check_invocation(
    inv: &Invocation,
    helps: &mut Helps,
    problems: &mut Vec<String>,
) -> anyhow::Result<()> {
    let origin = &inv.origin;
    if !BINARIES.contains(&inv.binary.as_str()) {
        problems.push(format!(
            "{origin}: runs `{}`, which is none of the binaries ({})",
            inv.binary,
            BINARIES.join(", ")
        ));
        return Ok(());
    }
    if inv.binary == "jetflow" && inv.subcommand.is_none() {
        problems.push(format!("{origin}: runs `jetflow` without a command"));
        return Ok(());
    }
    let shown = inv.shown();
    let help = match helps.of(inv)? {
        Ok(help) => help,
        Err(why) => {
            problems.push(format!("{origin}: `{shown} --help` fails: {why}"));
            return Ok(());
        }
    };
    for flag in &inv.flags {
        if !mentions_flag(help, flag) {
            problems.push(format!(
                "{origin}: flag `{flag}` is not in `{shown} --help`"
            ));
        }
    }
    for name in inv.env.keys() {
        if !reads_env(help, name) {
            problems.push(format!(
                "{origin}: `{name}` is read by no argument of {shown} (no `[env: {name}=` in `{shown} --help`)"
            ));
        }
    }
    let Some(role) = inv.role() else {
        return Ok(());
    };
    let namespace = match inv.setting("--namespace", "JETFLOW_NAMESPACE") {
        None => Some(DEFAULT_NAMESPACE),
        Some(value) => value,
    };
    if let Some(namespace) = namespace {
        match Names::new(namespace) {
            Ok(names) => {
                let want = inbox_prefix(&names, role);
                match inv.setting("--inbox-prefix", "NATS_INBOX_PREFIX") {
                    Some(None) => {}
                    Some(Some(got)) if got == want => {}
                    got => problems.push(format!(
                        "{origin}: the inbox prefix is {}, but the jetflow-{role} user may subscribe to `{want}.>` only",
                        got.flatten().map_or("the default `_INBOX`".to_string(), |p| format!("`{p}`"))
                    )),
                }
            }
            Err(e) => problems.push(format!("{origin}: JETFLOW_NAMESPACE={namespace:?}: {e}")),
        }
    }
    if role.stage().is_some() {
        let bind_only = inv.flags.iter().any(|f| f == "--no-provision")
            || inv
                .setting("--provision", "JETFLOW_PROVISION")
                .flatten()
                .is_some_and(|v| ["false", "0", "no", "off"].contains(&v));
        if !bind_only {
            problems.push(format!(
                "{origin}: a stage must run bind-only (JETFLOW_PROVISION=false): its user may not create streams"
            ));
        }
    }
    Ok(())
}

fn at<'a>(value: &'a Value, path: &[&str]) -> Option<&'a Value> {
    path.iter().try_fold(value, |v, key| v.get(key))
}

fn str_at<'a>(value: &'a Value, path: &[&str]) -> Option<&'a str> {
    at(value, path)?.as_str()
}

/// The items of a sequence (none if it is absent or not one).
fn items<'a>(value: &'a Value, key: &str) -> &'a [Value] {
    value
        .get(key)
        .and_then(Value::as_sequence)
        .map_or(&[], |s| s.as_slice())
}

/// A list of strings; `Err` names what is not one.
fn strings(value: Option<&Value>) -> Result<Vec<String>, String> {
    let Some(value) = value else {
        return Ok(Vec::new());
    };
    let seq = value
        .as_sequence()
        .ok_or_else(|| format!("{value:?} is not a list"))?;
    seq.iter()
        .map(|v| match v {
            Value::String(s) => Ok(s.clone()),
            Value::Number(n) => Ok(n.to_string()),
            Value::Bool(b) => Ok(b.to_string()),
            other => Err(format!("{other:?} is not a string")),
        })
        .collect()
}

/// The YAML documents of a file, empty ones left out.
fn documents(file: &File) -> anyhow::Result<Vec<Value>> {
    let mut docs = Vec::new();
    for (i, doc) in serde_yaml_ng::Deserializer::from_str(&file.text).enumerate() {
        let value = Value::deserialize(doc)
            .with_context(|| format!("{}: document {} is not valid YAML", file.path, i + 1))?;
        if !value.is_null() {
            docs.push(value);
        }
    }
    Ok(docs)
}

/// The ConfigMaps and Secrets the manifests define: their keys (and the
/// ConfigMaps' values).
#[derive(Default)]
struct Objects {
    config_maps: BTreeMap<String, BTreeMap<String, String>>,
    secrets: BTreeMap<String, BTreeSet<String>>,
}

impl Objects {
    fn of(docs: &[(String, Value)]) -> Self {
        let mut objects = Objects::default();
        for (_, doc) in docs {
            let Some(name) = str_at(doc, &["metadata", "name"]) else {
                continue;
            };
            let keys = |field: &str| -> Vec<(String, String)> {
                doc.get(field)
                    .and_then(Value::as_mapping)
                    .into_iter()
                    .flatten()
                    .filter_map(|(k, v)| {
                        Some((
                            k.as_str()?.to_string(),
                            v.as_str().unwrap_or("").to_string(),
                        ))
                    })
                    .collect()
            };
            match str_at(doc, &["kind"]) {
                Some("ConfigMap") => {
                    let data = objects.config_maps.entry(name.to_string()).or_default();
                    data.extend(keys("data"));
                    data.extend(keys("binaryData"));
                }
                Some("Secret") => {
                    let data = objects.secrets.entry(name.to_string()).or_default();
                    data.extend(keys("data").into_iter().map(|(k, _)| k));
                    data.extend(keys("stringData").into_iter().map(|(k, _)| k));
                }
                _ => {}
            }
        }
        objects
    }

    /// The keys of the `kind` object `name`, if the manifests define it.
    fn keys(&self, kind: &str, name: &str) -> Option<BTreeSet<String>> {
        match kind {
            "ConfigMap" => self
                .config_maps
                .get(name)
                .map(|d| d.keys().cloned().collect()),
            _ => self.secrets.get(name).cloned(),
        }
    }
}

/// Every pod template in `value`, as (its metadata, its spec): any mapping
/// whose `spec` has `containers`, so every workload kind is covered.
fn pods<'a>(value: &'a Value, out: &mut Vec<(Option<&'a Value>, &'a Value)>) {
    match value {
        Value::Mapping(map) => match map.get("spec").filter(|s| s.get("containers").is_some()) {
            Some(spec) => out.push((map.get("metadata"), spec)),
            None => map.values().for_each(|v| pods(v, out)),
        },
        Value::Sequence(seq) => seq.iter().for_each(|v| pods(v, out)),
        _ => {}
    }
}

/// A container's environment: `envFrom` first, then `env`, which wins.
fn container_env(
    origin: &str,
    container: &Value,
    objects: &Objects,
    problems: &mut Vec<String>,
) -> BTreeMap<String, Option<String>> {
    let mut env = BTreeMap::new();
    for from in items(container, "envFrom") {
        let prefix = str_at(from, &["prefix"]).unwrap_or("");
        if let Some(name) = str_at(from, &["configMapRef", "name"]) {
            match objects.config_maps.get(name) {
                Some(data) => env.extend(data.iter().map(|(k, v)| (format!("{prefix}{k}"), Some(v.clone())))),
                None => problems.push(format!(
                    "{origin}: envFrom ConfigMap `{name}` is not defined in deploy/k8s, so its keys cannot be checked"
                )),
            }
        } else if let Some(name) = str_at(from, &["secretRef", "name"]) {
            match objects.secrets.get(name) {
                Some(keys) => env.extend(keys.iter().map(|k| (format!("{prefix}{k}"), None))),
                None => problems.push(format!(
                    "{origin}: envFrom Secret `{name}` is not in deploy/k8s (secrets.example.yaml), so its keys cannot be checked"
                )),
            }
        }
    }
    for var in items(container, "env") {
        let Some(name) = str_at(var, &["name"]) else {
            problems.push(format!("{origin}: an env entry has no name"));
            continue;
        };
        let value = if let Some(value) = str_at(var, &["value"]) {
            Some(value.to_string())
        } else if let Some(r) = at(var, &["valueFrom", "configMapKeyRef"]) {
            let (map, key) = (
                str_at(r, &["name"]).unwrap_or(""),
                str_at(r, &["key"]).unwrap_or(""),
            );
            let value = objects
                .config_maps
                .get(map)
                .and_then(|d| d.get(key))
                .cloned();
            if value.is_none() {
                problems.push(format!(
                    "{origin}: `{name}` is key `{key}` of ConfigMap `{map}`, which deploy/k8s does not define"
                ));
            }
            value
        } else if let Some(r) = at(var, &["valueFrom", "secretKeyRef"]) {
            let (secret, key) = (
                str_at(r, &["name"]).unwrap_or(""),
                str_at(r, &["key"]).unwrap_or(""),
            );
            if !objects.secrets.get(secret).is_some_and(|k| k.contains(key)) {
                problems.push(format!(
                    "{origin}: `{name}` is key `{key}` of Secret `{secret}`, which deploy/k8s (secrets.example.yaml) does not show"
                ));
            }
            None
        } else {
            None
        };
        env.insert(name.to_string(), value);
    }
    env
}

/// Each file setting (`NATS_CREDS=/etc/...`) points into a mounted volume
/// whose Secret or ConfigMap has the file; the creds are the role's own.
fn check_mounts(
    inv: &Invocation,
    pod: &Value,
    container: &Value,
    objects: &Objects,
    problems: &mut Vec<String>,
) {
    let origin = &inv.origin;
    for (flag, setting) in FILE_SETTINGS {
        let Some(path) = inv.setting(flag, setting).flatten() else {
            continue;
        };
        let path = Path::new(path);
        let mount = items(container, "volumeMounts").iter().find_map(|m| {
            let mount_path = Path::new(str_at(m, &["mountPath"])?);
            let file = match str_at(m, &["subPath"]) {
                Some(sub) => (mount_path == path).then(|| sub.to_string())?,
                None => path.strip_prefix(mount_path).ok()?.to_str()?.to_string(),
            };
            Some((str_at(m, &["name"])?, file))
        });
        let Some((volume_name, file)) = mount else {
            problems.push(format!(
                "{origin}: {setting}={} is under no volumeMount",
                path.display()
            ));
            continue;
        };
        let Some(volume) = items(pod, "volumes")
            .iter()
            .find(|v| str_at(v, &["name"]) == Some(volume_name))
        else {
            problems.push(format!(
                "{origin}: volumeMount `{volume_name}` names no volume"
            ));
            continue;
        };
        let (kind, source, listed) = if let Some(secret) = volume.get("secret") {
            ("Secret", str_at(secret, &["secretName"]), secret)
        } else if let Some(map) = volume.get("configMap") {
            ("ConfigMap", str_at(map, &["name"]), map)
        } else {
            problems.push(format!(
                "{origin}: {setting} is in volume `{volume_name}`, which is neither a Secret nor a ConfigMap"
            ));
            continue;
        };
        let source = source.unwrap_or("");
        let key = match listed.get("items") {
            None => Some(file.clone()),
            Some(_) => items(listed, "items")
                .iter()
                .find(|i| str_at(i, &["path"]) == Some(file.as_str()))
                .and_then(|i| str_at(i, &["key"]))
                .map(str::to_string),
        };
        let Some(key) = key else {
            problems.push(format!(
                "{origin}: {setting} wants `{file}`, which no item of volume `{volume_name}` provides"
            ));
            continue;
        };
        match objects.keys(kind, source) {
            Some(keys) if keys.contains(&key) => {}
            _ => problems.push(format!(
                "{origin}: {setting} is key `{key}` of {kind} `{source}`, which deploy/k8s (secrets.example.yaml) does not show"
            )),
        }
        if let (true, Some(role)) = (setting == "NATS_CREDS", inv.role()) {
            let want = format!("jetflow-{role}-creds");
            if kind != "Secret" || source != want {
                problems.push(format!(
                    "{origin}: NATS_CREDS comes from {kind} `{source}`; the {role} role's creds are Secret `{want}`"
                ));
            }
        }
    }
}

/// Probes ask `/healthz` (liveness) and `/readyz` (readiness) on the port
/// of JETFLOW_METRICS_ADDR, which the scrape annotation names too.
fn check_probes(
    inv: &Invocation,
    meta: Option<&Value>,
    container: &Value,
    problems: &mut Vec<String>,
) {
    let origin = &inv.origin;
    let metrics = inv.metrics_addr(problems);
    let port_of = |port: &Value| -> Option<u64> {
        match port {
            Value::String(name) => items(container, "ports")
                .iter()
                .find(|p| str_at(p, &["name"]) == Some(name.as_str()))
                .and_then(|p| p.get("containerPort")?.as_u64()),
            other => other.as_u64(),
        }
    };
    let stage = inv.role().is_some_and(|r| r.stage().is_some());
    for (probe, want) in [
        ("livenessProbe", Some("/healthz")),
        ("readinessProbe", Some("/readyz")),
        ("startupProbe", None),
    ] {
        let Some(get) = at(container, &[probe, "httpGet"]) else {
            if stage && want.is_some() {
                problems.push(format!(
                    "{origin}: no {probe} (httpGet {})",
                    want.unwrap_or("")
                ));
            }
            continue;
        };
        let path = str_at(get, &["path"]).unwrap_or("/");
        let fits = match want {
            Some(want) => path == want,
            None => ["/healthz", "/readyz"].contains(&path),
        };
        if !fits {
            problems.push(format!(
                "{origin}: {probe} asks {path}, which is not {}",
                want.unwrap_or("/healthz or /readyz")
            ));
        }
        let port = get.get("port").and_then(port_of);
        match metrics {
            Some(addr) if port == Some(u64::from(addr.port())) => {}
            Some(addr) => problems.push(format!(
                "{origin}: {probe} asks port {}, but the metrics address serves {}",
                port.map_or("(none)".to_string(), |p| p.to_string()),
                addr.port()
            )),
            None => problems.push(format!(
                "{origin}: {probe} asks {path}, but no JETFLOW_METRICS_ADDR serves it"
            )),
        }
    }
    if let (Some(addr), Some(meta)) = (metrics, meta) {
        if let Some(port) = str_at(meta, &["annotations", "prometheus.io/port"]) {
            if port != addr.port().to_string() {
                problems.push(format!(
                    "{origin}: prometheus.io/port is {port}, but the metrics address serves {}",
                    addr.port()
                ));
            }
        }
    }
}

/// Everything wrong with the manifests `files`, one line each.
fn k8s_problems(files: &[File], helps: &mut Helps) -> anyhow::Result<Vec<String>> {
    let mut docs = Vec::new();
    for file in files {
        docs.extend(documents(file)?.into_iter().map(|d| (file.path.clone(), d)));
    }
    let objects = Objects::of(&docs);
    let mut problems = Vec::new();
    let mut run = BTreeSet::new();
    for (path, doc) in &docs {
        let mut found = Vec::new();
        pods(doc, &mut found);
        for (meta, pod) in found {
            for container in items(pod, "initContainers")
                .iter()
                .chain(items(pod, "containers"))
            {
                let origin = format!(
                    "{path}: container {}",
                    str_at(container, &["name"]).unwrap_or("?")
                );
                let command = match strings(container.get("command")) {
                    Ok(command) if !command.is_empty() => command,
                    Ok(_) => {
                        problems.push(format!(
                            "{origin}: no command; the image holds every binary, so name one"
                        ));
                        continue;
                    }
                    Err(e) => {
                        problems.push(format!("{origin}: command: {e}"));
                        continue;
                    }
                };
                let args = strings(container.get("args")).unwrap_or_else(|e| {
                    problems.push(format!("{origin}: args: {e}"));
                    Vec::new()
                });
                let env = container_env(&origin, container, &objects, &mut problems);
                let argv: Vec<String> = command.into_iter().chain(args).collect();
                let Some(inv) = Invocation::new(origin.clone(), &argv, env) else {
                    problems.push(format!("{origin}: command {argv:?} names no binary"));
                    continue;
                };
                check_invocation(&inv, helps, &mut problems)?;
                check_mounts(&inv, pod, container, &objects, &mut problems);
                check_probes(&inv, meta, container, &mut problems);
                run.insert(inv.shown());
            }
        }
    }
    check_coverage(&run, "deploy/k8s", &mut problems);

    // kustomization.yaml lists every manifest but the examples.
    let kustomization = docs
        .iter()
        .find(|(_, d)| str_at(d, &["kind"]) == Some("Kustomization"))
        .map(|(_, d)| strings(d.get("resources")).unwrap_or_default())
        .unwrap_or_default();
    for file in files {
        let name = file.path.rsplit('/').next().unwrap_or(&file.path);
        let skip = name == "kustomization.yaml" || name.ends_with(".example.yaml");
        if !skip && !kustomization.iter().any(|r| r == name) {
            problems.push(format!("{}: not listed in kustomization.yaml", file.path));
        }
    }
    for resource in &kustomization {
        if !files
            .iter()
            .any(|f| f.path.ends_with(&format!("/{resource}")))
        {
            problems.push(format!(
                "kustomization.yaml lists {resource}, which is not in deploy/k8s"
            ));
        }
    }
    Ok(problems)
}

/// The four stages and `jetflow provision` are each deployed.
fn check_coverage(run: &BTreeSet<String>, dir: &str, problems: &mut Vec<String>) {
    for want in SERVICES.into_iter().chain(["jetflow provision"]) {
        if !run.contains(want) {
            problems.push(format!("{dir}: nothing runs `{want}`"));
        }
    }
}

/// The `[Service]` settings of a unit file, in order: continuation lines
/// joined, comments left out.
fn service_settings(text: &str) -> Vec<(String, String)> {
    let mut settings = Vec::new();
    let mut section = String::new();
    let mut pending = String::new();
    for line in text.lines() {
        let line = line.trim();
        if pending.is_empty() && (line.starts_with('#') || line.starts_with(';')) {
            continue;
        }
        if let Some(head) = line.strip_suffix('\\') {
            pending.push_str(head);
            pending.push(' ');
            continue;
        }
        let line = std::mem::take(&mut pending) + line;
        if line.starts_with('[') {
            section = line.trim_matches(['[', ']']).to_string();
        } else if let Some((key, value)) = line.split_once('=') {
            if section == "Service" {
                settings.push((key.trim().to_string(), value.trim().to_string()));
            }
        }
    }
    settings
}

/// The words of a systemd value: space-separated, quotes kept together.
fn words(value: &str) -> Vec<String> {
    let (mut words, mut word, mut quote, mut in_word) = (Vec::new(), String::new(), None, false);
    for c in value.chars() {
        match quote {
            Some(q) if c == q => quote = None,
            Some(_) => word.push(c),
            None if c == '"' || c == '\'' => (quote, in_word) = (Some(c), true),
            None if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            None => {
                word.push(c);
                in_word = true;
            }
        }
    }
    if in_word {
        words.push(word);
    }
    words
}

/// Prometheus' scrape targets by job name.
fn scrape_targets(text: &str) -> anyhow::Result<BTreeMap<String, Vec<String>>> {
    let config: Value = serde_yaml_ng::from_str(text)
        .context("deploy/prometheus/prometheus.yml is not valid YAML")?;
    let mut targets = BTreeMap::new();
    for job in items(&config, "scrape_configs") {
        let Some(name) = str_at(job, &["job_name"]) else {
            continue;
        };
        let entry: &mut Vec<String> = targets.entry(name.to_string()).or_default();
        for group in items(job, "static_configs") {
            entry.extend(strings(group.get("targets")).unwrap_or_default());
        }
    }
    Ok(targets)
}

/// Everything wrong with the units `files`, one line each; `prometheus` is
/// the text of the scrape configuration their metrics addresses must match.
fn systemd_problems(
    files: &[File],
    prometheus: &str,
    helps: &mut Helps,
) -> anyhow::Result<Vec<String>> {
    let targets = scrape_targets(prometheus)?;
    let mut problems = Vec::new();
    let mut run = BTreeSet::new();
    for file in files {
        let settings = service_settings(&file.text);
        let mut env = BTreeMap::new();
        let mut credentials = BTreeSet::new();
        for (key, value) in &settings {
            match key.as_str() {
                "Environment" => {
                    for assignment in words(value) {
                        if let Some((name, value)) = assignment.split_once('=') {
                            env.insert(name.to_string(), Some(value.to_string()));
                        } else {
                            problems.push(format!(
                                "{}: Environment={assignment} is no NAME=value",
                                file.path
                            ));
                        }
                    }
                }
                "LoadCredential"
                | "LoadCredentialEncrypted"
                | "SetCredential"
                | "SetCredentialEncrypted" => {
                    credentials.insert(value.split(':').next().unwrap_or(value).to_string());
                }
                _ => {}
            }
        }
        // Every credential is used, and every `%d/name` is a credential.
        let referenced: BTreeSet<String> = env
            .values()
            .flatten()
            .flat_map(|v| v.split("%d/").skip(1))
            .map(|rest| {
                rest.split([' ', ',', ':', '/'])
                    .next()
                    .unwrap_or(rest)
                    .to_string()
            })
            .collect();
        for name in credentials.difference(&referenced) {
            problems.push(format!(
                "{}: LoadCredential `{name}` is referenced by no Environment= `%d/{name}`",
                file.path
            ));
        }
        for name in referenced.difference(&credentials) {
            problems.push(format!(
                "{}: `%d/{name}` is loaded by no LoadCredential={name}:...",
                file.path
            ));
        }
        let starts: Vec<&String> = settings
            .iter()
            .filter(|(k, _)| k == "ExecStart")
            .map(|(_, v)| v)
            .collect();
        if starts.is_empty() {
            problems.push(format!("{}: no ExecStart=", file.path));
        }
        for start in starts {
            let argv = words(start.trim_start_matches(['-', '@', ':', '+', '!']));
            let origin = format!("{}: ExecStart", file.path);
            let Some(inv) = Invocation::new(origin.clone(), &argv, env.clone()) else {
                problems.push(format!("{origin}={start} names no binary"));
                continue;
            };
            check_invocation(&inv, helps, &mut problems)?;
            if inv.role().is_some_and(|r| r.stage().is_some()) {
                match inv.metrics_addr(&mut problems) {
                    Some(addr) => {
                        let scraped = targets
                            .get(&inv.binary)
                            .is_some_and(|t| t.contains(&addr.to_string()));
                        if !scraped {
                            problems.push(format!(
                                "{origin}: JETFLOW_METRICS_ADDR={addr} is not the target of job `{}` in deploy/prometheus/prometheus.yml",
                                inv.binary
                            ));
                        }
                    }
                    None => problems.push(format!(
                        "{origin}: no JETFLOW_METRICS_ADDR: no metrics, /healthz or /readyz"
                    )),
                }
            }
            run.insert(inv.shown());
        }
    }
    check_coverage(&run, "deploy/systemd", &mut problems);
    Ok(problems)
}

fn prometheus_config() -> anyhow::Result<String> {
    let path = repo().join("deploy/prometheus/prometheus.yml");
    std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))
}

fn report(problems: &[String]) -> String {
    problems.join("\n  ")
}

#[test]
fn k8s_manifests_name_only_what_the_binaries_read() -> anyhow::Result<()> {
    let files = files("deploy/k8s", "yaml")?;
    let problems = k8s_problems(&files, &mut Helps::default())?;
    ensure!(problems.is_empty(), "deploy/k8s:\n  {}", report(&problems));
    Ok(())
}

#[test]
fn systemd_units_name_only_what_the_binaries_read() -> anyhow::Result<()> {
    let files = files("deploy/systemd", "service")?;
    let problems = systemd_problems(&files, &prometheus_config()?, &mut Helps::default())?;
    ensure!(
        problems.is_empty(),
        "deploy/systemd:\n  {}",
        report(&problems)
    );
    Ok(())
}

/// The checks can fail: a misspelt variable, flag or credential in an
/// otherwise good file is reported by name.
#[test]
fn a_misspelt_name_is_reported() -> anyhow::Result<()> {
    let mut helps = Helps::default();
    let k8s = files("deploy/k8s", "yaml")?;
    let units = files("deploy/systemd", "service")?;
    let prometheus = prometheus_config()?;
    let cases: [(&[File], &str, &str, &str, &str); 5] = [
        (
            &k8s,
            "fetch.yaml",
            "- name: NATS_CREDS",
            "- name: NATS_CRED",
            "`NATS_CRED`",
        ),
        (
            &k8s,
            "configmap.yaml",
            "JETFLOW_LOG_FORMAT:",
            "JETFLOW_LOGFORMAT:",
            "`JETFLOW_LOGFORMAT`",
        ),
        (
            &k8s,
            "migrate.yaml",
            "[\"jetflow-migrate\"]",
            "[\"jetflow-migrate\", \"--no-provison\"]",
            "`--no-provison`",
        ),
        (
            &units,
            "jetflow-batch.service",
            "NATS_CREDS=%d/nats.creds",
            "NATS_CREDS=%d/nats.cred",
            "`nats.creds`",
        ),
        (
            &units,
            "jetflow-reduce.service",
            "Environment=JETFLOW_NAMESPACE",
            "Environment=JETFLOW_NAMESPAC",
            "`JETFLOW_NAMESPAC`",
        ),
    ];
    for (files, name, from, to, reported) in cases {
        let bad = misspelt(files, name, from, to)?;
        let problems = if name.ends_with(".yaml") {
            k8s_problems(&bad, &mut helps)?
        } else {
            systemd_problems(&bad, &prometheus, &mut helps)?
        };
        ensure!(
            problems.iter().any(|p| p.contains(reported)),
            "{name} with {to:?} for {from:?}: nothing names {reported}; reported:\n  {}",
            report(&problems)
        );
    }
    Ok(())
}
