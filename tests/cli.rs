//! Exit codes and output formats of `botc check` and `botc graph`.

use crate::{botc, stdout};

#[test]
fn exit_codes_distinguish_clean_findings_and_usage() {
    assert_eq!(botc(&["check", "flows/examples"]).status.code(), Some(0));
    assert_eq!(botc(&["check", "flows/err/unknown_target.yaml"]).status.code(), Some(1));
    assert_eq!(botc(&["check", "no/such/file.yaml"]).status.code(), Some(2));
    assert_eq!(botc(&["check"]).status.code(), Some(2));
    assert_eq!(botc(&["check", "Cargo.toml"]).status.code(), Some(2));
    assert_eq!(botc(&["frobnicate"]).status.code(), Some(2));
}

#[test]
fn deny_warnings_turns_warnings_into_failure() {
    let f = "flows/err/unused_variable.yaml";
    assert_eq!(botc(&["check", f]).status.code(), Some(0));
    assert_eq!(botc(&["check", "--deny-warnings", f]).status.code(), Some(1));
}

#[test]
fn json_output_has_every_field() {
    let o = botc(&["check", "--format", "json", "flows/err/unknown_target.yaml"]);
    let line = stdout(&o).lines().next().expect("one diagnostic").to_string();
    let v: serde_json::Value = serde_json::from_str(&line).expect("json");
    for key in ["code", "severity", "message", "file", "line", "column", "byte_start", "byte_end", "labels", "help"] {
        assert!(v.get(key).is_some(), "missing {key} in {line}");
    }
    assert_eq!(v["code"], "E0201");
    assert_eq!(v["severity"], "error");
    let src = std::fs::read_to_string(crate::root().join("flows/err/unknown_target.yaml")).expect("reads");
    let (a, b) = (v["byte_start"].as_u64().expect("n") as usize, v["byte_end"].as_u64().expect("n") as usize);
    assert_eq!(&src[a..b], "confirm_ordr", "the byte range covers the misspelt target");
}

#[test]
fn github_output_is_workflow_commands() {
    let o = botc(&["check", "--format", "github", "flows/err/unknown_target.yaml"]);
    let out = stdout(&o);
    assert!(out.starts_with("::error file=flows/err/unknown_target.yaml,line="), "{out}");
    assert!(out.contains("title=E0201 unknown target node `confirm_ordr`::"), "{out}");
}

#[test]
fn graph_prints_dot_and_mermaid() {
    let dot = botc(&["graph", "flows/examples/pizza_order.yaml"]);
    assert_eq!(dot.status.code(), Some(0));
    let dot = stdout(&dot);
    assert!(dot.starts_with("digraph botc {") && dot.contains("->"), "{dot}");
    let mm = botc(&["graph", "--format", "mermaid", "flows/examples/pizza_order.yaml"]);
    let mm = stdout(&mm);
    assert!(mm.starts_with("flowchart TD") && mm.contains("-->|next|"), "{mm}");
}

