//! A DSL `set` value may go on over line ends; one left unfinished must not swallow the
//! statement on the next line, and one finished on a later line must not be refused.

use botc_compiler::{NoImports, Syntax, compile};

fn codes(text: &str) -> Vec<String> {
    let c = compile("t.flow", text, Syntax::Dsl, &mut NoImports);
    c.diagnostics.iter().map(|d| d.code.0.to_string()).collect()
}

fn flow(set: &str) -> String {
    format!(
        "flow lines\nstart a\nvar price: number = 5\nvar timeout: number = 2\nvar total: number = 0\n\
         node a {{\n  {set}\n  next b\n}}\nnode b {{ say \"{{{{ total }}}}\" next c }}\nnode c {{ end }}\n"
    )
}

#[test]
fn a_value_may_continue_on_the_next_line() {
    assert_eq!(codes(&flow("set total = price +\n    timeout")), Vec::<String>::new());
    assert_eq!(codes(&flow("set total = price\n    + timeout * 2")), Vec::<String>::new());
    // The next statement on the same line as the value's last word.
    let text = "flow lines\nstart a\nvar price: number = 5\nvar timeout: number = 2\nvar total: number = 0\n\
                node a {\n  set total = price +\n    timeout next b\n}\nnode b { say \"{{ total }}\" next c }\n\
                node c { end }\n";
    assert_eq!(codes(text), Vec::<String>::new());
    // A variable named like a statement, followed by an operator word.
    let text = flow("set total = price +\n    timeout").replace(
        "node a {",
        "var reason: text = \"x\"\nvar esc: boolean = false\nnode a {\n  set esc = price > 3 or\n    reason in [\"angry\", \"legal\"]",
    );
    let c = codes(&text);
    assert!(!c.contains(&"E0002".to_string()), "{c:?}");
    // A text over two lines whose second line starts with a statement's word.
    let text = flow("set total = price")
        .replace("node a {", "var note: text = \"\"\nnode a {\n  set note = \"Thanks!\n  next time, bring a friend\"");
    let c = codes(&text);
    assert!(!c.contains(&"E0002".to_string()), "{c:?}");
}

#[test]
fn an_unfinished_value_does_not_swallow_the_next_statement() {
    // `next b` would be read as `price + next` and an unknown statement `b`.
    assert_eq!(codes(&flow("set total = price +")), vec!["E0002"]);
    assert_eq!(codes(&flow("set total = price *\n  goto b")), vec!["E0002"]);
}

#[test]
fn a_duration_written_apart_from_its_unit_is_one_error() {
    let text = "flow w\nstart a\nnode a { wait 10 m next b }\nnode b { say \"back\" next c }\nnode c { end }\n";
    assert_eq!(codes(text), vec!["E0002"]);
    let text = "flow w\nstart a\nnode a { wait 10m next b }\nnode b { say \"back\" next c }\nnode c { end }\n";
    assert_eq!(codes(text), Vec::<String>::new());
}
