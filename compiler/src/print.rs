//! Canonical text for expressions and templates: minimal parentheses, double quotes.
//! Used by IR dumps, `botc graph` labels and `botc fmt`.

use crate::expr::{Expr, ExprKind, Part, Template, UnOp};

pub fn expr(e: &Expr) -> String {
    let mut out = String::new();
    write_expr(&mut out, e, 0);
    out
}

pub fn template(t: &Template) -> String {
    let mut out = String::new();
    for p in &t.parts {
        match p {
            Part::Lit(s) => out.push_str(s),
            Part::Expr(e) => {
                out.push_str("{{ ");
                write_expr(&mut out, e, 0);
                out.push_str(" }}");
            }
        }
    }
    out
}

/// A string literal in double quotes with the escapes the expression grammar reads back.
pub fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn write_expr(out: &mut String, e: &Expr, min_prec: u8) {
    match &e.kind {
        ExprKind::Text(s) => out.push_str(&quote(s)),
        ExprKind::Integer(i) => out.push_str(&i.to_string()),
        ExprKind::Number(n) => {
            let s = n.to_string();
            out.push_str(&s);
            if !s.contains('.') && n.is_finite() {
                out.push_str(".0");
            }
        }
        ExprKind::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        ExprKind::List(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                write_expr(out, item, 0);
            }
            out.push(']');
        }
        ExprKind::Var(name) => out.push_str(name),
        ExprKind::Field(base, field, _) => {
            write_expr(out, base, 9);
            out.push('.');
            out.push_str(field);
        }
        ExprKind::Call(name, _, args) => {
            out.push_str(name);
            out.push('(');
            for (i, a) in args.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                write_expr(out, a, 0);
            }
            out.push(')');
        }
        ExprKind::Unary(op, operand) => {
            let (text, prec) = match op {
                UnOp::Not => ("not ", 3),
                UnOp::Neg => ("-", 7),
            };
            let paren = prec < min_prec;
            if paren {
                out.push('(');
            }
            out.push_str(text);
            write_expr(out, operand, prec);
            if paren {
                out.push(')');
            }
        }
        ExprKind::Binary(op, lhs, rhs) => {
            let prec = op.precedence();
            let paren = prec < min_prec;
            if paren {
                out.push('(');
            }
            // Comparisons do not chain, so both sides bind tighter; other operators are
            // left-associative, so only the right side needs the stricter bound.
            let left_min = if prec == 4 { prec + 1 } else { prec };
            write_expr(out, lhs, left_min);
            out.push(' ');
            out.push_str(op.symbol());
            out.push(' ');
            write_expr(out, rhs, prec + 1);
            if paren {
                out.push(')');
            }
        }
        ExprKind::Error(_) => out.push_str("<error>"),
    }
}

// ---- whole files ------------------------------------------------------------------------
//
// A file is printed as lines, each remembering the source byte of what it prints (its
// anchor). The source's comments are then put back by anchor: a comment after code goes at
// the end of the line that prints that code, a comment on a line of its own goes above the
// line that prints what followed it in the source. Neither library we parse with keeps
// comments (pest skips them, the YAML parser drops them), hence this small attachment step
// instead of a concrete syntax tree.

use crate::ast::{Button, ButtonAction, Expect, File, Flow, Ident, Node, NodeKind as K, VarDecl};
use crate::span::Span;

/// A comment in a flow's source: from `#` to the end of its line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Comment {
    /// The byte of its `#`.
    pub at: u32,
    /// `#` and what follows, trailing whitespace removed.
    pub text: String,
    /// Alone on its line (not after code).
    pub own_line: bool,
    /// Bytes from its line's start to its `#`.
    pub column: u32,
    /// A blank line follows it in the source (a section heading, kept apart from what follows).
    pub blank_after: bool,
}

