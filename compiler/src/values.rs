//! The values a text variable can hold at each node, by a forward data-flow analysis over a
//! flow's graph: a `choice` ask stores one of its choices, `set` a literal stores that text,
//! and a branch case `x == "a"` (or `x in ["a", "b"]`) leaves `x` as `"a"` on its way and
//! without `"a"` on the later cases' and `else`'s. Every other assignment (a free answer, a
//! computed value, a call's or an http result) makes the variable unknown, which the cases
//! then narrow the same way (any text but `"a"`). The analysis over-approximates, so what it
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
use std::rc::Rc;

/// A set of texts, shared until changed: the analysis copies what every variable holds
/// along every edge, and most copies are never changed.
type Texts = Rc<BTreeSet<Rc<str>>>;

/// What a variable holds: any value, any value but some texts, or one of some texts (none:
/// not assigned yet).
#[derive(Clone, Debug, PartialEq, Eq)]
enum Held {
    AnyBut(Texts),
    OneOf(Texts),
}

thread_local! {
    static NONE: Texts = Rc::new(BTreeSet::new());
}

fn any() -> Held {
    Held::AnyBut(NONE.with(Rc::clone))
}

fn texts<'a>(of: impl IntoIterator<Item = &'a str>) -> Texts {
    Rc::new(of.into_iter().map(Rc::from).collect())
}

impl Held {
    /// Whatever either may hold; true if that is more than `self` held.
    fn join(&mut self, other: &Held) -> bool {
        if self == other {
            return false;
        }
        let joined = match (&*self, other) {
            (Held::AnyBut(a), Held::AnyBut(b)) => Held::AnyBut(Rc::new(a.intersection(b).cloned().collect())),
            (Held::AnyBut(a), Held::OneOf(b)) | (Held::OneOf(b), Held::AnyBut(a)) => {
                Held::AnyBut(Rc::new(a.difference(b).cloned().collect()))
            }
            (Held::OneOf(a), Held::OneOf(b)) => Held::OneOf(Rc::new(a.union(b).cloned().collect())),
        };
        let changed = joined != *self;
        *self = joined;
        changed
    }

    fn can_be(&self, text: &str) -> bool {
        match self {
            Held::AnyBut(not) => !not.contains(text),
            Held::OneOf(set) => set.contains(text),
        }
    }

    /// After a case on these texts failed.
    fn without(&mut self, texts: &[&str]) {
        match self {
            Held::AnyBut(not) => Rc::make_mut(not).extend(texts.iter().map(|t| Rc::from(*t))),
            Held::OneOf(set) => {
                if set.iter().any(|t| texts.contains(&&**t)) {
                    Rc::make_mut(set).retain(|t| !texts.contains(&&**t));
                }
            }
        }
    }

    /// After a case on these texts held.
    fn only(&mut self, texts_in: &[&str]) {
        let kept = texts(texts_in.iter().copied().filter(|t| self.can_be(t)));
        *self = Held::OneOf(kept);
    }
}

/// `x == "text"`, `"text" == x` or `x in ["a", "b"]`: the variable and the texts.
fn compares(cond: &Expr) -> Option<(VarId, Vec<&str>)> {
    match &cond.kind {
        ExprKind::Binary(BinOp::Eq, a, b) => match (&a.kind, &b.kind) {
            (ExprKind::Var(v), ExprKind::Text(t)) | (ExprKind::Text(t), ExprKind::Var(v)) => Some((*v, vec![t])),
            _ => None,
        },
        ExprKind::Binary(BinOp::In, a, b) => match (&a.kind, &b.kind) {
            (ExprKind::Var(v), ExprKind::List(items)) => {
                let texts: Option<Vec<&str>> = items
                    .iter()
                    .map(|i| match &i.kind {
                        ExprKind::Text(t) => Some(t.as_str()),
                        _ => None,
                    })
                    .collect();
                Some((*v, texts?))
            }
            _ => None,
        },
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
            put(*into, Held::OneOf(texts(choices.iter().map(|c| c.value.as_str()))))
        }
        (NodeKind::Ask { into, .. } | NodeKind::Call { into, .. } | NodeKind::Http { into, .. }, Edge::Next) => {
            put(*into, any())
        }
        (NodeKind::Set { assigns }, _) => {
            for (v, value) in assigns {
                let h = match &value.kind {
                    ExprKind::Text(t) => Held::OneOf(texts([t.as_str()])),
                    ExprKind::Var(w) => held[w.0 as usize].clone(),
                    _ => any(),
                };
                held[v.0 as usize] = h;
            }
        }
        (NodeKind::Branch { conds }, Edge::Case(i)) => {
            for (j, cond) in conds.iter().enumerate().take(i as usize + 1) {
                if let Some((v, texts)) = compares(cond) {
                    if j == i as usize {
                        held[v.0 as usize].only(&texts);
                    } else {
                        held[v.0 as usize].without(&texts);
                    }
                }
            }
        }
        (NodeKind::Branch { conds }, Edge::Else) => {
            for (v, texts) in conds.iter().filter_map(compares) {
                held[v.0 as usize].without(&texts);
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
            _ if i < flow.params => any(),
            Some(ExprKind::Text(t)) => Held::OneOf(texts([t.as_str()])),
            Some(_) => any(),
            None => Held::OneOf(NONE.with(Rc::clone)),
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
            let Some((v, texts)) = compares(cond) else { continue };
            // An empty set on entry is a variable not assigned yet (E0302's business).
            if matches!(&entry[v.0 as usize], Held::OneOf(set) if set.is_empty()) {
                continue;
            }
            let now = &mut held[v.0 as usize];
            if !texts.iter().any(|t| now.can_be(t)) {
                let name = &flow.vars[v.0 as usize].name;
                let label = match &*now {
                    Held::OneOf(set) if set.is_empty() => {
                        format!("this case never holds: the cases before it took every value `{name}` can have here")
                    }
                    Held::OneOf(set) => {
                        let can: Vec<String> = set.iter().map(|t| format!("\"{t}\"")).collect();
                        format!("this case never holds: here `{name}` is {}", one_of(&can))
                    }
                    Held::AnyBut(_) => {
                        "this case never holds: an earlier case took this value on every way here".to_string()
                    }
                };
                let what = match texts.as_slice() {
                    [one] => format!("\"{one}\""),
                    many => {
                        format!("any of {}", many.iter().map(|t| format!("\"{t}\"")).collect::<Vec<_>>().join(", "))
                    }
                };
                diags.push(
                    Diagnostic::warning("W0303", cond.span, format!("`{name}` is never {what} here"))
                        .label(label)
                        .help("compare with a value it can hold (the choices of the ask that sets it, as written), or remove the case"),
                );
            }
            now.without(&texts);
        }
    }
}

fn one_of(texts: &[String]) -> String {
    match texts {
        [one] => one.clone(),
        _ => format!("one of {}", texts.join(", ")),
    }
}
