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

/// A file in canonical YAML form.
pub fn yaml(file: &crate::ast::File) -> String {
    let mut out = String::new();
    let f = &file.flow;
    out += &format!("flow: {}\n", f.name.name);
    if let Some(d) = &file.description {
        out += &format!("description: {}\n", quote(&d.value));
    }
    if !file.channels.is_empty() {
        let names: Vec<&str> = file.channels.iter().map(|c| c.name.as_str()).collect();
        out += &format!("channels: [{}]\n", names.join(", "));
    }
    if !file.imports.is_empty() {
        let paths: Vec<String> = file.imports.iter().map(|i| quote(&i.value)).collect();
        out += &format!("imports: [{}]\n", paths.join(", "));
    }
    yaml_flow_body(&mut out, f, "");
    if !file.subflows.is_empty() {
        out += "subflows:\n";
        for s in &file.subflows {
            out += &format!("  {}:\n", s.name.name);
            if !s.params.is_empty() {
                out += "    params:\n";
                yaml_decls(&mut out, &s.params, "      ");
            }
            if let Some(r) = &s.returns {
                out += &format!("    returns: {}\n", r.ty.name());
            }
            yaml_flow_body(&mut out, s, "    ");
        }
    }
    out
}

fn yaml_decls(out: &mut String, decls: &[crate::ast::VarDecl], indent: &str) {
    for d in decls {
        match &d.default {
            None => *out += &format!("{indent}{}: {}\n", d.name.name, d.ty.ty.name()),
            Some(v) => {
                *out +=
                    &format!("{indent}{}: {{ type: {}, default: {} }}\n", d.name.name, d.ty.ty.name(), yaml_literal(v))
            }
        }
    }
}

fn yaml_literal(e: &Expr) -> String {
    match &e.kind {
        ExprKind::Text(s) => quote(s),
        ExprKind::List(items) => format!("[{}]", items.iter().map(yaml_literal).collect::<Vec<_>>().join(", ")),
        _ => expr(e),
    }
}

/// An expression as a YAML scalar: plain when that reads back the same, else single-quoted.
fn yaml_expr(e: &Expr) -> String {
    let s = expr(e);
    let plain = !s.is_empty()
        && s.chars().next().is_some_and(|c| c.is_ascii_alphanumeric() || c == '_' || c == '(')
        && !s.contains(": ")
        && !s.contains(" #")
        && !s.chars().any(|c| "\"'{}[]&*!|>%@`,".contains(c));
    if plain { s } else { format!("'{}'", s.replace('\'', "''")) }
}

fn yaml_flow_body(out: &mut String, f: &crate::ast::Flow, ind: &str) {
    if !f.vars.is_empty() {
        *out += &format!("{ind}vars:\n");
        yaml_decls(out, &f.vars, &format!("{ind}  "));
    }
    if let Some(s) = &f.start {
        *out += &format!("{ind}start: {}\n", s.name);
    }
    *out += &format!("{ind}nodes:\n");
    for n in &f.nodes {
        *out += &format!("{ind}  {}:\n", n.id.name);
        let i = format!("{ind}    ");
        for (k, v) in node_fields(n) {
            match v {
                Field::Scalar(s) => *out += &format!("{i}{k}: {s}\n"),
                Field::Null => *out += &format!("{i}{k}:\n"),
                Field::Lines(lines) => {
                    *out += &format!("{i}{k}:\n");
                    for l in lines {
                        *out += &format!("{i}  {l}\n");
                    }
                }
            }
        }
    }
}

enum Field {
    Scalar(String),
    Null,
    Lines(Vec<String>),
}

fn tq(t: &Template) -> String {
    quote(&template(t))
}

/// A button list longer than this on one line is written one button per line.
const WRAP_AT: usize = 100;