/// `--format svg` draws every shipped flow (loops, sub-flows, long texts) with nothing
/// installed: each node the dot output names is in the picture, and the SVG's elements close.
#[test]
fn graph_draws_every_shipped_flow_as_svg() {
    let flows: Vec<String> =
        crate::flow_files("flows/ok").into_iter().chain(crate::flow_files("flows/examples")).collect();
    assert!(flows.len() >= 20, "found {} flows", flows.len());
    for f in flows.iter().filter(|f| !f.contains("/lib/")) {
        let o = botc(&["graph", "--format", "svg", f]);
        assert_eq!(o.status.code(), Some(0), "{f}: {}", String::from_utf8_lossy(&o.stderr));
        let svg = stdout(&o);
        assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"), "{f}: not an SVG document");
        for tag in ["g", "text", "tspan", "svg"] {
            let opened = svg.matches(&format!("<{tag} ")).count() + svg.matches(&format!("<{tag}>")).count();
            assert_eq!(opened, svg.matches(&format!("</{tag}>")).count(), "{f}: unbalanced <{tag}>");
        }
        let dot = stdout(&botc(&["graph", f]));
        let nodes = dot.lines().filter(|l| !l.contains("->")).filter_map(|l| l.split("[label=\"").nth(1));
        let names: Vec<&str> = nodes.filter_map(|l| l.split("\\n").next()).collect();
        assert!(names.len() >= 2, "{f}: the dot output names its nodes: {dot}");
        for name in names {
            assert!(svg.contains(&format!(">{name}</tspan>")), "{f}: node `{name}` is not drawn");
        }
        let edges = dot.matches(" -> ").count();
        assert_eq!(svg.matches(r#"<path class="edge""#).count(), edges, "{f}: every edge is drawn");
    }
    let svg = stdout(&botc(&["graph", "--format", "svg", "flows/examples/pizza_order.yaml"]));
    for text in [">when 1<", ">else<", ">next<", ">on_error<", ">on_timeout<", r#"class="node branch""#] {
        assert!(svg.contains(text), "the pizza flow's picture lacks `{text}`");
    }
}

/// A flow of thousands of nodes with a loop in every group is drawn in seconds, not hours
/// (a layout library that enumerates paths would never finish).
#[test]
fn graph_svg_of_a_large_flow_finishes() {
    let dir = tempfile::tempdir().expect("dir");
    let mut src = String::from("flow: large\nstart: ask_0\nvars:\n  answer: text\nnodes:\n");
    let groups = 500;
    for g in 0..groups {
        let next = if g + 1 == groups { "done".to_string() } else { format!("ask_{}", g + 1) };
        src += &format!(
            "  ask_{g}:\n    ask: \"Q{g}?\"\n    into: answer\n    expect: {{ choice: [yes, no] }}\n    next: b_{g}\n  b_{g}:\n    branch:\n      - when: 'answer == \"yes\"'\n        goto: s_{g}\n    else: ask_{g}\n  s_{g}:\n    say: \"ok\"\n    next: {next}\n"
        );
    }
    src += "  done:\n    end: true\n";
    let f = dir.path().join("large.yaml");
    std::fs::write(&f, src).expect("write");
    // `botc` gives up (and fails the test) after two minutes.
    let o = botc(&["graph", "--format", "svg", &f.to_string_lossy()]);
    assert_eq!(o.status.code(), Some(0), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(stdout(&o).matches("<rect x=").count(), groups * 3 + 1);
}

#[test]
fn a_reader_that_stops_early_is_not_an_error() {
    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};
    // `botc dump-ir big.yaml | head -1`: the pipe closes while botc is still writing (the
    // output is far larger than a pipe's buffer).
    let dir = std::env::temp_dir().join(format!("botc-pipe-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let mut flow = String::from("flow: big\nstart: n0\nnodes:\n");
    for i in 0..3000 {
        flow += &format!(
            "  n{i}:\n    say: \"message number {i} with some text to make it longer\"\n    next: n{}\n",
            i + 1
        );
    }
    flow += "  n3000:\n    end:\n";
    let file = dir.join("big.yaml");
    std::fs::write(&file, flow).expect("write");
    let mut child = Command::new(env!("CARGO_BIN_EXE_botc"))
        .args(["dump-ir", &file.to_string_lossy()])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starts");
    let mut reader = BufReader::new(child.stdout.take().expect("stdout"));
    let mut first = String::new();
    reader.read_line(&mut first).expect("a line");
    drop(reader);
    let out = child.wait_with_output().expect("exits");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!err.contains("panicked"), "{err}");
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(first.starts_with("flow f0 big"), "{first}");
}

/// A directory of flows mounted from a Kubernetes ConfigMap holds each file three times
/// over (the file's link, `..data/`, and the timestamped directory it points at): botc
/// skips hidden entries and reads each flow once.
#[test]
fn a_configmap_mounted_flow_directory_is_read_once() {
    let dir = tempfile::tempdir().expect("temp dir");
    let stamped = dir.path().join("..2026_12_03_15_00_00.123456789");
    std::fs::create_dir(&stamped).expect("mkdir");
    std::fs::write(stamped.join("echo.yaml"), crate::ECHO).expect("write");
    std::os::unix::fs::symlink("..2026_12_03_15_00_00.123456789", dir.path().join("..data")).expect("link");
    std::os::unix::fs::symlink("..data/echo.yaml", dir.path().join("echo.yaml")).expect("link");
    let out = crate::botc(&["check", &dir.path().to_string_lossy()]);
    assert_eq!(out.status.code(), Some(0), "{}", crate::stdout(&out));
    let all = format!("{}{}", stdout(&out), String::from_utf8_lossy(&out.stderr));
    assert!(all.contains("checked 1 file:"), "{all}");
}

#[test]
fn explain_prints_a_codes_section_and_refuses_an_unknown_code() {
    let o = botc(&["check", "--explain", "e0401"]);
    assert_eq!(o.status.code(), Some(0));
    let text = stdout(&o);
    assert!(text.starts_with("## E0401: loop that never waits for input"), "{text}");
    assert!(text.contains("Wrong:") && text.contains("Fixed:") && !text.contains("## W0402"), "{text}");
    let o = botc(&["check", "--explain", "E0410"]);
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("no diagnostic code `E0410`") && err.contains("did you mean `E0401`?"), "{err}");
    // A check that finds something says how to learn more about it.
    let o = botc(&["check", "flows/err/unknown_target.yaml"]);
    assert!(stdout(&o).ends_with("for more about a code: botc check --explain E0201\n"), "{}", stdout(&o));
}

#[test]
fn completions_are_printed_for_each_shell_and_the_help_says_what_botc_is() {
    for (shell, marker) in [
        ("bash", "_botc()"),
        ("zsh", "#compdef botc"),
        ("fish", "complete -c botc"),
        ("powershell", "Register-ArgumentCompleter"),
    ] {
        let o = botc(&["completions", shell]);
        assert_eq!(o.status.code(), Some(0), "{shell}");
        let text = stdout(&o);
        assert!(text.contains(marker) && text.contains("check") && text.contains("serve"), "{shell}: {text}");
    }
    let o = botc(&["--help"]);
    let help = stdout(&o);
    assert!(
        help.contains("served on one machine or as a distributed runtime") && help.contains("completions"),
        "{help}"
    );
    let o = botc(&["chat", "--help"]);
    assert!(stdout(&o).contains("The flow file to talk to"), "{}", stdout(&o));
}