impl Comment {
    /// The comment whose `#` is at byte `at` of `source`.
    pub fn at(source: &str, at: usize) -> Comment {
        let line_start = source[..at].rfind('\n').map_or(0, |i| i + 1);
        let end = source[at..].find('\n').map_or(source.len(), |i| at + i);
        let next_line = source.get(end + 1..).unwrap_or("");
        let blank_after = end < source.len() && next_line.split('\n').next().is_some_and(|l| l.trim().is_empty());
        Comment {
            at: at as u32,
            text: source[at..end].trim_end().to_string(),
            own_line: source[line_start..at].trim().is_empty(),
            column: (at - line_start) as u32,
            blank_after,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Role {
    /// Prints something from the source (it has an anchor, when the source said where).
    Item,
    /// A heading that opens a block (`nodes:`, `with:`), with no source position of its own.
    Open,
    /// The `}` that closes a block.
    Close,
    Blank,
}

struct Line {
    indent: usize,
    text: String,
    anchor: Option<u32>,
    role: Role,
}

/// The lines of a printed file.
#[derive(Default)]
struct Out {
    lines: Vec<Line>,
}

impl Out {
    fn push(&mut self, indent: usize, text: String, anchor: Option<Span>, role: Role) {
        self.lines.push(Line { indent, text, anchor: anchor.map(|s| s.lo), role });
    }

    fn item(&mut self, indent: usize, text: impl Into<String>, at: Option<Span>) {
        self.push(indent, text.into(), at, Role::Item);
    }

    fn open(&mut self, indent: usize, text: impl Into<String>) {
        self.push(indent, text.into(), None, Role::Open);
    }

    fn close(&mut self, indent: usize, text: impl Into<String>) {
        self.push(indent, text.into(), None, Role::Close);
    }

    fn blank(&mut self) {
        if self.lines.last().is_some_and(|l| l.role != Role::Blank) {
            self.push(0, String::new(), None, Role::Blank);
        }
    }

    /// The text, with `comments` (of `source`, in source order) put back.
    fn finish(self, comments: &[Comment]) -> String {
        let lines = self.lines;
        let mut anchors: Vec<(u32, usize)> =
            lines.iter().enumerate().filter_map(|(i, l)| l.anchor.map(|a| (a, i))).collect();
        anchors.sort_unstable();
        // Leading comments go before line `i` (`lines.len()`: at the end), with an indent.
        let mut leading: Vec<Vec<(usize, &Comment)>> = (0..=lines.len()).map(|_| Vec::new()).collect();
        let mut trailing: Vec<Vec<&Comment>> = (0..lines.len()).map(|_| Vec::new()).collect();
        for c in comments {
            let next = anchors.partition_point(|&(a, _)| a < c.at);
            // A comment after code: at the end of the line printing the last code before it
            // on its source line.
            if !c.own_line
                && let Some(&(a, i)) = next.checked_sub(1).and_then(|k| anchors.get(k))
                && a + c.column >= c.at
            {
                trailing[i].push(c);
                continue;
            }
            let target = anchors.get(next).map_or(lines.len(), |&(_, i)| i);
            let (at, indent) = place(&lines, target, c.column as usize);
            leading[at].push((indent, c));
        }
        let mut out = String::new();
        let put_leading = |out: &mut String, group: &[(usize, &Comment)], next_is_blank: bool| {
            for (k, (indent, c)) in group.iter().enumerate() {
                out.extend(std::iter::repeat_n(' ', *indent));
                out.push_str(&c.text);
                out.push('\n');
                if c.blank_after && !(k + 1 == group.len() && next_is_blank) {
                    out.push('\n');
                }
            }
        };
        for (i, l) in lines.iter().enumerate() {
            put_leading(&mut out, &leading[i], l.role == Role::Blank);
            if l.role != Role::Blank {
                out.extend(std::iter::repeat_n(' ', l.indent));
                out.push_str(&l.text);
            }
            for c in &trailing[i] {
                out.push(' ');
                out.push_str(&c.text);
            }
            out.push('\n');
        }
        put_leading(&mut out, &leading[lines.len()], true);
        out
    }
}

/// Where a comment on a line of its own goes when what followed it prints as line `target`:
/// the line to put it before, and its indent. It moves up over headings it was written above
/// (`nodes:`) and into a block whose `}` it was indented inside, so a comment at the end of a
/// node stays in that node.
fn place(lines: &[Line], target: usize, column: usize) -> (usize, usize) {
    let mut best = target;
    let mut i = target;
    while i > 0 {
        i -= 1;
        let l = &lines[i];
        match l.role {
            Role::Blank => continue,
            Role::Open if l.indent >= column => best = i,
            Role::Close if l.indent < column => {
                // Into the innermost block it was indented within: a node's `}` can come
                // right before its sub-flow's.
                let mut into = (i, l.indent + 2);
                while into.0 > 0 && lines[into.0 - 1].role == Role::Close && lines[into.0 - 1].indent < column {
                    into = (into.0 - 1, lines[into.0 - 1].indent + 2);
                }
                return into;
            }
            _ => break,
        }
    }
    let indent = lines.get(best).map_or(0, |l| l.indent);
    if column > indent {
        // Indented deeper than what follows: it belongs to the end of the block before.
        let prev = lines[..best].iter().rposition(|l| l.role != Role::Blank);
        if let Some(p) = prev.filter(|&p| lines[p].role != Role::Close && lines[p].indent > indent) {
            return (p + 1, column.min(lines[p].indent));
        }
    }
    (best, indent)
}

/// A file in canonical YAML form, with `comments` (from [`crate::front::comments`] on the
/// file's source) kept.
pub fn yaml(file: &File, comments: &[Comment]) -> String {
    let mut out = Out::default();
    let f = &file.flow;
    out.item(0, format!("flow: {}", f.name.name), Some(f.name.span));
    if let Some(d) = &file.description {
        out.item(0, format!("description: {}", quote(&d.value)), Some(d.span));
    }
    if let Some(first) = file.channels.first() {
        let names: Vec<&str> = file.channels.iter().map(|c| c.name.as_str()).collect();
        out.item(0, format!("channels: [{}]", names.join(", ")), Some(first.span));
    }
    if let Some(first) = file.imports.first() {
        let paths: Vec<String> = file.imports.iter().map(|i| quote(&i.value)).collect();
        out.item(0, format!("imports: [{}]", paths.join(", ")), Some(first.span));
    }
    yaml_flow_body(&mut out, f, 0);
    if !file.subflows.is_empty() {
        out.blank();
        out.open(0, "subflows:");
        for (k, s) in file.subflows.iter().enumerate() {
            if k > 0 {
                out.blank();
            }
            out.item(2, format!("{}:", s.name.name), Some(s.name.span));
            if !s.params.is_empty() {
                out.open(4, "params:");
                yaml_decls(&mut out, &s.params, 6);
            }
            if let Some(r) = &s.returns {
                out.item(4, format!("returns: {}", r.ty.name()), Some(r.span));
            }
            yaml_flow_body(&mut out, s, 4);
        }
    }
    out.finish(comments)
}

fn yaml_decls(out: &mut Out, decls: &[VarDecl], indent: usize) {
    for d in decls {
        let text = match &d.default {
            None => format!("{}: {}", d.name.name, d.ty.ty.name()),
            Some(v) => format!("{}: {{ type: {}, default: {} }}", d.name.name, d.ty.ty.name(), yaml_literal(v)),
        };
        out.item(indent, text, Some(d.name.span));
    }
}

fn yaml_literal(e: &Expr) -> String {
    match &e.kind {
        ExprKind::Text(s) => quote(s),
        ExprKind::List(items) => format!("[{}]", items.iter().map(yaml_literal).collect::<Vec<_>>().join(", ")),
        _ => expr(e),
    }
}

/// An expression as a YAML scalar: always single-quoted, so no expression is ever read as
/// YAML (a `>` or `"` at its start, a `: ` or ` #` inside), and every one looks alike.
fn yaml_expr(e: &Expr) -> String {
    format!("'{}'", expr(e).replace('\'', "''"))
}

/// A name-like value (a queue, a header name) as a YAML scalar: plain when it is one word.
fn yaml_word(s: &str) -> String {
    let plain = s.chars().next().is_some_and(|c| c.is_ascii_alphanumeric())
        && s.chars().all(|c| c.is_ascii_alphanumeric() || "_-./".contains(c))
        && !matches!(s, "true" | "false" | "null" | "yes" | "no" | "on" | "off" | "y" | "n")
        && s.parse::<f64>().is_err();
    if plain { s.to_string() } else { quote(s) }
}

/// A text as a YAML scalar: double-quoted, or single-quoted when that saves escaping its
/// double quotes (a JSON body) and it needs no other escape.
fn yaml_text(s: &str) -> String {
    if s.contains('"') && !s.chars().any(|c| c == '\\' || c.is_control()) {
        format!("'{}'", s.replace('\'', "''"))
    } else {
        quote(s)
    }
}

fn yaml_flow_body(out: &mut Out, f: &Flow, ind: usize) {
    if let Some(s) = &f.start {
        out.item(ind, format!("start: {}", s.name), Some(s.span));
    }
    if !f.vars.is_empty() {
        if ind == 0 {
            out.blank();
        }
        out.open(ind, "vars:");
        yaml_decls(out, &f.vars, ind + 2);
    }
    if ind == 0 {
        out.blank();
    }
    out.open(ind, "nodes:");
    for (k, n) in f.nodes.iter().enumerate() {
        if k > 0 {
            out.blank();
        }
        out.item(ind + 2, format!("{}:", n.id.name), Some(n.id.span));
        let i = ind + 4;
        for (key, v, at) in node_fields(n) {
            match v {
                Field::Scalar(s) => out.item(i, format!("{key}: {s}"), at),
                Field::Null => out.item(i, format!("{key}:"), at),
                Field::Lines(lines) => {
                    match at {
                        Some(_) => out.item(i, format!("{key}:"), at),
                        None => out.open(i, format!("{key}:")),
                    }
                    for (l, at) in lines {
                        out.item(i + 2, l, at);
                    }
                }
            }
        }
    }
}

enum Field {
    Scalar(String),
    Null,
    Lines(Vec<(String, Option<Span>)>),
}

fn tq(t: &Template) -> String {
    quote(&template(t))
}

/// A template as a YAML scalar.
fn yaml_tq(t: &Template) -> String {
    yaml_text(&template(t))
}

/// A button list longer than this on one line is written one button per line.
const WRAP_AT: usize = 100;

fn button_text(b: &Button, dsl: bool) -> String {
    let label = template(&b.label);
    match (&b.action, dsl) {
        (ButtonAction::Value(v), _) if v.value == label => quote(&label),
        (ButtonAction::Value(v), false) => format!("{{ label: {}, value: {} }}", quote(&label), quote(&v.value)),
        (ButtonAction::Value(v), true) => format!("{} = {}", quote(&label), quote(&v.value)),
        (ButtonAction::Url(u), false) => format!("{{ label: {}, url: {} }}", quote(&label), tq(u)),
        (ButtonAction::Url(u), true) => format!("{} url {}", quote(&label), tq(u)),
    }
}

fn yaml_buttons(buttons: &[Button]) -> Field {
    let items: Vec<String> = buttons.iter().map(|b| button_text(b, false)).collect();
    let line = format!("[{}]", items.join(", "));
    // `    buttons: ` comes before it. Buttons with a value or a link are mappings, which
    // read best one per line.
    let simple = buttons.iter().all(|b| matches!(&b.action, ButtonAction::Value(v) if v.value == template(&b.label)));
    if !simple || line.len() + 13 > WRAP_AT {
        Field::Lines(items.into_iter().zip(buttons).map(|(i, b)| (format!("- {i}"), Some(b.span))).collect())
    } else {
        Field::Scalar(line)
    }
}

/// `expect` in YAML; `None` for text unless it was written.
fn expect_yaml(e: &Expect, written: bool) -> Option<String> {
    Some(match e {
        Expect::Text if written => "text".into(),
        Expect::Text => return None,
        Expect::Number => "number".into(),
        Expect::Integer => "integer".into(),
        Expect::Boolean => "boolean".into(),
        Expect::Email => "email".into(),
        Expect::Choice(c, _) => {
            format!("{{ choice: [{}] }}", c.iter().map(|s| quote(&s.value)).collect::<Vec<_>>().join(", "))
        }
        Expect::Regex(r) => format!("{{ regex: {} }}", quote(&r.value)),
    })
}

/// The YAML fields of a node in canonical order (kind first, `next` last), each with the
/// source position of what it prints.
fn node_fields(n: &Node) -> Vec<(&'static str, Field, Option<Span>)> {
    let mut f: Vec<(&'static str, Field, Option<Span>)> = Vec::new();
    let mut push = |k: &'static str, v: Option<Field>, at: Option<Span>| {
        if let Some(v) = v {
            f.push((k, v, at));
        }
    };
    let id = |i: &Option<Ident>| i.as_ref().map(|i| Field::Scalar(i.name.to_string()));
    let at = |i: &Option<Ident>| i.as_ref().map(|i| i.span);
    let kind = Some(n.span);
    match &n.kind {
        K::Say { text, buttons, image, next } => {
            push("say", Some(Field::Scalar(tq(text))), kind);
            push("buttons", (!buttons.is_empty()).then(|| yaml_buttons(buttons)), buttons.first().map(|b| b.span));
            push("image", image.as_ref().map(|i| Field::Scalar(tq(i))), image.as_ref().map(|i| i.span));
            push("next", id(next), at(next));
        }
        K::Ask {
            prompt,
            into,
            expect,
            expect_at,
            buttons,
            retries,
            reprompt,
            on_invalid,
            timeout,
            on_timeout,
            next,
        } => {
            push("ask", Some(Field::Scalar(tq(prompt))), kind);
            push("into", id(into), at(into));
            push("expect", expect_yaml(expect, expect_at.is_some()).map(Field::Scalar), *expect_at);
            push("buttons", (!buttons.is_empty()).then(|| yaml_buttons(buttons)), buttons.first().map(|b| b.span));
            push("retries", retries.map(|r| Field::Scalar(r.0.to_string())), retries.map(|r| r.1));
            push("reprompt", reprompt.as_ref().map(|r| Field::Scalar(tq(r))), reprompt.as_ref().map(|r| r.span));
            push("on_invalid", id(on_invalid), at(on_invalid));
            push(
                "timeout",
                timeout.map(|t| Field::Scalar(crate::ast::format_duration(t.seconds))),
                timeout.map(|t| t.span),
            );
            push("on_timeout", id(on_timeout), at(on_timeout));
            push("next", id(next), at(next));
        }
        K::Branch { arms, otherwise } => {
            let mut lines = Vec::new();
            for a in arms {
                lines.push((format!("- when: {}", yaml_expr(&a.when)), Some(a.when.span)));
                if let Some(g) = &a.goto {
                    lines.push((format!("  goto: {}", g.name), Some(g.span)));
                }
            }
            push("branch", Some(Field::Lines(lines)), kind);
            push("else", id(otherwise), at(otherwise));
        }
        K::Set { assigns, next } => {
            let lines = assigns.iter().map(|a| (format!("{}: {}", a.var.name, yaml_expr(&a.value)), Some(a.var.span)));
            push("set", Some(Field::Lines(lines.collect())), kind);
            push("next", id(next), at(next));
        }
        K::Call { flow, args, into, next } => {
            push("call", Some(Field::Scalar(flow.name.to_string())), kind);
            if !args.is_empty() {
                let lines = args.iter().map(|a| (format!("{}: {}", a.var.name, yaml_expr(&a.value)), Some(a.var.span)));
                push("with", Some(Field::Lines(lines.collect())), None);
            }
            push("into", id(into), at(into));
            push("next", id(next), at(next));
        }
        K::Return { value } => {
            push("return", Some(value.as_ref().map_or(Field::Null, |v| Field::Scalar(yaml_expr(v)))), kind)
        }
        K::Http { url, method, headers, body, into, on_error, next } => {
            push("http", Some(Field::Scalar(tq(url))), kind);
            push("method", (*method != crate::ast::Method::Get).then(|| Field::Scalar(method.name().into())), None);
            if !headers.is_empty() {
                let lines = headers
                    .iter()
                    .map(|h| (format!("{}: {}", yaml_word(&h.name.value), tq(&h.value)), Some(h.name.span)));
                push("headers", Some(Field::Lines(lines.collect())), None);
            }
            push("body", body.as_ref().map(|b| Field::Scalar(yaml_tq(b))), body.as_ref().map(|b| b.span));
            push("into", id(into), at(into));
            push("on_error", id(on_error), at(on_error));
            push("next", id(next), at(next));
        }
        K::Handoff { queue, reason, next } => {
            push("handoff", Some(Field::Scalar(yaml_word(&queue.value))), kind);
            push("reason", reason.as_ref().map(|r| Field::Scalar(tq(r))), reason.as_ref().map(|r| r.span));
            push("next", id(next), at(next));
        }
        K::Wait { duration, next } => {
            push("wait", Some(Field::Scalar(crate::ast::format_duration(duration.seconds))), kind);
            push("next", id(next), at(next));
        }
        K::Goto { target } => push("goto", Some(Field::Scalar(target.name.to_string())), kind),
        K::End => push("end", Some(Field::Scalar("true".into())), kind),
    }
    f
}

/// A file in canonical DSL form, with `comments` (from [`crate::front::comments`] on the
/// file's source) kept.
pub fn dsl(file: &File, comments: &[Comment]) -> String {
    let mut out = Out::default();
    out.item(0, format!("flow {}", file.flow.name.name), Some(file.flow.name.span));
    if let Some(d) = &file.description {
        out.item(0, format!("description {}", quote(&d.value)), Some(d.span));
    }
    if let Some(first) = file.channels.first() {
        let names: Vec<&str> = file.channels.iter().map(|c| c.name.as_str()).collect();
        out.item(0, format!("channels {}", names.join(", ")), Some(first.span));
    }
    for i in &file.imports {
        out.item(0, format!("import {}", quote(&i.value)), Some(i.span));
    }
    dsl_flow_body(&mut out, &file.flow, 0, comments);
    for s in &file.subflows {
        out.blank();
        out.item(0, format!("subflow {} {{", s.name.name), Some(s.name.span));
        for p in &s.params {
            out.item(2, format!("param {}", dsl_decl(p)), Some(p.name.span));
        }
        if let Some(r) = &s.returns {
            out.item(2, format!("returns {}", r.ty.name()), Some(r.span));
        }
        dsl_flow_body(&mut out, s, 2, comments);
        out.close(0, "}");
    }
    out.finish(comments)
}

fn dsl_decl(d: &VarDecl) -> String {
    match &d.default {
        None => format!("{}: {}", d.name.name, d.ty.ty.name()),
        Some(v) => format!("{}: {} = {}", d.name.name, d.ty.ty.name(), expr(v)),
    }
}

fn dsl_flow_body(out: &mut Out, f: &Flow, ind: usize, comments: &[Comment]) {
    if let Some(s) = &f.start {
        out.item(ind, format!("start {}", s.name), Some(s.span));
    }
    if !f.vars.is_empty() {
        out.blank();
        for v in &f.vars {
            out.item(ind, format!("var {}", dsl_decl(v)), Some(v.name.span));
        }
    }
    let mut after_one_liner = false;
    for n in &f.nodes {
        let lines = dsl_node_lines(n);
        let one_liner = one_line(n, &lines, ind, comments);
        if !(after_one_liner && one_liner.is_some()) {
            out.blank();
        }
        after_one_liner = one_liner.is_some();
        if let Some(line) = one_liner {
            out.item(ind, line, Some(n.id.span));
            continue;
        }
        out.item(ind, format!("node {} {{", n.id.name), Some(n.id.span));
        for (line, at) in lines {
            out.item(ind + 2, line, at);
        }
        out.close(ind, "}");
    }
}

/// A plumbing node (`end`, `return`, `goto`, a `wait` and its `next`)
/// prints on one line, `node done { end }`, when it fits and no comment is inside it; runs
/// of them sit together with no blank line between.
fn one_line(n: &Node, lines: &[(String, Option<Span>)], ind: usize, comments: &[Comment]) -> Option<String> {
    // Not `set`: `set x = a + b next y` reads as if `next y` were part of the expression.
    let plumbing = matches!(&n.kind, K::End | K::Return { .. } | K::Goto { .. } | K::Wait { .. });
    let with_next = lines.len() == 2 && lines[1].0.starts_with("next ");
    if !plumbing || !(lines.len() == 1 || with_next) {
        return None;
    }
    let body: Vec<&str> = lines.iter().map(|(l, _)| l.as_str()).collect();
    let line = format!("node {} {{ {} }}", n.id.name, body.join(" "));
    // Inside: after the node's first line, up to the end of its last statement's line.
    let (first, last) = (n.id.span.lo, lines.iter().filter_map(|(_, at)| at.map(|s| s.lo)).max()?);
    let inside = |c: &Comment| {
        let line_start = c.at - c.column;
        line_start > first && (c.at < last || line_start <= last)
    };
    (ind + line.len() <= WRAP_AT && !comments.iter().any(inside)).then_some(line)
}

fn dsl_node_lines(n: &Node) -> Vec<(String, Option<Span>)> {
    let mut l: Vec<(String, Option<Span>)> = Vec::new();
    let target = |l: &mut Vec<(String, Option<Span>)>, k: &str, t: &Option<Ident>| {
        if let Some(t) = t {
            l.push((format!("{k} {}", t.name), Some(t.span)));
        }
    };
    let buttons = |l: &mut Vec<(String, Option<Span>)>, bs: &[Button]| {
        if bs.is_empty() {
            return;
        }
        let items: Vec<String> = bs.iter().map(|b| button_text(b, true)).collect();
        let line = format!("buttons {}", items.join(", "));
        // `  ` (a node's indentation) comes before it.
        if line.len() + 2 <= WRAP_AT {
            l.push((line, Some(bs[0].span)));
            return;
        }
        let last = items.len() - 1;
        for (i, (item, b)) in items.into_iter().zip(bs).enumerate() {
            let comma = if i < last { "," } else { "" };
            let text = if i == 0 { format!("buttons {item}{comma}") } else { format!("        {item}{comma}") };
            l.push((text, Some(b.span)));
        }
    };
    let kind = Some(n.span);
    match &n.kind {
        K::Say { text, buttons: bs, image, next } => {
            l.push((format!("say {}", tq(text)), kind));
            buttons(&mut l, bs);
            if let Some(i) = image {
                l.push((format!("image {}", tq(i)), Some(i.span)));
            }
            target(&mut l, "next", next);
        }
        K::Ask {
            prompt,
            into,
            expect,
            expect_at,
            buttons: bs,
            retries,
            reprompt,
            on_invalid,
            timeout,
            on_timeout,
            next,
        } => {
            l.push((format!("ask {}", tq(prompt)), kind));
            target(&mut l, "into", into);
            let list = |c: &[crate::ast::Str]| c.iter().map(|s| quote(&s.value)).collect::<Vec<_>>().join(", ");
            let e = match expect {
                Expect::Choice(c, _) => Some(format!("expect choice {}", list(c))),
                Expect::Regex(r) => Some(format!("expect regex {}", quote(&r.value))),
                e => expect_yaml(e, expect_at.is_some()).map(|name| format!("expect {name}")),
            };
            if let Some(e) = e {
                l.push((e, *expect_at));
            }
            buttons(&mut l, bs);
            if let Some((r, at)) = retries {
                l.push((format!("retries {r}"), Some(*at)));
            }
            if let Some(r) = reprompt {
                l.push((format!("reprompt {}", tq(r)), Some(r.span)));
            }
            target(&mut l, "on_invalid", on_invalid);
            if let Some(t) = timeout {
                l.push((format!("timeout {}", crate::ast::format_duration(t.seconds)), Some(t.span)));
            }
            target(&mut l, "on_timeout", on_timeout);
            target(&mut l, "next", next);
        }
        K::Branch { arms, otherwise } => {
            l.push(("branch".into(), kind));
            for a in arms {
                let goto = a.goto.as_ref().map_or(String::new(), |g| format!(" goto {}", g.name));
                l.push((format!("when {}{goto}", expr(&a.when)), Some(a.when.span)));
            }
            target(&mut l, "else", otherwise);
        }
        K::Set { assigns, next } => {
            for a in assigns {
                l.push((format!("set {} = {}", a.var.name, expr(&a.value)), Some(a.var.span)));
            }
            target(&mut l, "next", next);
        }
        K::Call { flow, args, into, next } => {
            let call = format!("call {}", flow.name);
            if let Some(first) = args.first() {
                let a: Vec<String> = args.iter().map(|a| format!("{} = {}", a.var.name, expr(&a.value))).collect();
                let with = format!("with {}", a.join(", "));
                // `call f with x = 1` reads as one sentence when it fits on a line.
                if call.len() + with.len() + 3 <= WRAP_AT {
                    l.push((format!("{call} {with}"), kind));
                } else {
                    l.push((call, kind));
                    l.push((with, Some(first.var.span)));
                }
            } else {
                l.push((call, kind));
            }
            target(&mut l, "into", into);
            target(&mut l, "next", next);
        }
        K::Return { value } => {
            l.push((value.as_ref().map_or("return".into(), |v| format!("return {}", expr(v))), kind));
        }
        K::Http { url, method, headers, body, into, on_error, next } => {
            l.push((format!("http {}", tq(url)), kind));
            if *method != crate::ast::Method::Get {
                l.push((format!("method {}", method.name()), None));
            }
            for h in headers {
                l.push((format!("header {} = {}", quote(&h.name.value), tq(&h.value)), Some(h.name.span)));
            }
            if let Some(b) = body {
                l.push((format!("body {}", tq(b)), Some(b.span)));
            }
            target(&mut l, "into", into);
            target(&mut l, "on_error", on_error);
            target(&mut l, "next", next);
        }
        K::Handoff { queue, reason, next } => {
            l.push((format!("handoff {}", quote(&queue.value)), kind));
            if let Some(r) = reason {
                l.push((format!("reason {}", tq(r)), Some(r.span)));
            }
            target(&mut l, "next", next);
        }
        K::Wait { duration, next } => {
            l.push((format!("wait {}", crate::ast::format_duration(duration.seconds)), kind));
            target(&mut l, "next", next);
        }
        K::Goto { target: t } => l.push((format!("goto {}", t.name), kind)),
        K::End => l.push(("end".into(), kind)),
    }
    l
}
