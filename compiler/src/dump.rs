//! Text and graph renderings of the IR: `botc graph --format dot|mermaid`, and the stable
//! text dump the tests compare between the YAML and DSL forms.

use crate::ir::*;
use crate::print;
use std::fmt::Write;

fn expr(flow: &Flow, e: &Expr) -> String {
    match &e.kind {
        ExprKind::Var(v) => flow.var(*v).name.clone(),
        ExprKind::Builtin(b) => b.path(),
        ExprKind::Text(s) => print::quote(s),
        ExprKind::Integer(i) => i.to_string(),
        ExprKind::Number(n) => format!("{n:?}"),
        ExprKind::Bool(b) => b.to_string(),
        ExprKind::List(items) => format!("[{}]", items.iter().map(|i| expr(flow, i)).collect::<Vec<_>>().join(", ")),
        ExprKind::Field(b, f) => format!("{}.{f}", expr(flow, b)),
        ExprKind::Unary(op, a) => match op {
            crate::expr::UnOp::Not => format!("(not {})", expr(flow, a)),
            crate::expr::UnOp::Neg => format!("(-{})", expr(flow, a)),
        },
        ExprKind::Binary(op, a, b) => format!("({} {} {})", expr(flow, a), op.symbol(), expr(flow, b)),
        ExprKind::Call(f, args) => {
            format!("{}({})", f.name(), args.iter().map(|a| expr(flow, a)).collect::<Vec<_>>().join(", "))
        }
        ExprKind::Error(_) => "<error>".into(),
    }
}

fn template(flow: &Flow, t: &Template) -> String {
    let mut out = String::new();
    for p in &t.parts {
        match p {
            TemplatePart::Lit(s) => out.push_str(s),
            TemplatePart::Expr(e) => {
                let _ = write!(out, "{{{{ {} }}}}", expr(flow, e));
            }
        }
    }
    print::quote(&out)
}

/// One line per node: its kind and operands, then its exits. Spans are left out, so the
/// YAML and DSL forms of a flow dump identically.
pub fn ir(program: &Program) -> String {
    let mut out = String::new();
    if !program.channels.is_empty() {
        let names: Vec<&str> = program.channels.iter().map(|(c, _)| c.name()).collect();
        let _ = writeln!(out, "channels {}", names.join(", "));
    }
    for (fi, flow) in program.flows.iter().enumerate() {
        let _ = writeln!(out, "flow f{fi} {}", flow.name);
        for (i, v) in flow.vars.iter().enumerate() {
            let role = if i < flow.params { "param" } else { "var" };
            let default = v.default.as_ref().map(|d| format!(" = {}", expr(flow, d))).unwrap_or_default();
            let _ = writeln!(out, "  {role} v{i} {}: {}{default}", v.name, v.ty.name());
        }
        if let Some(r) = flow.returns {
            let _ = writeln!(out, "  returns {}", r.name());
        }
        if let Some(s) = flow.start {
            let _ = writeln!(out, "  start {s}");
        }
        for id in flow.node_ids() {
            let node = flow.node(id);
            let _ = writeln!(out, "  {id} {}: {}", node.name, describe(program, flow, &node.kind));
            for (edge, target) in flow.exits(id) {
                let _ = writeln!(out, "    {} -> {target}", edge.label());
            }
        }
    }
    out
}

fn describe(program: &Program, flow: &Flow, kind: &NodeKind) -> String {
    let buttons = |bs: &[Button]| -> String {
        bs.iter()
            .map(|b| match (&b.value, &b.url) {
                (Some(v), _) => format!(" button({} = {})", template(flow, &b.label), print::quote(v)),
                (None, Some(u)) => format!(" link({} = {})", template(flow, &b.label), template(flow, u)),
                _ => String::new(),
            })
            .collect()
    };
    match kind {
        NodeKind::Say { text, buttons: bs, image } => format!(
            "say {}{}{}",
            template(flow, text),
            buttons(bs),
            image.as_ref().map(|i| format!(" image {}", template(flow, i))).unwrap_or_default()
        ),
        NodeKind::Ask { prompt, into, expect, buttons: bs, retries, reprompt, timeout } => format!(
            "ask {} into {} expect {} retries {retries}{}{}{}",
            template(flow, prompt),
            into.map_or("?".into(), |v| flow.var(v).name.clone()),
            expect_text(expect),
            reprompt.as_ref().map(|r| format!(" reprompt {}", template(flow, r))).unwrap_or_default(),
            timeout.map(|t| format!(" timeout {t}s")).unwrap_or_default(),
            buttons(bs),
        ),
        NodeKind::Branch { conds } => {
            format!("branch {}", conds.iter().map(|c| expr(flow, c)).collect::<Vec<_>>().join(" | "))
        }
        NodeKind::Set { assigns } => format!(
            "set {}",
            assigns
                .iter()
                .map(|(v, e)| format!("{} = {}", flow.var(*v).name, expr(flow, e)))
                .collect::<Vec<_>>()
                .join("; ")
        ),
        NodeKind::Call { flow: callee, args, into } => format!(
            "call {}({}){}",
            callee.map_or("?".into(), |c| program.flows[c.0 as usize].name.clone()),
            args.iter().map(|a| expr(flow, a)).collect::<Vec<_>>().join(", "),
            into.map(|v| format!(" into {}", flow.var(v).name)).unwrap_or_default()
        ),
        NodeKind::Return { value } => {
            format!("return{}", value.as_ref().map(|v| format!(" {}", expr(flow, v))).unwrap_or_default())
        }
        NodeKind::Http { method, url, headers, body, into } => format!(
            "http {} {}{}{}{}",
            method.name(),
            template(flow, url),
            headers
                .iter()
                .map(|(k, v)| format!(" header {} = {}", print::quote(k), template(flow, v)))
                .collect::<String>(),
            body.as_ref().map(|b| format!(" body {}", template(flow, b))).unwrap_or_default(),
            into.map(|v| format!(" into {}", flow.var(v).name)).unwrap_or_default()
        ),
        NodeKind::Handoff { queue, reason, resumes } => format!(
            "handoff {}{}{}",
            print::quote(queue),
            reason.as_ref().map(|r| format!(" reason {}", template(flow, r))).unwrap_or_default(),
            if *resumes { " resumes" } else { "" }
        ),
        NodeKind::Wait { seconds } => format!("wait {seconds}s"),
        NodeKind::Goto => "goto".into(),
        NodeKind::End => "end".into(),
    }
}

