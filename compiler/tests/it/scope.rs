//! A sub-flow has its own scope. Reading a variable of the flow that calls it is E0301 with a
//! help naming whose variable it is; the help never displaces a nearer suggestion, and never
//! names a flow that does not call the sub-flow.

use botc_compiler::{NoImports, Syntax, compile};

fn helps(text: &str) -> Vec<String> {
    let c = compile("t.yaml", text, Syntax::Yaml, &mut NoImports);
    c.diagnostics.iter().filter(|d| d.code.0 == "E0301").map(|d| d.help.clone().unwrap_or_default()).collect()
}

const FLOW: &str = "flow: shop\nstart: a\nvars:\n  name: text\nnodes:\n  a:\n    ask: Name?\n    into: name\n    next: b\n  b:\n    call: greeting\n    next: c\n  c:\n    end: true\nsubflows:\n  greeting:\n    start: hi\n    nodes:\n      hi:\n        say: \"Hello, {{ name }}!\"\n        next: back\n      back:\n        return: null\n";

#[test]
fn reading_the_callers_variable_says_whose_it_is() {
    assert_eq!(helps(FLOW).len(), 1);
    assert!(helps(FLOW)[0].starts_with("`name` is a variable of flow `shop`"), "{:?}", helps(FLOW));
}

#[test]
fn a_near_name_of_the_subflows_own_is_still_suggested() {
    let text = FLOW.replace("    start: hi\n", "    start: hi\n    vars:\n      names: text\n");
    assert!(helps(&text)[0].contains("did you mean `names`"), "{:?}", helps(&text));
}

#[test]
fn a_flow_that_does_not_call_it_is_not_named() {
    // Only a sibling sub-flow that never calls `greeting` has a `title`.
    let text = FLOW.replace("{{ name }}", "{{ title }}")
        + "  other:\n    vars:\n      title: text\n    start: x\n    nodes:\n      x:\n        call: greeting\n        next: y\n      y:\n        return: null\n";
    let text =
        text.replace("        call: greeting\n        next: y\n", "        say: \"{{ title }}\"\n        next: y\n");
    assert!(helps(&text).iter().all(|h| !h.contains("is a variable of flow")), "{:?}", helps(&text));
}

/// W0502 is for a sub-flow that writes a parameter named like its caller's variable as if the
/// caller's changed; storing the sub-flow's result in that variable with `into` is the
/// recommended way and is not reported.
#[test]
fn writing_a_parameter_is_reported_unless_the_caller_stores_the_result() {
    let flow = |into: &str| {
        format!(
            "flow: shop\nstart: a\nvars:\n  name: text\nnodes:\n  a:\n    ask: Name?\n    into: name\n    next: b\n  b:\n    call: clean\n    with:\n      name: name\n{into}    next: c\n  c:\n    say: \"Hi {{{{ name }}}}\"\n    next: d\n  d:\n    end: true\nsubflows:\n  clean:\n    params:\n      name: text\n    returns: text\n    start: trim\n    nodes:\n      trim:\n        set:\n          name: trim(name)\n        next: back\n      back:\n        return: name\n"
        )
    };
    let codes = |text: &str| {
        let c = compile("t.yaml", text, Syntax::Yaml, &mut NoImports);
        c.diagnostics.iter().map(|d| d.code.0.to_string()).collect::<Vec<_>>()
    };
    assert_eq!(codes(&flow("")), ["W0502"], "the result is dropped: the caller's `name` never changes");
    assert!(codes(&flow("    into: name\n")).is_empty(), "{:?}", codes(&flow("    into: name\n")));
}
