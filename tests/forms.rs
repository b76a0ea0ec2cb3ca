//! The YAML and DSL forms are one language: every flow in `flows/ok` and `flows/examples`
//! exists in both, they lower to identical IR, and `botc fmt` converts either way without
//! changing the IR and is idempotent.

use crate::{botc, flow_files, root, stdout};
use std::path::Path;

fn ir(path: &str) -> String {
    let o = botc(&["dump-ir", path]);
    assert_eq!(o.status.code(), Some(0), "{path}: {}", String::from_utf8_lossy(&o.stderr));
    stdout(&o)
}

fn pairs() -> Vec<(String, String)> {
    let yaml: Vec<String> = flow_files("flows/ok")
        .into_iter()
        .chain(flow_files("flows/examples"))
        .filter(|f| f.ends_with(".yaml"))
        .collect();
    assert!(yaml.len() >= 15, "expected the ok and example flows, found {}", yaml.len());
    yaml.into_iter()
        .map(|y| {
            let d = y.trim_end_matches(".yaml").to_string() + ".flow";
            assert!(root().join(&d).exists(), "{y} has no DSL twin {d}");
            (y, d)
        })
        .collect()
}

#[test]
fn yaml_and_dsl_forms_lower_to_identical_ir() {
    for (y, d) in pairs() {
        assert_eq!(ir(&y), ir(&d), "{y} and {d} differ");
    }
}

fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for e in std::fs::read_dir(from).expect("readable") {
        let p = e.expect("entry").path();
        let dest = to.join(p.file_name().expect("named"));
        if p.is_dir() {
            copy_tree(&p, &dest);
        } else {
            std::fs::copy(&p, &dest).expect("copy");
        }
    }
}

#[test]
fn fmt_converts_both_ways_without_changing_the_ir_and_is_idempotent() {
    // Work on a copy of flows/, so relative imports resolve and other tests never see the
    // temporary files.
    let tmp = std::env::temp_dir().join(format!("botc-fmt-forms-{}", std::process::id()));
    copy_tree(&root().join("flows"), &tmp.join("flows"));
    let at = |p: &str| tmp.join(p).to_string_lossy().into_owned();
    for (y, d) in pairs() {
        for (src, to, ext) in [(&y, "dsl", "flow"), (&y, "yaml", "yaml"), (&d, "yaml", "yaml"), (&d, "dsl", "flow")] {
            let out = format!("{}.fmt_{to}.{ext}", src.rsplit_once('.').expect("has an extension").0);
            let first = botc(&["fmt", "--to", to, &at(src)]);
            assert_eq!(first.status.code(), Some(0), "fmt --to {to} {src}");
            std::fs::write(at(&out), &first.stdout).expect("write");
            assert_eq!(ir(&at(&out)), ir(&at(src)), "fmt --to {to} {src} changed the IR");
            let again = stdout(&botc(&["fmt", &at(&out)]));
            assert_eq!(again, stdout(&first), "fmt is not idempotent on {src} --to {to}");
        }
    }
    std::fs::remove_dir_all(tmp).expect("cleanup");
}

#[test]
fn fmt_write_keeps_comments_and_refuses_broken_files() {
    let dir = tempfile::tempdir().expect("dir");
    let commented = dir.path().join("c.yaml");
    let src =
        "# a comment worth keeping\nflow: c   # named c\nstart: a\nnodes:\n  a:\n    # the only node\n    end: true\n";
    std::fs::write(&commented, src).expect("write");
    let p = commented.to_string_lossy().into_owned();
    let o = botc(&["fmt", "-w", &p]);
    assert_eq!(o.status.code(), Some(0), "{}", String::from_utf8_lossy(&o.stderr));
    let kept =
        "# a comment worth keeping\nflow: c # named c\nstart: a\n\nnodes:\n  a:\n    # the only node\n    end: true\n";
    assert_eq!(std::fs::read_to_string(&commented).expect("read"), kept);

    let o = botc(&["fmt", "--to", "dsl", "-w", &p]);
    assert_eq!(o.status.code(), Some(0));
    let dsl = std::fs::read_to_string(dir.path().join("c.flow")).expect("conversion wrote c.flow");
    assert_eq!(dsl, "# a comment worth keeping\nflow c # named c\nstart a\n\nnode a {\n  # the only node\n  end\n}\n");

    assert_eq!(botc(&["fmt", "-w", "--drop-comments", &p]).status.code(), Some(0));
    assert_eq!(
        std::fs::read_to_string(&commented).expect("read"),
        "flow: c\nstart: a\n\nnodes:\n  a:\n    end: true\n"
    );

    let broken = dir.path().join("b.flow");
    std::fs::write(&broken, "flow b\nstrat a\n").expect("write");
    let o = botc(&["fmt", "-w", &broken.to_string_lossy()]);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(std::fs::read_to_string(&broken).expect("read"), "flow b\nstrat a\n");
}

