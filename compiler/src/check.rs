//! Checks over the lowered IR: graph shape, definite assignment, loops, recursion and
//! platform limits. [`check`] returns a [`CheckedProgram`] only when no error was found;
//! it is the proof that later stages (emit, run) require.

use crate::diagnostic::Diagnostic;
use crate::ir::*;
use petgraph::algo::tarjan_scc;
use petgraph::visit::EdgeRef;

/// A program that passed every check. Only [`check`] can make one.
#[derive(Debug, Clone)]
pub struct CheckedProgram {
    program: Program,
}

impl CheckedProgram {
    pub fn program(&self) -> &Program {
        &self.program
    }
}

/// Runs every check. Warnings are returned either way; the program comes back checked when
/// there are no errors, and unchecked (for `botc graph` and friends) when there are.
pub fn check(program: Program, mut diags: Vec<Diagnostic>) -> (Result<CheckedProgram, Program>, Vec<Diagnostic>) {
    for flow in &program.flows {
        let reachable = reachability(flow, &mut diags);
        loops(&program, flow, &mut diags);
        assignment(flow, &reachable, &mut diags);
        reminders(flow, &reachable, &mut diags);
        unchecked_results(flow, &mut diags);
        crate::values::impossible_cases(flow, &mut diags);
        limits(&program, flow, &mut diags);
    }
    recursion(&program, &mut diags);
    unused_subflows(&program, &mut diags);
    parameter_writes(&program, &mut diags);
    let ok = !diags.iter().any(Diagnostic::is_error);
    (if ok { Ok(CheckedProgram { program }) } else { Err(program) }, diags)
}

/// W0201: nodes no path from `start` reaches.
fn reachability(flow: &Flow, diags: &mut Vec<Diagnostic>) -> Vec<bool> {
    let mut seen = vec![false; flow.graph.node_count()];
    let Some(start) = flow.start else {
        // Without a start everything would be "unreachable"; E0203 already says why.
        return vec![true; flow.graph.node_count()];
    };
    let mut stack = vec![start.index()];
    while let Some(n) = stack.pop() {
        if std::mem::replace(&mut seen[n.index()], true) {
            continue;
        }
        stack.extend(flow.graph.neighbors(n));
    }
    // Report only where an unreachable region begins: nodes that only unreachable nodes
    // lead to are a consequence, not a separate mistake.
    let unreachable: Vec<NodeId> = flow.node_ids().filter(|id| !seen[id.0 as usize]).collect();
    let mut covered = seen.clone();
    let roots = unreachable
        .iter()
        .filter(|id| flow.graph.neighbors_directed(id.index(), petgraph::Incoming).all(|p| seen[p.index()]))
        .chain(&unreachable);
    for &id in roots {
        if covered[id.0 as usize] {
            continue;
        }
        let mut region = 0;
        let mut stack = vec![id.index()];
        while let Some(n) = stack.pop() {
            if std::mem::replace(&mut covered[n.index()], true) {
                continue;
            }
            region += 1;
            stack.extend(flow.graph.neighbors(n));
        }
        let node = flow.node(id);
        let mut d = Diagnostic::warning("W0201", node.name_span, format!("node `{}` is unreachable", node.name))
            .label(format!("no path from `start` ({}) leads here", flow.node(start).name))
            .help("point a `next`, `goto` or branch at it, or delete it");
        if region > 1 {
            d.primary_label += &format!(", nor to the {} node(s) after it", region - 1);
        }
        diags.push(d);
    }
    seen
}