fn yaml_buttons(buttons: &[crate::ast::Button]) -> Field {
    use crate::ast::ButtonAction;
    let items: Vec<String> = buttons
        .iter()
        .map(|b| {
            let label = template(&b.label);
            match &b.action {
                ButtonAction::Value(v) if v.value == label => quote(&label),
                ButtonAction::Value(v) => format!("{{ label: {}, value: {} }}", quote(&label), quote(&v.value)),
                ButtonAction::Url(u) => format!("{{ label: {}, url: {} }}", quote(&label), tq(u)),
            }
        })
        .collect();
    let line = format!("[{}]", items.join(", "));
    // `    buttons: ` comes before it.
    if line.len() + 13 > WRAP_AT {
        Field::Lines(items.into_iter().map(|i| format!("- {i}")).collect())
    } else {
        Field::Scalar(line)
    }
}

fn expect_yaml(e: &crate::ast::Expect) -> Option<String> {
    use crate::ast::Expect::*;
    Some(match e {
        Text => return None,
        Number => "number".into(),
        Integer => "integer".into(),
        Boolean => "boolean".into(),
        Email => "email".into(),
        Choice(c, _) => format!("{{ choice: [{}] }}", c.iter().map(|s| quote(&s.value)).collect::<Vec<_>>().join(", ")),
        Regex(r) => format!("{{ regex: {} }}", quote(&r.value)),
    })
}

/// The YAML fields of a node in canonical order (kind first, `next` last).
fn node_fields(n: &crate::ast::Node) -> Vec<(&'static str, Field)> {
    use crate::ast::NodeKind as K;
    let mut f: Vec<(&'static str, Field)> = Vec::new();
    let id = |i: &Option<crate::ast::Ident>| i.as_ref().map(|i| Field::Scalar(i.name.to_string()));
    let mut push = |k: &'static str, v: Option<Field>| {
        if let Some(v) = v {
            f.push((k, v));
        }
    };
    match &n.kind {
        K::Say { text, buttons, image, next } => {
            push("say", Some(Field::Scalar(tq(text))));
            push("buttons", (!buttons.is_empty()).then(|| yaml_buttons(buttons)));
            push("image", image.as_ref().map(|i| Field::Scalar(tq(i))));
            push("next", id(next));
        }
        K::Ask { prompt, into, expect, buttons, retries, reprompt, on_invalid, timeout, on_timeout, next } => {
            push("ask", Some(Field::Scalar(tq(prompt))));
            push("into", id(into));
            push("expect", expect_yaml(expect).map(Field::Scalar));
            push("buttons", (!buttons.is_empty()).then(|| yaml_buttons(buttons)));
            push("retries", retries.map(|r| Field::Scalar(r.0.to_string())));
            push("reprompt", reprompt.as_ref().map(|r| Field::Scalar(tq(r))));
            push("on_invalid", id(on_invalid));
            push("timeout", timeout.map(|t| Field::Scalar(crate::ast::format_duration(t.seconds))));
            push("on_timeout", id(on_timeout));
            push("next", id(next));
        }
        K::Branch { arms, otherwise } => {
            let mut lines = Vec::new();
            for a in arms {
                lines.push(format!("- when: {}", yaml_expr(&a.when)));
                if let Some(g) = &a.goto {
                    lines.push(format!("  goto: {}", g.name));
                }
            }
            push("branch", Some(Field::Lines(lines)));
            push("else", id(otherwise));
        }
        K::Set { assigns, next } => {
            let lines = assigns.iter().map(|a| format!("{}: {}", a.var.name, yaml_expr(&a.value))).collect();
            push("set", Some(Field::Lines(lines)));
            push("next", id(next));
        }
        K::Call { flow, args, into, next } => {
            push("call", Some(Field::Scalar(flow.name.to_string())));
            if !args.is_empty() {
                let lines = args.iter().map(|a| format!("{}: {}", a.var.name, yaml_expr(&a.value))).collect();
                push("with", Some(Field::Lines(lines)));
            }
            push("into", id(into));
            push("next", id(next));
        }
        K::Return { value } => {
            push("return", Some(value.as_ref().map_or(Field::Null, |v| Field::Scalar(yaml_expr(v)))))
        }
        K::Http { url, method, headers, body, into, on_error, next } => {
            push("http", Some(Field::Scalar(tq(url))));
            push("method", (*method != crate::ast::Method::Get).then(|| Field::Scalar(method.name().into())));
            if !headers.is_empty() {
                let lines = headers.iter().map(|h| format!("{}: {}", quote(&h.name.value), tq(&h.value))).collect();
                push("headers", Some(Field::Lines(lines)));
            }
            push("body", body.as_ref().map(|b| Field::Scalar(tq(b))));
            push("into", id(into));
            push("on_error", id(on_error));
            push("next", id(next));
        }
        K::Handoff { queue, reason, next } => {
            push("handoff", Some(Field::Scalar(quote(&queue.value))));
            push("reason", reason.as_ref().map(|r| Field::Scalar(tq(r))));
            push("next", id(next));
        }
        K::Wait { duration, next } => {
            push("wait", Some(Field::Scalar(crate::ast::format_duration(duration.seconds))));
            push("next", id(next));
        }
        K::Goto { target } => push("goto", Some(Field::Scalar(target.name.to_string()))),
        K::End => push("end", Some(Field::Null)),
    }
    f
}

