//! No input makes the compiler panic or hang: random bytes and mutations of every flow in
//! `flows/`, in both syntaxes. Whatever the front end accepts without errors, `fmt` prints
//! in a form that reads back to the same IR.

use botc_compiler::{Loader, NoImports, Syntax, compile, dump, front, print};
use proptest::prelude::*;
use std::path::PathBuf;

/// Every file under `flows/`, with its text, sorted by path.
pub fn flows() -> Vec<(String, String)> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../flows");
    let mut out = Vec::new();
    let mut stack = vec![root];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).expect("flows/ exists") {
            let p = e.expect("entry").path();
            if p.is_dir() {
                stack.push(p);
            } else if let Ok(text) = std::fs::read_to_string(&p) {
                out.push((p.to_string_lossy().into_owned(), text));
            }
        }
    }
    out.sort();
    out
}

/// Imports resolve to an empty flow, so mutated import lists exercise the loader path.
struct AnyImport;
impl Loader for AnyImport {
    fn load(&mut self, _: &str, path: &str) -> Result<(String, String), String> {
        if path.ends_with(".yaml") {
            Ok((format!("mem/{path}"), "flow: lib\nstart: a\nnodes:\n  a:\n    end:\n".into()))
        } else {
            Err("not found".into())
        }
    }
}

/// Runs the whole pipeline and checks what every consumer relies on.
fn exercise(text: &str, syntax: Syntax) {
    let c = compile("input", text, syntax, &mut AnyImport);
    for d in &c.diagnostics {
        let file = c.sources.get(d.span.file);
        assert!(d.span.lo <= d.span.hi && d.span.hi as usize <= file.text.len(), "span out of range: {d:?}");
        assert!(!d.message.is_empty());
    }
    if let Some(ir) = c.ir() {
        let _ = (dump::dot(ir), dump::mermaid(ir), dump::ir(ir));
    }
    // Printing must read back: anything the front end took without errors is printable.
    let mut sources = botc_compiler::SourceMap::new();
    let id = sources.add("input", text);
    let (ast, diags) = front::parse(id, sources.get(id), syntax);
    if let Some(ast) = ast.filter(|_| !diags.iter().any(|d| d.is_error())) {
        let comments = front::comments(text, syntax);
        for (printed, s) in [(print::yaml(&ast, &comments), Syntax::Yaml), (print::dsl(&ast, &comments), Syntax::Dsl)] {
            let again = compile("printed", &printed, s, &mut NoImports);
            let front_errors: Vec<_> =
                again.diagnostics.iter().filter(|d| d.is_error() && d.code.0 < "E0200").collect();
            assert!(front_errors.is_empty(), "printed {s:?} does not read back:\n{printed}\n{front_errors:?}");
        }
    }
}

fn mutate(text: &str, ops: &[(u8, usize, usize, String)]) -> String {
    let mut s: Vec<char> = text.chars().collect();
    for (op, a, b, ins) in ops {
        if s.is_empty() {
            break;
        }
        let i = a % s.len();
        let j = (i + b % 64).min(s.len());
        match op % 4 {
            0 => {
                s.drain(i..j);
            }
            1 => s.splice(i..i, ins.chars()).for_each(drop),
            2 => {
                let slice: Vec<char> = s[i..j].to_vec();
                s.splice(i..i, slice).for_each(drop);
            }
            _ => s.splice(i..j, ins.chars()).for_each(drop),
        };
    }
    s.into_iter().collect()
}

/// Fragments that are meaningful in either syntax, so mutations reach past the parser.
fn fragment() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("{{".to_string()),
        Just("}}".to_string()),
        Just(": ".to_string()),
        Just("\n  ".to_string()),
        Just("- ".to_string()),
        Just("&a ".to_string()),
        Just("*a".to_string()),
        Just("\"".to_string()),
        Just("next ".to_string()),
        Just("goto start".to_string()),
        Just(" and not ".to_string()),
        Just("}".to_string()),
        "[a-z_ ]{0,8}",
        any::<String>(),
    ]
}

proptest! {

    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
        let text = String::from_utf8_lossy(&bytes);
        exercise(&text, Syntax::Yaml);
        exercise(&text, Syntax::Dsl);
    }

    #[test]
    fn mutated_flows_never_panic(
        pick in any::<prop::sample::Index>(),
        ops in proptest::collection::vec((any::<u8>(), any::<usize>(), any::<usize>(), fragment()), 1..6),
    ) {
        let all = flows();
        let (path, text) = pick.get(&all);
        let syntax = Syntax::from_path(path).unwrap_or(Syntax::Yaml);
        exercise(&mutate(text, &ops), syntax);
    }
}

#[test]
fn every_flow_file_survives_the_pipeline() {
    for (path, text) in flows() {
        exercise(&text, Syntax::from_path(&path).unwrap_or(Syntax::Yaml));
    }
}