/// E0401: a cycle that can spin without waiting for the user.
fn loops(program: &Program, flow: &Flow, diags: &mut Vec<Diagnostic>) {
    let waits = |id: NodeId| {
        let kind = &flow.node(id).kind;
        // A call to a sub-flow that does not exist (reported already) is not held against
        // the loop.
        kind.waits()
            || matches!(kind, NodeKind::Call { flow: None, .. })
            || matches!(kind, NodeKind::Call { flow: Some(callee), .. } if program.flows[callee.0 as usize].graph.node_weights().any(|n| n.kind.waits()))
    };
    for scc in tarjan_scc(&flow.graph) {
        let cyclic = scc.len() > 1 || flow.graph.contains_edge(scc[0], scc[0]);
        if !cyclic {
            continue;
        }
        let mut ids: Vec<NodeId> = scc.into_iter().map(NodeId::from_index).collect();
        ids.sort();
        if ids.iter().any(|&id| waits(id)) {
            continue;
        }
        // One real cycle, through the loop's first node in the file: reported at the edge
        // that closes it, the nodes it passes named in the order they run.
        let cycle = shortest_cycle(flow, &ids);
        let (&last, head) = (cycle.last().expect("a cycle has nodes"), flow.node(cycle[0]));
        let back = flow.graph.edges_connecting(last.index(), cycle[0].index()).next().map(|e| *e.weight());
        let at = flow
            .node(last)
            .targets
            .iter()
            .find(|(e, _)| Some(*e) == back)
            .map_or(flow.node(last).name_span, |&(_, span)| span);
        let names: Vec<&str> = cycle.iter().chain([&cycle[0]]).map(|&id| flow.node(id).name.as_str()).collect();
        let mut d = Diagnostic::error("E0401", at, format!("loop never waits for input: {}", names.join(" → ")))
            .label(format!(
                "this goes back to `{}`: the loop can run forever without the user saying anything",
                head.name
            ))
            .help("put an `ask` or `wait` on the loop, or give it a way out");
        for &id in cycle.iter().take(4) {
            d = d.with_label(flow.node(id).name_span, "part of the loop");
        }
        diags.push(d);
    }
}

/// The shortest cycle through `scc[0]` (the strongly connected nodes `scc`, sorted), as the
/// nodes it visits from `scc[0]` on: a breadth-first search back to it.
fn shortest_cycle(flow: &Flow, scc: &[NodeId]) -> Vec<NodeId> {
    let head = scc[0];
    let mut parent: std::collections::HashMap<NodeId, NodeId> = std::collections::HashMap::new();
    let mut queue = std::collections::VecDeque::from([head]);
    while let Some(u) = queue.pop_front() {
        let mut next: Vec<NodeId> = flow.graph.neighbors(u.index()).map(NodeId::from_index).collect();
        next.sort();
        next.dedup();
        for v in next {
            if v == head {
                let mut path = vec![u];
                while let Some(&p) = parent.get(path.last().expect("not empty")) {
                    path.push(p);
                }
                path.reverse();
                return path;
            }
            if scc.binary_search(&v).is_ok() && v != head && !parent.contains_key(&v) {
                parent.insert(v, u);
                queue.push_back(v);
            }
        }
    }
    scc.to_vec()
}

/// A fixed-size bit set over a flow's variables.
#[derive(Clone, PartialEq, Eq)]
struct Bits(Vec<u64>);

impl Bits {
    fn new(n: usize, full: bool) -> Bits {
        Bits(vec![if full { u64::MAX } else { 0 }; n.div_ceil(64).max(1)])
    }
    fn set(&mut self, v: VarId) {
        self.0[v.0 as usize / 64] |= 1 << (v.0 % 64);
    }
    fn has(&self, v: VarId) -> bool {
        self.0[v.0 as usize / 64] & (1 << (v.0 % 64)) != 0
    }
    fn meet(&mut self, other: &Bits) -> bool {
        let mut changed = false;
        for (a, b) in self.0.iter_mut().zip(&other.0) {
            let n = *a & b;
            changed |= n != *a;
            *a = n;
        }
        changed
    }
}

/// Variables read by a node, in order, split by whether they are read before or after
/// the node's own assignments (only `set` assigns inside a node, and its reads are taken
/// in order with its assignments).
fn node_reads(kind: &NodeKind) -> Vec<(VarId, crate::span::Span)> {
    let mut r = Vec::new();
    if !matches!(kind, NodeKind::Set { .. }) {
        node_exprs(kind).into_iter().for_each(|e| e.reads(&mut r));
    }
    r
}