/// A file in canonical DSL form.
pub fn dsl(file: &crate::ast::File) -> String {
    let mut out = String::new();
    out += &format!("flow {}\n", file.flow.name.name);
    if let Some(d) = &file.description {
        out += &format!("description {}\n", quote(&d.value));
    }
    if !file.channels.is_empty() {
        let names: Vec<&str> = file.channels.iter().map(|c| c.name.as_str()).collect();
        out += &format!("channels {}\n", names.join(", "));
    }
    for i in &file.imports {
        out += &format!("import {}\n", quote(&i.value));
    }
    dsl_flow_body(&mut out, &file.flow, "");
    for s in &file.subflows {
        out += &format!("\nsubflow {} {{\n", s.name.name);
        for p in &s.params {
            out += &format!("  param {}\n", dsl_decl(p));
        }
        if let Some(r) = &s.returns {
            out += &format!("  returns {}\n", r.ty.name());
        }
        dsl_flow_body(&mut out, s, "  ");
        out += "}\n";
    }
    out
}

fn dsl_decl(d: &crate::ast::VarDecl) -> String {
    match &d.default {
        None => format!("{}: {}", d.name.name, d.ty.ty.name()),
        Some(v) => format!("{}: {} = {}", d.name.name, d.ty.ty.name(), expr(v)),
    }
}

fn dsl_flow_body(out: &mut String, f: &crate::ast::Flow, ind: &str) {
    if let Some(s) = &f.start {
        *out += &format!("{ind}start {}\n", s.name);
    }
    if !f.vars.is_empty() {
        out.push('\n');
        for v in &f.vars {
            *out += &format!("{ind}var {}\n", dsl_decl(v));
        }
    }
    for n in &f.nodes {
        *out += &format!("\n{ind}node {} {{\n", n.id.name);
        for line in dsl_node_lines(n) {
            *out += &format!("{ind}  {line}\n");
        }
        *out += &format!("{ind}}}\n");
    }
}

