//! docs/diagnostics.md, which `botc check --explain` prints: every code the checker can report
//! is explained, the table in docs/flow-language.md lists the same codes with the same
//! meanings, and every example does what it says (the wrong one reports its code, the fixed
//! one checks without errors and without that code).

use botc_compiler::{NoImports, Syntax, compile, explain};
use std::path::PathBuf;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The fenced code blocks after `Wrong:` and `Fixed:` in a section, with their language.
fn example<'a>(section: &'a str, which: &str) -> Option<(Syntax, &'a str)> {
    let at = section.find(&format!("\n{which}:\n"))?;
    let rest = &section[at..];
    let open = rest.find("```")?;
    let lang_end = open + rest[open..].find('\n')?;
    let syntax = match &rest[open + 3..lang_end] {
        "flow" => Syntax::Dsl,
        _ => Syntax::Yaml,
    };
    let body_end = lang_end + 1 + rest[lang_end + 1..].find("```")?;
    Some((syntax, &rest[lang_end + 1..body_end]))
}

#[test]
fn every_example_reports_its_code_and_every_fix_checks_clean() {
    let mut failures = Vec::new();
    let mut examples = 0;
    for (code, _) in explain::codes() {
        let section = explain::explain(code).expect("listed codes are explained");
        let (wrong, fixed) = (example(section, "Wrong"), example(section, "Fixed"));
        assert_eq!(wrong.is_some(), fixed.is_some(), "{code}: a wrong example needs a fixed one and back");
        let (Some((ws, wrong)), Some((fs, fixed))) = (wrong, fixed) else { continue };
        examples += 1;
        let codes = |syntax, text: &str| {
            let name = if syntax == Syntax::Dsl { "example.flow" } else { "example.yaml" };
            let c = compile(name, text, syntax, &mut NoImports);
            let errors = c.diagnostics.iter().filter(|d| d.is_error()).map(|d| d.code.0).collect::<Vec<_>>();
            (c.diagnostics.iter().map(|d| d.code.0).collect::<Vec<_>>(), errors)
        };
        let (reported, _) = codes(ws, wrong);
        if !reported.contains(&code) {
            failures.push(format!("{code}: the wrong example reports {reported:?}"));
        }
        let (reported, errors) = codes(fs, fixed);
        if reported.contains(&code) || !errors.is_empty() {
            failures.push(format!("{code}: the fixed example reports {reported:?}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert!(examples >= 35, "only {examples} codes have examples");
}

#[test]
fn the_language_docs_table_lists_the_explained_codes_with_their_meanings() {
    let doc = std::fs::read_to_string(root().join("docs/flow-language.md")).expect("docs");
    let table: Vec<(String, String)> = doc
        .lines()
        .filter_map(|l| {
            let cells: Vec<&str> = l.split('|').map(str::trim).collect();
            let code = cells.get(1)?;
            (code.len() == 5
                && (code.starts_with('E') || code.starts_with('W'))
                && code[1..].bytes().all(|b| b.is_ascii_digit()))
            .then(|| (code.to_string(), cells[2].to_string()))
        })
        .collect();
    let explained: Vec<(String, String)> = explain::codes().map(|(c, m)| (c.to_string(), m.to_string())).collect();
    assert_eq!(table, explained, "docs/flow-language.md's table and docs/diagnostics.md's headings differ");
}

#[test]
fn every_code_the_checker_can_report_is_explained() {
    let mut used = std::collections::BTreeSet::new();
    let mut stack = vec![root().join("compiler/src")];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).expect("src") {
            let p = e.expect("entry").path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "rs") && !p.ends_with("explain.rs") {
                let text = std::fs::read_to_string(&p).expect("reads");
                for (i, _) in text.match_indices("(\"") {
                    let code = &text[i + 2..];
                    if code.len() > 6
                        && matches!(&code[..1], "E" | "W")
                        && code[1..5].bytes().all(|b| b.is_ascii_digit())
                        && &code[5..6] == "\""
                    {
                        used.insert(code[..5].to_string());
                    }
                }
            }
        }
    }
    let explained: std::collections::BTreeSet<String> = explain::codes().map(|(c, _)| c.to_string()).collect();
    let missing: Vec<&String> = used.difference(&explained).collect();
    assert!(used.len() >= 40 && missing.is_empty(), "not explained: {missing:?} (of {} used)", used.len());
}