/// Every expression a node evaluates, template holes included, in order.
fn node_exprs(kind: &NodeKind) -> Vec<&Expr> {
    fn template<'a>(t: &'a Template, out: &mut Vec<&'a Expr>) {
        out.extend(t.parts.iter().filter_map(|p| match p {
            TemplatePart::Expr(e) => Some(e),
            TemplatePart::Lit(_) => None,
        }))
    }
    fn buttons<'a>(buttons: &'a [Button], out: &mut Vec<&'a Expr>) {
        for b in buttons {
            template(&b.label, out);
            if let Some(u) = &b.url {
                template(u, out);
            }
        }
    }
    let mut out: Vec<&Expr> = Vec::new();
    match kind {
        NodeKind::Say { text, buttons: bs, image } => {
            template(text, &mut out);
            buttons(bs, &mut out);
            if let Some(i) = image {
                template(i, &mut out);
            }
        }
        NodeKind::Ask { prompt, buttons: bs, reprompt, .. } => {
            template(prompt, &mut out);
            buttons(bs, &mut out);
            if let Some(t) = reprompt {
                template(t, &mut out);
            }
        }
        NodeKind::Branch { conds } => out.extend(conds),
        NodeKind::Set { assigns } => out.extend(assigns.iter().map(|(_, e)| e)),
        NodeKind::Call { args, .. } => out.extend(args),
        NodeKind::Return { value } => out.extend(value),
        NodeKind::Http { url, headers, body, .. } => {
            template(url, &mut out);
            headers.iter().for_each(|(_, v)| template(v, &mut out));
            if let Some(b) = body {
                template(b, &mut out);
            }
        }
        NodeKind::Handoff { reason, .. } => {
            if let Some(t) = reason {
                template(t, &mut out);
            }
        }
        NodeKind::Wait { .. } | NodeKind::Goto | NodeKind::End => {}
    }
    out
}

/// The variable an edge assigns: `ask`, `call` and `http` store their result only when they
/// leave through `next`.
fn edge_assigns(kind: &NodeKind, edge: Edge) -> Option<VarId> {
    match (kind, edge) {
        (NodeKind::Ask { into, .. } | NodeKind::Call { into, .. } | NodeKind::Http { into, .. }, Edge::Next) => *into,
        _ => None,
    }
}

/// E0302 (read before assigned on some path) and W0301 (never read), by a forward
/// "definitely assigned" data-flow analysis over the graph.
fn assignment(flow: &Flow, reachable: &[bool], diags: &mut Vec<Diagnostic>) {
    let n = flow.graph.node_count();
    let nvars = flow.vars.len();
    let Some(start) = flow.start else { return };
    let mut entry = Bits::new(nvars, false);
    for (i, v) in flow.vars.iter().enumerate() {
        if i < flow.params || v.default.is_some() {
            entry.set(VarId(i as u32));
        }
    }
    // `ins[n]`: variables assigned on every path into n. Top (all set) until first visited.
    let mut ins: Vec<Bits> = vec![Bits::new(nvars, true); n];
    ins[start.0 as usize] = entry.clone();
    let out_of = |id: NodeId, ins: &Bits| {
        let mut out = ins.clone();
        if let NodeKind::Set { assigns } = &flow.node(id).kind {
            assigns.iter().for_each(|(v, _)| out.set(*v));
        }
        out
    };
    let mut work: Vec<NodeId> = vec![start];
    let mut queued = vec![false; n];
    queued[start.0 as usize] = true;
    while let Some(id) = work.pop() {
        queued[id.0 as usize] = false;
        let out = out_of(id, &ins[id.0 as usize]);
        for e in flow.graph.edges(id.index()) {
            let mut along = out.clone();
            if let Some(v) = edge_assigns(&flow.node(id).kind, *e.weight()) {
                along.set(v);
            }
            let t = e.target().index();
            let mut changed = ins[t].meet(&along);
            if t == start.0 as usize {
                changed |= ins[t].meet(&entry);
            }
            if changed && !queued[t] {
                queued[t] = true;
                work.push(NodeId(t as u32));
            }
        }
    }
    let mut read = vec![false; nvars];
    for id in flow.node_ids() {
        let node = flow.node(id);
        let mut assigned = ins[id.0 as usize].clone();
        let mut check = |v: VarId, span, assigned: &Bits| {
            read[v.0 as usize] = true;
            if reachable[id.0 as usize] && !assigned.has(v) {
                let var = flow.var(v);
                diags.push(
                    Diagnostic::error("E0302", span, format!("`{}` may be read before it is assigned", var.name))
                        .label(format!("on some path to `{}`, `{}` has no value yet", node.name, var.name))
                        .with_label(var.span, "declared here without a default")
                        .help("assign it on every path that leads here, or give it a `default`"),
                );
            }
        };
        if let NodeKind::Set { assigns } = &node.kind {
            for (v, value) in assigns {
                let mut r = Vec::new();
                value.reads(&mut r);
                for (rv, span) in r {
                    check(rv, span, &assigned);
                }
                assigned.set(*v);
            }
        } else {
            for (v, span) in node_reads(&node.kind) {
                check(v, span, &assigned);
            }
        }
    }
    for (i, var) in flow.vars.iter().enumerate() {
        // A keyword can never be read as a variable: E0107 said so already.
        // Read by a sub-flow that cannot see it: that read's error (E0301) says so already.
        let read_elsewhere = || diags.iter().any(|d| crate::lower::read_from_a_subflow(d, &flow.name, &var.name));
        if !read[i]
            && !var.name.starts_with('_')
            && !crate::expr::EXPR_KEYWORDS.contains(&var.name.as_str())
            && !read_elsewhere()
        {
            let what = if i < flow.params { "parameter" } else { "variable" };
            diags.push(
                Diagnostic::warning("W0301", var.span, format!("unused {what} `{}`", var.name))
                    .label("never read")
                    .help(format!("remove it, or prefix it with `_` if it is kept on purpose (`_{}`)", var.name)),
            );
        }
    }
}

