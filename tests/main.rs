//! End-to-end tests of the `botc` binary: every fixture in `flows/`, exit codes, output
//! formats and hostile input. One test binary, one module per concern.

mod bad_input;
mod browser;
mod cli;
mod compile;
mod conversation;
mod fixtures;
mod forms;
mod schema;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The repository root (this file lives in `tests/`).
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("cli/ has a parent").to_path_buf()
}

/// Runs the real `botc` binary from the repository root.
pub fn botc(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_botc"))
        .args(args)
        .current_dir(root())
        .env("NO_COLOR", "1")
        .output()
        .expect("botc runs")
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Flow files (not conversation tests) under a directory of the repository, sorted, as paths
/// relative to the root.
pub fn flow_files(dir: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![root().join(dir)];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).expect("fixture dir exists") {
            let p = e.expect("dir entry").path();
            if p.is_dir() {
                stack.push(p);
            } else if matches!(p.extension().and_then(|e| e.to_str()), Some("yaml" | "flow"))
                && !p.to_string_lossy().ends_with(".test.yaml")
            {
                out.push(p.strip_prefix(root()).expect("under root").to_string_lossy().into_owned());
            }
        }
    }
    out.sort();
    out
}
