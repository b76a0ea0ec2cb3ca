//! Comments never change what `check` reports: a comment at the end of any line of a DSL
//! flow, or on a line of its own before any line, leaves every diagnostic's code and line as
//! they were (a comment after a default once made it "not an integer").

use botc_compiler::{NoImports, Syntax, compile};

/// Every `.flow` file under `flows/`, with its text.
fn dsl_flows() -> Vec<(String, String)> {
    let out: Vec<(String, String)> =
        crate::hostile::flows().into_iter().filter(|(p, _)| p.ends_with(".flow")).collect();
    assert!(out.len() >= 10, "found only {} DSL flows", out.len());
    out
}

/// What `check` reports: each diagnostic's code and 1-based line, sorted.
fn reported(name: &str, text: &str) -> Vec<(String, usize)> {
    let c = compile(name, text, Syntax::Dsl, &mut NoImports);
    let mut out: Vec<(String, usize)> = c
        .diagnostics
        .iter()
        .map(|d| (d.code.0.to_string(), c.sources.get(d.span.file).line_col(d.span.lo).0))
        .collect();
    out.sort();
    out
}

/// For each line, whether it ends inside a string (where a `#` would be text, not a comment).
fn ends_in_string(text: &str) -> Vec<bool> {
    let (mut out, mut in_string, mut escaped, mut comment) = (Vec::new(), false, false, false);
    for c in text.chars() {
        match c {
            '\n' => {
                out.push(in_string);
                comment = false;
                escaped = false;
            }
            _ if comment => {}
            _ if escaped => escaped = false,
            '\\' if in_string => escaped = true,
            '"' => in_string = !in_string,
            '#' if !in_string => comment = true,
            _ => {}
        }
    }
    out.push(in_string);
    out
}

#[test]
fn comments_anywhere_change_nothing_check_reports() {
    let mut failures = Vec::new();
    for (name, text) in dsl_flows() {
        let want = reported(&name, &text);
        let lines: Vec<&str> = text.split('\n').collect();
        let in_string = ends_in_string(&text);
        for i in 0..lines.len() {
            // At the end of line i.
            if !in_string[i] {
                let mut with = lines.clone();
                let commented = format!("{} # a note", lines[i]);
                with[i] = &commented;
                let got = reported(&name, &with.join("\n"));
                if got != want {
                    failures.push(format!("{name}: a comment after line {}: {want:?} became {got:?}", i + 1));
                }
            }
            // On a line of its own before line i (not inside a string): the lines after it
            // move down by one.
            if i == 0 || !in_string[i - 1] {
                let mut with = lines.clone();
                with.insert(i, "  # a note");
                let shifted: Vec<(String, usize)> =
                    want.iter().map(|(code, line)| (code.clone(), if *line > i { line + 1 } else { *line })).collect();
                let mut shifted = shifted;
                shifted.sort();
                let got = reported(&name, &with.join("\n"));
                if got != shifted {
                    failures.push(format!("{name}: a comment line before line {}: {shifted:?} became {got:?}", i + 1));
                }
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} cases:\n{}",
        failures.len(),
        failures.iter().take(20).cloned().collect::<Vec<_>>().join("\n")
    );
}