/// E0701/E0702: literal text longer than, or more buttons than, a declared channel accepts.
fn limits(program: &Program, flow: &Flow, diags: &mut Vec<Diagnostic>) {
    if program.channels.is_empty() {
        return;
    }
    for node in flow.graph.node_weights() {
        let (texts, buttons): (Vec<&Template>, &[Button]) = match &node.kind {
            NodeKind::Say { text, buttons, .. } => (vec![text], buttons),
            NodeKind::Ask { prompt, reprompt, buttons, expect, .. } => {
                let mut t = vec![prompt];
                t.extend(reprompt);
                // A choice without buttons is offered as buttons, one per choice.
                if buttons.is_empty()
                    && let crate::ast::Expect::Choice(choices, span) = expect
                {
                    button_limit(program, node, choices.len(), *span, diags);
                }
                (t, buttons)
            }
            _ => continue,
        };
        for t in texts {
            let len = t.literal_len;
            if let Some((ch, _)) =
                program.channels.iter().filter(|(c, _)| len > c.max_text()).min_by_key(|(c, _)| c.max_text())
            {
                diags.push(
                    Diagnostic::error(
                        "E0701",
                        t.span,
                        format!("text is {len} characters; {} allows at most {}", ch.name(), ch.max_text()),
                    )
                    .label("too long for this channel")
                    .help("split it into several messages"),
                );
            }
        }
        if !buttons.is_empty() {
            let span = node.span;
            button_limit(program, node, buttons.len(), span, diags);
        }
    }
}

fn button_limit(program: &Program, node: &Node, count: usize, span: crate::span::Span, diags: &mut Vec<Diagnostic>) {
    if let Some((ch, _)) =
        program.channels.iter().filter(|(c, _)| count > c.max_buttons()).min_by_key(|(c, _)| c.max_buttons())
    {
        diags.push(
            Diagnostic::error(
                "E0702",
                span,
                format!("node `{}` has {count} buttons; {} allows at most {}", node.name, ch.name(), ch.max_buttons()),
            )
            .label("too many buttons for this channel")
            .help("offer fewer options, or ask in two steps"),
        );
    }
}

