//! `botc fmt` keeps comments: a comment at the end of any line of a shipped flow, or on a
//! line of its own before any line, comes out of formatting (to either form) exactly once,
//! the flow is otherwise unchanged, and formatting the result again changes nothing.

use botc_compiler::print::{self, Comment};
use botc_compiler::{SourceMap, Syntax, front};

/// The file's tree, printed without comments in both forms (its meaning, layout aside), and
/// its comments; `None` when it does not parse cleanly.
fn read(text: &str, syntax: Syntax) -> Option<(botc_compiler::ast::File, Vec<Comment>)> {
    let mut sources = SourceMap::new();
    let id = sources.add("f", text);
    let (ast, diags) = front::parse(id, sources.get(id), syntax);
    let ast = ast.filter(|_| !diags.iter().any(|d| d.is_error()))?;
    Some((ast, front::comments(text, syntax)))
}

fn print(ast: &botc_compiler::ast::File, comments: &[Comment], to: Syntax) -> String {
    match to {
        Syntax::Yaml => print::yaml(ast, comments),
        Syntax::Dsl => print::dsl(ast, comments),
    }
}

/// The shipped flows that are meant to be valid, in both forms.
fn valid_flows() -> Vec<(String, String, Syntax)> {
    let out: Vec<_> = crate::hostile::flows()
        .into_iter()
        .filter(|(p, _)| p.contains("/flows/ok/") || p.contains("/flows/examples/"))
        .filter_map(|(p, t)| Syntax::from_path(&p).map(|s| (p, t, s)))
        .filter(|(p, _, _)| !p.ends_with(".test.yaml"))
        .collect();
    assert!(out.len() >= 20, "found only {} flows", out.len());
    out
}

/// Formats `text` both ways and says what went wrong, if anything: `tag` (a comment's text)
/// must come out once, the meaning must be `meaning`, and a second run must change nothing.
fn keeps(text: &str, syntax: Syntax, tag: &str, meaning: &[String; 2]) -> Result<(), String> {
    let (ast, comments) = read(text, syntax).ok_or("the commented flow no longer parses")?;
    for to in [Syntax::Yaml, Syntax::Dsl] {
        let out = print(&ast, &comments, to);
        if out.matches(tag).count() != 1 {
            return Err(format!("to {to:?}, `{tag}` appears {} times:\n{out}", out.matches(tag).count()));
        }
        let (again, again_comments) = read(&out, to).ok_or_else(|| format!("to {to:?}, does not read back:\n{out}"))?;
        if print(&again, &[], Syntax::Yaml) != meaning[0] {
            return Err(format!("to {to:?}, the flow changed:\n{out}"));
        }
        let twice = print(&again, &again_comments, to);
        if twice != out {
            return Err(format!("to {to:?}, formatting again changes it:\n{out}\n---- became ----\n{twice}"));
        }
    }
    Ok(())
}

