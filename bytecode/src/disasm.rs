//! `botc disasm`: a stable text form of a program, one instruction per line, with constants
//! and names resolved in comments. Snapshot tests compare it, so its format only changes on
//! purpose.

use crate::op::{NONE, Op};
use crate::{BinOp, Builtin, Expect, Func, Program, UnOp};
use std::fmt::Write;

fn quoted(s: &str) -> String {
    format!("{s:?}")
}

fn target(t: u32) -> String {
    if t == NONE { "-".into() } else { format!("{t:04}") }
}

pub fn disassemble(p: &Program) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "program {}", p.name);
    let _ = writeln!(out, "hash {}", p.hash_hex());
    let _ = writeln!(out, "max_stack {}", p.max_stack);
    let _ = writeln!(out, "constants {}", p.consts.len());
    for (fi, f) in p.flows.iter().enumerate() {
        let ret = f.returns.map_or("-", |t| t.name());
        let _ = writeln!(out, "\nflow f{fi} {} params {} returns {ret}", p.text(f.name), f.params);
        for (vi, v) in f.vars.iter().enumerate() {
            let _ = writeln!(out, "  var v{vi} {}: {}", p.text(v.name), v.ty.name());
        }
        let end = p.flows.get(fi + 1).map_or(p.code.len(), |n| n.entry as usize);
        let mut at = f.entry as usize;
        while at < end {
            let Some((op, next)) = Op::decode(&p.code, at) else {
                let _ = writeln!(out, "  {at:04}  <bad instruction>");
                break;
            };
            let note = comment(p, fi, &op);
            let text = op.to_string();
            if note.is_empty() {
                let _ = writeln!(out, "  {at:04}  {text}");
            } else {
                let _ = writeln!(out, "  {at:04}  {text:<28} ; {note}");
            }
            at = next;
        }
    }
    if !p.asks.is_empty() {
        out.push_str("\nasks\n");
        for (i, a) in p.asks.iter().enumerate() {
            let expect = match a.expect {
                Expect::Text => "text".to_string(),
                Expect::Number => "number".into(),
                Expect::Integer => "integer".into(),
                Expect::Boolean => "boolean".into(),
                Expect::Email => "email".into(),
                Expect::Choice => {
                    let c: Vec<String> = a.choices.iter().map(|&c| quoted(p.text(c))).collect();
                    format!("choice [{}]", c.join(", "))
                }
                Expect::Regex { pattern } => format!("regex {}", quoted(p.text(pattern))),
            };
            let _ = writeln!(
                out,
                "  a{i} node n{} var v{} expect {expect} retries {} timeout {}s next {} reprompt {} on_invalid {} on_timeout {}",
                a.node,
                a.var,
                a.retries,
                a.timeout,
                target(a.next),
                target(a.reprompt),
                target(a.on_invalid),
                target(a.on_timeout)
            );
        }
    }
    if !p.https.is_empty() {
        out.push_str("\nhttps\n");
        for (i, h) in p.https.iter().enumerate() {
            let headers: Vec<String> = h.headers.iter().map(|&c| quoted(p.text(c))).collect();
            let var = if h.var == u16::MAX { "-".into() } else { format!("v{}", h.var) };
            let _ = writeln!(
                out,
                "  h{i} node n{} {} headers [{}] body {} var {var} next {} on_error {}",
                h.node,
                h.method.name(),
                headers.join(", "),
                h.body,
                target(h.next),
                target(h.on_error)
            );
        }
    }
    out.push_str("\nnodes\n");
    for (i, n) in p.nodes.iter().enumerate() {
        let _ = writeln!(out, "  n{i} f{} {} @{:04}", n.flow, p.text(n.name), n.offset);
    }
    out
}

fn comment(p: &Program, flow: usize, op: &Op) -> String {
    let var = |v: u16| p.flows[flow].vars.get(v as usize).map_or("?".into(), |v| p.text(v.name).to_string());
    match *op {
        Op::PushText { c } | Op::Field { c } => quoted(p.text(c)),
        Op::Load { v } | Op::Store { v } => var(v),
        Op::Builtin { b } => Builtin::from_code(b).map_or("?", Builtin::name).into(),
        Op::Unary { op } => UnOp::from_code(op).map_or("?", UnOp::name).into(),
        Op::Binary { op } => BinOp::from_code(op).map_or("?", BinOp::name).into(),
        Op::Call { f, .. } => Func::from_code(f).map_or("?", Func::name).into(),
        Op::Node { n } => p.nodes.get(n as usize).map_or("?".into(), |n| p.text(n.name).to_string()),
        Op::Handoff { q, .. } => quoted(p.text(q)),
        Op::CallFlow { f } => p.flows.get(f as usize).map_or("?".into(), |f| p.text(f.name).to_string()),
        _ => String::new(),
    }
}