/// E0503: sub-flows that call themselves, directly or through others.
fn recursion(program: &Program, diags: &mut Vec<Diagnostic>) {
    let mut calls: petgraph::Graph<usize, crate::span::Span> = petgraph::Graph::new();
    let idx: Vec<_> = (0..program.flows.len()).map(|i| calls.add_node(i)).collect();
    for (i, flow) in program.flows.iter().enumerate() {
        for node in flow.graph.node_weights() {
            if let NodeKind::Call { flow: Some(callee), .. } = node.kind {
                calls.add_edge(idx[i], idx[callee.0 as usize], node.span);
            }
        }
    }
    for scc in tarjan_scc(&calls) {
        let cyclic = scc.len() > 1 || calls.contains_edge(scc[0], scc[0]);
        if !cyclic {
            continue;
        }
        let mut members: Vec<usize> = scc.iter().map(|&n| calls[n]).collect();
        members.sort_unstable();
        let names: Vec<&str> = members.iter().map(|&i| program.flows[i].name.as_str()).collect();
        // Point at a call inside the cycle.
        let at = calls
            .edge_references()
            .filter(|e| scc.contains(&e.source()) && scc.contains(&e.target()))
            .map(|e| *e.weight())
            .min_by_key(|s| (s.file, s.lo))
            .unwrap_or_default();
        diags.push(
            Diagnostic::error("E0503", at, format!("recursive sub-flow calls: {}", names.join(" → ")))
                .label("this call can come back to itself")
                .help("sub-flows cannot call themselves; use a loop with an `ask` instead"),
        );
    }
}

/// W0501: a sub-flow of the file being checked that nothing calls.
fn unused_subflows(program: &Program, diags: &mut Vec<Diagnostic>) {
    let Some(root) = program.flows.first() else { return };
    let mut called = vec![false; program.flows.len()];
    for flow in &program.flows {
        for node in flow.graph.node_weights() {
            if let NodeKind::Call { flow: Some(callee), .. } = node.kind {
                called[callee.0 as usize] = true;
            }
        }
    }
    // A call whose sub-flow was not found may be meant for any of them (E0501 says so).
    let unresolved = program
        .flows
        .iter()
        .any(|f| f.graph.node_weights().any(|n| matches!(n.kind, NodeKind::Call { flow: None, .. })));
    for (i, flow) in program.flows.iter().enumerate().skip(1) {
        let in_error = diags.iter().any(|d| d.is_error() && d.span == flow.name_span);
        if flow.file == root.file && !called[i] && !unresolved && !in_error {
            diags.push(
                Diagnostic::warning("W0501", flow.name_span, format!("sub-flow `{}` is never called", flow.name))
                    .label("no `call` names it")
                    .help("call it where it is needed, or delete it"),
            );
        }
    }
}

/// W0502: a sub-flow that writes a parameter named like a variable of a flow that calls
/// it. Its author expects the caller's variable to change; it does not (a sub-flow has its
/// own variables, and gives back only what it returns).
fn parameter_writes(program: &Program, diags: &mut Vec<Diagnostic>) {
    for (si, sub) in program.flows.iter().enumerate().skip(1) {
        let calls_it = |f: &&Flow| {
            f.graph.node_weights().any(|n| matches!(n.kind, NodeKind::Call { flow: Some(c), .. } if c.0 as usize == si))
        };
        let callers: Vec<&Flow> = program.flows.iter().filter(calls_it).collect();
        for node in sub.graph.node_weights() {
            let written: Vec<VarId> = match &node.kind {
                NodeKind::Set { assigns } => assigns.iter().map(|(v, _)| *v).collect(),
                NodeKind::Ask { into, .. } | NodeKind::Call { into, .. } | NodeKind::Http { into, .. } => {
                    into.iter().copied().collect()
                }
                _ => Vec::new(),
            };
            for v in written.into_iter().filter(|v| (v.0 as usize) < sub.params) {
                let name = &sub.vars[v.0 as usize].name;
                // A caller that stores the sub-flow's result in its own `name` (`into`) does get
                // the new value: the recommended way, not a mistake.
                let stores_result = |c: &Flow| {
                    c.graph.node_weights().any(|n| match n.kind {
                        NodeKind::Call { flow: Some(f), into: Some(w), .. } => {
                            f.0 as usize == si && &c.vars[w.0 as usize].name == name
                        }
                        _ => false,
                    })
                };
                let misled = |c: &&&Flow| c.vars.iter().any(|w| &w.name == name) && !stores_result(c);
                let Some(caller) = callers.iter().find(misled) else { continue };
                diags.push(
                    Diagnostic::warning(
                        "W0502",
                        node.span,
                        format!(
                            "this changes `{}`'s parameter `{name}`, not the `{name}` of `{}`",
                            sub.name, caller.name
                        ),
                    )
                    .label(format!("`{name}` here is the sub-flow's own copy"))
                    .help(format!(
                        "a sub-flow cannot change its caller's variables: `return` the new value, and store it in \
                         `{name}` with the `into` of the `call` in `{}`",
                        caller.name
                    )),
                );
            }
        }
    }
}