#[test]
fn formatting_keeps_a_comment_put_anywhere_once_and_is_idempotent() {
    let (mut failures, mut checked, mut candidates) = (Vec::new(), 0, 0);
    for (f, (name, text, syntax)) in valid_flows().into_iter().enumerate() {
        let (ast, _) = read(&text, syntax).unwrap_or_else(|| panic!("{name} parses"));
        let meaning = [print(&ast, &[], Syntax::Yaml), print(&ast, &[], Syntax::Dsl)];
        let lines: Vec<&str> = text.split('\n').collect();
        // Every third line (a different third in each file): all lines of every flow take a
        // minute in a debug build, and the thirds between them cover the same constructs.
        for i in (0..lines.len()).filter(|i| (i + f) % 3 == 0) {
            let tag = format!("# note-{i}");
            let after = format!("{} {tag}", lines[i]);
            let own = format!("    {tag}");
            for variant in [0, 1] {
                let mut with = lines.clone();
                if variant == 0 {
                    if lines[i].trim().is_empty() {
                        continue;
                    }
                    with[i] = &after;
                } else {
                    with.insert(i, &own);
                }
                let with = with.join("\n");
                candidates += 1;
                // Inside a string the `#` is text: the flow's meaning changes, so it is no
                // comment and not this test's business.
                let Some((a, _)) = read(&with, syntax) else { continue };
                if print(&a, &[], Syntax::Yaml) != meaning[0] {
                    continue;
                }
                checked += 1;
                if let Err(e) = keeps(&with, syntax, &tag, &meaning) {
                    failures.push(format!("{name}, line {}: {e}", i + 1));
                }
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {checked} cases:\n{}",
        failures.len(),
        failures.iter().take(5).cloned().collect::<Vec<_>>().join("\n\n")
    );
    assert!(checked * 10 >= candidates * 8, "only {checked} of {candidates} placements were comments");
}

#[test]
fn comments_stay_where_they_were_written() {
    let src = "\
# yaml-language-server: $schema=../docs/flow.schema.json
# The greeter.
flow: greet # the flow's name
start: hello

vars:
  # who is asking
  name: text # their name

# ---- nodes ----

nodes:
  hello:
    # ask first
    ask: \"Name? # not a comment\"
    into: name
    next: bye # then leave
    # a last thought about hello
  bye:
    say: |
      Bye {{ name }}
      # still the text
    next: done
  done:
    end: true
# the end
";
    let (ast, comments) = read(src, Syntax::Yaml).expect("parses");
    let texts: Vec<&str> = comments.iter().map(|c| c.text.as_str()).collect();
    assert_eq!(
        texts,
        [
            "# yaml-language-server: $schema=../docs/flow.schema.json",
            "# The greeter.",
            "# the flow's name",
            "# who is asking",
            "# their name",
            "# ---- nodes ----",
            "# ask first",
            "# then leave",
            "# a last thought about hello",
            "# the end",
        ]
    );
    assert_eq!(
        print::yaml(&ast, &comments),
        "\
# yaml-language-server: $schema=../docs/flow.schema.json
# The greeter.
flow: greet # the flow's name
start: hello

vars:
  # who is asking
  name: text # their name

# ---- nodes ----

nodes:
  hello:
    # ask first
    ask: \"Name? # not a comment\"
    into: name
    next: bye # then leave
    # a last thought about hello

  bye:
    say: \"Bye {{ name }}\\n# still the text\\n\"
    next: done

  done:
    end: true
# the end
"
    );
    assert_eq!(
        print::dsl(&ast, &comments),
        "\
# yaml-language-server: $schema=../docs/flow.schema.json
# The greeter.
flow greet # the flow's name
start hello

# who is asking
var name: text # their name

# ---- nodes ----

node hello {
  # ask first
  ask \"Name? # not a comment\"
  into name
  next bye # then leave
  # a last thought about hello
}

node bye {
  say \"Bye {{ name }}\\n# still the text\\n\"
  next done
}

node done { end }
# the end
"
    );
}

/// A `#` in a block scalar is text, also when the scalar's indentation is given by an indicator
/// (`|2`) and a line of it is indented less than its first.
#[test]
fn a_hash_in_block_scalar_text_is_not_a_comment() {
    let src = "flow: t\nstart: a\nnodes:\n  a:\n    say: |2\n       indented # text\n      # still text\n    # a comment\n    next: b\n  b:\n    end: true\n";
    let (ast, comments) = read(src, Syntax::Yaml).expect("parses");
    let texts: Vec<&str> = comments.iter().map(|c| c.text.as_str()).collect();
    assert_eq!(texts, ["# a comment"]);
    let out = print::yaml(&ast, &comments);
    assert_eq!(out.matches("# still text").count(), 1, "{out}");
    let (again, again_comments) = read(&out, Syntax::Yaml).expect("reads back");
    assert_eq!(print::yaml(&again, &again_comments), out, "idempotent");
}

/// An anchor or a tag before a quoted scalar, and a byte order mark before the first comment,
/// hide no comment; a comment at the end of a sub-flow's node stays in that node.
#[test]
fn anchors_tags_a_bom_and_nested_blocks_keep_their_comments() {
    let src = "\u{feff}# mode\nflow: f\nstart: a\nnodes:\n  a:\n    say: &hi \"Hello\"   # greeting\n    next: b            # go\n  b:\n    say: !!str \"Hi # there\"\n    next: c\n  c:\n    end: true\n";
    let (ast, comments) = read(src, Syntax::Yaml).expect("parses");
    let texts: Vec<&str> = comments.iter().map(|c| c.text.as_str()).collect();
    assert_eq!(texts, ["# mode", "# greeting", "# go"]);
    let out = print::yaml(&ast, &comments);
    for t in texts {
        assert_eq!(out.matches(t).count(), 1, "{out}");
    }

    let dsl = "flow f\nstart a\n\nnode a {\n  call s\n  next b\n}\n\nnode b { end }\n\nsubflow s {\n  start x\n\n  node x {\n    say \"hi\"\n    next y\n    # about x\n  }\n\n  node y { return }\n}\n";
    let (ast, comments) = read(dsl, Syntax::Dsl).expect("parses");
    assert_eq!(print::dsl(&ast, &comments), dsl, "already canonical, the comment inside node x");
    let nested = dsl.replace("  node y { return }\n", "");
    let nested =
        nested.replace("    next y\n", "    next z\n").replace("  node x {", "  node z { return }\n\n  node x {");
    let (ast, comments) = read(&nested, Syntax::Dsl).expect("parses");
    let out = print::dsl(&ast, &comments);
    assert!(out.contains("    # about x\n  }\n}\n"), "the last node's comment stays in it:\n{out}");
}