/// `--check` lists what is not in canonical form, writes nothing and fails, so CI can hold a
/// repository to the format; a directory formats every flow under it.
#[test]
fn fmt_check_and_directories() {
    let dir = tempfile::tempdir().expect("dir");
    let d = dir.path().to_string_lossy().into_owned();
    let good = "flow g\nstart a\n\nnode a { end }\n";
    let messy = "flow m   # messy\nstart a\nnode a { end }\n";
    std::fs::write(dir.path().join("g.flow"), good).expect("write");
    std::fs::write(dir.path().join("m.flow"), messy).expect("write");

    let o = botc(&["fmt", &d]);
    assert_eq!(o.status.code(), Some(2), "printing several files is refused");
    assert!(String::from_utf8_lossy(&o.stderr).contains("pass -w"), "{}", String::from_utf8_lossy(&o.stderr));

    let o = botc(&["fmt", "--check", &d]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.contains("m.flow: not formatted (the first difference is on line 1)"), "{err}");
    assert!(!err.contains("g.flow"), "a formatted file is not listed: {err}");
    assert!(err.contains("1 of 2 files not formatted"), "{err}");
    assert_eq!(std::fs::read_to_string(dir.path().join("m.flow")).expect("read"), messy, "--check writes nothing");

    assert_eq!(botc(&["fmt", "-w", &d]).status.code(), Some(0));
    assert_eq!(
        std::fs::read_to_string(dir.path().join("m.flow")).expect("read"),
        "flow m # messy\nstart a\n\nnode a { end }\n"
    );
    let o = botc(&["fmt", "--check", &d]);
    assert_eq!(o.status.code(), Some(0), "{}", String::from_utf8_lossy(&o.stderr));
}

/// The flows we ship are in canonical form, comments and all: what `botc fmt` writes is what
/// we ask authors to read.
#[test]
fn shipped_flows_are_formatted() {
    let o = botc(&[
        "fmt",
        "--check",
        &root().join("flows/ok").to_string_lossy(),
        &root().join("flows/examples").to_string_lossy(),
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", String::from_utf8_lossy(&o.stderr));
}

/// A button list too long for one line is written one button per line in both forms, reads
/// back as the same flow, and stays as it is when formatted again.
#[test]
fn fmt_wraps_a_long_button_list_one_button_per_line() {
    let dir = tempfile::tempdir().expect("dir");
    let yaml = dir.path().join("menu.yaml");
    let dishes = ["Margherita", "Quattro formaggi", "Diavola", "Capricciosa", "Marinara", "Prosciutto e funghi"];
    let buttons: Vec<String> = dishes.iter().map(|d| format!("\"{d}\"")).collect();
    let src = format!(
        "flow: menu\nstart: pick\nvars:\n  dish: text\nnodes:\n  pick:\n    ask: \"Which?\"\n    into: dish\n    buttons: [{}, {{ label: \"Menu\", url: \"https://example.com/menu\" }}]\n    next: done\n  done:\n    say: \"{{{{ dish }}}}\"\n    next: bye\n  bye:\n    end:\n",
        buttons.join(", ")
    );
    std::fs::write(&yaml, src).expect("write");
    let yaml = yaml.to_string_lossy().into_owned();
    let before = ir(&yaml);
    for to in ["yaml", "dsl"] {
        let out = stdout(&botc(&["fmt", "--to", to, &yaml]));
        let lines: Vec<&str> = out.lines().filter(|l| dishes.iter().any(|d| l.contains(d))).collect();
        assert_eq!(lines.len(), dishes.len(), "{to}: one button per line:\n{out}");
        assert!(out.lines().all(|l| l.len() <= 100), "{to}: no line over 100 columns:\n{out}");
        let file = dir.path().join(if to == "yaml" { "wrapped.yaml" } else { "wrapped.flow" });
        std::fs::write(&file, &out).expect("write");
        let file = file.to_string_lossy().into_owned();
        assert_eq!(ir(&file), before.replace(&yaml, &file), "{to}: the same flow");
        assert_eq!(stdout(&botc(&["fmt", &file])), out, "{to}: formatting again changes nothing");
    }
}
