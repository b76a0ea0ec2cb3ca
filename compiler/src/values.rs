//! The values a text variable can hold at each node, by a forward data-flow analysis over a
//! flow's graph: a `choice` ask stores one of its choices, `set` a literal stores that text,
//! and a branch case `x == "a"` leaves `x` as `"a"` on its way and without `"a"` on the later
//! cases' and `else`'s. Every other assignment (a free answer, a computed value, a call's or
//! an http result) makes the variable unknown. The analysis over-approximates, so what it
//! rules out cannot happen.
//!
//! W0303: a branch case comparing a variable with a text it can never hold there (`size ==
//! "medum"` after a choice of `small` and `large`, or a case an earlier one already took).

use crate::ast::Expect;
use crate::diagnostic::Diagnostic;
use crate::expr::BinOp;
use crate::ir::*;
use petgraph::visit::EdgeRef;
use std::collections::BTreeSet;

/// What a variable holds: any value, or one of some texts (none: not assigned yet).
#[derive(Clone, Debug, PartialEq, Eq)]
enum Held {
    Any,
    OneOf(BTreeSet<String>),
}

impl Held {
    fn join(&mut self, other: &Held) -> bool {
        match (&mut *self, other) {
            (Held::Any, _) => false,
            (me, Held::Any) => {
                *me = Held::Any;
                true
            }
            (Held::OneOf(a), Held::OneOf(b)) => {
                let before = a.len();
                a.extend(b.iter().cloned());
                a.len() != before
            }
        }
    }
}

/// `x == "text"` or `"text" == x`: the variable and the text.
fn compares(cond: &Expr) -> Option<(VarId, &str)> {
    let ExprKind::Binary(BinOp::Eq, a, b) = &cond.kind else { return None };
    match (&a.kind, &b.kind) {
        (ExprKind::Var(v), ExprKind::Text(t)) | (ExprKind::Text(t), ExprKind::Var(v)) => Some((*v, t)),
        _ => None,
    }
}

/// What each variable holds on leaving `node` through `edge`, from what it held on entry.
fn leave(node: &Node, edge: Edge, mut held: Vec<Held>) -> Vec<Held> {
    let mut put = |v: Option<VarId>, h: Held| {
        if let Some(v) = v {
            held[v.0 as usize] = h;
        }
    };
    match (&node.kind, edge) {
        (NodeKind::Ask { into, expect: Expect::Choice(choices, _), .. }, Edge::Next) => {
            put(*into, Held::OneOf(choices.iter().map(|c| c.value.clone()).collect()))
        }
        (NodeKind::Ask { into, .. } | NodeKind::Call { into, .. } | NodeKind::Http { into, .. }, Edge::Next) => {
            put(*into, Held::Any)
        }
        (NodeKind::Set { assigns }, _) => {
            for (v, value) in assigns {
                let h = match &value.kind {
                    ExprKind::Text(t) => Held::OneOf(BTreeSet::from([t.clone()])),
                    ExprKind::Var(w) => held[w.0 as usize].clone(),
                    _ => Held::Any,
                };
                held[v.0 as usize] = h;
            }
        }
        (NodeKind::Branch { conds }, Edge::Case(i)) => {
            for (j, cond) in conds.iter().enumerate().take(i as usize + 1) {
                if let Some((v, text)) = compares(cond)
                    && let Held::OneOf(set) = &mut held[v.0 as usize]
                {
                    if j == i as usize {
                        set.retain(|t| t == text);
                    } else {
                        set.remove(text);
                    }
                }
            }
        }
        (NodeKind::Branch { conds }, Edge::Else) => {
            for (v, text) in conds.iter().filter_map(compares) {
                if let Held::OneOf(set) = &mut held[v.0 as usize] {
                    set.remove(text);
                }
            }
        }
        _ => {}
    }
    held
}

/// W0303 over one flow (a branch no path reaches has no entry, so it is not judged).
pub fn impossible_cases(flow: &Flow, diags: &mut Vec<Diagnostic>) {
    let Some(start) = flow.start else { return };
    let n = flow.graph.node_count();
    let entry: Vec<Held> = flow
        .vars
        .iter()
        .enumerate()
        .map(|(i, v)| match v.default.as_ref().map(|d| &d.kind) {
            _ if i < flow.params => Held::Any,
            Some(ExprKind::Text(t)) => Held::OneOf(BTreeSet::from([t.clone()])),
            Some(_) => Held::Any,
            None => Held::OneOf(BTreeSet::new()),
        })
        .collect();
    // `ins[n]`: what each variable may hold on entering node n (`None`: not reached yet).
    let mut ins: Vec<Option<Vec<Held>>> = vec![None; n];
    ins[start.0 as usize] = Some(entry);
    let mut work = vec![start.index()];
    while let Some(u) = work.pop() {
        let Some(held) = ins[u.index()].clone() else { continue };
        for e in flow.graph.edges(u) {
            let out = leave(&flow.graph[u], *e.weight(), held.clone());
            let t = e.target().index();
            let changed = match &mut ins[t] {
                None => {
                    ins[t] = Some(out);
                    true
                }
                Some(have) => have.iter_mut().zip(&out).fold(false, |c, (h, o)| h.join(o) | c),
            };
            if changed {
                work.push(e.target());
            }
        }
    }
    for id in flow.graph.node_indices() {
        let (NodeKind::Branch { conds }, Some(held)) = (&flow.graph[id].kind, &ins[id.index()]) else { continue };
        let entry = held;
        let mut held = held.clone();
        for cond in conds {
            let Some((v, text)) = compares(cond) else { continue };
            // An empty set on entry is a variable not assigned yet (E0302's business).
            let (Held::OneOf(set), Held::OneOf(at_entry)) = (&mut held[v.0 as usize], &entry[v.0 as usize]) else {
                continue;
            };
            if !set.contains(text) && !at_entry.is_empty() {
                let name = &flow.vars[v.0 as usize].name;
                let label = if set.is_empty() {
                    format!("this case never holds: the cases before it took every value `{name}` can have here")
                } else {
                    let can: Vec<String> = set.iter().map(|t| format!("\"{t}\"")).collect();
                    format!("this case never holds: here `{name}` is {}", one_of(&can))
                };
                diags.push(
                    Diagnostic::warning("W0303", cond.span, format!("`{name}` is never \"{text}\" here"))
                        .label(label)
                        .help("compare with a value it can hold (the choices of the ask that sets it, as written), or remove the case"),
                );
            }
            set.remove(text);
        }
    }
}

fn one_of(texts: &[String]) -> String {
    match texts {
        [one] => one.clone(),
        _ => format!("one of {}", texts.join(", ")),
    }
}
