//! `botc diff`: which waiting conversations can move from one version to another.

use crate::flows::load_botc;
use std::path::Path;
use std::process::ExitCode;

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum DiffFormat {
    Human,
    Json,
}

pub(crate) fn diff_cmd(old: &Path, new: &Path, format: DiffFormat) -> ExitCode {
    let (old, new) = match (load_botc(old), load_botc(new)) {
        (Ok(o), Ok(n)) => (o, n),
        (Err(code), _) | (_, Err(code)) => return code,
    };
    let points = botc_runtime::migrate::diff(old.program(), new.program());
    match format {
        DiffFormat::Json => {
            let list: Vec<_> = points
                .iter()
                .map(|p| serde_json::json!({ "flow": p.flow, "node": p.node, "kind": p.kind.name(), "verdict": p.verdict.name(), "reason": p.reason }))
                .collect();
            let out = serde_json::json!({ "old": old.program().hash_hex(), "new": new.program().hash_hex(), "wait_points": list });
            outln!("{}", serde_json::to_string_pretty(&out).expect("JSON values serialize"));
        }
        DiffFormat::Human => {
            if points.is_empty() {
                outln!("no conversation can be waiting in the old program");
            }
            for p in &points {
                let why = if p.reason.is_empty() { String::new() } else { format!(": {}", p.reason) };
                outln!("{:<8} {}.{} ({}){why}", p.verdict.name(), p.flow, p.node, p.kind.name());
            }
        }
    }
    ExitCode::SUCCESS
}
