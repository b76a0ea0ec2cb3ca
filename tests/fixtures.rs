//! Data-driven checks over `flows/`: `ok` and `examples` check clean; every `err` fixture
//! produces exactly the codes marked under its lines (`# ^^^ E0102`), and its rendered
//! diagnostics match the snapshot.

use crate::{botc, flow_files, stdout};
use std::collections::BTreeSet;

/// `(line, code)` pairs marked in a fixture: a comment `# ^^^ CODE...` marks the line above.
fn marked(src: &str) -> BTreeSet<(usize, String)> {
    let mut out = BTreeSet::new();
    for (i, line) in src.lines().enumerate() {
        let t = line.trim_start();
        if let Some(rest) = t.strip_prefix('#').map(str::trim_start).and_then(|t| t.strip_prefix("^^^")) {
            for code in rest.split_whitespace() {
                out.insert((i, code.to_string())); // line i (0-based) marks line i, 1-based i
            }
        }
    }
    out
}

/// `(line, code)` pairs botc reports for a file, from its JSON output.
fn reported(path: &str) -> BTreeSet<(usize, String)> {
    let o = botc(&["check", "--format", "json", path]);
    stdout(&o)
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).expect("each line is JSON");
            assert_eq!(v["file"], path, "diagnostic in another file: {l}");
            (v["line"].as_u64().expect("line") as usize, v["code"].as_str().expect("code").to_string())
        })
        .collect()
}

#[test]
fn err_fixtures_report_exactly_their_marked_codes() {
    let files = flow_files("flows/err");
    assert!(files.len() >= 30, "expected a fixture per check, found {}", files.len());
    let mut failures = Vec::new();
    for f in &files {
        let src = std::fs::read_to_string(crate::root().join(f)).expect("fixture reads");
        let want = marked(&src);
        assert!(!want.is_empty(), "{f} marks no expected code");
        let got = reported(f);
        if want != got {
            failures.push(format!("{f}:\n  marked:   {want:?}\n  reported: {got:?}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn err_fixtures_render_like_their_snapshots() {
    for f in flow_files("flows/err") {
        let o = botc(&["check", &f]);
        let src = std::fs::read_to_string(crate::root().join(&f)).expect("fixture reads");
        let errors = marked(&src).iter().any(|(_, code)| code.starts_with('E'));
        assert_eq!(o.status.code(), Some(i32::from(errors)), "{f}: exit status says whether it has errors");
        let name = f.trim_start_matches("flows/err/").replace(['/', '.'], "_");
        insta::assert_snapshot!(format!("err_{name}"), stdout(&o));
    }
}

#[test]
fn ok_and_example_flows_check_clean() {
    for dir in ["flows/ok", "flows/examples"] {
        let o = botc(&["check", "--deny-warnings", dir]);
        assert_eq!(o.status.code(), Some(0), "{dir}:\n{}", stdout(&o));
    }
}

#[test]
fn ok_and_example_flows_ir_snapshots() {
    for f in flow_files("flows/ok").into_iter().chain(flow_files("flows/examples")) {
        if !f.ends_with(".yaml") {
            continue;
        }
        let o = botc(&["dump-ir", &f]);
        assert_eq!(o.status.code(), Some(0), "{f}");
        let name = f.trim_start_matches("flows/").replace(['/', '.'], "_");
        insta::assert_snapshot!(format!("ir_{name}"), stdout(&o));
    }
}