fn dsl_node_lines(n: &crate::ast::Node) -> Vec<String> {
    use crate::ast::{ButtonAction, Expect, NodeKind as K};
    let mut l = Vec::new();
    let target = |l: &mut Vec<String>, k: &str, t: &Option<crate::ast::Ident>| {
        if let Some(t) = t {
            l.push(format!("{k} {}", t.name));
        }
    };
    let buttons = |l: &mut Vec<String>, bs: &[crate::ast::Button]| {
        if bs.is_empty() {
            return;
        }
        let items: Vec<String> = bs
            .iter()
            .map(|b| {
                let label = template(&b.label);
                match &b.action {
                    ButtonAction::Value(v) if v.value == label => quote(&label),
                    ButtonAction::Value(v) => format!("{} = {}", quote(&label), quote(&v.value)),
                    ButtonAction::Url(u) => format!("{} url {}", quote(&label), tq(u)),
                }
            })
            .collect();
        let line = format!("buttons {}", items.join(", "));
        // `  ` (a node's indentation) comes before it.
        if line.len() + 2 <= WRAP_AT {
            l.push(line);
            return;
        }
        let last = items.len() - 1;
        for (i, item) in items.into_iter().enumerate() {
            let comma = if i < last { "," } else { "" };
            l.push(if i == 0 { format!("buttons {item}{comma}") } else { format!("        {item}{comma}") });
        }
    };
    match &n.kind {
        K::Say { text, buttons: bs, image, next } => {
            l.push(format!("say {}", tq(text)));
            buttons(&mut l, bs);
            if let Some(i) = image {
                l.push(format!("image {}", tq(i)));
            }
            target(&mut l, "next", next);
        }
        K::Ask { prompt, into, expect, buttons: bs, retries, reprompt, on_invalid, timeout, on_timeout, next } => {
            l.push(format!("ask {}", tq(prompt)));
            target(&mut l, "into", into);
            match expect {
                Expect::Text => {}
                Expect::Choice(c, _) => l.push(format!(
                    "expect choice {}",
                    c.iter().map(|s| quote(&s.value)).collect::<Vec<_>>().join(", ")
                )),
                Expect::Regex(r) => l.push(format!("expect regex {}", quote(&r.value))),
                Expect::Number => l.push("expect number".into()),
                Expect::Integer => l.push("expect integer".into()),
                Expect::Boolean => l.push("expect boolean".into()),
                Expect::Email => l.push("expect email".into()),
            }
            buttons(&mut l, bs);
            if let Some((r, _)) = retries {
                l.push(format!("retries {r}"));
            }
            if let Some(r) = reprompt {
                l.push(format!("reprompt {}", tq(r)));
            }
            target(&mut l, "on_invalid", on_invalid);
            if let Some(t) = timeout {
                l.push(format!("timeout {}", crate::ast::format_duration(t.seconds)));
            }
            target(&mut l, "on_timeout", on_timeout);
            target(&mut l, "next", next);
        }
        K::Branch { arms, otherwise } => {
            l.push("branch".into());
            for a in arms {
                let goto = a.goto.as_ref().map_or(String::new(), |g| format!(" goto {}", g.name));
                l.push(format!("when {}{goto}", expr(&a.when)));
            }
            target(&mut l, "else", otherwise);
        }
        K::Set { assigns, next } => {
            for a in assigns {
                l.push(format!("set {} = {}", a.var.name, expr(&a.value)));
            }
            target(&mut l, "next", next);
        }
        K::Call { flow, args, into, next } => {
            l.push(format!("call {}", flow.name));
            if !args.is_empty() {
                let a: Vec<String> = args.iter().map(|a| format!("{} = {}", a.var.name, expr(&a.value))).collect();
                l.push(format!("with {}", a.join(", ")));
            }
            target(&mut l, "into", into);
            target(&mut l, "next", next);
        }
        K::Return { value } => l.push(value.as_ref().map_or("return".into(), |v| format!("return {}", expr(v)))),
        K::Http { url, method, headers, body, into, on_error, next } => {
            l.push(format!("http {}", tq(url)));
            if *method != crate::ast::Method::Get {
                l.push(format!("method {}", method.name()));
            }
            for h in headers {
                l.push(format!("header {} = {}", quote(&h.name.value), tq(&h.value)));
            }
            if let Some(b) = body {
                l.push(format!("body {}", tq(b)));
            }
            target(&mut l, "into", into);
            target(&mut l, "on_error", on_error);
            target(&mut l, "next", next);
        }
        K::Handoff { queue, reason, next } => {
            l.push(format!("handoff {}", quote(&queue.value)));
            if let Some(r) = reason {
                l.push(format!("reason {}", tq(r)));
            }
            target(&mut l, "next", next);
        }
        K::Wait { duration, next } => {
            l.push(format!("wait {}", crate::ast::format_duration(duration.seconds)));
            target(&mut l, "next", next);
        }
        K::Goto { target: t } => l.push(format!("goto {}", t.name)),
        K::End => l.push("end".into()),
    }
    l
}