fn expect_text(e: &crate::ast::Expect) -> String {
    use crate::ast::Expect::*;
    match e {
        Text => "text".into(),
        Number => "number".into(),
        Integer => "integer".into(),
        Boolean => "boolean".into(),
        Email => "email".into(),
        Choice(c, _) => format!("choice[{}]", c.iter().map(|s| s.value.as_str()).collect::<Vec<_>>().join(", ")),
        Regex(r) => format!("regex({})", r.value),
    }
}

fn short(program: &Program, flow: &Flow, kind: &NodeKind) -> String {
    match kind {
        NodeKind::Say { text, .. } => format!("say: {}", template(flow, text)),
        NodeKind::Ask { prompt, .. } => format!("ask: {}", template(flow, prompt)),
        NodeKind::Wait { seconds } => format!("wait {}", crate::ast::format_duration(*seconds)),
        other => {
            let d = describe(program, flow, other);
            d.split_whitespace().next().unwrap_or("").to_string()
        }
    }
}

/// A node's label in a drawing: its id, and on a second line what it does (clipped).
pub fn node_label(program: &Program, flow: &Flow, id: NodeId) -> String {
    let node = flow.node(id);
    format!("{}\n{}", node.name, clip(&short(program, flow, &node.kind), 40))
}

fn clip(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        return s.to_string();
    }
    let mut out: String = s.chars().take(n).collect();
    out.push('…');
    out
}

/// Graphviz: one cluster per flow, nodes labelled with their id and a short description.
pub fn dot(program: &Program) -> String {
    let mut out =
        String::from("digraph botc {\n  rankdir=TB;\n  node [shape=box, style=rounded, fontname=\"Helvetica\"];\n");
    for (fi, flow) in program.flows.iter().enumerate() {
        let _ = writeln!(out, "  subgraph cluster_{fi} {{\n    label={};", print::quote(&flow.name));
        for id in flow.node_ids() {
            let node = flow.node(id);
            let shape = match node.kind {
                NodeKind::Ask { .. } | NodeKind::Wait { .. } => ", shape=parallelogram",
                NodeKind::Branch { .. } => ", shape=diamond",
                NodeKind::End | NodeKind::Return { .. } => ", shape=doublecircle",
                _ => "",
            };
            let label = node_label(program, flow, id);
            let _ = writeln!(out, "    f{fi}_{id} [label={}{shape}];", print::quote(&label));
        }
        for id in flow.node_ids() {
            for (edge, target) in flow.exits(id) {
                let _ = writeln!(out, "    f{fi}_{id} -> f{fi}_{target} [label={}];", print::quote(&edge.label()));
            }
        }
        out.push_str("  }\n");
    }
    out.push_str("}\n");
    out
}

/// Mermaid flowchart, for Markdown that renders it (GitHub, GitLab).
pub fn mermaid(program: &Program) -> String {
    let esc = |s: &str| s.replace('"', "#quot;").replace('\n', " ");
    let mut out = String::from("flowchart TD\n");
    for (fi, flow) in program.flows.iter().enumerate() {
        let _ = writeln!(out, "  subgraph f{fi}[\"{}\"]", esc(&flow.name));
        for id in flow.node_ids() {
            let node = flow.node(id);
            let label = esc(&format!("{}: {}", node.name, clip(&short(program, flow, &node.kind), 40)));
            let shape = match node.kind {
                NodeKind::Branch { .. } => format!("{{\"{label}\"}}"),
                NodeKind::Ask { .. } | NodeKind::Wait { .. } => format!("[/\"{label}\"/]"),
                NodeKind::End | NodeKind::Return { .. } => format!("((\"{label}\"))"),
                _ => format!("[\"{label}\"]"),
            };
            let _ = writeln!(out, "    f{fi}_{id}{shape}");
        }
        for id in flow.node_ids() {
            for (edge, target) in flow.exits(id) {
                let _ = writeln!(out, "    f{fi}_{id} -->|{}| f{fi}_{target}", esc(&edge.label()));
            }
        }
        out.push_str("  end\n");
    }
    out
}
