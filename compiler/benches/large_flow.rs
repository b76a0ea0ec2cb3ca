//! The generated flow the check benchmarks run on.

use std::fmt::Write;

/// A realistic large flow: `n` nodes in groups of ask → branch → set → say, with every
/// group able to loop back through its ask, variables read and written throughout.
pub fn large_flow(n: usize) -> String {
    let groups = n / 4;
    let mut s = String::from(
        "flow: large\nstart: ask_0\nvars:\n  answer: text\n  count: { type: integer, default: 0 }\nnodes:\n",
    );
    for g in 0..groups {
        let next = if g + 1 == groups { "done".to_string() } else { format!("ask_{}", g + 1) };
        let _ = write!(
            s,
            "  ask_{g}:\n    ask: \"Question {g}, {{{{ user.name }}}}? You said {{{{ count }}}} things.\"\n    into: answer\n    expect: {{ choice: [yes, no, maybe] }}\n    timeout: 10m\n    on_timeout: say_{g}\n    next: branch_{g}\n\
             \x20 branch_{g}:\n    branch:\n      - when: answer == \"yes\" and count < 100\n        goto: set_{g}\n      - when: answer in [\"no\", \"maybe\"]\n        goto: ask_{g}\n    else: say_{g}\n\
             \x20 set_{g}:\n    set:\n      count: count + len(answer) * 2\n    next: say_{g}\n\
             \x20 say_{g}:\n    say: \"Thanks! Step {g} done ({{{{ count }}}}).\"\n    buttons: [Continue, Stop]\n    next: {next}\n"
        );
    }
    s.push_str("  done:\n    end:\n");
    s
}