/// W0402: an `ask` whose timeout leads back to it with no `branch` on the way: a user who
/// walked away is reminded forever (a counter helps only when a branch reads it).
fn reminders(flow: &Flow, reachable: &[bool], diags: &mut Vec<Diagnostic>) {
    for ask in flow.graph.node_indices() {
        if !reachable[ask.index()] || !matches!(flow.graph[ask].kind, NodeKind::Ask { .. }) {
            continue;
        }
        let Some(timeout) = flow.graph.edges(ask).find(|e| *e.weight() == Edge::Timeout) else { continue };
        // Follow the one way on from the timeout's target, through nodes that cannot choose.
        let mut at = timeout.target();
        let mut path = vec![flow.graph[at].name.as_str()];
        let comes_back = loop {
            if at == ask {
                break true;
            }
            let node = &flow.graph[at];
            if path.len() > flow.graph.node_count()
                || matches!(
                    node.kind,
                    NodeKind::Branch { .. } | NodeKind::Ask { .. } | NodeKind::Call { .. } | NodeKind::Handoff { .. }
                )
            {
                break false;
            }
            let mut next = flow.graph.neighbors(at);
            match (next.next(), next.next()) {
                (Some(only), None) => {
                    at = only;
                    path.push(flow.graph[at].name.as_str());
                }
                _ => break false,
            }
        };
        if comes_back {
            let span =
                flow.graph[ask].targets.iter().find(|(e, _)| *e == Edge::Timeout).map_or(flow.graph[ask].span, |t| t.1);
            diags.push(
                Diagnostic::warning(
                    "W0402",
                    span,
                    format!("a user who does not answer `{}` is reminded forever", flow.graph[ask].name),
                )
                .label(format!("the timeout comes back to the question: {} → {}", flow.graph[ask].name, path.join(" → ")))
                .help("count the reminders and branch out after a few, e.g. `set: { nudges: nudges + 1 }`, then a `branch` on `nudges < 3`"),
            );
        }
    }
}

/// W0304: an `http` node with no `on_error` whose result's fields are read while nothing
/// reads its `status`: a failed call goes on to `next` too (status 0, or the error's), and
/// the fields read nothing, or the error's body.
fn unchecked_results(flow: &Flow, diags: &mut Vec<Diagnostic>) {
    // Each `var.field` read in the flow, with where.
    let mut read: Vec<(VarId, &str, crate::span::Span)> = Vec::new();
    for node in flow.graph.node_weights() {
        for e in node_exprs(&node.kind) {
            e.visit(&mut |e| {
                if let ExprKind::Field(base, name) = &e.kind
                    && let ExprKind::Var(v) = base.kind
                {
                    read.push((v, name.as_str(), e.span));
                }
            });
        }
    }
    for id in flow.graph.node_indices() {
        let node = &flow.graph[id];
        let NodeKind::Http { into: Some(v), .. } = node.kind else { continue };
        if flow.graph.edges(id).any(|e| *e.weight() == Edge::Error)
            || read.iter().any(|&(w, f, _)| w == v && f == "status")
        {
            continue;
        }
        let Some(&(_, field, at)) = read.iter().find(|&&(w, _, _)| w == v) else { continue };
        let name = &flow.vars[v.0 as usize].name;
        diags.push(
            Diagnostic::warning("W0304", at, format!("`{name}.{field}` is read, but nothing looks at `{name}.status`"))
                .label("when the call fails this reads nothing, or the error's body")
                .with_label(node.span, "this call has no `on_error`: a failure goes on to `next` too")
                .help(format!(
                    "add `on_error: <node>` to the call, or branch on `{name}.status` before reading its fields"
                )),
        );
    }
}
